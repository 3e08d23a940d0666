"""health, ready and prometheus, over real HTTP: what Kubernetes probes and Prometheus scrape.

Most tests run the Application in the test's reactor on 127.0.0.1 port 0,
fed by a manifests folder or by the fake API server; the lameduck test runs
`python -m discovery` and sends it SIGTERM, as the kubelet does.
"""

from __future__ import annotations

import pathlib
import re
import time

import dns.rcode
import dns.rdatatype
import pytest
import pytest_twisted
from twisted.internet import reactor

from discovery.app import Application
from discovery.config import load_text
from tests.fakeapi import FakeApiServer
from tests.fakeapi.objects import endpoint_slice, namespace, service
from tests.integration.live import WayfinderProcess, ask, http_get, poll_until, scrape
from tests.upstream.fake import FakeUpstream
from tests.upstream.requests import answer

WEB_IP = "10.96.7.7"
WEB_NAME = "web.default.svc.cluster.local."
WEB_MANIFEST = f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: default
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  clusterIP: {WEB_IP}
  ports:
  - name: http
    port: 80
"""


def manifests_folder(path: pathlib.Path) -> pathlib.Path:
    path.mkdir()
    (path / "web.yaml").write_text(WEB_MANIFEST)
    return path


def corefile(source: str, *, lameduck: int = 0, extra: tuple[str, ...] = ()) -> str:
    """One block on 127.0.0.1 port 0, with health, ready and prometheus sharing one listener."""
    health = f"health 127.0.0.1:0 {{\n        lameduck {lameduck}s\n    }}" if lameduck else "health 127.0.0.1:0"
    lines = [
        ".:0 {",
        "    bind 127.0.0.1",
        f"    {health}",
        "    ready 127.0.0.1:0",
        "    prometheus 127.0.0.1:0",
        "    kubernetes cluster.local {",
        f"        {source}",
        "    }",
        *(f"    {line}" for line in extra),
        "}",
    ]
    return "\n".join(lines) + "\n"


class Running:
    """An Application started in the test's reactor, and where to reach it."""

    def __init__(self, text: str, file: pathlib.Path):
        self.app = Application(load_text(text, str(file)), reactor)
        self.app.start()
        [server] = self.app.servers.values()
        self.dns = ("127.0.0.1", server.port)
        self.http = f"http://127.0.0.1:{self.app.http.bound_port(('127.0.0.1', 0))}"

    def get(self, path: str):
        return http_get(reactor, self.http + path)

    def metrics(self):
        return scrape(reactor, self.http + "/metrics")

    def ask(self, name: str, rdtype: str = "A"):
        return ask(reactor, self.dns, name, rdtype)


@pytest.fixture
def run(tmp_path):
    started = []

    def start(text: str) -> Running:
        running = Running(text, tmp_path / "Corefile")
        started.append(running)
        return running

    yield start
    for running in started:
        pytest_twisted.blockon(running.app.shutdown(lameduck=False))


@pytest.fixture
def api():
    server = FakeApiServer(reactor)
    server.cluster.create(namespace("default"))
    server.cluster.create(service("web", "default"))
    server.cluster.create(endpoint_slice("web", "default", addresses=("10.1.0.1",)))
    server.start()
    yield server
    pytest_twisted.blockon(server.stop())


def cluster_ip(api: FakeApiServer, name: str) -> str:
    return api.cluster.get("services", "default", name)["spec"]["clusterIP"]


def addresses(response) -> list[str]:
    return sorted(rdata.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for rdata in rrset)


def ready_is(code: int):
    return lambda result: isinstance(result, tuple) and result[0] == code


# --- health -------------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_health_answers_ok(run, tmp_path):
    """GET /health is 200 "OK" while the process runs, synced or not (CoreDNS: "We're always healthy")."""
    running = run(corefile(f"manifests {tmp_path / 'not-yet'}"))
    result = yield running.get("/health")
    assert result == (200, "OK")


# --- ready --------------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_ready_is_503_naming_kubernetes_until_the_manifests_folder_appears(run, tmp_path):
    """/ready names the plugin not ready (CoreDNS's body) until the cache has loaded, then answers 200 "OK"."""
    folder = tmp_path / "manifests"
    running = run(corefile(f"manifests {folder}"))
    before = yield running.get("/ready")
    assert before == (503, "kubernetes")
    manifests_folder(folder)
    after = yield poll_until(reactor, lambda: running.get("/ready"), ready_is(200))
    assert after == (200, "OK")


