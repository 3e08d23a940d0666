"""The questions whose answers are prepared before anyone asks them.

A fresh process, or an answer a Store change has just dropped, would
otherwise cost every client its first question on the miss path. The
server renders these questions ahead (`DNSServer.prepare`, off the query
path, before /ready says 200 for the initial sync), on its fast route, so
the answers are the zone function's own (`discovery.dns.zone`): this module
only says which names exist and are worth having ready, never what they
answer.

Prepared, for every Service under the primary zone: its name (A, and AAAA
when it has an IPv6 cluster IP), each named port's ``_port._proto`` name
(SRV), and for a headless Service each endpoint's name (A/AAAA): what
clients ask. Other questions (PTR, the bare name's SRV, NXDOMAIN) cost a
miss on the fast route when first asked. Prepared answers are ordinary
entries of the table of rendered answers, bounded with it.
Questions are wire bytes: the lower-cased name, type and class IN, as the
table of rendered answers keys them.
"""

from __future__ import annotations

from typing import Iterable, Iterator

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
    base = _name((service.name, service.namespace, "svc"), options.primary_wire)
    if base is None:
        return ()
    found = []
    families = {_family(ip) for ip in service.cluster_ips}
    if service.is_external_name or not service.cluster_ips or 4 in families:
        found.append(base + _A + _IN)
    if 6 in families:
        found.append(base + _AAAA + _IN)
    for port in service.ports:
        if port.name and port.protocol:
            name = _name(("_" + port.name, "_" + port.protocol), base)
            if name is not None:
                found.append(name + _SRV + _IN)
    if service.headless and not options.noendpoints:
        for eps in store.slices_for(service.namespace, service.name):
            for endpoint in eps.endpoints:
                for address in endpoint.addresses:
                    name = _name((endpoint_name(endpoint, address, options.endpoint_pod_names),), base)
                    if name is not None:
                        found.append(name + (_AAAA if _family(address) == 6 else _A) + _IN)
    return found


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _name(labels: tuple[str, ...], suffix: bytes) -> bytes | None:
    """labels before suffix (a wire name), lower-cased wire; None if that is no plain name."""
    head = b""
    for label in labels:
        part = label.lower().encode("ascii", "replace")
        if not part or len(part) > 63 or b"." in part:
            return None
        head += bytes((len(part),)) + part
    return head + suffix if len(head) + len(suffix) <= 255 else None
