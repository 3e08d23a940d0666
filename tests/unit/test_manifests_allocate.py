"""allocate_cluster_ips: cluster IPs for Services that name none, as the API server gives them."""

from __future__ import annotations

import ipaddress
import random

from discovery.cache.manifests import ServiceRange, allocate_cluster_ips
from discovery.cache.objects import Service

KUBEADM_RANGE = ("10.96.0.0/12",)


def services(count: int, namespace: str = "default") -> list[tuple[Service, str]]:
    return [(Service(namespace, f"svc-{i}"), "") for i in range(count)]


def ips_of(result) -> dict[tuple[str, str], tuple[str, ...]]:
    return {key: ips for key, (ips, _) in result.assigned.items()}


def test_every_service_gets_an_address_in_the_range():
    """Each Service is given one IPv4 address inside the configured service CIDR."""
    result = allocate_cluster_ips(services(50), [], KUBEADM_RANGE)
    network = ipaddress.ip_network(KUBEADM_RANGE[0])
    assert result.rejected == {}
    assert len(result.assigned) == 50
    for ips, families in result.assigned.values():
        assert families == ("IPv4",)
        assert len(ips) == 1 and ipaddress.ip_address(ips[0]) in network


def test_no_address_is_handed_out_twice():
    """Addresses are unique, even when a small range fills up."""
    result = allocate_cluster_ips(services(5), [], ("10.0.0.0/29",))
    addresses = [ips[0] for ips in ips_of(result).values()]
    assert len(set(addresses)) == 5


def test_a_small_range_skips_network_first_and_broadcast_addresses():
    """In 10.0.0.0/29 only .2 to .6 can be given: .0 is the network, .1 the kubernetes Service, .7 broadcast."""
    result = allocate_cluster_ips(services(5), [], ("10.0.0.0/29",))
    assert sorted(ips[0] for ips in ips_of(result).values()) == [f"10.0.0.{i}" for i in range(2, 7)]


def test_a_full_range_rejects_the_service_left_over():
    """When no address is free, the Service is rejected with a reason naming the range."""
    result = allocate_cluster_ips(services(6), [], ("10.0.0.0/29",))
    assert len(result.assigned) == 5
    (reason,) = result.rejected.values()
    assert "10.0.0.0/29" in reason


def test_addresses_services_chose_themselves_are_never_given():
    """An address already used by another Service in the folder is skipped."""
    used = [f"10.0.0.{i}" for i in range(2, 6)]
    result = allocate_cluster_ips(services(1), used, ("10.0.0.0/29",))
    assert ips_of(result) == {("default", "svc-0"): ("10.0.0.6",)}


def test_the_same_services_get_the_same_addresses_in_any_order():
    """Allocation depends on the Services, not on the order the files listed them."""
    requests = services(40)
    shuffled = list(requests)
    random.Random(7).shuffle(shuffled)
    assert ips_of(allocate_cluster_ips(requests, [], KUBEADM_RANGE)) == ips_of(
        allocate_cluster_ips(shuffled, [], KUBEADM_RANGE)
    )


def test_dynamic_allocations_avoid_the_static_band():
    """KEP-3070: while the upper part of the range has room, the lowest 256 addresses stay free."""
    result = allocate_cluster_ips(services(100), [], KUBEADM_RANGE)
    static_band = ipaddress.ip_network("10.96.0.0/23")[256]
    allocated = list(ips_of(result).values())
    assert len(allocated) == 100
    assert all(ipaddress.ip_address(ips[0]) > static_band for ips in allocated)


def test_the_static_band_is_used_once_the_rest_is_full():
    """With the dynamic band taken, the static band's addresses (from .2) are given."""
    service_range = ServiceRange.parse("10.0.0.0/27")
    # A /27 has 32 addresses, a static band of 16 and 29 usable after .1.
    dynamic = [str(service_range.network[i]) for i in range(17, 31)]
    result = allocate_cluster_ips(services(1), dynamic, ("10.0.0.0/27",))
    assert ips_of(result) == {("default", "svc-0"): ("10.0.0.2",)}


def test_ipv6_ranges_allocate_ipv6_and_have_no_broadcast():
    """In fd00::/125 the addresses ::2 to ::7 can be given (no broadcast in IPv6)."""
    requests = [(Service("default", f"v6-{i}", ip_families=("IPv6",)), "") for i in range(6)]
    result = allocate_cluster_ips(requests, [], ("10.96.0.0/12", "fd00::/125"))
    assert result.rejected == {}
    assert sorted(ips[0] for ips in ips_of(result).values()) == [f"fd00::{i}" for i in range(2, 8)]


