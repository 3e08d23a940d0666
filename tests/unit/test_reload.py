"""The `reload` directive: its syntax, the Corefile digest, and the watcher's schedule and outcomes (CoreDNS's plugin/reload)."""

from __future__ import annotations

import logging
import re

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import task

from discovery.config import load_text
from discovery.corefile import CorefileError, parse, parse_file
from discovery.ops.reload import (
    CorefileWatcher,
    Outcome,
    ReloadConfig,
    corefile_digest,
    load_corefile,
    reload_settings,
)


def reload_of(line: str) -> ReloadConfig:
    [server] = load_text(f".:53 {{\n    {line}\n}}\n").servers
    return server.plugin("reload")


# --- syntax --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, interval, jitter",
    [
        ("reload", 30.0, 15.0),
        ("reload 1m", 60.0, 15.0),
        ("reload 10s", 10.0, 5.0),
        ("reload 10s 2s", 10.0, 2.0),
        ("reload 20s 15s", 20.0, 10.0),
        ("reload 2s 0s", 2.0, 0.0),
    ],
)
def test_interval_and_jitter_follow_coredns_defaults_and_cap(line, interval, jitter):
    """INTERVAL defaults to 30s and JITTER to 15s; JITTER is cut to half of INTERVAL (CoreDNS's README)."""
    assert reload_of(line) == ReloadConfig(interval, jitter)


@pytest.mark.parametrize(
    "line, message",
    [
        ("reload 1s", "interval value must be greater or equal to 2s"),
        ("reload 10s 500ms", "jitter value must be 0 or greater or equal to 1s"),
        ("reload 10s -1s", "jitter value must be 0 or greater or equal to 1s"),
        ("reload 10s 1s 1s", "expected 0 to 2 arguments, got 3"),
        ("reload often", "invalid duration 'often'"),
    ],
)
def test_bad_values_are_refused_with_file_and_line(line, message):
    """An interval under 2s, a jitter under 1s (but not 0), extra arguments or a non-duration stop the load at Corefile:2."""
    with pytest.raises(CorefileError) as error:
        reload_of(line)
    assert error.value.line == 2 and message in str(error.value)


def test_reload_takes_no_block():
    """`reload { ... }` is refused: the directive has no options."""
    with pytest.raises(CorefileError, match="reload: takes no block"):
        load_text(".:53 {\n    reload {\n        often\n    }\n}\n")


def test_the_period_is_interval_plus_up_to_half_the_jitter_either_way():
    """A random fraction in [0, 1) moves INTERVAL within [-JITTER/2, JITTER/2) (CoreDNS's rand.Int63n(j) - j/2)."""
    config = ReloadConfig(30.0, 10.0)
    assert config.period(0.0) == 25.0
    assert config.period(0.5) == 30.0
    assert config.period(0.999) == pytest.approx(34.99) and config.period(0.999) < 35.0


def test_the_last_blocks_reload_is_the_one_in_force():
    """With several blocks, the last `reload` wins (each CoreDNS setup overwrites the interval); none gives None."""
    config = load_text("a.:53 {\n    reload 10s\n}\nb.:53 {\n    reload 20s 0s\n}\nc.:53 {\n}\n")
    assert reload_settings(config) == ReloadConfig(20.0, 0.0)
    assert reload_settings(load_text(".:53 {\n}\n")) is None


# --- the digest ----------------------------------------------------------------------------------


def digest(text: str) -> str:
    return corefile_digest(parse(text, "Corefile", environ={}))


def test_a_trailing_comment_or_spacing_leaves_the_digest_alone():
    """The digest is of the parsed tokens with their lines: comments and spaces within a line do not count."""
    assert digest(".:53 {\n    forward . 10.0.0.1\n}\n") == digest(".:53 {\n    forward   .  10.0.0.1   # upstream\n}\n")


def test_a_changed_argument_changes_the_digest():
    """Any token that changes makes another digest, a SHA512 in hex."""
    before, after = digest(".:53 {\n    cache 30\n}\n"), digest(".:53 {\n    cache 31\n}\n")
    assert before != after
    assert re.fullmatch("[0-9a-f]{128}", before) and re.fullmatch("[0-9a-f]{128}", after)


def test_a_change_in_an_imported_file_changes_the_digest(tmp_path):
    """Imported files are part of what is hashed (CoreDNS 1.7.0 and later)."""
    (tmp_path / "Corefile").write_text(".:53 {\n    import extra.conf\n}\n")
    (tmp_path / "extra.conf").write_text("cache 30\n")
    before = corefile_digest(parse_file(str(tmp_path / "Corefile"), {}))
    (tmp_path / "extra.conf").write_text("cache 60\n")
    assert corefile_digest(parse_file(str(tmp_path / "Corefile"), {})) != before


# --- the watcher ---------------------------------------------------------------------------------

GOOD = ".:53 {\n    reload 10s 0s\n    cache 30\n}\n"


class Applied:
    """A stand-in for Application.apply: records configurations, or fails as told."""

    def __init__(self):
        self.configs = []
        self.error: Exception | None = None

    def __call__(self, config) -> None:
        if self.error is not None:
            raise self.error
        self.configs.append(config)


