"""ManifestSource on real files: load, reload on change, keep the last good objects."""

from __future__ import annotations

import ipaddress
import logging
import os
import pathlib
import textwrap
from typing import Callable

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock

from discovery.cache.config import ManifestLimits, SourceConfig
from discovery.cache.manifests import ManifestSource
from discovery.cache.objects import Namespace, ServicePort
from discovery.cache.selectors import LabelSelector
from discovery.cache.store import Change, Store
from tests.integration import dnsserver

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "manifests" / "examples"
LOGGER = "wayfinder.cache.manifests"
#: Seconds a test waits for the Store before it fails: the contract is 1 s.
TIMEOUT = 5.0
POLL_SECONDS = 0.02


def until(store: Store, predicate: Callable[[Store], bool]) -> defer.Deferred:
    """dnsserver.until with this module's TIMEOUT."""
    return dnsserver.until(store, predicate, TIMEOUT)


def yaml_text(source: str) -> str:
    return textwrap.dedent(source).lstrip("\n")


def service_yaml(name: str, namespace: str = "default", port: int = 80, labels: str = "{}") -> str:
    return yaml_text(f"""
        apiVersion: v1
        kind: Service
        metadata:
          name: {name}
          namespace: {namespace}
          labels: {labels}
        spec:
          clusterIP: None
          ports:
          - name: http
            port: {port}
    """)


def recorder(store: Store) -> list[Change]:
    changes: list[Change] = []
    store.subscribe(changes.append)
    return changes


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "manifests"
    path.mkdir()
    return path


@pytest.fixture
def start(folder: pathlib.Path, request) -> Callable[..., tuple[ManifestSource, Store]]:
    """Starts a ManifestSource on `folder` (or another folder) with the real reactor; stopped after the test."""

    def start_source(config: SourceConfig | None = None, clock=reactor) -> tuple[ManifestSource, Store]:
        store = Store()
        source = ManifestSource(
            config or SourceConfig(manifests=str(folder), watch_pods=True),
            store,
            clock,
            poll_interval=POLL_SECONDS,
        )
        source.start()
        request.addfinalizer(source.stop)
        return source, store

    return start_source


def synced(source: ManifestSource) -> defer.Deferred:
    return source.synced.addTimeout(TIMEOUT, reactor)


def messages(caplog, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


# --- the first load ---------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_the_first_load_holds_every_kind(folder, start):
    """Services, EndpointSlices, Endpoints, Pods and Namespaces are in the Store once synced fires."""
    (folder / "all.yaml").write_text(yaml_text("""
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: cart
          namespace: shop
        spec:
          clusterIP: 10.96.10.10
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: cart-abc
          namespace: shop
          labels:
            kubernetes.io/service-name: cart
        addressType: IPv4
        endpoints:
        - addresses: [10.244.0.7]
        ---
        apiVersion: v1
        kind: Endpoints
        metadata:
          name: legacy
          namespace: shop
        subsets:
        - addresses:
          - ip: 10.244.0.8
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: cart-0
          namespace: shop
        status:
          phase: Running
          podIP: 10.244.0.7
    """))
    source, store = start()
    yield synced(source)
    assert source.has_synced
    assert store.service("shop", "cart").cluster_ips == ("10.96.10.10",)
    assert [s.name for s in store.slices_for("shop", "cart")] == ["cart-abc"]
    assert [e.addresses for s in store.slices_for("shop", "legacy") for e in s.endpoints] == [("10.244.0.8",)]
    assert store.pod("shop", "cart-0").ips == ("10.244.0.7",)
    assert store.namespace("shop") is not None


@pytest_twisted.inlineCallbacks
def test_list_kinds_are_loaded(folder, start):
    """The items of a v1 List and of a typed ServiceList reach the Store."""
    (folder / "list.yaml").write_text(yaml_text("""
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata:
            name: from-list
          spec:
            clusterIP: None
        ---
        apiVersion: v1
        kind: ServiceList
        items:
        - metadata:
            name: from-service-list
          spec:
            clusterIP: None
    """))
    source, store = start()
    yield synced(source)
    assert set(store.services_in("default")) == {"from-list", "from-service-list"}


@pytest_twisted.inlineCallbacks
def test_json_files_are_loaded(folder, start):
    """A .json manifest is read like a YAML one."""
    (folder / "svc.json").write_text(
        '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "json-svc"},\n'
        ' "spec": {"clusterIP": "None"}}\n'
    )
    source, store = start()
    yield synced(source)
    assert store.service("default", "json-svc") is not None


@pytest_twisted.inlineCallbacks
def test_sub_folders_are_read_and_hidden_or_foreign_files_are_not(folder, start):
    """Files in nested folders load; hidden files and folders and other suffixes are skipped."""
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "a" / "b" / "deep.yml").write_text(service_yaml("deep"))
    (folder / ".hidden.yaml").write_text(service_yaml("hidden-file"))
    (folder / ".git").mkdir()
    (folder / ".git" / "x.yaml").write_text(service_yaml("hidden-folder"))
    (folder / "notes.txt").write_text(service_yaml("text-file"))
    source, store = start()
    yield synced(source)
    assert set(store.services_in("default")) == {"deep"}


