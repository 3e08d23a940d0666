"""Live updates end to end: a manifest or an API object changes, and the answer follows.

The server reuses rendered answers, so every test asks the same question
before a change (twice, and checks the answer is being reused) and after
it: the table of rendered answers must never serve what the cluster no
longer says. Changes come through the real sources: files in a manifests
folder, and the wire-level fake Kubernetes API server (tests/fakeapi). Each
test waits for the Store to hold the change, then asks once: the very next
answer must be the new one.

And the other direction: once synced, an API outage never turns into
NXDOMAIN; the last data keeps serving.
"""

from __future__ import annotations

import copy
import logging
import textwrap

import dns.message
import dns.rcode
import dns.reversename
import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.fakeapi import Cluster, FakeApiServer
from tests.fakeapi.objects import endpoint_slice, namespace, service
from tests.fakeapi.tls import make_pki
from tests.integration.dnsserver import (
    addresses,
    eventually,
    rdata_texts,
    store_settles,
)


async def ask_reused(server, qname, rdtype="A", proto="udp") -> dns.message.Message:
    """Ask twice; the second answer must come from the table of rendered answers. The response."""
    first = await server.query(qname, rdtype, proto)
    wire = dns.message.make_query(qname, rdtype).to_wire()
    assert server.dns.fast_answer(wire, True, reactor.seconds()) is not None, f"{qname} {rdtype} is not reused"
    second = await server.query(qname, rdtype, proto)
    assert (second.rcode(), second.answer) == (first.rcode(), first.answer)
    return second


# --- the manifests source -------------------------------------------------------------------------


