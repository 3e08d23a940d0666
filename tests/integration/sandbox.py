"""Wayfinder run as a Pod would run it, with its real ports and paths, in a sandbox.

Corefiles from real clusters fix their ports (DNS 53 or 5353, health 8080,
ready 8181, metrics 9153), read the API server from the Pod's service
account and forward to the nameservers of /etc/resolv.conf or to fixed
addresses. A `Sandbox` runs `python -m discovery` (this test runs as root):

- in a fresh network namespace with its loopback up, where those ports are
  free whatever else runs on the machine. The fake API server (HTTPS, bearer
  token) and scripted upstreams are started inside it too, on loopback
  addresses the namespace is given (127.0.0.2, or an upstream's own address
  such as 172.16.0.1), and the test's clients reach into it by switching
  this thread into the namespace while a socket is made
  (`NetworkNamespace.entered`). A DNS-over-TLS upstream is Debian's unbound,
  run inside the namespace;
- in a mount namespace where the service account's token and CA sit at
  /var/run/secrets/kubernetes.io/serviceaccount and /etc/resolv.conf names
  the test's upstream. KUBERNETES_SERVICE_HOST and _PORT point at the fake
  API server, as the kubelet sets them.

Nothing outside the sandbox changes: the mounts vanish with the process, the
network namespace (and the addresses given to it) with its last file
descriptor.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import threading
from typing import Mapping

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from tests.fakeapi import FakeApiServer
from tests.fakeapi.objects import endpoint_slice, namespace, service
from tests.fakeapi.tls import make_pki
from tests.integration.live import WayfinderProcess, ask, http_get
from tests.upstream.unbound import UnboundTLSServer

__all__ = [
    "TOKEN",
    "UPSTREAM",
    "OUTSIDE_NAME",
    "OUTSIDE_ADDRESS",
    "NetworkNamespace",
    "Sandbox",
    "sandbox",
]


TOKEN = "sandbox-service-account-token"
#: The scripted upstream's address: loopback, port 53, beside Wayfinder's own :53.
UPSTREAM = "127.0.0.2"
OUTSIDE_NAME = "www.example.test."
OUTSIDE_ADDRESS = "192.0.2.10"

# Sets up the Pod's files in a private mount namespace, then becomes the
# command. Arguments: the service-account folder, the resolv.conf, the command.
SANDBOX = r"""
set -e
secrets=$1 resolv=$2
shift 2
resolv_target=$(realpath -m /etc/resolv.conf)
runtime=$(realpath -m /var/run)
mount -t tmpfs -o mode=0755 wayfinder-sandbox "$runtime"
mkdir -p "$runtime/secrets/kubernetes.io/serviceaccount"
mount --bind "$secrets" "$runtime/secrets/kubernetes.io/serviceaccount"
if [ ! -e "$resolv_target" ]; then
    mkdir -p "$(dirname "$resolv_target")"
    : > "$resolv_target"
fi
mount --bind "$resolv" "$resolv_target"
exec "$@"
"""

# --- the network namespace --------------------------------------------------------------------

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(probe, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


class NetworkNamespace:
    """A new network namespace with loopback up, held open by a file descriptor."""

    def __init__(self):
        made: dict = {}

        def make() -> None:
            # unshare() moves only the calling thread: a thread of its own,
            # which ends, leaves the test's threads where they were.
            try:
                _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
                made["fd"] = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
                _loopback_up()
            except OSError as error:
                made["error"] = error

        maker = threading.Thread(target=make)
        maker.start()
        maker.join()
        if "error" in made:
            raise made["error"]
        self.fd = made["fd"]

    @property
    def path(self) -> str:
        """A path naming the namespace, for nsenter --net."""
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    @contextlib.contextmanager
    def entered(self):
        """Sockets made in this block (by this thread) live in the namespace; they stay there after it."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(_libc.setns(self.fd, _CLONE_NEWNET), "setns")
            try:
                yield
            finally:
                _check(_libc.setns(home, _CLONE_NEWNET), "setns back")
        finally:
            os.close(home)

    def close(self) -> None:
        os.close(self.fd)


