"""Zone names as CoreDNS handles them: normalisation, CIDR keys, matching, fallthrough."""

from __future__ import annotations

import ipaddress

import attrs

__all__ = [
    "normalize_zone",
    "zones_from_cidr",
    "zone_arguments",
    "origins",
    "longest_match",
    "in_zone",
    "is_reverse",
    "Fallthrough",
]


def normalize_zone(text: str) -> str:
    """Lower-case, fully qualified: "Cluster.Local" -> "cluster.local."."""
    text = text.strip().lower()
    if text in ("", "."):
        return "."
    return text if text.endswith(".") else text + "."


def zones_from_cidr(cidr: str) -> tuple[str, ...]:
    """The reverse zones that cover a CIDR, split at the next label boundary.

    "10.0.0.0/8" is one zone, 10.in-addr.arpa.; "10.0.0.0/23" is the two /24
    zones it spans; IPv6 splits on nibbles. Raises ValueError.
    """
    network = ipaddress.ip_network(cidr, strict=False)
    step = 8 if network.version == 4 else 4
    total = 32 // step if network.version == 4 else 128 // step
    boundary = -(-network.prefixlen // step) * step
    zones = []
    for subnet in network.subnets(new_prefix=boundary):
        # reverse_pointer names the whole address; keep the prefix's labels.
        labels = subnet.network_address.reverse_pointer.split(".")
        zones.append(".".join(labels[total - boundary // step:]) + ".")
    return tuple(zones)


def origins(args, block_zones) -> tuple[str, ...]:
    """A directive's ZONES arguments, normalised (a CIDR standing for its reverse
    zones), or its server block's zones without any (CoreDNS's
    OriginsFromArgsOrServerBlock). Raises ValueError for a bad CIDR."""
    zones: list[str] = []
    for arg in args:
        zones.extend(zones_from_cidr(arg) if "/" in arg else (normalize_zone(arg),))
    return tuple(zones) or tuple(block_zones)


def is_reverse(name: str) -> bool:
    name = name.lower()
    return name.endswith("in-addr.arpa.") or name.endswith("ip6.arpa.")


def in_zone(name: str, zone: str) -> bool:
    """True when the normalised name is the zone or below it."""
    if zone == ".":
        return True
    # No "." + zone string per call: this runs several times per query.
    return name.endswith(zone) and (len(name) == len(zone) or name[-len(zone) - 1] == ".")


def longest_match(zones, name: str) -> str | None:
    """The longest of zones that name is in, or None."""
    best = None
    for zone in zones:
        # in_zone, inline: several calls per query on the fast route.
        if (zone == "." or name.endswith(zone) and (len(name) == len(zone) or name[-len(zone) - 1] == ".")) and (
            best is None or len(zone) > len(best)
        ):
            best = zone
    return best


@attrs.frozen
class Fallthrough:
    """`fallthrough [ZONES...]`: pass NXDOMAIN on to the next plugin."""

    enabled: bool = False
    #: Empty with enabled set means every zone.
    zones: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args) -> "Fallthrough":
        return cls(True, tuple(normalize_zone(z) for z in args))

    def through(self, name: str) -> bool:
        if not self.enabled:
            return False
        if not self.zones:
            return True
        return longest_match(self.zones, name) is not None


def zone_arguments(option, args) -> tuple[str, ...]:
    """Zone arguments, a CIDR standing for its reverse zones (plugin.Host.NormalizeExact).

    option: the Corefile `Directive` whose arguments they are (for errors naming file:line).
    """
    zones: list[str] = []
    for arg in args:
        if "/" not in arg:
            zones.append(normalize_zone(arg))
            continue
        try:
            zones.extend(zones_from_cidr(arg))
        except ValueError:
            raise option.error(f"{option.name}: {arg!r} is not a zone or a CIDR") from None
    return tuple(zones)
