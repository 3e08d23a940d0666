"""The API source against the wire-level fake API server, through the official client.

Every test runs a real FakeApiServer on 127.0.0.1 and a real ApiSource whose
worker threads speak HTTP to it; the Store is read on the reactor thread.
Waiting is on Deferreds (Store changes, requests the server sees, failures
the backoff is asked about), each with a timeout so that a failure cannot
hang.
"""

from __future__ import annotations

import copy
import datetime
import logging
import threading
import time

import pytest
import pytest_twisted
import urllib3
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor, threads

from discovery.cache.config import SourceConfig, TLSFiles
from discovery.cache.informer import ApiSource, Backoff, Timeouts, client_configuration
from discovery.cache.selectors import LabelSelector
from discovery.cache.store import Store
from tests.fakeapi import Cluster, FakeApiServer
from tests.fakeapi.cluster import RESOURCES, with_type
from tests.fakeapi.objects import endpoint_slice, namespace, pod, service
from tests.fakeapi.tls import make_pki
from tests.integration.dnsserver import until, within

QUICK = Backoff(initial=0.01, cap=0.05)
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


# --- helpers -----------------------------------------------------------------------


class CountingBackoff:
    """A quick backoff that counts the informer's failures, so that a test can wait for them."""

    def __init__(self, delay: float = 0.01):
        self.count = 0
        self._delay = delay
        self._waiting: list[tuple[int, defer.Deferred]] = []

    def delay(self, failures: int) -> float:
        reactor.callFromThread(self._failed)
        return self._delay

    def _failed(self) -> None:
        self.count += 1
        waiting, self._waiting = self._waiting, []
        for target, d in waiting:
            if d.called:
                continue
            if self.count >= target:
                d.callback(None)
            else:
                self._waiting.append((target, d))

    def reached(self, total: int) -> defer.Deferred:
        """Fires once `total` failures have been counted."""
        if self.count >= total:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append((total, d))
        return within(d)


def client(url: str, **settings) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    configuration.host = url
    for name, value in settings.items():
        setattr(configuration, name, value)
    return k8s.ApiClient(configuration)


def edited(cluster: Cluster, plural: str, namespace: str | None, name: str) -> dict:
    """A copy of a stored object as a manifest, to change and write back."""
    return with_type(RESOURCES[plural], copy.deepcopy(cluster.get(plural, namespace, name)))


def slice_name(service_name: str, namespace: str = "default") -> str:
    return endpoint_slice(service_name, namespace)["metadata"]["name"]


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture
def cluster() -> Cluster:
    cluster = Cluster()
    for name in ("default", "kube-system"):
        cluster.create(namespace(name))
    return cluster


@pytest_twisted.async_yield_fixture
async def api(cluster):
    server = FakeApiServer(reactor, cluster)
    server.start()
    yield server
    await server.stop()


@pytest.fixture
def pki(tmp_path):
    return make_pki(str(tmp_path))


@pytest_twisted.async_yield_fixture
async def tls_api(cluster, pki):
    server = FakeApiServer(reactor, cluster, tls=pki.server_tls(require_client_cert=True))
    server.start()
    yield server
    await server.stop()


