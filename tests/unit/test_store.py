"""Specification of the Store: objects by key, the readers' indexes, generations and changes."""

import gc
import sys

import pytest

from discovery.cache.objects import Endpoint, EndpointSlice, Namespace, Pod, Service
from discovery.cache.store import Change, Store


def svc(name="web", namespace="shop", ips=("10.96.0.10",), **fields):
    return Service(namespace, name, cluster_ips=tuple(ips), **fields)


def eps(name="web-abc12", service="web", namespace="shop", addresses=("10.1.0.5",), address_type="IPv4"):
    endpoints = tuple(Endpoint((address,)) for address in addresses)
    return EndpointSlice(namespace, name, service, address_type, endpoints)


def pod(name="web-0", namespace="shop", ips=("10.1.0.5",)):
    return Pod(namespace, name, ips=tuple(ips), phase="Running")


class FakeClock:
    """A wall clock that says what the test tells it to."""

    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def store():
    return Store(clock=FakeClock())


@pytest.fixture
def changes(store):
    received = []
    store.subscribe(received.append)
    return received


# --- Services ---------------------------------------------------------------------------


def test_service_is_found_by_namespace_and_name(store):
    """service(namespace, name) returns the object put."""
    web = svc()
    store.put(web)
    assert store.service("shop", "web") is web
    assert store.service("shop", "api") is None
    assert store.service("other", "web") is None


def test_services_in_lists_one_namespace_by_name(store):
    """services_in(namespace) maps names to Services of that namespace only."""
    web, api, elsewhere = svc("web"), svc("api", ips=("10.96.0.11",)), svc("web", "other", ips=("10.96.0.12",))
    for service in (web, api, elsewhere):
        store.put(service)
    assert dict(store.services_in("shop")) == {"web": web, "api": api}
    assert dict(store.services_in("other")) == {"web": elsewhere}
    assert dict(store.services_in("empty")) == {}


@pytest.mark.parametrize("namespace", ["shop", "empty"])
def test_services_in_is_read_only(store, namespace):
    """A reader cannot alter the index through services_in, whether the namespace has Services or not."""
    store.put(svc())
    with pytest.raises(TypeError):
        store.services_in(namespace)["intruder"] = svc("intruder")
    assert dict(store.services_in("empty")) == {}


def test_services_in_is_a_live_view(store):
    """The mapping services_in returned shows Services put after it was taken."""
    store.put(svc("a"))
    view = store.services_in("shop")
    store.put(svc("b", ips=("10.96.0.11",)))
    assert set(view) == {"a", "b"}


def test_services_by_ip_finds_every_cluster_ip(store):
    """Each of a dual-stack Service's cluster IPs leads back to it (PTR answers need this)."""
    web = svc(ips=("10.96.0.10", "fd00::10"))
    store.put(web)
    assert list(store.services_by_ip("10.96.0.10")) == [web]
    assert list(store.services_by_ip("fd00::10")) == [web]
    assert list(store.services_by_ip("10.96.0.11")) == []


def test_services_sharing_an_ip_are_both_found(store):
    """Two Services holding one IP (as during a re-creation) are both indexed under it."""
    first, second = svc("a"), svc("b")
    store.put(first)
    store.put(second)
    assert set(store.services_by_ip("10.96.0.10")) == {first, second}


def test_headless_service_is_not_indexed_by_ip(store):
    """A headless Service has no cluster IP, so no IP leads to it."""
    store.put(Service("shop", "db", headless=True))
    assert dict(store.services_in("shop")).keys() == {"db"}
    assert list(store.services_by_ip("None")) == []


def test_service_update_moves_its_ip(store):
    """After an update that changes the cluster IP, only the new IP leads to the Service."""
    store.put(svc(ips=("10.96.0.10",)))
    moved = svc(ips=("10.96.0.20",))
    store.put(moved)
    assert list(store.services_by_ip("10.96.0.10")) == []
    assert list(store.services_by_ip("10.96.0.20")) == [moved]
    assert store.service("shop", "web") is moved
    assert dict(store.services_in("shop")) == {"web": moved}