@pytest_twisted.inlineCallbacks
def test_legacy_endpoints_become_endpoint_slices(folder, start):
    """A v1 Endpoints is served as EndpointSlices of its Service, per address family."""
    (folder / "ep.yaml").write_text(yaml_text("""
        apiVersion: v1
        kind: Endpoints
        metadata:
          name: db
        subsets:
        - addresses:
          - ip: 192.0.2.1
          - ip: 2001:db8::1
          notReadyAddresses:
          - ip: 192.0.2.2
          ports:
          - name: sql
            port: 5432
    """))
    source, store = start()
    yield synced(source)
    slices = sorted(store.slices_for("default", "db"), key=lambda s: s.address_type)
    assert [s.address_type for s in slices] == ["IPv4", "IPv6"]
    assert [(e.addresses[0], e.ready) for e in slices[0].endpoints] == [("192.0.2.1", True), ("192.0.2.2", False)]
    assert [(p.name, p.port) for p in slices[0].ports] == [("sql", 5432)]


@pytest_twisted.inlineCallbacks
def test_the_source_applies_the_configured_filters(folder, start):
    """`labels` leaves out what the API would not have listed."""
    (folder / "two.yaml").write_text(
        service_yaml("kept", labels="{tier: web}") + "---\n" + service_yaml("dropped", labels="{tier: db}")
    )
    config = SourceConfig(manifests=str(folder), labels=LabelSelector.parse("tier=web"))
    source, store = start(config)
    yield synced(source)
    assert set(store.services_in("default")) == {"kept"}


# --- changes ------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_adding_a_file_adds_its_objects(folder, start):
    """A new file's objects appear in the Store."""
    source, store = start()
    yield synced(source)
    (folder / "new.yaml").write_text(service_yaml("fresh"))
    yield until(store, lambda store: store.service("default", "fresh") is not None)


@pytest_twisted.inlineCallbacks
def test_editing_a_file_applies_only_the_difference(folder, start):
    """Changing one object of a file writes that object only; the unchanged ones cause no Store change."""
    path = folder / "three.yaml"
    names = ("one", "two", "three")
    path.write_text("---\n".join(service_yaml(name) for name in names))
    source, store = start()
    yield synced(source)
    changes = recorder(store)
    # The same length as before, so that only the content tells the change.
    path.write_text("---\n".join(service_yaml(name, port=81 if name == "two" else 80) for name in names))
    yield until(store, lambda store: store.service("default", "two").ports[0].port == 81)
    assert [(c.kind, c.object.name, c.old.ports[0].port, c.new.ports[0].port) for c in changes] == [
        ("Service", "two", 80, 81)
    ]


