"""The Request a plugin sees for a question, as the server would build it."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset

from discovery.dns.request import Request


def make_request(
    name: str,
    rdtype: str = "A",
    *,
    proto: str = "udp",
    edns: bool = False,
    payload: int = 1232,
    do: bool = False,
    cd: bool = False,
    ad: bool = False,
    rd: bool = True,
    qid: int | None = None,
    zone: str = ".",
    client: tuple[str, int] = ("127.0.0.1", 40000),
    rdclass: str = "IN",
    options: tuple = (),
) -> Request:
    query = dns.message.make_query(
        name, rdtype, rdclass, use_edns=0 if (edns or do or options) else False, want_dnssec=do, payload=payload,
        options=list(options) or None,
    )
    if qid is not None:
        query.id = qid
    if cd:
        query.flags |= dns.flags.CD
    if ad:
        query.flags |= dns.flags.AD
    if not rd:
        query.flags &= ~dns.flags.RD
    question = query.question[0]
    with_edns = edns or do or bool(options)
    return Request(
        query=query,
        qname=question.name,
        qtype=question.rdtype,
        qclass=question.rdclass,
        zone=zone,
        server="dns://:53",
        proto=proto,
        client=client,
        edns=with_edns,
        max_size=65535 if proto == "tcp" else (payload if with_edns else 512),
        dnssec_ok=do,
    )


def answer(request_or_query, *records: str, rcode: int = 0, authority: tuple[str, ...] = (),
           flags: int = 0) -> dns.message.Message:
    """A response to the request's query holding zone-file lines ("name ttl IN A 1.2.3.4")."""
    query = getattr(request_or_query, "query", request_or_query)
    response = dns.message.make_response(query)
    response.flags |= flags
    response.set_rcode(rcode)
    for line in records:
        response.answer.append(_rrset(line))
    for line in authority:
        response.authority.append(_rrset(line))
    return response


def _rrset(line: str):
    name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)
