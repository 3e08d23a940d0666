"""Zone membership of normalised names, held to dnspython's is_subdomain."""

from __future__ import annotations

import dns.name
from hypothesis import given
from hypothesis import strategies as st

from discovery.zones import in_zone, longest_match

labels = st.lists(st.sampled_from(["a", "b", "ab", "ba", "local", "cluster", "cluster.local"]), max_size=4)
names = labels.map(lambda parts: ".".join(parts) + "." if parts else ".")


def _within(name: str, zone: str) -> bool:
    return dns.name.from_text(name).is_subdomain(dns.name.from_text(zone))


@given(name=names, zone=names)
def test_a_name_is_in_a_zone_when_its_labels_end_with_the_zones(name, zone):
    """ab.local. is not in b.local.: a zone matches whole labels only."""
    assert in_zone(name, zone) == _within(name, zone)


@given(name=names, zones=st.lists(names, max_size=4))
def test_the_longest_match_is_the_longest_zone_holding_the_name(name, zones):
    holding = [zone for zone in zones if _within(name, zone)]
    assert longest_match(zones, name) == (max(holding, key=len) if holding else None)
