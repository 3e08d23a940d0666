"""Slim, frozen value objects for what Wayfinder reads from Kubernetes.

The API's JSON (camelCase, exactly as the API server sends it, or as a
manifest file holds it) is converted once, here, at the edge. Each converter
validates what it reads, and raises `ObjectError` naming the object, the
field and the reason when it cannot; the caller logs that and skips the
object, so bad data never reaches the Store.

The rule for every check: never stricter than the API server under any
feature gate. An object the API server can store is never dropped by a
rule it does not enforce (Service names are DNS-1123 labels, not DNS-1035,
since the RelaxedServiceNameValidation gate of Kubernetes 1.34, KEP-5311;
IPv4 addresses with leading zeros pass, as netutils.ParseIPSloppy reads
them, while StrictIPCIDRValidation is off). What is rejected is what would
make a DNS answer or a kubelet variable wrong, or what the API server
refuses under every gate, so that a manifests folder follows current
Kubernetes validation, relaxed rules included.

Only the fields that the DNS schema, CoreDNS's kubernetes plugin and the
kubelet's Service environment variables read are kept: with 100,000 objects in
the cache, every field costs memory. Strings that repeat across many objects
(namespaces, node names, zones, protocols) are interned.
"""

from __future__ import annotations

import ipaddress
import re
import reprlib
import sys
from typing import Any, Mapping

import attrs

__all__ = [
    "ENDED_POD_PHASES",
    "ObjectError",
    "quote",
    "ServicePort",
    "LoadBalancerIngress",
    "Service",
    "TargetRef",
    "Endpoint",
    "EndpointPort",
    "EndpointSlice",
    "Pod",
    "Namespace",
    "Labels",
    "service_from_api",
    "endpoint_slice_from_api",
    "endpoints_to_slices",
    "pod_from_api",
    "namespace_from_api",
    "SERVICE_NAME_LABEL",
    "TOLERATE_UNREADY_ANNOTATION",
]

#: The label that ties an EndpointSlice to its Service (discovery.k8s.io/v1).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: Deprecated predecessor of spec.publishNotReadyAddresses, still honoured by
#: CoreDNS-era clusters and by the endpoints controller.
TOLERATE_UNREADY_ANNOTATION = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

SERVICE_TYPES = frozenset({"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"})
PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
ADDRESS_TYPES = frozenset({"IPv4", "IPv6", "FQDN"})
IP_FAMILIES = frozenset({"IPv4", "IPv6"})
TRAFFIC_POLICIES = frozenset({"Cluster", "Local"})
#: status.loadBalancer.ingress[].ipMode (KEP-1860).
IP_MODES = frozenset({"VIP", "Proxy"})
#: The types the API server gives node ports to.
_NODE_PORT_TYPES = frozenset({"NodePort", "LoadBalancer"})

# k8s.io/apimachinery/pkg/util/validation: DNS-1123 label (Service names
# under RelaxedServiceNameValidation, namespaces, Service and EndpointSlice
# port names, endpoint hostnames) and subdomain.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
#: strconv.ParseBool's true values: how the endpoints controller read the
#: tolerate-unready annotation.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})

#: Labels as a sorted tuple of (key, value) pairs: hashable, compact, and
#: equal exactly when the label maps are equal.
Labels = tuple[tuple[str, str], ...]


#: Values quoted in messages are cut short: a manifest's value may be a
#: megabyte string, or a YAML alias graph that expands to millions of nodes
#: when walked, and one message must cost neither the time nor the memory.
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = 80
_QUOTE.maxother = 80
_QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxdict = _QUOTE.maxset = 4
_QUOTE.maxlevel = 2
QUOTE_LIMIT = 120


def quote(value: Any) -> str:
    """repr(value), cut to a bounded prefix of at most QUOTE_LIMIT characters."""
    text = _QUOTE.repr(value)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 3] + "..."


