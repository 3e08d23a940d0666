"""Golden answers of the cluster zone with the default options (pods disabled).

Each row is what CoreDNS's kubernetes plugin answers for the question over
the fixture cluster (see zone_fixture), learned from its handler tests and
handler.go/backend_lookup.go; rows marked "(Wayfinder)" are the documented
places where Wayfinder departs from CoreDNS (discovery/dns/README.md).
"""

import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from discovery.cache.objects import Namespace, Service
from discovery.dns.zone import answer, nodata

from .zone_fixture import CLOCK, SOA, SOA_V4, SOA_V6, Row, ask, cluster, expected, lines, options, table


@pytest.fixture(scope="module")
def store():
    return cluster()


@pytest.fixture(scope="module")
def default_options():
    return options()


SERVICES = [
    Row("clusterip-a", "svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("clusterip-aaaa-nodata", "svc1.testns.svc.cluster.local.", "AAAA", "NOERROR", authority=SOA),
    Row("ipv6-clusterip-aaaa", "svc6.testns.svc.cluster.local.", "AAAA", "NOERROR",
        answer="svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"),
    Row("ipv6-clusterip-a-nodata", "svc6.testns.svc.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("dual-stack-a", "svc-dual-stack.testns.svc.cluster.local.", "A", "NOERROR",
        answer="svc-dual-stack.testns.svc.cluster.local. 5 IN A 10.0.0.3"),
    Row("dual-stack-aaaa", "svc-dual-stack.testns.svc.cluster.local.", "AAAA", "NOERROR",
        answer="svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3"),
    Row("service-without-ready-endpoints-still-has-its-cluster-ip", "svcempty.testns.svc.cluster.local.", "A",
        "NOERROR", answer="svcempty.testns.svc.cluster.local. 5 IN A 10.0.0.2"),
    Row("unallocated-cluster-ip-is-nodata (Wayfinder)", "unallocated.testns.svc.cluster.local.", "A", "NOERROR",
        authority=SOA),
    Row("missing-service-nxdomain", "svc0.testns.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("missing-service-aaaa-nxdomain", "svc0.testns.svc.cluster.local.", "AAAA", "NXDOMAIN", authority=SOA),
    Row("missing-namespace-nxdomain", "svc1.nsnoexist.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("service-in-namespace-without-namespace-object-nxdomain", "svc1.ghost.svc.cluster.local.", "A",
        "NXDOMAIN", authority=SOA),
    Row("same-name-other-namespace", "svc1.other.svc.cluster.local.", "A", "NOERROR",
        answer="svc1.other.svc.cluster.local. 5 IN A 10.0.1.1"),
    Row("port-name-answers-addresses-too", "_http._tcp.svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="_http._tcp.svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("endpoint-of-clusterip-service-a", "ep1a.svc1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="ep1a.svc1.testns.svc.cluster.local. 5 IN A 172.0.0.1"),
    Row("unknown-endpoint-of-clusterip-service-nxdomain", "ep9.svc1.testns.svc.cluster.local.", "A",
        "NXDOMAIN", authority=SOA),
    Row("endpoint-under-missing-service-nxdomain", "bogusendpoint.svc0.testns.svc.cluster.local.", "A",
        "NXDOMAIN", authority=SOA),
    Row("three-labels-left-of-service-is-too-long", "a._http._tcp.svc1.testns.svc.cluster.local.", "A",
        "NXDOMAIN", authority=SOA),
    Row("protocol-label-alone-is-an-endpoint-name-nxdomain", "_tcp.svc1.testns.svc.cluster.local.", "A",
        "NXDOMAIN", authority=SOA),
]

SRV = [
    Row("srv-port", "_http._tcp.svc1.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.",
        additional="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("srv-service-name-lists-all-ports", "svc1.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.",
        additional="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("srv-wrong-protocol-nxdomain", "_http._udp.svc1.testns.svc.cluster.local.", "SRV", "NXDOMAIN",
        authority=SOA),
    Row("srv-unknown-port-nxdomain", "_https._tcp.svc1.testns.svc.cluster.local.", "SRV", "NXDOMAIN",
        authority=SOA),
    Row("srv-bare-underscore-matches-any-port", "_._tcp.svc1.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="_._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.",
        additional="svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"),
    Row("srv-ipv6-glue-is-aaaa", "_http._tcp.svc6.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="_http._tcp.svc6.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc6.testns.svc.cluster.local.",
        additional="svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"),
    Row("srv-dual-stack-splits-weight-and-glues-both", "svc-dual-stack.testns.svc.cluster.local.", "SRV",
        "NOERROR",
        answer="svc-dual-stack.testns.svc.cluster.local. 5 IN SRV 0 50 80 svc-dual-stack.testns.svc.cluster.local.",
        additional="""
            svc-dual-stack.testns.svc.cluster.local. 5 IN A 10.0.0.3
            svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3
        """),
    Row("srv-several-ports-one-record-per-target-and-port", "multiport.testns.svc.cluster.local.", "SRV",
        "NOERROR",
        answer="""
            multiport.testns.svc.cluster.local. 5 IN SRV 0 33 80 multiport.testns.svc.cluster.local.
            multiport.testns.svc.cluster.local. 5 IN SRV 0 33 53 multiport.testns.svc.cluster.local.
        """,
        additional="multiport.testns.svc.cluster.local. 5 IN A 10.0.0.4"),
    Row("srv-udp-port", "_dns._udp.multiport.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="_dns._udp.multiport.testns.svc.cluster.local. 5 IN SRV 0 100 53 multiport.testns.svc.cluster.local.",
        additional="multiport.testns.svc.cluster.local. 5 IN A 10.0.0.4"),
    Row("srv-unnamed-port-only-under-the-service-name", "unnamed.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="unnamed.testns.svc.cluster.local. 5 IN SRV 0 100 8080 unnamed.testns.svc.cluster.local.",
        additional="unnamed.testns.svc.cluster.local. 5 IN A 10.0.0.5"),
    Row("srv-headless-n-times-m", "_http._tcp.hdls1.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="""
            _http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local.
            _http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-3.hdls1.testns.svc.cluster.local.
            _http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 dup-name.hdls1.testns.svc.cluster.local.
            _http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--1.hdls1.testns.svc.cluster.local.
            _http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--2.hdls1.testns.svc.cluster.local.
        """,
        additional="""
            172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2
            172-0-0-3.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3
            dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4
            dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5
            5678-abcd--1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1
            5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2
        """),
    Row("srv-endpoint-name", "ep1a.svc1.testns.svc.cluster.local.", "SRV", "NOERROR",
        answer="ep1a.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 ep1a.svc1.testns.svc.cluster.local.",
        additional="ep1a.svc1.testns.svc.cluster.local. 5 IN A 172.0.0.1"),
    Row("srv-portless-headless-is-nodata", "hdlsprtls.testns.svc.cluster.local.", "SRV", "NOERROR",
        authority=SOA),
    Row("srv-port-of-portless-headless-nxdomain", "_http._tcp.hdlsprtls.testns.svc.cluster.local.", "SRV",
        "NXDOMAIN", authority=SOA),
    Row("srv-missing-service-nxdomain", "_http._tcp.svc0.testns.svc.cluster.local.", "SRV", "NXDOMAIN",
        authority=SOA),
]

HEADLESS = [
    Row("headless-a-ready-endpoints", "hdls1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="""
            hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2
            hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3
            hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4
            hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5
        """),
    Row("headless-aaaa", "hdls1.testns.svc.cluster.local.", "AAAA", "NOERROR",
        answer="""
            hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1
            hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2
        """),
    Row("endpoint-dashed-ipv4", "172-0-0-2.hdls1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2"),
    Row("endpoint-hostname-with-two-addresses", "dup-name.hdls1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="""
            dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4
            dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5
        """),
    Row("endpoint-dashed-ipv6", "5678-abcd--1.hdls1.testns.svc.cluster.local.", "AAAA", "NOERROR",
        answer="5678-abcd--1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1"),
    Row("endpoint-ipv6-a-nodata", "5678-abcd--1.hdls1.testns.svc.cluster.local.", "A", "NOERROR",
        authority=SOA),
    Row("endpoint-with-hostname-has-no-dashed-name", "172-0-0-4.hdls1.testns.svc.cluster.local.", "A",
        "NXDOMAIN", authority=SOA),
    Row("not-ready-endpoint-nxdomain", "172-0-0-6.hdls1.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("unknown-endpoint-nxdomain", "bogusendpoint.hdls1.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("portless-headless-a", "hdlsprtls.testns.svc.cluster.local.", "A", "NOERROR",
        answer="hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"),
    Row("portless-endpoint-a", "172-0-0-20.hdlsprtls.testns.svc.cluster.local.", "A", "NOERROR",
        answer="172-0-0-20.hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"),
    Row("headless-without-ready-endpoints-nxdomain", "hdls-unready.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("headless-publishing-not-ready-addresses", "hdls-publish.testns.svc.cluster.local.", "A", "NOERROR",
        answer="hdls-publish.testns.svc.cluster.local. 5 IN A 172.0.0.30"),
    Row("headless-without-slices-nxdomain", "hdls-empty.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("fqdn-slices-are-ignored", "hdls-fqdn.testns.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("headless-ipv4-only-aaaa-nodata", "hdlsprtls.testns.svc.cluster.local.", "AAAA", "NOERROR",
        authority=SOA),
    Row("endpoint-without-hostname-is-named-by-ip-by-default", "172-0-0-50.hdls-pods.testns.svc.cluster.local.",
        "A", "NOERROR", answer="172-0-0-50.hdls-pods.testns.svc.cluster.local. 5 IN A 172.0.0.50"),
    Row("pod-name-is-no-endpoint-name-by-default", "web-0.hdls-pods.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
]

EXTERNAL = [
    Row("externalname-cname", "external.testns.svc.cluster.local.", "CNAME", "NOERROR",
        answer="external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."),
    Row("externalname-a-is-the-cname-to-chase", "external.testns.svc.cluster.local.", "A", "NOERROR",
        answer="external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."),
    Row("externalname-srv-nodata", "external.testns.svc.cluster.local.", "SRV", "NOERROR", authority=SOA),
    Row("externalname-txt-nodata", "external.testns.svc.cluster.local.", "TXT", "NOERROR", authority=SOA),
    Row("name-below-externalname-nxdomain", "endpoint.external.testns.svc.cluster.local.", "CNAME", "NXDOMAIN",
        authority=SOA),
    Row("two-names-below-externalname-nxdomain", "subdomain.subdomain.external.testns.svc.cluster.local.",
        "CNAME", "NXDOMAIN", authority=SOA),
    Row("externalname-has-no-port-names", "_http._tcp.external.testns.svc.cluster.local.", "SRV", "NXDOMAIN",
        authority=SOA),
    Row("externalname-to-service-follows-in-zone", "external-to-service.testns.svc.cluster.local.", "A",
        "NOERROR",
        answer="""
            external-to-service.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.
            svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1
        """),
    Row("externalname-to-service-without-aaaa-is-nodata", "external-to-service.testns.svc.cluster.local.",
        "AAAA", "NOERROR", authority=SOA),
    Row("externalname-holding-an-ip-nxdomain", "external-ip.testns.svc.cluster.local.", "A", "NXDOMAIN",
        authority=SOA),
    Row("externalname-to-itself-nodata", "external-loop.testns.svc.cluster.local.", "A", "NOERROR",
        authority=SOA),
    Row("cname-of-clusterip-service-nodata", "svc1.testns.svc.cluster.local.", "CNAME", "NOERROR",
        authority=SOA),
]

STRUCTURE = [
    Row("apex-soa", "cluster.local.", "SOA", "NOERROR", answer=SOA),
    Row("apex-a-nodata", "cluster.local.", "A", "NOERROR", authority=SOA),
    Row("apex-aaaa-nodata", "cluster.local.", "AAAA", "NOERROR", authority=SOA),
    Row("apex-srv-nodata", "cluster.local.", "SRV", "NOERROR", authority=SOA),
    Row("apex-other-type-nodata", "cluster.local.", "HINFO", "NOERROR", authority=SOA),
    Row("apex-ns-without-local-addresses-nodata", "cluster.local.", "NS", "NOERROR", authority=SOA),
    Row("apex-txt-nodata (Wayfinder)", "cluster.local.", "TXT", "NOERROR", authority=SOA),
    Row("axfr-refused", "cluster.local.", "AXFR", "REFUSED"),
    Row("ixfr-refused", "cluster.local.", "IXFR", "REFUSED"),
    Row("svc-label-nodata", "svc.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("svc-label-ns-nodata", "svc.cluster.local.", "NS", "NOERROR", authority=SOA),
    Row("pod-label-nodata", "pod.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("namespace-nodata", "testns.svc.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("namespace-ns-nodata", "testns.svc.cluster.local.", "NS", "NOERROR", authority=SOA),
    Row("namespace-txt-nodata (Wayfinder)", "testns.svc.cluster.local.", "TXT", "NOERROR", authority=SOA),
    Row("missing-namespace-level-nxdomain", "nsnoexist.svc.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("unknown-label-below-apex-nxdomain", "foo.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("unknown-label-below-apex-ns-nxdomain", "foo.cluster.local.", "NS", "NXDOMAIN", authority=SOA),
    Row("wrong-kind-label-nxdomain", "svc1.testns.pood.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("dns-label-is-no-name", "dns.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("dns-version-txt", "dns-version.cluster.local.", "TXT", "NOERROR",
        answer='dns-version.cluster.local. 28800 IN TXT "1.1.0"'),
    Row("dns-version-a-nodata (Wayfinder)", "dns-version.cluster.local.", "A", "NOERROR", authority=SOA),
    Row("service-txt-nodata", "svc1.testns.svc.cluster.local.", "TXT", "NOERROR", authority=SOA),
    Row("missing-service-txt-nxdomain", "svc0.svc-nons.svc.cluster.local.", "TXT", "NXDOMAIN", authority=SOA),
    Row("service-soa-nodata", "svc1.testns.svc.cluster.local.", "SOA", "NOERROR", authority=SOA),
    Row("missing-service-soa-nxdomain (Wayfinder)", "svc0.testns.svc.cluster.local.", "SOA", "NXDOMAIN",
        authority=SOA),
    Row("service-mx-nodata", "svc1.testns.svc.cluster.local.", "MX", "NOERROR", authority=SOA),
    Row("service-any-nodata", "svc1.testns.svc.cluster.local.", "ANY", "NOERROR", authority=SOA),
    Row("service-ptr-nodata", "svc1.testns.svc.cluster.local.", "PTR", "NOERROR", authority=SOA),
    Row("missing-service-ptr-nxdomain", "svc0.testns.svc.cluster.local.", "PTR", "NXDOMAIN", authority=SOA),
    Row("pods-disabled-namespace-nxdomain", "podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("pods-disabled-pod-nxdomain", "10-240-0-1.podns.pod.cluster.local.", "A", "NXDOMAIN", authority=SOA),
    Row("ns-dns-without-local-addresses-nodata", "ns.dns.cluster.local.", "A", "NOERROR", authority=SOA),
]

REVERSE = [
    Row("ptr-cluster-ip", "1.0.0.10.in-addr.arpa.", "PTR", "NOERROR",
        answer="1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."),
    Row("ptr-endpoint-hostname", "1.0.0.172.in-addr.arpa.", "PTR", "NOERROR",
        answer="1.0.0.172.in-addr.arpa. 5 IN PTR ep1a.svc1.testns.svc.cluster.local."),
    Row("ptr-endpoint-dashed", "2.0.0.172.in-addr.arpa.", "PTR", "NOERROR",
        answer="2.0.0.172.in-addr.arpa. 5 IN PTR 172-0-0-2.hdls1.testns.svc.cluster.local."),
    Row("ptr-not-ready-endpoint-nxdomain", "6.0.0.172.in-addr.arpa.", "PTR", "NXDOMAIN", authority=SOA_V4),
    Row("ptr-published-not-ready-endpoint", "30.0.0.172.in-addr.arpa.", "PTR", "NOERROR",
        answer="30.0.0.172.in-addr.arpa. 5 IN PTR 172-0-0-30.hdls-publish.testns.svc.cluster.local."),
    Row("ptr-ipv6-cluster-ip",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", "PTR", "NOERROR",
        answer="1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 IN PTR "
        "svc6.testns.svc.cluster.local."),
    Row("ptr-ipv6-endpoint",
        "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa.", "PTR", "NOERROR",
        answer="2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. 5 IN PTR "
        "5678-abcd--2.hdls1.testns.svc.cluster.local."),
    Row("ptr-dual-stack-second-address",
        "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.ip6.arpa.", "PTR", "NOERROR",
        answer="3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.ip6.arpa. 5 IN PTR "
        "svc-dual-stack.testns.svc.cluster.local."),
    Row("ptr-unknown-address-nxdomain", "99.0.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", authority=SOA_V4),
    Row("ptr-unknown-ipv6-nxdomain",
        "9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", "PTR", "NXDOMAIN",
        authority=SOA_V6),
    Row("ptr-without-namespaces-option-ignores-namespace-objects", "1.2.0.10.in-addr.arpa.", "PTR", "NOERROR",
        answer="1.2.0.10.in-addr.arpa. 5 IN PTR svc1.ghost.svc.cluster.local."),
    Row("ptr-partial-address-nxdomain", "0.10.in-addr.arpa.", "PTR", "NXDOMAIN", authority=SOA_V4),
    Row("ptr-leading-zero-is-no-address", "01.0.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", authority=SOA_V4),
    Row("ptr-ipv6-extra-label-is-no-address (Wayfinder)",
        "x.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", "PTR", "NXDOMAIN",
        authority=SOA_V6),
    Row("reverse-zone-apex-nodata", "in-addr.arpa.", "PTR", "NOERROR", authority=SOA_V4),
    Row("reverse-zone-apex-soa", "in-addr.arpa.", "SOA", "NOERROR", answer=SOA_V4),
    Row("address-name-with-ptr-has-no-a (Wayfinder)", "1.0.0.10.in-addr.arpa.", "A", "NOERROR",
        authority=SOA_V4),
    Row("address-name-without-ptr-a-nxdomain", "99.0.0.10.in-addr.arpa.", "A", "NXDOMAIN", authority=SOA_V4),
    Row("service-shaped-name-in-reverse-zone-nxdomain", "svc1.testns.svc.in-addr.arpa.", "A", "NXDOMAIN",
        authority=SOA_V4),
]

# plugin/kubernetes/handler_case_test.go (dnsPreserveCaseCases): the zone part
# of generated names (SRV target, additional owner, SOA) keeps the query's case.
CASE = [
    Row("case-kept-in-owner", "SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "A", "NOERROR",
        answer="SvC1.TeStNs.SvC.cLuStEr.LoCaL. 5 IN A 10.0.0.1"),
    Row("srv-target-keeps-the-querys-zone-case", "_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV", "NOERROR",
        answer="_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL. 5 IN SRV 0 100 80 svc1.testns.svc.cLuStEr.LoCaL.",
        additional="svc1.testns.svc.cLuStEr.LoCaL. 5 IN A 10.0.0.1"),
    Row("negative-soa-keeps-the-querys-zone-case", "not-a-service.testns.svc.ClUsTeR.lOcAl.", "A", "NXDOMAIN",
        authority="ClUsTeR.lOcAl. 5 IN SOA ns.dns.ClUsTeR.lOcAl. hostmaster.ClUsTeR.lOcAl. 1700000000 7200 1800 86400 5"),
    Row("apex-soa-is-the-zone-as-asked", "Cluster.local.", "SOA", "NOERROR",
        answer="Cluster.local. 5 IN SOA ns.dns.Cluster.local. hostmaster.Cluster.local. 1700000000 7200 1800 86400 5"),
    Row("case-kept-in-endpoint-owner", "DUP-NAME.hdls1.testns.svc.cluster.local.", "A", "NOERROR",
        answer="""
            DUP-NAME.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4
            DUP-NAME.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5
        """),
    Row("case-kept-in-reverse-name", "1.0.0.10.IN-ADDR.ARPA.", "PTR", "NOERROR",
        answer="1.0.0.10.IN-ADDR.ARPA. 5 IN PTR svc1.testns.svc.cluster.local."),
    Row("case-kept-in-cname-chain", "External-To-Service.TestNS.svc.cluster.local.", "A", "NOERROR",
        answer="""
            External-To-Service.TestNS.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.
            svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1
        """),
]


@pytest.mark.parametrize(**table(SERVICES))
def test_service_records(row, store, default_options):
    """A/AAAA and name existence for ClusterIP Services match CoreDNS."""
    row.check(store, default_options)


@pytest.mark.parametrize(**table(SRV))
def test_srv_records(row, store, default_options):
    """SRV records, weights, targets and glue match CoreDNS."""
    row.check(store, default_options)


@pytest.mark.parametrize(**table(HEADLESS))
def test_headless_records(row, store, default_options):
    """Headless Services answer their ready endpoints and endpoint names as CoreDNS does."""
    row.check(store, default_options)


@pytest.mark.parametrize(**table(EXTERNAL))
def test_externalname_records(row, store, default_options):
    """ExternalName Services answer CNAMEs as CoreDNS does."""
    row.check(store, default_options)


@pytest.mark.parametrize(**table(STRUCTURE))
def test_zone_structure(row, store, default_options):
    """The apex, svc/pod/namespace levels, dns-version and other types match CoreDNS."""
    row.check(store, default_options)


@pytest.mark.parametrize(**table(REVERSE))
def test_reverse_records(row, store, default_options):
    """PTR records for cluster IPs and endpoint IPs match CoreDNS."""
    row.check(store, default_options)


@pytest.mark.parametrize(**table(CASE))
def test_case_is_preserved(row, store, default_options):
    """Names keep the client's case where CoreDNS keeps it."""
    row.check(store, default_options)


def test_externalname_outside_the_zone_is_returned_to_chase(store, default_options):
    """An A question for an ExternalName leaves its out-of-zone target to be resolved upstream."""
    got = ask(store, default_options, "external.testns.svc.cluster.local.", "A")
    assert got.chase == dns.name.from_text("ext.interwebs.test.")


def test_externalname_inside_the_zone_needs_no_chase(store, default_options):
    """A CNAME target within the zone is followed in place, leaving nothing to chase."""
    got = ask(store, default_options, "external-to-service.testns.svc.cluster.local.", "A")
    assert got.chase is None


def test_cname_precedes_its_targets_records(store, default_options):
    """A followed CNAME comes before the records of its target, as CoreDNS orders them."""
    got = ask(store, default_options, "external-to-service.testns.svc.cluster.local.", "A")
    assert [rrset.rdtype for rrset in got.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]


def test_cname_question_does_not_chase(store, default_options):
    """A CNAME question gets the CNAME alone."""
    assert ask(store, default_options, "external.testns.svc.cluster.local.", "CNAME").chase is None


def test_soa_serial_is_the_stores_last_modification(default_options):
    """The SOA serial follows the Store's modification time, as CoreDNS's follows its informers'."""
    now = [CLOCK]
    store = cluster(clock=lambda: now[0])
    now[0] = 1_800_000_000
    store.put(Namespace("new"))
    got = ask(store, default_options, "cluster.local.", "SOA")
    assert got.answer[0][0].serial == 1_800_000_000


def test_nodata_builds_the_empty_answer_with_the_soa(store, default_options):
    """nodata() is the NOERROR answer without records, the SOA (zone in the query's case) in authority."""
    got = nodata(dns.name.from_text("anything.Cluster.Local."), store, default_options, "cluster.local.")
    assert got.rcode == dns.rcode.NOERROR
    assert got.answer == ()
    assert lines(got.authority) == expected(
        "Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. 1700000000 7200 1800 86400 5"
    )


def test_narrower_reverse_zone_gives_its_own_soa(store, default_options):
    """A negative answer carries the SOA of the zone the name fell in."""
    got = answer(
        dns.name.from_text("99.0.0.10.in-addr.arpa."), dns.rdatatype.PTR, store, default_options, "0.10.in-addr.arpa."
    )
    assert lines(got.authority) == expected(
        "0.10.in-addr.arpa. 5 IN SOA ns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 1700000000 7200 1800 86400 5"
    )


def test_name_outside_the_zone_is_refused_with_a_clear_error(store, default_options):
    """Asking about a name shorter than the zone is a caller's mistake, reported as such."""
    with pytest.raises(ValueError, match="not within the zone"):
        answer(dns.name.from_text("local."), dns.rdatatype.A, store, default_options, "cluster.local.")


def test_a_cname_target_keeps_the_objects_spelling():
    """An ExternalName's CNAME target is written as the object holds it, the owner as the client asked.

    plugin/kubernetes/handler_case_test.go keeps the query's case in what it
    derives from the question and the object's case in what it reads from
    the object: backend_lookup.go copies svc.ExternalName into the target.
    """
    store = cluster()
    store.put(Service("testns", "mixed", type="ExternalName", external_name="Ext.Interwebs.Test"))
    got = ask(store, options(), "MiXeD.testns.svc.cluster.local.", "CNAME")
    assert [line.split()[-1] for line in lines(got.answer)] == ["Ext.Interwebs.Test."]
    assert lines(got.answer)[0].split()[0] == "MiXeD.testns.svc.cluster.local."
