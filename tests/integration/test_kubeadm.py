"""kubeadm's default Corefile, unchanged, in both its forms, run as a Pod would run it.

The Corefile fixes its ports (DNS 53, health 8080, ready 8181, metrics
9153), reads the API server from the Pod's service account and forwards to
the nameservers of /etc/resolv.conf. So each test runs `python -m discovery`
in a sandbox (this test runs as root):

- a fresh network namespace with its loopback up, where those ports are
  free whatever else runs on the machine. The fake API server (HTTPS, bearer
  token) and a scripted upstream are started inside it too, and the test's
  clients reach into it, by switching this thread into the namespace while a
  socket is made (`NetworkNamespace.entered`);
- a mount namespace where the service account's token and CA sit at
  /var/run/secrets/kubernetes.io/serviceaccount and /etc/resolv.conf names
  the test's upstream. KUBERNETES_SERVICE_HOST and _PORT point at the fake
  API server, as the kubelet sets them.

Nothing outside the sandbox changes: the mounts vanish with the process, the
network namespace with its last file descriptor.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import socket
import struct
import threading

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from tests.fakeapi import FakeApiServer
from tests.fakeapi.objects import endpoint_slice, namespace, service
from tests.fakeapi.tls import make_pki
from tests.integration.live import WayfinderProcess, ask, http_get, poll_until, scrape

pytestmark = pytest.mark.slow

KUBEADM_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
#: The current kubeadm form: cluster names are never cached.
KUBEADM_COREFILE_CURRENT = KUBEADM_COREFILE.replace(
    "    cache 30\n",
    "    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n",
)

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


class _Upstream(protocol.DatagramProtocol):
    """The nameserver of the sandbox's resolv.conf: OUTSIDE_NAME has OUTSIDE_ADDRESS, nothing else exists."""

    def datagramReceived(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        if question.name == dns.name.from_text(OUTSIDE_NAME) and question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(OUTSIDE_NAME, 300, "IN", "A", OUTSIDE_ADDRESS))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.write(response.to_wire(), addr)


def _listen_upstream(reactor):
    """UDP 127.0.0.2:53 with SO_REUSEADDR, so that Wayfinder's *:53 can bind too (the kernel delivers to the exact match)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((UPSTREAM, 53))
        sock.setblocking(False)
        return reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET, _Upstream())
    finally:
        # The reactor holds its own duplicate of the descriptor.
        sock.close()


# --- the sandbox ----------------------------------------------------------------------------------


class Sandbox:
    """A network namespace holding the fake API server and the upstream, and Wayfinder run as a Pod in it."""

    def __init__(self, directory, nameserver: str):
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
        with self.namespace.entered():
            self.api.start()
            self.upstream = _listen_upstream(reactor)
        self.process: WayfinderProcess | None = None

    def run(self, corefile_text: str) -> WayfinderProcess:
        corefile = self.directory / "Corefile"
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

    def ask(self, name: str, rdtype: str = "A"):
        return self.within(ask, reactor, ("127.0.0.1", 53), name, rdtype)

    def close(self) -> None:
        if self.process is not None:
            pytest_twisted.blockon(self.process.kill())
        pytest_twisted.blockon(self.api.stop())
        pytest_twisted.blockon(self.upstream.stopListening())
        self.namespace.close()


@pytest.fixture
def sandbox(tmp_path):
    made = []

    def make(nameserver: str = UPSTREAM) -> Sandbox:
        made.append(Sandbox(tmp_path, nameserver))
        return made[-1]

    yield make
    for box in made:
        box.close()


def addresses(response) -> list[str]:
    return sorted(rdata.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for rdata in rrset)


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("corefile", [KUBEADM_COREFILE, KUBEADM_COREFILE_CURRENT], ids=["cache-30", "cache-30-disable-cluster"])
@pytest_twisted.inlineCallbacks
def test_the_kubeadm_corefile_answers_cluster_and_outside_names(sandbox, corefile):
    """Unchanged, it becomes ready on :8181 and answers a Service, its PTR and an outside name, with health on :8080 and metrics on :9153."""
    box = sandbox()
    child = box.run(corefile)
    ready = yield poll_until(reactor, lambda: box.get("http://127.0.0.1:8181/ready"),
                             lambda result: isinstance(result, tuple) and result[0] == 200, timeout=30)
    assert ready == (200, "OK")
    cluster_ip = box.api.cluster.get("services", "default", "web")["spec"]["clusterIP"]

    web = yield box.ask("web.default.svc.cluster.local.")
    assert web.rcode() == dns.rcode.NOERROR and addresses(web) == [cluster_ip], child.log
    reverse = yield box.ask(dns.reversename.from_address(cluster_ip).to_text(), "PTR")
    assert [rdata.target.to_text() for rrset in reverse.answer for rdata in rrset] == ["web.default.svc.cluster.local."]
    outside = yield box.ask(OUTSIDE_NAME)
    assert outside.rcode() == dns.rcode.NOERROR and addresses(outside) == [OUTSIDE_ADDRESS], child.log

    health = yield box.get("http://127.0.0.1:8080/health")
    assert health == (200, "OK")
    scraped = yield box.within(scrape, reactor, "http://127.0.0.1:9153/metrics")
    # The loop plugin's HINFO probe counts too, under type "other".
    assert scraped.value("coredns_dns_requests_total", server="dns://:53", zone=".", type="A") == 2
    assert scraped.value("coredns_dns_requests_total", server="dns://:53", zone=".", type="PTR") == 1
    assert scraped.value("coredns_forward_max_concurrent_rejects_total") == 0


@pytest_twisted.inlineCallbacks
def test_a_forward_to_itself_stops_with_the_loop_plugins_message(sandbox):
    """With resolv.conf naming 127.0.0.1 (itself), the kubeadm Corefile exits 1 with CoreDNS's loop message."""
    box = sandbox(nameserver="127.0.0.1")
    child = box.run(KUBEADM_COREFILE)
    line = yield child.wait_for(
        r'^\[FATAL\] plugin/loop: Loop \(127\.0\.0\.1:\d+ -> :53\) detected for zone "\.", '
        r'see https://coredns\.io/plugins/loop#troubleshooting\. Query: "HINFO \d+\.\d+\."$',
        timeout=30,
    )
    assert line
    code = yield child.ended
    assert code == 1


@pytest_twisted.inlineCallbacks
def test_the_loop_probe_goes_to_the_blocks_own_bind_address(sandbox):
    """A block bound to 127.0.0.4 and 127.0.0.5 only (not 127.0.0.1) still finds its own loop: the probe goes to the first bind address, as CoreDNS's ListenHosts[0]."""
    box = sandbox()
    child = box.run(".:53 {\n    bind 127.0.0.4 127.0.0.5\n    loop\n    forward . 127.0.0.4\n}\n")
    yield child.wait_for(
        r'^\[FATAL\] plugin/loop: Loop \([\d.]+:\d+ -> 127\.0\.0\.4:53\) detected for zone "\.", ',
        timeout=30,
    )
    code = yield child.ended
    assert code == 1
