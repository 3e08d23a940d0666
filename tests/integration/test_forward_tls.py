"""forward to a DNS-over-TLS upstream: Debian's unbound on 127.0.0.1, serving TLS only, started by the tests."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rrset
import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import defer, protocol, reactor, ssl

from discovery.dns.forward import ForwardConfig, ForwardError, ForwardPlugin
from discovery.dns.tls import TLSSettings
from discovery.dns.upstream import HealthCheck, UpstreamAddress, UpstreamError, send_probe
from tests.fakeapi.tls import make_pki
from tests.integration.dnsserver import addresses, dns_server, eventually  # noqa: F401 (fixture)
from tests.upstream.fake import FakeUpstream
from tests.upstream.requests import make_request
from tests.upstream.unbound import UnboundTLSServer


@pytest.fixture
def pki(tmp_path):
    """A CA and a server certificate for 127.0.0.1 and `localhost`."""
    return make_pki(str(tmp_path))


@pytest.fixture
def unbound(pki):
    server = UnboundTLSServer(reactor, pki.server_cert, pki.server_key)
    pytest_twisted.blockon(server.start())
    yield server
    pytest_twisted.blockon(server.close())


@pytest.fixture
def forwarders():
    started = []

    def make(upstream, **options):
        registry = CollectorRegistry()
        plugin = ForwardPlugin(ForwardConfig(upstreams=(upstream,), **options), reactor, registry=registry)
        plugin.registry = registry
        plugin.start()
        started.append(plugin)
        return plugin

    yield make
    for plugin in started:
        plugin.stop()


def trusting(pki, server_name: str = "localhost") -> TLSSettings:
    """TLS settings that trust the test CA, as `tls CA` and `tls_servername NAME` make them."""
    return TLSSettings.from_files(ca=pki.ca_cert, server_name=server_name)


def no_next(request):
    raise AssertionError("forward should answer every name")


def ask(plugin, request):
    return defer.maybeDeferred(plugin.serve, request, no_next).addTimeout(15, reactor)


def connections(plugin, upstream, outcome: str) -> float:
    """coredns_proxy_conn_cache_{hits,misses}_total for the upstream's TLS connections."""
    return plugin.registry.get_sample_value(
        f"coredns_proxy_conn_cache_{outcome}_total", {"proxy_name": "forward", "to": upstream.label, "proto": "tcp-tls"}
    ) or 0.0


@pytest_twisted.inlineCallbacks
def test_the_answer_arrives_over_tls(unbound, pki, forwarders):
    """A UDP client's question goes to unbound over TLS (its only transport there) and its answer comes back."""
    plugin = forwarders(unbound.address, tls=trusting(pki))
    response = yield ask(plugin, make_request("www.example.test.", qid=4242))
    assert response.rcode() == dns.rcode.NOERROR and addresses(response) == ["192.0.2.10"]
    assert response.id == 4242
    assert connections(plugin, unbound.address, "misses") == 1


@pytest_twisted.inlineCallbacks
def test_the_certificate_is_checked_against_the_ip_address_without_a_server_name(unbound, pki, forwarders):
    """Without tls_servername the upstream's certificate must name its IP address (this one does)."""
    plugin = forwarders(unbound.address, tls=trusting(pki, server_name=""))
    response = yield ask(plugin, make_request("www.example.test."))
    assert addresses(response) == ["192.0.2.10"]


@pytest_twisted.inlineCallbacks
def test_a_wrong_tls_servername_fails_the_health_check(unbound, pki):
    """The health probe goes over TLS with the same checks: a name the certificate lacks makes it fail."""
    wrong = trusting(pki, server_name="wrong.example").client_options(unbound.address)
    with pytest.raises(UpstreamError, match="TLS handshake failed"):
        yield send_probe(reactor, unbound.address, HealthCheck(), tls=wrong)


@pytest_twisted.inlineCallbacks
def test_the_right_tls_servername_passes_the_health_check(unbound, pki):
    """`. IN NS` over TLS to unbound, verified as localhost, is a healthy reply."""
    right = trusting(pki).client_options(unbound.address)
    yield send_probe(reactor, unbound.address, HealthCheck(), tls=right)


@pytest_twisted.inlineCallbacks
def test_a_wrong_tls_servername_fails_queries_and_marks_the_upstream_down(unbound, pki, forwarders):
    """With a name the certificate lacks nothing is forwarded, and the health probes that follow fail."""
    plugin = forwarders(unbound.address, tls=trusting(pki, server_name="wrong.example"),
                        health_check=HealthCheck(interval=0.05))
    failure = yield ask(plugin, make_request("www.example.test.")).addErrback(lambda f: f.value)
    assert isinstance(failure, ForwardError)
    (upstream,) = plugin.upstreams
    yield defer.ensureDeferred(eventually(lambda: upstream.down(plugin.config.max_fails)))


@pytest_twisted.inlineCallbacks
def test_an_untrusted_certificate_is_refused(unbound, forwarders, tmp_path_factory):
    """A CA that did not sign unbound's certificate fails the handshake, so the query fails."""
    other = make_pki(str(tmp_path_factory.mktemp("other")))
    plugin = forwarders(unbound.address, tls=TLSSettings.from_files(ca=other.ca_cert, server_name="localhost"))
    failure = yield ask(plugin, make_request("www.example.test.")).addErrback(lambda f: f.value)
    assert isinstance(failure, ForwardError) and "TLS handshake failed" in str(failure)


