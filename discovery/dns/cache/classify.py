"""What a response is, and what of it may be kept (CoreDNS's response.Typify and cacheResponseType)."""

from __future__ import annotations


import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from .setup import MIN_TTL



NOERROR = "noerror"
NODATA = "nodata"
NXDOMAIN = "nxdomain"
DELEGATION = "delegation"
SERVERERROR = "servererror"
OTHERERROR = "othererror"
META = "meta"
UPDATE = "update"

_YEAR68 = 1 << 31
# Plain ints: IntFlag arithmetic costs more than the rest of a cache hit.
_AA, _AD, _CD, _RA = int(dns.flags.AA), int(dns.flags.AD), int(dns.flags.CD), int(dns.flags.RA)


def _signature_expired(message: dns.message.Message, now: float) -> bool:
    """Is an RRSIG outside its validity period (RFC 4034 3.1.5, serial arithmetic)?"""
    for section in (message.answer, message.authority, message.additional):
        for rrset in section:
            if rrset.rdtype != dns.rdatatype.RRSIG:
                continue
            for sig in rrset:
                modi = int((sig.inception - now) / _YEAR68)
                mode = int((sig.expiration - now) / _YEAR68)
                inception = sig.inception + modi * _YEAR68
                expiration = sig.expiration + mode * _YEAR68
                if not inception <= now <= expiration:
                    return True
    return False


def typify(message: dns.message.Message, now: float) -> str:
    """The type of a response, as CoreDNS's response.Typify.

    `now` is the wall-clock time, for RRSIG validity.
    """
    opcode = message.opcode()
    if opcode == dns.opcode.UPDATE:
        return UPDATE
    if opcode == dns.opcode.NOTIFY:
        return META
    if message.question and message.question[0].rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return META
    if message.ednsflags & dns.flags.DO and _signature_expired(message, now):
        return OTHERERROR
    rcode = message.rcode()
    if message.answer:
        if rcode == dns.rcode.NOERROR:
            return NOERROR
        if rcode == dns.rcode.NXDOMAIN:
            return OTHERERROR
    soa = _has_soa(message)
    if soa and rcode == dns.rcode.NOERROR:
        return NODATA
    if rcode == dns.rcode.NXDOMAIN:
        return NXDOMAIN
    if rcode in (dns.rcode.SERVFAIL, dns.rcode.NOTIMP):
        return SERVERERROR
    if rcode == dns.rcode.NOERROR:
        if any(rrset.rdtype == dns.rdatatype.NS for rrset in message.authority):
            return DELEGATION
        return NOERROR
    return OTHERERROR


def classify(message: dns.message.Message, now: float) -> str:
    """The kind of a response, for caching (CoreDNS's cacheResponseType): `typify`, except below.

    `now` is the wall-clock time, for RRSIG validity.
    """
    kind = typify(message, now)
    if kind == NOERROR and message.answer and _has_soa(message) and not _answers_question(message):
        # A CNAME chain that ends without the asked type, with an SOA for
        # the negative TTL: NODATA (RFC 2308 sections 1 and 2.2).
        return NODATA
    return kind


def _has_soa(message: dns.message.Message) -> bool:
    return any(rrset.rdtype == dns.rdatatype.SOA for rrset in message.authority)


def _answers_question(message: dns.message.Message) -> bool:
    """Does the answer hold the asked type at the end of the CNAME chain?"""
    question = message.question[0]
    qclass, qtype = question.rdclass, question.rdtype

    def in_class(rrset) -> bool:
        return qclass == dns.rdataclass.ANY or rrset.rdclass == qclass

    def cname_target(owner):
        targets = {
            rdata.target
            for rrset in message.answer
            if rrset.rdtype == dns.rdatatype.CNAME and in_class(rrset) and rrset.name == owner
            for rdata in rrset
        }
        if len(targets) > 1:
            return None, False  # RFC 2181 10.1: an alias has one canonical name
        return (targets.pop() if targets else None), True

    name = question.name
    if qtype == dns.rdatatype.ANY:
        return any(in_class(rrset) and rrset.name == name for rrset in message.answer)
    if qtype == dns.rdatatype.CNAME:
        target, ok = cname_target(name)
        return ok and target is not None
    seen = set()
    while True:
        if name in seen:
            return False  # a CNAME loop (RFC 1034 3.6.2)
        seen.add(name)
        target, ok = cname_target(name)
        if not ok:
            return False
        if target is None:
            break
        name = target
    return any(rrset.rdtype == qtype and in_class(rrset) and rrset.name == name for rrset in message.answer)


def _cacheable(message: dns.message.Message, kind: str) -> bool:
    """CoreDNS's key(): truncated, erroneous and SOA-less denials are never cached."""
    if message.flags & dns.flags.TC or kind in (OTHERERROR, META, UPDATE):
        return False
    if kind == NXDOMAIN and not _has_soa(message):
        return False
    if kind == NOERROR and message.answer and not _has_soa(message) and not _answers_question(message):
        # An incomplete CNAME chain without an SOA: RFC 2308 section 5 says
        # SHOULD NOT cache.
        return False
    return True


def _minimal_ttl(message: dns.message.Message, kind: str, maximum: int) -> int:
    """The smallest TTL of the response, at most `maximum` (CoreDNS's dnsutil.MinimalTTL)."""
    if kind not in (NOERROR, NXDOMAIN, NODATA):
        return MIN_TTL
    if not message.answer and not message.authority and not message.additional:
        return MIN_TTL
    ttl = maximum
    for section in (message.answer, message.authority, message.additional):
        for rrset in section:
            ttl = min(ttl, rrset.ttl)
    return ttl
