"""Messages packed byte for byte as CoreDNS packs them (discovery.dns.compress).

The golden bytes are written by hand from miekg/dns's rules: msg.go
packDomainName (a pointer only to an earlier name with the *same* text, its
compressionMap keyed by the exact string; SRV targets, packed with
compress=false, are written in full but remembered) and msg_truncate.go
Truncate (uncompressed when it fits; otherwise compressed, records kept in
order while they fit, TC when an answer or authority record is left out,
OPT last), plus CoreDNS's request.Scrub (over UDP, compress past 1480 bytes
for IPv4 clients and 1220 for IPv6).
"""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.rrset

from discovery.dns.compress import Rendered, pack, render, udp_sizes_served


def spelled(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\x00"


def pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def a_record(owner: bytes, address: bytes = b"\x0a\x00\x00\x01") -> bytes:
    return owner + struct.pack("!HHIH", 1, 1, 5, 4) + address


def response(qname: str, rdtype: str = "A", *, edns: bool = False) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype, id=7, use_edns=0 if edns else False)
    reply = dns.message.make_response(query)
    reply.flags = dns.flags.QR | dns.flags.AA
    return reply


def header(ancount: int, arcount: int = 0, flags: int = dns.flags.QR | dns.flags.AA) -> bytes:
    return struct.pack("!HHHHHH", 7, flags, 1, ancount, 0, arcount)


QNAME = "SvC1.TeStNs.SvC.cLuStEr.LoCaL."


def test_a_name_is_compressed_only_against_the_same_spelling():
    """A lower-case owner is written in full after a mixed-case question; the question's own spelling points to it."""
    message = response(QNAME)
    message.answer.append(dns.rrset.from_text(QNAME, 5, "IN", "A", "10.0.0.1"))
    message.answer.append(dns.rrset.from_text("svc1.testns.svc.cluster.local.", 5, "IN", "A", "10.0.0.1"))
    wire, truncated = pack(message, compress=True)
    question = spelled(QNAME) + struct.pack("!HH", 1, 1)
    assert wire == header(2) + question + a_record(pointer(12)) + a_record(spelled("svc1.testns.svc.cluster.local."))
    assert not truncated


def test_a_shared_suffix_in_the_same_spelling_is_pointed_to():
    """A name ending in the question's exact zone spelling points to that suffix."""
    message = response(QNAME)
    message.answer.append(dns.rrset.from_text("x.cLuStEr.LoCaL.", 5, "IN", "A", "10.0.0.1"))
    wire, _ = pack(message, compress=True)
    zone_offset = 12 + len(b"\x04SvC1\x06TeStNs\x03SvC")
    assert wire.endswith(a_record(b"\x01x" + pointer(zone_offset)))


def test_an_srv_target_is_written_in_full_and_later_names_point_to_it():
    """The SRV target never points back (RFC 2782), yet the additional owner equal to it points to it."""
    message = response("_http._tcp.web.example.", "SRV")
    message.answer.append(dns.rrset.from_text("_http._tcp.web.example.", 5, "IN", "SRV", "0 100 80 web.example."))
    message.additional.append(dns.rrset.from_text("web.example.", 5, "IN", "A", "10.0.0.1"))
    wire, _ = pack(message, compress=True)
    question = spelled("_http._tcp.web.example.") + struct.pack("!HH", 33, 1)
    srv_start = 12 + len(question)
    target_offset = srv_start + 2 + 10 + 6
    srv = pointer(12) + struct.pack("!HHIH", 33, 1, 5, 6 + len(spelled("web.example."))) + struct.pack(
        "!HHH", 0, 100, 80) + spelled("web.example.")
    assert wire == header(1, 1) + question + srv + a_record(pointer(target_offset))