@pytest_twisted.async_yield_fixture
async def sources():
    """Makes ApiSources with a quick backoff; stops every one afterwards."""
    made: list[ApiSource] = []

    def make(config: SourceConfig, store: Store | None = None, **kwargs) -> ApiSource:
        kwargs.setdefault("backoff", QUICK)
        source = ApiSource(config, store if store is not None else Store(), reactor, **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        await within(source.stop())


async def started(source: ApiSource) -> ApiSource:
    source.start()
    await within(source.synced)
    return source


# --- syncing -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_first_lists_fill_the_store_and_fire_synced(api, cluster, sources):
    """synced fires once Services, EndpointSlices and Namespaces are all in the Store."""
    cluster.create(namespace("prod"))
    cluster.create(service("web", "prod"))
    cluster.create(endpoint_slice("web", "prod", addresses=("10.1.0.1", "10.1.0.2")))
    cluster.create(service("db", headless=True))
    store = Store()
    source = sources(SourceConfig(endpoint=api.url), store)
    assert not source.has_synced
    await started(source)
    assert source.has_synced
    assert sorted(store.keys("Service")) == [("default", "db"), ("prod", "web")]
    (eps,) = store.slices_for("prod", "web")
    assert [e.addresses for e in eps.endpoints] == [("10.1.0.1",), ("10.1.0.2",)]
    assert sorted(ns.name for ns in store.namespaces()) == ["default", "kube-system", "prod"]


@pytest_twisted.ensureDeferred
async def test_large_lists_are_read_in_pages_of_500(api, cluster, sources):
    """1,201 Services take three pages: limit=500, then the continue token of the page before."""
    for i in range(1201):
        cluster.create(service(f"svc-{i}"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    lists = [r for r in api.requests if r.is_list and r.plural == "services"]
    assert [r.query.get("limit") for r in lists] == ["500", "500", "500"]
    assert "continue" not in lists[0].query
    assert all(r.query.get("continue") for r in lists[1:])
    assert store.count("Service") == 1201


@pytest_twisted.ensureDeferred
async def test_synced_for_fires_for_each_watched_kind(api, sources):
    """Each watched kind has its own synced Deferred."""
    source = sources(SourceConfig(endpoint=api.url))
    source.start()
    await within(defer.gatherResults([source.synced_for(k) for k in ("Service", "EndpointSlice", "Namespace")]))


def test_synced_for_an_unwatched_kind_is_an_error():
    """Asking for Pods when they are not watched is a mistake, said at once."""
    source = ApiSource(SourceConfig(endpoint="http://127.0.0.1:9"), Store(), reactor)
    with pytest.raises(ValueError, match="Pod is not watched"):
        source.synced_for("Pod")


@pytest_twisted.ensureDeferred
async def test_last_sync_is_the_time_of_the_latest_list_or_event(api, cluster, sources):
    """last_sync (for the last-sync gauge) moves on with lists and with watch events."""
    store = Store()
    before = time.time()
    source = await started(sources(SourceConfig(endpoint=api.url), store))
    at_sync = source.last_sync
    assert before <= at_sync <= time.time()
    cluster.create(service("web"))
    await until(store, lambda s: s.service("default", "web") is not None)
    assert source.last_sync > at_sync


# --- watching ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_objects_written_through_the_api_reach_the_store(api, sources):
    """Creates, replaces and deletes made with the official client over the namespaced paths arrive."""
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    writer = client(api.url)
    core = k8s.CoreV1Api(writer)
    try:
        await threads.deferToThread(core.create_namespaced_service, "default", service("web"))
        await until(store, lambda s: s.service("default", "web") is not None)
        body = service("web", ports=(("https", 443),))
        await threads.deferToThread(core.replace_namespaced_service, "web", "default", body)
        await until(store, lambda s: [p.port for p in s.service("default", "web").ports] == [443])
        await threads.deferToThread(core.delete_namespaced_service, "web", "default")
        await until(store, lambda s: s.service("default", "web") is None)
    finally:
        writer.close()


@pytest_twisted.ensureDeferred
async def test_a_cut_watch_resumes_from_the_last_version_read_without_relisting(api, cluster, sources):
    """After a TCP reset the watch resumes from the last event's resourceVersion; nothing is listed again."""
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    created = cluster.create(service("web"))
    await until(store, lambda s: s.service("default", "web") is not None)
    resumed = api.next_request(lambda r: r.is_watch and r.plural == "services")
    since = len(api.requests)
    api.cut_streams()
    request = await within(resumed)
    assert request.query["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert not [r for r in api.requests[since:] if r.is_list and r.plural == "services"]
    cluster.create(service("api"))
    await until(store, lambda s: s.service("default", "api") is not None)


@pytest_twisted.ensureDeferred
async def test_an_expired_version_relists_and_deletes_what_vanished(api, cluster, sources):
    """A resume from a compacted version gets 410: the source relists and drops what was deleted meanwhile."""
    cluster.create(service("stays"))
    cluster.create(service("goes"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    await api.stop()
    cluster.delete("services", "default", "goes")
    cluster.create(service("new"))
    api.compact()
    restart = len(api.requests)
    api.start()
    await until(store, lambda s: s.service("default", "goes") is None and s.service("default", "new") is not None)
    assert store.service("default", "stays") is not None
    assert any(r.is_list and r.plural == "services" for r in api.requests[restart:])


@pytest_twisted.ensureDeferred
async def test_bookmarks_advance_the_version_a_watch_resumes_from(api, cluster, sources):
    """A quiet watch resumes from its last BOOKMARK's version, so compaction behind it costs no relist."""
    cluster.create(service("web"))
    store = Store()
    watching = api.next_request(lambda r: r.is_watch and r.plural == "services")
    await started(sources(SourceConfig(endpoint=api.url), store))
    await within(watching)
    # A change elsewhere moves the cluster's version on; the Services watch sees none of it.
    cluster.create(namespace("elsewhere"))
    await until(store, lambda s: s.namespace("elsewhere") is not None)
    current = str(cluster.resource_version)
    api.emit_bookmarks()
    api.compact()
    since = len(api.requests)
    resumed = api.next_request(lambda r: r.is_watch and r.plural == "services")
    api.end_streams()
    request = await within(resumed)
    assert request.query["resourceVersion"] == current
    assert not [r for r in api.requests[since:] if r.is_list and r.plural == "services"]


@pytest_twisted.ensureDeferred
async def test_watches_ask_for_bookmarks_and_a_timeout(api, sources):
    """Every watch resumes from a version with allowWatchBookmarks=true and a server-side timeoutSeconds."""
    watches = [
        api.next_request(lambda r, plural=plural: r.is_watch and r.plural == plural)
        for plural in ("services", "endpointslices", "namespaces")
    ]
    sources(SourceConfig(endpoint=api.url)).start()
    for request in await within(defer.gatherResults(watches)):
        assert request.query["allowWatchBookmarks"] == "true"
        assert request.query["resourceVersion"].isdigit()
        assert 300 <= int(request.query["timeoutSeconds"]) <= 600


# --- outages -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_api_that_is_down_at_start_is_retried_until_it_answers(api, cluster, sources):
    """Connection refused at start is backed off and retried; synced fires once the API is up."""
    cluster.create(service("web"))
    await api.stop()
    backoff = CountingBackoff()
    store = Store()
    source = sources(SourceConfig(endpoint=api.url), store, backoff=backoff)
    source.start()
    await backoff.reached(3)
    assert not source.has_synced
    api.start()
    await within(source.synced)
    assert store.service("default", "web") is not None


@pytest_twisted.ensureDeferred
async def test_an_api_that_goes_away_after_sync_leaves_the_store_serving(api, cluster, sources):
    """While the API is away the Store keeps every object; when it is back, changes flow again."""
    cluster.create(service("web"))
    cluster.create(endpoint_slice("web"))
    backoff = CountingBackoff()
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store, backoff=backoff))
    generation = store.generation
    await api.stop()
    await backoff.reached(backoff.count + 6)
    assert store.generation == generation
    assert store.service("default", "web") is not None
    assert len(list(store.slices_for("default", "web"))) == 1
    api.start()
    cluster.create(service("later"))
    await until(store, lambda s: s.service("default", "later") is not None)


@pytest_twisted.ensureDeferred
async def test_lists_failing_with_503_are_retried_until_they_succeed(api, cluster, sources):
    """HTTP errors on lists are backed off and retried, not fatal."""
    cluster.create(service("web"))
    api.fail_lists(503)
    backoff = CountingBackoff()
    store = Store()
    source = sources(SourceConfig(endpoint=api.url), store, backoff=backoff)
    source.start()
    await backoff.reached(3)
    assert not source.has_synced
    api.heal()
    await within(source.synced)
    assert store.service("default", "web") is not None


@pytest_twisted.ensureDeferred
async def test_a_stalled_list_times_out_and_is_retried(api, cluster, sources):
    """A list that never answers ends at the read timeout and is tried again."""
    cluster.create(service("web"))
    api.stall_lists()
    backoff = CountingBackoff()
    store = Store()
    source = sources(SourceConfig(endpoint=api.url), store, backoff=backoff,
                     timeouts=Timeouts(connect=1.0, read=0.3))
    source.start()
    await backoff.reached(1)
    api.heal()
    await within(source.synced)
    assert store.service("default", "web") is not None


@pytest_twisted.ensureDeferred
async def test_stop_ends_idle_watches_promptly(api, sources):
    """stop() shuts down watches that would otherwise wait minutes for an event; no worker is left."""
    source = await started(sources(SourceConfig(endpoint=api.url)))
    await within(source.stop(), 5.0)
    assert not [t for t in threading.enumerate() if t.name.startswith("wayfinder-informer-")]


# --- what is watched -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_label_selector_is_applied_by_the_api(api, cluster, sources):
    """`labels` goes to the API as labelSelector on Services and EndpointSlices; only matches arrive."""
    cluster.create(service("web", labels={"expose": "yes"}))
    cluster.create(service("db", labels={"expose": "no"}))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, labels=LabelSelector.parse("expose=yes")), store))
    assert list(store.keys("Service")) == [("default", "web")]
    selectors = {r.query.get("labelSelector") for r in api.requests if r.plural in ("services", "endpointslices")}
    assert selectors == {"expose=yes"}
    namespace_requests = [r for r in api.requests if r.plural == "namespaces"]
    assert namespace_requests and not any("labelSelector" in r.query for r in namespace_requests)


@pytest_twisted.ensureDeferred
async def test_an_object_relabelled_out_of_the_selector_leaves_the_store(api, cluster, sources):
    """The API reports an object that stops matching as deleted; the Store drops it."""
    cluster.create(service("web", labels={"expose": "yes"}))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, labels=LabelSelector.parse("expose=yes")), store))
    web = edited(cluster, "services", "default", "web")
    web["metadata"]["labels"]["expose"] = "no"
    cluster.update(web)
    await until(store, lambda s: s.service("default", "web") is None)


