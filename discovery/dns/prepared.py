"""The questions whose answers are prepared before anyone asks them.

A fresh process, or an answer a Store change has just dropped, would
otherwise cost every client its first question on the miss path. The
server renders these questions ahead (`DNSServer.prepare`, off the query
path, before /ready says 200 for the initial sync), on its fast route, so
the answers are the zone function's own (`discovery.dns.zone`): this module
only says which names exist and are worth having ready, never what they
answer.

Prepared, for every Service under the primary zone: its name (A, and AAAA
when it has an IPv6 cluster IP; SRV when it has ports), each named port's
``_port._proto`` name (SRV), for a headless Service each endpoint's name
(A/AAAA); and the PTR name of each cluster IP inside the plugin's zones.
Questions are wire bytes: the lower-cased name, type and class IN, as the
table of rendered answers keys them.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Iterator

import dns.name
import dns.rdatatype

from ..cache.objects import EndpointSlice, Namespace, Service
from ..cache.store import Change, Store
from ..zones import longest_match
from .zone import ZoneOptions, endpoint_name

__all__ = ["questions", "change_questions"]

_IN = b"\x00\x01"
_A = dns.rdatatype.A.to_bytes(2, "big")
_AAAA = dns.rdatatype.AAAA.to_bytes(2, "big")
_SRV = dns.rdatatype.SRV.to_bytes(2, "big")
_PTR = dns.rdatatype.PTR.to_bytes(2, "big")


def questions(store: Store, options: ZoneOptions, zones: tuple[str, ...]) -> Iterator[bytes]:
    """Every question worth preparing for the Store's Services."""
    for service in store.services():
        yield from _service_questions(store, options, zones, service)


def change_questions(store: Store, options: ZoneOptions, zones: tuple[str, ...], change: Change) -> Iterator[bytes]:
    """The questions a Store change may have added or altered (its Services, as they are now)."""
    seen = set()
    for obj in (change.old, change.new):
        if isinstance(obj, Service):
            key = (obj.namespace, obj.name)
        elif isinstance(obj, EndpointSlice) and obj.service_name:
            key = (obj.namespace, obj.service_name)
        elif isinstance(obj, Namespace):
            for service in store.services_in(obj.name).values():
                yield from _service_questions(store, options, zones, service)
            continue
        else:
            continue
        if key in seen:
            continue
        seen.add(key)
        service = store.service(*key)
        if service is not None:
            yield from _service_questions(store, options, zones, service)


def _service_questions(store: Store, options: ZoneOptions, zones: tuple[str, ...], service: Service) -> Iterable[bytes]:
    if longest_match(zones, options.primary_zone) != options.primary_zone:
        return ()
    base = _wire((service.name, service.namespace, "svc"), options.primary_labels)
    if base is None:
        return ()
    found = []
    families = {_family(ip) for ip in service.cluster_ips}
    if service.is_external_name or not service.cluster_ips or 4 in families:
        found.append(base + _A + _IN)
    if 6 in families:
        found.append(base + _AAAA + _IN)
    if service.ports:
        found.append(base + _SRV + _IN)
    for port in service.ports:
        if port.name and port.protocol:
            name = _wire(("_" + port.name.lower(), "_" + port.protocol.lower()), (), base)
            if name is not None:
                found.append(name + _SRV + _IN)
    if service.headless and not options.noendpoints:
        for eps in store.slices_for(service.namespace, service.name):
            for endpoint in eps.endpoints:
                for address in endpoint.addresses:
                    host = endpoint_name(endpoint, address, options.endpoint_pod_names).lower()
                    name = _wire((host,), (), base)
                    if name is not None:
                        found.append(name + (_AAAA if _family(address) == 6 else _A) + _IN)
    for ip in service.cluster_ips:
        try:
            reverse = ipaddress.ip_address(ip).reverse_pointer + "."
        except ValueError:
            continue
        if longest_match(zones, reverse) is not None:
            found.append(dns.name.from_text(reverse).to_wire() + _PTR + _IN)
    return found


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _wire(labels: tuple[str, ...], origin: tuple[bytes, ...], suffix: bytes = b"") -> bytes | None:
    """labels + origin (or + suffix, a wire name) as lower-case wire; None if not a valid name."""
    try:
        if suffix:
            head = b"".join(bytes((len(part),)) + part for part in (label.encode() for label in labels))
            if any(not label or "." in label or len(label.encode()) > 63 for label in labels) or len(head) + len(suffix) > 255:
                return None
            return head + suffix
        return dns.name.Name(tuple(label.lower().encode() for label in labels) + origin).to_wire()
    except (dns.name.LabelTooLong, dns.name.NameTooLong, dns.name.EmptyLabel, UnicodeError):
        return None
