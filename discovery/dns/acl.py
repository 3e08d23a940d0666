"""`acl`: allow, block, filter or drop queries by source address and type, as CoreDNS's plugin/acl.

Syntax (CoreDNS's), repeatable::

    acl [ZONES...] {
        allow|block|filter|drop [type QTYPE...] [net SOURCE...]
    }

Each `acl` line is a rule for its ZONES (the block's zones by default). For
a query, the rules whose zones hold the name are tried in order; within a
rule the first policy whose types and networks match the query's type and
source address decides: `allow` ends the checking and lets the query
through, `block` answers REFUSED and `filter` an empty NOERROR, each with an
Extended DNS Error (Blocked 15, Filtered 17), and `drop` sends nothing. A
query no policy decides goes on to the next rule, and past the last rule to
the next plugin.

An answer computed for one client is reused from the table of rendered
answers only for the clients this plugin would let through (a guard on the
entry), so a table hit never bypasses a block; blocked, filtered and dropped
queries are decided afresh every time.
"""

from __future__ import annotations

import ipaddress

import attrs
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from prometheus_client import CollectorRegistry, Counter

from ..corefile import Directive
from ..ops.metrics import per_registry
from ..plugin import BuildContext, PluginSpec
from ..zones import longest_match, origins
from .request import Next, Request, Result

__all__ = ["AclRule", "AclPolicy", "AclPlugin", "setup_acl", "decide", "PLUGINS"]

ALLOW, BLOCK, FILTER, DROP = "allow", "block", "filter", "drop"
ACTIONS = (ALLOW, BLOCK, FILTER, DROP)
#: RFC 8914 Extended DNS Error codes.
EDE_BLOCKED, EDE_FILTERED = 15, 17
#: The OPT size CoreDNS's acl puts in its answers (SetEdns0(4096, true)).
ACL_PAYLOAD = 4096
#: Client addresses whose decisions a plugin remembers for table hits, per rule set.
DECISION_CACHE = 4096
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class AclPolicy:
    action: str
    #: None: every type (`type *`, or no `type` section).
    qtypes: frozenset[int] | None = None
    #: None: every address (`net *`, or no `net` section).
    networks: tuple[_Network, ...] | None = None

    def matches(self, qtype: int, address) -> bool:
        if self.qtypes is not None and qtype not in self.qtypes:
            return False
        return self.networks is None or any(address in network for network in self.networks)


@attrs.frozen
class AclRule:
    """One `acl` directive: its zones and its policies, in order."""

    zones: tuple[str, ...]
    policies: tuple[AclPolicy, ...]


def _is_section(token: str) -> bool:
    return token.lower() in ("type", "net")


def _qtype(option: Directive, token: str) -> int:
    # CoreDNS looks the token up in miekg/dns's StringToType: upper-case
    # mnemonics only, no TYPEnnn.
    try:
        value = dns.rdatatype.from_text(token)
    except dns.rdatatype.UnknownRdatatype:
        value = None
    if value is None or token != token.upper() or token.startswith("TYPE"):
        raise option.error(f"acl: unexpected token {token!r}; expect legal QTYPE")
    return value


def _network(option: Directive, token: str) -> _Network:
    # A single address is a /32 or /128 (CoreDNS's normalize).
    text = token if "/" in token else token + ("/128" if ":" in token else "/32")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise option.error(f"acl: illegal CIDR notation {text!r}") from None


def _policy(option: Directive) -> AclPolicy:
    action = option.name.lower()
    if action not in ACTIONS:
        raise option.error(f"acl: unexpected token {option.name!r}; expect 'allow', 'block', 'filter' or 'drop'")
    option.expect_no_block()
    qtypes: set[int] | None = None
    networks: list[_Network] | None = None
    every_type = every_address = False
    tokens = list(option.args)
    while tokens:
        if not _is_section(tokens[0]):
            raise option.error(f"acl: unexpected token {tokens[0]!r}; expect 'type | net'")
        section = tokens.pop(0).lower()
        values = []
        while tokens and not _is_section(tokens[0]):
            values.append(tokens.pop(0))
        if not values:
            raise option.error(f"acl: no token specified in {section!r} section")
        for value in values:
            if value == "*":
                # As CoreDNS: `*` stands for all, and ends the section's list unread.
                if section == "type":
                    every_type = True
                else:
                    every_address = True
                break
            if section == "type":
                qtypes = (qtypes or set()) | {_qtype(option, value)}
            else:
                networks = (networks or []) + [_network(option, value)]
    return AclPolicy(
        action,
        None if every_type or qtypes is None else frozenset(qtypes),
        None if every_address or networks is None else tuple(networks),
    )


