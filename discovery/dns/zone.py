"""The cluster zone as a pure function: ``answer(qname, qtype, store, options, zone) -> Answer``.

What the "Kubernetes DNS-Based Service Discovery" specification 1.1.0 asks
for, with the exact semantics of CoreDNS's kubernetes plugin (handler.go,
kubernetes.go, parse.go, ns.go, reverse.go and plugin/backend_lookup.go)
wherever the two differ; discovery/dns/README.md lists those places and the
few where Wayfinder deliberately departs from CoreDNS.

The function reads the Store and its own arguments, nothing else: no
sockets, no reactor, no clock, no logging. It answers one question in one
of the kubernetes zones; the plugin in front of it (`discovery.dns.kubernetes`)
decides whether the question is ours, resolves ExternalName targets outside
the zone (`Answer.chase`) and turns the Answer into a response.

Names the client wrote keep their case (as CoreDNS's ``state.QName()``):
owner names are the question name as given. Names we make (SRV and NS
targets, the SOA) are lower case, as CoreDNS builds them from its configured
zone; this also keeps an answer rendered for one client right for the next,
who may spell the question differently (the server reuses renderings).
Everything else compares lower-cased, as DNS requires.

Every Answer lists the Store facts it was computed from (`dependencies`), so
that a rendered answer can be reused until one of them changes:

* ``("namespace", ns)``: the Namespace object ns (whether it exists, its labels);
* ``("service", ns, name)``: the Service ns/name or one of its EndpointSlices,
  so that a change to one Service costs only the answers about it;
* ``("address", ip)``: any object holding that IP;
* ``("serial",)``: the SOA in the answer, whose serial is the Store's
  last modification time;
* ``("external-serial",)``: the k8s_external zone's SOA, whose serial is
  the Store's last change to external addresses.

`change_dependencies` gives the tokens a Store change touches.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from typing import Iterable, Iterator, NamedTuple

import attrs
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.set
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from ..cache.objects import Endpoint, EndpointSlice, Namespace, Pod, Service, ServicePort
from ..cache.selectors import LabelSelector
from ..cache.store import Change, Store, affects_external

__all__ = [
    "Answer",
    "ZoneOptions",
    "answer",
    "nodata",
    "change_dependencies",
    "endpoint_name",
    "DNS_SCHEMA_VERSION",
    "transfer_records",
    "soa_serial",
    "client_namespace",
]

#: The schema version served at dns-version.<zone> (CoreDNS's DNSSchemaVersion).
DNS_SCHEMA_VERSION = "1.1.0"

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_CNAME = dns.rdatatype.CNAME
_NS = dns.rdatatype.NS
_PTR = dns.rdatatype.PTR
_SOA = dns.rdatatype.SOA
_SRV = dns.rdatatype.SRV
_TXT = dns.rdatatype.TXT
_NOERROR = dns.rcode.NOERROR
_NXDOMAIN = dns.rcode.NXDOMAIN

# The dns-version TXT record's TTL: fixed, whatever the `ttl` option says (kubernetes.go).
_DNS_VERSION_TTL = 28800
# backend_lookup.go SOA(): fixed timers, TTL capped at 300 s, minimum = the `ttl` option.
_SOA_REFRESH, _SOA_RETRY, _SOA_EXPIRE, _SOA_MAX_TTL = 7200, 1800, 86400, 300
# backend_lookup.go maxCnameChainLength.
_MAX_CNAME_CHAIN = 10

_SERIAL = ("serial",)


@attrs.frozen
class Answer:
    """One question's answer. Its RRsets may be shared with other Answers: never mutate them."""

    rcode: int
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    additional: tuple[dns.rrset.RRset, ...] = ()
    #: What in the Store this answer was computed from (see the module docstring).
    dependencies: frozenset = frozenset()
    #: An ExternalName target outside the zone: CoreDNS resolves it (same
    #: type as the question) through its upstream and appends the records
    #: after the CNAMEs in `answer`. None when there is nothing to chase.
    chase: dns.name.Name | None = None


