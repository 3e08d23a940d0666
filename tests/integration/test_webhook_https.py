"""The webhook over real HTTPS on 127.0.0.1, with realistic AdmissionReviews.

The reviews in data/webhook/ have the shape the API server sends (the
Kubernetes docs' example, and Pods as they look after defaulting and the
built-in admission plugins). Each returned patch is applied with a real JSON
Patch library and the Pod must still validate against the Kubernetes schema.
Clients are Twisted's HTTP client and TLS, and Python's ssl module for the
protocol-version check.
"""

from __future__ import annotations

import base64
import copy
import datetime
import io
import json
import os
import re
import logging
import socket
import ssl
import warnings
from pathlib import Path

import jsonpatch
import kubernetes_validate
import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from discovery.cache.objects import namespace_from_api, service_from_api
from discovery.cache.store import Store
from discovery.config import load_text
from discovery.corefile import CorefileError
from webhook.config import AutoCertificate, CertificateFiles, WebhookConfig
from webhook.server import WebhookServer

DATA = Path(__file__).parent / "data" / "webhook"
#: Every network wait gives up after this many seconds, so a failure cannot hang.
TIMEOUT = 10
#: The Kubernetes schema version the patched Pods are checked against.
KUBERNETES_VERSION = "1.35.0"


def data(name: str) -> dict:
    return json.loads((DATA / name).read_text())


# --- a cluster, a server, a client -----------------------------------------------------------------


@pytest.fixture
def store() -> Store:
    store = Store()
    for item in data("cluster.json")["items"]:
        convert = {"Service": service_from_api, "Namespace": namespace_from_api}[item["kind"]]
        store.put(convert(item))
    return store


@implementer(IPolicyForHTTPS)
class TrustOnly:
    """Verify the server against these CA certificates and this host name only."""

    def __init__(self, ca_pems: list[bytes], hostname: str = "localhost"):
        self.trust = trustRootFromCertificates([Certificate.loadPEM(pem) for pem in ca_pems])
        self.hostname = hostname

    def creatorForNetloc(self, hostname, port):
        return optionsForClientTLS(self.hostname, trustRoot=self.trust)


class Body(Protocol):
    """Collects a response body (twisted.web.client.readBody warns over TLS)."""

    def __init__(self):
        self.done = Deferred()
        self.parts: list[bytes] = []

    def dataReceived(self, data):
        self.parts.append(data)

    def connectionLost(self, reason):
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


class Client:
    """An HTTPS client with keep-alive connections (or a new one per request)."""

    def __init__(self, port: int, ca_pems: list[bytes], persistent: bool = True, hostname: str = "localhost"):
        self.base = f"https://127.0.0.1:{port}".encode()
        self.pool = HTTPConnectionPool(reactor, persistent=persistent)
        self.agent = Agent(reactor, TrustOnly(ca_pems, hostname), pool=self.pool)

    async def request(self, method: bytes, path: str, body: bytes | None = None) -> tuple[int, Headers, bytes]:
        producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
        headers = Headers({b"Content-Type": [b"application/json"]})
        pending = self.agent.request(method, self.base + path.encode(), headers, producer)
        pending.addTimeout(TIMEOUT, reactor)
        response = await pending
        collected = Body()
        response.deliverBody(collected)
        collected.done.addTimeout(TIMEOUT, reactor)
        return response.code, response.headers, await collected.done

    async def review(self, review: dict | bytes, path: str = "/mutate") -> tuple[int, dict]:
        body = review if isinstance(review, bytes) else json.dumps(review).encode()
        code, _, content = await self.request(b"POST", path, body)
        return code, json.loads(content)

    def close(self) -> Deferred:
        return self.pool.closeCachedConnections()


class Webhooks:
    """Starts webhook servers on 127.0.0.1:0 and stops them, and their clients, afterwards."""

    def __init__(self, store: Store):
        self.store = store
        self.running: list[WebhookServer] = []
        self.clients: list[Client] = []

    async def start(self, tls=AutoCertificate(), registry: CollectorRegistry | None = None, **config) -> WebhookServer:
        server = WebhookServer(
            WebhookConfig(tls=tls, host="127.0.0.1", port=0, **config), self.store, reactor, registry=registry
        )
        await server.start()
        self.running.append(server)
        return server

    def client(self, server: WebhookServer, ca_pems: list[bytes] | None = None, **options) -> Client:
        client = Client(server.port, ca_pems or [server.ca_bundle], **options)
        self.clients.append(client)
        return client

    async def close(self):
        for client in self.clients:
            await client.close()
        for server in self.running:
            await server.stop()


