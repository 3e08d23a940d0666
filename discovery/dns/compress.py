"""Messages on the wire byte for byte as CoreDNS writes them (miekg/dns packing and truncation).

Two rules decide the bytes, and dnspython's own ``to_wire`` follows neither:

Compression (miekg/dns msg.go, packDomainName and compressionMap). When a
message is compressed, a name is replaced by a pointer to an earlier name
only when that earlier name's suffix is the *same string*: the map is keyed
by the exact text, so ``svc1.testns.svc.cluster.local.`` is not compressed
against a question written ``SvC1.TeStNs.SvC.cLuStEr.LoCaL.`` (dnspython
compares names case-insensitively and would point there, carrying the
question's case). Owner names and the names inside NS, CNAME, PTR, MX, SOA
(and the other RFC 1035 types) may point back; the target of an SRV record
is written in full (RFC 2782) but is still remembered, so a later owner
name equal to it (the additional A record of an SRV answer) points to it.
Every suffix of every name written is remembered, the question's first
(offsets below 0x4000 only).

When to compress (miekg/dns msg_truncate.go Truncate, CoreDNS
request.Scrub). An answer that fits the client's size uncompressed is sent
uncompressed; over UDP, CoreDNS compresses it all the same when it is over
1480 bytes (IPv4 client) or 1220 (IPv6 client), against fragmentation.
Otherwise the answer is compressed and truncated record by record: records
are kept in order (answer, authority, additional) while the message,
with the OPT record set aside, stays within the size; the first record that
does not fit ends the message, so the additional records go first; TC is set
when an answer or authority record was left out; the OPT record comes last.
"""

from __future__ import annotations

import io
import struct
from typing import NamedTuple

import dns.message
import dns.name
import dns.rdatatype

__all__ = ["pack", "render", "Rendered", "udp_sizes_served", "FRAGMENT_LIMIT_IPV4", "FRAGMENT_LIMIT_IPV6"]

#: request.Scrub: over UDP, compress answers larger than these (from NSD).
FRAGMENT_LIMIT_IPV4 = 1480
FRAGMENT_LIMIT_IPV6 = 1220
_TC = 0x0200
_SRV = dns.rdatatype.SRV
_OPT = struct.pack("!BH", 0, dns.rdatatype.OPT)


class _ExactNames(dict):
    """A compression map for dnspython's Name.to_wire, keyed by the exact labels (case included)."""

    __slots__ = ()

    def get(self, name: dns.name.Name, default=None):
        return dict.get(self, name.labels, default)

    def __setitem__(self, name: dns.name.Name, offset: int) -> None:
        dict.__setitem__(self, name.labels, offset)


class _RememberOnly:
    """Write a name in full, but remember its suffixes for names that follow (miekg's compress=false)."""

    __slots__ = ("names",)

    def __init__(self, names: _ExactNames):
        self.names = names

    def get(self, name, default=None):
        return None

    def __setitem__(self, name: dns.name.Name, offset: int) -> None:
        self.names[name] = offset


def pack(message: dns.message.Message, *, compress: bool, max_size: int = 65535) -> tuple[bytes, bool]:
    """The message as miekg/dns packs it; returns (wire, truncated).

    With compress, names are compressed by exact match (module docstring).
    Records that would take the message past max_size are left out, the
    first one that does not fit and every one after it; truncated is true
    when any was, and TC is set when an answer or authority record was.
    """
    out = io.BytesIO()
    out.write(b"\x00" * 12)
    names = _ExactNames() if compress else None
    remember = _RememberOnly(names) if compress else None
    for question in message.question:
        question.name.to_wire(out, names)
        out.write(struct.pack("!HH", question.rdtype, question.rdclass))
    opt = b""
    if message.opt is not None:
        opt_rrset = message.opt
        rdata = b"".join(rd.to_wire() for rd in opt_rrset)
        opt = _OPT + struct.pack("!HIH", opt_rrset.rdclass, opt_rrset.ttl, len(rdata)) + rdata
    budget = max_size - len(opt)
    counts = [len(message.question), 0, 0, 0]
    left_out = 0
    tc = False
    for index, section in ((1, message.answer), (2, message.authority), (3, message.additional)):
        for rrset in section:
            if left_out:
                left_out += len(rrset)
                tc = tc or index < 3
                continue
            for position, rdata in enumerate(rrset):
                mark = out.tell()
                rrset.name.to_wire(out, names)
                out.write(struct.pack("!HHIH", rrset.rdtype, rrset.rdclass, rrset.ttl, 0))
                start = out.tell()
                if rrset.rdtype == _SRV:
                    out.write(struct.pack("!HHH", rdata.priority, rdata.weight, rdata.port))
                    rdata.target.to_wire(out, remember)
                else:
                    rdata.to_wire(out, names)
                end = out.tell()
                if end > budget:
                    # Pointers to what is cut are never written: nothing follows.
                    out.seek(mark)
                    out.truncate()
                    left_out = len(rrset) - position
                    tc = index < 3
                    break
                out.seek(start - 2)
                out.write(struct.pack("!H", end - start))
                out.seek(end)
                counts[index] += 1
    if opt:
        out.write(opt)
        counts[3] += 1
    flags = message.flags | (_TC if tc else 0)
    wire = bytearray(out.getvalue())
    struct.pack_into("!HHHHHH", wire, 0, message.id, flags, *counts)
    return bytes(wire), bool(left_out)


class Rendered(NamedTuple):
    wire: bytes
    #: Records were left out (TC set or not): not the whole answer.
    truncated: bool
    #: The message's length spelled out: len(wire) unless it was compressed.
    plain_size: int


def render(message: dns.message.Message, max_size: int, *, udp: bool, ipv6: bool) -> Rendered:
    """The message as CoreDNS sends it to a client taking max_size bytes.

    Uncompressed when it fits (compressed all the same over UDP past the
    fragmentation limit of the client's family), else compressed and
    truncated record by record (module docstring).
    """
    wire, _ = pack(message, compress=False)
    plain_size = len(wire)
    if plain_size <= max_size:
        if udp and plain_size > (FRAGMENT_LIMIT_IPV6 if ipv6 else FRAGMENT_LIMIT_IPV4):
            return Rendered(pack(message, compress=True)[0], False, plain_size)
        return Rendered(wire, False, plain_size)
    return Rendered(*pack(message, compress=True, max_size=max_size), plain_size)


def udp_sizes_served(rendered: Rendered) -> tuple[int, int]:
    """(least, most): the UDP sizes for which render() gives these very bytes, for either family.

    A rendering spelled out is what every client taking at least its size
    gets, as long as it is below both fragmentation limits; a compressed one
    is what a client gets whose size it fits but the spelled-out message
    does not. (1, 0), no size at all, for a truncated rendering. Over TCP
    (65535) a rendering is reused only when it is spelled out.
    """
    size = len(rendered.wire)
    if rendered.truncated:
        return (1, 0)
    if size == rendered.plain_size:
        return (size, 65535) if size <= FRAGMENT_LIMIT_IPV6 else (1, 0)
    return (size, rendered.plain_size - 1)