@attrs.frozen
class ZoneOptions:
    """What `answer` needs from the `kubernetes` directive, built once."""

    #: The first forward zone: PTR targets live in it.
    primary_zone: str
    #: `namespaces`: only these are exposed (empty: all).
    namespaces: frozenset[str] = frozenset()
    namespace_labels: LabelSelector | None = None
    labels: LabelSelector | None = None
    pods: str = "disabled"
    endpoint_pod_names: bool = False
    ttl: int = 5
    noendpoints: bool = False
    ignore_empty_service: bool = False
    #: The server's own addresses, for the NS records and ns.dns.<zone>.
    local_ips: tuple[str, ...] = ()
    #: primary_zone as wire labels, made once.
    primary_labels: tuple[bytes, ...] = attrs.field(init=False, repr=False, eq=False)

    #: primary_zone as wire bytes, made once.
    primary_wire: bytes = attrs.field(init=False, repr=False, eq=False)

    @primary_labels.default
    def _primary_labels(self) -> tuple[bytes, ...]:
        return dns.name.from_text(self.primary_zone).labels

    @primary_wire.default
    def _primary_wire(self) -> bytes:
        return dns.name.Name(self.primary_labels).to_wire()

    @classmethod
    def from_config(cls, cfg, local_ips: Iterable[str] = ()) -> "ZoneOptions":
        """Build from a KubernetesConfig and the addresses the server answers on.

        As CoreDNS's boundIPs (local.go), loopback addresses are dropped; so
        are unspecified ones (0.0.0.0, ::), which no client can reach us on.
        Raises ValueError naming an address that is not one.
        """
        addresses = []
        for text in local_ips:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise ValueError(f"local address {text!r} is not an IP address") from None
            if not (address.is_loopback or address.is_unspecified) and address.compressed not in addresses:
                addresses.append(address.compressed)
        return cls(
            primary_zone=cfg.primary_zone,
            namespaces=frozenset(cfg.source.namespaces),
            namespace_labels=cfg.source.namespace_labels,
            labels=cfg.source.labels,
            pods=cfg.pods,
            endpoint_pod_names=cfg.endpoint_pod_names,
            ttl=cfg.ttl,
            noendpoints=cfg.noendpoints,
            ignore_empty_service=cfg.ignore_empty_service,
            local_ips=tuple(addresses),
        )


def change_dependencies(change: Change) -> frozenset:
    """The dependency tokens a Store change touches.

    A Namespace its own name; a Service, or an EndpointSlice, the Service
    it is or belongs to (old and new versions); every IP of its old and new
    versions; and the serial, since every change moves the Store's
    modification time.
    """
    tokens = {_SERIAL}
    for obj in (change.old, change.new):
        if isinstance(obj, Namespace):
            tokens.add(("namespace", obj.name))
        elif isinstance(obj, Service):
            tokens.add(("service", obj.namespace, obj.name))
        elif isinstance(obj, EndpointSlice) and obj.service_name:
            tokens.add(("service", obj.namespace, obj.service_name))
    tokens.update(("address", ip) for ip in change.addresses())
    if affects_external(change):
        # The k8s_external zone's SOA serial (discovery.dns.k8s_external).
        tokens.add(("external-serial",))
    return frozenset(tokens)


class _Entry(NamedTuple):
    """CoreDNS's msg.Service: what a name resolves to, before it becomes records."""

    #: An IP address, or (ExternalName) a domain name.
    host: str
    #: -1 for "no port" (CoreDNS's sentinel), which makes no SRV record.
    port: int
    #: The SRV target / additional owner, left of the zone (lower case).
    target: tuple[str, ...]


class _PortSpec(NamedTuple):
    name: str
    protocol: str
    port: int


# A Service or EndpointSlice without ports still yields its addresses (CoreDNS
# adds this sentinel), but only to questions that name no port or protocol.
_NO_PORTS = (_PortSpec("", "", -1),)


class _Query:
    """The state of one call: the inputs, and the dependencies read so far."""

    __slots__ = ("store", "options", "zone_labels", "zone_lower", "deps")

    def __init__(self, store: Store, options: ZoneOptions, zone_labels: tuple[bytes, ...]):
        self.store = store
        self.options = options
        #: The zone as the client wrote it, root label included.
        self.zone_labels = zone_labels
        self.zone_lower = tuple(label.lower() for label in zone_labels)
        self.deps: set = set()

    def name(self, labels: tuple[str, ...]) -> dns.name.Name | None:
        """labels + the zone as written; None when that is too long for DNS."""
        return _make_name(labels, self.zone_labels)

    def split(self, name: dns.name.Name) -> list[str] | None:
        """The lower-cased labels of a name left of the zone; None outside it."""
        labels = name.labels
        cut = len(labels) - len(self.zone_labels)
        if cut < 0 or tuple(label.lower() for label in labels[cut:]) != self.zone_lower:
            return None
        return [label.lower().decode("latin-1") for label in labels[:cut]]


def answer(
    qname: dns.name.Name, qtype: int, store: Store, options: ZoneOptions, zone: str
) -> Answer:
    """Answer one question in a kubernetes zone, as CoreDNS's kubernetes plugin does.

    qname is absolute and within zone (normalised: "cluster.local."), the
    longest of the directive's zones that contains it.
    """
    zone_size = 0 if zone == "." else zone.count(".")
    labels = qname.labels
    cut = len(labels) - 1 - zone_size
    if cut < 0 or not qname.is_absolute():
        raise ValueError(f"{qname} is not within the zone {zone}")
    # The zone part keeps the client's case: CoreDNS writes it so in SRV
    # targets, additional owners and the SOA (handler_case_test.go), and the
    # server sends those names spelled out (compress.py), not as pointers.
    q = _Query(store, options, labels[cut:])
    base = [label.lower().decode("latin-1") for label in labels[:cut]]
    reverse = _is_reverse(labels)

    # handler.go: zone transfers are refused before the name is looked at.
    if qtype == dns.rdatatype.AXFR or qtype == dns.rdatatype.IXFR:
        return Answer(dns.rcode.REFUSED)
    if qtype == _A or qtype == _AAAA:
        found = _addresses(q, qname, base, reverse, qtype, [])
        if found is None:
            return _missing(q, qname, base, reverse)
        records, chase = found
        return _positive(q, records, chase=chase)
    if qtype == _SRV:
        return _srv(q, qname, base, reverse)
    if qtype == _PTR:
        return _ptr(q, qname, base, reverse)
    if qtype == _TXT and base == ["dns-version"]:
        record = dns.rrset.RRset(qname, _IN, _TXT)
        record.add(_schema_version_txt(), _DNS_VERSION_TTL)
        return Answer(_NOERROR, (record,))
    if qtype == _CNAME:
        entries = _lookup(q, base, reverse)
        if entries is None:
            return _missing(q, qname, base, reverse)
        # backend_lookup.go CNAME(): the first entry, if it is a name.
        if entries and _address_rdata(entries[0].host) is None:
            target = dns.name.from_text(entries[0].host)
            record = dns.rrset.RRset(qname, _IN, _CNAME)
            record.add(CNAME(_IN, _CNAME, target), options.ttl)
            return _positive(q, [record])
        return _negative(q, _NOERROR)
    if not base and qtype == _SOA:
        return _positive(q, [_soa(q)])
    if not base and qtype == _NS:
        return _apex_ns(q, qname)
    # Every other type: the name exists or not, as CoreDNS's fake A lookup
    # tells (handler.go), and no records.
    return _negative(q, _NOERROR if _exists(q, qname, base, reverse) else _NXDOMAIN)


