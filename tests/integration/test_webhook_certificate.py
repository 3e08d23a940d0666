"""DNS never depends on the webhook: the base overlay's Corefile with its certificate missing, then corrupt, then restored.

The Corefile of manifests/base runs as a Pod runs it, in the sandbox of
test_kubeadm.py (its own network namespace, so ports 53, 8080, 8181, 9153
and 8443 are free; the fake API server behind the service account), with
one change: the webhook's certificate is read from the test's folder
instead of the Secret volume at /etc/wayfinder/tls. Throughout, /ready is
200 and DNS answers; the webhook listens once the certificate loads.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl

import dns.rcode
import pytest
import pytest_twisted
from twisted.internet import reactor

from discovery.certs import issue_serving_certificate, make_ca, service_dns_names
from tests.integration.live import ROOT, scrape
from tests.integration.test_kubeadm import addresses, poll_until, sandbox  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow

BASE_COREFILE = ROOT / "manifests" / "base" / "Corefile"
SECRET_VOLUME = "/etc/wayfinder/tls/"
SERVICE_NAME = "wayfinder-webhook.kube-system.svc"
WEBHOOK = ":8443"


def write_atomically(path, data: bytes) -> None:
    """Write aside and rename, as the kubelet swaps a Secret volume's files."""
    aside = path.with_name(f".{path.name}.new")
    aside.write_bytes(data)
    os.replace(aside, path)


def healthz(ca_pem: bytes) -> tuple[str, str]:
    """GET /healthz on the webhook over TLS, trusting ca_pem; (status line, body). Blocking."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with socket.create_connection(("127.0.0.1", 8443), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=SERVICE_NAME) as tls:
            tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {SERVICE_NAME}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


@pytest_twisted.inlineCallbacks
def test_dns_answers_while_the_webhook_certificate_is_missing_corrupt_then_restored(sandbox, tmp_path):  # noqa: F811
    """/ready stays 200 and a Service resolves in every phase; wayfinder_webhook_serving is 0, then 1 once the pair loads."""
    tls = tmp_path / "tls"
    tls.mkdir()
    corefile = BASE_COREFILE.read_text()
    assert SECRET_VOLUME in corefile
    box = sandbox()
    child = box.run(corefile.replace(SECRET_VOLUME, f"{tls}/"))

    def dns_works():
        @pytest_twisted.inlineCallbacks
        def check():
            ready = yield poll_until(reactor, lambda: box.get("http://127.0.0.1:8181/ready"),
                                     lambda result: isinstance(result, tuple) and result[0] == 200, timeout=30)
            assert ready == (200, "OK")
            web = yield box.ask("web.default.svc.cluster.local.")
            assert web.rcode() == dns.rcode.NOERROR and addresses(web), child.log
        return check()

    def serving():
        return box.within(scrape, reactor, "http://127.0.0.1:9153/metrics").addCallback(
            lambda scraped: scraped.value("wayfinder_webhook_serving", address=WEBHOOK)
        )

    # Missing: the Secret is not there yet.
    yield child.wait_for(rf"not serving on {WEBHOOK} \(DNS is unaffected\): cannot read {tls}/tls\.crt", timeout=30)
    yield dns_works()
    assert (yield serving()) == 0

    # Corrupt: half-written files.
    mark = len(child.lines)
    write_atomically(tls / "tls.crt", b"-----BEGIN CERTIFICATE-----\nhalf")
    write_atomically(tls / "tls.key", b"-----BEGIN PRIVATE KEY-----\nhalf")
    yield child.wait_for(r"not serving on .*tls\.crt: not a PEM certificate", after=mark, timeout=30)
    yield dns_works()
    assert (yield serving()) == 0

    # Restored: a good pair for the webhook Service's names.
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = make_ca(now, 2)
    leaf = issue_serving_certificate(ca, list(service_dns_names("wayfinder-webhook", "kube-system")), now, 1)
    mark = len(child.lines)
    write_atomically(tls / "tls.key", leaf.key_pem())
    write_atomically(tls / "tls.crt", leaf.certificate_pem())
    yield child.wait_for(r"listening on https://\S+:8443/mutate", after=mark, timeout=30)
    yield dns_works()
    assert (yield serving()) == 1
    status, body = box.within(healthz, ca.certificate_pem())
    assert status.split()[1] == "200" and body == "ok\n"
    assert not child.ended.called
