"""Each record kind and each `kubernetes` option, through the real server over UDP and TCP.

A representative question per kind and per option, asked with dnspython of
an Application serving a small cluster written as manifests. The expected
records follow the "Kubernetes DNS-Based Service Discovery" specification
1.1.0 and CoreDNS's kubernetes plugin (SRV weights, SOA fields, PTR targets,
the options' meaning), as discovery/dns/README.md lists them; the zone's own
exhaustive tables live in tests/unit/test_zone*.py.
"""

from __future__ import annotations

import ipaddress
import textwrap

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.integration.dnsserver import addresses, rdata_texts
from tests.upstream.fake import FakeUpstream

PROTOS = pytest.mark.parametrize("proto", ["udp", "tcp"])
ZONE = "cluster.local."

CLUSTER = textwrap.dedent("""\
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop, labels: {team: a}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: lab, labels: {team: b}}
    ---
    # A ClusterIP Service with two named ports, two ready endpoints and one not ready.
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop, labels: {tier: public}}
    spec:
      clusterIP: 10.96.0.50
      ports:
      - {name: http, port: 80, protocol: TCP}
      - {name: metrics, port: 9090, protocol: TCP}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-x1y2z
      namespace: shop
      labels: {kubernetes.io/service-name: web, tier: public}
    addressType: IPv4
    ports:
    - {name: http, port: 8080, protocol: TCP}
    - {name: metrics, port: 9090, protocol: TCP}
    endpoints:
    - addresses: [10.1.0.1]
      conditions: {ready: true}
      targetRef: {kind: Pod, namespace: shop, name: web-abc}
    - addresses: [10.1.0.2]
      conditions: {ready: true}
      targetRef: {kind: Pod, namespace: shop, name: web-def}
    - addresses: [10.1.0.3]
      conditions: {ready: false}
      targetRef: {kind: Pod, namespace: shop, name: web-ghi}
    ---
    # A headless Service: StatefulSet-style endpoints with hostnames.
    apiVersion: v1
    kind: Service
    metadata: {name: db, namespace: shop}
    spec:
      clusterIP: None
      ports: [{name: postgres, port: 5432, protocol: TCP}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: db-q8w7e
      namespace: shop
      labels: {kubernetes.io/service-name: db}
    addressType: IPv4
    ports: [{name: postgres, port: 5432, protocol: TCP}]
    endpoints:
    - addresses: [10.1.1.1]
      hostname: db-0
    - addresses: [10.1.1.2]
      hostname: db-1
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: dual, namespace: shop}
    spec:
      ipFamilyPolicy: RequireDualStack
      clusterIP: 10.96.0.60
      clusterIPs: [10.96.0.60, "fd00::60"]
      ipFamilies: [IPv4, IPv6]
      ports: [{name: http, port: 80, protocol: TCP}]
    ---
    # ExternalNames: one to a name in the zone, one to a name outside it.
    apiVersion: v1
    kind: Service
    metadata: {name: alias, namespace: shop}
    spec: {type: ExternalName, externalName: web.shop.svc.cluster.local}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: outside, namespace: shop}
    spec: {type: ExternalName, externalName: www.example.test}
    ---
    # A ClusterIP Service without endpoints.
    apiVersion: v1
    kind: Service
    metadata: {name: empty, namespace: shop}
    spec:
      clusterIP: 10.96.0.70
      ports: [{name: http, port: 80, protocol: TCP}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: tool, namespace: lab}
    spec:
      clusterIP: 10.96.0.80
      ports: [{name: http, port: 80, protocol: TCP}]
    ---
    # A name that starts with a digit: valid under RelaxedServiceNameValidation (1.34).
    apiVersion: v1
    kind: Service
    metadata: {name: 1kubernetes, namespace: lab}
    spec:
      clusterIP: 10.96.0.81
      ports: [{port: 443}]
    ---
    # No clusterIP written: the manifests source allocates one, as the API server would.
    apiVersion: v1
    kind: Service
    metadata: {name: fresh, namespace: lab}
    spec:
      ports: [{name: http, port: 80, protocol: TCP}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-abc, namespace: shop, labels: {tier: public}}
    spec: {containers: [{name: main, image: example}]}
    status: {phase: Running, podIP: 10.1.0.1, podIPs: [{ip: 10.1.0.1}]}
    """)


