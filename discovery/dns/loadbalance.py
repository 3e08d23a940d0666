"""`loadbalance`: vary the order of A and AAAA records between answers.

Syntax: ``loadbalance [round_robin]`` (CoreDNS's default policy; `weighted`
is not supported).

CoreDNS shuffles the address records of every successful answer at random.
Wayfinder reuses rendered answers, so it renders up to `MAX_VARIANTS`
rotations of each address RRset once and hands them out in turn: every
record leads equally often, which is what spreads the load, at no cost per
query.
"""

from __future__ import annotations

import attrs
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from ..corefile import Directive
from ..plugin import PluginSpec

__all__ = ["LoadbalanceConfig", "setup_loadbalance", "rotations", "MAX_VARIANTS"]

MAX_VARIANTS = 8
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


@attrs.frozen
class LoadbalanceConfig:
    policy: str = "round_robin"


def setup_loadbalance(directive: Directive, ctx) -> LoadbalanceConfig:
    directive.expect_args(0, 1, "loadbalance [round_robin]")
    directive.expect_no_block()
    if directive.args and directive.args[0] != "round_robin":
        raise directive.error(f"loadbalance: policy {directive.args[0]!r} is not supported (only round_robin)")
    return LoadbalanceConfig()


def _rotate(rrset: dns.rrset.RRset, turn: int) -> dns.rrset.RRset:
    items = list(rrset)
    turn %= len(items)
    rotated = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
    rotated.update_ttl(rrset.ttl)
    for rdata in items[turn:] + items[:turn]:
        rotated.add(rdata)
    return rotated


def rotations(response: dns.message.Message) -> list[dns.message.Message] | None:
    """The response and its rotations, or None when there is nothing to rotate.

    As CoreDNS: only NOERROR answers, and not zone transfers.
    """
    if response.rcode() != dns.rcode.NOERROR or not response.question:
        return None
    if response.question[0].rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return None
    sections = (response.answer, response.authority, response.additional)
    longest = max(
        (len(rrset) for section in sections for rrset in section if rrset.rdtype in _ADDRESS_TYPES),
        default=0,
    )
    if longest < 2:
        return None
    variants = [response]
    for turn in range(1, min(longest, MAX_VARIANTS)):
        variant = dns.message.Message(id=response.id)
        variant.flags = response.flags
        variant.question = list(response.question)
        variant.answer, variant.authority, variant.additional = (
            [_rotate(rrset, turn) if rrset.rdtype in _ADDRESS_TYPES and len(rrset) > 1 else rrset for rrset in section]
            for section in sections
        )
        variant.use_edns(response.edns, response.ednsflags, response.payload, options=response.options)
        variant.set_rcode(response.rcode())
        variants.append(variant)
    return variants


# The server renders the rotations once and hands them out (`BlockRuntime.loadbalance`).
PLUGINS = (PluginSpec("loadbalance", setup_loadbalance, served_by_server=True),)