@pytest_twisted.ensureDeferred
async def test_namespaces_option_lists_each_namespace_on_its_own_path(api, cluster, sources):
    """With `namespaces a b`, Services are read from /api/v1/namespaces/{a,b}/services only."""
    for ns in ("a", "b", "c"):
        cluster.create(namespace(ns))
        cluster.create(service("web", ns))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, namespaces=("a", "b")), store))
    assert sorted(store.keys("Service")) == [("a", "web"), ("b", "web")]
    assert {r.path for r in api.requests if r.plural == "services"} == {
        "/api/v1/namespaces/a/services", "/api/v1/namespaces/b/services"}
    assert store.namespace("c") is not None


@pytest_twisted.ensureDeferred
async def test_namespace_labels_select_namespaces_at_the_api(api, cluster, sources):
    """`namespace_labels` goes to the API as the Namespaces' labelSelector."""
    cluster.create(namespace("team-a", labels={"team": "a"}))
    cluster.create(namespace("team-b", labels={"team": "b"}))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, namespace_labels=LabelSelector.parse("team=a")), store))
    assert [ns.name for ns in store.namespaces()] == ["team-a"]


@pytest_twisted.ensureDeferred
async def test_pods_are_not_watched_unless_asked(api, cluster, sources):
    """Without `pods verified`, no Pod is requested or stored."""
    cluster.create(pod("web-0"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    assert store.count("Pod") == 0
    assert not [r for r in api.requests if r.plural == "pods"]


@pytest_twisted.ensureDeferred
async def test_pods_verified_keeps_only_live_pods(api, cluster, sources):
    """Finished Pods are filtered at the API and terminating ones are treated as gone."""
    cluster.create(pod("running", ip="10.1.0.1"))
    cluster.create(pod("done", ip="10.1.0.2", phase="Succeeded"))
    cluster.create(pod("leaving", ip="10.1.0.3", deleting=True))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, watch_pods=True), store))
    assert list(store.keys("Pod")) == [("default", "running")]
    assert [p.name for p in store.pods_by_ip("10.1.0.1")] == ["running"]


