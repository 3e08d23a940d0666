"""Golden answers for Pod names (`<dashed-ip>.<ns>.pod.<zone>`) in each `pods` mode.

Learned from CoreDNS's handler_pod_{disabled,insecure,verified}_test.go and
kubernetes.go findPods.
"""

import pytest

from .zone_fixture import SOA, Row, cluster, options, table


@pytest.fixture(scope="module")
def store():
    return cluster()


DISABLED = [
    Row("pod-name-nxdomain", "10-240-0-1.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("any-dashed-ip-nxdomain", "172-0-0-2.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("namespace-level-nxdomain", "podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("pod-label-itself-nodata", "pod.cluster.local.", "A", "NOERROR", authority=SOA),
]

INSECURE = [
    Row("existing-pod-ip", "10-240-0-1.podns.pod.cluster.local.", "A", "NOERROR",
        answer="10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1"),
    Row("any-ip-without-a-pod", "172-0-0-2.podns.pod.cluster.local.", "A", "NOERROR",
        answer="172-0-0-2.podns.pod.cluster.local. 5 IN A 172.0.0.2"),
    Row("ipv6-dashed", "fd00--5.podns.pod.cluster.local.", "AAAA", "NOERROR",
        answer="fd00--5.podns.pod.cluster.local. 5 IN AAAA fd00::5"),
    Row("ipv6-name-a-nodata", "fd00--5.podns.pod.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("ipv4-name-aaaa-nodata", "10-240-0-1.podns.pod.cluster.local.", "AAAA", "NOERROR", authority=SOA),
    Row("not-an-ip-nxdomain", "blah.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("not-an-ip-aaaa-nxdomain", "blah.podns.pod.cluster.local.", "AAAA", "NXDOMAIN", authority=SOA),
    Row("not-an-ip-other-type-nxdomain", "blah.podns.pod.cluster.local.", "HINFO", "NXDOMAIN", authority=SOA),
    Row("leading-zero-is-not-an-ip", "010-240-0-1.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("two-dashes-make-no-ip", "10-240-0.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("missing-namespace-nxdomain", "blah.pod-nons.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("missing-namespace-even-for-an-ip", "10-240-0-1.pod-nons.pod.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("namespace-level-nodata", "podns.pod.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("pod-name-other-type-nodata", "10-240-0-1.podns.pod.cluster.local.", "TXT", "NOERROR", authority=SOA),
    Row("srv-names-the-pod-with-port-0", "10-240-0-1.podns.pod.cluster.local.", "SRV", "NOERROR",
        answer="10-240-0-1.podns.pod.cluster.local. 5 IN SRV 0 100 0 10-240-0-1.podns.pod.cluster.local.",
        additional="10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1"),
    Row("labels-left-of-the-pod-name-are-ignored", "www.10-240-0-1.podns.pod.cluster.local.", "A", "NOERROR",
        answer="www.10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1"),
    Row("case-kept", "10-240-0-1.PodNS.Pod.cluster.local.", "A", "NOERROR",
        answer="10-240-0-1.PodNS.Pod.cluster.local. 5 IN A 10.240.0.1"),
]

VERIFIED = [
    Row("existing-pod-ip", "10-240-0-1.podns.pod.cluster.local.", "A", "NOERROR",
        answer="10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1"),
    Row("ip-without-a-pod-nxdomain", "172-0-0-2.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("pod-of-another-namespace-nxdomain", "10-240-0-1.testns.pod.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("terminating-pod-nxdomain", "10-240-0-2.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("finished-pod-nxdomain", "10-240-0-3.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("dual-stack-primary-ip", "10-240-0-4.podns.pod.cluster.local.", "A", "NOERROR",
        answer="10-240-0-4.podns.pod.cluster.local. 5 IN A 10.240.0.4"),
    Row("dual-stack-secondary-ip-nxdomain", "fd00--4.podns.pod.cluster.local.", "AAAA", "NXDOMAIN",
        authority=SOA),
    Row("ipv6-primary-ip", "fd00--5.podns.pod.cluster.local.", "AAAA", "NOERROR",
        answer="fd00--5.podns.pod.cluster.local. 5 IN AAAA fd00::5"),
    Row("uncompressed-ipv6-text-nxdomain", "fd00-0-0-0-0-0-0-5.podns.pod.cluster.local.", "AAAA", "NXDOMAIN",
        authority=SOA),
    Row("namespace-level-nodata", "podns.pod.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("missing-namespace-nxdomain", "pod-nons.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("service-namespace-level-nodata", "testns.svc.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("not-an-ip-other-type-nxdomain", "blah.podns.pod.cluster.local.", "HINFO", "NXDOMAIN", authority=SOA),
]


@pytest.mark.parametrize(**table(DISABLED))
def test_pods_disabled(row, store):
    """With `pods disabled` (the default) no Pod name exists."""
    row.check(store, options("pods disabled"))


@pytest.mark.parametrize(**table(INSECURE))
def test_pods_insecure(row, store):
    """With `pods insecure` any dashed IP in an existing namespace answers itself."""
    row.check(store, options("pods insecure"))


@pytest.mark.parametrize(**table(VERIFIED))
def test_pods_verified(row, store):
    """With `pods verified` only a live Pod with that primary IP in that namespace answers."""
    row.check(store, options("pods verified"))
