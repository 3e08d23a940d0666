"""The forward plugin against scripted upstreams on 127.0.0.1 (CoreDNS's forward semantics)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor

from discovery.dns.forward import ForwardConfig, ForwardError, ForwardPlugin
from discovery.dns.upstream import HealthCheck, UpstreamAddress
from tests.upstream.fake import FakeUpstream
from tests.upstream.requests import answer, make_request

CLOSED_PORT = UpstreamAddress("127.0.0.1", 9)  # discard: nothing listens on loopback


def a_record(query, proto):
    return answer(query, f"{query.question[0].name} 300 IN A 192.0.2.1")


def silent(query, proto):
    return None


@pytest.fixture
def upstreams():
    started = []

    def start(handler=a_record):
        fake = FakeUpstream(reactor, handler).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def plugins():
    started = []

    def make(*addresses, registry=None, **options):
        config = ForwardConfig(upstreams=tuple(addresses), **options)
        plugin = ForwardPlugin(config, reactor, registry=registry or CollectorRegistry())
        plugin.start()
        started.append(plugin)
        return plugin

    yield make
    for plugin in started:
        plugin.stop()


def queries_for(fake, name):
    """The queries the fake received for name (health probes for `.` left out)."""
    return [query for _, query in fake.received if query.question[0].name == dns.name.from_text(name)]


def unreachable(request):
    raise AssertionError("the query should not pass forward")


def ask(plugin, request, next=unreachable):
    return defer.maybeDeferred(plugin.serve, request, next).addTimeout(10, reactor)


def failure_of(plugin, request):
    """The ForwardError a query ends in when no upstream answers (the server makes it SERVFAIL)."""
    return ask(plugin, request).addCallbacks(
        lambda response: pytest.fail(f"expected a ForwardError, got {dns.rcode.to_text(response.rcode())}"),
        lambda failure: failure.trap(ForwardError) and failure.value,
    )


@pytest_twisted.inlineCallbacks
def test_answer_comes_back_with_client_id_and_question_case(upstreams, plugins):
    """The upstream's answer reaches the client with the client's ID and its 0x20 question case."""
    plugin = plugins(upstreams().address)
    request = make_request("WwW.ExAmple.ORG.", qid=4242)
    response = yield ask(plugin, request)
    assert response.id == 4242
    assert response.question[0].name.to_text() == "WwW.ExAmple.ORG."
    assert [r.to_text() for r in response.answer[0]] == ["192.0.2.1"]
    assert request.plugin == "forward"


@pytest_twisted.inlineCallbacks
def test_upstream_gets_a_new_random_id(upstreams, plugins):
    """Each query goes upstream with a random ID, not the client's (RFC 5452 section 9.2)."""
    fake = upstreams()
    plugin = plugins(fake.address)
    for _ in range(3):
        yield ask(plugin, make_request("example.org.", qid=7))
    assert {query.id for _, query in fake.received} != {7}


@pytest_twisted.inlineCallbacks
def test_upstream_gets_the_client_flags_and_edns(upstreams, plugins):
    """The query goes upstream with the client's RD bit, OPT size and DO bit."""
    fake = upstreams()
    plugin = plugins(fake.address)
    yield ask(plugin, make_request("example.org.", edns=True, payload=4096, do=True))
    _, seen = fake.received[0]
    assert seen.flags & dns.flags.RD
    assert seen.edns == 0 and seen.payload == 4096 and seen.ednsflags & dns.flags.DO


@pytest_twisted.inlineCallbacks
def test_client_edns_state_is_kept_on_the_answer(upstreams, plugins):
    """A client without EDNS gets no OPT; one with EDNS gets ours (1232, its DO bit echoed)."""
    plugin = plugins(upstreams().address)
    plain = yield ask(plugin, make_request("example.org."))
    with_do = yield ask(plugin, make_request("example.org.", do=True))
    assert plain.edns == -1
    assert with_do.edns == 0 and with_do.payload == 1232 and with_do.ednsflags & dns.flags.DO


