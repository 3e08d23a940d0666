"""Fuzzing the wire edge: whatever arrives, the server never crashes and answers sanely.

Packets are random bytes, valid queries with a random header, or valid
queries mutated byte by byte (flipped, overwritten, cut, inserted, removed).
For each, the reply must be:

* none at all, only when the header cannot be read (fewer than 12 bytes) or
  the packet is a response (QR set): never answer those (no loops);
* otherwise exactly one message that dnspython parses, with the packet's ID
  and QR set: FORMERR, NOTIMP or BADVERS, or an answer to its question
  (never SERVFAIL: no plugin here fails).

The packet entry points are called directly for speed (and each answer
from the table of rendered answers is checked against the full path's),
a TCP connection is fed arbitrary byte streams, and a live `python -m
discovery` gets packets over UDP and TCP, answering a probe after each one.
"""

from __future__ import annotations

import struct
import textwrap

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.reversename
import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import address, defer, reactor
from twisted.internet.testing import StringTransport

from discovery.dns.tcp import TCPFactory
from discovery.app import Application
from discovery.config import load
from tests.integration.dnsserver import EXAMPLES, CLIProcess, exchange_raw, within

#: The demo cluster without a `.` block: a name outside the zones is REFUSED,
#: and an ExternalName's outside target finds no answer (so only the CNAME).
COREFILE = textwrap.dedent(f"""\
    cluster.local:0 in-addr.arpa:0 ip6.arpa:0 {{
        bind 127.0.0.1
        kubernetes cluster.local in-addr.arpa ip6.arpa {{
            manifests {EXAMPLES}
            pods verified
        }}
    }}
    """)

#: Replies that say "I will not answer that" rather than answering it.
REFUSALS = {dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.BADVERS}

QUESTIONS = [
    ("frontend-svc.default.svc.cluster.local.", "A"),
    ("FrontEnd-Svc.Default.SVC.cluster.local.", "AAAA"),
    ("echo.default.svc.cluster.local.", "AAAA"),
    ("_http._tcp.frontend-svc.default.svc.cluster.local.", "SRV"),
    ("web.default.svc.cluster.local.", "SRV"),
    ("web-0.web.default.svc.cluster.local.", "A"),
    ("my-service.prod.svc.cluster.local.", "A"),
    ("my-service.prod.svc.cluster.local.", "CNAME"),
    ("10-244-1-12.default.pod.cluster.local.", "A"),
    (dns.reversename.from_address("10.96.120.34").to_text(), "PTR"),
    (dns.reversename.from_address("fd00:10:96::5a1c").to_text(), "PTR"),
    ("dns-version.cluster.local.", "TXT"),
    ("cluster.local.", "SOA"),
    ("cluster.local.", "NS"),
    ("cluster.local.", "AXFR"),
    ("nothing.default.svc.cluster.local.", "MX"),
    ("www.example.org.", "A"),
]
EDNS = [dict(use_edns=False), dict(use_edns=0), dict(use_edns=0, payload=4096, want_dnssec=True), dict(use_edns=1)]


def seed_packets() -> list[bytes]:
    """Valid queries: every question with every EDNS form, RD and CD on or off."""
    seeds = []
    for i, (name, rdtype) in enumerate(QUESTIONS):
        for j, edns in enumerate(EDNS):
            query = dns.message.make_query(name, rdtype, id=i * 16 + j, **edns)
            if j % 2:
                query.flags |= dns.flags.CD
            if i % 3 == 0:
                query.flags &= ~dns.flags.RD
            seeds.append(query.to_wire())
    return seeds


SEEDS = seed_packets()


