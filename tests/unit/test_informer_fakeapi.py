"""The fake API server's storage keeps the API server's list and watch guarantees.

The informer's integration tests are only as good as the fake: these pin the
semantics of the real API server that they lean on (API conventions,
"Efficient detection of changes" and "Retrieving large results sets in
chunks" in the Kubernetes API concepts).
"""

from __future__ import annotations

import copy

import pytest

from tests.fakeapi.cluster import RESOURCES, ApiError, Cluster, watch_event
from tests.fakeapi.objects import namespace, pod, service
from tests.fakeapi.selectors import parse_fields, parse_labels

SERVICES = RESOURCES["services"]


def labelled(**labels) -> dict:
    return {"metadata": {"labels": labels}}


def relabelled(cluster: Cluster, name: str, **labels) -> dict:
    obj = copy.deepcopy(cluster.get("services", "default", name))
    obj["metadata"]["labels"] = labels
    return cluster.update(obj, "services")


def test_every_write_takes_the_next_cluster_wide_resource_version():
    """resourceVersions increase across all resources, as strings of integers."""
    cluster = Cluster(resource_version=100)
    first = cluster.create(service("a"))
    second = cluster.create(namespace("b"))
    assert (first["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"]) == ("101", "102")


def test_list_items_carry_no_kind_and_the_list_its_version():
    """A List names its kind and version; its items do not (as the API server sends them)."""
    cluster = Cluster()
    cluster.create(service("a"))
    body = cluster.list("services")
    assert (body["kind"], body["apiVersion"]) == ("ServiceList", "v1")
    assert body["metadata"]["resourceVersion"] == str(cluster.resource_version)
    assert "kind" not in body["items"][0] and "apiVersion" not in body["items"][0]


def test_pages_after_the_first_are_a_snapshot_of_its_version():
    """Changes made between pages do not show in the pages that follow."""
    cluster = Cluster()
    for name in ("a", "b", "c"):
        cluster.create(service(name))
    first = cluster.list("services", limit=2)
    cluster.delete("services", "default", "c")
    cluster.create(service("d"))
    rest = cluster.list("services", limit=2, continue_token=first["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in first["items"] + rest["items"]] == ["a", "b", "c"]
    assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert "continue" not in rest["metadata"]


def test_a_continue_token_older_than_compaction_is_410():
    """A token whose snapshot has been compacted away answers 410 Expired."""
    cluster = Cluster()
    for name in ("a", "b"):
        cluster.create(service(name))
    token = cluster.list("services", limit=1)["metadata"]["continue"]
    cluster.create(service("c"))
    cluster.compact()
    with pytest.raises(ApiError) as raised:
        cluster.list("services", limit=1, continue_token=token)
    assert (raised.value.code, raised.value.reason) == (410, "Expired")


def test_a_watch_from_a_compacted_version_is_410():
    """History before the compaction point is gone: resuming from it is 410 Expired."""
    cluster = Cluster()
    old = int(cluster.create(service("a"))["metadata"]["resourceVersion"])
    cluster.create(service("b"))
    cluster.compact()
    with pytest.raises(ApiError) as raised:
        cluster.changes_since(old)
    assert raised.value.code == 410
    assert cluster.changes_since(cluster.resource_version) == []


def test_changes_since_a_version_are_the_later_ones_in_order():
    """A watch from N replays every change after N and none before."""
    cluster = Cluster()
    start = cluster.resource_version
    cluster.create(service("a"))
    since = int(cluster.create(service("b"))["metadata"]["resourceVersion"])
    cluster.delete("services", "default", "a")
    assert [(c.type, c.key[1]) for c in cluster.changes_since(since)] == [("DELETED", "a")]
    assert len(cluster.changes_since(start)) == 3


def test_an_object_leaving_a_selector_is_seen_deleted_at_the_new_version():
    """The watch cache reports an object that stops matching as DELETED, its last matching state at the new version."""
    cluster = Cluster()
    cluster.create(service("web", labels={"tier": "front"}))
    seen = []
    cluster.subscribe(lambda change: seen.append(change))
    new = relabelled(cluster, "web", tier="back")
    event = watch_event(seen[0], SERVICES, None, parse_labels("tier=front"), parse_fields(None, ()))
    assert event["type"] == "DELETED"
    assert event["object"]["metadata"]["labels"] == {"tier": "front"}
    assert event["object"]["metadata"]["resourceVersion"] == new["metadata"]["resourceVersion"]
    assert (event["object"]["kind"], event["object"]["apiVersion"]) == ("Service", "v1")


def test_an_object_entering_a_selector_is_seen_added():
    """An object that starts matching is ADDED to a selective watch."""
    cluster = Cluster()
    cluster.create(service("web", labels={"tier": "back"}))
    seen = []
    cluster.subscribe(lambda change: seen.append(change))
    relabelled(cluster, "web", tier="front")
    event = watch_event(seen[0], SERVICES, None, parse_labels("tier=front"), parse_fields(None, ()))
    assert event["type"] == "ADDED"


def test_a_namespaced_watch_sees_only_its_namespace():
    """A watch on /namespaces/a/services ignores changes in b."""
    cluster = Cluster()
    seen = []
    cluster.subscribe(lambda change: seen.append(change))
    cluster.create(service("web", "b"))
    assert watch_event(seen[0], SERVICES, "a", parse_labels(None), parse_fields(None, ())) is None


@pytest.mark.parametrize("selector, labels, matches", [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("app in (web, db)", {"app": "db"}, True),
    ("app in (web,db)", {}, False),
    ("app notin (web,db)", {}, True),
    ("app", {"app": ""}, True),
    ("!app", {"app": "x"}, False),
    ("app=web,tier in (front)", {"app": "web", "tier": "front"}, True),
    ("app=web,tier in (front)", {"app": "web"}, False),
])
def test_label_selectors_match_as_the_api_server_does(selector, labels, matches):
    """Equality, inequality, set and existence requirements, ANDed; != and notin match an absent label."""
    assert parse_labels(selector)(labelled(**labels)) is matches


def test_the_coredns_pod_field_selector_keeps_only_live_pods():
    """status.phase!=Succeeded,... filters finished Pods, as the API server does for CoreDNS."""
    live = parse_fields("status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown",
                        RESOURCES["pods"].fields)
    assert [phase for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown")
            if live(pod("p", phase=phase))] == ["Pending", "Running"]


def test_an_unsupported_field_selector_is_a_bad_request():
    """Fields a resource does not index are refused with 400, as the API server does."""
    with pytest.raises(ApiError) as raised:
        Cluster().list("services", field_selector="spec.selector=x")
    assert raised.value.code == 400
