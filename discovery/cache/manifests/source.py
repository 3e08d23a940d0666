"""ManifestSource: a folder of Kubernetes manifests feeding a Store, off the reactor thread.

Every `poll_interval` the reactor starts one pass, unless one is still
under way: a worker thread lists the folder, reads and parses the files
whose status changed, merges everything and diffs it against what the
Store holds (`folder.scan`). Back on the reactor thread only the difference
is written, in slices of a few milliseconds each, so that neither a slow
parse nor a large apply keeps DNS from answering.

Bad data never stops the source: a file that cannot be read, is over a
limit or cannot be parsed keeps the objects it held before; an object the
converters reject keeps its previous version, if it had one. Problems are
logged once, when the file that causes them changes, and at most
`PROBLEMS_PER_FILE` lines per file; a pass logs one summary line.
"""

from __future__ import annotations

import gc
import itertools
import logging
import sys
import time
from typing import Callable, Mapping

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.task import LoopingCall

from ..config import SourceConfig
from ..store import KINDS, CacheObject, Store
from .folder import Scan, Seen, Skip, scan
from .merge import Merged
from .parse import Key, ParsedFile

__all__ = ["ManifestSource", "PROBLEMS_PER_FILE", "APPLY_SLICE_SECONDS"]

log = logging.getLogger("wayfinder.cache.manifests")

#: Lines logged per file and pass; the rest are counted in one more line.
PROBLEMS_PER_FILE = 10
#: Allocated cluster IPs named per file in its info line (all of them at debug).
ALLOCATIONS_PER_LINE = 10
#: The reactor writes to the Store for at most this long per turn, then lets
#: queries in: 100,000 writes cost about 2 s in all.
APPLY_SLICE_SECONDS = 0.005


#: Passes under way in the process; whether the collector ran, and the GIL's
#: switch interval, before the first.
_paused: list = [0, False, 0.005]
#: The GIL's switch interval while a pass runs (CPython's default is 5 ms).
#: The reactor thread gives the GIL up at every system call (epoll, recvfrom,
#: sendto) and then waits up to one interval to take it back from the busy
#: worker: at 5 ms a query would wait 15 ms or more.
PASS_SWITCH_INTERVAL = 0.0005


def _pause_collector() -> None:
    """No cyclic garbage collection, and a short GIL switch interval, while a pass is under way.

    A pass allocates an object per YAML node and per field: the collector's
    full collections would walk the whole cache again and again (a few
    tenths of a second each at 20,000 Services, seconds at 100,000), and a
    collection holds the GIL from whichever thread triggered it, so the
    reactor would answer nothing meanwhile.
    """
    if _paused[0] == 0:
        _paused[1] = gc.isenabled()
        _paused[2] = sys.getswitchinterval()
        gc.disable()
        sys.setswitchinterval(PASS_SWITCH_INTERVAL)
    _paused[0] += 1


def _resume_collector(settle: bool) -> None:
    """After the last pass under way: what a changing pass built is moved out of the collector's reach.

    Frozen, not collected first: everything allocated since the pause is
    in the youngest generation, so even a young collection would walk the
    whole new cache (over a second at 100,000 Services). The cache forms no
    cycles and is freed by reference counting when the Store drops it; the
    loaders' cycles are broken by `dispose()`; what little cyclic garbage
    is about when a changing pass ends stays frozen.
    """
    _paused[0] -= 1
    if _paused[0]:
        return
    if settle:
        gc.freeze()
    if _paused[1]:
        gc.enable()
    sys.setswitchinterval(_paused[2])


def _in_thread(reactor) -> Callable[..., defer.Deferred]:
    if IReactorThreads.providedBy(reactor):
        return lambda f, *args: threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
    # A test's Clock has no threads: the pass runs inline.
    return lambda f, *args: defer.maybeDeferred(f, *args)


def _log_bounded(level: int, lines: list, limit: int, more: str) -> None:
    for line in lines[:limit]:
        log.log(level, "%s", line)
    if len(lines) > limit:
        log.log(level, more, len(lines) - limit)


