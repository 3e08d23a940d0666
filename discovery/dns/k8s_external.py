"""The `k8s_external` plugin: Services by name from outside the cluster.

``service.namespace.ZONE`` answers a Service's external addresses: its
spec.externalIPs, then its status.loadBalancer.ingress IPs (or hostnames,
as a CNAME). With `headless`, a headless Service (without external
addresses) answers its ready endpoints, and ``endpoint.service.namespace.ZONE``
each of them. The apex holds an SOA and one NS record, ``ns1.APEX.ZONE``,
whose addresses are this server's (the external addresses of the Services
whose endpoints hold our own IPs, else our IPs). Exactly CoreDNS's
plugin/k8s_external (external.go, apex.go, msg_to_dns.go) with
plugin/kubernetes/external.go behind it.

The answer is a pure function, `answer(qname, qtype, store, options, zone)`;
the plugin in front of it (`ExternalPlugin`) resolves hostname targets
through the server (CoreDNS's upstream) and turns the answer into a
response. `transfer_records` gives the whole zone, for AXFR.

Dependency tokens, for the table of rendered answers, are those of
`discovery.dns.zone` plus ``("external-serial",)`` for anything carrying the
zone's SOA, whose serial is the Store's `external_modified`.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator

import attrs
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.SRV import SRV
from twisted.internet import defer

from ..cache.objects import Service
from ..cache.store import Store
from ..corefile import Directive
from ..plugin import BuildContext, PluginSpec
from ..zones import Fallthrough, longest_match, normalize_zone
from . import zone as zone_answers
from .request import Next, Request, Result
from .table import store_key
from .zone import (  # the kubernetes zone's building blocks, shared
    _A,
    _AAAA,
    _CNAME,
    _IN,
    _NO_PORTS,
    _NOERROR,
    _NS,
    _NXDOMAIN,
    _PTR,
    _SOA,
    _SRV,
    Answer,
    ZoneOptions,
    _address_rdata,
    _endpoint_addresses,
    _namespace_exposed,
    _ports_match,
    _Query,
    _ready,
    _reverse_address,
    _strip_underscore,
    _visible,
)

__all__ = [
    "ExternalConfig",
    "ExternalPlugin",
    "setup_k8s_external",
    "answer",
    "transfer_records",
    "EXTERNAL_SERIAL",
    "PLUGINS",
]


#: The dependency token of the external zone's SOA serial.
EXTERNAL_SERIAL = ("external-serial",)
# apex.go soa(): fixed timers.
_SOA_REFRESH, _SOA_RETRY, _SOA_EXPIRE = 7200, 1800, 86400


@attrs.frozen
class ExternalConfig:
    """`k8s_external [ZONE...] { apex APEX; headless; fallthrough [ZONE...]; ttl TTL }`."""

    zones: tuple[str, ...]
    apex: str = "dns"
    ttl: int = 5
    headless: bool = False
    fallthrough: Fallthrough = Fallthrough()
    file: str = attrs.field(default="", eq=False)
    line: int = attrs.field(default=0, eq=False)


def setup_k8s_external(directive: Directive, ctx) -> ExternalConfig:
    """Parse a `k8s_external` directive (CoreDNS's setup.go). Raises CorefileError."""
    zones = tuple(normalize_zone(arg) for arg in directive.args) or ctx.zones
    options: dict = {}
    for option in directive.block:
        option.expect_no_block()
        if option.name == "ttl":
            option.expect_args(1, 1, "ttl TTL")
            try:
                ttl = int(option.args[0])
            except ValueError:
                raise option.error(f"ttl: {option.args[0]!r} is not a number") from None
            if not 0 <= ttl <= 3600:
                raise option.error(f"ttl must be in range [0, 3600]: {ttl}")
            options["ttl"] = ttl
        elif option.name == "apex":
            option.expect_args(1, 1, "apex APEX")
            apex = option.args[0].strip(".").lower()
            try:
                dns.name.from_text(apex, origin=None)
            except dns.exception.DNSException:
                raise option.error(f"apex: {option.args[0]!r} is not a DNS name") from None
            options["apex"] = apex
        elif option.name == "headless":
            option.expect_args(0, 0, "headless")
            options["headless"] = True
        elif option.name == "fallthrough":
            options["fallthrough"] = Fallthrough.from_args(option.args)
        else:
            raise option.error(f"k8s_external: unknown property {option.name!r}")
    return ExternalConfig(zones=zones, file=directive.file, line=directive.line, **options)


@attrs.frozen
class ExternalOptions:
    """What `answer` needs: the directive's options and the kubernetes directive's."""

    #: The k8s_external zones, normalised; PTR targets live in the first.
    zones: tuple[str, ...]
    zone: ZoneOptions
    apex: str = "dns"
    ttl: int = 5
    headless: bool = False


@attrs.frozen
class ExternalAnswer:
    """An Answer, and the hostnames CoreDNS resolves through its upstream.

    `lookups` are (section, name, rdtype): the records of each lookup's
    answer are appended to that section ("answer" or "additional"), in order.
    """

    answer: Answer
    lookups: tuple[tuple[str, dns.name.Name, int], ...] = ()


class _Record:
    """msg.Service: an address (or hostname), a port, and the SRV target name."""

    __slots__ = ("host", "port", "target")

    def __init__(self, host: str, port: int, target: tuple[str, ...]):
        self.host = host
        self.port = port
        self.target = target


def answer(qname: dns.name.Name, qtype: int, store: Store, options: ExternalOptions, zone: str) -> ExternalAnswer:
    """Answer one question in a k8s_external zone (external.go ServeDNS)."""
    zone_size = 0 if zone == "." else zone.count(".")
    labels = qname.labels
    cut = len(labels) - 1 - zone_size
    q = _Query(store, options.zone, tuple(label.lower() for label in labels[cut:]))
    base = [label.lower().decode("latin-1") for label in labels[:cut]]
    if not base:
        return ExternalAnswer(_apex(q, qname, qtype, options))
    if base[-1] == options.apex:
        return ExternalAnswer(_sub_apex(q, qname, qtype, base, options))
    entries, rcode = _external(q, qname, qtype, base, options)
    if not entries:
        return ExternalAnswer(_negative(q, options, rcode))
    if qtype == _A or qtype == _AAAA:
        records, lookups = _addresses(q, qname, qtype, entries, options)
        if not records:
            return ExternalAnswer(_negative(q, options, _NOERROR), ())
        return ExternalAnswer(_positive(q, records), lookups)
    if qtype == _SRV:
        records, additional, lookups = _srv(q, qname, entries, options)
        if not records:
            return ExternalAnswer(_negative(q, options, _NOERROR))
        return ExternalAnswer(_positive(q, records, additional), lookups)
    if qtype == _PTR:
        return ExternalAnswer(_ptr(q, qname, entries, options))
    return ExternalAnswer(_negative(q, options, _NOERROR))


# --- the apex and the `dns` subdomain (apex.go) --------------------------------------


def _apex(q: _Query, qname: dns.name.Name, qtype: int, options: ExternalOptions) -> Answer:
    if qtype == _SOA:
        return _positive(q, [_soa(q, options)])
    if qtype == _NS:
        ns_name = _ns_name(q.zone_lower, options.apex)
        ns = dns.rrset.RRset(dns.name.Name(q.zone_lower), _IN, _NS)
        ns.add(NS(_IN, _NS, ns_name), options.ttl)
        glue = _nameserver_records(q, dns.name.Name((b"ns1", options.apex.encode()) + qname.labels), options)
        return _positive(q, [ns], glue)
    return _negative(q, options, _NOERROR)


def _sub_apex(q: _Query, qname: dns.name.Name, qtype: int, base: list[str], options: ExternalOptions) -> Answer:
    below = base[:-1]
    if not below:
        # The `dns` empty non-terminal.
        return _negative(q, options, _NOERROR)
    if len(below) != 1 or below[0] != "ns1":
        return _negative(q, options, _NXDOMAIN)
    records = [
        rrset for rrset in _nameserver_records(q, qname, options) if rrset.rdtype == qtype
    ]
    return _positive(q, records) if records else _negative(q, options, _NOERROR)


def _nameserver_records(q: _Query, owner: dns.name.Name, options: ExternalOptions) -> list[dns.rrset.RRset]:
    """kubernetes/external.go ExternalAddress (ns.go nsAddrs(external=true)), under owner."""
    hosts: dict[int, dict[str, None]] = {}
    for address in _nameserver_addresses(q, options.headless):
        rdata = _address_rdata(address)
        if rdata is not None:
            hosts.setdefault(rdata.rdtype, {})[address] = None
    return [
        zone_answers._rrset(owner, rdtype, options.ttl, tuple(addresses))
        for rdtype, addresses in hosts.items()
    ]


def _nameserver_addresses(q: _Query, headless: bool) -> list[str]:
    """Our addresses as the outside sees them.

    The external addresses of the Services whose endpoints hold one of our
    IPs (their endpoints' IPs for a headless one, with `headless`); our
    IPs themselves when no endpoint holds one.
    """
    found = False
    addresses: list[str] = []
    zone_options = q.options
    for ip in zone_options.local_ips:
        q.deps.add(("address", ip))
        for eps in q.store.slices_by_ip(ip):
            q.deps.add(("namespace", eps.namespace))
            q.deps.add(("service", eps.namespace, eps.service_name))
            if eps.address_type == "FQDN" or not _visible(q, eps):
                continue
            found = True
            service = q.store.service(eps.namespace, eps.service_name)
            if service is None or not _visible(q, service):
                continue
            if headless and service.headless:
                addresses.extend(
                    address for ep in eps.endpoints if _ready(ep, service) for address in ep.addresses
                )
            else:
                addresses.extend(service.external_addresses)
    if not found:
        addresses = list(zone_options.local_ips)
    return addresses


# --- kubernetes/external.go External ---------------------------------------------------


def _external(
    q: _Query, qname: dns.name.Name, qtype: int, base: list[str], options: ExternalOptions
) -> tuple[list[_Record], int]:
    """The entries a name stands for, and the rcode when there are none."""
    if qtype == _PTR:
        ip = _reverse_address(qname)
        if ip is not None:
            return _reverse(q, ip)
    namespace = base[-1]
    q.deps.add(("namespace", namespace))
    if not _namespace_exposed(q, namespace):
        return [], _NXDOMAIN
    if len(base) == 1:
        return [], _NOERROR
    name = base[-2]
    q.deps.add(("service", namespace, name))
    endpoint = port = protocol = ""
    if len(base) == 3:
        endpoint = _strip_underscore(base[0])
    elif len(base) == 4:
        port, protocol = _strip_underscore(base[0]), _strip_underscore(base[1])
    elif len(base) > 4:
        return [], _NXDOMAIN
    entries: list[_Record] = []
    found = False
    service = q.store.service(namespace, name)
    if service is not None and _visible(q, service):
        external = service.external_addresses
        if options.headless and not external and (service.headless or endpoint):
            for address, host, ports in _endpoint_addresses(q, service):
                if endpoint and endpoint != host.lower():
                    continue
                for spec in ports:
                    if _ports_match(port, protocol, spec):
                        found = True
                        entries.append(_Record(address, spec.port, (host, name, namespace)))
        else:
            for address in external:
                for spec in service.ports or _NO_PORTS:
                    if _ports_match(port, protocol, spec):
                        found = True
                        entries.append(_Record(address, spec.port, (name, namespace)))
    rcode = _NOERROR if found else _NXDOMAIN
    if qtype == _PTR:
        # A forward name asked for PTR: it exists or not, and has no PTR.
        return [], rcode
    return entries, rcode


def _reverse(q: _Query, ip: str) -> tuple[list[_Record], int]:
    """serviceRecordForExternalIP: the Services with this external IP."""
    q.deps.add(("address", ip))
    entries = []
    for service in q.store.services_by_external_ip(ip):
        q.deps.add(("namespace", service.namespace))
        if q.options.namespaces and not _namespace_exposed(q, service.namespace):
            continue
        entries.append(_Record(f"{service.name}.{service.namespace}", 0, ()))
    return entries, _NOERROR if entries else _NXDOMAIN


# --- records (msg_to_dns.go) ------------------------------------------------------------


def _addresses(
    q: _Query, qname: dns.name.Name, qtype: int, entries: list[_Record], options: ExternalOptions
) -> tuple[list[dns.rrset.RRset], tuple]:
    """a() and aaaa(): addresses once each; a hostname gives a CNAME and a lookup."""
    records: list[dns.rrset.RRset] = []
    lookups = []
    hosts: dict[str, None] = {}
    at = 0
    for entry in entries:
        rdata = _address_rdata(entry.host)
        if rdata is None:
            target = dns.name.from_text(entry.host)
            if any(lookup[1] == target for lookup in lookups):
                continue
            cname = dns.rrset.RRset(qname, _IN, _CNAME)
            # msg.Service.NewCNAME: the kubernetes directive's TTL.
            cname.add(CNAME(_IN, _CNAME, target), q.options.ttl)
            records.append(cname)
            lookups.append(("answer", target, qtype))
        elif rdata.rdtype == qtype:
            if not hosts:
                at = len(records)
            hosts[entry.host] = None
    if hosts:
        records.insert(at, zone_answers._rrset(qname, qtype, options.ttl, tuple(hosts)))
    return records, tuple(lookups)


def _srv(
    q: _Query, qname: dns.name.Name, entries: list[_Record], options: ExternalOptions
) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset], tuple]:
    """srv(): one record per (target, port); glue for address targets, lookups for hostnames."""
    # Every entry has priority 0 and weight 0 (counted as 100), port-less ones included.
    weight = max(1, math.floor(100.0 / float(100 * len(entries)) * 100))
    specs: dict[tuple, None] = {}
    glue: dict[tuple[dns.name.Name, int], dict[str, None]] = {}
    lookups = []
    for entry in entries:
        if entry.port == -1:
            continue
        rdata = _address_rdata(entry.host)
        if rdata is None:
            target = dns.name.from_text(entry.host)
            specs[(weight, entry.port, target.labels)] = None
            if not any(lookup[1] == target for lookup in lookups):
                lookups.append(("additional", target, _A))
                lookups.append(("additional", target, _AAAA))
            continue
        target = q.name(entry.target)
        if target is None:
            continue
        specs[(weight, entry.port, target.labels)] = None
        glue.setdefault((target, rdata.rdtype), {})[entry.host] = None
    if not specs:
        return [], [], ()
    records = [_srv_rrset(qname, q.options.ttl, tuple(specs))]
    additional = [
        zone_answers._rrset(target, rdtype, options.ttl, tuple(hosts)) for (target, rdtype), hosts in glue.items()
    ]
    return records, additional, tuple(lookups)


