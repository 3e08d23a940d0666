"""The hosts plugin: parsing, answers, fallthrough and reloads (CoreDNS's hosts plugin)."""

from __future__ import annotations

import os

import dns.flags
import dns.rcode
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import task

from discovery.config import SetupContext
from discovery.corefile import CorefileError, parse
from discovery.dns.hosts import HostsConfig, HostsPlugin, address_from_reverse, parse_hosts, setup_hosts
from discovery.zones import Fallthrough
from tests.upstream.requests import make_request

HOSTS = """\
127.0.0.1   localhost
192.0.2.10  web.example.org web   # a comment
2001:db8::10 web.example.org
192.0.2.20  *.apps.example.org
::ffff:192.0.2.30 mapped.example.org
not-an-ip   broken.example.org
192.0.2.40  outside.example.net
"""


def hosts_setup(text: str, zones=("example.org.",)) -> HostsConfig:
    block = parse(f".:53 {{\n{text}\n}}\n", "Corefile")[0]
    return setup_hosts(block.directives[0], SetupContext(zones, "Corefile", 1))


@pytest.fixture
def hosts_file(tmp_path):
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    return path


def started(config, clock=None, registry=None):
    plugin = HostsPlugin(config, clock or task.Clock(), registry=registry or CollectorRegistry())
    plugin.start()
    return plugin


def next_plugin(request):
    return "next"


def texts(response):
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


def test_parse_keeps_names_in_zones_only():
    """Names outside ZONES and lines without a valid address are skipped."""
    data = parse_hosts(HOSTS, ("example.org.",))
    assert data.addresses("web.example.org.", v6=False) == ["192.0.2.10"]
    assert data.addresses("outside.example.net.", v6=False) == []
    assert data.addresses("broken.example.org.", v6=False) == []


def test_ipv4_mapped_addresses_are_ipv4():
    """::ffff:192.0.2.30 is an IPv4 address, as Go's To4 sees it."""
    assert parse_hosts(HOSTS, (".",)).addresses("mapped.example.org.", v6=False) == ["192.0.2.30"]


def test_wildcards_match_one_label():
    """*.apps.example.org answers a.apps.example.org but not a.b.apps.example.org."""
    data = parse_hosts(HOSTS, (".",))
    assert data.addresses("a.apps.example.org.", v6=False) == ["192.0.2.20"]
    assert data.addresses("a.b.apps.example.org.", v6=False) == []


def test_reverse_names_decode():
    """in-addr.arpa and full ip6.arpa names turn back into addresses."""
    assert address_from_reverse("10.2.0.192.in-addr.arpa.") == "192.0.2.10"
    ip6 = ".".join(reversed("20010db8000000000000000000000010")) + ".ip6.arpa."
    assert address_from_reverse(ip6) == "2001:db8::10"
    assert address_from_reverse("2.0.192.in-addr.arpa.") is None


def test_a_and_aaaa_answers_are_authoritative(hosts_file):
    """A and AAAA come from the file with AA set and the configured TTL."""
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file), ttl=60))
    request = make_request("Web.Example.org.")
    response = plugin.serve(request, next_plugin)
    assert texts(response) == ["192.0.2.10"] and response.answer[0].ttl == 60
    assert response.flags & dns.flags.AA and request.plugin == "hosts"
    assert texts(plugin.serve(make_request("web.example.org.", "AAAA"), next_plugin)) == ["2001:db8::10"]


def test_other_types_of_a_known_name_get_nodata(hosts_file):
    """A name with addresses answers MX with NOERROR and no records."""
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file)))
    response = plugin.serve(make_request("web.example.org.", "MX"), next_plugin)
    assert response.rcode() == dns.rcode.NOERROR and not response.answer


def test_unknown_names_get_servfail_without_fallthrough(hosts_file):
    """No SOA means no NXDOMAIN: an unknown name gets SERVFAIL (CoreDNS)."""
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file)))
    assert plugin.serve(make_request("nope.example.org."), next_plugin).rcode() == dns.rcode.SERVFAIL


def test_unknown_names_fall_through_when_asked(hosts_file):
    """With fallthrough an unknown name goes to the next plugin."""
    config = HostsConfig(zones=("example.org.",), path=str(hosts_file), fallthrough=Fallthrough(True))
    assert started(config).serve(make_request("nope.example.org."), next_plugin) == "next"


def test_names_outside_the_zones_go_to_the_next_plugin(hosts_file):
    """Outside ZONES the plugin stays out of the way, fallthrough or not."""
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file)))
    assert plugin.serve(make_request("www.example.com."), next_plugin) == "next"


def test_ptr_answers_from_addresses_and_unknown_ones_pass(hosts_file):
    """PTR for a known address names its hosts; an unknown address goes to the next plugin."""
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file)))
    assert texts(plugin.serve(make_request("10.2.0.192.in-addr.arpa.", "PTR"), next_plugin)) == ["web.example.org."]
    assert plugin.serve(make_request("99.2.0.192.in-addr.arpa.", "PTR"), next_plugin) == "next"


