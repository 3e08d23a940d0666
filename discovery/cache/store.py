"""The shared watch cache: objects by key, the indexes readers need, change events.

One Store per source (API connection or manifests folder), shared by every
reader in the process: the DNS zones and the admission webhook. It is touched
only from the reactor thread. Applying one event costs time in proportion to
that object (its addresses and ports), never to the size of the cluster: every
index is a dict keyed by what readers look up, updated by removing the old
object's entries and adding the new object's.
"""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Union

import attrs

from .objects import EndpointSlice, Namespace, Pod, Service

__all__ = ["Store", "Change", "KINDS", "CacheObject", "affects_external"]

CacheObject = Union[Service, EndpointSlice, Pod, Namespace]

#: The kinds a Store holds, by the name a Change carries.
KINDS: Mapping[str, type] = {
    "Service": Service,
    "EndpointSlice": EndpointSlice,
    "Pod": Pod,
    "Namespace": Namespace,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}

_EMPTY: Mapping = MappingProxyType({})


@attrs.frozen
class Change:
    """One applied event: old is None for an add, new is None for a delete."""

    kind: str
    old: CacheObject | None
    new: CacheObject | None
    generation: int

    @property
    def object(self) -> CacheObject:
        return self.new if self.new is not None else self.old

    @property
    def namespace(self) -> str:
        obj = self.object
        return obj.name if isinstance(obj, Namespace) else obj.namespace

    def addresses(self) -> set[str]:
        """Every IP the old or new object holds: what PTR answers depend on."""
        found: set[str] = set()
        for obj in (self.old, self.new):
            if obj is not None:
                found.update(_addresses(obj))
        return found


def _addresses(obj: CacheObject) -> Iterator[str]:
    if isinstance(obj, Service):
        yield from obj.cluster_ips
        yield from _external_ips(obj)
    elif isinstance(obj, EndpointSlice):
        if obj.address_type != "FQDN":
            for endpoint in obj.endpoints:
                yield from endpoint.addresses
    elif isinstance(obj, Pod):
        yield from obj.ips


def _external_ips(svc: Service) -> Iterator[str]:
    """The IPs among a Service's external addresses (hostnames excepted)."""
    for address in svc.external_addresses:
        if ":" in address or address[:1].isdigit():
            yield address


def affects_external(change: "Change") -> bool:
    """Does this change move what the external zone (k8s_external) holds?

    As CoreDNS's serviceModified: a Service added or deleted with external
    addresses, its external addresses changed, or its ports changed.
    """
    if change.kind != "Service":
        return False
    old, new = change.old, change.new
    if old is None or new is None:
        return bool((old or new).external_addresses)
    return old.external_addresses != new.external_addresses or old.ports != new.ports


# The by-IP and by-Service indexes mostly hold one object per key; a bucket
# is that object itself until a second one arrives, then a dict by object
# key. A dict per bucket cost 15 MB at 10,000 Services + 10,000 slices.


def _add_to(index: dict, key, member) -> None:
    bucket = index.get(key)
    if bucket is None or (type(bucket) is not dict and bucket.key == member.key):
        index[key] = member
    elif type(bucket) is dict:
        bucket[member.key] = member
    else:
        index[key] = {bucket.key: bucket, member.key: member}


def _remove_from(index: dict, key, member) -> None:
    bucket = index.get(key)
    if bucket is None:
        return
    if type(bucket) is not dict:
        if bucket.key == member.key:
            del index[key]
        return
    bucket.pop(member.key, None)
    if len(bucket) == 1:
        index[key] = next(iter(bucket.values()))


def _members(bucket) -> Iterable:
    if bucket is None:
        return ()
    if type(bucket) is dict:
        return bucket.values()
    return (bucket,)


