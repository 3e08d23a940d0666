"""Golden answers under the `kubernetes` options other than `pods`.

`namespaces`, `namespace_labels`, `labels`, `ttl`, `noendpoints`,
`ignore empty_service`, `endpoint_pod_names`, and the server's own addresses
(NS records and ns.dns.<zone>), as CoreDNS's kubernetes.go, namespace.go,
ns.go and reverse.go apply them.
"""

import pytest

from discovery.cache.objects import Endpoint, EndpointPort, Namespace, Service, ServicePort
from discovery.dns.zone import ZoneOptions

from .zone_fixture import SOA, SOA_V4, Row, cluster, options, slice_of, table


@pytest.fixture(scope="module")
def store():
    return cluster()


NAMESPACES = [
    Row("listed-namespace", "svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("unlisted-namespace-nxdomain", "svc1.other.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("unlisted-namespace-level-nxdomain", "other.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("listed-namespace-level-nodata", "testns.svc.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("ptr-listed-namespace", "1.0.0.10.in-addr.arpa.", "PTR", "NOERROR",
        answer="1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."),
    Row("ptr-unlisted-namespace-nxdomain", "1.1.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", authority=SOA_V4),
    Row("ptr-listed-but-missing-namespace-nxdomain", "1.2.0.10.in-addr.arpa.", "PTR", "NXDOMAIN",
        authority=SOA_V4),
]


@pytest.mark.parametrize(**table(NAMESPACES))
def test_namespaces_option(row, store):
    """`namespaces` exposes only the listed namespaces that exist, PTR records included."""
    row.check(store, options("namespaces testns ghost"))


@pytest.fixture(scope="module")
def labelled_store():
    store = cluster()
    store.put(Namespace("testns", labels=(("team", "a"),)))
    store.put(Service("testns", "svc1", cluster_ips=("10.0.0.1",), ports=(ServicePort("http", "TCP", 80),),
                      labels=(("app", "web"),)))
    store.put(slice_of("testns", "svc1", "svc1-a", [Endpoint(("172.0.0.1",), hostname="ep1a")],
                       labels=(("app", "web"),)))
    return store


NAMESPACE_LABELS = [
    Row("matching-namespace", "svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("other-namespace-nxdomain", "svc1.other.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("other-namespace-level-nxdomain", "other.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("ptr-ignores-namespace-labels", "1.1.0.10.in-addr.arpa.", "PTR", "NOERROR",
        answer="1.1.0.10.in-addr.arpa. 5 IN PTR svc1.other.svc.cluster.local."),
]


@pytest.mark.parametrize(**table(NAMESPACE_LABELS))
def test_namespace_labels_option(row, labelled_store):
    """`namespace_labels` exposes only matching namespaces; PTR records do not check it, as in CoreDNS."""
    row.check(labelled_store, options("namespace_labels team=a"))


LABELS = [
    Row("matching-service", "svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("matching-endpoint", "ep1a.svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="ep1a.svc1.testns.svc.cluster.local. 5 IN A 172.0.0.1"),
    Row("unlabelled-service-nxdomain", "svc6.testns.svc.cluster.local.", "AAAA", "NXDOMAIN", authority=SOA),
    Row("unlabelled-headless-endpoints-nxdomain", "hdls1.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("ptr-unlabelled-service-nxdomain", "1.1.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", authority=SOA_V4),
]


@pytest.mark.parametrize(**table(LABELS))
def test_labels_option(row, labelled_store):
    """`labels` hides Services and EndpointSlices that do not match, as CoreDNS never lists them."""
    row.check(labelled_store, options("labels app=web"))


TTL_0 = [
    Row("records-take-the-ttl", "svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 0 IN A 10.0.0.1"),
    Row("soa-ttl-and-minimum-follow", "svc0.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority="cluster.local. 0 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 0"),
    Row("dns-version-keeps-its-own-ttl", "dns-version.cluster.local.", "TXT", "NOERROR",
        answer='dns-version.cluster.local. 28800 IN TXT "1.1.0"'),
]

TTL_3600 = [
    Row("records-take-the-ttl", "_http._tcp.svc1.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="_http._tcp.svc1.testns.svc.cluster.local. 3600 IN SRV 0 100 80 svc1.testns.svc.cluster.local.",
        additional="svc1.testns.svc.cluster.local. 3600 IN A 10.0.0.1"),
    Row("soa-ttl-capped-at-300", "cluster.local.", "SOA", "NOERROR",
        answer="cluster.local. 300 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 3600"),
    Row("ptr-takes-the-ttl", "1.0.0.10.in-addr.arpa.", "PTR", "NOERROR",
        answer="1.0.0.10.in-addr.arpa. 3600 IN PTR svc1.testns.svc.cluster.local."),
    Row("cname-takes-the-ttl", "external.testns.svc.cluster.local.", "CNAME", "NOERROR",
        answer="external.testns.svc.cluster.local. 3600 IN CNAME ext.interwebs.test."),
]


@pytest.mark.parametrize(**table(TTL_0))
def test_ttl_zero(row, store):
    """`ttl 0` makes records uncacheable, the SOA included."""
    row.check(store, options("ttl 0"))


@pytest.mark.parametrize(**table(TTL_3600))
def test_ttl_maximum(row, store):
    """`ttl 3600` applies to every record; the SOA's own TTL stays at most 300."""
    row.check(store, options("ttl 3600"))


NOENDPOINTS = [
    Row("clusterip-still-answers", "svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("headless-nxdomain", "hdls1.testns.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("endpoint-name-nxdomain", "ep1a.svc1.testns.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("ptr-cluster-ip-still-answers", "1.0.0.10.in-addr.arpa.", "PTR", "NOERROR",
        answer="1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."),
    Row("ptr-endpoint-nxdomain", "1.0.0.172.in-addr.arpa.", "PTR", "NXDOMAIN", authority=SOA_V4),
]


@pytest.mark.parametrize(**table(NOENDPOINTS))
def test_noendpoints_option(row, store):
    """`noendpoints` answers as if there were no EndpointSlices at all."""
    row.check(store, options("noendpoints"))


IGNORE_EMPTY = [
    Row("service-with-ready-endpoint", "svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("service-with-only-unready-endpoints-nxdomain", "svcempty.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("service-without-slices-nxdomain", "svc6.testns.svc.cluster.local.", "AAAA", "NXDOMAIN", authority=SOA),
    Row("empty-service-srv-nxdomain", "_http._tcp.svcempty.testns.svc.cluster.local.", "SRV", "NXDOMAIN",
        authority=SOA),
    Row("empty-service-other-type-nxdomain", "svcempty.testns.svc.cluster.local.", "TXT", "NXDOMAIN",
        authority=SOA),
    Row("externalname-unaffected", "external.testns.svc.cluster.local.", "CNAME", "NOERROR",
        answer="external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."),
    Row("headless-unaffected", "hdlsprtls.testns.svc.cluster.local.", "A", "NOERROR",
        answer="hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"),
    Row("ptr-unaffected", "2.0.0.10.in-addr.arpa.", "PTR", "NOERROR",
        answer="2.0.0.10.in-addr.arpa. 5 IN PTR svcempty.testns.svc.cluster.local."),
]


@pytest.mark.parametrize(**table(IGNORE_EMPTY))
def test_ignore_empty_service_option(row, store):
    """`ignore empty_service` makes a ClusterIP Service without ready endpoints not exist."""
    row.check(store, options("ignore empty_service"))


def test_ignore_empty_service_with_noendpoints_hides_every_clusterip(store):
    """Without EndpointSlices no ClusterIP Service has a ready endpoint, so none exists."""
    Row("clusterip-nxdomain", "svc1.testns.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA).check(
        store, options("ignore empty_service", "noendpoints")
    )


POD_NAMES = [
    Row("endpoint-named-by-pod", "web-0.hdls-pods.testns.svc.cluster.local.", "A", "NOERROR",
        answer="web-0.hdls-pods.testns.svc.cluster.local. 5 IN A 172.0.0.50"),
    Row("hostname-wins-over-pod-name", "named.hdls-pods.testns.svc.cluster.local.", "A", "NOERROR",
        answer="named.hdls-pods.testns.svc.cluster.local. 5 IN A 172.0.0.51"),
    Row("pod-name-hides-dashed-ip", "172-0-0-50.hdls-pods.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("pod-name-of-64-characters-falls-back-to-dashed-ip", "172-0-0-52.hdls-pods.testns.svc.cluster.local.",
        "A", "NOERROR", answer="172-0-0-52.hdls-pods.testns.svc.cluster.local. 5 IN A 172.0.0.52"),
    Row("endpoint-without-target-keeps-dashed-ip", "172-0-0-2.hdls1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2"),
    Row("srv-targets-use-pod-names", "_http._tcp.hdls-pods.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="""
            _http._tcp.hdls-pods.testns.svc.cluster.local. 5 IN SRV 0 33 80 web-0.hdls-pods.testns.svc.cluster.local.
            _http._tcp.hdls-pods.testns.svc.cluster.local. 5 IN SRV 0 33 80 named.hdls-pods.testns.svc.cluster.local.
            _http._tcp.hdls-pods.testns.svc.cluster.local. 5 IN SRV 0 33 80 172-0-0-52.hdls-pods.testns.svc.cluster.local.
        """,
        additional="""
            web-0.hdls-pods.testns.svc.cluster.local. 5 IN A 172.0.0.50
            named.hdls-pods.testns.svc.cluster.local. 5 IN A 172.0.0.51
            172-0-0-52.hdls-pods.testns.svc.cluster.local. 5 IN A 172.0.0.52
        """),
    Row("ptr-uses-pod-name", "50.0.0.172.in-addr.arpa.", "PTR", "NOERROR",
        answer="50.0.0.172.in-addr.arpa. 5 IN PTR web-0.hdls-pods.testns.svc.cluster.local."),
]


@pytest.mark.parametrize(**table(POD_NAMES))
def test_endpoint_pod_names_option(row, store):
    """`endpoint_pod_names` names an endpoint without hostname by its Pod (if under 64 characters)."""
    row.check(store, options("endpoint_pod_names"))


DNS_ENDPOINT = [
    Row("apex-ns-names-the-dns-service", "cluster.local.", "NS", "NOERROR",
        answer="cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local.",
        additional="kube-dns.kube-system.svc.cluster.local. 5 IN A 10.0.0.10"),
    Row("ns-dns-a-is-the-service-ip", "ns.dns.cluster.local.", "A", "NOERROR",
        answer="ns.dns.cluster.local. 5 IN A 10.0.0.10"),
    Row("ns-dns-aaaa-nodata", "ns.dns.cluster.local.", "AAAA", "NOERROR", authority=SOA),
    Row("ns-dns-srv-nodata", "ns.dns.cluster.local.", "SRV", "NOERROR", authority=SOA),
    Row("ns-dns-txt-nodata (Wayfinder)", "ns.dns.cluster.local.", "TXT", "NOERROR", authority=SOA),
    # handler.go keeps the query's case of the zone ("maintain case of
    # original query") and ns.go builds the NS names with that zone.
    Row("apex-ns-keeps-the-querys-zone-case", "Cluster.Local.", "NS", "NOERROR",
        answer="Cluster.Local. 5 IN NS kube-dns.kube-system.svc.Cluster.Local.",
        additional="kube-dns.kube-system.svc.Cluster.Local. 5 IN A 10.0.0.10"),
    Row("reverse-apex-ns", "in-addr.arpa.", "NS", "NOERROR",
        answer="in-addr.arpa. 5 IN NS kube-dns.kube-system.svc.in-addr.arpa.",
        additional="kube-dns.kube-system.svc.in-addr.arpa. 5 IN A 10.0.0.10"),
]


@pytest.mark.parametrize(**table(DNS_ENDPOINT))
def test_server_that_is_an_endpoint_of_the_dns_service(row, store):
    """A server whose address is an endpoint of a Service names that Service in NS records (ns.go)."""
    row.check(store, options(local_ips=["172.0.0.100"]))


OUTSIDE = [
    Row("apex-ns-is-ns-dns", "cluster.local.", "NS", "NOERROR",
        answer="cluster.local. 5 IN NS ns.dns.cluster.local.",
        additional="""
            ns.dns.cluster.local. 5 IN A 192.0.2.53
            ns.dns.cluster.local. 5 IN AAAA 2001:db8::53
        """),
    Row("ns-dns-a-is-our-address", "ns.dns.cluster.local.", "A", "NOERROR",
        answer="ns.dns.cluster.local. 5 IN A 192.0.2.53"),
    Row("ns-dns-aaaa-is-our-address", "ns.dns.cluster.local.", "AAAA", "NOERROR",
        answer="ns.dns.cluster.local. 5 IN AAAA 2001:db8::53"),
]


@pytest.mark.parametrize(**table(OUTSIDE))
def test_server_outside_the_cluster(row, store):
    """A server none of whose addresses is an endpoint answers ns.dns.<zone> with its own addresses."""
    row.check(store, options(local_ips=["192.0.2.53", "2001:db8::53"]))


def test_headless_dns_service_names_each_endpoint(store):
    """For a headless Service holding our address, every endpoint of that slice is a name server."""
    headless_store = cluster()
    headless_store.put(Service("kube-system", "dns-hdls", headless=True))
    headless_store.put(
        slice_of(
            "kube-system",
            "dns-hdls",
            "dns-hdls-a",
            [Endpoint(("172.0.0.100",)), Endpoint(("172.0.0.101",), hostname="second")],
            ports=(EndpointPort("dns", "UDP", 53),),
        )
    )
    Row(
        "ns",
        "cluster.local.",
        "NS",
        "NOERROR",
        answer="""
            cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local.
            cluster.local. 5 IN NS 172-0-0-100.dns-hdls.kube-system.svc.cluster.local.
            cluster.local. 5 IN NS second.dns-hdls.kube-system.svc.cluster.local.
        """,
        additional="""
            kube-dns.kube-system.svc.cluster.local. 5 IN A 10.0.0.10
            172-0-0-100.dns-hdls.kube-system.svc.cluster.local. 5 IN A 172.0.0.100
            second.dns-hdls.kube-system.svc.cluster.local. 5 IN A 172.0.0.101
        """,
    ).check(headless_store, options(local_ips=["172.0.0.100"]))


def test_loopback_addresses_are_not_ours_to_announce():
    """As CoreDNS's boundIPs, loopback and unspecified addresses are dropped."""
    built = options(local_ips=["127.0.0.1", "::1", "0.0.0.0", "192.0.2.53", "192.0.2.53"])
    assert built.local_ips == ("192.0.2.53",)


def test_only_loopback_addresses_leave_no_name_server(store):
    """With no address to announce, the apex has no NS records."""
    Row("ns", "cluster.local.", "NS", "NOERROR", authority=SOA).check(store, options(local_ips=["127.0.0.1"]))


def test_a_local_address_that_is_not_an_ip_is_a_clear_error():
    """from_config names the bad address."""
    with pytest.raises(ValueError, match="'eth0' is not an IP address"):
        options(local_ips=["eth0"])


def test_options_come_from_the_directive():
    """from_config carries every option the zone reads from the KubernetesConfig."""
    built = options(
        "namespaces testns",
        "labels app=web",
        "pods verified",
        "endpoint_pod_names",
        "ttl 30",
        "noendpoints",
        "ignore empty_service",
    )
    assert (
        built.primary_zone,
        built.namespaces,
        built.labels.to_text(),
        built.pods,
        built.endpoint_pod_names,
        built.ttl,
        built.noendpoints,
        built.ignore_empty_service,
    ) == ("cluster.local.", frozenset({"testns"}), "app=web", "verified", True, 30, True, True)
    assert isinstance(built, ZoneOptions)