@pytest_twisted.inlineCallbacks
def test_deleting_a_file_deletes_its_objects(folder, start):
    """The objects of a removed file leave the Store; the other files' stay."""
    (folder / "gone.yaml").write_text(service_yaml("gone"))
    (folder / "stays.yaml").write_text(service_yaml("stays"))
    source, store = start()
    yield synced(source)
    (folder / "gone.yaml").unlink()
    yield until(store, lambda store: store.service("default", "gone") is None)
    assert store.service("default", "stays") is not None


@pytest_twisted.inlineCallbacks
def test_rewriting_a_file_without_changing_it_writes_nothing(folder, start):
    """A file saved again with the same content causes no Store change."""
    path = folder / "same.yaml"
    path.write_text(service_yaml("same"))
    source, store = start()
    yield synced(source)
    changes = recorder(store)
    path.write_text(service_yaml("same"))
    (folder / "marker.yaml").write_text(service_yaml("marker"))
    yield until(store, lambda store: store.service("default", "marker") is not None)
    assert [c.object.name for c in changes] == ["marker"]


@pytest_twisted.inlineCallbacks
def test_a_broken_file_keeps_its_old_objects_and_logs_path_and_line(folder, start, caplog):
    """A YAML syntax error is logged as path:line, and what the file held keeps serving."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    path = folder / "app.yaml"
    path.write_text(service_yaml("app"))
    source, store = start()
    yield synced(source)
    before = store.service("default", "app")
    # Line 4 is indented less than its sibling on line 3: not YAML.
    path.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: app\n namespace: default\n")
    (folder / "marker.yaml").write_text(service_yaml("marker"))
    yield until(store, lambda store: store.service("default", "marker") is not None)
    assert store.service("default", "app") is before
    assert any(m.startswith(f"{path}:5: ") for m in messages(caplog, logging.ERROR))


@pytest_twisted.inlineCallbacks
def test_fixing_a_broken_file_applies_its_new_content(folder, start):
    """Once the syntax error is fixed, the file's objects follow its content again."""
    path = folder / "app.yaml"
    path.write_text(service_yaml("app"))
    source, store = start()
    yield synced(source)
    path.write_text("key: [unclosed\n")
    (folder / "marker.yaml").write_text(service_yaml("marker"))
    yield until(store, lambda store: store.service("default", "marker") is not None)
    path.write_text(service_yaml("renamed"))
    yield until(store, lambda store: store.service("default", "app") is None)
    assert store.service("default", "renamed") is not None


@pytest_twisted.inlineCallbacks
def test_a_bad_object_is_skipped_and_named_in_the_log(folder, start, caplog):
    """An object the converter rejects is logged as path:line: Kind ns/name: reason; the others load."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    path = folder / "mixed.yaml"
    path.write_text(service_yaml("good") + "---\n" + yaml_text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: bad
          namespace: shop
        spec:
          clusterIP: 10.96.0.300
    """))
    source, store = start()
    yield synced(source)
    assert store.service("default", "good") is not None
    assert store.service("shop", "bad") is None
    bad_line = service_yaml("good").count("\n") + 2
    errors = messages(caplog, logging.ERROR)
    assert any(m.startswith(f"{path}:{bad_line}: Service shop/bad: ") and "10.96.0.300" in m for m in errors)


@pytest_twisted.inlineCallbacks
def test_an_object_turned_bad_keeps_its_previous_version(folder, start, caplog):
    """When an edit makes an object invalid, its last good version keeps serving."""
    path = folder / "svc.yaml"
    path.write_text(service_yaml("svc", port=80))
    source, store = start()
    yield synced(source)
    before = store.service("default", "svc")
    path.write_text(service_yaml("svc", port=99999))
    (folder / "marker.yaml").write_text(service_yaml("marker"))
    yield until(store, lambda store: store.service("default", "marker") is not None)
    assert store.service("default", "svc") is before
    assert any("99999" in m for m in messages(caplog, logging.ERROR))