class ObjectError(ValueError):
    """An API object that cannot be converted, named by kind/namespace/name."""

    def __init__(self, kind: str, namespace: str | None, name: str | None, reason: str):
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.reason = reason
        super().__init__(f"{self.ref}: {reason}")

    @property
    def ref(self) -> str:
        name = self.name or "<unnamed>"
        return f"{self.kind} {self.namespace}/{name}" if self.namespace else f"{self.kind} {name}"


# --- value objects -------------------------------------------------------


@attrs.frozen
class ServicePort:
    name: str
    protocol: str
    port: int
    app_protocol: str | None = None
    #: spec.ports[].nodePort: NodePort and LoadBalancer Services; None otherwise.
    node_port: int | None = None


@attrs.frozen
class LoadBalancerIngress:
    """One entry of status.loadBalancer.ingress: an IP, or a hostname (AWS ELB)."""

    ip: str = ""
    hostname: str = ""
    #: "VIP", "Proxy", or "" when the load balancer did not say.
    ip_mode: str = ""


@attrs.frozen
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    #: Allocated cluster IPs, primary first (spec.clusterIPs), in canonical
    #: form: what DNS answers carry. Empty for headless and ExternalName
    #: Services and for Services not yet allocated.
    cluster_ips: tuple[str, ...] = ()
    #: spec.clusterIP == "None".
    headless: bool = False
    ip_families: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    external_name: str = ""
    #: spec.publishNotReadyAddresses, or the tolerate-unready annotation.
    publish_not_ready_addresses: bool = False
    selector: Labels = ()
    labels: Labels = ()
    #: spec.clusterIP exactly as the API server stored it, when that is not
    #: the canonical spelling of cluster_ips[0] ("2001:DB8::1", "010.0.0.1":
    #: the API server only warns); None otherwise, which costs nothing.
    cluster_ip_as_written: str | None = None
    #: spec.externalIPs, in order.
    external_ips: tuple[str, ...] = ()
    #: status.loadBalancer.ingress, in order.
    ingress: tuple[LoadBalancerIngress, ...] = ()
    #: spec.loadBalancerIP (deprecated, still set by some clusters): "" when unset.
    load_balancer_ip: str = ""
    #: spec.externalTrafficPolicy: "Cluster", "Local", or "" for types without it.
    external_traffic_policy: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def external_addresses(self) -> tuple[str, ...]:
        """What the outside world reaches this Service at, as CoreDNS lists it
        (object/service.go ExternalIPs): spec.externalIPs, then each ingress's
        IP, or its hostname when it has no IP."""
        if not self.ingress:
            return self.external_ips
        return self.external_ips + tuple(entry.ip or entry.hostname for entry in self.ingress)

    @property
    def cluster_ip(self) -> str:
        """The primary cluster IP in canonical form ("" when there is none)."""
        return self.cluster_ips[0] if self.cluster_ips else ""

    @property
    def spec_cluster_ip(self) -> str:
        """spec.clusterIP verbatim ("" when there is none): what the kubelet copies into variables."""
        if self.cluster_ip_as_written is not None and self.cluster_ips:
            return self.cluster_ip_as_written
        return self.cluster_ip

    @property
    def is_external_name(self) -> bool:
        return self.type == "ExternalName"

    @property
    def needs_cluster_ip(self) -> bool:
        """True for a Service the API server would have given a cluster IP."""
        return not (self.headless or self.is_external_name or self.cluster_ips)


@attrs.frozen
class TargetRef:
    kind: str
    namespace: str
    name: str


@attrs.frozen
class Endpoint:
    addresses: tuple[str, ...]
    #: conditions.ready; a missing condition means ready (discovery/v1 API).
    ready: bool = True
    #: conditions.serving; a missing condition takes the value of ready.
    serving: bool = True
    terminating: bool = False
    hostname: str | None = None
    target_ref: TargetRef | None = None
    node_name: str | None = None
    zone: str | None = None


@attrs.frozen
class EndpointPort:
    name: str = ""
    protocol: str = "TCP"
    #: None means "all ports" (an EndpointSlice port without a number).
    port: int | None = None
    app_protocol: str | None = None