def test_names_outside_from_go_to_the_next_plugin(plugins):
    """A name outside FROM is not forwarded."""
    plugin = plugins(CLOSED_PORT, from_zone="example.org.")
    request = make_request("example.com.")
    assert plugin.serve(request, lambda r: "next") == "next"


def test_excepted_names_go_to_the_next_plugin(plugins):
    """A name under an `except` zone is not forwarded."""
    plugin = plugins(CLOSED_PORT, ignored=("internal.example.org.",))
    assert plugin.serve(make_request("a.internal.example.org."), lambda r: "next") == "next"


def test_from_itself_is_forwarded_even_when_excepted():
    """FROM itself is always forwarded (CoreDNS's isAllowedDomain)."""
    config = ForwardConfig(upstreams=(CLOSED_PORT,), from_zone="example.org.", ignored=("example.org.",))
    assert config.matches("example.org.") and not config.matches("www.example.org.")


@pytest_twisted.inlineCallbacks
def test_forward_forbids_reuse_of_its_answers(upstreams, plugins):
    """Without a cache in front, every query goes upstream."""
    plugin = plugins(upstreams().address)
    request = make_request("example.org.")
    yield ask(plugin, request)
    assert not request.fastpath.reusable


def big_answer(query, proto):
    """Forty A records: too big for 512 bytes, so UDP gets TC (as a real server does)."""
    records = " ".join(f"192.0.2.{i}" for i in range(1, 41))
    response = answer(query)
    response.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", *records.split()))
    if proto == "udp":
        return answer(query, flags=dns.flags.TC)
    return response


@pytest_twisted.inlineCallbacks
def test_truncated_udp_answer_reaches_a_udp_client_truncated(upstreams, plugins):
    """A UDP client gets the upstream's TC answer, to retry over TCP itself (CoreDNS's default)."""
    fake = upstreams(big_answer)
    plugin = plugins(fake.address)
    response = yield ask(plugin, make_request("big.example.org."))
    assert response.flags & dns.flags.TC
    assert [proto for proto, _ in fake.received] == ["udp"]


@pytest_twisted.inlineCallbacks
def test_tcp_client_is_forwarded_over_tcp(upstreams, plugins):
    """A query that came over TCP goes upstream over TCP and gets the whole answer."""
    fake = upstreams(big_answer)
    plugin = plugins(fake.address)
    response = yield ask(plugin, make_request("big.example.org.", proto="tcp"))
    assert not response.flags & dns.flags.TC and len(response.answer[0]) == 40
    assert [proto for proto, _ in fake.received] == ["tcp"]


@pytest_twisted.inlineCallbacks
def test_prefer_udp_retries_a_truncated_answer_over_tcp(upstreams, plugins):
    """With prefer_udp, a TC answer over UDP is asked again over TCP."""
    fake = upstreams(big_answer)
    plugin = plugins(fake.address, prefer_udp=True)
    response = yield ask(plugin, make_request("big.example.org.", proto="tcp"))
    assert len(response.answer[0]) == 40
    assert [proto for proto, _ in fake.received] == ["udp", "tcp"]


@pytest_twisted.inlineCallbacks
def test_force_tcp_sends_udp_clients_over_tcp(upstreams, plugins):
    """force_tcp: TCP upstream whatever the client used."""
    fake = upstreams()
    plugin = plugins(fake.address, force_tcp=True)
    yield ask(plugin, make_request("example.org."))
    assert [proto for proto, _ in fake.received] == ["tcp"]


@pytest_twisted.inlineCallbacks
def test_a_silent_upstream_times_out_and_the_next_one_answers(upstreams, plugins):
    """After the read timeout of one try, the next upstream in the policy's order is asked."""
    quiet, good = upstreams(silent), upstreams()
    plugin = plugins(quiet.address, good.address, policy="sequential", read_timeout=0.05)
    response = yield ask(plugin, make_request("example.org."))
    assert response.rcode() == dns.rcode.NOERROR
    assert len(queries_for(quiet, "example.org.")) == 1 and len(queries_for(good, "example.org.")) == 1


