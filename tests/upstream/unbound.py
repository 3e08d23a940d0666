"""Debian's unbound serving DNS over TLS (RFC 7858), as a child process.

It answers from local data only, so that it never reaches out to the
Internet: `www.example.test.` is A 192.0.2.10 (or the records it is given)
and every other name, `. IN NS` (the health probe) included, is answered at
once from the static local zone `.`. Only TLS is served on its port
(`tls-port`), with the certificate and key handed to it, so a plain DNS
query there gets nothing. It binds one address, 127.0.0.1 unless told
otherwise. No root trust anchor, no remote control, no privilege drop or
chroot: it runs as the test's user, in the foreground (``-d``), logging to
stderr.

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
    interface: {host}@{port}
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
    access-control: 0.0.0.0/0 allow
    local-zone: "." static
{local_data}remote-control:
    control-enable: no
"""

#: What it answers unless told otherwise.
LOCAL_DATA = ("www.example.test. 300 IN A 192.0.2.10",)


class UnboundTLSServer(Daemon):
    """unbound answering DNS over TLS with cert and key (PEM file paths) on host:port.

    By default on 127.0.0.1 and a free port, answering LOCAL_DATA (records
    in zone-file form). `prefix` runs it through another command, such as
    nsenter into a sandbox's network namespace where host is an address.
    """

    program = "unbound"
    package = "unbound"
    ready_markers = (b"start of service",)

    def __init__(self, reactor, cert: str, key: str, *, host: str = "127.0.0.1", port: int | None = None,
                 local_data: tuple[str, ...] = LOCAL_DATA, prefix: tuple[str, ...] = ()):
        super().__init__(reactor, tempfile.mkdtemp(prefix="unbound"))
        self.host = host
        self.port = port if port is not None else free_port()
        self.prefix = prefix
        self.config = os.path.join(self.directory, "unbound.conf")
        records = "".join(f'    local-data: "{record}"\n' for record in local_data)
        with open(self.config, "w") as f:
            f.write(CONFIG.format(host=host, port=self.port, directory=self.directory, cert=cert, key=key,
                                  local_data=records))

    @property
    def address(self) -> UpstreamAddress:
        return UpstreamAddress(self.host, self.port, "tls")

    def arguments(self) -> list[str]:
        # -d: stay in the foreground; -p: no pidfile.
        return ["-d", "-p", "-c", self.config]