@pytest_twisted.inlineCallbacks
def test_when_ready_says_200_the_answers_for_existing_names_are_already_rendered(run, tmp_path):
    """No cold start: the Service's A and SRV answers are in the table before anyone asks."""
    running = run(corefile(f"manifests {manifests_folder(tmp_path / 'manifests')}"))
    yield poll_until(reactor, lambda: running.get("/ready"), ready_is(200))
    [server] = running.app.servers.values()
    questions = {key[:-6] for key in server.table.entries}
    assert {b"\x03web\x07default\x03svc\x07cluster\x05local", b"\x05_http\x04_tcp\x03web\x07default\x03svc\x07cluster\x05local"} <= questions


@pytest_twisted.inlineCallbacks
def test_ready_waits_for_the_first_list_from_the_api(run, api):
    """While the API server holds its list response, /ready is 503; once the list arrives, 200."""
    api.stall_lists()
    running = run(corefile(f"endpoint {api.url}"))
    yield api.next_request(lambda seen: seen.is_list)
    stalled = yield running.get("/ready")
    assert stalled == (503, "kubernetes")
    api.heal()
    after = yield poll_until(reactor, lambda: running.get("/ready"), ready_is(200))
    assert after == (200, "OK")


# --- the API going away ------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_an_api_outage_keeps_the_last_data_serving_and_ready(run, api):
    """Once synced, losing the API changes no answer: the Service still resolves (no NXDOMAIN) and /ready stays 200."""
    running = run(corefile(f"endpoint {api.url}"))
    yield poll_until(reactor, lambda: running.get("/ready"), ready_is(200))
    yield api.stop()
    response = yield running.ask(WEB_NAME)
    assert response.rcode() == dns.rcode.NOERROR and addresses(response) == [cluster_ip(api, "web")]
    still = yield running.get("/ready")
    assert still == (200, "OK")


@pytest_twisted.inlineCallbacks
def test_the_last_sync_gauge_follows_the_api_and_stops_during_an_outage(run, api):
    """wayfinder_cache_last_sync_timestamp_seconds is the wall-clock time of the last word from the API: it moves with a watch event and stands still while the API is away."""
    started = time.time()
    running = run(corefile(f"endpoint {api.url}"))
    yield poll_until(reactor, lambda: running.get("/ready"), ready_is(200))
    synced = (yield running.metrics()).value("wayfinder_cache_last_sync_timestamp_seconds", source=f"API {api.url}")
    assert started <= synced <= time.time()

    api.cluster.create(service("shop", "default"))
    yield poll_until(reactor, lambda: running.ask("shop.default.svc.cluster.local."),
                     lambda response: getattr(response, "answer", None))
    after_event = (yield running.metrics()).value("wayfinder_cache_last_sync_timestamp_seconds")
    assert after_event > synced

    yield api.stop()
    api.cluster.create(service("cart", "default"))
    unseen = yield running.ask("cart.default.svc.cluster.local.")
    assert unseen.rcode() == dns.rcode.NXDOMAIN
    during_outage = (yield running.metrics()).value("wayfinder_cache_last_sync_timestamp_seconds")
    assert during_outage == after_event


