"""The informer's pure parts: which streams a configuration watches, and how API JSON becomes messages."""

from __future__ import annotations

import json

import pytest

from discovery.cache.config import SourceConfig
from discovery.cache.informer import (
    ENDPOINT_SLICES,
    NAMESPACES,
    PODS,
    POD_FIELD_SELECTOR,
    SERVICES,
    Expired,
    Progressed,
    Put,
    Rejected,
    Removed,
    WatchError,
    decode_event,
    decode_page,
    plan_streams,
)
from discovery.cache.selectors import LabelSelector
from tests.fakeapi.objects import endpoint_slice, namespace, pod, service


def event(kind: str, obj: dict) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode()


def stored(obj: dict, resource_version: str = "42") -> dict:
    """A manifest as the API server sends it back: with a resourceVersion."""
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": resource_version}}


# --- plan_streams -------------------------------------------------------------------


def describe(streams):
    return [(s.resource.plural, s.namespace, s.label_selector, s.field_selector) for s in streams]


def test_default_configuration_watches_services_slices_and_namespaces_cluster_wide():
    """Without options, Services, EndpointSlices and Namespaces are each watched once, unfiltered."""
    assert describe(plan_streams(SourceConfig())) == [
        ("services", None, None, None),
        ("endpointslices", None, None, None),
        ("namespaces", None, None, None),
    ]


def test_namespaces_option_watches_namespaced_resources_per_namespace():
    """With `namespaces a b`, Services and EndpointSlices are watched in a and b; Namespaces stay cluster-wide."""
    assert describe(plan_streams(SourceConfig(namespaces=("a", "b")))) == [
        ("services", "a", None, None),
        ("services", "b", None, None),
        ("endpointslices", "a", None, None),
        ("endpointslices", "b", None, None),
        ("namespaces", None, None, None),
    ]


def test_labels_apply_to_services_slices_and_pods_and_namespace_labels_to_namespaces():
    """`labels` filters Services, EndpointSlices and Pods at the API; `namespace_labels` filters Namespaces."""
    config = SourceConfig(
        labels=LabelSelector.parse("app=web"),
        namespace_labels=LabelSelector.parse("team in (a,b)"),
        watch_pods=True,
    )
    assert describe(plan_streams(config)) == [
        ("services", None, "app=web", None),
        ("endpointslices", None, "app=web", None),
        ("pods", None, "app=web", POD_FIELD_SELECTOR),
        ("namespaces", None, "team in (a,b)", None),
    ]


def test_pods_are_watched_only_when_asked_with_coredns_field_selector():
    """Pods are watched only with watch_pods, skipping Succeeded, Failed and Unknown ones as CoreDNS does."""
    assert "pods" not in [s.resource.plural for s in plan_streams(SourceConfig())]
    pods = [s for s in plan_streams(SourceConfig(watch_pods=True)) if s.resource is PODS]
    assert [s.field_selector for s in pods] == [
        "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"
    ]


def test_noendpoints_does_not_watch_endpointslices():
    """With watch_endpoints off (noendpoints), no EndpointSlice stream exists."""
    assert ENDPOINT_SLICES not in [s.resource for s in plan_streams(SourceConfig(watch_endpoints=False))]


def test_collection_paths_are_the_api_servers():
    """Cluster-wide and namespaced collection paths follow the API's URL layout."""
    assert SERVICES.path(None) == "/api/v1/services"
    assert SERVICES.path("prod") == "/api/v1/namespaces/prod/services"
    assert ENDPOINT_SLICES.path("prod") == "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices"
    assert NAMESPACES.path(None) == "/api/v1/namespaces"


# --- decode_event ----------------------------------------------------------------------


def test_added_service_becomes_a_put_with_its_resource_version():
    """An ADDED event yields the converted object and the event's resourceVersion."""
    version, message = decode_event(SERVICES, event("ADDED", stored(service("web", "prod"), "17")))
    assert version == "17"
    assert isinstance(message, Put)
    assert (message.kind, message.object.namespace, message.object.name) == ("Service", "prod", "web")


def test_modified_object_the_converter_rejects_becomes_a_rejection_naming_it():
    """A MODIFIED object with an invalid field is rejected, naming kind, namespace and name."""
    bad = service("web", "prod")
    bad["spec"]["ports"][0]["port"] = 70000
    version, message = decode_event(SERVICES, event("MODIFIED", stored(bad, "18")))
    assert version == "18"
    assert isinstance(message, Rejected)
    assert (message.error.kind, message.error.namespace, message.error.name) == ("Service", "prod", "web")