class ScriptedUpstream(protocol.DatagramProtocol):
    """A nameserver that knows a few A records (name -> address) and nothing else (NXDOMAIN)."""

    def __init__(self, answers: Mapping[str, str]):
        self.answers = {dns.name.from_text(name): address for name, address in answers.items()}

    def datagramReceived(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        address = self.answers.get(question.name)
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", address))
        self.transport.write(response.to_wire(), addr)


def _listen_upstream(reactor, host: str, port: int, answers: Mapping[str, str]):
    """UDP host:port with SO_REUSEADDR, so that Wayfinder's *:53 can bind too (the kernel delivers to the exact match)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
        return reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET, ScriptedUpstream(answers))
    finally:
        # The reactor holds its own duplicate of the descriptor.
        sock.close()


# --- the sandbox ----------------------------------------------------------------------------------


class Sandbox:
    """A network namespace holding the fake API server and the upstream, and Wayfinder run as a Pod in it."""

    def __init__(self, directory, nameserver: str, answers: Mapping[str, str] | None = None):
        self.namespace = NetworkNamespace()
        self.directory = directory
        pki_dir = directory / "pki"
        pki_dir.mkdir()
        pki = make_pki(str(pki_dir))
        self.api = FakeApiServer(reactor, tls=pki.server_tls(require_client_cert=False), token=TOKEN)
        cluster = self.api.cluster
        cluster.create(namespace("default"))
        cluster.create(namespace("kube-system"))
        cluster.create(service("web", "default"))
        cluster.create(endpoint_slice("web", "default", addresses=("10.1.0.1", "10.1.0.2")))
        self.secrets = directory / "serviceaccount"
        self.secrets.mkdir()
        (self.secrets / "token").write_text(TOKEN)
        (self.secrets / "namespace").write_text("kube-system")
        shutil.copy(pki.ca_cert, self.secrets / "ca.crt")
        self.resolv_conf = directory / "resolv.conf"
        self.resolv_conf.write_text(f"nameserver {nameserver}\n")
        self.upstreams = []
        self.daemons: list[UnboundTLSServer] = []
        with self.namespace.entered():
            self.api.start()
        # The nameserver of resolv.conf (when it is UPSTREAM): OUTSIDE_NAME, or `answers`.
        self.serve_upstream(UPSTREAM, 53, {OUTSIDE_NAME: OUTSIDE_ADDRESS} if answers is None else answers)
        self.process: WayfinderProcess | None = None

    def add_address(self, address: str) -> None:
        """Give the namespace's loopback another IPv4 address (an upstream's, say 172.16.0.1)."""
        subprocess.run(
            [shutil.which("nsenter"), f"--net={self.namespace.path}", "ip", "addr", "add", f"{address}/32", "dev", "lo"],
            check=True, capture_output=True,
        )

    def serve_upstream(self, host: str, port: int, answers: Mapping[str, str]) -> None:
        """A scripted nameserver on host:port inside the namespace (host is given to it unless on 127/8)."""
        if not host.startswith("127."):
            self.add_address(host)
        with self.namespace.entered():
            self.upstreams.append(_listen_upstream(reactor, host, port, answers))

    def serve_tls_upstream(self, host: str, port: int, cert: str, key: str, records: tuple[str, ...]):
        """unbound serving DNS over TLS on host:port inside the namespace; fires once it serves."""
        self.add_address(host)
        server = UnboundTLSServer(reactor, cert, key, host=host, port=port, local_data=records,
                                  prefix=(shutil.which("nsenter"), f"--net={self.namespace.path}"))
        self.daemons.append(server)
        return server.start()

    def run(self, corefile_text: str, corefile=None) -> WayfinderProcess:
        """Start Wayfinder on corefile_text, written to corefile (default: Corefile in the directory)."""
        corefile = corefile or self.directory / "Corefile"
        corefile.write_text(corefile_text)
        environment = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(self.api.port))
        prefix = [
            shutil.which("nsenter"), f"--net={self.namespace.path}",
            "unshare", "--mount", "--propagation", "private",
            "sh", "-c", SANDBOX, "sandbox", str(self.secrets), str(self.resolv_conf),
        ]
        self.process = WayfinderProcess.spawn(reactor, corefile, env=environment, prefix=prefix)
        return self.process

    def within(self, call, *args, **kwargs):
        """call(*args) with its sockets made inside the namespace (the clients of this test)."""
        with self.namespace.entered():
            return call(*args, **kwargs)

    def get(self, url: str):
        return self.within(http_get, reactor, url)

    def ask(self, name: str, rdtype: str = "A", *, port: int = 53, rdclass: str = "IN"):
        return self.within(ask, reactor, ("127.0.0.1", port), name, rdtype, rdclass=rdclass)

    def close(self) -> None:
        if self.process is not None:
            pytest_twisted.blockon(self.process.kill())
        pytest_twisted.blockon(self.api.stop())
        for upstream in self.upstreams:
            pytest_twisted.blockon(upstream.stopListening())
        for daemon in self.daemons:
            pytest_twisted.blockon(daemon.close())
        self.namespace.close()


@pytest.fixture
def sandbox(tmp_path):
    """make(nameserver=UPSTREAM, answers=None) -> a Sandbox whose resolv.conf names nameserver; all are closed after the test."""
    made = []

    def make(nameserver: str = UPSTREAM, answers: Mapping[str, str] | None = None) -> Sandbox:
        made.append(Sandbox(tmp_path, nameserver, answers))
        return made[-1]

    yield make
    for box in made:
        box.close()
