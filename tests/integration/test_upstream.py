"""forward and cache against a real upstream: knotd on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

import dns.flags
import dns.rcode
import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor, task

from discovery.dns.cache import CacheConfig, CachePlugin
from discovery.dns.forward import ForwardConfig, ForwardError, ForwardPlugin
from tests.upstream.knot import KnotServer
from tests.upstream.requests import make_request


@pytest.fixture
def knot():
    server = KnotServer(reactor)
    pytest_twisted.blockon(server.start())
    yield server
    pytest_twisted.blockon(server.close())


@pytest.fixture
def forwarders():
    started = []

    def make(knot, **options):
        plugin = ForwardPlugin(ForwardConfig(upstreams=(knot.address,), **options), reactor,
                               registry=CollectorRegistry())
        plugin.start()
        started.append(plugin)
        return plugin

    yield make
    for plugin in started:
        plugin.stop()


def no_next(request):
    raise AssertionError("forward should answer every name")


def ask(plugin, request):
    return defer.maybeDeferred(plugin.serve, request, no_next).addTimeout(15, reactor)


def addresses(response):
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset if rrset.rdtype == 1)


@pytest_twisted.inlineCallbacks
def test_names_outside_the_cluster_resolve_through_the_upstream(knot, forwarders):
    """www.example.test comes back from knotd with its address, the client's ID and question case."""
    request = make_request("WWW.example.TEST.", qid=321)
    response = yield ask(forwarders(knot), request)
    assert addresses(response) == ["192.0.2.10"]
    assert response.id == 321 and response.question[0].name.to_text() == "WWW.example.TEST."


@pytest_twisted.inlineCallbacks
def test_nxdomain_comes_back_with_the_soa(knot, forwarders):
    """A name knotd lacks is NXDOMAIN with the zone's SOA in authority."""
    response = yield ask(forwarders(knot), make_request("nope.example.test."))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


@pytest_twisted.inlineCallbacks
def test_a_truncated_answer_is_retried_over_tcp(knot, forwarders):
    """prefer_udp: knotd's truncated UDP answer for `big` is asked again over TCP and arrives whole."""
    response = yield ask(forwarders(knot, prefer_udp=True), make_request("big.example.test."))
    assert not response.flags & dns.flags.TC and len(addresses(response)) == 40


@pytest_twisted.inlineCallbacks
def test_a_udp_client_gets_the_truncated_answer_to_retry_itself(knot, forwarders):
    """Without prefer_udp a UDP query gets knotd's TC answer, and the same query over TCP gets it all."""
    plugin = forwarders(knot)
    over_udp = yield ask(plugin, make_request("big.example.test."))
    over_tcp = yield ask(plugin, make_request("big.example.test.", proto="tcp"))
    assert over_udp.flags & dns.flags.TC
    assert len(addresses(over_tcp)) == 40


@pytest_twisted.inlineCallbacks
def test_a_dead_upstream_fails_and_a_restarted_one_answers_again(knot, forwarders):
    """Killing knotd turns answers into failures (the server's SERVFAIL); once it is back, names resolve again."""
    plugin = forwarders(knot)
    yield ask(plugin, make_request("www.example.test."))
    yield knot.kill()
    down = yield ask(plugin, make_request("www.example.test.")).addErrback(lambda failure: failure.value)
    assert isinstance(down, ForwardError)
    yield knot.start()
    back = yield ask(plugin, make_request("www.example.test."))
    assert back.rcode() == dns.rcode.NOERROR and addresses(back) == ["192.0.2.10"]


@pytest_twisted.inlineCallbacks
def test_the_cache_answers_while_the_upstream_is_down_with_serve_stale(knot, forwarders):
    """With serve_stale, an expired entry is served (TTL 0) while knotd is dead; without it, the failure (SERVFAIL)."""
    clock = task.Clock()
    clock.advance(1000)
    stale_cache = CachePlugin(CacheConfig(zones=(".",), serve_stale=3600.0), clock, registry=CollectorRegistry())
    plain_cache = CachePlugin(CacheConfig(zones=(".",)), clock, registry=CollectorRegistry())
    forward = forwarders(knot, max_fails=0)

    def through(cache, request):
        return defer.maybeDeferred(cache.serve, request, lambda r: forward.serve(r, no_next)).addTimeout(15, reactor)

    for cache in (stale_cache, plain_cache):
        warm = yield through(cache, make_request("www.example.test."))
        assert addresses(warm) == ["192.0.2.10"] and warm.answer[0].ttl == 300
    yield knot.kill()
    clock.advance(301)
    stale = yield through(stale_cache, make_request("www.example.test."))
    assert stale.rcode() == dns.rcode.NOERROR and addresses(stale) == ["192.0.2.10"] and stale.answer[0].ttl == 0
    failed = yield through(plain_cache, make_request("www.example.test.")).addErrback(lambda failure: failure.value)
    assert isinstance(failed, ForwardError)


@pytest_twisted.inlineCallbacks
def test_cached_answers_count_down_and_come_without_asking_the_upstream(knot, forwarders):
    """A warm cache answers with the TTL less the whole seconds elapsed, even with knotd gone."""
    clock = task.Clock()
    cache = CachePlugin(CacheConfig(zones=(".",)), clock, registry=CollectorRegistry())
    forward = forwarders(knot)

    def through(request):
        return defer.maybeDeferred(cache.serve, request, lambda r: forward.serve(r, no_next)).addTimeout(15, reactor)

    yield through(make_request("alias.example.test."))
    yield knot.kill()
    clock.advance(10.5)
    response = yield through(make_request("Alias.Example.Test."))
    assert [rrset.ttl for rrset in response.answer] == [290, 290]
    assert addresses(response) == ["192.0.2.10"] and response.flags & dns.flags.AA
