"""The loop plugin: start-up probing and loop detection (CoreDNS's loop plugin)."""

from __future__ import annotations

import dns.message
import dns.rcode
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import DatagramProtocol

from discovery.config import SetupContext
from discovery.corefile import CorefileError, parse
from discovery.dns.loop import LoopConfig, LoopPlugin, loop_message, probe_name, setup_loop
from discovery.dns.upstream import UpstreamError
from tests.upstream.fake import FakeUpstream
from tests.upstream.requests import answer, make_request


class ScriptedExchange:
    """The probe's transport: the test decides each outcome."""

    def __init__(self):
        self.sent: list[tuple[object, bytes]] = []
        self.pending: list[defer.Deferred] = []

    def __call__(self, target, wire):
        self.sent.append((target, wire))
        d = defer.Deferred()
        self.pending.append(d)
        return d


def make_loop(clock, zone=".", exchange=None, **kwargs):
    halts = []
    plugin = LoopPlugin(LoopConfig(zone), clock, on_loop=halts.append, exchange=exchange or ScriptedExchange(),
                        **kwargs)
    return plugin, halts


def next_plugin(request):
    return "next"


def test_setup_takes_the_first_zone_and_no_arguments():
    """`loop` has no arguments and probes in the block's first zone."""
    block = parse("example.org:53 example.net:53 {\nloop\n}\n", "Corefile")[0]
    ctx = SetupContext(("example.org.", "example.net."), "Corefile", 1)
    assert setup_loop(block.directives[0], ctx) == LoopConfig("example.org.")
    bad = parse(".:53 {\nloop 1\n}\n", "Corefile")[0]
    with pytest.raises(CorefileError):
        setup_loop(bad.directives[0], SetupContext((".",), "Corefile", 1))


def test_probe_names_are_two_random_numbers_in_the_zone():
    """<random>.<random>.zone, different each time."""
    first, second = probe_name("example.org."), probe_name("example.org.")
    assert first != second and first.endswith(".example.org.") and len(first.split(".")) == 5


def test_the_probe_is_hinfo_for_the_probe_name_sent_to_the_server():
    """start() sends `<name> IN HINFO` to the address given."""
    clock, exchange = task.Clock(), ScriptedExchange()
    plugin, _ = make_loop(clock, exchange=exchange, qname="1.2.")
    plugin.start(("127.0.0.1", 1053))
    target, wire = exchange.sent[0]
    assert (target.host, target.port) == ("127.0.0.1", 1053)
    assert dns.message.from_wire(wire).question[0].to_text() == "1.2. IN HINFO"


def test_without_an_address_the_server_label_names_the_target():
    """start() with no address probes the port of the server label, on this host."""
    clock, exchange = task.Clock(), ScriptedExchange()
    plugin, halts = make_loop(clock, exchange=exchange, qname="1.2.", server="dns://:1053")
    plugin.start()
    target, _ = exchange.sent[0]
    assert (target.host, target.port) == ("127.0.0.1", 1053)
    for _ in range(3):
        plugin.serve(make_request("1.2.", "HINFO", client=("127.0.0.1", 5555)), next_plugin)
    assert "-> :1053)" in halts[0]


def test_a_third_sighting_of_the_probe_halts_with_coredns_message():
    """Seen more than twice: the halt callback gets CoreDNS's fatal line."""
    clock = task.Clock()
    plugin, halts = make_loop(clock, qname="1.2.")
    plugin.start(("", 1053))
    for _ in range(3):
        plugin.serve(make_request("1.2.", "HINFO", client=("127.0.0.1", 5555)), next_plugin)
    assert halts == [loop_message("127.0.0.1:5555", ":1053", ".", "1.2.")]
    assert halts[0] == ('Loop (127.0.0.1:5555 -> :1053) detected for zone ".", see '
                        'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO 1.2."')


def test_two_sightings_are_no_loop():
    """The probe passing twice (there and back) is normal."""
    plugin, halts = make_loop(task.Clock(), qname="1.2.")
    for _ in range(2):
        assert plugin.serve(make_request("1.2.", "HINFO"), next_plugin) == "next"
    assert halts == []


