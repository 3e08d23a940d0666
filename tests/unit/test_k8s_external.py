"""k8s_external: CoreDNS's external_test.go, apex_test.go, transfer_test.go and setup_test.go tables.

The fixture is CoreDNS's (plugin/k8s_external/external_test.go): namespace
testns, svc1 with the external IP 1.2.3.4, svc6 with 1:2::5, svc11 a
LoadBalancer at 2.3.4.5, svc12 a LoadBalancer whose ingress is the hostname
dummy.hostname, and svc-headless with endpoints endpoint-svc-0 (1.2.3.4) and
endpoint-svc-1 (1.2.3.5). CoreDNS keeps the ingress addresses in the same
list as spec.externalIPs; here svc11 and svc12 carry theirs in
status.loadBalancer, as a real cluster does. Zones example.com. and
in-addr.arpa., `headless` on, our address 127.0.0.1, serial 1499347823.
"""

from __future__ import annotations

import attrs
import dns.name
import dns.rrset
import dns.rcode
import dns.rdatatype
import pytest

from discovery.cache.objects import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    Namespace,
    Service,
    ServicePort,
)
from discovery.cache.store import Store
from discovery.config import load_text
from discovery.corefile import CorefileError
from discovery.dns.k8s_external import ExternalOptions, answer, transfer_records
from discovery.dns.table import invalidation_tokens, store_key
from discovery.dns.zone import ZoneOptions
from discovery.zones import Fallthrough, longest_match

from .zone_fixture import expected, lines

SERIAL = 1499347823
ZONES = ("example.com.", "in-addr.arpa.")
SOA = "example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.example.com. 1499347823 7200 1800 86400 5"
HTTP = (ServicePort("http", "TCP", 80),)


def fixture_store(clock=lambda: SERIAL) -> Store:
    store = Store(clock=clock)
    store.put(Namespace("testns"))
    for obj in (
        Service("testns", "svc1", cluster_ips=("10.0.0.1",), external_ips=("1.2.3.4",), ports=HTTP),
        Service("testns", "svc6", cluster_ips=("10.0.0.3",), external_ips=("1:2::5",), ports=HTTP),
        Service("testns", "svc11", type="LoadBalancer", cluster_ips=("10.0.0.3",), ports=HTTP,
                ingress=(LoadBalancerIngress(ip="2.3.4.5"),)),
        Service("testns", "svc12", type="LoadBalancer", cluster_ips=("10.0.0.3",), ports=HTTP,
                ingress=(LoadBalancerIngress(hostname="dummy.hostname"),)),
        Service("testns", "svc-headless", headless=True, ports=HTTP),
        EndpointSlice("testns", "svc-headless-a", "svc-headless", "IPv4", (
            Endpoint(("1.2.3.4",), hostname="endpoint-svc-0", node_name="test-node"),
            Endpoint(("1.2.3.5",), hostname="endpoint-svc-1", node_name="test-node"),
        ), (EndpointPort("http", "TCP", 80),)),
    ):
        store.put(obj)
    return store


def external_options(headless: bool = True, zones=ZONES) -> ExternalOptions:
    corefile = ". {\n kubernetes cluster.local {\n  namespaces testns\n }\n}\n"
    kubernetes = load_text(corefile).servers[0].plugin("kubernetes")
    # CoreDNS's test answers 127.0.0.1 for our address; loopback is dropped
    # from real local addresses, so it is set here directly.
    zone_options = attrs.evolve(ZoneOptions.from_config(kubernetes), local_ips=("127.0.0.1",))
    return ExternalOptions(zones=zones, zone=zone_options, headless=headless)


@pytest.fixture(scope="module")
def store():
    return fixture_store()


def ask(store, options, qname: str, qtype: str):
    name = dns.name.from_text(qname)
    zone = longest_match(options.zones, name.to_text().lower())
    return answer(name, dns.rdatatype.from_text(qtype), store, options, zone)


@attrs.frozen
class Row:
    qname: str
    qtype: str
    rcode: str
    answer: str = ""
    authority: str = ""
    additional: str = ""
    lookups: tuple = ()