@pytest_twisted.async_yield_fixture
async def webhooks(store):
    webhooks = Webhooks(store)
    yield webhooks
    await webhooks.close()


@pytest_twisted.async_yield_fixture
async def running(webhooks):
    """A started webhook with `tls auto`, its client and its metrics registry."""
    registry = CollectorRegistry()
    server = await webhooks.start(registry=registry)
    yield server, webhooks.client(server), registry


def patched(review: dict, answer: dict) -> dict:
    """The review's object with the answer's patch applied, as the API server would."""
    response = answer["response"]
    obj = copy.deepcopy(review["request"]["object"])
    if "patch" not in response:
        return obj
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(obj, json.loads(base64.b64decode(response["patch"])))


def validate(pod: dict) -> None:
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
        names = [entry["name"] for entry in container.get("env", [])]
        assert len(names) == len(set(names)), f"duplicate env names in {container['name']}"


def env_of(pod: dict, container: str) -> dict[str, str | None]:
    for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
        if c["name"] == container:
            return {e["name"]: e.get("value") for e in c.get("env", [])}
    raise KeyError(container)


# --- the reviews ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_deployment_pod_gets_the_namespace_services_and_still_validates(running):
    """A generateName Pod from a ReplicaSet: every container patched, the Pod still valid."""
    _, client, _ = running
    review = data("create-deployment-pod.json")
    code, answer = await client.review(review)
    assert code == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == review["request"]["uid"]
    assert answer["response"]["allowed"] is True
    pod = patched(review, answer)
    validate(pod)
    for container in ("wait-for-redis", "web", "metrics-exporter"):
        env = env_of(pod, container)
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
        assert env["FRONTEND_SERVICE_PORT_HTTPS"] == "443"
        assert env["DNS_CACHE_PORT_53_UDP"] == "udp://10.96.10.3:53"
        assert not any(name.startswith(("CASSANDRA_", "PAYMENTS_", "POSTGRES_")) for name in env)


@pytest_twisted.ensureDeferred
async def test_dual_stack_services_use_their_primary_address(running):
    """redis-master is IPv6-primary (bracketed in URLs), dns-cache IPv4-primary."""
    _, client, _ = running
    review = data("create-deployment-pod.json")
    env = env_of(patched(review, (await client.review(review))[1]), "metrics-exporter")
    assert env["REDIS_MASTER_SERVICE_HOST"] == "fd00:10:96::a"
    assert env["REDIS_MASTER_PORT"] == "tcp://[fd00:10:96::a]:6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_ADDR"] == "fd00:10:96::a"
    assert env["DNS_CACHE_SERVICE_HOST"] == "10.96.10.3"


@pytest_twisted.ensureDeferred
async def test_existing_env_is_kept_after_the_injected_variables(running):
    """The container's own entries stay, in order, after the injected ones; its own value wins."""
    _, client, _ = running
    review = data("create-deployment-pod.json")
    own = review["request"]["object"]["spec"]["containers"][0]["env"]
    pod = patched(review, (await client.review(review))[1])
    env = pod["spec"]["containers"][0]["env"]
    assert env[-len(own):] == own
    assert [e["name"] for e in env].count("FRONTEND_SERVICE_HOST") == 1
    assert env_of(pod, "web")["FRONTEND_SERVICE_HOST"] == "frontend.shop.svc.cluster.local"


@pytest_twisted.ensureDeferred
async def test_patched_pod_sent_again_gets_no_patch(running):
    """Reinvocation: the API server may call again with the patched Pod; nothing more is added."""
    _, client, _ = running
    review = data("create-deployment-pod.json")
    again = copy.deepcopy(review)
    again["request"]["object"] = patched(review, (await client.review(review))[1])
    code, answer = await client.review(again)
    assert code == 200 and "patch" not in answer["response"]