def nodata(qname: dns.name.Name, store: Store, options: ZoneOptions, zone: str) -> Answer:
    """The NOERROR, empty-answer response for a name in zone, with its SOA."""
    zone_size = 0 if zone == "." else zone.count(".")
    labels = qname.labels
    q = _Query(store, options, labels[len(labels) - 1 - zone_size:])
    return _negative(q, _NOERROR)


# --- responses ---------------------------------------------------------------


def _positive(
    q: _Query,
    records: list[dns.rrset.RRset],
    additional: Iterable[dns.rrset.RRset] = (),
    chase: dns.name.Name | None = None,
) -> Answer:
    """The records found, or NODATA when there are none."""
    if not records:
        return _negative(q, _NOERROR)
    return Answer(_NOERROR, tuple(records), (), tuple(additional), frozenset(q.deps), chase)


def _negative(q: _Query, rcode: int) -> Answer:
    """NXDOMAIN, or NODATA (NOERROR without records), with the zone's SOA (RFC 2308)."""
    soa = _soa(q)
    return Answer(rcode, (), (soa,), (), frozenset(q.deps))


def _soa(q: _Query) -> dns.rrset.RRset:
    """The zone's SOA; the answer now depends on the serial."""
    q.deps.add(_SERIAL)
    return _soa_rrset(q.zone_labels, q.store.modified & 0xFFFFFFFF, q.options.ttl)


@functools.lru_cache(maxsize=256)
def _soa_rrset(zone_labels: tuple[bytes, ...], serial: int, ttl: int) -> dns.rrset.RRset:
    """backend_lookup.go SOA(), for the zone as the client wrote it.

    Memoised (and so shared between answers): every negative answer
    carries one, and building it costs several times a whole A answer.
    """
    record = dns.rrset.RRset(dns.name.Name(zone_labels), _IN, _SOA)
    record.add(
        SOA(
            _IN,
            _SOA,
            dns.name.Name((b"ns", b"dns") + zone_labels),
            dns.name.Name((b"hostmaster",) + zone_labels),
            serial,
            _SOA_REFRESH,
            _SOA_RETRY,
            _SOA_EXPIRE,
            ttl,
        ),
        min(ttl, _SOA_MAX_TTL),
    )
    return record


@functools.lru_cache(maxsize=1)
def _schema_version_txt() -> TXT:
    return TXT(_IN, _TXT, [DNS_SCHEMA_VERSION])


@functools.lru_cache(maxsize=65536)
def _address_rdata(host: str) -> A | AAAA | None:
    """The A or AAAA rdata for an IP address text; None for anything else.

    As Go's net.IP.To4 (msg.Service.HostType), an IPv4-mapped IPv6
    address is an IPv4 address. Memoised: rdata are immutable, and building
    one costs more than the rest of a simple answer.
    """
    address = _parse_ip(host)
    if address is None:
        return None
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is None:
            return AAAA(_IN, _AAAA, address.compressed)
        address = mapped
    return A(_IN, _A, str(address))


def _rrset(owner: dns.name.Name, rdtype: int, ttl: int, specs: tuple) -> dns.rrset.RRset:
    """The RRset of the rdata that specs describe (see `_rdata`), under owner (a `Records`)."""
    rrset = _new_object(Records)
    rrset.name = owner
    rrset.deleting = None
    rrset.rdclass = _IN
    rrset.rdtype = rdtype
    rrset.covers = _NONE
    rrset.ttl = ttl
    rrset.specs = specs
    return rrset


_new_object = object.__new__
_NONE = dns.rdatatype.NONE
# The slot that holds a dnspython Set's items.
_SET_ITEMS = dns.set.Set.__dict__["items"]


