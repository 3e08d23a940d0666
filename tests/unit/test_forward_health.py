"""Upstream health as CoreDNS's proxy keeps it, and how forward picks upstreams by it."""

from __future__ import annotations

import random

import dns.flags
import dns.rcode
import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor, task

from discovery.dns.forward import ForwardConfig, ForwardError, ForwardPlugin, _metrics, order_upstreams
from discovery.dns.upstream import HealthCheck, Upstream, UpstreamAddress, UpstreamError, send_probe
from tests.upstream.fake import FakeUpstream
from tests.upstream.requests import answer, make_request

ADDRESS = UpstreamAddress("192.0.2.53", 53)


class ScriptedProbe:
    """A health probe whose outcomes the test decides, one Deferred per probe."""

    def __init__(self):
        self.pending: list[defer.Deferred] = []

    def __call__(self, upstream):
        d = defer.Deferred()
        self.pending.append(d)
        return d

    def fail(self):
        self.pending.pop(0).errback(UpstreamError("i/o timeout"))

    def succeed(self):
        self.pending.pop(0).callback(None)


def make_upstream(clock, probe, registry=None, interval=0.5):
    metrics = _metrics(registry or CollectorRegistry()).proxy
    return Upstream(clock, ADDRESS, metrics, health=HealthCheck(interval=interval), probe=probe)


def test_a_health_check_probes_at_once():
    """healthcheck() sends the first probe immediately."""
    clock, probe = task.Clock(), ScriptedProbe()
    upstream = make_upstream(clock, probe)
    upstream.healthcheck()
    assert len(probe.pending) == 1


def test_failed_probes_repeat_every_interval():
    """After a failed probe the next one goes out one interval later."""
    clock, probe = task.Clock(), ScriptedProbe()
    upstream = make_upstream(clock, probe, interval=0.5)
    upstream.healthcheck()
    probe.fail()
    clock.advance(0.4)
    assert not probe.pending
    clock.advance(0.1)
    assert len(probe.pending) == 1


def test_an_upstream_is_down_only_after_more_than_max_fails_failed_probes():
    """With max_fails 2, two failed probes keep it up and the third marks it down."""
    clock, probe = task.Clock(), ScriptedProbe()
    upstream = make_upstream(clock, probe)
    upstream.healthcheck()
    for _ in range(2):
        probe.fail()
        clock.advance(0.5)
    assert not upstream.down(2)
    probe.fail()
    assert upstream.down(2)


def test_max_fails_zero_never_marks_down():
    """max_fails 0: an upstream is never down, whatever the probes say."""
    clock, probe = task.Clock(), ScriptedProbe()
    upstream = make_upstream(clock, probe)
    upstream.fails = 100
    assert not upstream.down(0)


def test_a_good_probe_clears_the_fails_and_ends_probing():
    """One answered probe brings a down upstream back and stops the probes."""
    clock, probe = task.Clock(), ScriptedProbe()
    upstream = make_upstream(clock, probe)
    upstream.healthcheck()
    for _ in range(3):
        probe.fail()
        clock.advance(0.5)
    probe.succeed()
    clock.advance(5)
    assert upstream.fails == 0 and not probe.pending


def test_a_second_health_check_while_probing_sends_nothing_more():
    """At most one probe loop runs per upstream (CoreDNS's up.Probe)."""
    clock, probe = task.Clock(), ScriptedProbe()
    upstream = make_upstream(clock, probe)
    upstream.healthcheck()
    upstream.healthcheck()
    assert len(probe.pending) == 1


def test_stop_ends_the_probe_loop():
    """A stopped upstream sends no further probes."""
    clock, probe = task.Clock(), ScriptedProbe()
    upstream = make_upstream(clock, probe)
    upstream.healthcheck()
    probe.fail()
    upstream.stop()
    clock.advance(10)
    assert not probe.pending


def test_failed_probes_are_counted_per_upstream():
    """coredns_proxy_healthcheck_failures_total counts failed probes by proxy_name and to."""
    clock, probe, registry = task.Clock(), ScriptedProbe(), CollectorRegistry()
    upstream = make_upstream(clock, probe, registry)
    upstream.healthcheck()
    probe.fail()
    clock.advance(0.5)
    probe.fail()
    labels = {"proxy_name": "forward", "to": "192.0.2.53:53"}
    assert registry.get_sample_value("coredns_proxy_healthcheck_failures_total", labels) == 2


# --- the real probe ------------------------------------------------------------------


@pytest.fixture
def fake_upstream():
    started = []

    def start(handler):
        fake = FakeUpstream(reactor, handler).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest_twisted.inlineCallbacks
def test_probe_asks_root_ns_and_any_rcode_counts_as_alive(fake_upstream):
    """The probe is `. IN NS`; even a REFUSED reply means the upstream is alive."""
    fake = fake_upstream(lambda query, proto: answer(query, rcode=dns.rcode.REFUSED))
    yield send_probe(reactor, fake.address, HealthCheck())
    _, query = fake.received[0]
    assert query.question[0].to_text() == ". IN NS" and query.flags & dns.flags.RD


@pytest_twisted.inlineCallbacks
def test_probe_domain_option_names_the_probe(fake_upstream):
    """health_check ... domain example.org asks `example.org. IN NS`."""
    fake = fake_upstream(lambda query, proto: answer(query))
    yield send_probe(reactor, fake.address, HealthCheck(domain="example.org."))
    assert fake.received[0][1].question[0].to_text() == "example.org. IN NS"