@pytest_twisted.ensureDeferred
async def test_service_links_false_pod_gets_only_the_master_service(running):
    """enableServiceLinks: false (and dryRun): only KUBERNETES_*, as the kubelet would add."""
    _, client, _ = running
    review = data("create-pod-service-links-false.json")
    pod = patched(review, (await client.review(review))[1])
    validate(pod)
    env = env_of(pod, "debug")
    assert env and all(name.startswith("KUBERNETES_") for name in env)


@pytest_twisted.ensureDeferred
async def test_services_annotation_pod_gets_the_listed_services_only(running):
    """postgres.shared and redis-master, links off; the envFrom containers follow the envFrom rule."""
    _, client, _ = running
    review = data("create-pod-services-annotation.json")
    pod = patched(review, (await client.review(review))[1])
    validate(pod)
    assert pod["spec"]["enableServiceLinks"] is False
    worker, uploader = env_of(pod, "worker"), env_of(pod, "uploader")
    # Unprefixed envFrom: the listed Services only (the master is left to the kubelet).
    assert {name.split("_")[0] for name in worker} == {"POSTGRES", "REDIS", "DATABASE"}
    # envFrom with prefix UPLOAD_ cannot collide with these names: all of them.
    assert {name.split("_")[0] for name in uploader} == {"POSTGRES", "REDIS", "KUBERNETES"}
    assert worker["POSTGRES_SERVICE_PORT_PG"] == "5432"


@pytest_twisted.ensureDeferred
async def test_pod_annotated_out_gets_no_patch(running):
    """wayfinder.io/inject: "false" on the Pod: allowed, unchanged."""
    _, client, _ = running
    review = data("create-deployment-pod.json")
    review["request"]["object"]["metadata"]["annotations"] = {"wayfinder.io/inject": "false"}
    code, answer = await client.review(review)
    assert code == 200 and answer["response"] == {"uid": review["request"]["uid"], "allowed": True}


@pytest_twisted.ensureDeferred
async def test_pod_in_an_opted_out_namespace_gets_no_patch(running):
    """A Namespace labelled wayfinder.io/inject=false: allowed, unchanged."""
    _, client, _ = running
    code, answer = await client.review(data("create-pod-in-opted-out-namespace.json"))
    assert code == 200 and answer["response"]["allowed"] is True and "patch" not in answer["response"]


@pytest_twisted.ensureDeferred
async def test_the_docs_scale_review_is_allowed_without_a_patch(running):
    """The Kubernetes docs' AdmissionReview (a Deployment scale UPDATE) is not a Pod CREATE."""
    _, client, _ = running
    code, answer = await client.review(data("update-deployment-scale.json"))
    assert code == 200
    assert answer["response"] == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


@pytest_twisted.ensureDeferred
async def test_service_created_in_the_cache_is_in_the_next_pod(running, store):
    """A Service put in the shared Store shows in the next answer, and leaves it when deleted."""
    _, client, _ = running
    review = data("create-pod-service-links-false.json")
    review["request"]["object"]["spec"]["enableServiceLinks"] = True
    before = env_of(patched(review, (await client.review(review))[1]), "debug")
    assert "SEARCH_SERVICE_HOST" not in before
    store.put(
        service_from_api(
            {"metadata": {"name": "search", "namespace": "shop"},
             "spec": {"clusterIP": "10.96.10.9", "ports": [{"name": "http", "port": 9200}]}}
        )
    )
    after = env_of(patched(review, (await client.review(review))[1]), "debug")
    assert after["SEARCH_SERVICE_HOST"] == "10.96.10.9"
    store.delete("Service", ("shop", "search"))
    gone = env_of(patched(review, (await client.review(review))[1]), "debug")
    assert "SEARCH_SERVICE_HOST" not in gone


