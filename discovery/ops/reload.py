"""`reload`: apply a changed Corefile without a restart, as CoreDNS's reload plugin does.

Syntax (CoreDNS's)::

    reload [INTERVAL] [JITTER]

Every INTERVAL (default 30s; at least 2s), moved by a random amount of up to
half of JITTER either way (default 15s; 0s, or at least 1s; at most half of
INTERVAL), the Corefile is parsed again and its SHA512 compared with the
running one's. The digest covers the parsed server blocks, every token with
its file and line, after `import` and `{$ENV}` expansion: a change in an
imported file counts, a comment does not (CoreDNS hashes the same).

A changed Corefile that loads replaces the running configuration through
`Application.apply`, which keeps every socket, cache and plugin whose
configuration did not change. One that does not load is logged with its file
and line, counted in `coredns_reload_failed_total`, and the running
configuration stays; it is not tried again until the file changes again.
A Corefile that does not even parse is logged at each check and not
counted, as in CoreDNS. The log lines are CoreDNS's: ``Running configuration
SHA512 = ...`` when watching starts, ``Reloading``, then either ``Reloading
complete`` or ``Corefile changed but reload failed: FILE:LINE: ...``.

The schedule is re-drawn after every successful reload, from the new
Corefile's `reload` (the last server block's, when several have one, as the
last setup wins in CoreDNS); a Corefile without `reload` ends the watching.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import random
from typing import Callable, Mapping, Sequence

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..config import Config, assemble
from ..corefile import CorefileError, Directive, ServerBlockSource, parse_file
from ..plugin import PluginSpec

__all__ = [
    "ReloadConfig",
    "setup_reload",
    "corefile_digest",
    "reload_settings",
    "LoadedCorefile",
    "load_corefile",
    "CorefileWatcher",
    "Outcome",
]

log = logging.getLogger("wayfinder.reload")

#: CoreDNS's defaultInterval, defaultJitter, minInterval and minJitter.
DEFAULT_INTERVAL = 30.0
DEFAULT_JITTER = 15.0
MIN_INTERVAL = 2.0
MIN_JITTER = 1.0


@attrs.frozen
class ReloadConfig:
    """One `reload` directive; durations in seconds, JITTER already capped at INTERVAL/2."""

    interval: float = DEFAULT_INTERVAL
    jitter: float = DEFAULT_JITTER

    def period(self, fraction: float) -> float:
        """The time between checks for a random fraction in [0, 1).

        INTERVAL plus a jitter in [-JITTER/2, JITTER/2), as CoreDNS's setup
        draws `rand.Int63n(j) - j/2`.
        """
        return self.interval + self.jitter * (fraction - 0.5)


def setup_reload(directive: Directive, ctx) -> ReloadConfig:
    """Parse a `reload` directive. Raises CorefileError naming file:line."""
    directive.expect_args(0, 2, "reload [INTERVAL] [JITTER]")
    directive.expect_no_block()
    durations = [directive.duration(text, "reload") for text in directive.args]
    interval = durations[0] if durations else DEFAULT_INTERVAL
    jitter = durations[1] if len(durations) > 1 else DEFAULT_JITTER
    if interval < MIN_INTERVAL:
        raise directive.error(f"reload: interval value must be greater or equal to {MIN_INTERVAL:g}s")
    if jitter != 0 and jitter < MIN_JITTER:
        raise directive.error(f"reload: jitter value must be 0 or greater or equal to {MIN_JITTER:g}s")
    return ReloadConfig(interval, min(jitter, interval / 2))


def corefile_digest(blocks: Sequence[ServerBlockSource]) -> str:
    """The SHA512 (hex) of parsed server blocks: keys and directives, each with file and line."""

    def directive(d: Directive) -> list:
        return [d.name, list(d.args), d.file, d.line, d.has_block, [directive(child) for child in d.block]]

    tree = [[list(block.keys), block.file, block.line, [directive(d) for d in block.directives]] for block in blocks]
    return hashlib.sha512(json.dumps(tree, separators=(",", ":")).encode()).hexdigest()


def reload_settings(config: Config) -> ReloadConfig | None:
    """The `reload` in force: the last server block's that has one; None when none has."""
    found = [block.plugin("reload") for block in config.servers if block.plugin("reload") is not None]
    return found[-1] if found else None


