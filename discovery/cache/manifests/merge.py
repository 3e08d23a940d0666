"""All files together: what the Store should hold, and the cluster IPs the API server would have given.

Pure: `merge` takes every file's `ParsedFile` and the configuration and
returns the objects, with `allocate_cluster_ips` doing the API server's
allocator's work for Services that name no cluster IP.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from typing import Iterable, Iterator, Mapping, Sequence

import attrs

from ..config import SourceConfig
from ..objects import Namespace, Service, family_of
from ..store import CacheObject
from .parse import BUILTIN_NAMESPACES, Entry, Key, ParsedFile, Problem

__all__ = [
    "Allocation",
    "AllocationResult",
    "Merged",
    "ServiceRange",
    "allocate_cluster_ips",
    "merge",
    "NAMESPACE_NAME_LABEL",
]

#: The label the API server sets on every Namespace to its name (Kubernetes 1.21+).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# --- cluster IPs -----------------------------------------------------------------


@attrs.frozen
class ServiceRange:
    """One service CIDR, as the API server's allocator uses it (ipallocator/bitmap.go)."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    @classmethod
    def parse(cls, cidr: str) -> "ServiceRange":
        return cls(ipaddress.ip_network(cidr))

    @property
    def family(self) -> str:
        return "IPv4" if self.network.version == 4 else "IPv6"

    @property
    def last(self) -> int:
        """The highest usable offset from the network address."""
        size = self.network.num_addresses
        if self.network.version == 4:
            # The broadcast address is never handed out.
            return max(size - 2, 0)
        # The allocator's bitmap covers at most 65536 addresses of an IPv6 range.
        return min(size, 65536) - 1

    @property
    def static_band(self) -> int:
        """Offsets 1..band are left to Services that choose their IP (KEP-3070)."""
        size = self.network.num_addresses
        if size <= 16:
            return 0
        return min(max(16, size // 16), 256)

    def address(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def candidates(self, seed: int) -> Iterator[int]:
        """Offsets to try, in order: the dynamic band from a seeded start, then the static band.

        Offset 0 (the network address) and 1 (kubeadm's `kubernetes`
        Service, 10.96.0.1) are never offered.
        """
        first, last, band = 2, self.last, self.static_band
        dynamic_first = max(band + 1, first)
        if dynamic_first <= last:
            start = dynamic_first + seed % (last - dynamic_first + 1)
            yield from range(start, last + 1)
            yield from range(dynamic_first, start)
        yield from range(first, min(band, last) + 1)


@attrs.frozen
class AllocationResult:
    #: Service key -> (cluster IPs, their families), for each Service given IPs.
    assigned: Mapping[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]]
    #: Service key -> why it cannot have cluster IPs.
    rejected: Mapping[tuple[str, str], str]


def _seed(service: Service) -> int:
    digest = hashlib.sha256(f"{service.namespace}/{service.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _families_wanted(service: Service, policy: str, configured: Sequence[str]) -> tuple[str, ...]:
    """The families a Service gets IPs of, as the API server decides; raises ValueError.

    As the API server defaults it, a Service without ipFamilyPolicy is
    RequireDualStack when it lists two families, SingleStack otherwise; the
    primary family is the first listed, or the cluster's first range's.
    """
    requested = service.ip_families
    if not policy:
        policy = "RequireDualStack" if len(requested) > 1 else "SingleStack"
    primary = requested[0] if requested else configured[0]
    if primary not in configured:
        raise ValueError(f"spec.ipFamilies: no service_cidr of family {primary} is configured")
    if policy == "SingleStack":
        return (primary,)
    secondary = "IPv6" if primary == "IPv4" else "IPv4"
    if secondary in configured:
        return (primary, secondary)
    if policy == "RequireDualStack":
        raise ValueError(f"{policy} needs both an IPv4 and an IPv6 service_cidr")
    return (primary,)


def allocate_cluster_ips(
    requests: Sequence[tuple[Service, str]],
    used: Iterable[str],
    cidrs: Sequence[str],
    previous: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> AllocationResult:
    """Give each (Service, ipFamilyPolicy) that needs them cluster IPs from `cidrs`.

    Deterministic: a Service first tries the address its namespace/name
    hashes to in the range's dynamic band, then the next free ones, so the
    same Services get the same IPs whatever the order of files. An address
    in `used` (the IPs Services chose themselves) or already given is never
    given again. A Service keeps the IPs of `previous` (the last allocation)
    while they are free and in range, so reloads do not move it.
    """
    ranges = {}
    for cidr in cidrs:
        service_range = ServiceRange.parse(cidr)
        ranges.setdefault(service_range.family, service_range)
    configured = tuple(ranges)
    taken = {ipaddress.ip_address(ip) for ip in used}
    assigned: dict = {}
    rejected: dict = {}
    wanted = {}
    for service, policy in sorted(requests, key=lambda request: request[0].key):
        try:
            wanted[service.key] = (service, _families_wanted(service, policy, configured))
        except ValueError as error:
            rejected[service.key] = str(error)

    # Kept allocations first, so that a new Service never takes a kept IP.
    for key, (service, families) in wanted.items():
        ips = previous.get(key, ()) if previous else ()
        addresses = [ipaddress.ip_address(ip) for ip in ips]
        if (
            tuple(family_of(ip) for ip in ips) == families
            and all(address in ranges[family].network for address, family in zip(addresses, families))
            and not any(address in taken for address in addresses)
        ):
            taken.update(addresses)
            assigned[key] = (tuple(ips), families)

    for key, (service, families) in wanted.items():
        if key in assigned:
            continue
        ips = []
        for family in families:
            service_range = ranges[family]
            for offset in service_range.candidates(_seed(service)):
                address = service_range.network.network_address + offset
                if address not in taken:
                    taken.add(address)
                    ips.append(str(address))
                    break
            else:
                rejected[key] = f"no free cluster IP left in service_cidr {service_range.network}"
                break
        if key not in rejected:
            assigned[key] = (tuple(ips), families)
    return AllocationResult(assigned, rejected)


# --- all files together ------------------------------------------------------------


@attrs.frozen
class Allocation:
    """A cluster IP given to a Service that named none, as the API server would have."""

    service: Service
    path: str
    line: int

    def __str__(self) -> str:
        s = self.service
        ips = ", ".join(s.cluster_ips)
        return f"{self.path}:{self.line}: Service {s.namespace}/{s.name}: allocated cluster IP {ips}"


@attrs.frozen
class Merged:
    """What the Store should hold, with the problems found across files."""

    objects: Mapping[Key, CacheObject] = attrs.field(factory=dict)
    #: Objects defined again after their first definition (which is used).
    duplicates: tuple[Problem, ...] = ()
    #: Services left out because they cannot have the cluster IPs they need.
    rejected: tuple[Problem, ...] = ()
    #: Allocations made by this merge (kept ones are not repeated).
    allocations: tuple[Allocation, ...] = ()
    #: Every allocated Service's cluster IPs, for the next merge to keep.
    allocated: Mapping[tuple[str, str], tuple[str, ...]] = attrs.field(factory=dict)


def _ref(entry: Entry) -> str:
    kind, namespace, name = entry.origin
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _path_order(parsed: ParsedFile) -> list[str]:
    return parsed.path.split(os.sep)


def _with_name_label(namespace: Namespace) -> Namespace:
    # The API server sets this label on every Namespace, whatever the manifest says.
    labels = dict(namespace.labels)
    labels[NAMESPACE_NAME_LABEL] = namespace.name
    return attrs.evolve(namespace, labels=tuple(sorted(labels.items())))


def _selected(kind: str, obj: CacheObject, config: SourceConfig) -> bool:
    """Whether the API source, with the same configuration, would have it."""
    if kind == "Namespace":
        # Namespaces are listed cluster-wide whatever `namespaces` says (the
        # API source does the same: a missing namespace is NXDOMAIN).
        return config.namespace_labels is None or config.namespace_labels.matches(obj.labels)
    if kind == "EndpointSlice" and not config.watch_endpoints:
        return False
    if kind == "Pod" and (not config.watch_pods or obj.ended):
        return False
    if config.namespaces and obj.namespace not in config.namespaces:
        return False
    return config.labels is None or config.labels.matches(obj.labels)


def merge(
    files: Iterable[ParsedFile],
    config: SourceConfig,
    previous_allocations: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> Merged:
    """Everything the files hold, as the Store should hold it.

    The first definition of an object in path order wins; Services get the
    cluster IPs the API server would have allocated; namespaces that every
    cluster has, or that objects live in, exist; the filters of `config`
    apply.
    """
    winners: dict[Key, Entry] = {}
    duplicates: list[Problem] = []
    namespaces = set(BUILTIN_NAMESPACES)
    for parsed in sorted(files, key=_path_order):
        namespaces.update(parsed.namespaces)
        for entry in parsed.entries:
            first = winners.setdefault(entry.key, entry)
            if first is not entry:
                message = f"{_ref(entry)}: already defined at {first.where}, which is used"
                duplicates.append(Problem(entry.path, entry.line, message))

    used = [ip for (kind, _), entry in winners.items() if kind == "Service" for ip in entry.obj.cluster_ips]
    requests = [
        (entry.obj, entry.ip_family_policy)
        for (kind, _), entry in winners.items()
        if kind == "Service" and entry.obj.needs_cluster_ip
    ]
    previous_allocations = previous_allocations or {}
    result = allocate_cluster_ips(requests, used, config.service_cidrs, previous_allocations)

    objects: dict[Key, CacheObject] = {}
    allocations = []
    rejected = []
    for key, entry in winners.items():
        obj = entry.obj
        if key[0] == "Namespace":
            obj = _with_name_label(obj)
        elif key[0] == "Service" and obj.needs_cluster_ip:
            if obj.key in result.rejected:
                rejected.append(Problem(entry.path, entry.line, f"{_ref(entry)}: {result.rejected[obj.key]}"))
                continue
            ips, families = result.assigned[obj.key]
            obj = attrs.evolve(obj, cluster_ips=ips, ip_families=families)
            if previous_allocations.get(obj.key) != ips:
                allocations.append(Allocation(obj, entry.path, entry.line))
        if _selected(key[0], obj, config):
            objects[key] = obj
    for name in namespaces:
        key = ("Namespace", ("", name))
        if key not in winners:
            implied = _with_name_label(Namespace(name))
            if _selected("Namespace", implied, config):
                objects[key] = implied
    return Merged(
        objects,
        # The slices of one Endpoints object share its place: one line is enough.
        tuple(dict.fromkeys(duplicates)),
        tuple(rejected),
        tuple(allocations),
        {key: ips for key, (ips, _) in result.assigned.items()},
    )

