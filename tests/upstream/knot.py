"""Debian's knotd, serving a small zone on 127.0.0.1, as a child process.

The zone `example.test.` holds `www` (A 192.0.2.10, TTL 300), `alias`
(a CNAME to www), `big` (forty A records: more than 512 bytes, so a UDP
answer without EDNS comes back truncated) and an SOA whose negative TTL is 60.
`start()` fires once knotd has logged that the zone is loaded and the server
runs; `kill()` ends it with SIGKILL, as a crash would; `start()` again brings
it back on the same port.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

from twisted.internet import defer, protocol

from discovery.dns.upstream import UpstreamAddress

ZONE = "example.test."
ZONE_TEXT = """\
$ORIGIN example.test.
$TTL 300
@     IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@     IN NS  ns
ns    IN A   127.0.0.1
www   IN A   192.0.2.10
alias IN CNAME www
""" + "".join(f"big   IN A   192.0.2.{i}\n" for i in range(100, 140))

CONFIG = """\
server:
    listen: 127.0.0.1@{port}
    rundir: {directory}
log:
  - target: stderr
    any: info
database:
    storage: {directory}
template:
  - id: default
    storage: {directory}
zone:
  - domain: example.test
    file: example.test.zone
"""

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def knotd_path() -> str | None:
    return shutil.which("knotd", path=_SEARCH_PATH)


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP, right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


class _Knotd(protocol.ProcessProtocol):
    def __init__(self):
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.log = b""

    def errReceived(self, data: bytes) -> None:
        self.log += data
        if not self.ready.called and b"server started" in self.log and b"loaded, serial" in self.log:
            self.ready.callback(None)

    def processEnded(self, reason) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"knotd exited before it was ready:\n{self.log.decode(errors='replace')}"))
        self.ended.callback(None)


class KnotServer:
    def __init__(self, reactor):
        self.reactor = reactor
        # A short directory: knotd's control socket lives there (sun_path is 108 bytes).
        self.directory = tempfile.mkdtemp(prefix="knot")
        self.port = free_port()
        with open(os.path.join(self.directory, "example.test.zone"), "w") as f:
            f.write(ZONE_TEXT)
        with open(os.path.join(self.directory, "knot.conf"), "w") as f:
            f.write(CONFIG.format(port=self.port, directory=self.directory))
        self._process = None
        self._protocol: _Knotd | None = None

    @property
    def address(self) -> UpstreamAddress:
        return UpstreamAddress("127.0.0.1", self.port)

    def start(self, timeout: float = 20.0) -> defer.Deferred:
        knotd = knotd_path()
        if knotd is None:
            raise RuntimeError("knotd is not installed (tests/run installs Debian's knot package)")
        self._protocol = _Knotd()
        config = os.path.join(self.directory, "knot.conf")
        self._process = self.reactor.spawnProcess(self._protocol, knotd, [knotd, "-c", config], env=dict(os.environ))
        return self._protocol.ready.addTimeout(timeout, self.reactor)

    def kill(self) -> defer.Deferred:
        """SIGKILL, like a crash; fires once the process is gone."""
        if self._protocol is None or self._protocol.ended.called:
            return defer.succeed(None)
        self._process.signalProcess("KILL")
        return self._protocol.ended

    def close(self) -> defer.Deferred:
        d = self.kill()
        return d.addBoth(lambda _: shutil.rmtree(self.directory, ignore_errors=True))