@attrs.frozen
class LoadedCorefile:
    config: Config
    #: corefile_digest of what was parsed.
    digest: str


def load_corefile(path: str, dns_port: int, environ: Mapping[str, str] | None = None) -> LoadedCorefile:
    """Read, parse and assemble a Corefile, keeping its digest. Raises CorefileError."""
    blocks = parse_file(path, environ)
    return LoadedCorefile(assemble(blocks, path, dns_port), corefile_digest(blocks))


class Outcome(enum.Enum):
    """What one check found."""

    UNCHANGED = "unchanged"
    UNPARSABLE = "unparsable"
    RELOADED = "reloaded"
    FAILED = "failed"


class CorefileWatcher:
    """Checks the Corefile on `reload`'s schedule and applies a changed one.

    `apply` takes the new Config and raises if it cannot be applied (the
    running configuration then stays; `Application.apply` does this).
    `check()` is one check, for a test to run at a moment of its choosing.
    """

    def __init__(
        self,
        path: str,
        dns_port: int,
        digest: str,
        apply: Callable[[Config], None],
        reactor,
        *,
        registry: CollectorRegistry,
        environ: Mapping[str, str] | None = None,
        random_fraction: Callable[[], float] = random.random,
    ):
        self.path = path
        self.dns_port = dns_port
        #: The digest of the Corefile last tried (the running one, unless that try failed).
        self.digest = digest
        self._apply = apply
        self._reactor = reactor
        self._environ = os.environ if environ is None else environ
        self._random_fraction = random_fraction
        self._timer = None
        self._period = 0.0
        self._failures = Counter(
            "coredns_reload_failed", "Counter of the number of failed reload attempts.", registry=registry
        )
        self._version_info = Gauge(
            "coredns_reload_version_info",
            "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
            ["hash", "value"],
            registry=registry,
        )

    @property
    def watching(self) -> bool:
        return self._timer is not None

    def start(self, config: Config) -> None:
        """Watch on the schedule of config's `reload`; without one, do nothing."""
        self.stop()
        settings = reload_settings(config)
        if settings is None:
            return
        log.info("Running configuration SHA512 = %s", self.digest)
        self._period = settings.period(self._random_fraction())
        self._timer = self._reactor.callLater(self._period, self._tick)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self.check() != Outcome.RELOADED:
            self._timer = self._reactor.callLater(self._period, self._tick)

    def check(self) -> Outcome:
        """Read the Corefile once; reload it if its digest changed."""
        try:
            blocks = parse_file(self.path, self._environ)
        except CorefileError as error:
            log.warning("Corefile parse failed: %s", error)
            return Outcome.UNPARSABLE
        digest = corefile_digest(blocks)
        if digest == self.digest:
            return Outcome.UNCHANGED
        # Not tried again with the same content, even though it may fail.
        self.digest = digest
        # One series: the Corefile last tried, whether or not it loaded.
        self._version_info.clear()
        self._version_info.labels("sha512", digest).set(1)
        log.info("Reloading")
        try:
            config = assemble(blocks, self.path, self.dns_port)
            self._apply(config)
        except Exception as error:
            # Whatever the new configuration needed (a setting, a port), the
            # running one is intact: say so and go on.
            log.error("Corefile changed but reload failed: %s", error)
            self._failures.inc()
            return Outcome.FAILED
        self.start(config)
        log.info("Reloading complete")
        return Outcome.RELOADED


PLUGINS = (PluginSpec("reload", setup_reload, in_webhook_block=True),)