@attrs.frozen
class EndpointSlice:
    namespace: str
    name: str
    #: The owning Service's name, from the kubernetes.io/service-name label;
    #: "" for a slice that belongs to no Service.
    service_name: str
    address_type: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    labels: Labels = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def service_key(self) -> tuple[str, str]:
        return (self.namespace, self.service_name)


#: The phases of a Pod that can no longer serve: CoreDNS watches only the
#: others (controller.go, podListFunc).
ENDED_POD_PHASES = ("Succeeded", "Failed", "Unknown")


@attrs.frozen
class Pod:
    namespace: str
    name: str
    ips: tuple[str, ...] = ()
    phase: str = ""
    #: metadata.deletionTimestamp is set: CoreDNS stops answering for it.
    deleting: bool = False
    labels: Labels = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def ended(self) -> bool:
        """Ended or being deleted: a Pod CoreDNS no longer answers for."""
        return self.deleting or self.phase in ENDED_POD_PHASES


@attrs.frozen
class Namespace:
    name: str
    labels: Labels = ()

    @property
    def key(self) -> tuple[str, str]:
        return ("", self.name)


# --- helpers ---------------------------------------------------------------


class _Reader:
    """Reads fields of one API object, turning every problem into ObjectError."""

    __slots__ = ("kind", "namespace", "name")

    def __init__(self, kind: str, obj: Any, default_namespace: str | None):
        self.kind = kind
        self.namespace: str | None = None
        self.name: str | None = None
        if not isinstance(obj, Mapping):
            self.fail(f"expected an object, got {type(obj).__name__}")
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping):
            self.fail("metadata: expected an object")
        name = metadata.get("name")
        if isinstance(name, str) and name:
            self.name = name
        namespace = metadata.get("namespace") or default_namespace
        if namespace is not None and not isinstance(namespace, str):
            self.fail("metadata.namespace: expected a string")
        self.namespace = namespace
        if name is not None and self.name is None:
            self.fail(f"metadata.name: expected a non-empty string, got {quote(name)}")
        if self.name is None:
            self.fail("metadata.name is missing")

    def fail(self, reason: str):
        raise ObjectError(self.kind, self.namespace, self.name, reason)

    def mapping(self, value: Any, path: str) -> Mapping:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(f"{path}: expected an object")
        return value

    def sequence(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"{path}: expected a list")
        return value

    def string(self, value: Any, path: str, default: str | None = None) -> str | None:
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(f"{path}: expected a string, got {quote(value)}")
        return value

    def boolean(self, value: Any, path: str, default: bool | None) -> bool | None:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(f"{path}: expected true or false, got {quote(value)}")
        return value

    def port_number(self, value: Any, path: str, *, required: bool) -> int | None:
        if value is None:
            if required:
                self.fail(f"{path} is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.fail(f"{path}: {quote(value)} is not a port number (1-65535)")
        return value

    def ip(self, value: Any, path: str, family: str | None = None) -> str:
        if not isinstance(value, str):
            self.fail(f"{path}: expected an IP address, got {quote(value)}")
        try:
            address = _parse_ip_sloppy(value)
        except ValueError:
            self.fail(f"{path}: {quote(value)} is not an IP address")
        if family is not None and _family(address) != family:
            self.fail(f"{path}: {quote(value)} is not an {family} address")
        if getattr(address, "scope_id", None):
            # ipaddress accepts RFC 4007 zones ("fe80::1%eth0"); the API does not.
            self.fail(f"{path}: {quote(value)} carries a zone index, which the API does not allow")
        # Not interned: addresses are mostly unique, and the intern table
        # would only add its own entry for each.
        return address.compressed

    def protocol(self, value: Any, path: str) -> str:
        protocol = self.string(value, path, "TCP")
        if protocol not in PROTOCOLS:
            self.fail(f"{path}: {quote(protocol)} is not one of TCP, UDP, SCTP")
        return sys.intern(protocol)

    def labels(self, value: Any, path: str) -> Labels:
        labels = self.mapping(value, path)
        pairs = []
        for key, val in labels.items():
            if not isinstance(key, str) or not isinstance(val, str):
                self.fail(f"{path}: label {quote(key)} must map a string to a string")
            pairs.append((sys.intern(key), sys.intern(val)))
        pairs.sort()
        return tuple(pairs)

    def check_name(self, pattern: re.Pattern, what: str, limit: int):
        if len(self.name) > limit or not pattern.match(self.name):
            self.fail(f"metadata.name: {quote(self.name)} is not a valid {what}")

    def check_namespace(self):
        if self.namespace is None:
            self.fail("metadata.namespace is missing")
        if not _is_dns_label(self.namespace):
            self.fail(f"metadata.namespace: {quote(self.namespace)} is not a valid DNS-1123 label")
        self.namespace = sys.intern(self.namespace)


_LEADING_ZEROS_IPV4 = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}\Z")