@pytest_twisted.ensureDeferred
async def test_a_pod_that_finishes_leaves_the_store(api, cluster, sources):
    """A Pod moving to Succeeded stops matching the field selector: the API reports it deleted."""
    cluster.create(pod("job", ip="10.1.0.5"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, watch_pods=True), store))
    job = edited(cluster, "pods", "default", "job")
    job["status"]["phase"] = "Succeeded"
    cluster.update(job)
    await until(store, lambda s: s.pod("default", "job") is None)


@pytest_twisted.ensureDeferred
async def test_a_pod_that_starts_terminating_leaves_the_store(api, cluster, sources):
    """A deletionTimestamp on a watched Pod removes it, before the Pod object is gone."""
    cluster.create(pod("web-0", ip="10.1.0.6"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, watch_pods=True), store))
    web = edited(cluster, "pods", "default", "web-0")
    web["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    cluster.update(web)
    await until(store, lambda s: s.pod("default", "web-0") is None)


@pytest_twisted.ensureDeferred
async def test_noendpoints_does_not_watch_endpointslices(api, cluster, sources):
    """With EndpointSlices off, none is requested, and synced still fires."""
    cluster.create(endpoint_slice("web"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url, watch_endpoints=False), store))
    assert store.count("EndpointSlice") == 0
    assert not [r for r in api.requests if r.plural == "endpointslices"]