@pytest_twisted.ensureDeferred
async def test_master_service_change_reaches_pods_in_every_namespace(running, store):
    """A new address for default/kubernetes shows in the next answer, with or without service links."""
    _, client, _ = running
    reviews = {"debug": data("create-pod-service-links-false.json"), "web": data("create-deployment-pod.json")}

    async def kubernetes_host(container: str) -> str:
        review = reviews[container]
        return env_of(patched(review, (await client.review(review))[1]), container)["KUBERNETES_SERVICE_HOST"]

    assert [await kubernetes_host("debug"), await kubernetes_host("web")] == ["10.96.0.1", "10.96.0.1"]
    store.put(
        service_from_api(
            {"metadata": {"name": "kubernetes", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.2", "ports": [{"name": "https", "port": 443}]}}
        )
    )
    assert [await kubernetes_host("debug"), await kubernetes_host("web")] == ["10.96.0.2", "10.96.0.2"]


# --- the HTTP edge -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {', "not JSON"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "CREATE"}}).encode(), "uid"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}).encode(), "apiVersion"),
    ],
    ids=["malformed JSON", "missing uid", "unknown apiVersion"],
)
@pytest_twisted.ensureDeferred
async def test_bad_review_gets_400_with_a_json_message_and_the_server_carries_on(running, body, message):
    """400 with {"message": ...}; the next good review on the same connection is answered."""
    _, client, _ = running
    code, answer = await client.review(body)
    assert code == 400 and message in answer["message"]
    code, _ = await client.review(data("create-pod-service-links-false.json"))
    assert code == 200


@pytest_twisted.ensureDeferred
async def test_oversized_body_gets_413(webhooks):
    """A body over max_request_bytes is refused without being kept."""
    server = await webhooks.start(max_request_bytes=4096)
    code, answer = await webhooks.client(server).review(b" " * 5000 + b"{}")
    assert code == 413 and "4096" in answer["message"]


