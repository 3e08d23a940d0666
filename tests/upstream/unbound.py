"""Debian's unbound serving DNS over TLS (RFC 7858) on 127.0.0.1, as a child process.

It answers from local data only, so that it never reaches out to the
Internet: `www.example.test.` is A 192.0.2.10 and every other name,
`. IN NS` (the health probe) included, is answered at once from the static
local zone `.`. Only TLS is served on its port (`tls-port`), with the
certificate and key handed to it, so a plain DNS query there gets nothing.
No root trust anchor, no remote control, no privilege drop or chroot:
it runs as the test's user, in the foreground (``-d``), logging to stderr.

`start()` fires once unbound logs that it serves; `kill()` ends it with
SIGKILL, as a crash would; `start()` again brings it back on the same port.
"""

from __future__ import annotations

import os
import tempfile

from discovery.dns.upstream import UpstreamAddress
from tests.upstream.daemon import Daemon
from tests.upstream.knot import free_port

CONFIG = """\
server:
    interface: 127.0.0.1@{port}
    tls-port: {port}
    tls-service-key: "{key}"
    tls-service-pem: "{cert}"
    do-ip6: no
    do-udp: no
    num-threads: 1
    so-reuseport: no
    username: ""
    chroot: ""
    directory: "{directory}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    module-config: "iterator"
    do-not-query-localhost: yes
    access-control: 127.0.0.0/8 allow
    local-zone: "." static
    local-data: "www.example.test. 300 IN A 192.0.2.10"
remote-control:
    control-enable: no
"""

class UnboundTLSServer(Daemon):
    """unbound answering DNS over TLS on 127.0.0.1 with cert and key (PEM file paths)."""

    program = "unbound"
    package = "unbound"
    ready_markers = (b"start of service",)

    def __init__(self, reactor, cert: str, key: str):
        super().__init__(reactor, tempfile.mkdtemp(prefix="unbound"))
        self.port = free_port()
        self.config = os.path.join(self.directory, "unbound.conf")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(port=self.port, directory=self.directory, cert=cert, key=key))

    @property
    def address(self) -> UpstreamAddress:
        return UpstreamAddress("127.0.0.1", self.port, "tls")

    def arguments(self) -> list[str]:
        # -d: stay in the foreground; -p: no pidfile.
        return ["-d", "-p", "-c", self.config]