def _srv_rrset(owner: dns.name.Name, ttl: int, specs: tuple) -> dns.rrset.RRset:
    # msg.Service.NewSRV: the kubernetes directive's TTL, as the CNAME.
    rrset = dns.rrset.RRset(owner, _IN, _SRV)
    for weight, port, target in specs:
        rrset.add(SRV(_IN, _SRV, 0, weight, port, dns.name.Name(target)), ttl)
    return rrset


def _ptr(q: _Query, qname: dns.name.Name, entries: list[_Record], options: ExternalOptions) -> Answer:
    """ptr(): each Service once, named in the first k8s_external zone."""
    first = dns.name.from_text(options.zones[0]).labels
    targets: dict[tuple[bytes, ...], None] = {}
    for entry in entries:
        targets[tuple(entry.host.encode().split(b".")) + first] = None
    rrset = dns.rrset.RRset(qname, _IN, _PTR)
    for target in targets:
        rrset.add(PTR(_IN, _PTR, dns.name.Name(target)), options.ttl)
    return _positive(q, [rrset])


# --- responses -------------------------------------------------------------------------


def _positive(q: _Query, records: list, additional=()) -> Answer:
    return Answer(_NOERROR, tuple(records), (), tuple(additional), frozenset(q.deps))


def _negative(q: _Query, options: ExternalOptions, rcode: int) -> Answer:
    return Answer(rcode, (), (_soa(q, options),), (), frozenset(q.deps))