def service_yaml(name: str, cluster_ip: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: default}}
        spec:
          clusterIP: {cluster_ip}
          ports: [{{name: http, port: 80, protocol: TCP}}]
        """)


@pytest.fixture
def manifests(tmp_path):
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "web.yaml").write_text(service_yaml("web", "10.96.0.50"))
    return folder


@pytest.fixture
def serve_manifests(dns_server, manifests):
    async def start():
        return await dns_server(textwrap.dedent("""\
            cluster.local:0 in-addr.arpa:0 {
                bind 127.0.0.1
                kubernetes cluster.local in-addr.arpa {
                    manifests cluster
                }
            }
            """))

    return start


def ips_of(namespace_name: str, name: str):
    return lambda store: (svc := store.service(namespace_name, name)) is not None and svc.cluster_ips


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_editing_a_manifest_changes_the_answer(serve_manifests, manifests, proto):
    """web.yaml's clusterIP edited: once the folder is read again, web's A record is the new IP."""
    server = await serve_manifests()
    name = "web.default.svc.cluster.local."
    assert addresses(await ask_reused(server, name, "A", proto)) == ["10.96.0.50"]
    (manifests / "web.yaml").write_text(service_yaml("web", "10.96.0.51"))
    await store_settles(server.store, lambda store: ips_of("default", "web")(store) == ("10.96.0.51",))
    assert addresses(await server.query(name, "A", proto)) == ["10.96.0.51"]


@pytest_twisted.ensureDeferred
async def test_a_new_manifest_turns_nxdomain_into_an_answer(serve_manifests, manifests):
    """A Service that did not exist (NXDOMAIN, reused) answers once its file appears."""
    server = await serve_manifests()
    name = "api.default.svc.cluster.local."
    assert (await ask_reused(server, name)).rcode() == dns.rcode.NXDOMAIN
    (manifests / "api.yaml").write_text(service_yaml("api", "10.96.0.60"))
    await store_settles(server.store, lambda store: store.service("default", "api") is not None)
    assert addresses(await server.query(name)) == ["10.96.0.60"]


@pytest_twisted.ensureDeferred
async def test_a_removed_manifest_turns_the_answer_into_nxdomain(serve_manifests, manifests):
    """web.yaml deleted: web's name, and its IP's PTR record, no longer exist."""
    server = await serve_manifests()
    name, reverse = "web.default.svc.cluster.local.", dns.reversename.from_address("10.96.0.50")
    assert addresses(await ask_reused(server, name)) == ["10.96.0.50"]
    assert rdata_texts(await ask_reused(server, reverse, "PTR"), "PTR") == [name]
    (manifests / "web.yaml").unlink()
    await store_settles(server.store, lambda store: store.service("default", "web") is None)
    assert (await server.query(name)).rcode() == dns.rcode.NXDOMAIN
    assert (await server.query(reverse, "PTR")).rcode() == dns.rcode.NXDOMAIN


# --- the Kubernetes API (the fake API server) ---------------------------------------------------------


@pytest.fixture
def cluster() -> Cluster:
    cluster = Cluster()
    for name in ("default", "kube-system", "shop"):
        cluster.create(namespace(name))
    return cluster


@pytest_twisted.async_yield_fixture
async def api(cluster):
    server = FakeApiServer(reactor, cluster)
    server.start()
    yield server
    await server.stop()


@pytest.fixture
def serve_api(dns_server, api):
    async def start(*, synced: bool = True, options: str = ""):
        return await dns_server(textwrap.dedent(f"""\
            cluster.local:0 in-addr.arpa:0 {{
                bind 127.0.0.1
                kubernetes cluster.local in-addr.arpa {{
                    endpoint {api.url}
                    {options}
                }}
            }}
            """), synced=synced)

    return start


def with_ip(obj: dict, cluster_ip: str) -> dict:
    obj["spec"]["clusterIP"] = cluster_ip
    return obj


def current(cluster: Cluster, plural: str, namespace_name: str, name: str) -> dict:
    """A copy of a stored object, as a manifest to change and write back."""
    obj = copy.deepcopy(cluster.get(plural, namespace_name, name))
    obj["kind"] = {"services": "Service", "endpointslices": "EndpointSlice", "namespaces": "Namespace"}[plural]
    return obj


@pytest_twisted.ensureDeferred
async def test_a_created_service_answers(serve_api, api):
    """A Service created in the API answers, where its name was NXDOMAIN (and reused) before."""
    server = await serve_api()
    name = "cart.shop.svc.cluster.local."
    assert (await ask_reused(server, name)).rcode() == dns.rcode.NXDOMAIN
    api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    await store_settles(server.store, lambda store: store.service("shop", "cart") is not None)
    assert addresses(await server.query(name)) == ["10.96.5.5"]


@pytest_twisted.ensureDeferred
async def test_an_updated_external_name_changes_the_cname(serve_api, api, cluster):
    """An ExternalName Service updated to another target: the CNAME follows."""
    api.create(service("db", "shop", external_name="old.example.com"))
    server = await serve_api()
    name = "db.shop.svc.cluster.local."
    assert rdata_texts(await ask_reused(server, name, "CNAME"), "CNAME") == ["old.example.com."]
    updated = current(cluster, "services", "shop", "db")
    updated["spec"]["externalName"] = "new.example.com"
    api.update(updated)
    await store_settles(server.store, lambda store: store.service("shop", "db").external_name == "new.example.com")
    assert rdata_texts(await server.query(name, "CNAME"), "CNAME") == ["new.example.com."]


@pytest_twisted.ensureDeferred
async def test_a_deleted_service_is_nxdomain(serve_api, api):
    """A Service deleted from the API: its name is NXDOMAIN from then on."""
    api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    server = await serve_api()
    name = "cart.shop.svc.cluster.local."
    assert addresses(await ask_reused(server, name)) == ["10.96.5.5"]
    api.delete("services", "shop", "cart")
    await store_settles(server.store, lambda store: store.service("shop", "cart") is None)
    assert (await server.query(name)).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_service_recreated_with_another_ip_answers_the_new_one(serve_api, api, proto):
    """Deleted and created again with a new cluster IP: A is the new IP, and each IP's PTR follows."""
    api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    server = await serve_api()
    name = "cart.shop.svc.cluster.local."
    old_ptr, new_ptr = dns.reversename.from_address("10.96.5.5"), dns.reversename.from_address("10.96.5.6")
    assert addresses(await ask_reused(server, name, "A", proto)) == ["10.96.5.5"]
    assert rdata_texts(await ask_reused(server, old_ptr, "PTR", proto), "PTR") == [name]
    assert (await ask_reused(server, new_ptr, "PTR", proto)).rcode() == dns.rcode.NXDOMAIN
    api.delete("services", "shop", "cart")
    api.create(with_ip(service("cart", "shop"), "10.96.5.6"))
    await store_settles(server.store, lambda store: ips_of("shop", "cart")(store) == ("10.96.5.6",))
    assert addresses(await server.query(name, "A", proto)) == ["10.96.5.6"]
    assert (await server.query(old_ptr, "PTR", proto)).rcode() == dns.rcode.NXDOMAIN
    assert rdata_texts(await server.query(new_ptr, "PTR", proto), "PTR") == [name]


