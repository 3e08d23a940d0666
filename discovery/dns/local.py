"""`local`: answer localhost and the loopback reverse zones here, as CoreDNS's plugin/local.

Syntax (CoreDNS's)::

    local {
        localhost_prefix on|off
    }

Queries in `localhost.`, `0.in-addr.arpa.`, `127.in-addr.arpa.` and
`255.in-addr.arpa.` get a reply from this plugin and never reach the next
(nor the internet): `localhost.` has A 127.0.0.1, AAAA ::1, NS and SOA;
`1.0.0.127.in-addr.arpa.` has PTR localhost.; every other name in those
zones is NXDOMAIN. Names under `.localhost.` (RFC 6761), and with
`localhost_prefix on` (the default) names starting with `localhost.`, get
the loopback addresses for A and AAAA and NODATA otherwise, and are counted.
"""

from __future__ import annotations

import attrs
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from prometheus_client import CollectorRegistry, Counter

from ..corefile import Directive
from ..ops.metrics import per_registry
from ..plugin import BuildContext, PluginSpec
from ..zones import longest_match
from .request import Next, Request, Result

__all__ = ["LocalConfig", "LocalPlugin", "setup_local", "local_answer", "LocalAnswer", "PLUGINS"]

ZONES = ("localhost.", "0.in-addr.arpa.", "127.in-addr.arpa.", "255.in-addr.arpa.")
#: CoreDNS's ttl: one week.
TTL = 604800
_LOCALHOST = "localhost."
_LOOPBACK_PTR = "1.0.0.127.in-addr.arpa."
_A, _AAAA, _NS, _SOA, _PTR = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.NS, dns.rdatatype.SOA,
                              dns.rdatatype.PTR)


@attrs.frozen
class LocalConfig:
    #: Answer `localhost.<domain>` names too (CoreDNS's legacy default).
    localhost_prefix: bool = True


def setup_local(directive: Directive, ctx) -> LocalConfig:
    directive.expect_args(0, 0, "local { localhost_prefix on|off }")
    prefix = True
    for option in directive.block:
        if option.name != "localhost_prefix":
            raise option.error(f"local: unknown property '{option.name}'")
        option.expect_args(1, 1, "localhost_prefix on|off")
        option.expect_no_block()
        if option.args[0] not in ("on", "off"):
            raise option.error(f"local: localhost_prefix expects 'on' or 'off', got {option.args[0]!r}")
        prefix = option.args[0] == "on"
    return LocalConfig(prefix)


@attrs.frozen
class LocalAnswer:
    rcode: int
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    #: A localhost special case (a name under .localhost. or localhost.<domain>), counted.
    special: bool = False


def _rrset(owner: dns.name.Name, rdtype: int, text: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(owner, TTL, dns.rdataclass.IN, rdtype, text)


def _soa(owner: dns.name.Name) -> dns.rrset.RRset:
    return _rrset(owner, _SOA, "localhost. root.localhost. 1 0 0 0 604800")


def _loopback(qname: dns.name.Name, qtype: int) -> LocalAnswer:
    """doLocalhost: the loopback address for A and AAAA, NODATA (SOA at the name) otherwise."""
    if qtype == _A:
        return LocalAnswer(dns.rcode.NOERROR, (_rrset(qname, _A, "127.0.0.1"),), special=True)
    if qtype == _AAAA:
        return LocalAnswer(dns.rcode.NOERROR, (_rrset(qname, _AAAA, "::1"),), special=True)
    return LocalAnswer(dns.rcode.NOERROR, authority=(_soa(qname),), special=True)


def local_answer(qname: dns.name.Name, qtype: int, localhost_prefix: bool = True) -> LocalAnswer | None:
    """The answer for a question, or None for a name local does not answer. Owner names keep the question's case."""
    name = qname.to_text().lower()
    if len(name) > len(_LOCALHOST) and (
        name.endswith("." + _LOCALHOST) or (localhost_prefix and name.startswith(_LOCALHOST))
    ):
        return _loopback(qname, qtype)
    zone = longest_match(ZONES, name)
    if zone is None:
        return None
    # The zone as the question spells it: its last labels.
    zone_name = dns.name.Name(qname.labels[-len(dns.name.from_text(zone).labels):])
    if name in ZONES:
        if qtype in (_A, _AAAA) and name == _LOCALHOST:
            address = "127.0.0.1" if qtype == _A else "::1"
            return LocalAnswer(dns.rcode.NOERROR, (_rrset(qname, qtype, address),))
        if qtype == _SOA:
            return LocalAnswer(dns.rcode.NOERROR, (_soa(qname),))
        if qtype == _NS:
            return LocalAnswer(dns.rcode.NOERROR, (_rrset(qname, _NS, _LOCALHOST),))
        return LocalAnswer(dns.rcode.NOERROR, authority=(_soa(qname),))
    if name == _LOOPBACK_PTR:
        if qtype == _PTR:
            return LocalAnswer(dns.rcode.NOERROR, (_rrset(qname, _PTR, _LOCALHOST),))
        return LocalAnswer(dns.rcode.NOERROR, authority=(_soa(zone_name),))
    return LocalAnswer(dns.rcode.NXDOMAIN, authority=(_soa(zone_name),))


_counter = per_registry(lambda registry: Counter(
    "coredns_local_localhost_requests", "Counter of special localhost subdomain requests.", registry=registry,
))


class LocalPlugin:
    """Answers the local names; see the module doc."""

    name = "local"

    def __init__(self, config: LocalConfig, *, registry: CollectorRegistry | None = None):
        self.config = config
        self._localhost = _counter(registry if registry is not None else CollectorRegistry())

    def serve(self, request: Request, next: Next) -> Result:
        answer = local_answer(request.qname, request.qtype, self.config.localhost_prefix)
        if answer is None:
            return next(request)
        if answer.special:
            self._localhost.inc()
            request.fastpath.count_reuse(self._localhost.inc)
        # No AA bit: CoreDNS replies with SetReply alone.
        response = request.reply()
        response.set_rcode(answer.rcode)
        response.answer.extend(answer.answer)
        response.authority.extend(answer.authority)
        request.plugin = self.name
        return response


def _build(config: LocalConfig, ctx: BuildContext) -> LocalPlugin:
    return LocalPlugin(config, registry=ctx.registry)


PLUGINS = (PluginSpec("local", setup_local, build=_build),)