@pytest_twisted.ensureDeferred
async def test_review_on_a_configured_path(webhooks):
    """`path /inject` moves the endpoint; /mutate is then unknown."""
    server = await webhooks.start(path="/inject")
    client = webhooks.client(server)
    assert (await client.review(data("create-pod-service-links-false.json"), path="/inject"))[0] == 200
    assert (await client.review(data("create-pod-service-links-false.json"), path="/mutate"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_get_on_the_webhook_path_is_405(running):
    """Only POST carries a review."""
    _, client, _ = running
    code, headers, _ = await client.request(b"GET", "/mutate")
    assert code == 405 and headers.getRawHeaders(b"Allow") == [b"POST"]


@pytest_twisted.ensureDeferred
async def test_healthz_answers_ok(running):
    """GET /healthz is 200 for liveness probes."""
    _, client, _ = running
    code, _, body = await client.request(b"GET", "/healthz")
    assert (code, body) == (200, b"ok\n")


@pytest_twisted.ensureDeferred
async def test_requests_are_counted_by_result_with_their_latency(running):
    """wayfinder_webhook_requests_total{result} and the duration histogram count each review."""
    _, client, registry = running
    await client.review(data("create-deployment-pod.json"))
    await client.review(data("update-deployment-scale.json"))
    await client.review(b"{")
    count = lambda result: registry.get_sample_value("wayfinder_webhook_requests_total", {"result": result})
    assert (count("patched"), count("unchanged"), count("invalid"), count("error")) == (1, 1, 1, 0)
    assert registry.get_sample_value("wayfinder_webhook_request_duration_seconds_count") == 3


# --- TLS ------------------------------------------------------------------------------------------------


def handshake(port: int, ca_pem: bytes, maximum: ssl.TLSVersion) -> str:
    """A blocking TLS handshake with Python's ssl; returns the negotiated version."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_pem.decode())
    # Let this client offer old versions, so that a refusal is the server's.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old versions, on purpose
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.version()


@pytest_twisted.ensureDeferred
async def test_tls_1_2_is_accepted(running):
    """A client that speaks at most TLS 1.2 is served."""
    server, _, _ = running
    version = await threads.deferToThread(handshake, server.port, server.ca_bundle, ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"


@pytest_twisted.ensureDeferred
async def test_tls_below_1_2_is_refused_by_the_server(running):
    """A TLS 1.1 ClientHello gets the server's protocol_version alert."""
    server, _, _ = running
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        await threads.deferToThread(handshake, server.port, server.ca_bundle, ssl.TLSVersion.TLSv1_1)


@pytest_twisted.ensureDeferred
async def test_tls_auto_logs_a_ca_bundle_that_verifies_localhost_and_loopback(webhooks, caplog):
    """The caBundle in the log verifies the server as localhost and as 127.0.0.1."""
    caplog.set_level("INFO", logger="wayfinder.webhook")
    server = await webhooks.start(tls=AutoCertificate(("wayfinder.kube-system.svc",)))
    logged = re.search(r"caBundle: (\S+)", caplog.text).group(1)
    ca_pem = base64.b64decode(logged)
    for hostname in ("localhost", "127.0.0.1", "wayfinder.kube-system.svc"):
        code, _, _ = await webhooks.client(server, [ca_pem], hostname=hostname).request(b"GET", "/healthz")
        assert code == 200


class CertificateAuthority:
    """A test CA that issues serving certificates for localhost into files."""

    def __init__(self, name: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, directory: Path) -> int:
        """Write tls.crt and tls.key as a Secret volume does (write aside, then rename); returns the serial."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        replace(directory / "tls.key", key_pem)
        replace(directory / "tls.crt", certificate.public_bytes(serialization.Encoding.PEM))
        return certificate.serial_number


def replace(path: Path, content: bytes) -> None:
    aside = path.with_suffix(".new")
    aside.write_bytes(content)
    os.replace(aside, path)


@implementer(IHandshakeListener)
class PeerCertificate(Protocol):
    """Completes a TLS handshake and reports the serial number the server presented."""

    def __init__(self):
        self.serial = Deferred()

    def handshakeCompleted(self):
        self.serial.callback(self.transport.getPeerCertificate().get_serial_number())
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.serial.called:
            self.serial.errback(reason)


async def presented_serial(port: int, ca_pems: list[bytes]) -> int:
    """The serial of the certificate a new connection is served, verified against ca_pems."""
    protocol = PeerCertificate()
    options = optionsForClientTLS("localhost", trustRoot=trustRootFromCertificates([Certificate.loadPEM(p) for p in ca_pems]))
    endpoint = wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT))
    connecting = endpoint.connect(Factory.forProtocol(lambda: protocol))
    connecting.addTimeout(TIMEOUT, reactor)
    await connecting
    protocol.serial.addTimeout(TIMEOUT, reactor)
    return await protocol.serial


@pytest_twisted.ensureDeferred
async def test_certificate_rotation_while_requests_flow(webhooks, tmp_path):
    """New files serve new connections at once; requests in flight and kept-alive connections all succeed."""
    old_ca, new_ca = CertificateAuthority("old CA"), CertificateAuthority("new CA")
    old_serial = old_ca.issue(tmp_path)
    server = await webhooks.start(tls=CertificateFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")))
    both = [old_ca.pem, new_ca.pem]
    kept_alive = webhooks.client(server, both)
    fresh_each_time = webhooks.client(server, both, persistent=False)
    review = data("create-pod-service-links-false.json")
    codes: list[int] = []
    rotated = Deferred()
    after_rotation = 0

    async def flow(client: Client):
        nonlocal after_rotation
        while after_rotation < 20:
            code, _ = await client.review(review)
            codes.append(code)
            if rotated.called:
                after_rotation += 1
            elif len(codes) >= 20:
                rotated.callback(None)

    flows = [pytest_twisted.defer.ensureDeferred(flow(c)) for c in (kept_alive, kept_alive, fresh_each_time)]
    await rotated
    new_serial = new_ca.issue(tmp_path)
    assert await presented_serial(server.port, [new_ca.pem]) == new_serial
    for running_flow in flows:
        running_flow.addTimeout(TIMEOUT, reactor)
        await running_flow
    assert new_serial != old_serial
    assert codes and set(codes) == {200}


@pytest.mark.parametrize(
    "spoil",
    [
        lambda directory: replace(directory / "tls.crt", b"-----BEGIN CERTIFICATE-----\nhalf"),
        lambda directory: replace(directory / "tls.key", CertificateAuthority("other").key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        lambda directory: (directory / "tls.key").unlink(),
    ],
    ids=["half-written certificate", "key of another certificate", "key removed"],
)
@pytest_twisted.ensureDeferred
async def test_rotated_files_that_do_not_load_leave_the_current_certificate_serving(webhooks, tmp_path, spoil):
    """A bad pair is skipped; the next good pair is served."""
    ca = CertificateAuthority("test CA")
    first = ca.issue(tmp_path)
    server = await webhooks.start(tls=CertificateFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")))
    spoil(tmp_path)
    assert await presented_serial(server.port, [ca.pem]) == first
    second = ca.issue(tmp_path)
    assert await presented_serial(server.port, [ca.pem]) == second


@pytest_twisted.ensureDeferred
async def test_a_certificate_that_cannot_be_read_is_logged_and_retried_not_raised(webhooks, tmp_path, caplog):
    """A missing certificate at start-up does not fail start(): the log names the file, nothing listens yet."""
    with caplog.at_level(logging.WARNING, logger="wayfinder.webhook"):
        server = await webhooks.start(tls=CertificateFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")))
    assert not server.serving and server.port is None
    assert any("tls.crt" in record.getMessage() for record in caplog.records)


# --- the Corefile directive ---------------------------------------------------------------------------


def webhook_config(body: str, file: str = "Corefile") -> WebhookConfig:
    config = load_text(f"cluster.local:1053 {{\n    kubernetes\n{body}\n}}\n", file=file)
    return config.servers[0].plugin("webhook")


@pytest_twisted.ensureDeferred
async def test_corefile_webhook_block_starts_a_server_that_answers(store):
    """`webhook 127.0.0.1:0 { tls auto; path /inject }` from a Corefile serves reviews."""
    config = webhook_config("    webhook 127.0.0.1:0 {\n        tls auto\n        path /inject\n    }")
    server = WebhookServer(config, store, reactor)
    await server.start()
    client = Client(server.port, [server.ca_bundle])
    try:
        code, answer = await client.review(data("create-deployment-pod.json"), path="/inject")
        assert code == 200 and "patch" in answer["response"]
    finally:
        await client.close()
        await server.stop()


def test_corefile_webhook_defaults_to_every_address_on_8443_at_mutate():
    """Without an address or path: ":8443" and "/mutate"."""
    config = webhook_config("    webhook {\n        tls auto\n    }")
    assert (config.host, config.port, config.path) == ("", 8443, "/mutate")


@pytest.mark.parametrize(
    "address, host, port",
    [(":9443", "", 9443), ("127.0.0.1:9443", "127.0.0.1", 9443), ("[::1]:9443", "::1", 9443), ("10.0.0.5", "10.0.0.5", 8443)],
)
def test_corefile_webhook_address(address, host, port):
    """ADDRESS is [HOST]:PORT, with brackets around IPv6; a bare host keeps port 8443."""
    config = webhook_config(f"    webhook {address} {{\n        tls auto\n    }}")
    assert (config.host, config.port) == (host, port)


def test_corefile_webhook_certificate_files_are_relative_to_the_corefile(tmp_path):
    """tls CERT KEY with relative names resolve next to the Corefile."""
    config = webhook_config("    webhook {\n        tls certs/tls.crt certs/tls.key\n    }", file=str(tmp_path / "Corefile"))
    assert config.tls == CertificateFiles(str(tmp_path / "certs/tls.crt"), str(tmp_path / "certs/tls.key"))


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("    webhook", 3, "tls is required"),
        ("    webhook {\n        path /x\n    }", 3, "tls is required"),
        ("    webhook localhost:8443 {\n        tls auto\n    }", 3, "not an IP address"),
        ("    webhook :99999 {\n        tls auto\n    }", 3, "not a port number"),
        ("    webhook {\n        tls only-a-cert.pem\n    }", 4, "tls"),
        ("    webhook {\n        tls auto\n        path mutate\n    }", 5, "must be a URL path"),
        ("    webhook {\n        tls auto\n        path /healthz\n    }", 5, "health check"),
        ("    webhook {\n        tls auto\n        tls auto\n    }", 5, "given twice"),
        ("    webhook {\n        tls auto\n        timeout 5s\n    }", 5, "unknown property 'timeout'"),
        ("    webhook {\n        tls auto under_score.example\n    }", 4, "not a DNS name"),
    ],
    ids=["no block", "no tls", "host name", "port", "one file", "relative path", "healthz", "twice", "unknown", "bad name"],
)
def test_corefile_webhook_errors_name_the_file_and_line(body, line, message):
    """A wrong webhook directive stops start-up with Corefile:line and the reason."""
    with pytest.raises(CorefileError, match=message) as error:
        webhook_config(body)
    assert (error.value.file, error.value.line) == ("Corefile", line)