def check(store, options, row: Row):
    got = ask(store, options, row.qname, row.qtype)
    assert {
        "rcode": dns.rcode.to_text(got.answer.rcode),
        "answer": lines(got.answer.answer),
        "authority": lines(got.answer.authority),
        "additional": lines(got.answer.additional),
        "lookups": tuple((section, name.to_text(), dns.rdatatype.to_text(t)) for section, name, t in got.lookups),
    } == {
        "rcode": row.rcode,
        "answer": expected(row.answer),
        "authority": expected(row.authority),
        "additional": expected(row.additional),
        "lookups": row.lookups,
    }


EXTERNAL = [
    Row("4.3.2.1.in-addr.arpa.", "PTR", "NOERROR", answer="4.3.2.1.in-addr.arpa. 5 IN PTR svc1.testns.example.com."),
    Row("svc1.testns.example.com.", "PTR", "NOERROR", authority=SOA),
    Row("not-existing.testns.example.com.", "PTR", "NXDOMAIN", authority=SOA),
    Row("svc1.testns.example.com.", "A", "NOERROR", answer="svc1.testns.example.com. 5 IN A 1.2.3.4"),
    Row("svc1.testns.example.com.", "SRV", "NOERROR",
        answer="svc1.testns.example.com. 5 IN SRV 0 100 80 svc1.testns.example.com.",
        additional="svc1.testns.example.com. 5 IN A 1.2.3.4"),
    Row("*._not-udp-or-tcp.svc1.testns.example.com.", "SRV", "NXDOMAIN", authority=SOA),
    Row("_http._tcp.svc1.testns.example.com.", "SRV", "NOERROR",
        answer="_http._tcp.svc1.testns.example.com. 5 IN SRV 0 100 80 svc1.testns.example.com.",
        additional="svc1.testns.example.com. 5 IN A 1.2.3.4"),
    Row("svc1.testns.example.com.", "AAAA", "NOERROR", authority=SOA),
    Row("svc0.testns.example.com.", "AAAA", "NXDOMAIN", authority=SOA),
    Row("svc0.testns.example.com.", "A", "NXDOMAIN", authority=SOA),
    Row("svc0.svc-nons.example.com.", "A", "NXDOMAIN", authority=SOA),
    Row("svc6.testns.example.com.", "AAAA", "NOERROR", answer="svc6.testns.example.com. 5 IN AAAA 1:2::5"),
    Row("_http._tcp.svc6.testns.example.com.", "SRV", "NOERROR",
        answer="_http._tcp.svc6.testns.example.com. 5 IN SRV 0 100 80 svc6.testns.example.com.",
        additional="svc6.testns.example.com. 5 IN AAAA 1:2::5"),
    Row("svc6.testns.example.com.", "SRV", "NOERROR",
        answer="svc6.testns.example.com. 5 IN SRV 0 100 80 svc6.testns.example.com.",
        additional="svc6.testns.example.com. 5 IN AAAA 1:2::5"),
    Row("testns.example.com.", "A", "NOERROR", authority=SOA),
    Row("testns.example.com.", "SOA", "NOERROR", authority=SOA),
    Row("svc11.testns.example.com.", "A", "NOERROR", answer="svc11.testns.example.com. 5 IN A 2.3.4.5"),
    Row("_http._tcp.svc11.testns.example.com.", "SRV", "NOERROR",
        answer="_http._tcp.svc11.testns.example.com. 5 IN SRV 0 100 80 svc11.testns.example.com.",
        additional="svc11.testns.example.com. 5 IN A 2.3.4.5"),
    Row("svc11.testns.example.com.", "SRV", "NOERROR",
        answer="svc11.testns.example.com. 5 IN SRV 0 100 80 svc11.testns.example.com.",
        additional="svc11.testns.example.com. 5 IN A 2.3.4.5"),
    # The hostname's own addresses come from the upstream lookups listed.
    Row("svc12.testns.example.com.", "A", "NOERROR",
        answer="svc12.testns.example.com. 5 IN CNAME dummy.hostname.",
        lookups=(("answer", "dummy.hostname.", "A"),)),
    Row("_http._tcp.svc12.testns.example.com.", "SRV", "NOERROR",
        answer="_http._tcp.svc12.testns.example.com. 5 IN SRV 0 100 80 dummy.hostname.",
        lookups=(("additional", "dummy.hostname.", "A"), ("additional", "dummy.hostname.", "AAAA"))),
    Row("svc12.testns.example.com.", "SRV", "NOERROR",
        answer="svc12.testns.example.com. 5 IN SRV 0 100 80 dummy.hostname.",
        lookups=(("additional", "dummy.hostname.", "A"), ("additional", "dummy.hostname.", "AAAA"))),
    Row("svc-headless.testns.example.com.", "A", "NOERROR",
        answer="svc-headless.testns.example.com. 5 IN A 1.2.3.4\n"
               "svc-headless.testns.example.com. 5 IN A 1.2.3.5"),
    Row("svc-headless.testns.example.com.", "SRV", "NOERROR",
        answer="svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-0.svc-headless.testns.example.com.\n"
               "svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-1.svc-headless.testns.example.com.",
        additional="endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4\n"
                   "endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"),
    Row("_http._tcp.svc-headless.testns.example.com.", "SRV", "NOERROR",
        answer="_http._tcp.svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-0.svc-headless.testns.example.com.\n"
               "_http._tcp.svc-headless.testns.example.com. 5 IN SRV 0 50 80 endpoint-svc-1.svc-headless.testns.example.com.",
        additional="endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4\n"
                   "endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"),
    Row("endpoint-svc-0.svc-headless.testns.example.com.", "SRV", "NOERROR",
        answer="endpoint-svc-0.svc-headless.testns.example.com. 5 IN SRV 0 100 80 endpoint-svc-0.svc-headless.testns.example.com.",
        additional="endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4"),
    Row("endpoint-svc-1.svc-headless.testns.example.com.", "SRV", "NOERROR",
        answer="endpoint-svc-1.svc-headless.testns.example.com. 5 IN SRV 0 100 80 endpoint-svc-1.svc-headless.testns.example.com.",
        additional="endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"),
    Row("endpoint-svc-0.svc-headless.testns.example.com.", "A", "NOERROR",
        answer="endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4"),
    Row("endpoint-svc-1.svc-headless.testns.example.com.", "A", "NOERROR",
        answer="endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"),
]