def test_uncompressed_packing_spells_out_every_name():
    """Without compression (CoreDNS's reply that fits), the owner repeats the question in full."""
    message = response(QNAME)
    message.answer.append(dns.rrset.from_text(QNAME, 5, "IN", "A", "10.0.0.1"))
    wire, _ = pack(message, compress=False)
    assert wire == header(1) + spelled(QNAME) + struct.pack("!HH", 1, 1) + a_record(spelled(QNAME))


def many_addresses(count: int, *, edns: bool = False, glue: int = 0) -> dns.message.Message:
    message = response("big.example.", edns=edns)
    message.answer.append(
        dns.rrset.from_text("big.example.", 5, "IN", "A", *[f"10.0.{i // 250}.{i % 250 + 1}" for i in range(count)])
    )
    if glue:
        message.additional.append(dns.rrset.from_text("glue.example.", 5, "IN", "A", "10.9.9.9"))
    return message


QUESTION_SIZE = len(spelled("big.example.")) + 4
COMPRESSED_A = 2 + 10 + 4
OPT_SIZE = 11


def test_truncation_keeps_the_answer_records_that_fit_and_sets_tc():
    """100 A records for 512 bytes: as many records as fit, in order, TC set (miekg Truncate)."""
    wire, truncated, _ = render(many_addresses(100), 512, udp=True, ipv6=False)
    fit = (512 - 12 - QUESTION_SIZE) // COMPRESSED_A
    reply = dns.message.from_wire(wire)
    assert truncated and reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == fit
    assert [rdata.address for rdata in reply.answer[0]] == [f"10.0.0.{i + 1}" for i in range(fit)]


def test_truncation_drops_the_additional_records_first_without_tc():
    """An answer that fits with its glue cut loses the glue alone and has no TC; the OPT record stays last."""
    count = (512 - 12 - QUESTION_SIZE - OPT_SIZE) // COMPRESSED_A
    wire, truncated, _ = render(many_addresses(count, edns=True, glue=1), 512, udp=True, ipv6=False)
    reply = dns.message.from_wire(wire)
    assert truncated and not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == count and not reply.additional
    assert reply.edns == 0 and wire[-OPT_SIZE:-OPT_SIZE + 3] == b"\x00\x00\x29"
    assert len(wire) <= 512


def test_an_answer_that_fits_uncompressed_is_sent_uncompressed():
    """Five A records fit 512 bytes spelled out: CoreDNS does not compress them."""
    message = many_addresses(5)
    wire, truncated, _ = render(message, 512, udp=True, ipv6=False)
    assert wire == pack(message, compress=False)[0] and not truncated


def test_a_udp_answer_past_the_ipv6_fragmentation_limit_is_compressed():
    """Between 1220 and the client's size, an IPv6 client's UDP answer is compressed (request.Scrub); IPv4's is not."""
    message = many_addresses(45)
    spelled_out = pack(message, compress=False)[0]
    assert 1220 < len(spelled_out) <= 1480
    assert render(message, 4096, udp=True, ipv6=True)[0] == pack(message, compress=True)[0]
    assert render(message, 4096, udp=True, ipv6=False)[0] == spelled_out
    assert render(message, 65535, udp=False, ipv6=True)[0] == spelled_out


def test_a_spelled_out_rendering_serves_every_udp_size_from_its_own_below_both_fragment_limits():
    """Spelled-out bytes are CoreDNS's answer for any UDP client taking them, until 1220 bytes."""
    assert udp_sizes_served(Rendered(b"x" * 300, False, 300)) == (300, 65535)
    assert udp_sizes_served(Rendered(b"x" * 1230, False, 1230)) == (1, 0)


def test_a_compressed_rendering_serves_the_sizes_the_spelled_out_one_misses():
    """Compressed bytes are the answer for a client they fit whom the spelled-out message does not."""
    assert udp_sizes_served(Rendered(b"x" * 400, False, 900)) == (400, 899)


def test_a_truncated_rendering_serves_no_one():
    """A cut answer is never reused."""
    assert udp_sizes_served(Rendered(b"x" * 500, True, 900)) == (1, 0)
