"""The reactor side of the informer: applying lists and events to the Store."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from discovery.cache.informer import (
    ENDPOINT_SLICES,
    SERVICES,
    Listed,
    Put,
    Rejected,
    Removed,
    Stream,
    StoreWriter,
    programming_latency_histogram,
)
from discovery.cache.objects import ObjectError, endpoint_slice_from_api, service_from_api
from discovery.cache.store import Store
from tests.fakeapi.objects import endpoint_slice, service

NOW = 1714557600.5
TRIGGER = "2024-05-01T10:00:00Z"  # NOW - 0.5 s


def svc(name, namespace="default", **kwargs):
    return service_from_api(service(name, namespace, **kwargs))


def listed(stream, *objects, rejected=(), relist=False):
    return Listed(stream, tuple(objects), tuple(rejected), "100", relist, 0.1)


@pytest.fixture
def store():
    return Store()


@pytest.fixture
def writer(store):
    return StoreWriter(store, lambda: NOW)


def test_a_list_makes_the_kind_exactly_its_objects(store, writer):
    """A (re)list deletes what vanished and adds what appeared."""
    store.put(svc("a"))
    store.put(svc("b"))
    writer.apply([listed(Stream(SERVICES), svc("a"), svc("c"))])
    assert sorted(name for _, name in store.keys("Service")) == ["a", "c"]


def test_a_namespaced_list_replaces_only_its_namespace(store, writer):
    """With `namespaces`, a relist of one namespace leaves the others alone."""
    store.put(svc("a", "one"))
    store.put(svc("b", "two"))
    writer.apply([listed(Stream(SERVICES, "one"))])
    assert list(store.keys("Service")) == [("two", "b")]


def test_the_first_list_is_reported_once_applied(store):
    """on_listed is called after the list's objects are in the Store."""
    seen = []
    writer = StoreWriter(store, lambda: NOW, on_listed=lambda m: seen.append(store.count("Service")))
    writer.apply([listed(Stream(SERVICES), svc("a"))])
    assert seen == [1]


def test_put_and_removed_change_the_store(store, writer):
    """Events add, replace and remove single objects."""
    writer.apply([Put("Service", svc("a")), Put("Service", svc("b"))])
    writer.apply([Removed("Service", ("default", "a"))])
    assert list(store.keys("Service")) == [("default", "b")]


def test_last_sync_is_the_time_of_the_latest_batch(writer):
    """last_sync is the clock's time when a batch was applied."""
    assert writer.last_sync == 0.0
    writer.apply([Put("Service", svc("a"))])
    assert writer.last_sync == NOW


def error(name):
    return ObjectError("Service", "default", name, "spec.ports[0].port: 70000 is not a port number (1-65535)")


def test_a_rejected_object_is_logged_once(writer, caplog):
    """The same bad object arriving again (every relist) is logged only the first time."""
    with caplog.at_level(logging.WARNING, "wayfinder.cache.informer"):
        writer.apply([Rejected("Service", error("web"))])
        writer.apply([Rejected("Service", error("web"))])
    assert len(caplog.records) == 1
    assert "Service default/web" in caplog.messages[0]


def test_a_rejected_object_is_logged_again_after_it_was_good(writer, caplog):
    """Once fixed, a later breakage is news again."""
    with caplog.at_level(logging.WARNING, "wayfinder.cache.informer"):
        writer.apply([Rejected("Service", error("web"))])
        writer.apply([Put("Service", svc("web"))])
        writer.apply([Rejected("Service", error("web"))])
    assert len(caplog.records) == 2
    assert "previous version keeps serving" in caplog.messages[1]


def test_a_relist_keeps_the_previous_version_of_a_rejected_object(store, writer):
    """A bad object in a relist is not deleted: its last good version keeps serving."""
    good = svc("web")
    store.put(good)
    writer.apply([listed(Stream(SERVICES), svc("other"), rejected=[error("web")], relist=True)])
    assert store.service("default", "web") == good
    assert store.service("default", "other") is not None