APEX = [
    Row("example.com.", "SOA", "NOERROR", answer=SOA),
    Row("example.com.", "NS", "NOERROR", answer="example.com. 5 IN NS ns1.dns.example.com.",
        additional="ns1.dns.example.com. 5 IN A 127.0.0.1"),
    Row("example.com.", "SRV", "NOERROR", authority=SOA),
    Row("dns.example.com.", "SRV", "NOERROR", authority=SOA),
    Row("dns.example.com.", "NS", "NOERROR", authority=SOA),
    Row("ns1.dns.example.com.", "SRV", "NOERROR", authority=SOA),
    Row("ns1.dns.example.com.", "NS", "NOERROR", authority=SOA),
    Row("ns1.dns.example.com.", "AAAA", "NOERROR", authority=SOA),
    Row("ns1.dns.example.com.", "A", "NOERROR", answer="ns1.dns.example.com. 5 IN A 127.0.0.1"),
]


@pytest.mark.parametrize("row", EXTERNAL, ids=[f"{r.qname} {r.qtype}" for r in EXTERNAL])
def test_external_table(store, row):
    """Each question of CoreDNS's external_test.go gets CoreDNS's answer."""
    check(store, external_options(), row)


@pytest.mark.parametrize("row", APEX, ids=[f"{r.qname} {r.qtype}" for r in APEX])
def test_apex_table(store, row):
    """Each question of CoreDNS's apex_test.go gets CoreDNS's answer."""
    check(store, external_options(), row)


def test_unknown_name_below_the_apex_subdomain_is_nxdomain(store):
    """apex.go: only ns1 lives under the `dns` subdomain."""
    check(store, external_options(), Row("ns2.dns.example.com.", "A", "NXDOMAIN", authority=SOA))


def test_headless_service_is_nxdomain_without_the_headless_option(store):
    """Without `headless`, a headless Service with no external address has no external name."""
    check(store, external_options(headless=False), Row("svc-headless.testns.example.com.", "A", "NXDOMAIN", authority=SOA))