def test_service_delete_empties_every_index(store):
    """Deleting a Service removes it by key, from its namespace and from its IPs."""
    store.put(svc(ips=("10.96.0.10", "fd00::10")))
    store.delete("Service", ("shop", "web"))
    assert store.service("shop", "web") is None
    assert dict(store.services_in("shop")) == {}
    assert list(store.services_by_ip("10.96.0.10")) == []
    assert list(store.services_by_ip("fd00::10")) == []
    assert store.count("Service") == 0


def test_deleting_one_service_leaves_the_one_sharing_its_ip(store):
    """Removing one of two Services on one IP keeps the other indexed."""
    store.put(svc("a"))
    survivor = svc("b")
    store.put(survivor)
    store.delete("Service", ("shop", "a"))
    assert list(store.services_by_ip("10.96.0.10")) == [survivor]


# --- EndpointSlices --------------------------------------------------------------------------


def test_slices_for_finds_slices_by_service_label(store):
    """slices_for(namespace, service) returns every slice labelled with that Service."""
    first, second, other = eps("web-1"), eps("web-2", addresses=("10.1.0.6",)), eps("api-1", service="api")
    for item in (first, second, other):
        store.put(item)
    assert set(store.slices_for("shop", "web")) == {first, second}
    assert list(store.slices_for("shop", "api")) == [other]
    assert list(store.slices_for("other", "web")) == []
    assert store.slice("shop", "web-1") is first


def test_slice_update_changing_service_label_moves_it(store):
    """A slice relabelled to another Service leaves the first Service's list and joins the second's."""
    store.put(eps("web-1", service="web"))
    moved = eps("web-1", service="api")
    store.put(moved)
    assert list(store.slices_for("shop", "web")) == []
    assert list(store.slices_for("shop", "api")) == [moved]


def test_slices_by_ip_finds_each_endpoint_address(store):
    """Each endpoint address of an IP slice leads back to its slice."""
    item = eps(addresses=("10.1.0.5", "10.1.0.6"))
    store.put(item)
    assert list(store.slices_by_ip("10.1.0.5")) == [item]
    assert list(store.slices_by_ip("10.1.0.6")) == [item]


def test_fqdn_slice_addresses_are_not_ips(store):
    """An FQDN slice's addresses are names, so no IP lookup finds it."""
    store.put(eps(addresses=("db.example.org",), address_type="FQDN"))
    assert list(store.slices_by_ip("db.example.org")) == []
    assert len(list(store.slices_for("shop", "web"))) == 1


def test_slice_update_moving_an_address(store):
    """After an endpoint changes address, only the new address leads to the slice."""
    store.put(eps(addresses=("10.1.0.5", "10.1.0.6")))
    moved = eps(addresses=("10.1.0.6", "10.1.0.7"))
    store.put(moved)
    assert list(store.slices_by_ip("10.1.0.5")) == []
    assert list(store.slices_by_ip("10.1.0.6")) == [moved]
    assert list(store.slices_by_ip("10.1.0.7")) == [moved]


def test_slice_delete_empties_every_index(store):
    """Deleting a slice removes it by key, from its Service and from its addresses."""
    store.put(eps())
    store.delete("EndpointSlice", ("shop", "web-abc12"))
    assert store.slice("shop", "web-abc12") is None
    assert list(store.slices_for("shop", "web")) == []
    assert list(store.slices_by_ip("10.1.0.5")) == []


# --- Pods and Namespaces ----------------------------------------------------------------------


def test_pods_by_ip_finds_each_pod_ip(store):
    """Every IP of a dual-stack Pod leads back to it (`pods verified` needs this)."""
    web = pod(ips=("10.1.0.5", "fd00::5"))
    store.put(web)
    assert list(store.pods_by_ip("10.1.0.5")) == [web]
    assert list(store.pods_by_ip("fd00::5")) == [web]
    assert store.pod("shop", "web-0") is web