@pytest_twisted.inlineCallbacks
def test_a_duplicate_is_logged_naming_both_files_and_the_first_wins(folder, start, caplog):
    """The same Service in two files: the first in path order serves, and the log names both files."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    (folder / "a.yaml").write_text(service_yaml("dup", port=80))
    (folder / "b.yaml").write_text(service_yaml("dup", port=81))
    source, store = start()
    yield synced(source)
    assert store.service("default", "dup").ports == (ServicePort("http", "TCP", 80),)
    warnings = messages(caplog, logging.WARNING)
    assert any(str(folder / "a.yaml") in m and str(folder / "b.yaml") in m for m in warnings)


@pytest_twisted.inlineCallbacks
def test_an_unknown_kind_is_ignored_quietly(folder, start, caplog):
    """A Deployment is no error: it is mentioned at debug level only."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    (folder / "deploy.yaml").write_text(yaml_text("""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: app
    """))
    source, store = start()
    yield synced(source)
    assert messages(caplog, logging.WARNING) == []
    assert any("Deployment" in m for m in messages(caplog, logging.DEBUG))


# --- cluster IPs -----------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_a_service_without_cluster_ip_gets_one_and_it_is_logged(folder, start, caplog):
    """The allocated address is in service_cidr and one log line names the Service and the address."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    (folder / "api.yaml").write_text(yaml_text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: api
          namespace: shop
    """))
    config = SourceConfig(manifests=str(folder), service_cidrs=("10.100.0.0/16",))
    source, store = start(config)
    yield synced(source)
    ip = store.service("shop", "api").cluster_ip
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.100.0.0/16")
    assert [m for m in messages(caplog, logging.INFO) if "shop/api" in m and ip in m]


@pytest_twisted.inlineCallbacks
def test_an_allocated_address_is_the_same_on_every_start(folder, start):
    """Two sources reading the same folder allocate the same address."""
    (folder / "api.yaml").write_text(yaml_text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: api
    """))
    first, first_store = start()
    second, second_store = start()
    yield synced(first)
    yield synced(second)
    first_ips = first_store.service("default", "api").cluster_ips
    assert first_ips == second_store.service("default", "api").cluster_ips