@pytest_twisted.ensureDeferred
async def test_slices_of_a_service_scaled_to_zero_are_kept_without_endpoints(api, cluster, sources):
    """A slice with "endpoints": null is stored with no endpoints (the Service exists, with no backends)."""
    cluster.create(service("idle"))
    cluster.create(endpoint_slice("idle", addresses=()))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    (eps,) = store.slices_for("default", "idle")
    assert eps.endpoints == ()


# --- bad objects ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_invalid_update_keeps_the_previous_version_serving(api, cluster, sources, caplog):
    """An update the converter rejects is skipped and logged once; the last good version stays."""
    caplog.set_level(logging.WARNING, logger="wayfinder.cache.informer")
    cluster.create(service("web"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    good = store.service("default", "web")
    web = edited(cluster, "services", "default", "web")
    web["spec"]["ports"][0]["port"] = 70000
    cluster.update(web)
    # A later event on the same watch proves the bad one has been read.
    cluster.create(service("after"))
    await until(store, lambda s: s.service("default", "after") is not None)
    assert store.service("default", "web") == good
    rejections = [r for r in caplog.records if "Service default/web" in r.getMessage()]
    assert len(rejections) == 1
    assert "70000" in rejections[0].getMessage()


@pytest_twisted.ensureDeferred
async def test_an_invalid_object_in_a_list_is_skipped(api, cluster, sources, caplog):
    """A list with one bad object syncs everything else and names the bad one."""
    caplog.set_level(logging.WARNING, logger="wayfinder.cache.informer")
    bad = service("bad")
    bad["spec"]["type"] = "Bogus"
    cluster.create(bad)
    cluster.create(service("good"))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store))
    assert list(store.keys("Service")) == [("default", "good")]
    assert "Service default/bad" in caplog.text


# --- metrics -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_watched_slice_changes_observe_dns_programming_latency(api, cluster, sources):
    """A slice change from the watch is observed from its trigger time; slices met in the first list are not."""
    registry = CollectorRegistry()
    cluster.create(service("web"))
    cluster.create(endpoint_slice("web", annotations={TRIGGER: "2020-01-01T00:00:00Z"}))
    store = Store()
    await started(sources(SourceConfig(endpoint=api.url), store, registry=registry))
    count = "coredns_kubernetes_dns_programming_duration_seconds_count"
    assert registry.get_sample_value(count, {"service_kind": "cluster_ip"}) is None
    hour_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    eps = edited(cluster, "endpointslices", "default", slice_name("web"))
    eps["endpoints"][0]["addresses"] = ["10.1.0.9"]
    eps["metadata"]["annotations"][TRIGGER] = hour_ago.isoformat().replace("+00:00", "Z")
    cluster.update(eps)
    await until(store, lambda s: [e.addresses for e in s.slice("default", slice_name("web")).endpoints]
                == [("10.1.0.9",)])
    assert registry.get_sample_value(count, {"service_kind": "cluster_ip"}) == 1
    observed = registry.get_sample_value(
        "coredns_kubernetes_dns_programming_duration_seconds_sum", {"service_kind": "cluster_ip"})
    assert observed >= 3600