@pytest_twisted.ensureDeferred
async def test_an_endpoint_added_to_a_headless_service_is_answered(serve_api, api, cluster):
    """A third address in a headless Service's EndpointSlice: A and SRV both list it."""
    api.create(service("db", "shop", headless=True))
    api.create(endpoint_slice("db", "shop", addresses=("10.1.0.1", "10.1.0.2")))
    server = await serve_api()
    name = "db.shop.svc.cluster.local."
    assert addresses(await ask_reused(server, name)) == ["10.1.0.1", "10.1.0.2"]
    assert len(rdata_texts(await ask_reused(server, name, "SRV"), "SRV")) == 2
    slice_name = endpoint_slice("db", "shop")["metadata"]["name"]
    grown = endpoint_slice("db", "shop", addresses=("10.1.0.1", "10.1.0.2", "10.1.0.3"))
    grown["metadata"]["resourceVersion"] = cluster.get("endpointslices", "shop", slice_name)["metadata"]["resourceVersion"]
    api.update(grown)

    def three(store):
        return sum(len(ep.addresses) for eps in store.slices_for("shop", "db") for ep in eps.endpoints) == 3

    await store_settles(server.store, three)
    assert addresses(await server.query(name)) == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    assert len(rdata_texts(await server.query(name, "SRV"), "SRV")) == 3
    assert addresses(await server.query("10-1-0-3.db.shop.svc.cluster.local.")) == ["10.1.0.3"]


@pytest_twisted.ensureDeferred
async def test_an_endpoint_that_stops_being_ready_leaves_the_answer(serve_api, api):
    """An EndpointSlice whose endpoint turns not ready: the headless Service's A no longer lists it."""
    api.create(service("db", "shop", headless=True))
    api.create(endpoint_slice("db", "shop", addresses=("10.1.0.1",), name="db-a"))
    api.create(endpoint_slice("db", "shop", addresses=("10.1.0.2",), name="db-b"))
    server = await serve_api()
    name = "db.shop.svc.cluster.local."
    assert addresses(await ask_reused(server, name)) == ["10.1.0.1", "10.1.0.2"]
    api.update(endpoint_slice("db", "shop", addresses=("10.1.0.2",), name="db-b", ready=False))
    await store_settles(server.store, lambda store: not store.slice("shop", "db-b").endpoints[0].ready)
    assert addresses(await server.query(name)) == ["10.1.0.1"]


@pytest_twisted.ensureDeferred
async def test_a_deleted_namespace_takes_its_names_with_it(serve_api, api):
    """The Namespace shop deleted: its Service's name and shop.svc itself are NXDOMAIN."""
    api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    server = await serve_api()
    name, namespace_name = "cart.shop.svc.cluster.local.", "shop.svc.cluster.local."
    assert addresses(await ask_reused(server, name)) == ["10.96.5.5"]
    assert (await ask_reused(server, namespace_name)).rcode() == dns.rcode.NOERROR
    api.delete("namespaces", None, "shop")
    await store_settles(server.store, lambda store: store.namespace("shop") is None)
    assert (await server.query(name)).rcode() == dns.rcode.NXDOMAIN
    assert (await server.query(namespace_name)).rcode() == dns.rcode.NXDOMAIN


@pytest_twisted.ensureDeferred
async def test_a_ptr_record_follows_its_ip_to_another_owner(serve_api, api):
    """An endpoint IP moving from one Service's slice to another's: its PTR names the new owner."""
    for owner in ("left", "right"):
        api.create(service(owner, "shop", headless=True))
    api.create(endpoint_slice("left", "shop", addresses=("10.1.7.7",), name="left-a"))
    server = await serve_api()
    reverse = dns.reversename.from_address("10.1.7.7")
    assert rdata_texts(await ask_reused(server, reverse, "PTR"), "PTR") == ["10-1-7-7.left.shop.svc.cluster.local."]
    api.delete("endpointslices", "shop", "left-a")
    api.create(endpoint_slice("right", "shop", addresses=("10.1.7.7",), name="right-a"))
    await store_settles(server.store, lambda store: store.slice("shop", "right-a") is not None
                        and store.slice("shop", "left-a") is None)
    assert rdata_texts(await server.query(reverse, "PTR"), "PTR") == ["10-1-7-7.right.shop.svc.cluster.local."]