@pytest_twisted.inlineCallbacks
def test_probe_over_tcp_with_force_tcp(fake_upstream):
    """With force_tcp the probe goes over TCP."""
    fake = fake_upstream(lambda query, proto: answer(query))
    yield send_probe(reactor, fake.address, HealthCheck(tcp=True))
    assert fake.received[0][0] == "tcp"


@pytest_twisted.inlineCallbacks
def test_probe_of_a_closed_port_fails():
    """Nothing listening: the probe fails."""
    with pytest.raises(UpstreamError):
        yield send_probe(reactor, UpstreamAddress("127.0.0.1", 9), HealthCheck())


# --- choosing upstreams ------------------------------------------------------------------


class FakeUpstreamState:
    """An upstream as forward's query loop sees it: scripted health and answers."""

    def __init__(self, label, down=False, answers=True):
        self.label = label
        self.is_down = down
        self.answers = answers
        self.asked = 0
        self.health_checks = 0

    def down(self, max_fails):
        return self.is_down

    def exchange(self, query, proto):
        self.asked += 1
        if not self.answers:
            return defer.fail(UpstreamError("connection refused"))
        reply = answer(query)
        reply.flags |= dns.flags.QR
        return defer.succeed(reply)

    def healthcheck(self):
        self.health_checks += 1

    def start(self):
        pass

    def stop(self):
        pass


def forward_with(upstreams, registry=None, rng=None, **options):
    config = ForwardConfig(upstreams=tuple(UpstreamAddress("192.0.2.1", 53 + i) for i in range(len(upstreams))),
                           policy="sequential", **options)
    return ForwardPlugin(config, task.Clock(), registry=registry or CollectorRegistry(),
                         rng=rng or random.Random(1), upstreams=upstreams)


def serve(plugin, request):
    """The response, which these fakes make available at once."""
    results = []
    defer.maybeDeferred(plugin.serve, request, None).addBoth(results.append)
    assert len(results) == 1
    return results[0]


def test_down_upstreams_are_skipped():
    """A down upstream is passed over for the next healthy one."""
    first, second = FakeUpstreamState("a", down=True), FakeUpstreamState("b")
    response = serve(forward_with([first, second]), make_request("example.org."))
    assert response.rcode() == dns.rcode.NOERROR and first.asked == 0 and second.asked == 1


def test_when_all_are_down_a_random_one_is_asked_and_counted():
    """All down: health checking is taken as broken, one upstream is tried anyway, and it is counted."""
    registry = CollectorRegistry()
    upstreams = [FakeUpstreamState("a", down=True), FakeUpstreamState("b", down=True)]
    response = serve(forward_with(upstreams, registry), make_request("example.org."))
    assert response.rcode() == dns.rcode.NOERROR and sum(u.asked for u in upstreams) == 1
    assert registry.get_sample_value("coredns_forward_healthcheck_broken_total") == 1


def test_failfast_all_unhealthy_upstreams_fails_at_once():
    """failfast_all_unhealthy_upstreams: all down means failing (SERVFAIL) without asking any."""
    upstreams = [FakeUpstreamState("a", down=True), FakeUpstreamState("b", down=True)]
    outcome = serve(forward_with(upstreams, failfast_all_unhealthy_upstreams=True), make_request("example.org."))
    assert outcome.check(ForwardError) and "no healthy upstream" in outcome.getErrorMessage()
    assert sum(u.asked for u in upstreams) == 0


def test_failing_upstreams_are_tried_twice_each_by_default():
    """The default cap is two connect attempts per upstream, then failure (SERVFAIL)."""
    upstreams = [FakeUpstreamState("a", answers=False), FakeUpstreamState("b", answers=False)]
    outcome = serve(forward_with(upstreams), make_request("example.org."))
    assert outcome.check(ForwardError)
    assert [u.asked for u in upstreams] == [2, 2]


def test_max_connect_attempts_caps_the_tries():
    """max_connect_attempts 1: one failed try is the end."""
    upstreams = [FakeUpstreamState("a", answers=False), FakeUpstreamState("b", answers=False)]
    serve(forward_with(upstreams, max_connect_attempts=1), make_request("example.org."))
    assert sum(u.asked for u in upstreams) == 1


def test_each_failed_try_starts_a_health_check():
    """A failed exchange kicks off the upstream's health check."""
    upstreams = [FakeUpstreamState("a", answers=False), FakeUpstreamState("b")]
    serve(forward_with(upstreams), make_request("example.org."))
    assert upstreams[0].health_checks == 1


def test_max_fails_zero_starts_no_health_checks():
    """max_fails 0 turns health checking off."""
    upstreams = [FakeUpstreamState("a", answers=False), FakeUpstreamState("b")]
    serve(forward_with(upstreams, max_fails=0), make_request("example.org."))
    assert upstreams[0].health_checks == 0


def test_sequential_policy_keeps_the_configured_order():
    """sequential: always the configured order."""
    assert order_upstreams("sequential", ["a", "b", "c"], 5, random.Random(0)) == ["a", "b", "c"]


def test_round_robin_policy_starts_one_further_each_query():
    """round_robin: the first query starts at the second upstream, then the third, and so on."""
    rng = random.Random(0)
    orders = [order_upstreams("round_robin", ["a", "b", "c"], turn, rng) for turn in range(3)]
    assert orders == [["b", "a", "c"], ["c", "a", "b"], ["a", "b", "c"]]


def test_random_policy_orders_every_upstream_once():
    """random: a permutation of all upstreams."""
    order = order_upstreams("random", ["a", "b", "c", "d"], 0, random.Random(3))
    assert sorted(order) == ["a", "b", "c", "d"]