def test_other_queries_pass_uncounted():
    """Other types and other names go on to the next plugin and are not counted."""
    plugin, _ = make_loop(task.Clock(), qname="1.2.")
    plugin.serve(make_request("1.2.", "A"), next_plugin)
    plugin.serve(make_request("3.4.", "HINFO"), next_plugin)
    assert plugin.seen == 0


def test_a_failed_probe_resets_the_count_and_retries_a_second_later():
    """No answer: the count starts again and the probe is resent after one second."""
    clock, exchange = task.Clock(), ScriptedExchange()
    plugin, _ = make_loop(clock, exchange=exchange, qname="1.2.")
    plugin.start(("127.0.0.1", 1053))
    plugin.serve(make_request("1.2.", "HINFO"), next_plugin)
    exchange.pending[0].errback(UpstreamError("i/o timeout"))
    assert plugin.seen == 0
    clock.advance(1)
    assert len(exchange.sent) == 2


def test_after_an_answer_the_plugin_turns_off_two_seconds_later():
    """Two seconds after the probe was answered, the plugin counts nothing any more."""
    clock, exchange = task.Clock(), ScriptedExchange()
    plugin, halts = make_loop(clock, exchange=exchange, qname="1.2.")
    plugin.start(("127.0.0.1", 1053))
    exchange.pending[0].callback(b"")
    clock.advance(2)
    for _ in range(3):
        plugin.serve(make_request("1.2.", "HINFO"), next_plugin)
    assert halts == [] and plugin.disabled


def test_probing_gives_up_after_thirty_seconds():
    """Thirty seconds of failed probes: the plugin turns off."""
    clock, exchange = task.Clock(), ScriptedExchange()
    plugin, _ = make_loop(clock, exchange=exchange)
    plugin.start(("127.0.0.1", 1053))
    for _ in range(40):
        if exchange.pending:
            exchange.pending.pop(0).errback(UpstreamError("i/o timeout"))
        clock.advance(1)
    assert plugin.disabled and len(exchange.sent) <= 31


@pytest_twisted.inlineCallbacks
def test_a_server_forwarding_to_itself_is_caught():
    """A real loop: a server whose chain forwards the probe back to itself halts at the third pass."""
    halted = defer.Deferred()
    plugin = LoopPlugin(LoopConfig("."), reactor, on_loop=lambda message: halted.called or halted.callback(message))
    forwarded = []

    def looping_server(query, proto):
        request = make_request(query.question[0].name.to_text(), "HINFO")

        def forward_to_ourselves(request):
            if halted.called:
                return  # the process would have stopped here
            sock = reactor.listenUDP(0, _Sender(query.to_wire(), ("127.0.0.1", server.port)))
            forwarded.append(sock)

        plugin.serve(request, forward_to_ourselves)
        return None

    server = FakeUpstream(reactor, looping_server).start()
    try:
        plugin.start(("127.0.0.1", server.port))
        message = yield halted.addTimeout(10, reactor)
        assert f"-> 127.0.0.1:{server.port}) detected for zone \".\"" in message
    finally:
        plugin.stop()
        for sock in forwarded:
            sock.stopListening()
        yield server.stop()


class _Sender(DatagramProtocol):
    """Sends one datagram as soon as it listens, and ignores any reply."""

    def __init__(self, wire, address):
        self.wire, self.address = wire, address

    def startProtocol(self):
        self.transport.write(self.wire, self.address)


@pytest_twisted.inlineCallbacks
def test_a_server_that_answers_is_no_loop():
    """A server that answers the probe leaves the plugin quiet."""
    halts = []
    plugin = LoopPlugin(LoopConfig("."), reactor, on_loop=halts.append)
    answered = defer.Deferred()

    def answering_server(query, proto):
        request = make_request(query.question[0].name.to_text(), "HINFO")
        plugin.serve(request, next_plugin)
        reactor.callLater(0, lambda: answered.called or answered.callback(None))
        return answer(query, rcode=dns.rcode.NXDOMAIN)

    server = FakeUpstream(reactor, answering_server).start()
    try:
        plugin.start(("127.0.0.1", server.port))
        yield answered.addTimeout(10, reactor)
        assert halts == [] and plugin.seen == 1
    finally:
        plugin.stop()
        yield server.stop()