# --- where the cache comes from: tls, kubeconfig ------------------------------------------------------


@pytest.fixture
def pki(tmp_path):
    return make_pki(str(tmp_path))


@pytest_twisted.async_yield_fixture
async def tls_api(cluster, pki):
    """The fake API over HTTPS, asking clients for a certificate of its CA."""
    server = FakeApiServer(reactor, cluster, tls=pki.server_tls(require_client_cert=True))
    server.start()
    yield server
    await server.stop()


@pytest_twisted.ensureDeferred
async def test_tls_files_reach_an_api_that_wants_a_client_certificate(dns_server, tls_api, pki):
    """`endpoint https://...` with `tls CERT KEY CACERT`: the server syncs and answers the API's Services."""
    tls_api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    server = await dns_server(textwrap.dedent(f"""\
        cluster.local:0 {{
            bind 127.0.0.1
            kubernetes {{
                endpoint {tls_api.url}
                tls {pki.client_cert} {pki.client_key} {pki.ca_cert}
            }}
        }}
        """))
    assert addresses(await server.query("cart.shop.svc.cluster.local.")) == ["10.96.5.5"]


@pytest_twisted.ensureDeferred
async def test_a_kubeconfig_context_names_the_api_to_serve(dns_server, tls_api, pki, tmp_path):
    """`kubeconfig FILE CONTEXT`: that context's cluster and credentials, not the current context's."""
    tls_api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    (tmp_path / "kubeconfig").write_text(pki.kubeconfig(tls_api.url))

    server = await dns_server(textwrap.dedent(f"""\
        cluster.local:0 {{
            bind 127.0.0.1
            kubernetes {{
                kubeconfig {tmp_path / "kubeconfig"} fake
            }}
        }}
        """))
    assert addresses(await server.query("cart.shop.svc.cluster.local.")) == ["10.96.5.5"]


# --- outages ---------------------------------------------------------------------------------------


def informer_failed(caplog) -> bool:
    return any(
        record.name == "wayfinder.cache.informer" and record.levelno >= logging.WARNING
        for record in caplog.records
    )


@pytest.mark.parametrize("outage", ["api-server-gone", "lists-fail-with-503"])
@pytest_twisted.ensureDeferred
async def test_an_api_outage_after_sync_keeps_answering(serve_api, api, caplog, outage):
    """The API goes away after the sync: names keep their answers, reused or not, never NXDOMAIN."""
    api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    api.create(service("db", "shop", headless=True))
    api.create(endpoint_slice("db", "shop", addresses=("10.1.0.1",)))
    caplog.set_level(logging.WARNING, logger="wayfinder.cache.informer")
    server = await serve_api()
    cart = "cart.shop.svc.cluster.local."
    assert addresses(await ask_reused(server, cart)) == ["10.96.5.5"]
    if outage == "api-server-gone":
        await api.stop()
    else:
        # A watch resuming from forgotten history must relist, and every list fails.
        api.fail_lists(503)
        api.compact()
        api.cut_streams()
    await eventually(lambda: informer_failed(caplog))
    assert addresses(await server.query(cart)) == ["10.96.5.5"]
    assert addresses(await server.query("db.shop.svc.cluster.local.", "A", "tcp")) == ["10.1.0.1"]
    assert rdata_texts(await server.query(cart, "SRV"), "SRV") == ["0 100 80 cart.shop.svc.cluster.local."]
    assert rdata_texts(await server.query(dns.reversename.from_address("10.96.5.5"), "PTR"), "PTR") == [cart]


@pytest_twisted.ensureDeferred
async def test_before_the_first_sync_missing_names_are_servfail_not_nxdomain(serve_api, api):
    """While the first list has not arrived, a name the cache lacks is SERVFAIL; after it, the answer."""
    api.create(with_ip(service("cart", "shop"), "10.96.5.5"))
    api.stall_lists()
    server = await serve_api(synced=False, options="startup_timeout 0s")
    name = "cart.shop.svc.cluster.local."
    assert (await server.query(name)).rcode() == dns.rcode.SERVFAIL
    assert (await server.query(name)).rcode() == dns.rcode.SERVFAIL
    api.heal()
    await store_settles(server.store, lambda store: store.service("shop", "cart") is not None)
    (cache,) = server.app.caches.values()
    await eventually(lambda: cache.synced)
    assert addresses(await server.query(name)) == ["10.96.5.5"]