def test_host_network_pods_share_an_ip(store):
    """Pods on the host network share the node's IP and are all found by it."""
    first, second = pod("a", ips=("192.168.1.10",)), pod("b", ips=("192.168.1.10",))
    store.put(first)
    store.put(second)
    assert set(store.pods_by_ip("192.168.1.10")) == {first, second}


def test_pod_update_moves_its_ip(store):
    """A Pod whose IP changes is found by the new IP only."""
    store.put(pod(ips=("10.1.0.5",)))
    moved = pod(ips=("10.1.0.9",))
    store.put(moved)
    assert list(store.pods_by_ip("10.1.0.5")) == []
    assert list(store.pods_by_ip("10.1.0.9")) == [moved]


def test_pod_delete_empties_its_index(store):
    """A deleted Pod is found neither by key nor by IP."""
    store.put(pod())
    store.delete("Pod", ("shop", "web-0"))
    assert store.pod("shop", "web-0") is None
    assert list(store.pods_by_ip("10.1.0.5")) == []


def test_namespace_lookup_follows_put_update_and_delete(store):
    """namespace(name) returns the latest Namespace put, and None once deleted."""
    store.put(Namespace("shop"))
    labelled = Namespace("shop", (("team", "a"),))
    store.put(labelled)
    assert store.namespace("shop") is labelled
    assert list(store.namespaces()) == [labelled]
    store.delete("Namespace", ("", "shop"))
    assert store.namespace("shop") is None


# --- changes, generation, subscriptions -------------------------------------------------------------


def test_put_of_a_new_object_is_an_add(store, changes):
    """Adding an object yields a Change with old None and the new object."""
    web = svc()
    change = store.put(web)
    assert change == Change("Service", None, web, 1)
    assert changes == [change]


def test_put_of_a_changed_object_is_an_update(store, changes):
    """Replacing an object yields a Change carrying both versions."""
    before, after = svc(ips=("10.96.0.10",)), svc(ips=("10.96.0.20",))
    store.put(before)
    change = store.put(after)
    assert (change.kind, change.old, change.new) == ("Service", before, after)
    assert changes[-1] is change


def test_delete_is_a_change_with_no_new_object(store, changes):
    """Deleting yields a Change with the old object and new None."""
    web = svc()
    store.put(web)
    change = store.delete("Service", web.key)
    assert (change.old, change.new, change.object) == (web, None, web)
    assert changes[-1] is change


def test_putting_an_equal_object_changes_nothing(store, changes):
    """An equal object (even a distinct instance) is a no-op: no Change, no new generation."""
    store.put(svc())
    generation = store.generation
    assert store.put(svc()) is None
    assert store.generation == generation
    assert len(changes) == 1


def test_deleting_an_absent_object_changes_nothing(store, changes):
    """Deleting a key the Store does not hold is a no-op."""
    assert store.delete("Pod", ("shop", "ghost")) is None
    assert store.generation == 0
    assert changes == []


def test_generation_counts_changes_exactly(store):
    """The generation rises by one per applied change and not at all for no-ops."""
    steps = [
        (lambda: store.put(svc()), 1),
        (lambda: store.put(svc()), 1),
        (lambda: store.put(eps()), 2),
        (lambda: store.put(svc(ips=("10.96.0.99",))), 3),
        (lambda: store.delete("EndpointSlice", ("shop", "web-abc12")), 4),
        (lambda: store.delete("EndpointSlice", ("shop", "web-abc12")), 4),
        (lambda: store.put(Namespace("shop")), 5),
    ]
    for apply, expected in steps:
        apply()
        assert store.generation == expected


def test_change_carries_the_generation_it_made(store):
    """Each Change names the generation the Store reached by applying it."""
    first = store.put(svc("a"))
    second = store.put(svc("b"))
    assert (first.generation, second.generation) == (1, 2)


