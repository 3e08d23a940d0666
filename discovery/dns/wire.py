"""Answers written straight to wire format, without a dnspython `Message`.

The full path builds a query `Message`, a response `Message`, and renders it
(`discovery.dns.compress`): about 300 us of the 430 us a miss cost
(cProfile of tests/bench/bench_server.py). For the cluster zone's usual
answers, this module writes the same bytes directly: the header, the
question as written, the RRsets of a `discovery.dns.zone.Answer` with every
name spelled out, and the OPT record last: CoreDNS's bytes for an answer
that fits the client (compress.py: miekg/dns sends those uncompressed).
The zone function's `Records` give the fields of their records
(`wire_records`) without making dnspython rdata.

`render_answer` returns None for anything it does not write exactly (an
rdata type it does not know, or a message larger than max_size, which
CoreDNS would compress and truncate): the caller then takes the full path.
tests/unit/test_fast_route.py checks, over generated clusters and question
shapes, that the bytes are those the full path sends.
"""

from __future__ import annotations

import socket
import struct

import dns.rdatatype
import dns.rrset

__all__ = ["render_answer", "OPT_PAYLOAD", "OPT_RECORDS"]

#: The UDP size our OPT record offers (`Request.reply`: the DNS flag day 2020 size).
OPT_PAYLOAD = 1232

_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_SRV = dns.rdatatype.SRV
_PTR = dns.rdatatype.PTR
_NS = dns.rdatatype.NS
_CNAME = dns.rdatatype.CNAME
_SOA = dns.rdatatype.SOA
_TXT = dns.rdatatype.TXT
_QR, _AA = 0x8000, 0x0400
_DO = 0x8000
_pack_header = struct.Struct("!HHHHHH").pack
_pack_rr = struct.Struct("!HHIH").pack
_pack_srv = struct.Struct("!HHH").pack
_pack_soa = struct.Struct("!IIIII").pack
_inet_pton = socket.inet_pton
_AF_INET6 = socket.AF_INET6
_inet_aton = socket.inet_aton

#: OPT records by DO bit: root owner, type 41, our payload, version 0, no options.
OPT_RECORDS = _OPT = (
    b"\x00" + struct.pack("!HHIH", 41, OPT_PAYLOAD, 0, 0),
    b"\x00" + struct.pack("!HHIH", 41, OPT_PAYLOAD, _DO, 0),
)


class _Writer:
    """A message under construction: names spelled out, SOA serials noted."""

    __slots__ = ("out", "serials")

    def __init__(self, out: bytearray):
        self.out = out
        #: Where each SOA record's serial was written.
        self.serials: list[int] = []

    def name(self, labels: tuple[bytes, ...]) -> None:
        out = self.out
        for label in labels:
            out.append(len(label))
            out += label

    def rrset(self, rrset: dns.rrset.RRset) -> int | None:
        """Write every record; returns how many, or None for an rdata type we do not write."""
        rdtype = rrset.rdtype
        owner = rrset.name.labels
        head = _pack_rr(rdtype, rrset.rdclass, rrset.ttl, 0)[:8]
        out = self.out
        count = 0
        # The zone function's Records give their fields without making dnspython rdata.
        records = getattr(rrset, "wire_records", None)
        for rdata in records() if records is not None else rrset:
            self.name(owner)
            out += head
            mark = len(out)
            out += b"\x00\x00"
            if rdtype == _A:
                out += _inet_aton(rdata.address)
            elif rdtype == _AAAA:
                out += _inet_pton(_AF_INET6, rdata.address)
            elif rdtype == _SRV:
                out += _pack_srv(rdata.priority, rdata.weight, rdata.port)
                self.name(rdata.target.labels)
            elif rdtype == _PTR or rdtype == _NS or rdtype == _CNAME:
                self.name(rdata.target.labels)
            elif rdtype == _SOA:
                self.name(rdata.mname.labels)
                self.name(rdata.rname.labels)
                self.serials.append(len(out))
                out += _pack_soa(rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum)
            elif rdtype == _TXT:
                for string in rdata.strings:
                    out.append(len(string))
                    out += string
            else:
                return None
            out[mark : mark + 2] = (len(out) - mark - 2).to_bytes(2, "big")
            count += 1
        return count


def render_answer(
    question: bytes,
    flags: int,
    rcode: int,
    sections: tuple[tuple[dns.rrset.RRset, ...], tuple[dns.rrset.RRset, ...], tuple[dns.rrset.RRset, ...]],
    edns: bool,
    dnssec_ok: bool,
    max_size: int,
) -> tuple[bytes, tuple[int, ...]] | None:
    """A whole response with ID 0 and the offsets of its SOA serials; None if not written here.

    None for an rdata type this module does not write, or a message larger
    than max_size.

    question: the question's wire bytes (name, type, class) as written.
    flags: the header flags besides QR
    and the rcode (AA, RD, CD). The OPT record, when edns, offers
    `OPT_PAYLOAD` and echoes DO, as `Request.reply` does.
    """
    answer, authority, additional = sections
    out = bytearray(12)
    writer = _Writer(out)
    out += question
    counts = []
    for section in sections:
        total = 0
        for rrset in section:
            written = writer.rrset(rrset)
            if written is None:
                return None
            total += written
        counts.append(total)
    if edns:
        out += _OPT[dnssec_ok]
        counts[2] += 1
    if len(out) > max_size:
        return None
    out[0:12] = _pack_header(0, _QR | int(flags) | int(rcode), 1, counts[0], counts[1], counts[2])
    return bytes(out), tuple(writer.serials)
