"""The DNS wire edge, end to end: listeners, EDNS, truncation, TCP framing and the error ladder.

A real Application on 127.0.0.1 serves a small cluster written as manifests;
dnspython (and raw sockets where the bytes themselves are the point) ask it.
The expectations come from the RFCs: 1035 (header, TCP length prefix),
6891 (EDNS0, BADVERS), 2181 section 9 (TC), 7766 (several queries per TCP
connection) and 4343 (case).
"""

from __future__ import annotations

import logging
import re
import socket
import struct
import textwrap

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import pytest_twisted
from twisted.internet import address, reactor, threads
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from discovery.dns.tcp import TCPFactory
from discovery.dns.timeouts import TimeoutsConfig
from discovery.dns.server import BlockRuntime, DNSServer
from tests.integration.dnsserver import (
    TIMEOUT,
    addresses,
    free_port,
    ipv6_loopback,
    rdata_texts,
    read_frame,
    within,
)

FRONTEND = "frontend.default.svc.cluster.local."
FRONTEND_IP = "10.96.7.7"
#: Headless Services with this many ready endpoints: answers of about 1,660
#: bytes compressed (more than 512 and 1232, less than 4096), of about 380
#: bytes compressed, and an SRV answer that fits 512 bytes while its glue
#: does not (each A record's owner points to its SRV target, 16 bytes).
BIG, MEDIUM, GLUED = 100, 20, 7


def endpoint_ips(count: int, third: int) -> list[str]:
    return [f"10.1.{third}.{i + 1}" for i in range(count)]