@pytest_twisted.inlineCallbacks
def test_no_upstream_answering_is_an_error_naming_the_upstream(plugins):
    """A refused upstream, tried twice per upstream, ends in a ForwardError naming it (SERVFAIL and an `errors` line)."""
    plugin = plugins(CLOSED_PORT, max_fails=0)
    request = make_request("example.org.", qid=99)
    error = yield failure_of(plugin, request)
    assert str(error) == f"{CLOSED_PORT.host}:{CLOSED_PORT.port}: connection refused"
    assert not request.fastpath.reusable


@pytest_twisted.inlineCallbacks
def test_a_failed_exchange_starts_health_checks_with_recursion_desired(upstreams, plugins):
    """After a failed try, the upstream gets `. IN NS` with RD set."""
    drop_first = {"dropped": False}

    def handler(query, proto):
        if not drop_first["dropped"]:
            drop_first["dropped"] = True
            return None
        return answer(query)

    fake = upstreams(handler)
    plugin = plugins(fake.address, read_timeout=0.05, max_connect_attempts=1)
    yield failure_of(plugin, make_request("example.org."))
    received = yield fake.wait_for(2)
    _, check = received[1]
    assert check.question[0].name == dns.name.root and check.question[0].rdtype == dns.rdatatype.NS
    assert check.flags & dns.flags.RD


@pytest_twisted.inlineCallbacks
def test_no_rec_health_checks_clear_recursion_desired(upstreams, plugins):
    """health_check ... no_rec sends the probe with RD clear."""
    fake = upstreams(silent)
    plugin = plugins(fake.address, read_timeout=0.05, max_connect_attempts=1,
                     health_check=HealthCheck(interval=60, recursion_desired=False))
    yield failure_of(plugin, make_request("example.org."))
    received = yield fake.wait_for(2)
    assert not received[1][1].flags & dns.flags.RD


@pytest_twisted.inlineCallbacks
def test_queries_beyond_max_concurrent_are_refused(upstreams, plugins):
    """With max_concurrent 1 and one query waiting, the next gets REFUSED and is counted."""
    registry = CollectorRegistry()
    fake = upstreams(silent)
    plugin = plugins(fake.address, max_concurrent=1, read_timeout=0.2, max_fails=0, registry=registry)
    first = failure_of(plugin, make_request("one.example.org."))
    refused = yield ask(plugin, make_request("two.example.org."))
    assert refused.rcode() == dns.rcode.REFUSED
    assert registry.get_sample_value("coredns_forward_max_concurrent_rejects_total") == 1
    yield first
    assert plugin.in_flight == 0


@pytest_twisted.inlineCallbacks
def test_a_reply_to_another_question_is_a_format_error(upstreams, plugins):
    """An upstream answering a different question gets the client FORMERR (CoreDNS's Match)."""
    def rewrite_id(query, proto):
        reply = answer(dns.message.make_query("other.example.", "A"))
        reply.id = query.id
        return reply

    plugin = plugins(upstreams(rewrite_id).address)
    response = yield ask(plugin, make_request("example.org."))
    assert response.rcode() == dns.rcode.FORMERR


@pytest_twisted.inlineCallbacks
def test_failover_rcode_moves_on_to_the_next_upstream(upstreams, plugins):
    """failover SERVFAIL: a SERVFAIL answer makes forward ask the next upstream."""
    failing = upstreams(lambda query, proto: answer(query, rcode=dns.rcode.SERVFAIL))
    good = upstreams()
    plugin = plugins(failing.address, good.address, policy="sequential", failover_rcodes=(dns.rcode.SERVFAIL,))
    response = yield ask(plugin, make_request("example.org."))
    assert response.rcode() == dns.rcode.NOERROR and len(queries_for(failing, "example.org.")) == 1