def test_cluster_ip_only_service_has_no_external_name(store):
    """A Service with neither external IPs nor ingress is NXDOMAIN outside."""
    local = fixture_store()
    local.put(Service("testns", "internal", cluster_ips=("10.0.0.9",), ports=HTTP))
    check(local, external_options(), Row("internal.testns.example.com.", "A", "NXDOMAIN", authority=SOA))


def test_external_ips_come_before_ingress_addresses():
    """object/service.go: spec.externalIPs first, then each ingress's IP."""
    local = fixture_store()
    local.put(Service("testns", "both", type="LoadBalancer", cluster_ips=("10.0.0.9",), ports=HTTP,
                      external_ips=("9.9.9.9",), ingress=(LoadBalancerIngress(ip="8.8.8.8", ip_mode="VIP"),)))
    got = ask(local, external_options(), "both.testns.example.com.", "A")
    assert [rdata.address for rdata in got.answer.answer[0]] == ["9.9.9.9", "8.8.8.8"]


def test_transfer_holds_every_positive_answer(store):
    """transfer_test.go TestTransferAXFR: the zone is exactly the test tables' answers, PTR excepted."""
    records = list(transfer_records(store, external_options(zones=("example.com.",)), "example.com."))
    want = {
        line
        for row in EXTERNAL + APEX
        if row.rcode == "NOERROR" and row.answer
        for line in expected(row.answer)
        if " PTR " not in line and "*" not in line
    }
    got = set(lines(records))
    assert got == want


def test_transfer_starts_and_ends_with_the_soa(store):
    """AXFR (RFC 5936 section 2.2): the SOA first and last."""
    records = list(transfer_records(store, external_options(zones=("example.com.",)), "example.com."))
    assert records[0].rdtype == dns.rdatatype.SOA and records[-1].rdtype == dns.rdatatype.SOA


def test_ingress_assigned_changes_the_serial_and_drops_rendered_answers():
    """A LoadBalancer getting its IP moves the serial and invalidates the Service's and the SOA's answers."""
    now = [SERIAL]
    local = fixture_store(clock=lambda: now[0])
    before = ask(local, external_options(), "lb.testns.example.com.", "A").answer
    assert before.rcode == dns.rcode.NXDOMAIN
    now[0] += 10
    change = local.put(Service("testns", "lb", type="LoadBalancer", cluster_ips=("10.0.0.7",), ports=HTTP,
                               ingress=(LoadBalancerIngress(ip="5.6.7.8"),)))
    tokens = invalidation_tokens(local, change)
    key = store_key(local)
    assert {(key, token) for token in before.dependencies} & tokens
    after = ask(local, external_options(), "lb.testns.example.com.", "A").answer
    assert lines(after.answer) == expected("lb.testns.example.com. 5 IN A 5.6.7.8")
    soa = ask(local, external_options(), "example.com.", "SOA").answer
    assert soa.answer[0][0].serial == SERIAL + 10


def test_change_without_external_addresses_keeps_the_serial():
    """As CoreDNS's ModifiedExternal: a ClusterIP-only Service does not move the external serial."""
    now = [SERIAL]
    local = fixture_store(clock=lambda: now[0])
    now[0] += 10
    local.put(Service("testns", "internal", cluster_ips=("10.0.0.9",), ports=HTTP))
    assert local.external_modified == SERIAL
    assert local.modified == SERIAL + 10


SETUP = [
    ("k8s_external", ("example.org.",), "dns", False, Fallthrough()),
    ("k8s_external example.org", ("example.org.",), "dns", False, Fallthrough()),
    ("k8s_external example.org {\n apex testdns\n}", ("example.org.",), "testdns", False, Fallthrough()),
    ("k8s_external example.org {\n headless\n}", ("example.org.",), "dns", True, Fallthrough()),
    ("k8s_external example.org {\n fallthrough\n}", ("example.org.",), "dns", False, Fallthrough(True)),
    ("k8s_external example.org {\n fallthrough ip6.arpa inaddr.arpa foo.com\n}", ("example.org.",), "dns", False,
     Fallthrough(True, ("ip6.arpa.", "inaddr.arpa.", "foo.com."))),
]


