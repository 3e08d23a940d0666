"""EDNS(0) options of a query, checked on the raw bytes (RFC 6891 section 6.1.2).

A query whose OPT record carries a malformed option gets FORMERR, as the
RFCs require and as CoreDNS does when miekg/dns cannot unpack the message:

- every option is a 4-byte header (code, length) and that many bytes, and the
  options fill the RDATA exactly (RFC 6891 section 6.1.2: an option whose
  length runs past the record makes the message malformed);
- COOKIE (10) holds the 8-byte client cookie, alone or with a server cookie
  of 8 to 32 bytes: a length under 8, of 9 to 15, or over 40 is FORMERR
  (RFC 7873 section 5.2.2);
- EDNS Client Subnet (8) holds FAMILY (1 IPv4, 2 IPv6; 0 with both prefix
  lengths 0, as dig sends for ``+subnet=0``), SOURCE and SCOPE prefix
  lengths no longer than the family's addresses, and exactly
  ceil(SOURCE / 8) address bytes with no bit set past SOURCE: anything else
  is FORMERR (RFC 7871 sections 6 and 7.1.1).

- the options miekg/dns unpacks and refuses when too short or of a length
  it does not know (edns.go; CoreDNS answers FORMERR): LLQ (1) under 18
  bytes, UL (2) other than 4 or 8, EXPIRE (9) of 1 to 3, TCP keepalive (11)
  other than 0 or 2, Extended DNS Error (15) under 2 (RFC 8914 section 2).

Other options are not looked into, and dnspython is told to keep every
option as raw bytes, so that this module alone decides which query is
malformed, on both paths: the table-of-answers path calls `options_end` on
the OPT record it has just found (one pass, nothing when there are no
options); the full path calls `has_malformed_options` before parsing.
"""

from __future__ import annotations

import struct

import dns.edns

__all__ = ["options_end", "has_malformed_options", "COOKIE_ALONE", "OPTION_COOKIE", "OPTION_ECS"]

OPTION_ECS = 8
OPTION_COOKIE = 10
_OPT = 41
#: ECS families: the address length in bits.
_ECS_BITS = {1: 32, 2: 128}
#: The usual OPT RDATA, a COOKIE option alone (dig and resolvers send one):
#: its header -> the RDATA length that makes it the only option. The hot
#: path looks it up inline before calling options_end.
COOKIE_ALONE = {struct.pack("!HH", OPTION_COOKIE, n): n + 4 for n in (8, *range(16, 41))}
#: Lengths miekg/dns refuses, by option code (see the module docstring).
_BAD_LENGTH = {
    1: lambda n: n < 18,
    2: lambda n: n not in (4, 8),
    9: lambda n: 0 < n < 4,
    11: lambda n: n not in (0, 2),
    15: lambda n: n < 2,
}


def options_end(data: bytes, start: int, length: int) -> int:
    """The end of an OPT RDATA of `length` bytes at `start` if its options are well-formed, else -1."""
    end = start + length
    if end > len(data):
        return -1
    # The hot path's usual case in one slice and one lookup: 0.2 us, not 1.
    if COOKIE_ALONE.get(data[start : start + 4]) == length:
        return end
    i = start
    while i < end:
        if i + 4 > end:
            return -1
        code = data[i] << 8 | data[i + 1]
        size = data[i + 2] << 8 | data[i + 3]
        i += 4
        if i + size > end:
            return -1
        if code == OPTION_COOKIE:
            if size != 8 and not 16 <= size <= 40:
                return -1
        elif code == OPTION_ECS:
            if not _subnet_is_valid(data, i, size):
                return -1
        elif code in _BAD_LENGTH and _BAD_LENGTH[code](size):
            return -1
        i += size
    return end


def _subnet_is_valid(data: bytes, i: int, size: int) -> bool:
    if size < 4:
        return False
    family = data[i] << 8 | data[i + 1]
    source, scope = data[i + 2], data[i + 3]
    if family == 0:
        # miekg/dns accepts family 0 only as "no address" (dig +subnet=0).
        return source == 0 and scope == 0 and size == 4
    bits = _ECS_BITS.get(family)
    if bits is None or source > bits or scope > bits:
        return False
    octets = (source + 7) >> 3
    if size != 4 + octets:
        return False
    spare = octets * 8 - source
    # "non-zero ADDRESS bits set beyond SOURCE PREFIX-LENGTH" (RFC 7871 section 6).
    return not (spare and data[i + 4 + octets - 1] & ((1 << spare) - 1))


# dnspython parses the options it knows and fails on what it finds wrong
# (FAMILY 0 in ECS, which dig sends for +subnet=0 and miekg/dns accepts;
# text that is not UTF-8 in the filtering options, unknown to miekg/dns),
# which would make the full path disagree with CoreDNS and with the table's
# path. Every option is kept as raw bytes instead (process-wide, like
# dnspython's own table; nothing here reads options, forward passes them on).
for _code in dns.edns.OptionType:
    dns.edns.register_type(dns.edns.GenericOption, _code)


def _skip_name(data: bytes, i: int) -> int:
    """The offset after a (possibly compressed) name, or -1."""
    n = len(data)
    while i < n:
        length = data[i]
        if length & 0xC0 == 0xC0:
            return i + 2 if i + 2 <= n else -1
        if length & 0xC0:
            return -1
        i += length + 1
        if length == 0:
            return i
    return -1


def has_malformed_options(data: bytes) -> bool:
    """Does a query carry an OPT record with a malformed option?

    False when the message cannot be walked at all: the full parser decides
    what such a message gets.
    """
    if len(data) < 12:
        return False
    qdcount = data[4] << 8 | data[5]
    records = (data[6] << 8 | data[7]) + (data[8] << 8 | data[9]) + (data[10] << 8 | data[11])
    i = 12
    for _ in range(qdcount):
        i = _skip_name(data, i)
        if i < 0:
            return False
        i += 4
    for _ in range(records):
        i = _skip_name(data, i)
        if i < 0 or i + 10 > len(data):
            return False
        rdlength = data[i + 8] << 8 | data[i + 9]
        if data[i] << 8 | data[i + 1] == _OPT and options_end(data, i + 10, rdlength) < 0:
            return True
        i += 10 + rdlength
    return False