@pytest_twisted.inlineCallbacks
def test_without_failover_an_upstream_servfail_is_the_answer(upstreams, plugins):
    """An upstream's SERVFAIL is an answer like any other by default."""
    failing = upstreams(lambda query, proto: answer(query, rcode=dns.rcode.SERVFAIL))
    good = upstreams()
    plugin = plugins(failing.address, good.address, policy="sequential")
    response = yield ask(plugin, make_request("example.org."))
    assert response.rcode() == dns.rcode.SERVFAIL and not good.received


@pytest_twisted.inlineCallbacks
def test_request_duration_is_observed_per_upstream_and_rcode(upstreams, plugins):
    """coredns_proxy_request_duration_seconds counts each answer by proxy_name, to and rcode."""
    registry = CollectorRegistry()
    fake = upstreams(lambda query, proto: answer(query, rcode=dns.rcode.NXDOMAIN))
    plugin = plugins(fake.address, registry=registry)
    yield ask(plugin, make_request("nope.example.org."))
    labels = {"proxy_name": "forward", "to": f"127.0.0.1:{fake.port}", "rcode": "NXDOMAIN"}
    assert registry.get_sample_value("coredns_proxy_request_duration_seconds_count", labels) == 1


@pytest_twisted.inlineCallbacks
def test_udp_connections_are_reused_between_queries(upstreams, plugins):
    """The second query reuses the first one's socket: a conn cache miss, then a hit."""
    registry = CollectorRegistry()
    fake = upstreams()
    plugin = plugins(fake.address, registry=registry)
    yield ask(plugin, make_request("a.example.org."))
    yield ask(plugin, make_request("b.example.org."))
    labels = {"proxy_name": "forward", "to": f"127.0.0.1:{fake.port}", "proto": "udp"}
    assert registry.get_sample_value("coredns_proxy_conn_cache_misses_total", labels) == 1
    assert registry.get_sample_value("coredns_proxy_conn_cache_hits_total", labels) == 1


@pytest_twisted.inlineCallbacks
def test_tcp_connections_are_reused_between_queries(upstreams, plugins):
    """Two TCP queries share one connection: a conn cache miss, then a hit."""
    registry = CollectorRegistry()
    fake = upstreams()
    plugin = plugins(fake.address, registry=registry)
    yield ask(plugin, make_request("a.example.org.", proto="tcp"))
    yield ask(plugin, make_request("b.example.org.", proto="tcp"))
    labels = {"proxy_name": "forward", "to": f"127.0.0.1:{fake.port}", "proto": "tcp"}
    assert registry.get_sample_value("coredns_proxy_conn_cache_misses_total", labels) == 1
    assert registry.get_sample_value("coredns_proxy_conn_cache_hits_total", labels) == 1


@pytest_twisted.inlineCallbacks
def test_a_connection_the_upstream_closed_is_replaced(upstreams, plugins):
    """An upstream that hangs up after each TCP answer still answers every query."""
    fake = upstreams()
    fake.close_tcp_after_reply = True
    plugin = plugins(fake.address)
    for name in ("a.example.org.", "b.example.org.", "c.example.org."):
        response = yield ask(plugin, make_request(name, proto="tcp"))
        assert response.rcode() == dns.rcode.NOERROR


@pytest_twisted.inlineCallbacks
def test_connections_idle_longer_than_expire_are_not_reused(upstreams, plugins):
    """expire 0: every query opens a new connection."""
    registry = CollectorRegistry()
    fake = upstreams()
    plugin = plugins(fake.address, expire=0.0, registry=registry)
    yield ask(plugin, make_request("a.example.org."))
    yield ask(plugin, make_request("b.example.org."))
    labels = {"proxy_name": "forward", "to": f"127.0.0.1:{fake.port}", "proto": "udp"}
    assert registry.get_sample_value("coredns_proxy_conn_cache_misses_total", labels) == 2