def test_a_service_without_families_takes_the_first_configured_range():
    """The cluster's primary family is that of its first service CIDR."""
    result = allocate_cluster_ips(services(1), [], ("fd00:10:96::/112", "10.96.0.0/12"))
    ((ips, families),) = result.assigned.values()
    assert families == ("IPv6",) and ipaddress.ip_address(ips[0]).version == 6


def test_prefer_dual_stack_gets_both_families_when_both_are_configured():
    """PreferDualStack on a dual-stack cluster gets one address of each family, primary first."""
    requests = [(Service("default", "dual", ip_families=("IPv6",)), "PreferDualStack")]
    result = allocate_cluster_ips(requests, [], ("10.96.0.0/12", "fd00:10:96::/112"))
    ((ips, families),) = result.assigned.values()
    assert families == ("IPv6", "IPv4")
    assert [ipaddress.ip_address(ip).version for ip in ips] == [6, 4]


def test_prefer_dual_stack_on_a_single_stack_cluster_gets_one_address():
    """PreferDualStack settles for the one family the cluster has."""
    result = allocate_cluster_ips([(Service("default", "dual"), "PreferDualStack")], [], KUBEADM_RANGE)
    ((ips, families),) = result.assigned.values()
    assert families == ("IPv4",) and len(ips) == 1


def test_require_dual_stack_on_a_single_stack_cluster_is_rejected():
    """RequireDualStack cannot be met with one service CIDR, as the API server says."""
    result = allocate_cluster_ips([(Service("default", "dual"), "RequireDualStack")], [], KUBEADM_RANGE)
    assert result.assigned == {}
    assert "RequireDualStack" in result.rejected[("default", "dual")]


def test_two_families_without_a_policy_require_dual_stack():
    """The API server defaults the policy to RequireDualStack for a Service listing two families."""
    requests = [(Service("default", "dual", ip_families=("IPv4", "IPv6")), "")]
    assert allocate_cluster_ips(requests, [], KUBEADM_RANGE).rejected
    result = allocate_cluster_ips(requests, [], ("10.96.0.0/12", "fd00::/112"))
    ((_, families),) = result.assigned.values()
    assert families == ("IPv4", "IPv6")


def test_a_family_without_a_range_is_rejected():
    """A Service asking for IPv6 on an IPv4-only cluster cannot be allocated."""
    result = allocate_cluster_ips([(Service("default", "v6", ip_families=("IPv6",)), "")], [], KUBEADM_RANGE)
    assert "IPv6" in result.rejected[("default", "v6")]


def test_previous_allocations_are_kept():
    """A Service keeps the address it had, so reloads never move it."""
    previous = {("default", "svc-0"): ("10.96.200.200",)}
    result = allocate_cluster_ips(services(1), [], KUBEADM_RANGE, previous)
    assert ips_of(result) == previous


def test_a_kept_address_is_not_given_to_a_new_service():
    """A new Service never takes the address another Service was given before."""
    first = allocate_cluster_ips(services(3), [], ("10.0.0.0/29",))
    second = allocate_cluster_ips(services(5), [], ("10.0.0.0/29",), ips_of(first))
    for key, ips in ips_of(first).items():
        assert ips_of(second)[key] == ips
    assert len({ips[0] for ips in ips_of(second).values()}) == 5


def test_a_previous_address_now_chosen_by_another_service_is_replaced():
    """An explicit cluster IP wins over an allocation: the allocated Service moves."""
    previous = {("default", "svc-0"): ("10.0.0.3",)}
    result = allocate_cluster_ips(services(1), ["10.0.0.3"], ("10.0.0.0/29",), previous)
    (ips,) = ips_of(result).values()
    assert ips != ("10.0.0.3",)


def test_a_previous_address_outside_the_range_is_replaced():
    """After service_cidr changes, a Service gets an address in the new range."""
    previous = {("default", "svc-0"): ("10.0.0.3",)}
    result = allocate_cluster_ips(services(1), [], KUBEADM_RANGE, previous)
    (ips,) = ips_of(result).values()
    assert ipaddress.ip_address(ips[0]) in ipaddress.ip_network(KUBEADM_RANGE[0])