def _soa(q: _Query, options: ExternalOptions) -> dns.rrset.RRset:
    q.deps.add(EXTERNAL_SERIAL)
    return _soa_rrset(q.zone_lower, options.apex, q.store.external_modified & 0xFFFFFFFF, options.ttl)


def _ns_name(zone_labels: tuple[bytes, ...], apex: str) -> dns.name.Name:
    return dns.name.Name((b"ns1", apex.encode()) + zone_labels)


@functools.lru_cache(maxsize=64)
def _soa_rrset(zone_labels: tuple[bytes, ...], apex: str, serial: int, ttl: int) -> dns.rrset.RRset:
    """apex.go soa(): ns1.APEX.ZONE, hostmaster.APEX.ZONE, the external serial, TTL = minimum = `ttl`."""
    record = dns.rrset.RRset(dns.name.Name(zone_labels), _IN, _SOA)
    record.add(
        SOA(
            _IN, _SOA,
            _ns_name(zone_labels, apex),
            dns.name.Name((b"hostmaster", apex.encode()) + zone_labels),
            serial, _SOA_REFRESH, _SOA_RETRY, _SOA_EXPIRE, ttl,
        ),
        ttl,
    )
    return record


# --- the whole zone, for AXFR (transfer.go) ---------------------------------------------