def test_modified_is_the_clock_at_the_last_change(store):
    """modified records the wall clock (whole seconds) at the last change, for the SOA serial."""
    clock = FakeClock(100.7)
    timed = Store(clock=clock)
    assert timed.modified == 100
    clock.now = 250.2
    timed.put(svc())
    assert timed.modified == 250
    clock.now = 300.0
    timed.put(svc())
    assert timed.modified == 250


def test_subscribers_receive_changes_in_order(store):
    """Every subscriber is called with each Change, in the order applied."""
    first, second = [], []
    store.subscribe(first.append)
    store.subscribe(second.append)
    a, b = store.put(svc("a")), store.put(svc("b"))
    assert first == [a, b] and second == [a, b]


def test_unsubscribe_stops_the_calls(store):
    """After calling the function subscribe returned, the callback hears nothing more."""
    received = []
    unsubscribe = store.subscribe(received.append)
    store.put(svc("a"))
    unsubscribe()
    store.put(svc("b"))
    assert [c.new.name for c in received] == ["a"]


def test_subscriber_sees_the_store_already_updated(store):
    """When a subscriber is called, the Store's indexes already reflect the change."""
    seen = []
    store.subscribe(lambda change: seen.append(list(store.services_by_ip("10.96.0.10"))))
    web = svc()
    store.put(web)
    assert seen == [[web]]


@pytest.mark.parametrize(
    "old, new, expected",
    [
        pytest.param(None, svc(ips=("10.96.0.10", "fd00::10")), {"10.96.0.10", "fd00::10"}, id="service-add"),
        pytest.param(svc(ips=("10.96.0.10",)), svc(ips=("10.96.0.20",)), {"10.96.0.10", "10.96.0.20"},
                     id="service-move"),
        pytest.param(eps(addresses=("10.1.0.5",)), None, {"10.1.0.5"}, id="slice-delete"),
        pytest.param(None, eps(addresses=("db.example.org",), address_type="FQDN"), set(), id="fqdn-slice"),
        pytest.param(None, pod(ips=("10.1.0.5",)), {"10.1.0.5"}, id="pod"),
        pytest.param(None, Namespace("shop"), set(), id="namespace"),
    ],
)
def test_change_addresses_cover_old_and_new(old, new, expected):
    """Change.addresses() is every IP either version holds: the PTR names the change touches."""
    kind = type(new or old).__name__
    assert Change(kind, old, new, 1).addresses() == expected


def test_change_namespace_of_a_namespace_is_its_name():
    """A Namespace change belongs to the namespace it names; others to their own namespace."""
    assert Change("Namespace", None, Namespace("shop"), 1).namespace == "shop"
    assert Change("Service", svc(), None, 1).namespace == "shop"


# --- replace (a relist) --------------------------------------------------------------------------


def test_replace_deletes_what_vanished_and_adds_what_appeared(store):
    """replace() makes the kind hold exactly the given objects, reporting each difference."""
    kept, gone = svc("kept"), svc("gone", ips=("10.96.0.11",))
    store.put(kept)
    store.put(gone)
    new = svc("new", ips=("10.96.0.12",))
    changes = store.replace("Service", [kept, new])
    assert [(c.old, c.new) for c in changes] == [(gone, None), (None, new)]
    assert set(store.keys("Service")) == {kept.key, new.key}
    assert list(store.services_by_ip("10.96.0.11")) == []


def test_replace_with_unchanged_objects_emits_nothing(store, changes):
    """A relist that finds everything as it was yields no change and keeps the generation."""
    objects = [svc("a"), svc("b", ips=("10.96.0.11",))]
    for item in objects:
        store.put(item)
    generation, heard = store.generation, len(changes)
    assert store.replace("Service", [svc("a"), svc("b", ips=("10.96.0.11",))]) == []
    assert store.generation == generation
    assert len(changes) == heard


