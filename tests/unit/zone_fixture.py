"""The fixture cluster and the golden-table machinery shared by the tests/unit/test_zone*.py files.

The cluster follows the idea of CoreDNS's handler_test.go fixture (a
ClusterIP Service with an endpoint, an empty one, IPv6 and dual-stack
ones, headless ones with and without ports and hostnames, ExternalNames,
a kube-dns Service, a namespace with Pods) with Wayfinder's own data.
Expected answers are written as zone-file text, one RR per line.
"""

from __future__ import annotations

import attrs
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from discovery.cache.objects import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Namespace,
    Pod,
    Service,
    ServicePort,
    TargetRef,
)
from discovery.cache.store import Store
from discovery.config import load_text
from discovery.dns.zone import Answer, ZoneOptions, answer
from discovery.zones import longest_match

#: The Store's wall clock, hence every SOA serial below.
CLOCK = 1_700_000_000
ZONES = ("cluster.local.", "in-addr.arpa.", "ip6.arpa.")
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5"
SOA_V4 = "in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 1700000000 7200 1800 86400 5"
SOA_V6 = "ip6.arpa. 5 IN SOA ns.dns.ip6.arpa. hostmaster.ip6.arpa. 1700000000 7200 1800 86400 5"

HTTP = ServicePort("http", "TCP", 80)
EP_HTTP = (EndpointPort("http", "TCP", 80),)


def headless(namespace: str, name: str, publish: bool = False) -> Service:
    return Service(namespace, name, headless=True, publish_not_ready_addresses=publish)


def slice_of(namespace, service, name, endpoints, ports=EP_HTTP, address_type="IPv4", labels=()):
    return EndpointSlice(namespace, name, service, address_type, tuple(endpoints), tuple(ports), labels)


def cluster(clock=lambda: CLOCK) -> Store:
    """A small cluster, as a Store whose clock reads CLOCK unless told otherwise."""
    store = Store(clock=clock)
    for name in ("testns", "podns", "kube-system", "other"):
        store.put(Namespace(name))
    objects = [
        # ClusterIP Services.
        Service("testns", "svc1", cluster_ips=("10.0.0.1",), ports=(HTTP,)),
        slice_of("testns", "svc1", "svc1-a", [Endpoint(("172.0.0.1",), hostname="ep1a")]),
        Service("testns", "svcempty", cluster_ips=("10.0.0.2",), ports=(HTTP,)),
        slice_of("testns", "svcempty", "svcempty-a", [Endpoint(("172.0.0.40",), ready=False)]),
        Service("testns", "svc6", cluster_ips=("1234:abcd::1",), ports=(HTTP,)),
        Service("testns", "svc-dual-stack", cluster_ips=("10.0.0.3", "10::3"), ports=(HTTP,)),
        Service(
            "testns",
            "multiport",
            cluster_ips=("10.0.0.4",),
            ports=(HTTP, ServicePort("dns", "UDP", 53), ServicePort("dns-tcp", "TCP", 53)),
        ),
        Service("testns", "unnamed", cluster_ips=("10.0.0.5",), ports=(ServicePort("", "TCP", 8080),)),
        Service("testns", "unallocated", ports=(HTTP,)),
        # Headless Services.
        headless("testns", "hdls1"),
        slice_of(
            "testns",
            "hdls1",
            "hdls1-v4",
            [
                Endpoint(("172.0.0.2",)),
                Endpoint(("172.0.0.3",)),
                Endpoint(("172.0.0.4",), hostname="dup-name"),
                Endpoint(("172.0.0.5",), hostname="dup-name"),
                Endpoint(("172.0.0.6",), ready=False),
            ],
        ),
        slice_of(
            "testns",
            "hdls1",
            "hdls1-v6",
            [Endpoint(("5678:abcd::1",)), Endpoint(("5678:abcd::2",))],
            address_type="IPv6",
        ),
        headless("testns", "hdlsprtls"),
        slice_of("testns", "hdlsprtls", "hdlsprtls-a", [Endpoint(("172.0.0.20",))], ports=()),
        headless("testns", "hdls-unready"),
        slice_of("testns", "hdls-unready", "hdls-unready-a", [Endpoint(("172.0.0.21",), ready=False)]),
        headless("testns", "hdls-publish", publish=True),
        slice_of("testns", "hdls-publish", "hdls-publish-a", [Endpoint(("172.0.0.30",), ready=False)]),
        headless("testns", "hdls-empty"),
        headless("testns", "hdls-fqdn"),
        slice_of("testns", "hdls-fqdn", "hdls-fqdn-a", [Endpoint(("web.example.org",))], address_type="FQDN"),
        headless("testns", "hdls-pods"),
        slice_of(
            "testns",
            "hdls-pods",
            "hdls-pods-a",
            [
                Endpoint(("172.0.0.50",), target_ref=TargetRef("Pod", "testns", "web-0")),
                Endpoint(("172.0.0.51",), hostname="named", target_ref=TargetRef("Pod", "testns", "web-1")),
                Endpoint(("172.0.0.52",), target_ref=TargetRef("Pod", "testns", "p" * 64)),
            ],
        ),
        # ExternalName Services.
        Service("testns", "external", type="ExternalName", external_name="ext.interwebs.test"),
        Service(
            "testns",
            "external-to-service",
            type="ExternalName",
            external_name="svc1.testns.svc.cluster.local",
        ),
        Service("testns", "external-ip", type="ExternalName", external_name="1.2.3.4"),
        Service(
            "testns",
            "external-loop",
            type="ExternalName",
            external_name="external-loop.testns.svc.cluster.local",
        ),
        # The DNS Service itself, with this server's address as its endpoint.
        Service("kube-system", "kube-dns", cluster_ips=("10.0.0.10",), ports=(ServicePort("dns", "UDP", 53),)),
        slice_of(
            "kube-system",
            "kube-dns",
            "kube-dns-a",
            [Endpoint(("172.0.0.100",))],
            ports=(EndpointPort("dns", "UDP", 53),),
        ),
        # A same-named Service elsewhere, and one whose Namespace object is missing.
        Service("other", "svc1", cluster_ips=("10.0.1.1",), ports=(HTTP,)),
        Service("ghost", "svc1", cluster_ips=("10.0.2.1",), ports=(HTTP,)),
        # Pods.
        Pod("podns", "foo", ips=("10.240.0.1",), phase="Running"),
        Pod("podns", "leaving", ips=("10.240.0.2",), phase="Running", deleting=True),
        Pod("podns", "done", ips=("10.240.0.3",), phase="Succeeded"),
        Pod("podns", "dual", ips=("10.240.0.4", "fd00::4"), phase="Running"),
        Pod("podns", "six", ips=("fd00::5",), phase="Running"),
    ]
    for obj in objects:
        store.put(obj)
    return store