# --- prometheus ------------------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_dns_metrics_move_with_the_queries_sent(run, tmp_path):
    """Five answered and three unknown names move coredns_dns_requests_total and coredns_dns_responses_total by as much, with CoreDNS's labels.

    `zone` is the server block's zone (".") and `server` its listener, as in CoreDNS.
    """
    running = run(corefile(f"manifests {manifests_folder(tmp_path / 'manifests')}"))
    yield poll_until(reactor, lambda: running.get("/ready"), ready_is(200))
    server = f"dns://127.0.0.1:{running.dns[1]}"
    request_labels = dict(server=server, zone=".", view="", proto="udp", family="1", type="A")
    before = yield running.metrics()
    for _ in range(5):
        response = yield running.ask(WEB_NAME)
        assert addresses(response) == [WEB_IP]
    for _ in range(3):
        response = yield running.ask("nope.default.svc.cluster.local.")
        assert response.rcode() == dns.rcode.NXDOMAIN
    after = yield running.metrics()

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("coredns_dns_requests_total", **request_labels) == 8
    assert moved("coredns_dns_responses_total", server=server, zone=".", rcode="NOERROR",
                 plugin="kubernetes") == 5
    assert moved("coredns_dns_responses_total", server=server, zone=".", rcode="NXDOMAIN",
                 plugin="kubernetes") == 3
    assert moved("coredns_dns_request_duration_seconds_count", server=server, zone=".") == 8
    assert moved("coredns_dns_request_size_bytes_count", server=server, zone=".", proto="udp") == 8
    assert moved("coredns_dns_response_size_bytes_count", server=server, zone=".", proto="udp") == 8
    assert after.value("coredns_build_info") == 1


@pytest_twisted.inlineCallbacks
def test_plugin_enabled_names_the_handlers_of_blocks_with_prometheus(run, tmp_path):
    """coredns_plugin_enabled is 1 for each plugin in the query path of a block with prometheus, per zone, and names no other directive (CoreDNS's conf.Handlers())."""
    text = corefile(f"manifests {manifests_folder(tmp_path / 'manifests')}", extra=("cache 30", "log"))
    # A second block on the same listener, without prometheus: not reported.
    running = run(text + "example.org:0 {\n    bind 127.0.0.1\n    errors\n}\n")
    scraped = yield running.metrics()
    enabled = {(labels["zone"], labels["name"]) for labels in scraped.labels("coredns_plugin_enabled")}
    assert enabled == {(".", name) for name in ("prometheus", "log", "cache", "kubernetes")}
    server = {labels["server"] for labels in scraped.labels("coredns_plugin_enabled")}
    assert server == {f"dns://127.0.0.1:{running.dns[1]}"}


@pytest_twisted.inlineCallbacks
def test_no_created_series_are_exported(run, tmp_path):
    """CoreDNS has no *_created series: after answering, no line of /metrics names one (prometheus_client's are off)."""
    running = run(corefile(f"manifests {manifests_folder(tmp_path / 'manifests')}", extra=["cache 30"]))
    yield poll_until(reactor, lambda: running.get("/ready"), ready_is(200))
    yield running.ask(WEB_NAME)
    code, text = yield running.get("/metrics")
    assert code == 200
    counters = re.findall(r"^# TYPE (\S+) counter$", text, re.M)
    assert "coredns_dns_requests_total" in counters
    assert re.findall(r"^\w+_created\b.*$", text, re.M) == []


@pytest_twisted.inlineCallbacks
def test_panics_total_is_exported_without_labels(run, tmp_path):
    """coredns_panics_total is scraped from the start, 0 while nothing failed (plugin/metrics/vars/vars.go, Panic)."""
    running = run(corefile(f"manifests {manifests_folder(tmp_path / 'manifests')}"))
    scraped = yield running.metrics()
    assert scraped.labels("coredns_panics_total") == [{}]
    assert scraped.value("coredns_panics_total") == 0


@pytest_twisted.inlineCallbacks
def test_cache_and_forward_metrics_move_with_outside_queries(run, tmp_path):
    """An outside name asked twice is one cache miss with one upstream exchange, then one cache hit, on CoreDNS's cache and proxy metrics."""
    upstream = FakeUpstream(reactor, lambda query, proto: answer(query, f"{query.question[0].name} 30 IN A 192.0.2.1"))
    upstream.start()
    try:
        running = run(corefile(
            f"manifests {manifests_folder(tmp_path / 'manifests')}",
            extra=("cache 30", f"forward . 127.0.0.1:{upstream.port}"),
        ))
        server = f"dns://127.0.0.1:{running.dns[1]}"
        before = yield running.metrics()
        for _ in range(2):
            response = yield running.ask("www.example.test.")
            assert addresses(response) == ["192.0.2.1"]
        after = yield running.metrics()
    finally:
        yield upstream.stop()

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    cache = dict(server=server, zones=".", view="")
    upstream_labels = dict(proxy_name="forward", to=f"127.0.0.1:{upstream.port}")
    assert moved("coredns_cache_requests_total", **cache) == 2
    assert moved("coredns_cache_misses_total", **cache) == 1
    assert moved("coredns_cache_hits_total", type="success", **cache) == 1
    assert after.value("coredns_cache_entries", type="success", **cache) == 1
    assert moved("coredns_proxy_request_duration_seconds_count", rcode="NOERROR", **upstream_labels) == 1
    assert moved("coredns_proxy_conn_cache_misses_total", proto="udp", **upstream_labels) == 1
    assert moved("coredns_dns_responses_total", server=server, zone=".", rcode="NOERROR") == 2