def test_replace_reports_updates(store):
    """An object that changed during the relist is reported as an update."""
    store.put(svc(ips=("10.96.0.10",)))
    changes = store.replace("Service", [svc(ips=("10.96.0.20",))])
    assert [(c.old.cluster_ip, c.new.cluster_ip) for c in changes] == [("10.96.0.10", "10.96.0.20")]


def test_replace_within_a_namespace_leaves_others_alone(store):
    """replace(..., namespace=) deletes vanished objects of that namespace only."""
    other = svc("web", "other")
    store.put(svc("web", "shop"))
    store.put(other)
    changes = store.replace("Service", [], namespace="shop")
    assert [c.old.key for c in changes] == [("shop", "web")]
    assert list(store.services()) == [other]


def test_replace_of_one_kind_leaves_other_kinds_alone(store):
    """Relisting Services does not touch EndpointSlices or Pods."""
    store.put(eps())
    store.put(pod())
    store.replace("Service", [])
    assert store.count("EndpointSlice") == 1 and store.count("Pod") == 1


def test_replace_generation_counts_each_change(store):
    """A relist raises the generation once per object added, changed or deleted."""
    store.put(svc("a"))
    store.put(svc("b", ips=("10.96.0.11",)))
    store.replace("Service", [svc("a"), svc("c", ips=("10.96.0.12",)), svc("d", ips=("10.96.0.13",))])
    assert store.generation == 2 + 3


def test_get_keys_and_count_by_kind(store):
    """get, keys and count read any kind by its name."""
    web = svc()
    store.put(web)
    store.put(Namespace("shop"))
    assert store.get("Service", ("shop", "web")) is web
    assert store.get("Namespace", ("", "shop")) == Namespace("shop")
    assert list(store.keys("Service")) == [("shop", "web")]
    assert (store.count("Service"), store.count("Namespace"), store.count("Pod")) == (1, 1, 0)


# --- cost of one event ---------------------------------------------------------------------------


def _fill(store, size):
    for i in range(size):
        ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        store.put(Namespace(f"ns-{i}"))
        store.put(svc(f"svc-{i}", "shop", ips=(f"10.96.{i // 256 % 256}.{i % 256}",)))
        store.put(eps(f"svc-{i}-x", f"svc-{i}", "shop", addresses=(ip,)))
        store.put(pod(f"pod-{i}", "shop", ips=(ip,)))


def _traced_lines(operations):
    """How many Python lines run while applying the operations (deterministic, unlike a timer)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    # A collection inside the traced window would run other objects'
    # finalizers (Python code) and count their lines.
    gc.collect()
    gc.disable()
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        for operation in operations:
            operation()
    finally:
        sys.settrace(previous)
        gc.enable()
    return count


def _one_of_each_event(store):
    return [
        lambda: store.put(svc("hot", "shop", ips=("10.200.0.1",))),
        lambda: store.put(svc("hot", "shop", ips=("10.200.0.2",))),
        lambda: store.put(eps("hot-x", "hot", "shop", addresses=("10.201.0.1", "10.201.0.2"))),
        lambda: store.put(eps("hot-x", "cold", "shop", addresses=("10.201.0.3",))),
        lambda: store.put(pod("hot-pod", "shop", ips=("10.202.0.1",))),
        lambda: store.put(Namespace("hot-ns")),
        lambda: store.delete("Service", ("shop", "hot")),
        lambda: store.delete("EndpointSlice", ("shop", "hot-x")),
        lambda: store.delete("Pod", ("shop", "hot-pod")),
        lambda: store.delete("Namespace", ("", "hot-ns")),
    ]


def test_applying_an_event_does_not_scan_the_cluster():
    """Adding, updating and deleting one object runs the same code in a Store of 10 and of 3,000 per kind."""
    small, large = Store(clock=FakeClock()), Store(clock=FakeClock())
    _fill(small, 10)
    _fill(large, 3000)
    assert _traced_lines(_one_of_each_event(large)) == _traced_lines(_one_of_each_event(small))