def slice_with_trigger(name, trigger=TRIGGER):
    obj = endpoint_slice(name)
    return Put("EndpointSlice", endpoint_slice_from_api(obj), trigger)


def latency_samples(registry, kind):
    return registry.get_sample_value(
        "coredns_kubernetes_dns_programming_duration_seconds_count", {"service_kind": kind})


def latency_sum(registry, kind):
    return registry.get_sample_value(
        "coredns_kubernetes_dns_programming_duration_seconds_sum", {"service_kind": kind})


def test_programming_latency_is_the_time_from_trigger_to_store(store):
    """A watched slice change observes now minus its trigger time, labelled by its Service's kind."""
    registry = CollectorRegistry()
    writer = StoreWriter(store, lambda: NOW, latency=programming_latency_histogram(registry))
    store.put(svc("web"))
    writer.apply([slice_with_trigger("web")])
    assert latency_samples(registry, "cluster_ip") == 1
    assert latency_sum(registry, "cluster_ip") == pytest.approx(0.5)


def test_programming_latency_of_a_headless_service_is_headless_with_selector(store):
    """Slices of a headless Service are counted under headless_with_selector."""
    registry = CollectorRegistry()
    writer = StoreWriter(store, lambda: NOW, latency=programming_latency_histogram(registry))
    store.put(svc("db", headless=True))
    writer.apply([slice_with_trigger("db")])
    assert latency_samples(registry, "headless_with_selector") == 1


def test_programming_latency_is_not_observed_without_a_known_service(store):
    """As CoreDNS: without the backing Service in the Store, nothing is observed."""
    registry = CollectorRegistry()
    writer = StoreWriter(store, lambda: NOW, latency=programming_latency_histogram(registry))
    writer.apply([slice_with_trigger("ghost")])
    assert latency_samples(registry, "cluster_ip") is None
    assert store.slice("default", endpoint_slice("ghost")["metadata"]["name"]) is not None


def test_an_unreadable_trigger_time_is_logged_and_not_observed(store, caplog):
    """A malformed annotation costs a warning, never the slice."""
    registry = CollectorRegistry()
    writer = StoreWriter(store, lambda: NOW, latency=programming_latency_histogram(registry))
    store.put(svc("web"))
    with caplog.at_level(logging.WARNING, "wayfinder.cache.informer"):
        writer.apply([slice_with_trigger("web", "last tuesday")])
    assert latency_samples(registry, "cluster_ip") is None
    assert "last tuesday" in caplog.text
    assert len(list(store.slices_for("default", "web"))) == 1


def test_lists_observe_no_programming_latency(store):
    """Slices met in a list are not changes being programmed: no observation."""
    registry = CollectorRegistry()
    writer = StoreWriter(store, lambda: NOW, latency=programming_latency_histogram(registry))
    store.put(svc("web"))
    writer.apply([listed(Stream(ENDPOINT_SLICES), slice_with_trigger("web").object)])
    assert latency_samples(registry, "cluster_ip") is None


def test_the_histogram_is_defined_once_per_registry():
    """Two sources sharing a registry share CoreDNS's histogram rather than failing to register it twice."""
    registry = CollectorRegistry()
    assert programming_latency_histogram(registry) is programming_latency_histogram(registry)


def test_the_histogram_has_coredns_buckets():
    """Twenty buckets doubling from 1 ms (CoreDNS object/metrics.go), so dashboards line up."""
    registry = CollectorRegistry()
    programming_latency_histogram(registry).labels("cluster_ip").observe(0.0)
    bounds = [
        float(sample.labels["le"])
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.endswith("_bucket")
    ]
    assert bounds[:2] == [0.001, 0.002]
    assert bounds[-2:] == [pytest.approx(0.001 * 2**19), float("inf")]
    assert len(bounds) == 21