class Records(dns.rrset.RRset):
    """An RRset of the records specs describe (see `_rdata`), whose rdata are made when first read.

    Making an rdata and hashing it into the set (its canonical wire form,
    twice) costs more than the rest of an answer: a fresh SRV answer spent
    most of its time there. The fast route writes the records straight
    from specs (`wire_records`, read by `discovery.dns.wire`) and never
    makes them; anything else that reads the RRset gets dnspython's rdata,
    copied from memoised items (a copy keeps the hashes). Copies are plain
    RRsets.
    """

    __slots__ = ("specs",)
    _clone_class = dns.rrset.RRset

    @property
    def items(self) -> dict:
        try:
            return _SET_ITEMS.__get__(self, Records)
        except AttributeError:
            items = _items(self.rdtype, self.specs).copy()
            _SET_ITEMS.__set__(self, items)
            return items

    @items.setter
    def items(self, value: dict) -> None:
        _SET_ITEMS.__set__(self, value)

    def wire_records(self) -> Iterator:
        """The records with the fields `discovery.dns.wire` writes, without making dnspython rdata.

        Once each as the set would hold them: rdata are equal when their
        canonical wire forms are (an address however written, names in any
        case). Addresses are the memoised rdata themselves.
        """
        rdtype = self.rdtype
        seen = set()
        for spec in self.specs:
            if rdtype == _SRV:
                weight, port, target = spec
                record = _SRVFields(0, weight, port, _Target(target))
                same = (weight, port, tuple(label.lower() for label in target))
            elif rdtype == _PTR or rdtype == _NS:
                record = _TargetFields(_Target(spec))
                same = tuple(label.lower() for label in spec)
            else:
                record = _address_rdata(spec)
                same = record.address
            if same not in seen:
                seen.add(same)
                yield record


class _Target(NamedTuple):
    """A name as `discovery.dns.wire` reads one: its labels."""

    labels: tuple[bytes, ...]


class _SRVFields(NamedTuple):
    """An SRV record's fields, as dnspython's SRV rdata names them."""

    priority: int
    weight: int
    port: int
    target: _Target


class _TargetFields(NamedTuple):
    """A PTR or NS record's field, as dnspython's rdata name it."""

    target: _Target


@functools.lru_cache(maxsize=4096)
def _items(rdtype: int, specs: tuple) -> dict:
    """The items of a `Records` set: never mutated, copied into each RRset.

    Filling the dict directly hashes each rdata once (RRset.add hashes
    twice; an SRV rdata's hash renders its target).
    """
    return dict.fromkeys(_rdata(rdtype, spec) for spec in specs)


def _rdata(rdtype: int, spec):
    """A: the address text; SRV: (weight, port, target labels); PTR and NS: the target labels."""
    if rdtype == _SRV:
        weight, port, target = spec
        return SRV(_IN, _SRV, 0, weight, port, dns.name.Name(target))
    if rdtype == _PTR:
        return PTR(_IN, _PTR, dns.name.Name(spec))
    if rdtype == _NS:
        return NS(_IN, _NS, dns.name.Name(spec))
    return _address_rdata(spec)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's net.ParseIP: no zone index (ipaddress accepts "fe80::1%eth0")."""
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _make_name(labels: Iterable[str], origin: tuple[bytes, ...]) -> dns.name.Name | None:
    # CoreDNS joins texts, so a Pod name with dots (endpoint_pod_names) spans labels.
    try:
        return dns.name.Name(
            tuple(part for label in labels for part in label.encode().split(b".")) + origin
        )
    except (dns.name.LabelTooLong, dns.name.NameTooLong, dns.name.EmptyLabel):
        return None


# --- name existence and lookup (kubernetes.go Services/Records) -----------------


def _exists(q: _Query, name: dns.name.Name, base: list[str], reverse: bool) -> bool:
    """Does anything, of any type, have this name?

    CoreDNS decides with its A lookup (handler.go); the names it serves
    under other types only (dns-version.<zone> TXT, PTR names) exist too,
    so that no name has records and an NXDOMAIN at once (RFC 2308 section 2.1).
    """
    return _lookup(q, base, reverse) is not None or _served_by_other_types(q, name, base, reverse)


def _missing(q: _Query, name: dns.name.Name, base: list[str], reverse: bool) -> Answer:
    """The answer for a name the lookup does not know: NODATA if another type has it."""
    return _negative(q, _NOERROR if _served_by_other_types(q, name, base, reverse) else _NXDOMAIN)


def _served_by_other_types(q: _Query, name: dns.name.Name, base: list[str], reverse: bool) -> bool:
    if base == ["dns-version"]:
        return True
    if reverse:
        ip = _reverse_address(name)
        return ip is not None and bool(_reverse_targets(q, ip))
    return False


def _is_reverse(labels: tuple[bytes, ...]) -> bool:
    """dnsutil.IsReverse: a name below in-addr.arpa. or ip6.arpa."""
    return len(labels) > 3 and labels[-2].lower() == b"arpa" and labels[-3].lower() in (b"in-addr", b"ip6")


