"""k8s_external over real sockets: the demo's outside names, and answers that follow the API live.

The demo (manifests/examples) holds a LoadBalancer `default/shop` whose load
balancer assigned 203.0.113.10, and `default/status-page` with the external
IP 198.51.100.20. Live updates come through the wire-level fake API server:
a LoadBalancer's status.loadBalancer gets its address, changes, loses it;
the table of rendered answers must follow each time.
"""

from __future__ import annotations

import copy
import subprocess
import textwrap

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import pytest_twisted
from twisted.internet import threads

from tests.fakeapi import Cluster
from tests.fakeapi.objects import service
from tests.integration.dnsserver import EXAMPLES, addresses, rdata_texts, store_settles
from tests.integration.test_dns_live import api, ask_reused, cluster  # noqa: F401 (fixtures)

DEMO = textwrap.dedent(f"""\
    .:0 {{
        bind 127.0.0.1
        kubernetes cluster.local in-addr.arpa {{
            manifests {EXAMPLES}
        }}
        k8s_external example.org
    }}
    """)


@pytest_twisted.ensureDeferred
async def test_demo_load_balancer_answers_its_ingress_address_outside(dns_server):
    """shop.default.example.org is the address the load balancer was given, authoritatively."""
    server = await dns_server(DEMO)
    response = await server.query("shop.default.example.org.", "A")
    assert addresses(response) == ["203.0.113.10"]
    assert response.flags & dns.flags.AA


@pytest_twisted.ensureDeferred
async def test_demo_load_balancer_keeps_its_cluster_name(dns_server):
    """Inside the cluster the same Service is still its cluster IP."""
    server = await dns_server(DEMO)
    assert addresses(await server.query("shop.default.svc.cluster.local.", "A")) == ["10.96.40.7"]


@pytest_twisted.ensureDeferred
async def test_demo_external_ips_service_answers_outside(dns_server):
    """status-page.default.example.org is its spec.externalIPs address."""
    server = await dns_server(DEMO)
    assert addresses(await server.query("status-page.default.example.org.", "A")) == ["198.51.100.20"]


@pytest_twisted.ensureDeferred
async def test_demo_srv_names_the_external_port(dig_available, dns_server):
    """dig SRV _http._tcp.shop.default.example.org: port 80 at shop.default.example.org, its address as glue."""
    server = await dns_server(DEMO)
    output = await threads.deferToThread(
        subprocess.run,
        ["dig", "+norecurse", "+noall", "+answer", "+additional", "@127.0.0.1", "-p", str(server.port),
         "_http._tcp.shop.default.example.org", "SRV"],
        capture_output=True, text=True, timeout=10, check=True,
    )
    rows = sorted(" ".join(line.split()) for line in output.stdout.splitlines() if line.strip())
    assert rows == [
        "_http._tcp.shop.default.example.org. 5 IN SRV 0 100 80 shop.default.example.org.",
        "shop.default.example.org. 5 IN A 203.0.113.10",
    ]


@pytest_twisted.ensureDeferred
async def test_demo_cluster_ip_only_service_has_no_outside_name(dns_server):
    """frontend-svc has no external address: NXDOMAIN with the zone's SOA."""
    server = await dns_server(DEMO)
    response = await server.query("frontend-svc.default.example.org.", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


@pytest.fixture
def dig_available():
    try:
        subprocess.run(["dig", "-v"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("dig is not installed (tests/run installs it)")


# --- live, from the fake API server ------------------------------------------------------------


@pytest.fixture
def serve_api(dns_server, api):
    async def start():
        return await dns_server(textwrap.dedent(f"""\
            .:0 {{
                bind 127.0.0.1
                kubernetes cluster.local {{
                    endpoint {api.url}
                }}
                k8s_external example.org
            }}
            """))

    return start


def with_ingress(cluster: Cluster, *ingress: dict) -> dict:
    """The stored `cart` Service with status.loadBalancer.ingress set, as the controller writes it."""
    obj = copy.deepcopy(cluster.get("services", "shop", "cart"))
    obj["kind"] = "Service"
    obj["status"] = {"loadBalancer": {"ingress": list(ingress)}}
    return obj


def ingress_of(store):
    svc = store.service("shop", "cart")
    return () if svc is None else svc.external_addresses


NAME = "cart.shop.example.org."


@pytest_twisted.ensureDeferred
async def test_load_balancer_address_assigned_appears(serve_api, api, cluster):
    """A pending LoadBalancer (NXDOMAIN, reused) answers once its address is written to its status."""
    api.create(service("cart", "shop", type="LoadBalancer"))
    server = await serve_api()
    assert (await ask_reused(server, NAME)).rcode() == dns.rcode.NXDOMAIN
    serial = (await server.query("example.org.", "SOA")).answer[0][0].serial
    api.update(with_ingress(cluster, {"ip": "203.0.113.5"}))
    await store_settles(server.store, lambda store: ingress_of(store) == ("203.0.113.5",))
    assert addresses(await server.query(NAME)) == ["203.0.113.5"]
    assert (await server.query("example.org.", "SOA")).answer[0][0].serial >= serial


@pytest_twisted.ensureDeferred
async def test_load_balancer_address_changed_follows(serve_api, api, cluster):
    """The load balancer moves to another address: the next answer is the new one."""
    api.create(service("cart", "shop", type="LoadBalancer", ingress=({"ip": "203.0.113.5"},)))
    server = await serve_api()
    assert addresses(await ask_reused(server, NAME)) == ["203.0.113.5"]
    api.update(with_ingress(cluster, {"ip": "203.0.113.6"}))
    await store_settles(server.store, lambda store: ingress_of(store) == ("203.0.113.6",))
    assert addresses(await server.query(NAME)) == ["203.0.113.6"]


@pytest_twisted.ensureDeferred
async def test_load_balancer_address_removed_turns_nxdomain(serve_api, api, cluster):
    """The load balancer releases the address: the outside name no longer exists, nor its PTR."""
    api.create(service("cart", "shop", type="LoadBalancer", ingress=({"ip": "203.0.113.5"},)))
    server = await serve_api()
    assert addresses(await ask_reused(server, NAME)) == ["203.0.113.5"]
    api.update(with_ingress(cluster))
    await store_settles(server.store, lambda store: ingress_of(store) == ())
    assert (await server.query(NAME)).rcode() == dns.rcode.NXDOMAIN


@pytest_twisted.ensureDeferred
async def test_load_balancer_hostname_is_a_cname(serve_api, api, cluster):
    """An ingress hostname (as AWS's load balancers give) answers a CNAME to it."""
    api.create(service("cart", "shop", type="LoadBalancer", ingress=({"hostname": "lb-1.elb.example.net"},)))
    server = await serve_api()
    response = await server.query(NAME)
    assert rdata_texts(response, "CNAME") == ["lb-1.elb.example.net."]