class ManifestSource:
    """Feeds a Store from a folder of manifests, polled for changes.

    `start()` loads the folder and then polls it every `poll_interval`
    seconds; `synced` fires once the first load is in the Store; `stop()`
    ends the polling. The Store keeps its data. `worker` runs a pass
    (default: the reactor's thread pool; inline for a reactor without
    threads, such as a test's Clock).
    """

    def __init__(
        self,
        config: SourceConfig,
        store: Store,
        reactor,
        *,
        poll_interval: float = 0.25,
        worker: Callable[..., defer.Deferred] | None = None,
    ):
        if config.manifests is None:
            raise ValueError("ManifestSource reads a manifests folder; this configuration names none")
        self.config = config
        self.store = store
        self.folder = config.manifests
        self._reactor = reactor
        self._poll_interval = poll_interval
        self._worker = worker or _in_thread(reactor)
        self._seen: Mapping[str, Seen] = {}
        self._merged = Merged()
        self._applied: dict[Key, CacheObject] = {}
        self._skipped: Mapping[str, Skip] = {}
        self._waiters: list[defer.Deferred] = []
        self._has_synced = False
        self._folder_error: str | None = None
        #: A pass is under way (in the worker, or writing to the Store).
        self._busy = False
        self._stopped = False
        #: A pass failed before the Store matched the folder: the next one merges again.
        self._unapplied = False
        self._last_sync = 0.0
        self._last_pass: float | None = None
        self._started = 0.0
        self._loop = LoopingCall(self.poll)
        self._loop.clock = reactor

    # -- public ------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._has_synced

    @property
    def synced(self) -> defer.Deferred:
        """Fires once the first load of the folder is in the Store (a new Deferred each time)."""
        if self._has_synced:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def synced_for(self, kind: str) -> defer.Deferred:
        """As `synced`: every kind is loaded at once."""
        if kind not in KINDS:
            raise ValueError(f"{kind} is not a kind the cache holds; kinds: {', '.join(KINDS)}")
        return self.synced

    @property
    def last_sync(self) -> float:
        """Wall-clock time of the latest pass that read every file (0 before any).

        It stops advancing while the folder, or a file in it, cannot be read
        or parsed.
        """
        return self._last_sync

    @property
    def stale(self) -> bool:
        """True once no pass has finished (listed the folder, applied what changed) for `stale_after`."""
        since = self._last_pass if self._last_pass is not None else self._started
        return self._loop.running and self._reactor.seconds() - since > self.config.manifest_limits.stale_after

    @property
    def skipped(self) -> Mapping[str, Skip]:
        """The folder's entries not read as of the latest pass, by path."""
        return self._skipped

    def start(self) -> None:
        if self._loop.running:
            raise RuntimeError("ManifestSource.start() was called twice")
        log.info("reading manifests from %s every %.2f seconds", self.folder, self._poll_interval)
        self._started = self._reactor.seconds()
        self._loop.start(self._poll_interval, now=True)

    def stop(self) -> defer.Deferred:
        """Stop polling; a pass under way in the worker ends without touching the Store."""
        self._stopped = True
        if self._loop.running:
            self._loop.stop()
        return defer.succeed(None)

    def poll(self) -> None:
        """Start a pass over the folder, unless one is under way: one iteration of the loop."""
        if self._busy or self._stopped:
            return
        self._busy = True
        _pause_collector()
        started = self._reactor.seconds()
        force = self._unapplied or not self._has_synced
        # The worker reads _seen, _merged and _applied; nothing changes them
        # until its result is back, since one pass runs at a time.
        d = self._worker(scan, self.folder, self.config, self._seen, self._merged, self._applied, started, force)
        d.addCallback(self._scanned, started)
        d.addErrback(self._failed)

    # -- one pass, back on the reactor -------------------------------------------------

    def _failed(self, failure) -> None:
        self._end_pass()
        self._unapplied = True
        # A bug must not end the polling: the last good objects keep serving.
        log.error(
            "manifests %s: reload failed; the last good objects keep serving: %s",
            self.folder, failure.getTraceback(),
        )

    def _scanned(self, result: Scan, started: float) -> defer.Deferred | None:
        if self._stopped:
            self._end_pass()
            return None
        if result.folder_error is not None:
            if result.folder_error != self._folder_error:
                log.error(
                    "manifests %s: cannot read the folder (%s); the last good objects keep serving",
                    self.folder, result.folder_error,
                )
                self._folder_error = result.folder_error
            self._end_pass()
            return None
        if self._folder_error is not None:
            log.info("manifests %s: the folder is readable again", self.folder)
            self._folder_error = None
        self._seen = result.seen
        for parsed in result.parsed:
            self._report(parsed)
        self._report_skips(result.skipped)
        if result.merged is None:
            self._finish(started)
            return None
        merged = result.merged
        _log_bounded(
            logging.WARNING, [p for p in merged.duplicates if p not in self._merged.duplicates],
            PROBLEMS_PER_FILE, "... and %d more objects defined twice",
        )
        _log_bounded(
            logging.ERROR, [p for p in merged.rejected if p not in self._merged.rejected],
            PROBLEMS_PER_FILE, "... and %d more Services without cluster IPs",
        )
        self._report_allocations(merged)
        self._merged = merged
        self._unapplied = True
        d = self._apply(result.puts, result.deletes)
        d.addCallback(lambda _: self._applied_all(result, started))
        return d

    def _applied_all(self, result: Scan, started: float) -> None:
        self._unapplied = False
        log.info(
            "manifests %s: %d files (%d changed), %d objects: %d put, %d deleted in %.3f seconds",
            self.folder, len(result.seen), result.changed, len(result.merged.objects),
            len(result.puts), len(result.deletes), self._reactor.seconds() - started,
        )
        self._finish(started, changed=True)

    def _finish(self, started: float, changed: bool = False) -> None:
        self._end_pass(settle=changed)
        now = self._reactor.seconds()
        self._last_pass = now
        if all(seen.parsed.readable for seen in self._seen.values()):
            self._last_sync = now
        if not self._has_synced:
            self._has_synced = True
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def _apply(self, puts, deletes) -> defer.Deferred:
        """Write the difference, a slice of APPLY_SLICE_SECONDS per reactor turn."""
        done = defer.Deferred()
        writes = itertools.chain(puts, ((key, None) for key in deletes))

        def step() -> None:
            if self._stopped:
                self._end_pass()
                return
            deadline = time.perf_counter() + APPLY_SLICE_SECONDS
            try:
                for count, (key, obj) in enumerate(writes, 1):
                    # _applied follows each write, so that a reader failing in
                    # the middle leaves it true to what the Store holds.
                    if obj is not None:
                        self._applied[key] = obj
                        self.store.put(obj)
                    else:
                        del self._applied[key]
                        self.store.delete(*key)
                    if count % 64 == 0 and time.perf_counter() > deadline:
                        self._reactor.callLater(0, step)
                        return
            except Exception:
                self._end_pass()
                log.exception("manifests %s: reload failed; the last good objects keep serving", self.folder)
                return
            done.callback(None)

        step()
        return done

    def _end_pass(self, settle: bool = False) -> None:
        if self._busy:
            self._busy = False
            _resume_collector(settle)

    # -- logging --------------------------------------------------------------------

    @staticmethod
    def _report(parsed: ParsedFile) -> None:
        lines: list[str] = []
        for problem in parsed.errors:
            if not parsed.readable and parsed.entries:
                lines.append(f"{problem}; the {len(parsed.entries)} objects it held before keep serving")
            else:
                lines.append(str(problem))
        _log_bounded(logging.ERROR, lines, PROBLEMS_PER_FILE, f"... and %d more problems in {parsed.path}")
        if log.isEnabledFor(logging.DEBUG):
            for problem in parsed.ignored:
                log.debug("%s", problem)

    def _report_skips(self, skipped: Mapping[str, Skip]) -> None:
        # Problems a parse found were logged with the file; these are the
        # entries that were never parsed.
        for path, skip in skipped.items():
            if skip.reason in ("not_regular", "unreadable", "too_large") and self._skipped.get(path) != skip:
                log.warning("%s", skip)
        self._skipped = skipped

    def _report_allocations(self, merged: Merged) -> None:
        by_file: dict[str, list[str]] = {}
        for allocation in merged.allocations:
            log.debug("%s", allocation)
            s = allocation.service
            by_file.setdefault(allocation.path, []).append(f"{s.namespace}/{s.name} {', '.join(s.cluster_ips)}")
        for path, named in by_file.items():
            more = f" and {len(named) - ALLOCATIONS_PER_LINE} more" if len(named) > ALLOCATIONS_PER_LINE else ""
            log.info(
                "%s: allocated cluster IPs to %d Service%s: %s%s",
                path, len(named), "" if len(named) == 1 else "s", "; ".join(named[:ALLOCATIONS_PER_LINE]), more,
            )