@pytest_twisted.inlineCallbacks
def test_an_allocated_address_survives_reloads(folder, start):
    """Editing the folder does not move a Service's allocated address."""
    (folder / "api.yaml").write_text(yaml_text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: api
    """))
    source, store = start()
    yield synced(source)
    ip = store.service("default", "api").cluster_ip
    changes = recorder(store)
    (folder / "more.yaml").write_text(service_yaml("more"))
    yield until(store, lambda store: store.service("default", "more") is not None)
    assert store.service("default", "api").cluster_ip == ip
    assert [c.object.name for c in changes] == ["more"]


# --- the folder and the clock -----------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_a_missing_folder_is_logged_and_loaded_once_it_appears(folder, start, caplog):
    """Without the folder the source logs it and waits; synced fires when the folder is there."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    later = folder / "later"
    source, store = start(SourceConfig(manifests=str(later)))
    # The folder is read in a worker thread: the error arrives a moment later.
    for _ in range(int(TIMEOUT / POLL_SECONDS)):
        if any(str(later) in m for m in messages(caplog, logging.ERROR)):
            break
        yield task.deferLater(reactor, POLL_SECONDS, lambda: None)
    assert not source.has_synced
    assert any(str(later) in m for m in messages(caplog, logging.ERROR))
    later.mkdir()
    (later / "svc.yaml").write_text(service_yaml("late"))
    yield synced(source)
    assert store.service("default", "late") is not None


def test_last_sync_follows_the_clock_and_stops_while_a_file_is_broken(folder, start):
    """last_sync is the time of the latest poll that read every file; a broken file holds it back."""
    clock = Clock()
    clock.advance(1000)
    path = folder / "app.yaml"
    path.write_text(service_yaml("app"))
    source, _ = start(clock=clock)
    assert source.last_sync == 1000
    path.write_text("key: [unclosed\n")
    clock.advance(POLL_SECONDS)
    assert source.last_sync == 1000
    path.write_text(service_yaml("app"))
    clock.advance(POLL_SECONDS)
    assert source.last_sync == 1000 + 2 * POLL_SECONDS


def test_a_change_is_applied_within_one_second_by_default(folder):
    """With the default poll interval, a new file reaches the Store within 1 s."""
    clock = Clock()
    store = Store()
    source = ManifestSource(SourceConfig(manifests=str(folder)), store, clock)
    source.start()
    try:
        (folder / "new.yaml").write_text(service_yaml("new"))
        clock.advance(1.0)
        assert store.service("default", "new") is not None
    finally:
        source.stop()


def test_a_failing_reader_does_not_stop_the_source(folder, start, caplog):
    """A Store subscriber that raises is logged; the next poll applies what was left."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    clock = Clock()
    source, store = start(clock=clock)
    failures = []

    def failing_once(change: Change) -> None:
        if not failures:
            failures.append(change)
            raise RuntimeError("reader bug")

    store.subscribe(failing_once)
    (folder / "two.yaml").write_text(service_yaml("one") + "---\n" + service_yaml("two"))
    clock.advance(POLL_SECONDS)
    assert failures and any(r.exc_info for r in caplog.records if r.name == LOGGER)
    clock.advance(POLL_SECONDS)
    assert set(store.services_in("default")) == {"one", "two"}


def test_the_source_is_stale_once_no_pass_finishes_for_stale_after(folder, start):
    """With the folder gone no pass finishes: `stale` turns true after stale_after, and back once a pass does."""
    clock = Clock()
    (folder / "app.yaml").write_text(service_yaml("app"))
    limits = ManifestLimits(stale_after=1.0)
    source, store = start(SourceConfig(manifests=str(folder), manifest_limits=limits), clock=clock)
    assert source.has_synced and not source.stale
    moved = folder.with_name("moved")
    folder.rename(moved)
    clock.advance(0.5)
    assert not source.stale
    for _ in range(4):
        clock.advance(POLL_SECONDS * 10)
    assert source.stale
    assert store.service("default", "app") is not None
    moved.rename(folder)
    clock.advance(POLL_SECONDS)
    assert not source.stale


def test_a_file_turned_into_a_pipe_keeps_its_objects_and_is_reported(folder, start, caplog):
    """A manifest replaced by a named pipe is skipped with a warning; what it held keeps serving."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    clock = Clock()
    path = folder / "app.yaml"
    path.write_text(service_yaml("app"))
    source, store = start(clock=clock)
    path.unlink()
    os.mkfifo(path)
    clock.advance(POLL_SECONDS)
    assert store.service("default", "app") is not None
    assert source.skipped[str(path)].reason == "not_regular"
    assert any(str(path) in m and "named pipe" in m for m in messages(caplog, logging.WARNING))


def test_the_cyclic_collector_is_paused_during_a_pass_and_resumed_after(folder):
    """A pass runs with the collector off (its full collections would stall the reactor) and turns it back on."""
    import gc

    during = []

    def worker(f, *args):
        during.append(gc.isenabled())
        return defer.maybeDeferred(f, *args)

    (folder / "app.yaml").write_text(service_yaml("app"))
    source = ManifestSource(SourceConfig(manifests=str(folder)), Store(), Clock(), worker=worker)
    source.start()
    source.stop()
    assert during == [False]
    assert gc.isenabled()


def test_a_file_with_many_problems_logs_a_bounded_number_of_lines(folder, start, caplog):
    """30 bad objects in one file: the first PROBLEMS_PER_FILE are logged, then one line counting the rest."""
    from discovery.cache.manifests.source import PROBLEMS_PER_FILE

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    bad = "".join(f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: Bad_{i}}}\n" for i in range(30))
    (folder / "bad.yaml").write_text(bad)
    start(clock=Clock())
    lines = [m for m in messages(caplog, logging.ERROR) if "bad.yaml" in m]
    assert len(lines) == PROBLEMS_PER_FILE + 1
    assert lines[-1] == f"... and {30 - PROBLEMS_PER_FILE} more problems in {folder / 'bad.yaml'}"