@pytest.mark.parametrize("text,zones,apex,headless,fallthrough", SETUP)
def test_setup(text, zones, apex, headless, fallthrough):
    """setup_test.go: zones (the block's by default), apex, headless and fallthrough."""
    config = load_text(f"example.org {{\n kubernetes cluster.local\n {text}\n}}\n").servers[0].plugin("k8s_external")
    assert (config.zones, config.apex, config.headless, config.fallthrough) == (zones, apex, headless, fallthrough)


@pytest.mark.parametrize("text", ["k8s_external {\n ttl -1\n}", "k8s_external {\n ttl 3601\n}",
                                  "k8s_external {\n ttl\n}", "k8s_external {\n apex\n}",
                                  "k8s_external {\n bogus\n}"])
def test_setup_errors_name_the_line(text):
    """Bad options stop start-up with the file and line of the option."""
    with pytest.raises(CorefileError) as raised:
        load_text(f"example.org {{\n kubernetes cluster.local\n {text}\n}}\n")
    assert raised.value.line == 4


# --- the plugin in the chain ---------------------------------------------------------------


def plugin_for(directive: str, store, synced: bool = True):
    from twisted.internet.task import Clock

    from discovery.dns.k8s_external import ExternalPlugin

    config = load_text(f". {{\n kubernetes cluster.local\n {directive}\n}}\n").servers[0].plugin("k8s_external")
    return ExternalPlugin(config, store, external_options().zone, Clock(), synced=lambda: synced)


def test_plugin_passes_names_outside_its_zones(store):
    """A name outside the k8s_external zones goes to the next plugin."""
    from .test_kubernetes_plugin import FakeNext, request

    following = FakeNext()
    assert plugin_for("k8s_external example.com", store).serve(request("svc1.testns.other.org."), following) is following.response


def test_plugin_falls_through_on_nxdomain_only(store):
    """`fallthrough`: NXDOMAIN goes to the next plugin; NODATA is answered."""
    from .test_kubernetes_plugin import FakeNext, request

    following = FakeNext()
    plugin = plugin_for("k8s_external example.com {\n fallthrough\n }", store)
    assert plugin.serve(request("svc0.testns.example.com."), following) is following.response
    nodata = plugin.serve(request("svc1.testns.example.com.", "AAAA"), following)
    assert nodata.rcode() == dns.rcode.NOERROR and len(following.requests) == 1


def test_plugin_appends_the_hostname_lookup_after_the_cname(store):
    """An ingress hostname: CNAME, then the upstream's records for it, and the answer expires with them."""
    import dns.message
    from twisted.internet.defer import succeed

    from .test_kubernetes_plugin import FakeNext, request

    upstream = dns.message.make_response(dns.message.make_query("dummy.hostname.", "A"))
    upstream.answer.append(dns.rrset.from_text("dummy.hostname.", 30, "IN", "A", "192.0.2.44"))
    asked = []

    def lookup(name, rdtype):
        asked.append((name.to_text(), rdtype))
        return succeed(upstream)

    req = request("svc12.testns.example.com.", "A", lookup=lookup)
    results = []
    plugin_for("k8s_external example.com", store).serve(req, FakeNext()).addCallback(results.append)
    (response,) = results
    assert asked == [("dummy.hostname.", dns.rdatatype.A)]
    assert lines(response.answer) == expected(
        "svc12.testns.example.com. 5 IN CNAME dummy.hostname.\ndummy.hostname. 30 IN A 192.0.2.44"
    )
    assert req.fastpath.reusable and req.fastpath.expires == 30


def test_missing_name_before_the_cache_synced_is_servfail_and_not_reused(store):
    """Until the cache has synced, a name it lacks may exist: SERVFAIL (as the kubernetes plugin), never reused."""
    from .test_kubernetes_plugin import FakeNext, request

    req = request("svc0.testns.example.com.")
    response = plugin_for("k8s_external example.com", store, synced=False).serve(req, FakeNext())
    assert response.rcode() == dns.rcode.SERVFAIL and not req.fastpath.reusable