@st.composite
def mutated_packets(draw) -> bytes:
    """A seed query with a few bytes flipped, overwritten, cut off, inserted or removed."""
    wire = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "set", "cut", "insert", "remove"]))
        at = draw(st.integers(0, max(len(wire) - 1, 0)))
        if operation == "flip" and wire:
            wire[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "set" and wire:
            wire[at] = draw(st.integers(0, 255))
        elif operation == "cut":
            del wire[at:]
        elif operation == "insert":
            wire[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "remove":
            del wire[at : at + draw(st.integers(1, 8))]
    return bytes(wire)


def odd_headers() -> st.SearchStrategy[bytes]:
    """A seed query's question and records behind 12 random header bytes."""
    return st.tuples(st.binary(min_size=12, max_size=12), st.sampled_from(SEEDS)).map(
        lambda parts: parts[0] + parts[1][12:]
    )


def opcodes_and_flags() -> st.SearchStrategy[bytes]:
    """A seed query with its ID kept and random flags (opcodes, QR, Z, AD, rcode bits)."""
    return st.tuples(st.integers(0, 0xFFFF), st.sampled_from(SEEDS)).map(
        lambda parts: parts[1][:2] + struct.pack("!H", parts[0]) + parts[1][4:]
    )


PACKETS = st.one_of(st.binary(max_size=600), mutated_packets(), odd_headers(), opcodes_and_flags())


def readable(packet: bytes) -> bool:
    """A header that can be read, of a message that is not a response."""
    return len(packet) >= 12 and not packet[2] & 0x80


def check_replies(packet: bytes, replies: list[bytes]) -> None:
    """The contract of the module docstring, for one packet and what came back."""
    if not readable(packet):
        assert replies == [], f"a reply to an unreadable packet or a response: {packet!r}"
        return
    assert len(replies) == 1, f"{len(replies)} replies to {packet!r}"
    (reply,) = replies
    response = dns.message.from_wire(reply)
    assert response.id == struct.unpack("!H", packet[:2])[0]
    assert response.flags & dns.flags.QR
    assert response.opcode() == (packet[2] >> 3) & 0xF
    rcode = response.rcode()
    if rcode in REFUSALS:
        return
    assert rcode != dns.rcode.SERVFAIL, f"SERVFAIL for {packet!r}"
    query = dns.message.from_wire(packet)
    assert response.question == query.question


# --- the packet entry points, called directly -----------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An Application serving the demo cluster in this process; its DNSServer."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "Corefile").write_text(COREFILE)
    app = Application(load(str(folder / "Corefile")), reactor)
    app.start()
    pytest_twisted.blockon(within(defer.gatherResults([c.source.synced for c in app.caches.values()])))
    (dns_server,) = app.servers.values()
    yield dns_server
    pytest_twisted.blockon(within(app.shutdown(lameduck=False)))


CLIENT = ("127.0.0.1", 5300)


def full_path(server, packet: bytes, proto: str) -> list[bytes]:
    sent: list[bytes] = []
    server.answer(packet, CLIENT, proto, sent.append)
    return sent


def comparable(wire: bytes) -> tuple:
    message = dns.message.from_wire(wire)
    return (message, message.edns, message.ednsflags, message.payload, message.rcode())


def check_both_paths(server, proto: str, packet: bytes) -> None:
    """The full path answers per the contract; an answer from the table is the full path's, byte for byte.

    The table is asked first, so that its entry may have been rendered for
    another client (another size, transport or spelling): it must still be
    the very bytes CoreDNS would send this one.
    """
    before = server.fast_answer(packet, proto == "udp", reactor.seconds())
    replies = full_path(server, packet, proto)
    check_replies(packet, replies)
    if before is not None:
        assert readable(packet)
        assert before[0] == replies[0]
    hit = server.fast_answer(packet, proto == "udp", reactor.seconds())
    if hit is not None:
        assert comparable(hit[0]) == comparable(replies[0])


# pytest-twisted runs each example in the reactor's greenlet; it cannot wrap
# a parametrized @given test twice, hence one test per transport.
DIRECT = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@DIRECT
@given(packet=PACKETS)
def test_every_udp_packet_gets_a_sane_reply_or_none(server, packet):
    """Over UDP (the client's size applies), any packet gets a reply per the contract, or none."""
    check_both_paths(server, "udp", packet)


@DIRECT
@given(packet=PACKETS)
def test_every_tcp_message_gets_a_sane_reply_or_none(server, packet):
    """Over TCP (no size limit), any message gets a reply per the contract, or none."""
    check_both_paths(server, "tcp", packet)


def test_a_question_name_longer_than_255_octets_gets_formerr(server):
    """RFC 1035 section 3.1: names are at most 255 octets. The hit path passes
    such a question to the full path, which answers FORMERR."""
    labels = [b"a" * 63] * 4 + [b"svc", b"cluster", b"local"]
    name = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    assert len(name) > 255
    packet = struct.pack("!HHHHHH", 4242, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    assert server.fast_answer(packet, True, reactor.seconds()) is None
    (reply,) = full_path(server, packet, "udp")
    assert reply[:2] == packet[:2]
    assert reply[3] & 0x0F == dns.rcode.FORMERR


def frames_in(data: bytes) -> list[bytes]:
    frames = []
    while data:
        (length,) = struct.unpack("!H", data[:2])
        frames.append(data[2 : 2 + length])
        data = data[2 + length :]
    return frames


@settings(max_examples=200, deadline=None)
@given(stream=st.lists(st.one_of(st.binary(max_size=64), PACKETS.map(lambda p: struct.pack("!H", len(p)) + p)),
                       max_size=6),
       cuts=st.lists(st.integers(1, 64), max_size=6))
def test_any_byte_stream_on_tcp_gets_only_whole_framed_replies(server, stream, cuts):
    """Arbitrary bytes on a connection, in arbitrary segments: every reply is a whole, parseable frame."""
    protocol = TCPFactory(server, server.guard).buildProtocol(None)
    transport = StringTransport(peerAddress=address.IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(transport)
    data = b"".join(stream)
    at = 0
    for cut in cuts + [len(data)]:
        protocol.dataReceived(data[at : at + cut])
        at += cut
    protocol.connectionLost(None)
    for frame in frames_in(transport.value()):
        response = dns.message.from_wire(frame)
        assert response.flags & dns.flags.QR


# --- a live server over real sockets ----------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """`python -m discovery` serving the demo cluster; (process, port)."""
    folder = tmp_path_factory.mktemp("fuzz-live")
    (folder / "Corefile").write_text(COREFILE)
    with CLIProcess(["-conf", str(folder / "Corefile")], cwd=folder) as process:
        port = process.port()
        process.answers(port)
        yield process, port
        assert process.process.poll() is None, process.output
        errors = [line for line in process.lines if "[ERROR]" in line or "[FATAL]" in line or "Traceback" in line]
        assert errors == []


LIVE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@LIVE
@given(packet=PACKETS)
def test_a_live_server_answers_every_udp_packet_sanely_and_keeps_answering(live, packet):
    """Over real UDP: the contract holds for each packet, and a probe sent after it is answered."""
    process, port = live
    check_replies(packet, exchange_raw(packet, "127.0.0.1", port, "udp"))


@LIVE
@given(packet=PACKETS)
def test_a_live_server_answers_every_tcp_message_sanely_and_keeps_answering(live, packet):
    """Over a real TCP connection: the contract holds for each message, and a probe after it is answered."""
    process, port = live
    check_replies(packet, exchange_raw(packet, "127.0.0.1", port, "tcp"))


# --- EDNS options: valid queries whose OPT record carries mutated options ------------------------

#: The payload sizes the option tests advertise.
PAYLOADS = [512, 1232, 4096, 65535]


@st.composite
def raw_options(draw) -> bytes:
    """Options as bytes: COOKIE, ECS, NSID or any code, with data of any length, and a length field that may lie."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        code = draw(st.sampled_from([8, 10, 3, 15]) | st.integers(0, 0xFFFF))
        if code == 8 and draw(st.booleans()):
            family = draw(st.sampled_from([0, 1, 2, 3]))
            source = draw(st.integers(0, 130))
            scope = draw(st.integers(0, 2))
            data = struct.pack("!HBB", family, source, scope) + draw(st.binary(max_size=17))
        else:
            data = draw(st.binary(max_size=44))
        length = draw(st.just(len(data)) | st.integers(0, 60))
        parts.append(struct.pack("!HH", code, length) + data)
    return b"".join(parts) + draw(st.binary(max_size=3) | st.just(b""))


@st.composite
def well_formed_options(draw) -> bytes:
    """Options that follow RFC 6891, 7873 and 7871: they must never cost the answer."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["cookie", "ecs", "other"]))
        if kind == "cookie":
            data = draw(st.binary(min_size=8, max_size=8) | st.binary(min_size=16, max_size=40))
            code = 10
        elif kind == "ecs":
            family, bits = draw(st.sampled_from([(1, 32), (2, 128)]))
            source = draw(st.integers(0, bits))
            octets = (source + 7) // 8
            address = bytearray(draw(st.binary(min_size=octets, max_size=octets)))
            if source % 8:
                address[-1] &= 0xFF << (8 - source % 8) & 0xFF
            data = struct.pack("!HBB", family, source, 0) + bytes(address)
            code = 8
        else:
            code = draw(st.sampled_from([3, 12, 15, 65001]))
            # An extended error (RFC 8914) holds at least its 2-byte code.
            data = b"" if code == 3 else draw(st.binary(min_size=2 if code == 15 else 0, max_size=20))
        parts.append(struct.pack("!HH", code, len(data)) + data)
    return b"".join(parts)


def with_options(question: tuple[str, str], payload: int, options: bytes) -> tuple[bytes, bytes]:
    """(the plain EDNS query, the same query with these bytes as its OPT RDATA)."""
    plain = dns.message.make_query(*question, use_edns=0, payload=payload).to_wire()
    return plain, plain[:-2] + struct.pack("!H", len(options)) + options


def udp_limit(server, payload: int) -> int:
    return min(max(512, payload), server.max_udp_size)


OPTIONS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@OPTIONS
@given(question=st.sampled_from(QUESTIONS), payload=st.sampled_from(PAYLOADS), options=raw_options())
def test_a_query_with_mutated_options_gets_formerr_or_an_answer_within_its_size(server, question, payload, options):
    """Every reply, from the table or the full path, is FORMERR or no larger than the query allowed over UDP.

    RFC 6891 6.1.2, RFC 7873 5.2.2 and RFC 7871 7.1.1: a malformed option is
    FORMERR; otherwise the answer fits the advertised size (at most the
    server's UDP limit). The plain question is asked first so that the table
    holds its answer.
    """
    plain, packet = with_options(question, payload, options)
    full_path(server, plain, "udp")
    for reply in full_path(server, packet, "udp") + [
        hit[0] for hit in [server.fast_answer(packet, True, reactor.seconds())] if hit is not None
    ]:
        response = dns.message.from_wire(reply)
        assert response.rcode() == dns.rcode.FORMERR or len(reply) <= udp_limit(server, payload)
    check_both_paths(server, "udp", packet)


@OPTIONS
@given(question=st.sampled_from(QUESTIONS), payload=st.sampled_from(PAYLOADS), options=well_formed_options())
def test_a_query_with_well_formed_options_is_never_formerr(server, question, payload, options):
    """Options that follow their RFCs get the same answer as the plain query, never FORMERR."""
    plain, packet = with_options(question, payload, options)
    expected = dns.message.from_wire(full_path(server, plain, "udp")[0])
    (reply,) = full_path(server, packet, "udp")
    response = dns.message.from_wire(reply)
    assert response.rcode() == expected.rcode() != dns.rcode.FORMERR
    assert response.answer == expected.answer
    check_both_paths(server, "udp", packet)