def test_stop_ends_polling(folder, start):
    """After stop(), changes to the folder no longer reach the Store."""
    clock = Clock()
    source, store = start(clock=clock)
    stopped = source.stop()
    assert stopped.called
    (folder / "new.yaml").write_text(service_yaml("new"))
    clock.advance(10 * POLL_SECONDS)
    assert store.service("default", "new") is None
    assert clock.getDelayedCalls() == []


# --- the demo cluster ----------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_the_examples_folder_loads_without_errors(start, caplog):
    """manifests/examples loads with no warning or error and holds the demo cluster DESIGN.md describes."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    source, store = start(SourceConfig(manifests=str(EXAMPLES), watch_pods=True))
    yield synced(source)
    assert messages(caplog, logging.WARNING) == []

    frontend = store.service("default", "frontend-svc")
    assert frontend.type == "ClusterIP" and frontend.cluster_ip
    assert ("http", "TCP", 80) in [(p.name, p.protocol, p.port) for p in frontend.ports]
    assert len(frontend.ports) >= 2 and all(p.name for p in frontend.ports)
    readiness = {e.ready for s in store.slices_for("default", "frontend-svc") for e in s.endpoints}
    assert readiness == {True, False}

    web = store.service("default", "web")
    assert web.headless
    hostnames = {e.hostname for s in store.slices_for("default", "web") for e in s.endpoints}
    assert {"web-0", "web-1"} <= hostnames

    my_service = store.service("prod", "my-service")
    assert (my_service.type, my_service.external_name) == ("ExternalName", "my.database.example.com")

    redis = store.service("my-namespace", "redis-master")
    assert redis.cluster_ip and ServicePort("redis", "TCP", 6379) in redis.ports
    assert any(s.endpoints for s in store.slices_for("my-namespace", "redis-master"))

    kubernetes = store.service("default", "kubernetes")
    assert kubernetes.cluster_ips == ("10.96.0.1",)
    assert kubernetes.ports == (ServicePort("https", "TCP", 443),)

    kube_dns = store.service("kube-system", "kube-dns")
    assert kube_dns.cluster_ips == ("10.96.0.10",)
    assert set(kube_dns.ports) == {
        ServicePort("dns", "UDP", 53), ServicePort("dns-tcp", "TCP", 53), ServicePort("metrics", "TCP", 9153),
    }
    assert any(s.endpoints for s in store.slices_for("kube-system", "kube-dns"))

    for name in ("prod", "my-namespace"):
        namespace = store.namespace(name)
        assert isinstance(namespace, Namespace) and len(namespace.labels) > 1

    assert any(len({ipaddress.ip_address(ip).version for ip in s.cluster_ips}) == 2 for s in store.services())
    assert [pod for pod in store.pods() if pod.ips]


def test_the_examples_use_every_form_the_source_accepts():
    """The demo shows a List, a JSON file, a legacy Endpoints and sub-folders."""
    texts = {path: path.read_text() for path in EXAMPLES.rglob("*") if path.is_file()}
    assert any(path.suffix == ".json" for path in texts)
    assert any("kind: List" in text or '"kind": "List"' in text for text in texts.values())
    assert any("kind: Endpoints\n" in text for text in texts.values())
    assert any(path.parent != EXAMPLES for path in texts)
