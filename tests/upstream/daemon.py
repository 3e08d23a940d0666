"""A DNS server from Debian run as a child process of the test, on 127.0.0.1.

`start()` fires once the server has logged every line that says it serves;
`kill()` ends it with SIGKILL, as a crash would; `start()` again brings it
back with the same configuration (and so on the same port); `close()` kills
it and removes its directory.
"""

from __future__ import annotations

import os
import shutil

from twisted.internet import defer, protocol

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def program_path(name: str) -> str | None:
    """Where a server program is installed (sbin included, for non-root users)."""
    return shutil.which(name, path=_SEARCH_PATH)


class _Watch(protocol.ProcessProtocol):
    def __init__(self, program: str, ready_markers: tuple[bytes, ...]):
        self.program = program
        self.markers = ready_markers
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.log = b""

    def errReceived(self, data: bytes) -> None:
        self.log += data
        if not self.ready.called and all(marker in self.log for marker in self.markers):
            self.ready.callback(None)

    def processEnded(self, reason) -> None:
        if not self.ready.called:
            self.ready.errback(
                RuntimeError(f"{self.program} exited before it served:\n{self.log.decode(errors='replace')}")
            )
        self.ended.callback(None)


class Daemon:
    """One server program, its arguments, the stderr lines that mean it serves, and its directory."""

    #: The Debian program and package (for the error when it is missing).
    program = ""
    package = ""
    ready_markers: tuple[bytes, ...] = ()
    #: A command the program runs through (nsenter into a namespace, say).
    prefix: tuple[str, ...] = ()

    def __init__(self, reactor, directory: str):
        self.reactor = reactor
        self.directory = directory
        self._process = None
        self._watch: _Watch | None = None

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20.0) -> defer.Deferred:
        path = program_path(self.program)
        if path is None:
            raise RuntimeError(f"{self.program} is not installed (tests/run installs Debian's {self.package} package)")
        self._watch = _Watch(self.program, self.ready_markers)
        argv = [*self.prefix, path, *self.arguments()]
        self._process = self.reactor.spawnProcess(self._watch, argv[0], argv, env=dict(os.environ))
        return self._watch.ready.addTimeout(timeout, self.reactor)

    def kill(self) -> defer.Deferred:
        """SIGKILL, like a crash; fires once the process is gone."""
        if self._watch is None or self._watch.ended.called:
            return defer.succeed(None)
        self._process.signalProcess("KILL")
        return self._watch.ended

    def close(self) -> defer.Deferred:
        d = self.kill()
        return d.addBoth(lambda _: shutil.rmtree(self.directory, ignore_errors=True))