def headless(name: str, ips: list[str]) -> str:
    endpoints = "".join(f"  - addresses: [{ip}]\n" for ip in ips)
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: default}}
        spec:
          clusterIP: None
          ports: [{{name: http, port: 80, protocol: TCP}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: {name}-abcde
          namespace: default
          labels: {{kubernetes.io/service-name: {name}}}
        addressType: IPv4
        ports: [{{name: http, port: 80, protocol: TCP}}]
        endpoints:
        """) + endpoints


CLUSTER = textwrap.dedent(f"""\
    apiVersion: v1
    kind: Service
    metadata: {{name: frontend, namespace: default}}
    spec:
      clusterIP: {FRONTEND_IP}
      ports: [{{name: http, port: 80, protocol: TCP}}]
    ---
    """) + headless("big", endpoint_ips(BIG, 1)) + "---\n" + headless("medium", endpoint_ips(MEDIUM, 2)) + "---\n" + headless("glued", endpoint_ips(GLUED, 3))


def kubernetes_block(port: int = 0, bind: str = "127.0.0.1", zone: str = "cluster.local") -> str:
    return textwrap.dedent(f"""\
        {zone}:{port} {{
            bind {bind}
            kubernetes {{
                manifests cluster
            }}
        }}
        """)


@pytest.fixture
def cluster_folder(tmp_path):
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "cluster.yaml").write_text(CLUSTER)
    return folder


@pytest.fixture
def serve(dns_server, cluster_folder):
    """start(corefile=one kubernetes block on 127.0.0.1) -> RunningServer."""

    async def start(corefile: str | None = None):
        return await dns_server(corefile or kubernetes_block())

    return start


def header(qid: int, flags: int, qdcount: int = 1, ancount: int = 0, nscount: int = 0, arcount: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qdcount, ancount, nscount, arcount)


def question(name: str, rdtype: int = 1, rdclass: int = 1) -> bytes:
    return dns.name.from_text(name).to_wire() + struct.pack("!HH", rdtype, rdclass)


def parse(wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(wire)


# --- listeners ----------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_block_answers_on_its_address_and_port(serve, proto):
    """The block's bind address and port answer a Service's A record over UDP and over TCP."""
    server = await serve()
    response = await server.query(FRONTEND, "A", proto)
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == [FRONTEND_IP]


@pytest_twisted.ensureDeferred
async def test_each_server_block_listens_on_its_own_port(dns_server, cluster_folder, tmp_path):
    """Two blocks on two ports: each port answers its own block's zone and refuses the other's."""
    (tmp_path / "hosts").write_text("192.0.2.1 www.example.test\n")
    hosts_port = free_port()
    server = await dns_server(kubernetes_block() + textwrap.dedent(f"""\
        example.test:{hosts_port} {{
            bind 127.0.0.1
            hosts {tmp_path / "hosts"}
        }}
        """))
    kubernetes_port = server.app.servers[(0, ("127.0.0.1",))].port
    www = dns.message.make_query("www.example.test.", "A")
    frontend = dns.message.make_query(FRONTEND, "A")
    assert addresses(await server.send(www, port=hosts_port)) == ["192.0.2.1"]
    assert addresses(await server.send(frontend, port=kubernetes_port)) == [FRONTEND_IP]
    assert (await server.send(frontend, port=hosts_port)).rcode() == dns.rcode.REFUSED
    assert (await server.send(www, port=kubernetes_port)).rcode() == dns.rcode.REFUSED


@pytest_twisted.ensureDeferred
async def test_blocks_on_one_port_share_its_listener(dns_server, cluster_folder, tmp_path):
    """Two blocks on the same port: one listener answers each zone from its own block."""
    (tmp_path / "hosts").write_text("192.0.2.1 www.example.test\n")
    server = await dns_server(kubernetes_block() + textwrap.dedent(f"""\
        example.test:0 {{
            bind 127.0.0.1
            hosts {tmp_path / "hosts"}
        }}
        """))
    assert addresses(await server.query("www.example.test.")) == ["192.0.2.1"]
    assert addresses(await server.query(FRONTEND)) == [FRONTEND_IP]


@pytest.mark.skipif(not ipv6_loopback(), reason="this host has no IPv6 loopback address (::1)")
@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_block_bound_to_both_families_answers_on_each(serve, proto):
    """`bind 127.0.0.1 ::1`: the same port answers over IPv4 and over IPv6."""
    server = await serve(kubernetes_block(bind="127.0.0.1 ::1"))
    query = dns.message.make_query(FRONTEND, "A")
    assert addresses(await server.send(query, proto, host="127.0.0.1")) == [FRONTEND_IP]
    assert addresses(await server.send(query, proto, host="::1")) == [FRONTEND_IP]


@pytest.mark.skipif(not ipv6_loopback(), reason="this host has no IPv6 loopback address (::1)")
@pytest_twisted.ensureDeferred
async def test_a_block_bound_to_ipv6_only_is_not_on_ipv4(serve):
    """`bind ::1` listens on ::1 alone: 127.0.0.1 refuses the TCP connection."""
    server = await serve(kubernetes_block(bind="::1"))
    assert addresses(await server.send(dns.message.make_query(FRONTEND, "A"), "tcp", host="::1")) == [FRONTEND_IP]
    with pytest.raises(ConnectionRefusedError):
        await server.send(dns.message.make_query(FRONTEND, "A"), "tcp", host="127.0.0.1")


# --- EDNS0 (RFC 6891) -------------------------------------------------------------


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_an_edns_query_gets_an_opt_record_back(serve, proto):
    """A version 0 OPT gets a version 0 OPT back, offering 1232 bytes (the 2020 DNS flag day size)."""
    server = await serve()
    response = await server.query(FRONTEND, "A", proto, use_edns=0, payload=4096)
    assert response.edns == 0
    assert response.payload == 1232
    assert addresses(response) == [FRONTEND_IP]


@pytest_twisted.ensureDeferred
async def test_the_do_bit_is_echoed(serve):
    """A query with DO set gets DO back in the OPT record (RFC 3225), from the table too."""
    server = await serve()
    for _ in range(2):
        response = await server.query(FRONTEND, "A", use_edns=0, want_dnssec=True)
        assert response.ednsflags & dns.flags.DO


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_query_without_edns_gets_no_opt_record(serve, proto):
    """No OPT in the query, none in the response (RFC 6891 section 7)."""
    server = await serve()
    response = await server.query(FRONTEND, "A", proto, use_edns=False)
    assert response.edns == -1
    assert addresses(response) == [FRONTEND_IP]


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_an_unknown_edns_version_gets_badvers(serve, proto):
    """EDNS version 1 gets BADVERS with a version 0 OPT and no answer (RFC 6891 section 6.1.3)."""
    server = await serve()
    query = dns.message.make_query(FRONTEND, "A", use_edns=1)
    response = await server.send(query, proto)
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0
    assert response.id == query.id and response.question == query.question
    assert not response.answer


@pytest_twisted.ensureDeferred
async def test_an_answer_within_the_clients_udp_size_comes_whole(serve):
    """A 1232-byte EDNS client gets all 20 records of a 380-byte answer, without TC."""
    server = await serve()
    response = await server.query("medium.default.svc.cluster.local.", "A", use_edns=0, payload=1232)
    assert not response.flags & dns.flags.TC
    assert addresses(response) == sorted(endpoint_ips(MEDIUM, 2))


ADVERTISED = [512, 1232, 4096, 65535]


@pytest.mark.parametrize("rdtype", ["A", "SRV"])
@pytest.mark.parametrize("payload", ADVERTISED)
@pytest_twisted.ensureDeferred
async def test_a_udp_answer_is_never_larger_than_1232_bytes_whatever_the_client_advertises(serve, payload, rdtype):
    """UDP answers are clamped to 1232 bytes (DNS flag day 2020), cut as CoreDNS cuts them.

    miekg/dns msg_truncate.go Truncate (what CoreDNS's request.Scrub calls):
    records are kept in order while they fit, so the answer holds as many
    records as fit, the additional section is dropped first, and TC is set
    because answer records were left out; the client then retries over TCP.
    """
    server = await serve()
    query = dns.message.make_query("big.default.svc.cluster.local.", rdtype, use_edns=0, payload=payload)
    (reply,) = await server.raw(query.to_wire())
    response = parse(reply)
    assert len(reply) <= min(payload, 1232)
    assert response.flags & dns.flags.TC
    assert response.answer and not response.additional
    assert response.edns == 0
    records = rdata_texts(response, rdtype)
    assert 0 < len(records) < BIG


@pytest.mark.parametrize("rdtype", ["A", "SRV"])
@pytest.mark.parametrize("payload", ADVERTISED)
@pytest_twisted.ensureDeferred
async def test_a_tcp_answer_is_whole_whatever_the_client_advertises(serve, payload, rdtype):
    """Over TCP the advertised size does not apply (CoreDNS's Size() is 65535): every record, no TC."""
    server = await serve()
    response = await server.query("big.default.svc.cluster.local.", rdtype, "tcp", use_edns=0, payload=payload)
    assert not response.flags & dns.flags.TC
    assert len(rdata_texts(response, rdtype)) == BIG
    if rdtype == "SRV":
        assert rdata_texts(response, "A", "additional") == sorted(endpoint_ips(BIG, 1))


@pytest.mark.parametrize("edns, limit", [(dict(use_edns=0, payload=1232), 1232), (dict(use_edns=False), 512)])
@pytest_twisted.ensureDeferred
async def test_an_answer_bigger_than_the_clients_udp_size_is_truncated(serve, edns, limit):
    """The answer is cut to the client's size (512 without EDNS) with TC set (RFC 2181 section 9)."""
    server = await serve()
    query = dns.message.make_query("big.default.svc.cluster.local.", "A", **edns)
    wire = await server.raw(query.to_wire())
    (reply,) = wire
    response = parse(reply)
    assert len(reply) <= limit
    assert response.flags & dns.flags.TC
    assert response.id == query.id and response.question == query.question


@pytest_twisted.ensureDeferred
async def test_an_edns_size_below_512_counts_as_512(serve):
    """A client offering 200 bytes still gets a 380-byte answer whole (RFC 6891 section 6.2.5)."""
    server = await serve()
    response = await server.query("medium.default.svc.cluster.local.", "A", use_edns=0, payload=200)
    assert not response.flags & dns.flags.TC
    assert len(addresses(response)) == MEDIUM


@pytest.mark.parametrize("first, then, limit", [
    (dict(use_edns=False), dict(use_edns=False), 512),
    (dict(use_edns=0, payload=4096), dict(use_edns=0, payload=1232), 1232),
], ids=["tcp-then-udp-without-edns", "tcp-4096-then-udp-1232"])
@pytest_twisted.ensureDeferred
async def test_an_answer_rendered_for_a_larger_client_is_cut_for_a_smaller_one(serve, first, then, limit):
    """An answer kept for reuse after a TCP client still honours the next UDP client's size."""
    server = await serve()
    name = "big.default.svc.cluster.local."
    whole = await server.query(name, "A", "tcp", **first)
    assert len(addresses(whole)) == BIG
    (reply,) = await server.raw(dns.message.make_query(name, "A", **then).to_wire())
    assert len(reply) <= limit
    assert parse(reply).flags & dns.flags.TC


@pytest_twisted.ensureDeferred
async def test_tcp_carries_the_whole_answer_without_edns(serve):
    """Over TCP the size limit is the message's own (65535): all 100 records, no TC."""
    server = await serve()
    response = await server.query("big.default.svc.cluster.local.", "A", "tcp", use_edns=False)
    assert not response.flags & dns.flags.TC
    assert len(addresses(response)) == BIG


@pytest_twisted.ensureDeferred
async def test_a_truncated_answer_is_retried_over_tcp_by_the_client(serve):
    """dnspython's UDP-with-fallback sees TC, asks again over TCP and gets every record."""
    server = await serve()
    query = dns.message.make_query("big.default.svc.cluster.local.", "A")
    response, used_tcp = await within(threads.deferToThread(
        dns.query.udp_with_fallback, query, server.host, timeout=TIMEOUT, port=server.port,
    ))
    assert used_tcp
    assert len(addresses(response)) == BIG


@pytest_twisted.ensureDeferred
async def test_glue_cut_for_a_small_udp_client_is_not_reused_over_tcp(serve):
    """An SRV answer whose additional records did not fit 512 bytes does not stand in for TCP's whole answer."""
    server = await serve()
    name = "glued.default.svc.cluster.local."
    small = await server.query(name, "SRV", use_edns=False)
    assert len(rdata_texts(small, "SRV")) == GLUED
    assert len(rdata_texts(small, "A", "additional")) < GLUED
    whole = await server.query(name, "SRV", "tcp", use_edns=False)
    assert rdata_texts(whole, "A", "additional") == sorted(endpoint_ips(GLUED, 3))


# --- malformed EDNS options (RFC 6891 6.1.2, RFC 7873 5.2.2, RFC 7871 6 and 7.1.1) -------------------


def with_options(query: dns.message.Message, options: bytes) -> bytes:
    """The query's wire form with raw bytes as its OPT RDATA (the OPT record comes last)."""
    wire = query.to_wire()
    assert wire[-2:] == b"\x00\x00", "the query must carry an OPT record without options"
    return wire[:-2] + struct.pack("!H", len(options)) + options


def option(code: int, data: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HH", code, len(data) if length is None else length) + data


MALFORMED_OPTIONS = [
    pytest.param(option(10, b"1234567"), id="cookie-shorter-than-the-client-cookie"),
    pytest.param(option(10, b"12345678" + b"s" * 4), id="cookie-with-a-server-cookie-of-4-bytes"),
    pytest.param(option(10, b"c" * 41), id="cookie-longer-than-40-bytes"),
    pytest.param(option(8, b"\x00\x01\x18\x00\x0a\x01\x02\x03"), id="subnet-24-with-4-address-bytes"),
    pytest.param(option(8, b"\x00\x01\x18\x00\x0a\x01"), id="subnet-24-with-2-address-bytes"),
    pytest.param(option(8, b"\x00\x01\x21\x00" + b"\x0a" * 5), id="subnet-ipv4-prefix-33"),
    pytest.param(option(8, b"\x00\x03\x08\x00\x0a"), id="subnet-unknown-family"),
    pytest.param(option(8, b"\x00\x01\x17\x00\x0a\x01\x03"), id="subnet-bits-set-past-the-prefix"),
    pytest.param(option(3, b"", length=6), id="option-length-runs-past-the-record"),
    pytest.param(option(3, b"") + b"\x00\x0a", id="half-an-option-header-at-the-end"),
]


@pytest.mark.parametrize("options", MALFORMED_OPTIONS)
@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_malformed_edns_option_gets_formerr_even_for_a_question_already_answered(serve, options, proto):
    """FORMERR with the client's ID and question, never the answer from the table.

    RFC 7873 section 5.2.2 (COOKIE under 8, 9 to 15 or over 40 bytes), RFC
    7871 sections 6 and 7.1.1 (ECS family, prefix and address that disagree)
    and RFC 6891 section 6.1.2 (an option running past the record) make such
    a query malformed; miekg/dns fails to unpack it and CoreDNS answers
    FORMERR (the reply is the query's header and question, no records).
    """
    server = await serve()
    plain = dns.message.make_query(FRONTEND, "A", use_edns=0)
    assert addresses(await server.send(plain, proto)) == [FRONTEND_IP]
    (reply,) = await server.raw(with_options(plain, options), proto)
    response = parse(reply)
    assert response.rcode() == dns.rcode.FORMERR
    assert response.id == plain.id and response.question == plain.question
    assert not response.answer


@pytest.mark.parametrize("options", [
    pytest.param(option(10, b"12345678"), id="client-cookie"),
    pytest.param(option(10, b"12345678" + b"s" * 16), id="client-and-server-cookie"),
    pytest.param(option(8, b"\x00\x01\x18\x00\x0a\x01\x02"), id="subnet-ipv4-24"),
    pytest.param(option(8, b"\x00\x02\x38\x00" + b"\x20\x01\x0d\xb8\x00\x00\x01"), id="subnet-ipv6-56"),
    pytest.param(option(8, b"\x00\x00\x00\x00"), id="subnet-family-0-as-dig-sends-it"),
    pytest.param(option(3, b""), id="nsid-request"),
])
@pytest_twisted.ensureDeferred
async def test_a_well_formed_edns_option_gets_the_answer(serve, options):
    """Well-formed COOKIE, ECS and NSID options change nothing: the answer comes, from the table too."""
    server = await serve()
    plain = dns.message.make_query(FRONTEND, "A", use_edns=0)
    for _ in range(2):
        (reply,) = await server.raw(with_options(plain, options))
        assert addresses(parse(reply)) == [FRONTEND_IP]


# --- TCP (RFC 1035 section 4.2.2, RFC 7766) ----------------------------------------------------


def tcp_exchange(host: str, port: int, frames: list[bytes], replies: int) -> list[bytes]:
    """Write frames in one go on a fresh connection; read that many length-prefixed replies."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(b"".join(frames))
        return [read_frame(sock) for _ in range(replies)]


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


@pytest_twisted.ensureDeferred
async def test_tcp_messages_carry_a_two_byte_length_prefix(serve):
    """A length-prefixed query gets one length-prefixed reply whose prefix is its exact size."""
    server = await serve()
    query = dns.message.make_query(FRONTEND, "A", id=4242)
    (reply,) = await threads.deferToThread(tcp_exchange, server.host, server.port, [framed(query.to_wire())], 1)
    response = parse(reply)
    assert response.id == 4242
    assert addresses(response) == [FRONTEND_IP]


@pytest_twisted.ensureDeferred
async def test_several_queries_on_one_connection_are_all_answered_in_order(serve):
    """Three queries written back to back on one connection get three replies, in their order."""
    server = await serve()
    queries = [
        dns.message.make_query(FRONTEND, "A", id=1),
        dns.message.make_query("big.default.svc.cluster.local.", "A", id=2),
        dns.message.make_query("nothing.default.svc.cluster.local.", "A", id=3),
    ]
    replies = await threads.deferToThread(
        tcp_exchange, server.host, server.port, [framed(q.to_wire()) for q in queries], 3
    )
    responses = [parse(reply) for reply in replies]
    assert [r.id for r in responses] == [1, 2, 3]
    assert addresses(responses[0]) == [FRONTEND_IP]
    assert len(addresses(responses[1])) == BIG
    assert responses[2].rcode() == dns.rcode.NXDOMAIN


def idle_closes(host: str, port: int) -> bytes:
    """Connect, ask once, then wait for the server to hang up; what came after the reply."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(framed(dns.message.make_query(FRONTEND, "A").to_wire()))
        read_frame(sock)
        return sock.recv(1)


@pytest_twisted.ensureDeferred
async def test_an_idle_tcp_connection_is_closed_by_the_server(serve):
    """A connection with no query for the idle timeout is closed from the server's side."""
    server = await serve()
    server.dns.tcp_timeouts = TimeoutsConfig(idle=0.2)
    assert await within(threads.deferToThread(idle_closes, server.host, server.port)) == b""


class FixedAnswer:
    """A plugin answering every question with one A record."""

    name = "fixed"

    def serve(self, request, next):
        response = request.reply()
        response.answer.append(dns.rrset.from_text(request.qname, 5, "IN", "A", "192.0.2.7"))
        return response


class Raising:
    """A plugin with a bug."""

    name = "raising"

    def serve(self, request, next):
        raise ZeroDivisionError("a bug")


def tcp_connection(clock: Clock):
    """A TCP protocol of a server on a fake clock, connected to an in-memory transport."""
    server = DNSServer(clock, [BlockRuntime(zones=(".",), server="dns://:53", plugins=[FixedAnswer()])], port=0)
    protocol = TCPFactory(server, server.guard).buildProtocol(None)
    transport = StringTransport(peerAddress=address.IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(transport)
    return protocol, transport


def test_activity_keeps_a_tcp_connection_open_and_silence_closes_it():
    """Each answer restarts the idle timer; the connection closes only after a full timeout of silence."""
    clock = Clock()
    protocol, transport = tcp_connection(clock)
    timeout = TimeoutsConfig().idle
    protocol.dataReceived(framed(dns.message.make_query("a.example.", "A").to_wire()))
    for _ in range(3):
        clock.advance(timeout * 0.9)
        protocol.dataReceived(framed(dns.message.make_query("a.example.", "A").to_wire()))
        assert not transport.disconnecting
    clock.advance(timeout * 0.9)
    assert not transport.disconnecting
    clock.advance(timeout * 0.2)
    assert transport.disconnecting


def replies_in(data: bytes) -> list[dns.message.Message]:
    messages = []
    while data:
        (length,) = struct.unpack("!H", data[:2])
        messages.append(parse(data[2 : 2 + length]))
        data = data[2 + length :]
    return messages


def test_a_query_split_across_segments_is_answered_once_complete():
    """A frame arriving a byte at a time is answered once, when its last byte arrives."""
    protocol, transport = tcp_connection(Clock())
    frame = framed(dns.message.make_query("a.example.", "A", id=77).to_wire())
    for i in range(len(frame) - 1):
        protocol.dataReceived(frame[i : i + 1])
    assert transport.value() == b""
    protocol.dataReceived(frame[-1:])
    (response,) = replies_in(transport.value())
    assert response.id == 77


def test_two_queries_in_one_segment_are_both_answered():
    """Two frames in one segment, the second split off into the next, get two replies in order."""
    protocol, transport = tcp_connection(Clock())
    frames = b"".join(framed(dns.message.make_query("a.example.", "A", id=i).to_wire()) for i in (1, 2, 3))
    protocol.dataReceived(frames[:-5])
    protocol.dataReceived(frames[-5:])
    assert [r.id for r in replies_in(transport.value())] == [1, 2, 3]


# --- the error ladder ---------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_an_opcode_other_than_query_gets_notimp(serve, opcode, proto):
    """Only QUERY is implemented: other opcodes get NOTIMP with the client's ID and opcode (RFC 1035 4.1.1)."""
    server = await serve()
    packet = header(555, dns.opcode.to_flags(opcode)) + question(FRONTEND)
    (reply,) = await server.raw(packet, proto)
    (qid, flags) = struct.unpack("!HH", reply[:4])
    assert qid == 555
    assert flags & dns.flags.QR
    assert dns.opcode.from_flags(flags) == opcode
    assert flags & 0xF == dns.rcode.NOTIMP


@pytest.mark.parametrize("packet", [
    header(9, 0, qdcount=0),
    header(9, 0, qdcount=2) + question(FRONTEND) + question("big.default.svc.cluster.local."),
], ids=["no-question", "two-questions"])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_anything_but_one_question_gets_formerr(serve, packet, proto):
    """A query with zero or two questions gets FORMERR with its ID."""
    server = await serve()
    (reply,) = await server.raw(packet, proto)
    response = parse(reply)
    assert response.id == 9
    assert response.rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("packet", [
    header(10, 0) + b"\x08frontend\x07def",
    header(10, 0) + question(FRONTEND) + b"trailing garbage",
    header(10, 0, arcount=1) + question(FRONTEND),
], ids=["name-runs-past-the-end", "trailing-bytes", "missing-additional-record"])
@pytest_twisted.ensureDeferred
async def test_a_query_that_does_not_parse_gets_formerr(serve, packet):
    """A readable header with a body that does not parse gets FORMERR with the client's ID."""
    server = await serve()
    (reply,) = await server.raw(packet)
    (qid, flags) = struct.unpack("!HH", reply[:4])
    assert qid == 10
    assert flags & dns.flags.QR
    assert flags & 0xF == dns.rcode.FORMERR
    parse(reply)


@pytest.mark.parametrize("packet", [
    b"\x12\x34\x01\x00\x00\x01",
    header(11, dns.flags.QR) + question(FRONTEND),
], ids=["shorter-than-a-header", "a-response"])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_packet_without_a_readable_query_header_is_dropped(serve, packet, proto):
    """Fewer than 12 bytes, or a response (QR set), gets no reply at all, and the server answers on."""
    server = await serve()
    assert await server.raw(packet, proto) == []
    assert addresses(await server.query(FRONTEND, "A", proto)) == [FRONTEND_IP]


@pytest_twisted.ensureDeferred
async def test_a_name_outside_every_block_is_refused(serve):
    """No block serves example.org.: REFUSED, as CoreDNS answers."""
    server = await serve()
    response = await server.query("www.example.org.", "A")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.answer


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_bug_while_answering_gets_servfail_and_one_log_line(caplog, proto):
    """A plugin that raises gets the client SERVFAIL and one error line naming the query."""
    server = DNSServer(reactor, [BlockRuntime(zones=(".",), server="dns://:0", plugins=[Raising()])],
                       port=0, addresses=("127.0.0.1",))
    server.listen()
    try:
        query = dns.message.make_query("broken.example.", "AAAA")
        with caplog.at_level(logging.ERROR, logger="wayfinder"):
            exchange = dns.query.udp if proto == "udp" else dns.query.tcp
            response = await within(threads.deferToThread(exchange, query, "127.0.0.1", timeout=TIMEOUT,
                                                          port=server.port))
        assert response.rcode() == dns.rcode.SERVFAIL
        assert response.id == query.id and response.question == query.question
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(lines) == 1
        assert "broken.example." in lines[0] and "AAAA" in lines[0] and "a bug" in lines[0]
    finally:
        await server.stop()


# --- case (RFC 4343) -----------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_the_qname_keeps_its_case_in_the_answer(serve, proto):
    """Each client's own spelling comes back in the question and the owner names, reused answers too."""
    server = await serve()
    for spelling in ("frontend.default.svc.cluster.local.", "FrontEnd.DEFAULT.svc.Cluster.Local.",
                     "fRoNtEnD.dEfAuLt.SvC.cLuStEr.LoCaL."):
        response = await server.query(spelling, "A", proto)
        assert response.question[0].name.to_text() == spelling
        assert [rrset.name.to_text() for rrset in response.answer] == [spelling]
        assert addresses(response) == [FRONTEND_IP]


def spelled(name: str) -> bytes:
    """A name in wire form, every label written out (no compression)."""
    return b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\x00"


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_mixed_case_srv_answer_is_byte_for_byte_what_coredns_sends(serve, proto):
    """A 0x20 SRV question gets CoreDNS's exact bytes, from the full path and from the table.

    plugin/kubernetes/handler_case_test.go (dnsPreserveCaseCases, the SRV
    case): the owner is the question as written, the SRV target and the
    additional owner are the Service's lower-case name with the zone in the
    question's case. CoreDNS sends an answer that fits uncompressed
    (miekg/dns Truncate sets Compress=false), so every name is spelled out.
    """
    server = await serve()
    qname = "_HtTp._TcP.fRoNtEnD.DeFaUlT.SvC.cLuStEr.LoCaL."
    target = "frontend.default.svc.cLuStEr.LoCaL."
    expected = (
        struct.pack("!HHHH", 1, 1, 0, 1)
        + spelled(qname) + struct.pack("!HH", 33, 1)
        + spelled(qname) + struct.pack("!HHIH", 33, 1, 5, 6 + len(spelled(target)))
        + struct.pack("!HHH", 0, 100, 80) + spelled(target)
        + spelled(target) + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(FRONTEND_IP)
    )
    query = dns.message.make_query(qname, "SRV")
    for _ in range(2):
        (reply,) = await server.raw(query.to_wire(), proto)
        assert reply[:2] == query.to_wire()[:2]
        assert reply[4:] == expected


@pytest_twisted.ensureDeferred
async def test_a_negative_answer_keeps_the_clients_case_in_its_soa(serve):
    """NXDOMAIN's SOA owner is the zone as this client wrote it, even when the answer is reused."""
    server = await serve()
    for zone in ("cluster.local.", "CLUSTER.Local."):
        response = await server.query(f"missing.default.svc.{zone}", "A")
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert [rrset.name.to_text() for rrset in response.authority] == [zone]


@pytest.mark.parametrize("flags", [0, dns.flags.RD, dns.flags.CD, dns.flags.RD | dns.flags.CD], ids=["none", "rd", "cd", "rd-cd"])
@pytest_twisted.ensureDeferred
async def test_the_rd_and_cd_bits_are_copied_from_each_query(serve, flags):
    """RD and CD come back as each client set them, whoever asked the same question before (RFC 1035, 4035)."""
    server = await serve()
    for others in (dns.flags.RD | dns.flags.CD, 0):
        await server.send(dns.message.make_query(FRONTEND, "A", flags=others))
    response = await server.send(dns.message.make_query(FRONTEND, "A", flags=flags))
    assert response.flags & (dns.flags.RD | dns.flags.CD) == flags
    assert addresses(response) == [FRONTEND_IP]


@pytest_twisted.ensureDeferred
async def test_an_upstream_that_never_answers_is_servfail_with_an_errors_line(dns_server, caplog):
    """With `errors`, a name no upstream answers gets SERVFAIL and one line naming it and why, as CoreDNS logs it."""
    closed = free_port()
    server = await dns_server(
        ".:0 {\n    bind 127.0.0.1\n    errors\n"
        f"    forward . 127.0.0.1:{closed} {{\n        max_fails 0\n    }}\n}}\n"
    )
    with caplog.at_level(logging.ERROR, logger="wayfinder.errors"):
        response = await server.query("www.example.test.", "A")
    assert response.rcode() == dns.rcode.SERVFAIL
    lines = [r.getMessage() for r in caplog.records if r.name == "wayfinder.errors"]
    assert lines == [f"2 www.example.test. A: 127.0.0.1:{closed}: connection refused"]


# --- the log and loadbalance directives at the wire ----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_query_gets_a_log_line_in_coredns_common_format(dns_server, cluster_folder, caplog):
    """`log`: one line per query, `{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}`, reused answers too."""
    server = await dns_server(kubernetes_block().replace("    kubernetes {", "    log\n    kubernetes {"))
    caplog.set_level(logging.INFO, logger="wayfinder.querylog")
    queries = [dns.message.make_query(FRONTEND, "A", id=qid, use_edns=False) for qid in (301, 302)]
    sizes = []
    for query in queries:
        (reply,) = await server.raw(query.to_wire())
        sizes.append((len(query.to_wire()), len(reply)))
    lines = [r.getMessage() for r in caplog.records if r.name == "wayfinder.querylog"]
    assert len(lines) == 2
    for line, query, (size, rsize) in zip(lines, queries, sizes):
        pattern = (
            rf'^127\.0\.0\.1:\d+ - {query.id} "A IN {re.escape(FRONTEND)} udp {size} false 512" '
            rf"NOERROR qr,aa,rd {rsize} \d+(\.\d+)?s$"
        )
        assert re.match(pattern, line), line


@pytest_twisted.ensureDeferred
async def test_loadbalance_rotates_the_addresses_between_answers(dns_server, cluster_folder):
    """`loadbalance`: successive answers for a headless Service lead with different addresses, same set."""
    server = await dns_server(kubernetes_block().replace("    kubernetes {", "    loadbalance\n    kubernetes {"))
    name = "medium.default.svc.cluster.local."
    leaders = set()
    for _ in range(4):
        response = await server.query(name, "A", "tcp")
        assert addresses(response) == sorted(endpoint_ips(MEDIUM, 2))
        leaders.add(response.answer[0][0].to_text())
    assert len(leaders) > 1


# --- the table of rendered answers serves CoreDNS's bytes to every client --------------------------

CLIENTS = [("udp", None), ("udp", 512), ("udp", 1232), ("udp", 4096), ("tcp", None), ("tcp", 65535)]


def sized_query(name: str, rdtype: str, payload: int | None) -> bytes:
    if payload is None:
        return dns.message.make_query(name, rdtype, id=99, use_edns=False).to_wire()
    return dns.message.make_query(name, rdtype, id=99, use_edns=0, payload=payload).to_wire()


@pytest.mark.parametrize("question", [
    ("medium.default.svc.cluster.local.", "A"),
    ("glued.default.svc.cluster.local.", "SRV"),
    ("big.default.svc.cluster.local.", "A"),
], ids=["fits-some-spelled-out", "glue-cut-at-512", "cut-below-1232"])
@pytest_twisted.ensureDeferred
async def test_an_answer_from_the_table_is_the_full_paths_for_every_client_after_any_other(serve, question):
    """Whoever filled the table (size, transport), a hit is byte for byte what the full path sends this client.

    The rendering rules (miekg/dns Truncate and CoreDNS's Scrub) differ by
    client size and transport, so an entry is reused only for the clients
    it is CoreDNS's answer for (compress.udp_sizes_served).
    """
    running = await serve()
    server = running.dns
    for first_proto, first_size in CLIENTS:
        for proto, size in CLIENTS:
            server.table.clear()
            server.answer(sized_query(*question, first_size), ("127.0.0.1", 5300), first_proto, lambda wire: None)
            packet = sized_query(*question, size)
            hit = server.fast_answer(packet, proto == "udp", reactor.seconds())
            sent: list[bytes] = []
            server.table.clear()
            server.answer(packet, ("127.0.0.1", 5300), proto, sent.append)
            if hit is not None:
                assert hit[0] == sent[0], (first_proto, first_size, proto, size)