class Store:
    """Objects by key plus indexes, a generation counter and subscriptions."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._objects: dict[str, dict] = {kind: {} for kind in KINDS}
        self._services_by_namespace: dict[str, dict[str, Service]] = {}
        # Buckets: one object, or a dict of them by key (see _add_to).
        self._slices_by_service: dict[tuple[str, str], Any] = {}
        self._services_by_ip: dict[str, Any] = {}
        self._services_by_external_ip: dict[str, Any] = {}
        self._slices_by_ip: dict[str, Any] = {}
        self._pods_by_ip: dict[str, Any] = {}
        self._subscribers: list[Callable[[Change], None]] = []
        #: Incremented by every change that alters what the Store holds.
        self.generation = 0
        #: Wall-clock time of the last change (CoreDNS's SOA serial).
        self.modified = int(clock())
        #: Wall-clock time of the last change to the external zone (CoreDNS's
        #: ModifiedExternal, k8s_external's SOA serial): see affects_external.
        self.external_modified = self.modified

    # -- writing ----------------------------------------------------------

    def put(self, obj: CacheObject) -> Change | None:
        """Add or replace an object; returns the Change, or None if nothing changed."""
        kind = _KIND_OF[type(obj)]
        return self._apply(kind, obj.key, obj)

    def delete(self, kind: str, key: tuple[str, str]) -> Change | None:
        """Remove the object of that kind and key, if present."""
        return self._apply(kind, key, None)

    def replace(
        self,
        kind: str,
        objects: Iterable[CacheObject],
        namespace: str | None = None,
    ) -> list[Change]:
        """Make the objects of a kind (within one namespace, if given) exactly these.

        A relist: objects that vanished are deleted, the others put. Unchanged
        objects cause no change event.
        """
        wanted = {obj.key: obj for obj in objects}
        changes = []
        for key in list(self._objects[kind]):
            if key not in wanted and (namespace is None or key[0] == namespace):
                change = self._apply(kind, key, None)
                if change is not None:
                    changes.append(change)
        for key, obj in wanted.items():
            change = self._apply(kind, key, obj)
            if change is not None:
                changes.append(change)
        return changes

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call back with every Change; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _apply(self, kind: str, key: tuple[str, str], new: CacheObject | None) -> Change | None:
        objects = self._objects[kind]
        old = objects.get(key)
        if old == new:
            return None
        if new is None:
            del objects[key]
        else:
            objects[key] = new
        unindex = getattr(self, f"_index_{kind}")
        if old is not None:
            unindex(old, remove=True)
        if new is not None:
            unindex(new, remove=False)
        self.generation += 1
        self.modified = int(self._clock())
        change = Change(kind, old, new, self.generation)
        if affects_external(change):
            self.external_modified = self.modified
        for callback in list(self._subscribers):
            callback(change)
        return change

    def _index_Service(self, svc: Service, remove: bool) -> None:
        by_namespace = self._services_by_namespace
        if remove:
            services = by_namespace[svc.namespace]
            del services[svc.name]
            if not services:
                del by_namespace[svc.namespace]
            for ip in svc.cluster_ips:
                _remove_from(self._services_by_ip, ip, svc)
            for ip in _external_ips(svc):
                _remove_from(self._services_by_external_ip, ip, svc)
        else:
            by_namespace.setdefault(svc.namespace, {})[svc.name] = svc
            for ip in svc.cluster_ips:
                _add_to(self._services_by_ip, ip, svc)
            for ip in _external_ips(svc):
                _add_to(self._services_by_external_ip, ip, svc)

    def _index_EndpointSlice(self, eps: EndpointSlice, remove: bool) -> None:
        change = _remove_from if remove else _add_to
        change(self._slices_by_service, eps.service_key, eps)
        for ip in _addresses(eps):
            change(self._slices_by_ip, ip, eps)

    def _index_Pod(self, pod: Pod, remove: bool) -> None:
        change = _remove_from if remove else _add_to
        for ip in pod.ips:
            change(self._pods_by_ip, ip, pod)

    def _index_Namespace(self, ns: Namespace, remove: bool) -> None:
        pass

    # -- reading ----------------------------------------------------------

    def service(self, namespace: str, name: str) -> Service | None:
        return self._objects["Service"].get((namespace, name))

    def services_in(self, namespace: str) -> Mapping[str, Service]:
        """The Services of one namespace by name (a live, read-only view)."""
        services = self._services_by_namespace.get(namespace)
        return _EMPTY if services is None else MappingProxyType(services)

    def services(self) -> Iterable[Service]:
        return self._objects["Service"].values()

    def services_by_ip(self, ip: str) -> Iterable[Service]:
        return _members(self._services_by_ip.get(ip))

    def services_by_external_ip(self, ip: str) -> Iterable[Service]:
        """Services with this IP among their external addresses (CoreDNS's SvcExtIndexReverse)."""
        return _members(self._services_by_external_ip.get(ip))

    def slice(self, namespace: str, name: str) -> EndpointSlice | None:
        return self._objects["EndpointSlice"].get((namespace, name))

    def slices_for(self, namespace: str, service: str) -> Iterable[EndpointSlice]:
        """The EndpointSlices labelled with that Service's name."""
        return _members(self._slices_by_service.get((namespace, service)))

    def slices(self) -> Iterable[EndpointSlice]:
        return self._objects["EndpointSlice"].values()

    def slices_by_ip(self, ip: str) -> Iterable[EndpointSlice]:
        return _members(self._slices_by_ip.get(ip))

    def pod(self, namespace: str, name: str) -> Pod | None:
        return self._objects["Pod"].get((namespace, name))

    def pods(self) -> Iterable[Pod]:
        return self._objects["Pod"].values()

    def pods_by_ip(self, ip: str) -> Iterable[Pod]:
        return _members(self._pods_by_ip.get(ip))

    def namespace(self, name: str) -> Namespace | None:
        return self._objects["Namespace"].get(("", name))

    def namespaces(self) -> Iterable[Namespace]:
        return self._objects["Namespace"].values()

    def get(self, kind: str, key: tuple[str, str]) -> CacheObject | None:
        return self._objects[kind].get(key)

    def keys(self, kind: str) -> Iterable[tuple[str, str]]:
        return self._objects[kind].keys()

    def count(self, kind: str) -> int:
        return len(self._objects[kind])