def transfer_records(store: Store, options: ExternalOptions, zone: str) -> Iterator[dns.rrset.RRset]:
    """The zone's records in CoreDNS's order: SOA, NS, the NS addresses, each
    Service's A, AAAA and SRV records, the headless Services' records, SOA.

    A generator: the caller streams it in messages as it goes.
    """
    zone_labels = dns.name.from_text(zone).labels
    q = _Query(store, options.zone, zone_labels)
    soa = _soa(q, options)
    yield soa
    ns_name = _ns_name(zone_labels, options.apex)
    ns = dns.rrset.RRset(dns.name.Name(zone_labels), _IN, _NS)
    ns.add(NS(_IN, _NS, ns_name), options.ttl)
    yield ns
    yield from _nameserver_records(q, ns_name, options)
    headless_services = []
    seen_srv: set[dns.name.Name] = set()
    for service in list(store.services()):
        if not _visible(q, service) or not _namespace_exposed(q, service.namespace):
            continue
        external = service.external_addresses
        if options.headless and not external and service.headless:
            headless_services.append(service)
            continue
        if not external:
            continue
        owner = q.name((service.name, service.namespace))
        if owner is None:
            continue
        # ExternalServices: per (address, port), a bare entry and a _port._proto one.
        for address in external:
            for port in service.ports or _NO_PORTS:
                bare = [_Record(address, port.port, (service.name, service.namespace))]
                for qtype in (_A, _AAAA):
                    records, _ = _addresses(q, owner, qtype, bare, options)
                    # A hostname's CNAME once, not once per address type.
                    yield from (r for r in records if r.rdtype != _CNAME or qtype == _A)
                yield from _unseen_srv(q, owner, bare, options, seen_srv)
                named = q.name(
                    (f"_{port.name.lower()}", f"_{port.protocol.lower()}", service.name, service.namespace)
                )
                if named is not None:
                    yield from _unseen_srv(q, named, bare, options, seen_srv)
    for service in headless_services:
        yield from _headless_records(q, service, options)
    yield soa