def _lookup(q: _Query, base: list[str], reverse: bool) -> list[_Entry] | None:
    """The entries a name resolves to, or None when the name does not exist.

    parse.go parseRequest and kubernetes.go Records/findServices/findPods:
    ``[[_port._proto.|endpoint.]service.]namespace.(svc|pod).zone``.
    """
    size = len(base)
    if size == 2 and base[0] == "ns" and base[1] == "dns":
        return [_Entry(ip, 0, ("ns", "dns")) for _, ip in _ns_addresses(q)]
    if size == 0 or (size == 1 and (base[0] == "svc" or base[0] == "pod")):
        return []
    kind = base[-1]
    # More than two labels left of the service is "too long" (multicluster
    # and zonal names are out of scope).
    if (kind != "svc" and kind != "pod") or size > 5:
        return None
    namespace = base[-2]
    q.deps.add(("namespace", namespace))
    if reverse:
        return None
    if not _namespace_exposed(q, namespace):
        return None
    service = base[-3] if size >= 3 else ""
    if kind == "pod":
        return _find_pod(q, namespace, service)
    endpoint = base[0] if size == 4 else ""
    port = protocol = ""
    if size == 5:
        port, protocol = _strip_underscore(base[0]), _strip_underscore(base[1])
    return _find_service(q, namespace, service, endpoint, port, protocol)


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def _namespace_exposed(q: _Query, namespace: str) -> bool:
    """namespace.go: listed by `namespaces` (if given), and the Namespace is in the cache."""
    options = q.options
    if options.namespaces and namespace not in options.namespaces:
        return False
    found = q.store.namespace(namespace)
    if found is None:
        return False
    return options.namespace_labels is None or options.namespace_labels.matches(found.labels)


def _visible(q: _Query, obj: Service | EndpointSlice | Pod) -> bool:
    """CoreDNS lists Services, EndpointSlices and Pods with the `labels` selector."""
    selector = q.options.labels
    return selector is None or selector.matches(obj.labels)


def _slices(q: _Query, service: Service) -> list[EndpointSlice]:
    """The Service's EndpointSlices CoreDNS would hold: none with `noendpoints`, no FQDN ones."""
    if q.options.noendpoints:
        return []
    return [
        eps
        for eps in q.store.slices_for(service.namespace, service.name)
        if eps.address_type != "FQDN" and _visible(q, eps)
    ]


def _ready(endpoint: Endpoint, service: Service | None) -> bool:
    # CoreDNS keeps the endpoints the EndpointSlice controller marked ready;
    # that controller marks every endpoint ready for a Service that publishes
    # not-ready addresses, and Wayfinder's manifests have no controller.
    return endpoint.ready or (service is not None and service.publish_not_ready_addresses)


def endpoint_name(endpoint: Endpoint, address: str, pod_names: bool) -> str:
    """kubernetes.go endpointHostname: hostname, else Pod name (option), else the dashed IP."""
    if endpoint.hostname:
        return endpoint.hostname
    if pod_names and endpoint.target_ref is not None and len(endpoint.target_ref.name) < 64:
        return endpoint.target_ref.name
    if "." in address:
        return address.replace(".", "-")
    dashed = address.replace(":", "-")
    return dashed + "0" if dashed.endswith("-") else dashed


def _endpoint_addresses(q: _Query, service: Service):
    """Each ready address of a Service's endpoints: (address, endpoint name, its slice's ports)."""
    pod_names = q.options.endpoint_pod_names
    for eps in _slices(q, service):
        ports = [
            _PortSpec(p.name, p.protocol, -1 if p.port is None else p.port) for p in eps.ports
        ] or _NO_PORTS
        for ep in eps.endpoints:
            if not _ready(ep, service):
                continue
            for address in ep.addresses:
                yield address, endpoint_name(ep, address, pod_names), ports


def _ports_match(want_port: str, want_protocol: str, port: _PortSpec | ServicePort) -> bool:
    """kubernetes.go matchPortAndProtocol: an empty wish matches anything, case-insensitively."""
    return (not want_port or want_port == port.name.lower()) and (
        not want_protocol or want_protocol == port.protocol.lower()
    )


def _find_service(
    q: _Query, namespace: str, name: str, endpoint: str, port: str, protocol: str
) -> list[_Entry] | None:
    if not name:
        return []
    q.deps.add(("service", namespace, name))
    service = q.store.service(namespace, name)
    if service is None or not _visible(q, service):
        return None
    if q.options.ignore_empty_service and not (service.is_external_name or service.headless):
        if not any(
            _ready(ep, service) and ep.addresses for eps in _slices(q, service) for ep in eps.endpoints
        ):
            return None
    if service.is_external_name:
        # No endpoints, ports or SRV names under an ExternalName; and
        # CoreDNS only serves one whose name is not an IP address.
        if endpoint or port or protocol or _parse_ip(service.external_name) is not None:
            return None
        return [_Entry(service.external_name, 0, ())]
    if service.headless or endpoint:
        entries = []
        for address, host, ports in _endpoint_addresses(q, service):
            if endpoint and endpoint != host.lower():
                continue
            target = (host, service.name, namespace, "svc")
            for spec in ports:
                if _ports_match(port, protocol, spec):
                    entries.append(_Entry(address, spec.port, target))
        return entries or None
    entries = []
    matched = False
    target = (service.name, namespace, "svc")
    for spec in service.ports or _NO_PORTS:
        if _ports_match(port, protocol, spec):
            matched = True
            entries.extend(_Entry(ip, spec.port, target) for ip in service.cluster_ips)
    return entries if matched else None