def setup_acl(directive: Directive, ctx) -> AclRule:
    try:
        zones = origins(directive.args, ctx.zones)
    except ValueError as error:
        raise directive.error(f"acl: {error}") from None
    return AclRule(zones, tuple(_policy(option) for option in directive.block))


def _address(host: str):
    """The client's address; IPv4-mapped IPv6 as IPv4, without an IPv6 zone."""
    host = host.partition("%")[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def decide(rules: tuple[AclRule, ...], name: str, qtype: int, host: str) -> tuple[str, str]:
    """(action, zone) for a lower-cased name, a query type and a client host (ServeDNS's loop).

    The action is `allow` when no policy decides; the zone is that of the
    rule that decided ("" for `allow`). An address that cannot be read is
    blocked, as in CoreDNS.
    """
    address = _address(host)
    for rule in rules:
        zone = longest_match(rule.zones, name)
        if zone is None:
            continue
        if address is None:
            return BLOCK, zone
        for policy in rule.policies:
            if policy.matches(qtype, address):
                if policy.action == ALLOW:
                    return ALLOW, ""
                return policy.action, zone
    return ALLOW, ""


class _AclMetrics:
    def __init__(self, registry: CollectorRegistry):
        labels = ["server", "zone", "view"]
        self.blocked = Counter("coredns_acl_blocked_requests", "Counter of DNS requests being blocked.",
                               labels, registry=registry)
        self.filtered = Counter("coredns_acl_filtered_requests", "Counter of DNS requests being filtered.",
                                labels, registry=registry)
        self.allowed = Counter("coredns_acl_allowed_requests", "Counter of DNS requests being allowed.",
                               ["server", "view"], registry=registry)
        self.dropped = Counter("coredns_acl_dropped_requests", "Counter of DNS requests being dropped.",
                               labels, registry=registry)


_metrics = per_registry(_AclMetrics)


class AclPlugin:
    """Decides each query by its source address and type; see the module doc."""

    name = "acl"

    def __init__(self, rules: tuple[AclRule, ...], *, registry: CollectorRegistry | None = None,
                 server: str = "dns://:53"):
        self.rules = rules
        self.server = server
        self._metrics = _metrics(registry if registry is not None else CollectorRegistry())
        self._allowed = self._metrics.allowed.labels(server, "")
        self._decisions: dict[tuple[str, int, str], bool] = {}

    def serve(self, request: Request, next: Next) -> Result:
        name, qtype = request.name, request.qtype
        action, zone = decide(self.rules, name, qtype, request.client[0])
        if action == ALLOW:
            self._allowed.inc()
            policy = request.fastpath
            policy.count_reuse(self._allowed.inc)
            if any(longest_match(rule.zones, name) is not None for rule in self.rules):
                # The answer may be reused only for clients this acl lets through.
                policy.guard(lambda data, qend, host: self._lets_through(name, qtype, host))
            return next(request)
        request.fastpath.forbid()
        if action == DROP:
            self._metrics.dropped.labels(self.server, zone, "").inc()
            return None
        if action == BLOCK:
            self._metrics.blocked.labels(self.server, zone, "").inc()
            return self._refusal(request, dns.rcode.REFUSED, EDE_BLOCKED)
        self._metrics.filtered.labels(self.server, zone, "").inc()
        return self._refusal(request, dns.rcode.NOERROR, EDE_FILTERED)

    def _lets_through(self, name: str, qtype: int, host: str) -> bool:
        """decide(...) == allow, remembered per client for table hits (bounded)."""
        key = (name, qtype, host)
        decisions = self._decisions
        allowed = decisions.get(key)
        if allowed is None:
            if len(decisions) >= DECISION_CACHE:
                decisions.clear()
            allowed = decisions[key] = decide(self.rules, name, qtype, host)[0] == ALLOW
        return allowed

    def _refusal(self, request: Request, rcode: int, ede: int) -> dns.message.Message:
        """CoreDNS's `SetRcode(r, rcode).SetEdns0(4096, true)` plus the EDE option.

        The OPT record is there even when the query had none, with DO set
        either way; a query with EDNS gets its own size back (the server's
        SizeAndDo), one without gets 4096.
        """
        response = request.reply()
        payload = request.query.payload if request.edns else ACL_PAYLOAD
        response.use_edns(0, dns.flags.DO, payload, options=[dns.edns.EDEOption(ede)])
        response.set_rcode(rcode)
        request.plugin = self.name
        return response


def _build(rules: tuple[AclRule, ...], ctx: BuildContext) -> AclPlugin:
    return AclPlugin(rules, registry=ctx.registry, server=ctx.server)


PLUGINS = (PluginSpec("acl", setup_acl, repeatable=True, build=_build),)