def _unseen_srv(q, owner, entries, options, seen: set) -> Iterator[dns.rrset.RRset]:
    if owner in seen:
        return
    records, _, _ = _srv(q, owner, entries, options)
    if records:
        seen.add(owner)
        yield from records


def _headless_records(q: _Query, service: Service, options: ExternalOptions) -> Iterator[dns.rrset.RRset]:
    """A headless Service's names: its own, each endpoint's, each named port's SRV."""
    owner = q.name((service.name, service.namespace))
    if owner is None:
        return
    entries: list[_Record] = []
    by_port: dict[tuple[str, str], list[_Record]] = {}
    for address, host, ports in _endpoint_addresses(q, service):
        for spec in ports:
            entry = _Record(address, spec.port, (host, service.name, service.namespace))
            entries.append(entry)
            if spec.name:
                by_port.setdefault((spec.protocol.lower(), spec.name.lower()), []).append(entry)
    if not entries:
        return
    for qtype in (_A, _AAAA):
        yield from _addresses(q, owner, qtype, entries, options)[0]
    yield from _srv(q, owner, entries, options)[0]
    names: dict[tuple[str, ...], list[_Record]] = {}
    for entry in entries:
        names.setdefault(entry.target, []).append(entry)
    for target, own in names.items():
        name = q.name(target)
        if name is None:
            continue
        for qtype in (_A, _AAAA):
            yield from _addresses(q, name, qtype, own, options)[0]
        yield from _srv(q, name, own, options)[0]
    for (protocol, port_name), own in by_port.items():
        name = q.name((f"_{port_name}", f"_{protocol}", service.name, service.namespace))
        if name is not None:
            yield from _srv(q, name, own, options)[0]


