"""The `cache` directive's syntax, defaults and errors (CoreDNS's cache/setup.go)."""

from __future__ import annotations

import pytest

from discovery.config import SetupContext
from discovery.corefile import CorefileError, parse
from discovery.dns.cache import CacheConfig, setup_cache


def cache(text: str, zones=(".",)) -> CacheConfig:
    block = parse(f".:53 {{\n{text}\n}}\n", "Corefile")[0]
    return setup_cache(block.directives[0], SetupContext(zones, "Corefile", 1))


def error_of(text: str) -> CorefileError:
    with pytest.raises(CorefileError) as caught:
        cache(text)
    return caught.value


def test_defaults_are_coredns_defaults():
    """9984 entries each, 3600 s success and 1800 s denial TTLs, 5 s minimum, 5 s SERVFAIL."""
    config = cache("cache")
    assert (config.success_capacity, config.denial_capacity) == (9984, 9984)
    assert (config.success_ttl, config.denial_ttl, config.success_min_ttl, config.denial_min_ttl) == (3600, 1800, 5, 5)
    assert config.servfail_ttl == 5.0 and config.serve_stale == 0 and config.prefetch == 0


def test_zones_default_to_the_server_block():
    """Without ZONES the block's zones are cached."""
    assert cache("cache 30", zones=("cluster.local.", "in-addr.arpa.")).zones == ("cluster.local.", "in-addr.arpa.")


def test_ttl_argument_caps_both_caches_and_zones_follow():
    """`cache 30 Example.org` caps success and denial at 30 s, for example.org only."""
    config = cache("cache 30 Example.org")
    assert (config.success_ttl, config.denial_ttl, config.zones) == (30, 30, ("example.org.",))


def test_kubeadm_disable_form():
    """kubeadm's `cache 30 { disable success cluster.local; disable denial cluster.local }`."""
    config = cache("cache 30 {\n disable success cluster.local\n disable denial cluster.local\n}")
    assert config.success_disabled == ("cluster.local.",) and config.denial_disabled == ("cluster.local.",)


def test_disable_without_zones_turns_the_whole_kind_off():
    """`disable denial` alone means every zone."""
    assert cache("cache {\n disable denial\n}").denial_disabled == (".",)


def test_success_and_denial_capacity_and_ttls():
    """success CAPACITY TTL MINTTL (capacity in whole shards), and denial likewise."""
    config = cache("cache {\n success 5000 600 10\n denial 2500 60 0\n}")
    assert (config.success_capacity, config.success_ttl, config.success_min_ttl) == (4864, 600, 10)
    assert (config.denial_capacity, config.denial_ttl, config.denial_min_ttl) == (2304, 60, 0)


def test_prefetch_arguments():
    """prefetch AMOUNT DURATION PERCENTAGE%."""
    config = cache("cache {\n prefetch 10 1m30s 20%\n}")
    assert (config.prefetch, config.prefetch_duration, config.prefetch_percentage) == (10, 90.0, 20)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("serve_stale", dict(serve_stale=3600.0, verify_stale=False)),
        ("serve_stale 10m verify", dict(serve_stale=600.0, verify_stale=True)),
        ("serve_stale 1h immediate 30s 1m", dict(verify_stale=False, stale_ttl=30, stale_recheck=60.0)),
        ("serve_stale 1h verify 100ms 30s 30s", dict(verify_stale=True, verify_timeout=0.1, stale_ttl=30,
                                                      stale_recheck=30.0)),
    ],
)
def test_serve_stale_forms(line, expected):
    """serve_stale [DURATION] [immediate [TTL [RECHECK]] | verify [TIMEOUT [TTL [RECHECK]]]]."""
    config = cache(f"cache {{\n {line}\n}}")
    assert {key: getattr(config, key) for key in expected} == expected


def test_keepttl_and_servfail():
    """keepttl and servfail DURATION."""
    config = cache("cache {\n keepttl\n servfail 10s\n}")
    assert config.keepttl and config.servfail_ttl == 10.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("cache 0", "cache TTL can not be zero or negative: 0"),
        ("cache {\n success many\n}", "is not an integer"),
        ("cache {\n success 100 0\n}", "cache TTL can not be zero or negative: 0"),
        ("cache {\n denial 100 60 -1\n}", "cache min TTL can not be negative: -1"),
        ("cache {\n prefetch -1\n}", "prefetch amount should be positive"),
        ("cache {\n prefetch 1 1m 20\n}", "last character of percentage should be `%`"),
        ("cache {\n prefetch 1 1m 95%\n}", "percentage should fall in range [10, 90]: 95"),
        ("cache {\n serve_stale -1s\n}", "invalid negative duration for serve_stale"),
        ("cache {\n serve_stale 1h later\n}", "invalid value for serve_stale refresh mode: later"),
        ("cache {\n serve_stale 1h immediate 1500ms\n}", "must be a whole number of seconds"),
        ("cache {\n serve_stale 1h immediate 30s 6m\n}", "cannot exceed 5 minutes"),
        ("cache {\n servfail 6m\n}", "caching SERVFAIL responses over 5 minutes is not permitted"),
        ("cache {\n disable everything\n}", 'cache type for disable must be "success" or "denial"'),
        ("cache {\n serve_stale_policy prefer_positive\n}", "serve_stale_policy is not supported"),
        ("cache {\n frobnicate\n}", "unknown property 'frobnicate'"),
    ],
)
def test_bad_arguments_are_errors_at_their_line(text, message):
    """Each bad argument is a CorefileError with CoreDNS's wording, at the offending line."""
    err = error_of(text)
    assert message in err.message
    assert err.line == (2 if "{" not in text else 3)