def test_no_reverse_turns_ptr_off(hosts_file):
    """no_reverse: no PTR answers."""
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file), reverse=False))
    assert plugin.serve(make_request("10.2.0.192.in-addr.arpa.", "PTR"), next_plugin) == "next"


def test_inline_lines_add_to_the_file(hosts_file):
    """Inline entries answer too, after the file's."""
    config = HostsConfig(zones=("example.org.",), path=str(hosts_file), inline=("192.0.2.11 web.example.org",))
    assert texts(started(config).serve(make_request("web.example.org."), next_plugin)) == ["192.0.2.10", "192.0.2.11"]


def test_fallthrough_unsupported_passes_other_types(hosts_file):
    """fallthrough_unsupported sends MX for a known name to the next plugin."""
    config = HostsConfig(zones=("example.org.",), path=str(hosts_file), fallthrough=Fallthrough(True),
                         fallthrough_unsupported=True)
    assert started(config).serve(make_request("web.example.org.", "MX"), next_plugin) == "next"


def test_a_changed_file_is_read_at_the_next_reload(hosts_file):
    """After the file changes, the next reload tick serves the new address."""
    clock = task.Clock()
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file), reload=5.0), clock)
    hosts_file.write_text("192.0.2.99 web.example.org\n")
    os.utime(hosts_file, (1, 1))
    clock.advance(5)
    assert texts(plugin.serve(make_request("web.example.org."), next_plugin)) == ["192.0.2.99"]
    plugin.stop()


def test_answers_may_be_reused_until_the_next_reload(hosts_file):
    """The server may reuse a hosts answer until the file is next checked."""
    clock = task.Clock()
    clock.advance(100)
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file), reload=5.0), clock)
    request = make_request("web.example.org.")
    plugin.serve(request, next_plugin)
    assert request.fastpath.reusable and request.fastpath.expires == 105
    plugin.stop()


def test_a_vanished_file_keeps_the_last_data(hosts_file):
    """If the file disappears, the entries read before keep answering."""
    clock = task.Clock()
    plugin = started(HostsConfig(zones=("example.org.",), path=str(hosts_file), reload=5.0), clock)
    hosts_file.unlink()
    clock.advance(5)
    assert texts(plugin.serve(make_request("web.example.org."), next_plugin)) == ["192.0.2.10"]
    plugin.stop()


def test_entries_and_reload_time_metrics(hosts_file):
    """coredns_hosts_entries counts file and inline entries; the reload time is the file's mtime."""
    registry = CollectorRegistry()
    os.utime(hosts_file, (1_700_000_000, 1_700_000_000))
    started(HostsConfig(zones=("example.org.",), path=str(hosts_file), reload=0), registry=registry)
    # web.example.org: A, AAAA and their two reverse names; mapped: A and its
    # reverse name; the wildcard: A only (wildcards get no reverse name).
    assert registry.get_sample_value("coredns_hosts_entries", {"hostsfile": str(hosts_file)}) == 7
    assert registry.get_sample_value("coredns_hosts_reload_timestamp_seconds") == 1_700_000_000


# --- setup -------------------------------------------------------------------------------


def test_setup_defaults():
    """/etc/hosts, the block's zones, TTL 3600, reload 5s, reverse on, no fallthrough."""
    config = hosts_setup("hosts")
    assert (config.path, config.zones, config.ttl, config.reload, config.reverse) == (
        "/etc/hosts", ("example.org.",), 3600, 5.0, True)
    assert not config.fallthrough.enabled


def test_setup_file_zones_and_options(hosts_file):
    """FILE ZONES and every option."""
    config = hosts_setup(
        f"hosts {hosts_file} Example.com {{\n 192.0.2.1 a.example.com\n ttl 60\n no_reverse\n reload 0s\n"
        " fallthrough\n fallthrough_unsupported\n}"
    )
    assert (config.path, config.zones, config.ttl, config.reload, config.reverse) == (
        str(hosts_file), ("example.com.",), 60, 0.0, False)
    assert config.inline == ("192.0.2.1 a.example.com",)
    assert config.fallthrough.enabled and config.fallthrough_unsupported


@pytest.mark.parametrize(
    "block, message",
    [
        ("ttl 0", "ttl provided is invalid"),
        ("ttl soon", "ttl needs a number of second"),
        ("reload sometimes", "invalid duration for reload 'sometimes'"),
        ("reload -1s", "invalid negative duration for reload '-1s'"),
        ("fallthrough\n frobnicate", "unknown property 'frobnicate'"),
    ],
)
def test_setup_errors(block, message):
    """Bad options are CorefileErrors with CoreDNS's wording."""
    with pytest.raises(CorefileError) as caught:
        hosts_setup(f"hosts {{\n {block}\n}}")
    assert message in caught.value.message


def test_fallthrough_unsupported_needs_fallthrough():
    """fallthrough_unsupported alone is an error."""
    with pytest.raises(CorefileError, match="fallthrough_unsupported requires fallthrough"):
        hosts_setup("hosts {\n fallthrough_unsupported\n}")