def _parse_ip_sloppy(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """ipaddress.ip_address, plus IPv4 with leading zeros read as decimal.

    netutils.ParseIPSloppy (the API server's parser while the
    StrictIPCIDRValidation gate is off) reads "010.000.000.001" as 10.0.0.1;
    Python refuses leading zeros since 3.9.5.
    """
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        if not _LEADING_ZEROS_IPV4.match(text):
            raise
        return ipaddress.IPv4Address(".".join(str(int(part)) for part in text.split(".")))


def _family(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return "IPv4" if address.version == 4 else "IPv6"


def family_of(ip: str) -> str:
    """IPv4 or IPv6 for an address already validated by a converter."""
    return "IPv6" if ":" in ip else "IPv4"


def _is_dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value))


def _is_dns_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS1123_LABEL.match(value))


# --- converters --------------------------------------------------------------


def service_from_api(obj: Any, default_namespace: str | None = None) -> Service:
    """Convert a v1 Service. Raises ObjectError for what the API would reject."""
    r = _Reader("Service", obj, default_namespace)
    r.check_namespace()
    # ValidateService names Services with NameIsDNS1035Label, or with
    # NameIsDNSLabel under RelaxedServiceNameValidation (1.34, KEP-5311):
    # "1kubernetes" is a name the API server may hold, and DNS answers for it.
    r.check_name(_DNS1123_LABEL, "DNS-1123 label (Service name)", 63)
    metadata = r.mapping(obj.get("metadata"), "metadata")
    spec = r.mapping(obj.get("spec"), "spec")

    service_type = r.string(spec.get("type"), "spec.type", "ClusterIP")
    if service_type not in SERVICE_TYPES:
        r.fail(f"spec.type: {quote(service_type)} is not one of {', '.join(sorted(SERVICE_TYPES))}")

    cluster_ip = r.string(spec.get("clusterIP"), "spec.clusterIP", "")
    raw_ips = r.sequence(spec.get("clusterIPs"), "spec.clusterIPs")
    if not raw_ips and cluster_ip:
        raw_ips = [cluster_ip]
    if raw_ips and cluster_ip and raw_ips[0] != cluster_ip:
        r.fail(f"spec.clusterIPs[0] {quote(raw_ips[0])} does not match spec.clusterIP {quote(cluster_ip)}")
    headless = bool(raw_ips) and raw_ips[0] == "None"
    as_written = None
    if headless:
        if len(raw_ips) > 1:
            r.fail("spec.clusterIPs: 'None' must be the only entry of a headless Service")
        cluster_ips: tuple[str, ...] = ()
    else:
        cluster_ips = tuple(r.ip(ip, f"spec.clusterIPs[{i}]") for i, ip in enumerate(raw_ips))
        if cluster_ips and cluster_ips[0] != raw_ips[0]:
            # The kubelet copies spec.clusterIP into its variables verbatim.
            as_written = raw_ips[0]
        if len(cluster_ips) > 2 or (
            len(cluster_ips) == 2 and family_of(cluster_ips[0]) == family_of(cluster_ips[1])
        ):
            r.fail("spec.clusterIPs: at most one address of each family is allowed")

    families = []
    for i, family in enumerate(r.sequence(spec.get("ipFamilies"), "spec.ipFamilies")):
        if not isinstance(family, str) or family not in IP_FAMILIES:
            r.fail(f"spec.ipFamilies[{i}]: {quote(family)} is not IPv4 or IPv6")
        families.append(sys.intern(family))
    if not families:
        families = [family_of(ip) for ip in cluster_ips]
    elif cluster_ips and [family_of(ip) for ip in cluster_ips] != families[: len(cluster_ips)]:
        r.fail("spec.ipFamilies does not match the families of spec.clusterIPs")

    external_name = r.string(spec.get("externalName"), "spec.externalName", "")
    if service_type == "ExternalName":
        # Kept as written: CoreDNS's CNAME carries the object's spelling. The
        # API server holds only lower case; a manifest may not, and case
        # changes no answer's meaning, so it is not a reason to drop it.
        external_name = external_name.rstrip(".")
        if not external_name or not _is_dns_subdomain(external_name.lower()):
            r.fail(f"spec.externalName: {quote(external_name)} is not a DNS name")
        cluster_ips, headless, families, as_written = (), False, [], None

    ports = []
    # ValidateService: names are DNS-1123 labels, unique, and required when
    # there is more than one port; each (port, protocol) appears once.
    raw_ports = r.sequence(spec.get("ports"), "spec.ports")
    seen_names: set[str] = set()
    seen_numbers: set[tuple[int, str]] = set()
    for i, port in enumerate(raw_ports):
        path = f"spec.ports[{i}]"
        port = r.mapping(port, path)
        name = r.string(port.get("name"), f"{path}.name", "")
        if not name and len(raw_ports) > 1:
            r.fail(f"{path}.name is required when a Service has more than one port")
        if name and not _is_dns_label(name):
            # It becomes the _port label of SRV names.
            r.fail(f"{path}.name: {quote(name)} is not a valid DNS-1123 label")
        if name in seen_names:
            r.fail(f"{path}.name: duplicate port name {quote(name)}")
        seen_names.add(name)
        protocol = r.protocol(port.get("protocol"), f"{path}.protocol")
        number = r.port_number(port.get("port"), f"{path}.port", required=True)
        if (number, protocol) in seen_numbers:
            r.fail(f"{path}: duplicate port {number}/{protocol}")
        seen_numbers.add((number, protocol))
        app_protocol = r.string(port.get("appProtocol"), f"{path}.appProtocol")
        node_port = None
        if service_type in _NODE_PORT_TYPES:
            node_port = r.port_number(port.get("nodePort"), f"{path}.nodePort", required=False)
        ports.append(ServicePort(sys.intern(name), protocol, number, app_protocol, node_port))

    annotations = r.mapping(metadata.get("annotations"), "metadata.annotations")
    publish = r.boolean(
        spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses", False
    ) or annotations.get(TOLERATE_UNREADY_ANNOTATION) in _GO_TRUE

    external_ips = tuple(
        r.ip(ip, f"spec.externalIPs[{i}]")
        for i, ip in enumerate(r.sequence(spec.get("externalIPs"), "spec.externalIPs"))
    )
    load_balancer_ip = r.string(spec.get("loadBalancerIP"), "spec.loadBalancerIP", "")
    if load_balancer_ip:
        load_balancer_ip = r.ip(load_balancer_ip, "spec.loadBalancerIP")
    policy = r.string(spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy", "")
    if policy and policy not in TRAFFIC_POLICIES:
        r.fail(f"spec.externalTrafficPolicy: {policy!r} is not Cluster or Local")
    if service_type == "ExternalName":
        external_ips, load_balancer_ip, policy = (), "", ""

    return Service(
        namespace=r.namespace,
        name=r.name,
        type=sys.intern(service_type),
        cluster_ips=cluster_ips,
        headless=headless,
        ip_families=tuple(families),
        ports=tuple(ports),
        external_name=external_name,
        publish_not_ready_addresses=publish,
        selector=r.labels(spec.get("selector"), "spec.selector"),
        labels=r.labels(metadata.get("labels"), "metadata.labels"),
        cluster_ip_as_written=as_written,
        external_ips=external_ips,
        ingress=_ingress(r, r.mapping(obj.get("status"), "status")),
        load_balancer_ip=load_balancer_ip,
        external_traffic_policy=sys.intern(policy),
    )


def _ingress(r: _Reader, status: Mapping) -> tuple[LoadBalancerIngress, ...]:
    """status.loadBalancer.ingress, validated as ValidateLoadBalancerStatus does."""
    balancer = r.mapping(status.get("loadBalancer"), "status.loadBalancer")
    entries = []
    for i, entry in enumerate(r.sequence(balancer.get("ingress"), "status.loadBalancer.ingress")):
        path = f"status.loadBalancer.ingress[{i}]"
        entry = r.mapping(entry, path)
        ip = r.string(entry.get("ip"), f"{path}.ip", "")
        if ip:
            ip = r.ip(ip, f"{path}.ip")
        hostname = r.string(entry.get("hostname"), f"{path}.hostname", "").rstrip(".").lower()
        if hostname:
            if not _is_dns_subdomain(hostname):
                r.fail(f"{path}.hostname: {hostname!r} is not a DNS name")
            try:
                ipaddress.ip_address(hostname)
            except ValueError:
                pass
            else:
                r.fail(f"{path}.hostname: {hostname!r} must be a DNS name, not an IP address")
        ip_mode = r.string(entry.get("ipMode"), f"{path}.ipMode", "")
        if ip_mode:
            if ip_mode not in IP_MODES:
                r.fail(f"{path}.ipMode: {ip_mode!r} is not VIP or Proxy")
            if not ip:
                r.fail(f"{path}.ipMode: only allowed with an ip")
        if not ip and not hostname:
            # An empty entry publishes nothing (CoreDNS would list "").
            continue
        entries.append(LoadBalancerIngress(ip, sys.intern(hostname) if hostname else "", sys.intern(ip_mode)))
    return tuple(entries)


def _target_ref(r: _Reader, value: Any, path: str) -> TargetRef | None:
    if value is None:
        return None
    ref = r.mapping(value, path)
    name = r.string(ref.get("name"), f"{path}.name", "")
    if not name:
        return None
    return TargetRef(
        kind=sys.intern(r.string(ref.get("kind"), f"{path}.kind", "")),
        namespace=sys.intern(r.string(ref.get("namespace"), f"{path}.namespace", r.namespace)),
        name=name,
    )


def _optional_label(r: _Reader, value: Any, path: str) -> str | None:
    text = r.string(value, path)
    if text is None or text == "":
        return None
    return sys.intern(text)


def _hostname(r: _Reader, value: Any, path: str) -> str | None:
    hostname = r.string(value, path)
    if not hostname:
        return None
    if not _is_dns_label(hostname):
        # It becomes the first label of the endpoint's DNS name.
        r.fail(f"{path}: {quote(hostname)} is not a valid DNS-1123 label")
    return hostname


def endpoint_slice_from_api(obj: Any, default_namespace: str | None = None) -> EndpointSlice:
    """Convert a discovery.k8s.io/v1 EndpointSlice."""
    r = _Reader("EndpointSlice", obj, default_namespace)
    r.check_namespace()
    r.check_name(_DNS1123_SUBDOMAIN, "DNS-1123 subdomain", 253)
    metadata = r.mapping(obj.get("metadata"), "metadata")
    labels = r.labels(metadata.get("labels"), "metadata.labels")
    service_name = dict(labels).get(SERVICE_NAME_LABEL, "")

    address_type = r.string(obj.get("addressType"), "addressType")
    if address_type is None:
        r.fail("addressType is missing")
    if address_type not in ADDRESS_TYPES:
        r.fail(f"addressType: {quote(address_type)} is not one of IPv4, IPv6, FQDN")

    endpoints = []
    # A Service scaled to zero has "endpoints": null.
    for i, endpoint in enumerate(r.sequence(obj.get("endpoints"), "endpoints")):
        path = f"endpoints[{i}]"
        endpoint = r.mapping(endpoint, path)
        raw_addresses = r.sequence(endpoint.get("addresses"), f"{path}.addresses")
        if not raw_addresses:
            r.fail(f"{path}.addresses must hold at least one address")
        addresses = []
        for j, address in enumerate(raw_addresses):
            where = f"{path}.addresses[{j}]"
            if address_type == "FQDN":
                text = r.string(address, where, "")
                # IsFullyQualifiedDomainName: a trailing dot is allowed.
                if not _is_dns_subdomain(text[:-1] if text.endswith(".") else text):
                    r.fail(f"{where}: {quote(text)} is not a DNS name")
                addresses.append(text)
            else:
                addresses.append(r.ip(address, where, address_type))
        conditions = r.mapping(endpoint.get("conditions"), f"{path}.conditions")
        ready = r.boolean(conditions.get("ready"), f"{path}.conditions.ready", True)
        serving = r.boolean(conditions.get("serving"), f"{path}.conditions.serving", ready)
        terminating = r.boolean(
            conditions.get("terminating"), f"{path}.conditions.terminating", False
        )
        endpoints.append(
            Endpoint(
                addresses=tuple(addresses),
                ready=ready,
                serving=serving,
                terminating=terminating,
                hostname=_hostname(r, endpoint.get("hostname"), f"{path}.hostname"),
                target_ref=_target_ref(r, endpoint.get("targetRef"), f"{path}.targetRef"),
                node_name=_optional_label(r, endpoint.get("nodeName"), f"{path}.nodeName"),
                zone=_optional_label(r, endpoint.get("zone"), f"{path}.zone"),
            )
        )

    ports = []
    for i, port in enumerate(r.sequence(obj.get("ports"), "ports")):
        path = f"ports[{i}]"
        port = r.mapping(port, path)
        name = r.string(port.get("name"), f"{path}.name", "")
        if name and not _is_dns_label(name):
            # It becomes the _port label of SRV names.
            r.fail(f"{path}.name: {quote(name)} is not a valid DNS-1123 label")
        ports.append(
            EndpointPort(
                name=sys.intern(name),
                protocol=r.protocol(port.get("protocol"), f"{path}.protocol"),
                port=r.port_number(port.get("port"), f"{path}.port", required=False),
                app_protocol=r.string(port.get("appProtocol"), f"{path}.appProtocol"),
            )
        )

    return EndpointSlice(
        namespace=r.namespace,
        name=r.name,
        service_name=sys.intern(service_name),
        address_type=sys.intern(address_type),
        endpoints=tuple(endpoints),
        ports=tuple(ports),
        labels=labels,
    )


def endpoints_to_slices(obj: Any, default_namespace: str | None = None) -> tuple[EndpointSlice, ...]:
    """Convert a legacy v1 Endpoints object into the slices it stands for.

    As the endpoint-mirroring controller does: one slice per subset and
    address family, addresses ready, notReadyAddresses not ready. The slices
    are named ``<name>-<n>`` in subset order, so that reloading the same
    object yields the same keys.
    """
    r = _Reader("Endpoints", obj, default_namespace)
    r.check_namespace()
    r.check_name(_DNS1123_SUBDOMAIN, "DNS-1123 subdomain", 253)
    metadata = r.mapping(obj.get("metadata"), "metadata")
    labels = dict(r.labels(metadata.get("labels"), "metadata.labels"))
    labels[SERVICE_NAME_LABEL] = r.name
    labels = tuple(sorted(labels.items()))

    slices = []
    for i, subset in enumerate(r.sequence(obj.get("subsets"), "subsets")):
        path = f"subsets[{i}]"
        subset = r.mapping(subset, path)
        ports = []
        for j, port in enumerate(r.sequence(subset.get("ports"), f"{path}.ports")):
            where = f"{path}.ports[{j}]"
            port = r.mapping(port, where)
            ports.append(
                EndpointPort(
                    name=sys.intern(r.string(port.get("name"), f"{where}.name", "")),
                    protocol=r.protocol(port.get("protocol"), f"{where}.protocol"),
                    port=r.port_number(port.get("port"), f"{where}.port", required=True),
                    app_protocol=r.string(port.get("appProtocol"), f"{where}.appProtocol"),
                )
            )
        by_family: dict[str, list[Endpoint]] = {"IPv4": [], "IPv6": []}
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for j, address in enumerate(r.sequence(subset.get(field), f"{path}.{field}")):
                where = f"{path}.{field}[{j}]"
                address = r.mapping(address, where)
                ip = r.ip(address.get("ip"), f"{where}.ip")
                by_family[family_of(ip)].append(
                    Endpoint(
                        addresses=(ip,),
                        ready=ready,
                        serving=ready,
                        hostname=_hostname(r, address.get("hostname"), f"{where}.hostname"),
                        target_ref=_target_ref(r, address.get("targetRef"), f"{where}.targetRef"),
                        node_name=_optional_label(r, address.get("nodeName"), f"{where}.nodeName"),
                    )
                )
        for family in ("IPv4", "IPv6"):
            if by_family[family]:
                slices.append(
                    EndpointSlice(
                        namespace=r.namespace,
                        name=f"{r.name}-{len(slices)}",
                        service_name=sys.intern(r.name),
                        address_type=family,
                        endpoints=tuple(by_family[family]),
                        ports=tuple(ports),
                        labels=labels,
                    )
                )
    return tuple(slices)


def pod_from_api(obj: Any, default_namespace: str | None = None) -> Pod:
    """Convert a v1 Pod, keeping what `pods verified` and label filters read."""
    r = _Reader("Pod", obj, default_namespace)
    r.check_namespace()
    r.check_name(_DNS1123_SUBDOMAIN, "DNS-1123 subdomain", 253)
    metadata = r.mapping(obj.get("metadata"), "metadata")
    status = r.mapping(obj.get("status"), "status")
    ips = []
    for i, entry in enumerate(r.sequence(status.get("podIPs"), "status.podIPs")):
        entry = r.mapping(entry, f"status.podIPs[{i}]")
        ips.append(r.ip(entry.get("ip"), f"status.podIPs[{i}].ip"))
    pod_ip = r.string(status.get("podIP"), "status.podIP", "")
    if pod_ip:
        pod_ip = r.ip(pod_ip, "status.podIP")
        if not ips:
            ips = [pod_ip]
        elif ips[0] != pod_ip:
            r.fail(f"status.podIP {quote(pod_ip)} does not match status.podIPs[0] {quote(ips[0])}")
    return Pod(
        namespace=r.namespace,
        name=r.name,
        ips=tuple(ips),
        phase=sys.intern(r.string(status.get("phase"), "status.phase", "")),
        deleting=bool(metadata.get("deletionTimestamp")),
        labels=r.labels(metadata.get("labels"), "metadata.labels"),
    )


def namespace_from_api(obj: Any, default_namespace: str | None = None) -> Namespace:
    """Convert a v1 Namespace (a cluster-scoped object)."""
    r = _Reader("Namespace", obj, None)
    if not _is_dns_label(r.name):
        r.fail(f"metadata.name: {quote(r.name)} is not a valid DNS-1123 label")
    metadata = r.mapping(obj.get("metadata"), "metadata")
    return Namespace(
        name=sys.intern(r.name), labels=r.labels(metadata.get("labels"), "metadata.labels")
    )
