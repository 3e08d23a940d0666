"""DNS over TCP on a fake clock: per-message deadlines, idle, write, maxtcpqueries, the connection cap; and `timeouts`."""

from __future__ import annotations

import struct
import textwrap

import dns.message
import dns.rrset
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from discovery.config import load_text
from discovery.corefile import CorefileError
from discovery.dns.server import BlockRuntime, DNSServer
from discovery.dns.tcp import TCPFactory
from discovery.dns.timeouts import TimeoutsConfig
from discovery.ops.connections import ConnectionGuard


class FixedAnswer:
    """A plugin answering every question with one A record."""

    name = "fixed"

    def serve(self, request, next):
        response = request.reply()
        response.answer.append(dns.rrset.from_text(request.qname, 5, "IN", "A", "192.0.2.7"))
        return response


def framed(name: str = "a.example.") -> bytes:
    wire = dns.message.make_query(name, "A").to_wire()
    return struct.pack("!H", len(wire)) + wire


class Harness:
    """A DNSServer on a Clock, its guard with its own registry, and connections to it."""

    def __init__(self, timeouts: TimeoutsConfig = TimeoutsConfig(), budget: int = 1000):
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.guard = ConnectionGuard(budget, self.registry)
        block = BlockRuntime(zones=(".",), server="dns://:53", plugins=[FixedAnswer()])
        self.server = DNSServer(self.clock, [block], port=53, tcp_timeouts=timeouts, guard=self.guard)
        self.factory = TCPFactory(self.server, self.guard)

    def connect(self):
        protocol = self.factory.buildProtocol(None)
        if protocol is None:
            return None, None
        transport = StringTransport(peerAddress=address.IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(transport)
        return protocol, transport

    def sample(self, name: str, **labels) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def answers(transport: StringTransport) -> int:
    data, count = transport.value(), 0
    while len(data) >= 2:
        (length,) = struct.unpack("!H", data[:2])
        data = data[2 + length :]
        count += 1
    return count


def test_a_client_dripping_one_byte_at_a_time_is_cut_at_the_read_deadline():
    """Bytes arriving every 0.5 s do not extend the deadline: the first message must be whole 3 s after connecting."""
    harness = Harness()
    protocol, transport = harness.connect()
    message = framed()
    for i in range(6):
        protocol.dataReceived(message[i : i + 1])
        harness.clock.advance(0.5)
    assert transport.disconnecting
    assert answers(transport) == 0
    assert harness.sample("wayfinder_connections_deadline_closed_total", server="dns://:53", reason="read") == 1


def test_a_later_message_has_read_seconds_from_its_first_byte():
    """After an answer, a message begun and not finished within `read` closes the connection; one finished in time is answered."""
    harness = Harness(TimeoutsConfig(read=2.0, idle=10.0))
    protocol, transport = harness.connect()
    protocol.dataReceived(framed())
    harness.clock.advance(5.0)
    message = framed()
    protocol.dataReceived(message[:3])
    harness.clock.advance(1.5)
    protocol.dataReceived(message[3:])
    assert answers(transport) == 2 and not transport.disconnecting
    protocol.dataReceived(message[:3])
    harness.clock.advance(2.1)
    assert transport.disconnecting


def test_a_connection_idle_after_its_answer_is_closed_after_idle():
    """No message in progress for `idle` seconds after the last answer closes the connection, counted as idle."""
    harness = Harness(TimeoutsConfig(idle=4.0))
    protocol, transport = harness.connect()
    protocol.dataReceived(framed())
    harness.clock.advance(3.9)
    assert not transport.disconnecting
    harness.clock.advance(0.2)
    assert transport.disconnecting
    assert harness.sample("wayfinder_connections_deadline_closed_total", server="dns://:53", reason="idle") == 1


def test_a_connection_that_never_sends_is_closed_at_the_read_deadline():
    """A connection opened and left silent is closed `read` seconds later, as CoreDNS's first read."""
    harness = Harness(TimeoutsConfig(read=3.0))
    _, transport = harness.connect()
    harness.clock.advance(2.9)
    assert not transport.disconnecting
    harness.clock.advance(0.2)
    assert transport.disconnecting


def test_answers_not_taken_for_write_seconds_abort_the_connection():
    """While the send buffer stays full (the producer paused) no query is read, and after `write` seconds the connection ends."""
    harness = Harness(TimeoutsConfig(write=5.0))
    protocol, transport = harness.connect()
    protocol.dataReceived(framed())
    protocol.pauseProducing()
    assert transport.producerState == "paused"
    harness.clock.advance(5.1)
    assert transport.disconnecting
    assert harness.sample("wayfinder_connections_deadline_closed_total", server="dns://:53", reason="write") == 1


def test_a_send_buffer_that_drains_keeps_the_connection():
    """Once the client takes its answers (the producer resumes) the write deadline is off."""
    harness = Harness(TimeoutsConfig(write=5.0, idle=100.0))
    protocol, transport = harness.connect()
    protocol.dataReceived(framed())
    protocol.pauseProducing()
    harness.clock.advance(4.0)
    protocol.resumeProducing()
    harness.clock.advance(10.0)
    assert not transport.disconnecting and transport.producerState == "producing"


def test_maxtcpqueries_closes_the_connection_after_that_many_answers():
    """With maxtcpqueries 2, three pipelined queries get two answers and the connection is closed."""
    harness = Harness(TimeoutsConfig(max_tcp_queries=2))
    protocol, transport = harness.connect()
    protocol.dataReceived(framed("a.example.") + framed("b.example.") + framed("c.example."))
    assert answers(transport) == 2
    assert transport.disconnecting


def test_connections_over_the_cap_are_refused_and_counted():
    """With maxtcpconnections 2, a third connection is not built (closed at once) and counted as refused."""
    harness = Harness(TimeoutsConfig(max_tcp_connections=2))
    first, _ = harness.connect()
    harness.connect()
    assert harness.connect() == (None, None)
    assert harness.sample("wayfinder_connections_refused_total", server="dns://:53") == 1
    first.connectionLost(None)
    assert harness.connect()[0] is not None


def test_connections_over_the_descriptor_budget_are_refused():
    """The process-wide budget refuses a connection even below the server's cap, and frees a place on close."""
    harness = Harness(budget=1)
    first, _ = harness.connect()
    assert harness.connect() == (None, None)
    first.connectionLost(None)
    assert harness.guard.open == 0


# --- the timeouts directive ---------------------------------------------------------------------------------


def timeouts_of(block: str):
    text = textwrap.dedent("""\
        .:53 {
            timeouts {
        %s
            }
        }
    """) % block
    return load_text(text).servers[0].plugin("timeouts")


def test_timeouts_defaults_are_coredns_server_defaults():
    """read 3s, write 5s, idle 10s, maxtcpqueries -1 (core/dnsserver/server.go)."""
    config = TimeoutsConfig()
    assert (config.read, config.write, config.idle, config.max_tcp_queries) == (3.0, 5.0, 10.0, -1)


def test_timeouts_options_are_read():
    """Each option, with a bare number taken as seconds (plugin/pkg/durations)."""
    config = timeouts_of("read 10\nwrite 20s\nidle 1m\nmaxtcpqueries 128\nmaxtcpconnections 50")
    assert config == TimeoutsConfig(10.0, 20.0, 60.0, 128, 50)


@pytest.mark.parametrize(
    "block, message",
    [
        ("read 500ms", "between 1 second and 24 hours"),
        ("idle 25h", "between 1 second and 24 hours"),
        ("maxtcpqueries 0", "needs to be -1 (unlimited) or a positive integer"),
        ("maxtcpqueries -2", "needs to be -1 (unlimited) or a positive integer"),
        ("maxtcpqueries many", "invalid value for maxtcpqueries"),
        ("linger 5s", "unknown option: 'linger'"),
    ],
)
def test_bad_timeouts_are_refused_as_coredns_refuses_them(block, message):
    """The setup errors of plugin/timeouts/setup.go, naming the line."""
    with pytest.raises(CorefileError) as raised:
        timeouts_of(block)
    assert message in str(raised.value)


def test_an_empty_timeouts_block_is_refused():
    """A timeouts block with no option is an error, as in CoreDNS."""
    with pytest.raises(CorefileError, match="no timeouts specified"):
        load_text(".:53 {\n    timeouts\n}\n")