@pytest_twisted.inlineCallbacks
def test_answers_reused_from_the_table_still_count_as_cache_hits(run, tmp_path):
    """Queries the server answers from its table for the cache reach coredns_cache_hits_total within a second."""
    upstream = FakeUpstream(reactor, lambda query, proto: answer(query, f"{query.question[0].name} 30 IN A 192.0.2.1"))
    upstream.start()
    try:
        running = run(corefile(
            f"manifests {manifests_folder(tmp_path / 'manifests')}",
            extra=("cache 30", f"forward . 127.0.0.1:{upstream.port}"),
        ))
        cache = dict(server=f"dns://127.0.0.1:{running.dns[1]}", zones=".", view="")
        before = yield running.metrics()
        for _ in range(5):
            yield running.ask("www.example.test.")
        expected = before.value("coredns_cache_hits_total", type="success", **cache) + 4
        yield poll_until(
            reactor, running.metrics, lambda scrape: scrape.value("coredns_cache_hits_total", type="success", **cache) == expected
        )
    finally:
        yield upstream.stop()


# --- lameduck ---------------------------------------------------------------------------------------

LAMEDUCK_SECONDS = 3


@pytest.fixture
def process():
    started = []

    def spawn(corefile_path) -> WayfinderProcess:
        child = WayfinderProcess.spawn(reactor, corefile_path)
        started.append(child)
        return child

    yield spawn
    for child in started:
        pytest_twisted.blockon(child.kill())


@pytest.mark.slow
@pytest_twisted.inlineCallbacks
def test_sigterm_reports_not_ready_at_once_answers_through_lameduck_then_exits_0(process, tmp_path):
    """On SIGTERM /ready turns 503 "Shutting down" while /health stays 200 and DNS keeps answering; after lameduck the process exits 0."""
    path = tmp_path / "Corefile"
    path.write_text(corefile(f"manifests {manifests_folder(tmp_path / 'manifests')}", lameduck=LAMEDUCK_SECONDS))
    child = process(path)
    yield child.wait_for(r"HTTP endpoints")
    http = f"http://127.0.0.1:{child.http_port}"
    server = ("127.0.0.1", child.dns_port)
    yield poll_until(reactor, lambda: http_get(reactor, http + "/ready"), ready_is(200))

    child.signal("TERM")
    stopping = yield poll_until(reactor, lambda: http_get(reactor, http + "/ready"), ready_is(503), timeout=5)
    assert stopping == (503, "Shutting down")
    health = yield http_get(reactor, http + "/health")
    assert health == (200, "OK")
    response = yield ask(reactor, server, WEB_NAME)
    assert addresses(response) == [WEB_IP]
    yield child.wait_for(rf"Going into lameduck mode for {LAMEDUCK_SECONDS}s")
    code = yield child.ended
    assert code == 0, child.log


# --- webhook:// blocks ---------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_a_webhook_block_serves_the_webhook_and_no_dns(tmp_path):
    """A webhook:// block opens the webhook and the endpoints, and no DNS listener at all."""
    text = (
        "webhook://cluster.local {\n"
        "    ready 127.0.0.1:0\n"
        "    kubernetes {\n"
        f"        manifests {manifests_folder(tmp_path / 'manifests')}\n"
        "    }\n"
        "    webhook 127.0.0.1:0 {\n"
        "        tls auto\n"
        "    }\n"
        "}\n"
    )
    app = Application(load_text(text, str(tmp_path / "Corefile")), reactor)
    app.start()
    try:
        assert app.servers == {}
        (webhook,) = app.side_servers.values()
        assert webhook.port > 0
    finally:
        yield app.shutdown(lameduck=False)