def _find_pod(q: _Query, namespace: str, name: str) -> list[_Entry] | None:
    """kubernetes.go findPods: `pods insecure` trusts the dashed IP, `verified` looks it up."""
    mode = q.options.pods
    if mode == "disabled":
        return None
    if not name:
        return []
    if name.count("-") == 3 and "--" not in name:
        ip = name.replace("-", ".")
    else:
        ip = name.replace("-", ":")
    target = (name, namespace, "pod")
    q.deps.add(("address", ip))
    if mode == "insecure":
        return None if _parse_ip(ip) is None else [_Entry(ip, 0, target)]
    entries = [_Entry(ip, 0, target) for pod in _pods_at(q.store, q.options, ip) if pod.namespace == namespace]
    return entries or None


def _pods_at(store: Store, options: ZoneOptions, ip: str) -> Iterator[Pod]:
    """The Pods CoreDNS's pod index gives for an IP.

    CoreDNS indexes a Pod by its primary IP (status.podIP) and compares the
    texts, and its cache holds no terminating or finished Pod; it lists
    Pods with the `labels` selector.
    """
    selector = options.labels
    for pod in store.pods_by_ip(ip):
        if (
            pod.ips[0] == ip
            and not pod.ended
            and (selector is None or selector.matches(pod.labels))
        ):
            yield pod


def client_namespace(store: Store, options: ZoneOptions, ip: str) -> str | None:
    """The namespace of the Pod at this address (autopath.go podWithIP: the first one), or None.

    Called per reused autopath answer (the client's class): a dict lookup and a few tests.
    """
    for pod in _pods_at(store, options, ip):
        return pod.namespace
    return None


def _ns_addresses(q: _Query) -> list[tuple[tuple[str, ...], str]]:
    """ns.go nsAddrs: (name left of the zone, IP) for this server.

    The Services whose ready endpoints hold one of our addresses (their
    cluster IPs, or for a headless one its endpoints' names and IPs); when
    no endpoint holds one, ns.dns.<zone> with our addresses themselves.
    """
    options = q.options
    found = False
    addresses = []
    for ip in options.local_ips:
        q.deps.add(("address", ip))
        if options.noendpoints:
            continue
        for eps in q.store.slices_by_ip(ip):
            q.deps.add(("namespace", eps.namespace))
            q.deps.add(("service", eps.namespace, eps.service_name))
            if eps.address_type == "FQDN" or not _visible(q, eps):
                continue
            service = q.store.service(eps.namespace, eps.service_name)
            if not any(ip in ep.addresses and _ready(ep, service) for ep in eps.endpoints):
                continue
            found = True
            if service is None or not _visible(q, service):
                continue
            if service.headless:
                for ep in eps.endpoints:
                    if _ready(ep, service):
                        for address in ep.addresses:
                            host = endpoint_name(ep, address, options.endpoint_pod_names)
                            addresses.append(((host, service.name, service.namespace, "svc"), address))
            else:
                for cluster_ip in service.cluster_ips:
                    addresses.append(((service.name, service.namespace, "svc"), cluster_ip))
    if not found:
        addresses = [(("ns", "dns"), ip) for ip in options.local_ips]
    return addresses


# --- answers by type (plugin/backend_lookup.go) --------------------------------------


def _addresses(
    q: _Query,
    owner: dns.name.Name,
    base: list[str],
    reverse: bool,
    qtype: int,
    chain: list[dns.name.Name],
) -> tuple[list[dns.rrset.RRset], dns.name.Name | None] | None:
    """A/AAAA records for a name (backend_lookup.go A and AAAA); None if it does not exist.

    An ExternalName gives a CNAME; a target inside the zone is followed
    here (its records follow the CNAME, or nothing at all is answered when
    it has none); one outside is returned to be chased.
    """
    entries = _lookup(q, base, reverse)
    if entries is None:
        return None
    ttl = q.options.ttl
    records: list[dns.rrset.RRset] = []
    # Addresses in order, once each (a dict keeps order and dedups in O(1)).
    hosts: dict[str, None] = {}
    at = 0
    chase = None
    for entry in entries:
        rdata = _address_rdata(entry.host)
        if rdata is None:
            target = dns.name.from_text(entry.host)
            # x CNAME x (or a name below x) is a loop; so is a target already
            # in the chain; and chains stop after ten links.
            if target.is_subdomain(owner) or len(chain) > _MAX_CNAME_CHAIN or target in chain:
                continue
            cname = dns.rrset.RRset(owner, _IN, _CNAME)
            cname.add(CNAME(_IN, _CNAME, target), ttl)
            target_base = q.split(target)
            if target_base is None:
                records.append(cname)
                chase = target
                continue
            followed = _addresses(
                q, target, target_base, _is_reverse(target.labels), qtype, chain + [target]
            )
            if followed is not None and followed[0]:
                records.append(cname)
                records.extend(followed[0])
                chase = followed[1]
            continue
        if rdata.rdtype == qtype:
            if not hosts:
                at = len(records)
            hosts[entry.host] = None
    if hosts:
        records.insert(at, _rrset(owner, qtype, ttl, tuple(hosts)))
    return records, chase


