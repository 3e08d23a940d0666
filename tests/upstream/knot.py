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
import socket
import tempfile

from discovery.dns.upstream import UpstreamAddress
from tests.upstream.daemon import Daemon

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


class KnotServer(Daemon):
    program = "knotd"
    package = "knot"
    ready_markers = (b"server started", b"loaded, serial")

    def __init__(self, reactor):
        # A short directory: knotd's control socket lives there (sun_path is 108 bytes).
        super().__init__(reactor, tempfile.mkdtemp(prefix="knot"))
        self.port = free_port()
        with open(os.path.join(self.directory, "example.test.zone"), "w") as f:
            f.write(ZONE_TEXT)
        with open(os.path.join(self.directory, "knot.conf"), "w") as f:
            f.write(CONFIG.format(port=self.port, directory=self.directory))

    @property
    def address(self) -> UpstreamAddress:
        return UpstreamAddress("127.0.0.1", self.port)

    def arguments(self) -> list[str]:
        return ["-c", os.path.join(self.directory, "knot.conf")]