# --- connecting ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_endpoint_with_tls_files_syncs_with_a_client_certificate(tls_api, cluster, pki, sources):
    """`endpoint https://…` with `tls CERT KEY CACERT` verifies the server and presents the client certificate."""
    cluster.create(service("web"))
    store = Store()
    config = SourceConfig(endpoint=tls_api.url, tls=TLSFiles(pki.client_cert, pki.client_key, pki.ca_cert))
    await started(sources(config, store))
    assert store.service("default", "web") is not None


@pytest_twisted.ensureDeferred
async def test_kubeconfig_context_syncs_against_its_cluster(tls_api, cluster, pki, sources, tmp_path):
    """`kubeconfig FILE CONTEXT` connects with that context's server, CA and client certificate."""
    cluster.create(service("web"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(pki.kubeconfig(tls_api.url))
    store = Store()
    await started(sources(SourceConfig(kubeconfig=str(kubeconfig), context="fake"), store))
    assert store.service("default", "web") is not None


@pytest_twisted.ensureDeferred
async def test_in_cluster_service_account_token_is_presented(cluster, pki, sources, tmp_path):
    """In-cluster, the mounted token goes to the API as a bearer token and its CA verifies the server."""
    cluster.create(service("web"))
    server = FakeApiServer(reactor, cluster, tls=pki.server_tls(require_client_cert=False), token="sa-token")
    server.start()
    try:
        token = tmp_path / "token"
        token.write_text("sa-token")
        configuration = client_configuration(
            SourceConfig(),
            environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)},
            token_file=str(token),
            ca_file=pki.ca_cert,
        )
        store = Store()
        source = sources(SourceConfig(), store, api_client=k8s.ApiClient(configuration))
        await started(source)
        assert store.service("default", "web") is not None
        await within(source.stop())
    finally:
        await server.stop()


# --- the fake server, as the official client sees it -----------------------------------


@pytest_twisted.ensureDeferred
async def test_fake_answers_a_too_old_watch_as_the_client_expects(api, cluster):
    """A watch from a compacted version gets 200 then an ERROR 410, which the client's Watch raises as ApiException(410)."""
    cluster.create(service("web"))
    api.compact()
    reader = client(api.url)

    def watch_from_the_past():
        core = k8s.CoreV1Api(reader)
        for _ in k8s_watch.Watch().stream(core.list_service_for_all_namespaces, resource_version="1",
                                          timeout_seconds=5):
            pass

    try:
        with pytest.raises(ApiException) as raised:
            await within(threads.deferToThread(watch_from_the_past))
    finally:
        reader.close()
    assert raised.value.status == 410
    assert [r.query.get("watch") for r in api.requests] == ["true"]


@pytest_twisted.ensureDeferred
async def test_fake_cuts_a_watch_with_a_reset_the_client_sees_as_protocol_error(api, cluster):
    """cut_streams() resets the TCP connection: urllib3 raises ProtocolError, not ApiException."""
    reader = client(api.url, retries=False)
    open_stream = defer.Deferred()

    def watch_until_cut():
        core = k8s.CoreV1Api(reader)
        response = core.list_namespace(watch=True, resource_version=str(cluster.resource_version),
                                       _preload_content=False)
        reactor.callFromThread(open_stream.callback, None)
        try:
            for _ in response.stream(amt=None):
                pass
        except urllib3.exceptions.ProtocolError as error:
            return error
        finally:
            response.release_conn()

    result = threads.deferToThread(watch_until_cut)
    try:
        await within(open_stream)
        api.cut_streams()
        error = await within(result)
    finally:
        reader.close()
    assert isinstance(error, urllib3.exceptions.ProtocolError)