@pytest.fixture
def watched(tmp_path):
    path = tmp_path / "Corefile"
    path.write_text(GOOD)
    clock = task.Clock()
    registry = CollectorRegistry()
    applied = Applied()
    loaded = load_corefile(str(path), 53, environ={})
    watcher = CorefileWatcher(
        str(path), 53, loaded.digest, applied, clock, registry=registry, environ={}, random_fraction=lambda: 0.5
    )
    watcher.start(loaded.config)
    return path, clock, registry, applied, watcher


def failures(registry) -> float:
    return registry.get_sample_value("coredns_reload_failed_total")


def versions(registry) -> list[str]:
    return [
        sample.labels["value"]
        for metric in registry.collect()
        if metric.name == "coredns_reload_version_info"
        for sample in metric.samples
        if sample.labels["hash"] == "sha512"
    ]


def test_an_unchanged_corefile_is_checked_every_interval_and_left_alone(watched):
    """A check is due every INTERVAL; the same digest applies nothing and records no version (CoreDNS sets it on reload)."""
    path, clock, registry, applied, watcher = watched
    [first] = clock.getDelayedCalls()
    assert first.getTime() == 10
    clock.advance(10)
    [second] = clock.getDelayedCalls()
    assert second.getTime() == 20
    assert watcher.check() is Outcome.UNCHANGED
    assert applied.configs == [] and versions(registry) == []


def test_a_changed_corefile_is_applied_at_the_next_check(watched, caplog):
    """A change that loads is applied at the next tick, with CoreDNS's log lines and the new digest in version_info."""
    path, clock, registry, applied, watcher = watched
    path.write_text(GOOD.replace("cache 30", "cache 60"))
    with caplog.at_level(logging.INFO, logger="wayfinder.reload"):
        clock.advance(10)
    [config] = applied.configs
    assert config.servers[0].plugin("cache").success_ttl == 60
    assert [r.getMessage() for r in caplog.records] == [
        "Reloading",
        f"Running configuration SHA512 = {watcher.digest}",
        "Reloading complete",
    ]
    assert versions(registry) == [watcher.digest] and failures(registry) == 0


def test_a_corefile_that_does_not_load_keeps_the_running_one_and_is_counted(watched, caplog):
    """A setup error is logged with file:line, counted once, not applied, and not tried again until the file changes."""
    path, clock, registry, applied, watcher = watched
    path.write_text(".:53 {\n    reload 10s 0s\n    cache 0\n}\n")
    with caplog.at_level(logging.INFO, logger="wayfinder.reload"):
        clock.advance(10)
    assert applied.configs == [] and failures(registry) == 1
    error = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage().split(": ")[0:2] for r in error] == [["Corefile changed but reload failed", f"{path}:3"]]
    assert versions(registry) == [watcher.digest]
    assert watcher.check() is Outcome.UNCHANGED and failures(registry) == 1
    path.write_text(GOOD.replace("cache 30", "cache 45"))
    assert watcher.check() is Outcome.RELOADED


def test_a_corefile_that_does_not_parse_is_logged_at_each_check_and_not_counted(watched, caplog):
    """A grammar error is a warning with file:line at every check, not a failed reload (CoreDNS's "Corefile parse failed")."""
    path, clock, registry, applied, watcher = watched
    path.write_text(".:53 {\n    cache 30\n")
    with caplog.at_level(logging.WARNING, logger="wayfinder.reload"):
        clock.advance(10)
        clock.advance(10)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all(w.startswith(f"Corefile parse failed: {path}:1: ") for w in warnings)
    assert applied.configs == [] and failures(registry) == 0


def test_a_configuration_the_application_cannot_make_is_a_failed_reload(watched):
    """When apply raises (a port in use), the reload fails and is counted; watching goes on."""
    path, clock, registry, applied, watcher = watched
    applied.error = OSError("Address already in use")
    path.write_text(GOOD.replace("cache 30", "cache 60"))
    clock.advance(10)
    assert failures(registry) == 1 and watcher.watching


def test_the_new_corefiles_reload_sets_the_next_checks(watched):
    """After a reload the schedule is the new Corefile's: `reload 20s 0s` checks 20 seconds later."""
    path, clock, registry, applied, watcher = watched
    path.write_text(GOOD.replace("reload 10s 0s", "reload 20s 0s"))
    clock.advance(10)
    [delayed] = clock.getDelayedCalls()
    assert delayed.getTime() == 30


def test_a_corefile_without_reload_ends_the_watching(watched):
    """Once a Corefile without `reload` is running, nothing is checked any more."""
    path, clock, registry, applied, watcher = watched
    path.write_text(".:53 {\n    cache 30\n}\n")
    clock.advance(10)
    assert len(applied.configs) == 1 and not watcher.watching and clock.getDelayedCalls() == []


def test_without_reload_nothing_is_watched(tmp_path):
    """A Corefile without `reload` starts no checks (the directive turns watching on)."""
    path = tmp_path / "Corefile"
    path.write_text(".:53 {\n    cache 30\n}\n")
    clock = task.Clock()
    loaded = load_corefile(str(path), 53, environ={})
    watcher = CorefileWatcher(str(path), 53, loaded.digest, Applied(), clock, registry=CollectorRegistry())
    watcher.start(loaded.config)
    assert not watcher.watching and clock.getDelayedCalls() == []