@pytest_twisted.inlineCallbacks
def test_the_tls_connection_is_reused(unbound, pki, forwarders):
    """A second query rides the first query's TLS connection: one miss, then a hit."""
    plugin = forwarders(unbound.address, tls=trusting(pki))
    yield ask(plugin, make_request("www.example.test."))
    yield ask(plugin, make_request("www.example.test.", proto="tcp"))
    assert (connections(plugin, unbound.address, "misses"), connections(plugin, unbound.address, "hits")) == (1, 1)


@pytest_twisted.inlineCallbacks
def test_a_restarted_upstream_is_reconnected(unbound, pki, forwarders):
    """After unbound dies and comes back, the dead TLS connection is dropped and a new one carries the answer."""
    plugin = forwarders(unbound.address, tls=trusting(pki))
    yield ask(plugin, make_request("www.example.test."))
    yield unbound.kill()
    yield unbound.start()
    back = yield ask(plugin, make_request("www.example.test."))
    assert back.rcode() == dns.rcode.NOERROR and addresses(back) == ["192.0.2.10"]
    assert connections(plugin, unbound.address, "misses") == 2
    again = yield ask(plugin, make_request("www.example.test."))
    assert addresses(again) == ["192.0.2.10"] and connections(plugin, unbound.address, "hits") == 1


@pytest_twisted.ensureDeferred
async def test_a_corefile_forwards_to_a_tls_upstream(unbound, pki, dns_server):
    """`forward . tls://127.0.0.1%localhost:PORT { tls CA }` in a Corefile: dig-like clients get unbound's answer."""
    server = await dns_server(
        f".:0 {{\n    bind 127.0.0.1\n    forward . tls://127.0.0.1%localhost:{unbound.port} {{\n"
        f"        tls {pki.ca_cert}\n    }}\n}}\n"
    )
    response = await server.query("www.example.test.")
    assert response.rcode() == dns.rcode.NOERROR and addresses(response) == ["192.0.2.10"]


def answer_www(query, proto):
    """A server that knows www.example.test (192.0.2.10)."""
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", "192.0.2.10"))
    return reply


@pytest.fixture
def client_cert_server(pki):
    """A DoT server on 127.0.0.1 that demands a client certificate signed by the test CA."""
    with open(pki.server_cert, "rb") as cert, open(pki.server_key, "rb") as key, open(pki.ca_cert, "rb") as ca:
        identity = ssl.PrivateCertificate.loadPEM(cert.read() + key.read())
        options = identity.options(ssl.Certificate.loadPEM(ca.read()))
    server = FakeUpstream(reactor, answer_www).start(tls=options)
    yield server
    pytest_twisted.blockon(server.stop())


@pytest_twisted.inlineCallbacks
def test_tls_cert_key_ca_shows_the_client_certificate(client_cert_server, pki, forwarders):
    """`tls CERT KEY CA`: an upstream that demands a client certificate gets ours, and answers."""
    tls = TLSSettings.from_files(pki.client_cert, pki.client_key, pki.ca_cert, server_name="localhost")
    plugin = forwarders(client_cert_server.address, tls=tls)
    response = yield ask(plugin, make_request("www.example.test."))
    assert addresses(response) == ["192.0.2.10"]


@pytest_twisted.inlineCallbacks
def test_without_a_client_certificate_such_an_upstream_refuses(client_cert_server, pki, forwarders):
    """`tls CA` alone shows no certificate: the upstream that demands one drops us, so the query fails."""
    plugin = forwarders(client_cert_server.address, tls=trusting(pki), max_connect_attempts=1)
    failure = yield ask(plugin, make_request("www.example.test.")).addErrback(lambda f: f.value)
    assert isinstance(failure, ForwardError)
    assert client_cert_server.received == []


@pytest_twisted.inlineCallbacks
def test_a_server_that_never_completes_the_handshake_fails_the_probe(pki):
    """A TCP listener that says nothing fails the TLS health probe once its time is up, instead of hanging."""
    silent = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    try:
        address = UpstreamAddress("127.0.0.1", silent.getHost().port, "tls")
        with pytest.raises(UpstreamError, match="TLS handshake failed"):
            yield send_probe(reactor, address, HealthCheck(), tls=trusting(pki).client_options(address))
    finally:
        yield silent.stopListening()


@pytest_twisted.inlineCallbacks
def test_with_expire_0s_no_tls_connection_is_reused(unbound, pki, forwarders):
    """`expire 0s` makes every idle connection stale: each query dials, and completes, a TLS handshake of its own."""
    plugin = forwarders(unbound.address, tls=trusting(pki), expire=0.0)
    for _ in range(3):
        response = yield ask(plugin, make_request("www.example.test."))
        assert addresses(response) == ["192.0.2.10"]
    assert (connections(plugin, unbound.address, "misses"), connections(plugin, unbound.address, "hits")) == (3, 0)