def test_deleted_event_removes_by_namespace_and_name_without_converting():
    """A DELETED event names the key to remove, even when the last state would not convert."""
    bad = service("web", "prod")
    bad["spec"]["type"] = "Bogus"
    assert decode_event(SERVICES, event("DELETED", stored(bad, "19"))) == ("19", Removed("Service", ("prod", "web")))


def test_deleted_namespace_is_keyed_without_namespace():
    """Namespaces are cluster-scoped: their key is ("", name)."""
    _, message = decode_event(NAMESPACES, event("DELETED", stored(namespace("prod"))))
    assert message == Removed("Namespace", ("", "prod"))


def test_bookmark_yields_its_resource_version_and_no_change():
    """A BOOKMARK carries only a resourceVersion: the stream advances, the Store does not change."""
    bookmark = {"kind": "Service", "apiVersion": "v1", "metadata": {"resourceVersion": "99"}}
    assert decode_event(SERVICES, event("BOOKMARK", bookmark)) == ("99", Progressed("Service"))


def test_error_event_with_410_raises_expired():
    """An ERROR event whose Status has code 410 means the resume version is gone: relist."""
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired",
              "message": "too old resource version: 5 (10)", "code": 410}
    with pytest.raises(Expired, match="too old resource version"):
        decode_event(SERVICES, event("ERROR", status))


def test_error_event_with_another_code_raises_watch_error():
    """An ERROR event other than 410 is an error of the watch, not an expiry."""
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError",
              "message": "etcd is sad", "code": 500}
    with pytest.raises(WatchError, match="500"):
        decode_event(SERVICES, event("ERROR", status))


def test_pod_being_deleted_is_treated_as_gone():
    """A Pod with a deletionTimestamp is removed, as CoreDNS ignores terminating Pods."""
    _, message = decode_event(PODS, event("MODIFIED", stored(pod("web-0", deleting=True))))
    assert message == Removed("Pod", ("default", "web-0"))


def test_slice_event_carries_its_trigger_time_annotation():
    """The EndpointSlice controller's last-change-trigger-time travels with the slice for the latency metric."""
    eps = endpoint_slice("web", annotations={
        "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:00:00Z"})
    _, message = decode_event(ENDPOINT_SLICES, event("MODIFIED", stored(eps)))
    assert message.trigger_time == "2024-05-01T10:00:00Z"


def test_slice_of_a_service_scaled_to_zero_converts_with_no_endpoints():
    """`"endpoints": null` (a Service scaled to zero) is a slice with no endpoints, not an error."""
    eps = endpoint_slice("web", addresses=())
    assert eps["endpoints"] is None
    _, message = decode_event(ENDPOINT_SLICES, event("ADDED", stored(eps)))
    assert isinstance(message, Put) and message.object.endpoints == ()


@pytest.mark.parametrize("line", [b"not json", b'{"type": "ADDED"}', b'{"type": "WHAT", "object": {}}'])
def test_a_line_that_is_no_watch_event_is_a_value_error(line):
    """Garbage on the stream is an error of the stream (ValueError), not a crash."""
    with pytest.raises(ValueError):
        decode_event(SERVICES, line)


# --- decode_page ---------------------------------------------------------------------


def test_page_yields_objects_version_and_continue_token():
    """A list page gives its converted items, the list's resourceVersion and the continue token."""
    body = {"kind": "ServiceList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "120", "continue": "abc"},
            "items": [stored(service("a")), stored(service("b"))]}
    page = decode_page(SERVICES, body)
    assert [s.name for s in page.objects] == ["a", "b"]
    assert (page.resource_version, page.continue_token, page.rejected) == ("120", "abc", [])


def test_last_page_has_no_continue_token():
    """An absent or empty continue means the list is complete."""
    body = {"metadata": {"resourceVersion": "120", "continue": ""}, "items": None}
    page = decode_page(SERVICES, body)
    assert (page.objects, page.continue_token) == ([], None)


def test_page_collects_rejections_and_omits_pods_being_deleted():
    """Invalid items are collected as rejections; terminating Pods are left out."""
    bad = pod("bad")
    bad["status"]["podIP"] = "not-an-ip"
    bad["status"]["podIPs"] = [{"ip": "not-an-ip"}]
    body = {"metadata": {"resourceVersion": "7"},
            "items": [stored(pod("live")), stored(pod("leaving", deleting=True)), stored(bad)]}
    page = decode_page(PODS, body)
    assert [p.name for p in page.objects] == ["live"]
    assert [e.name for e in page.rejected] == ["bad"]


def test_page_without_resource_version_is_a_value_error():
    """A list body without metadata.resourceVersion cannot be watched from: an error."""
    with pytest.raises(ValueError, match="resourceVersion"):
        decode_page(SERVICES, {"metadata": {}, "items": []})