def _srv(q: _Query, qname: dns.name.Name, base: list[str], reverse: bool) -> Answer:
    """backend_lookup.go SRV: one record per (target, port), the targets' addresses as glue."""
    if base == ["ns", "dns"]:
        return _negative(q, _NOERROR)
    entries = _lookup(q, base, reverse)
    if entries is None:
        return _missing(q, qname, base, reverse)
    # An ExternalName has no SRV records (kubernetes.go Services).
    entries = [entry for entry in entries if _address_rdata(entry.host) is not None]
    if not entries:
        return _negative(q, _NOERROR)
    ttl = q.options.ttl
    # Every entry has priority 0 and CoreDNS's weight 100: each record gets
    # floor(100 / (100 * n) * 100), at least 1, n counting all entries,
    # duplicates and port-less ones included.
    weight = max(1, math.floor(100.0 / float(100 * len(entries)) * 100))
    glue = _Glue(q)
    specs: dict[tuple, None] = {}
    for entry in entries:
        if entry.port == -1:
            continue
        target = glue.target(entry.target)
        if target is None:
            continue
        specs[(weight, entry.port, target.labels)] = None
        glue.add(entry.target, entry.host)
    if not specs:
        return _negative(q, _NOERROR)
    return _positive(q, [_rrset(qname, _SRV, ttl, tuple(specs))], glue.rrsets())


class _Glue:
    """The additional section: addresses of SRV and NS targets, once per (target, address)."""

    __slots__ = ("q", "names", "hosts")

    def __init__(self, q: _Query):
        self.q = q
        self.names: dict[tuple[str, ...], dns.name.Name | None] = {}
        #: (target labels, A or AAAA) -> addresses, in order, once each.
        self.hosts: dict[tuple[tuple[str, ...], int], dict[str, None]] = {}

    def target(self, labels: tuple[str, ...]) -> dns.name.Name | None:
        """The target name for labels left of the zone, made once."""
        if labels not in self.names:
            self.names[labels] = self.q.name(labels)
        return self.names[labels]

    def add(self, labels: tuple[str, ...], address: str) -> None:
        self.hosts.setdefault((labels, _address_rdata(address).rdtype), {})[address] = None

    def rrsets(self) -> list[dns.rrset.RRset]:
        ttl = self.q.options.ttl
        return [
            _rrset(self.names[labels], rdtype, ttl, tuple(hosts))
            for (labels, rdtype), hosts in self.hosts.items()
        ]


def _apex_ns(q: _Query, qname: dns.name.Name) -> Answer:
    """backend_lookup.go NS: ns.go's names as NS records, their addresses as glue."""
    glue = _Glue(q)
    specs: dict[tuple[bytes, ...], None] = {}
    for labels, ip in _ns_addresses(q):
        target = glue.target(labels)
        if target is not None:
            specs[target.labels] = None
            glue.add(labels, ip)
    if not specs:
        return _negative(q, _NOERROR)
    return _positive(q, [_rrset(qname, _NS, q.options.ttl, tuple(specs))], glue.rrsets())


def _ptr(q: _Query, qname: dns.name.Name, base: list[str], reverse: bool) -> Answer:
    """reverse.go: a reverse name's Service, else its endpoints; other names exist or not."""
    ip = _reverse_address(qname) if reverse else None
    if ip is None:
        return _negative(q, _NOERROR if _exists(q, qname, base, reverse) else _NXDOMAIN)
    targets = _reverse_targets(q, ip)
    if not targets:
        return _negative(q, _NXDOMAIN)
    primary = q.options.primary_labels
    names = [_make_name(labels, primary) for labels in targets]
    specs = tuple(name.labels for name in names if name is not None)
    return _positive(q, [_rrset(qname, _PTR, q.options.ttl, specs)] if specs else [])


def _reverse_address(name: dns.name.Name) -> str | None:
    """The IP a reverse name stands for (dnsutil.ExtractAddressFromReverse), or None.

    Four decimal labels under in-addr.arpa, or exactly 32 nibbles under
    ip6.arpa (CoreDNS also accepts up to three extra leading labels there).
    """
    lower = [label.lower().decode("latin-1") for label in name.labels[:-1]]
    if lower[-2:] == ["in-addr", "arpa"]:
        if len(lower) != 6:
            return None
        address = _parse_ip(".".join(reversed(lower[:4])))
        return str(address) if address is not None and address.version == 4 else None
    if lower[-2:] == ["ip6", "arpa"]:
        nibbles = lower[:-2]
        if len(nibbles) != 32 or any(len(nibble) != 1 for nibble in nibbles):
            return None
        digits = "".join(reversed(nibbles))
        address = _parse_ip(":".join(digits[i : i + 4] for i in range(0, 32, 4)))
        return address.compressed if address is not None else None
    return None


