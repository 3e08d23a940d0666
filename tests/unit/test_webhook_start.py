"""The webhook never holds DNS back: a certificate or port it cannot use is reported and retried.

WebhookServer runs on twisted's MemoryReactorClock here: listenTCP records
the factory (or fails on demand), and time moves only when the test says.
Real sockets and the whole process: tests/integration/test_webhook_certificate.py.
"""

from __future__ import annotations

import datetime
import logging

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock

from discovery.cache.store import Store
from discovery.certs import issue_serving_certificate, make_ca
from webhook.config import CertificateFiles, WebhookConfig
from webhook.server import RETRY_FIRST, RETRY_MAX, WebhookServer

ADDRESS = "127.0.0.1:8443"


class RefusingReactor(MemoryReactorClock):
    """A MemoryReactorClock whose listenTCP fails while `refuse` is set, as when the port is taken."""

    refuse = False

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if self.refuse:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        return super().listenTCP(port, factory, backlog, interface)


def write_pair(directory) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = issue_serving_certificate(make_ca(now, 2), ["localhost"], now, 1)
    (directory / "tls.crt").write_bytes(leaf.certificate_pem())
    (directory / "tls.key").write_bytes(leaf.key_pem())


@pytest.fixture
def reactor():
    return RefusingReactor()


@pytest.fixture
def registry():
    return CollectorRegistry()


def server_for(directory, reactor, registry) -> WebhookServer:
    tls = CertificateFiles(str(directory / "tls.crt"), str(directory / "tls.key"))
    return WebhookServer(WebhookConfig(tls=tls, host="127.0.0.1", port=8443), Store(), reactor, registry=registry)


def sample(registry, name: str) -> float | None:
    return registry.get_sample_value(name, {"address": ADDRESS})


def test_start_succeeds_without_a_certificate_and_does_not_listen(tmp_path, reactor, registry):
    """A missing certificate does not fail start(): nothing listens, serving is 0, one certificate error counted."""
    server = server_for(tmp_path, reactor, registry)
    failures = []
    server.start().addErrback(failures.append)
    assert failures == []
    assert not server.serving and reactor.tcpServers == []
    assert sample(registry, "wayfinder_webhook_serving") == 0
    assert sample(registry, "wayfinder_webhook_certificate_errors_total") == 1


def test_the_webhook_listens_once_the_certificate_appears(tmp_path, reactor, registry):
    """The retry after the certificate is written listens, sets serving to 1 and the expiry gauge."""
    server = server_for(tmp_path, reactor, registry)
    server.start()
    write_pair(tmp_path)
    reactor.advance(RETRY_FIRST)
    assert server.serving and len(reactor.tcpServers) == 1
    assert sample(registry, "wayfinder_webhook_serving") == 1
    assert sample(registry, "wayfinder_webhook_certificate_expiry_timestamp_seconds") > reactor.seconds()


def test_a_corrupt_certificate_is_retried_like_a_missing_one(tmp_path, reactor, registry):
    """Half-written PEM files are counted and retried; the good pair that replaces them is served."""
    (tmp_path / "tls.crt").write_text("-----BEGIN CERTIFICATE-----\nhalf")
    (tmp_path / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\nhalf")
    server = server_for(tmp_path, reactor, registry)
    server.start()
    reactor.advance(RETRY_FIRST)
    assert not server.serving
    assert sample(registry, "wayfinder_webhook_certificate_errors_total") == 2
    write_pair(tmp_path)
    reactor.advance(2 * RETRY_FIRST)
    assert server.serving


def test_retries_back_off_to_the_maximum(tmp_path, reactor, registry):
    """The waits between attempts double from RETRY_FIRST and stop growing at RETRY_MAX."""
    server = server_for(tmp_path, reactor, registry)
    server.start()
    waits = []
    for _ in range(7):
        (call,) = reactor.getDelayedCalls()
        waits.append(call.getTime() - reactor.seconds())
        reactor.advance(waits[-1])
    assert waits == [1.0, 2.0, 4.0, 8.0, RETRY_MAX, RETRY_MAX, RETRY_MAX]


def test_a_port_in_use_is_retried_with_the_certificate_kept(tmp_path, reactor, registry):
    """A port that cannot be bound is counted as a listen error and tried again; the certificate is read once."""
    write_pair(tmp_path)
    reactor.refuse = True
    server = server_for(tmp_path, reactor, registry)
    server.start()
    assert not server.serving
    assert sample(registry, "wayfinder_webhook_listen_errors_total") == 1
    assert sample(registry, "wayfinder_webhook_certificate_errors_total") == 0
    (tmp_path / "tls.crt").unlink()
    reactor.refuse = False
    reactor.advance(RETRY_FIRST)
    assert server.serving


def test_the_same_reason_is_logged_once(tmp_path, reactor, registry, caplog):
    """Retrying for the same reason logs nothing new; the line names the file and says DNS is unaffected."""
    server = server_for(tmp_path, reactor, registry)
    with caplog.at_level(logging.WARNING, logger="wayfinder.webhook"):
        server.start()
        reactor.advance(RETRY_FIRST)
        reactor.advance(2 * RETRY_FIRST)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "tls.crt" in lines[0] and "DNS is unaffected" in lines[0]


def test_stop_ends_the_retries(tmp_path, reactor, registry):
    """A webhook stopped while retrying leaves no timer behind."""
    server = server_for(tmp_path, reactor, registry)
    server.start()
    server.stop()
    assert reactor.getDelayedCalls() == []


def test_a_rotated_pair_that_does_not_load_is_counted(tmp_path, reactor, registry):
    """While serving, a replaced certificate that does not load counts one certificate error and the old one stays."""
    write_pair(tmp_path)
    server = server_for(tmp_path, reactor, registry)
    server.start()
    (tmp_path / "tls.crt").write_text("-----BEGIN CERTIFICATE-----\nhalf")
    server._certificate.refresh()
    assert sample(registry, "wayfinder_webhook_certificate_errors_total") == 1
    assert server.serving