# --- the plugin ---------------------------------------------------------------------------


class ExternalPlugin:
    """The `k8s_external` directive of one server block, reading the kubernetes directive's Store."""

    name = "k8s_external"

    def __init__(self, config: ExternalConfig, store: Store, zone_options: ZoneOptions, reactor, synced=lambda: True):
        self.config = config
        self.store = store
        self.reactor = reactor
        #: Has the Store's source synced? Until then a missing name may only be missing from the cache.
        self.synced = synced
        self.options = ExternalOptions(
            zones=config.zones, zone=zone_options, apex=config.apex, ttl=config.ttl, headless=config.headless
        )
        self._key = store_key(store)

    def zone_for(self, name: str) -> str | None:
        return longest_match(self.config.zones, name)

    def serve(self, request: Request, next: Next) -> Result:
        zone = self.zone_for(request.name)
        if zone is None:
            return next(request)
        result = answer(request.qname, request.qtype, self.store, self.options, zone)
        found = result.answer
        if found.rcode == _NXDOMAIN and self.config.fallthrough.through(request.name):
            return next(request)
        if not self.synced():
            # As the kubernetes plugin: SERVFAIL, not a denial the client would cache, and never reused.
            request.fastpath.forbid()
            if found.rcode == _NXDOMAIN:
                found = attrs.evolve(found, rcode=dns.rcode.SERVFAIL)
        request.fastpath.depend(*((self._key, token) for token in found.dependencies))
        if result.lookups and request.lookup is not None:
            return self._chase(request, result)
        return self._respond(request, found)

    def transfer(self, zone: str, serial: int):
        """The zone's records for AXFR (transfer.go), or None when zone is not one of ours.

        An IXFR whose serial is the current one, or newer, gets the SOA alone.
        """
        if zone not in self.config.zones:
            return None
        records = transfer_records(self.store, self.options, zone)
        if serial and serial >= self.store.external_modified & 0xFFFFFFFF:
            return [next(records)]
        return records

    def _chase(self, request: Request, result: ExternalAnswer):
        """Resolve hostname targets through the server; a failed lookup adds nothing (as CoreDNS)."""
        lookups = [
            request.lookup(name, rdtype).addErrback(lambda _: None) for _, name, rdtype in result.lookups
        ]

        def appended(messages) -> dns.message.Message:
            sections = {"answer": list(result.answer.answer), "additional": list(result.answer.additional)}
            truncated = False
            ttls = []
            for (section, _, _), message in zip(result.lookups, messages):
                if message is None:
                    continue
                sections[section].extend(message.answer)
                ttls.extend(rrset.ttl for rrset in message.answer)
                truncated = truncated or bool(message.flags & dns.flags.TC)
            if ttls:
                request.fastpath.expire_at(self.reactor.seconds() + min(ttls))
            else:
                request.fastpath.forbid()
            response = self._respond(
                request,
                attrs.evolve(
                    result.answer, answer=tuple(sections["answer"]), additional=tuple(sections["additional"])
                ),
            )
            if truncated:
                response.flags |= dns.flags.TC
            return response

        return defer.gatherResults(lookups).addCallback(appended)

    def _respond(self, request: Request, found: Answer) -> dns.message.Message:
        from .kubernetes import respond

        return respond(request, found, self.name)


def _build(config: ExternalConfig, ctx: BuildContext) -> ExternalPlugin:
    """k8s_external reads the Store and the options of the same block's kubernetes directive."""
    from .kubernetes import local_addresses

    kubernetes = ctx.block.plugin("kubernetes")
    if kubernetes is None:
        # CoreDNS: "kubernetes plugin not loaded".
        raise RuntimeError(f"{config.file}:{config.line}: k8s_external needs a kubernetes directive in the same block")
    cache = ctx.cache_for(kubernetes.source)
    options = ZoneOptions.from_config(kubernetes, local_addresses(ctx.block.bind))
    return ExternalPlugin(config, cache.store, options, ctx.reactor, synced=lambda: cache.source.has_synced)


PLUGINS = (PluginSpec("k8s_external", setup_k8s_external, build=_build),)