@pytest.fixture
def serve(dns_server, tmp_path):
    """start(options=[...kubernetes options]) -> a server for the cluster above, plus hosts for example.test."""
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "hosts").write_text("192.0.2.80 www.example.test\n")

    async def start(*options: str, after: str = ""):
        body = "\n".join(f"        {option}" for option in options)
        return await dns_server(textwrap.dedent(f"""\
            .:0 {{
                bind 127.0.0.1
                hosts {tmp_path / "hosts"} example.test
                kubernetes cluster.local in-addr.arpa ip6.arpa {{
                    manifests cluster
            {body}
                }}
                {after}
            }}
            """))

    return start


def answer_texts(response: dns.message.Message) -> list[str]:
    """Every answer record as zone-file text, sorted."""
    return sorted(
        f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
        for rrset in response.answer
        for rdata in rrset
    )


def assert_negative(response: dns.message.Message, rcode: int) -> None:
    """NXDOMAIN or NODATA: no answer, the zone's SOA in authority (RFC 2308)."""
    assert response.rcode() == rcode
    assert not response.answer
    assert [(r.name.to_text(), r.rdtype) for r in response.authority] == [(ZONE, dns.rdatatype.SOA)]


# --- record kinds ------------------------------------------------------------------------


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_cluster_ip_service_has_an_a_record(serve, proto):
    """web.shop.svc A is its cluster IP, authoritative, with the default TTL of 5."""
    server = await serve()
    response = await server.query("web.shop.svc.cluster.local.", "A", proto)
    assert response.flags & dns.flags.AA
    assert answer_texts(response) == ["web.shop.svc.cluster.local. 5 A 10.96.0.50"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_service_name_that_starts_with_a_digit_resolves(serve, proto):
    """1kubernetes.<ns>.svc answers its cluster IP.

    kubernetes/kubernetes test/e2e/network/dns.go, "should work with a service
    name that starts with a digit" (FeatureGate:RelaxedServiceNameValidation):
    a Service named 1kubernetes with one port 443 must resolve by its FQDN.
    """
    server = await serve()
    response = await server.query("1kubernetes.lab.svc.cluster.local.", "A", proto)
    assert answer_texts(response) == ["1kubernetes.lab.svc.cluster.local. 5 A 10.96.0.81"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_dual_stack_service_has_a_and_aaaa_records(serve, proto):
    """Each family's cluster IP answers its own type."""
    server = await serve()
    assert addresses(await server.query("dual.shop.svc.cluster.local.", "A", proto)) == ["10.96.0.60"]
    assert addresses(await server.query("dual.shop.svc.cluster.local.", "AAAA", proto)) == ["fd00::60"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_single_stack_service_has_no_aaaa_records(serve, proto):
    """AAAA of an IPv4-only Service: NODATA with the SOA, not NXDOMAIN (the name exists)."""
    server = await serve()
    assert_negative(await server.query("web.shop.svc.cluster.local.", "AAAA", proto), dns.rcode.NOERROR)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_headless_service_answers_its_ready_endpoints(serve, proto):
    """db.shop.svc A is the addresses of its ready endpoints."""
    server = await serve()
    assert addresses(await server.query("db.shop.svc.cluster.local.", "A", proto)) == ["10.1.1.1", "10.1.1.2"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_endpoint_with_a_hostname_has_its_own_name(serve, proto):
    """db-0.db.shop.svc A is that endpoint's address."""
    server = await serve()
    assert addresses(await server.query("db-0.db.shop.svc.cluster.local.", "A", proto)) == ["10.1.1.1"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_endpoint_without_a_hostname_is_named_by_its_dashed_ip(serve, proto):
    """10-1-0-2.web.shop.svc A is 10.1.0.2 (CoreDNS's endpoint names, for every Service)."""
    server = await serve()
    assert addresses(await server.query("10-1-0-2.web.shop.svc.cluster.local.", "A", proto)) == ["10.1.0.2"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_not_ready_endpoint_has_no_name(serve, proto):
    """10-1-0-3 is not ready: its name does not exist."""
    server = await serve()
    assert_negative(await server.query("10-1-0-3.web.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_service_srv_lists_every_port_with_its_own_name_as_target(serve, proto):
    """web.shop.svc SRV: one record per port, priority 0, weight 100/2, target the Service, its IP as glue."""
    server = await serve()
    response = await server.query("web.shop.svc.cluster.local.", "SRV", proto)
    assert rdata_texts(response, "SRV") == [
        "0 50 80 web.shop.svc.cluster.local.",
        "0 50 9090 web.shop.svc.cluster.local.",
    ]
    assert rdata_texts(response, "A", "additional") == ["10.96.0.50"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_named_port_has_its_own_srv_name(serve, proto):
    """_http._tcp.web.shop.svc SRV is that port alone."""
    server = await serve()
    response = await server.query("_http._tcp.web.shop.svc.cluster.local.", "SRV", proto)
    assert rdata_texts(response, "SRV") == ["0 100 80 web.shop.svc.cluster.local."]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_port_the_service_lacks_has_no_srv_name(serve, proto):
    """_https._tcp.web.shop.svc does not exist."""
    server = await serve()
    response = await server.query("_https._tcp.web.shop.svc.cluster.local.", "SRV", proto)
    assert_negative(response, dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_headless_service_srv_targets_each_endpoint(serve, proto):
    """db.shop.svc SRV: one record per endpoint, its hostname name as target, its address as glue."""
    server = await serve()
    response = await server.query("db.shop.svc.cluster.local.", "SRV", proto)
    assert rdata_texts(response, "SRV") == [
        "0 50 5432 db-0.db.shop.svc.cluster.local.",
        "0 50 5432 db-1.db.shop.svc.cluster.local.",
    ]
    glue = sorted((r.name.to_text(), rdata.to_text()) for r in response.additional for rdata in r)
    assert glue == [("db-0.db.shop.svc.cluster.local.", "10.1.1.1"), ("db-1.db.shop.svc.cluster.local.", "10.1.1.2")]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_external_name_is_a_cname(serve, proto):
    """outside.shop.svc CNAME is its externalName."""
    server = await serve()
    response = await server.query("outside.shop.svc.cluster.local.", "CNAME", proto)
    assert answer_texts(response) == ["outside.shop.svc.cluster.local. 5 CNAME www.example.test."]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_external_name_in_the_zone_is_followed_for_a(serve, proto):
    """alias.shop.svc A: the CNAME to web.shop.svc, then web's A record."""
    server = await serve()
    response = await server.query("alias.shop.svc.cluster.local.", "A", proto)
    assert answer_texts(response) == [
        "alias.shop.svc.cluster.local. 5 CNAME web.shop.svc.cluster.local.",
        "web.shop.svc.cluster.local. 5 A 10.96.0.50",
    ]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_external_name_outside_the_zone_is_resolved_through_the_server(serve, proto):
    """outside.shop.svc A: the CNAME, then www.example.test's A as the block's hosts plugin answers it."""
    server = await serve()
    response = await server.query("outside.shop.svc.cluster.local.", "A", proto)
    assert answer_texts(response) == [
        "outside.shop.svc.cluster.local. 5 CNAME www.example.test.",
        "www.example.test. 3600 A 192.0.2.80",
    ]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_service_ip_has_a_ptr_record(serve, proto):
    """50.0.96.10.in-addr.arpa PTR is web.shop.svc."""
    server = await serve()
    response = await server.query(dns.reversename.from_address("10.96.0.50"), "PTR", proto)
    assert rdata_texts(response, "PTR") == ["web.shop.svc.cluster.local."]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_endpoint_ip_has_a_ptr_record(serve, proto):
    """A headless endpoint's address points at its endpoint name."""
    server = await serve()
    response = await server.query(dns.reversename.from_address("10.1.1.2"), "PTR", proto)
    assert rdata_texts(response, "PTR") == ["db-1.db.shop.svc.cluster.local."]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_ipv6_service_ip_has_a_ptr_record(serve, proto):
    """The 32-nibble ip6.arpa name of fd00::60 points at dual.shop.svc."""
    server = await serve()
    response = await server.query(dns.reversename.from_address("fd00::60"), "PTR", proto)
    assert rdata_texts(response, "PTR") == ["dual.shop.svc.cluster.local."]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_an_unknown_ip_has_no_ptr_record(serve, proto):
    """An address nothing holds: NXDOMAIN in the reverse zone."""
    server = await serve()
    response = await server.query(dns.reversename.from_address("10.96.9.9"), "PTR", proto)
    assert response.rcode() == dns.rcode.NXDOMAIN and not response.answer


@PROTOS
@pytest_twisted.ensureDeferred
async def test_dns_version_is_the_schema_version(serve, proto):
    """dns-version.cluster.local TXT is "1.1.0" (the specification's section 2.1)."""
    server = await serve()
    response = await server.query("dns-version.cluster.local.", "TXT", proto)
    assert rdata_texts(response, "TXT") == ['"1.1.0"']


@PROTOS
@pytest_twisted.ensureDeferred
async def test_the_apex_has_an_soa_record(serve, proto):
    """cluster.local SOA: ns.dns.<zone>, hostmaster.<zone>, 7200 1800 86400, minimum the ttl."""
    server = await serve()
    response = await server.query(ZONE, "SOA", proto)
    (soa,) = response.answer[0]
    assert (soa.mname.to_text(), soa.rname.to_text()) == ("ns.dns.cluster.local.", "hostmaster.cluster.local.")
    assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (7200, 1800, 86400, 5)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_server_on_loopback_announces_no_ns_records(serve, proto):
    """cluster.local NS: a server bound to 127.0.0.1 has no address to announce (CoreDNS's boundIPs): NODATA."""
    server = await serve()
    assert_negative(await server.query(ZONE, "NS", proto), dns.rcode.NOERROR)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_missing_service_is_nxdomain_with_the_soa(serve, proto):
    """nothing.shop.svc: NXDOMAIN, the zone's SOA in authority."""
    server = await serve()
    assert_negative(await server.query("nothing.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_a_namespace_name_exists_without_records(serve, proto):
    """shop.svc.cluster.local A: NODATA (the namespace exists)."""
    server = await serve()
    assert_negative(await server.query("shop.svc.cluster.local.", "A", proto), dns.rcode.NOERROR)


@pytest_twisted.ensureDeferred
async def test_a_zone_transfer_is_refused(serve):
    """AXFR of the cluster zone over TCP: REFUSED."""
    server = await serve()
    response = await server.query(ZONE, "AXFR", "tcp")
    assert response.rcode() == dns.rcode.REFUSED


# --- options ---------------------------------------------------------------------------


@PROTOS
@pytest_twisted.ensureDeferred
async def test_ttl_sets_every_records_ttl(serve, proto):
    """`ttl 42`: answers and the SOA's minimum carry 42."""
    server = await serve("ttl 42")
    response = await server.query("web.shop.svc.cluster.local.", "A", proto)
    assert answer_texts(response) == ["web.shop.svc.cluster.local. 42 A 10.96.0.50"]
    soa = (await server.query(ZONE, "SOA", proto)).answer[0]
    assert soa[0].minimum == 42


@PROTOS
@pytest_twisted.ensureDeferred
async def test_namespaces_exposes_only_the_listed_ones(serve, proto):
    """`namespaces lab`: lab's Service answers, shop's does not exist."""
    server = await serve("namespaces lab")
    assert addresses(await server.query("tool.lab.svc.cluster.local.", "A", proto)) == ["10.96.0.80"]
    assert_negative(await server.query("web.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_namespace_labels_exposes_only_matching_namespaces(serve, proto):
    """`namespace_labels team=a`: shop (team a) answers, lab (team b) does not exist."""
    server = await serve("namespace_labels team=a")
    assert addresses(await server.query("web.shop.svc.cluster.local.", "A", proto)) == ["10.96.0.50"]
    assert_negative(await server.query("tool.lab.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_labels_exposes_only_matching_services(serve, proto):
    """`labels tier=public`: web (tier public) answers, dual (unlabelled) does not exist."""
    server = await serve("labels tier=public")
    assert addresses(await server.query("web.shop.svc.cluster.local.", "A", proto)) == ["10.96.0.50"]
    assert_negative(await server.query("dual.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_pods_disabled_has_no_pod_names(serve, proto):
    """Without `pods`, 10-1-0-1.shop.pod does not exist."""
    server = await serve()
    assert_negative(await server.query("10-1-0-1.shop.pod.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_pods_insecure_answers_any_dashed_ip(serve, proto):
    """`pods insecure`: 10-9-9-9.shop.pod is 10.9.9.9, no Pod needed."""
    server = await serve("pods insecure")
    assert addresses(await server.query("10-9-9-9.shop.pod.cluster.local.", "A", proto)) == ["10.9.9.9"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_pods_verified_answers_only_a_live_pods_ip(serve, proto):
    """`pods verified`: the Pod web-abc's IP answers; an IP no Pod holds does not exist."""
    server = await serve("pods verified")
    assert addresses(await server.query("10-1-0-1.shop.pod.cluster.local.", "A", proto)) == ["10.1.0.1"]
    assert_negative(await server.query("10-9-9-9.shop.pod.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_endpoint_pod_names_names_endpoints_by_their_pod(serve, proto):
    """`endpoint_pod_names`: web-abc.web.shop.svc is 10.1.0.1, and the SRV targets use Pod names."""
    server = await serve("endpoint_pod_names")
    assert addresses(await server.query("web-abc.web.shop.svc.cluster.local.", "A", proto)) == ["10.1.0.1"]
    response = await server.query(dns.reversename.from_address("10.1.0.2"), "PTR", proto)
    assert rdata_texts(response, "PTR") == ["web-def.web.shop.svc.cluster.local."]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_noendpoints_hides_headless_services_and_endpoint_names(serve, proto):
    """`noendpoints`: db (headless) and db-0.db do not exist; web keeps its cluster IP."""
    server = await serve("noendpoints")
    assert_negative(await server.query("db.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)
    assert_negative(await server.query("db-0.db.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)
    assert addresses(await server.query("web.shop.svc.cluster.local.", "A", proto)) == ["10.96.0.50"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_ignore_empty_service_hides_a_service_without_ready_endpoints(serve, proto):
    """`ignore empty_service`: empty.shop.svc does not exist, web (with endpoints) answers."""
    server = await serve("ignore empty_service")
    assert_negative(await server.query("empty.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)
    assert addresses(await server.query("web.shop.svc.cluster.local.", "A", proto)) == ["10.96.0.50"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_without_ignore_empty_service_a_service_without_endpoints_answers(serve, proto):
    """By default empty.shop.svc answers its cluster IP."""
    server = await serve()
    assert addresses(await server.query("empty.shop.svc.cluster.local.", "A", proto)) == ["10.96.0.70"]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_service_cidr_is_where_a_manifest_without_cluster_ip_gets_one(serve, proto):
    """`service_cidr 10.123.0.0/16`: fresh.lab.svc answers one address of that range, and its PTR."""
    server = await serve("service_cidr 10.123.0.0/16")
    (address,) = addresses(await server.query("fresh.lab.svc.cluster.local.", "A", proto))
    assert ipaddress.ip_address(address) in ipaddress.ip_network("10.123.0.0/16")
    response = await server.query(dns.reversename.from_address(address), "PTR", proto)
    assert rdata_texts(response, "PTR") == ["fresh.lab.svc.cluster.local."]


@pytest_twisted.async_yield_fixture
async def upstream():
    """A DNS server that answers every PTR question with upstream.example. and any other with A 192.0.2.53."""

    def answer(query, proto):
        response = dns.message.make_response(query)
        question = query.question[0]
        if question.rdtype == dns.rdatatype.PTR:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "PTR", "upstream.example."))
        else:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "192.0.2.53"))
        return response

    server = FakeUpstream(reactor, answer).start()
    yield server
    await server.stop()


@PROTOS
@pytest_twisted.ensureDeferred
async def test_fallthrough_passes_nxdomain_to_the_next_plugin(serve, upstream, proto):
    """`fallthrough`: a name the zone lacks goes on to `forward`; a name it has does not."""
    server = await serve("fallthrough", after=f"forward . 127.0.0.1:{upstream.port}")
    assert addresses(await server.query("nothing.shop.svc.cluster.local.", "A", proto)) == ["192.0.2.53"]
    assert addresses(await server.query("web.shop.svc.cluster.local.", "A", proto)) == ["10.96.0.50"]
    assert [query.question[0].name.to_text() for _, query in upstream.received] == [
        "nothing.shop.svc.cluster.local."
    ]


@PROTOS
@pytest_twisted.ensureDeferred
async def test_fallthrough_in_some_zones_only(serve, upstream, proto):
    """`fallthrough in-addr.arpa`: an unknown reverse name goes on, an unknown cluster name is NXDOMAIN."""
    server = await serve("fallthrough in-addr.arpa", after=f"forward . 127.0.0.1:{upstream.port}")
    response = await server.query(dns.reversename.from_address("10.96.9.9"), "PTR", proto)
    assert rdata_texts(response, "PTR") == ["upstream.example."]
    assert_negative(await server.query("nothing.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)


@PROTOS
@pytest_twisted.ensureDeferred
async def test_without_fallthrough_nxdomain_is_final(serve, upstream, proto):
    """No `fallthrough`: the zone's NXDOMAIN is the answer, and forward is never asked."""
    server = await serve(after=f"forward . 127.0.0.1:{upstream.port}")
    assert_negative(await server.query("nothing.shop.svc.cluster.local.", "A", proto), dns.rcode.NXDOMAIN)
    assert upstream.received == []