def options(*lines: str, local_ips=()) -> ZoneOptions:
    """ZoneOptions from a `kubernetes` block with these option lines, over ZONES."""
    body = "\n".join(f"        {line}" for line in lines)
    corefile = f"{' '.join(ZONES)} {{\n    kubernetes {{\n{body}\n    }}\n}}\n"
    config = load_text(corefile).servers[0].plugin("kubernetes")
    return ZoneOptions.from_config(config, local_ips)


def ask(store: Store, zone_options: ZoneOptions, qname: str, qtype: str) -> Answer:
    """Ask as the plugin does: in the longest of ZONES that holds the name."""
    name = dns.name.from_text(qname)
    zone = longest_match(ZONES, name.to_text().lower())
    return answer(name, dns.rdatatype.from_text(qtype), store, zone_options, zone)


def lines(rrsets) -> list[str]:
    """RRsets as sorted zone-file lines, owner case kept."""
    return sorted(line for rrset in rrsets for line in rrset.to_text().splitlines())


def expected(text: str) -> list[str]:
    """Zone-file text (one RR per line) in the same canonical form as `lines`."""
    found = []
    for line in text.strip().splitlines():
        owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
        found.extend(dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata).to_text().splitlines())
    return sorted(found)


@attrs.frozen
class Row:
    """One golden question: what it shows, and the whole expected answer."""

    what: str
    qname: str
    qtype: str
    rcode: str
    answer: str = ""
    authority: str = ""
    additional: str = ""

    def check(self, store: Store, zone_options: ZoneOptions) -> Answer:
        got = ask(store, zone_options, self.qname, self.qtype)
        assert {
            "rcode": dns.rcode.to_text(got.rcode),
            "answer": lines(got.answer),
            "authority": lines(got.authority),
            "additional": lines(got.additional),
        } == {
            "rcode": self.rcode,
            "answer": expected(self.answer),
            "authority": expected(self.authority),
            "additional": expected(self.additional),
        }
        return got


def table(rows: list[Row]):
    """pytest.mark.parametrize arguments: each row, named by what it shows."""
    return {"argnames": "row", "argvalues": rows, "ids": [row.what for row in rows]}