def _reverse_targets(q: _Query, ip: str) -> list[tuple[str, ...]]:
    """reverse.go serviceRecordForIP: names (left of the primary zone) for an IP.

    The first Service with that cluster IP; otherwise every ready endpoint
    with that IP. Namespaces are checked only when `namespaces` is given,
    as in CoreDNS.
    """
    q.deps.add(("address", ip))
    store = q.store
    check_namespaces = bool(q.options.namespaces)
    for service in store.services_by_ip(ip):
        q.deps.add(("namespace", service.namespace))
        if not _visible(q, service):
            continue
        if check_namespaces and not _namespace_exposed(q, service.namespace):
            continue
        return [(service.name, service.namespace, "svc")]
    targets: list[tuple[str, ...]] = []
    if q.options.noendpoints:
        return targets
    pod_names = q.options.endpoint_pod_names
    for eps in store.slices_by_ip(ip):
        q.deps.add(("namespace", eps.namespace))
        q.deps.add(("service", eps.namespace, eps.service_name))
        if eps.address_type == "FQDN" or not eps.service_name or not _visible(q, eps):
            continue
        if check_namespaces and not _namespace_exposed(q, eps.namespace):
            continue
        service = store.service(eps.namespace, eps.service_name)
        for ep in eps.endpoints:
            if ip in ep.addresses and _ready(ep, service):
                target = (endpoint_name(ep, ip, pod_names), eps.service_name, eps.namespace, "svc")
                if target not in targets:
                    targets.append(target)
    return targets


# --- the whole zone, for AXFR (xfr.go) -------------------------------------------------


def soa_serial(store: Store) -> int:
    """The serial of every kubernetes zone's SOA: the Store's last modification time."""
    return store.modified & 0xFFFFFFFF


def transfer_records(store: Store, options: ZoneOptions, zone: str) -> Iterator[dns.rrset.RRset]:
    """The zone's records in CoreDNS's order (xfr.go transferServices), one record per RRset.

    The SOA; an NS record per name server and their addresses; then each
    exposed Service, by name: its cluster IPs and an SRV record per port
    (weight 100), or, without a cluster IP, its ready endpoints (the
    Service's name and each endpoint's, and an SRV record per named port);
    an ExternalName's CNAME; the SOA again. A generator: the caller
    streams it in messages as it goes.
    """
    zone_labels = dns.name.from_text(zone).labels
    q = _Query(store, options, zone_labels)
    ttl = options.ttl
    soa = _soa(q)
    yield soa
    apex = dns.name.Name(zone_labels)
    servers = _ns_addresses(q)
    for labels in dict.fromkeys(labels for labels, _ in servers):
        target = q.name(labels)
        if target is not None:
            yield _single(apex, ttl, NS(_IN, _NS, target))
    for labels, ip in servers:
        owner = q.name(labels)
        if owner is not None:
            yield _single(owner, ttl, _address_rdata(ip))
    for service in sorted(store.services(), key=lambda s: (s.name, s.namespace)):
        if not _visible(q, service) or not _namespace_exposed(q, service.namespace):
            continue
        yield from _service_records(q, service)
    yield soa


def _service_records(q: _Query, service: Service) -> Iterator[dns.rrset.RRset]:
    ttl = q.options.ttl
    base = (service.name, service.namespace, "svc")
    owner = q.name(base)
    if owner is None:
        return
    if service.is_external_name:
        if _parse_ip(service.external_name) is None:
            record = dns.rrset.RRset(owner, _IN, _CNAME)
            record.add(CNAME(_IN, _CNAME, dns.name.from_text(service.external_name)), ttl)
            yield record
        return
    if service.cluster_ips:
        for ip in service.cluster_ips:
            yield _single(owner, ttl, _address_rdata(ip))
        for port in service.ports:
            srv = SRV(_IN, _SRV, 0, 100, port.port, owner)
            yield _single(owner, ttl, srv)
            # As the specification says, unnamed ports have no SRV name.
            if port.name:
                named = q.name((f"_{port.name.lower()}", f"_{port.protocol.lower()}") + base)
                if named is not None:
                    yield _single(named, ttl, srv)
        return
    for eps in _slices(q, service):
        ready = [ep for ep in eps.endpoints if _ready(ep, service)]
        # calcSRVWeight over the subset's addresses.
        weight = max(1, math.floor(100.0 / float(100 * max(1, sum(len(ep.addresses) for ep in ready))) * 100))
        for ep in ready:
            for address in ep.addresses:
                rdata = _address_rdata(address)
                yield _single(owner, ttl, rdata)
                host = q.name((endpoint_name(ep, address, q.options.endpoint_pod_names),) + base)
                if host is None:
                    continue
                yield _single(host, ttl, rdata)
                for port in eps.ports:
                    if port.name and port.port is not None:
                        named = q.name((f"_{port.name.lower()}", f"_{port.protocol.lower()}") + base)
                        if named is not None:
                            yield _single(named, ttl, SRV(_IN, _SRV, 0, weight, port.port, host))


def _single(owner: dns.name.Name, ttl: int, rdata) -> dns.rrset.RRset:
    """One record as an RRset, built directly: a transfer's records are mostly
    unique, and the memoised templates of the query path must not be
    crowded out by them."""
    rrset = dns.rrset.RRset(owner, _IN, rdata.rdtype)
    rrset.add(rdata, ttl)
    return rrset
