"""An answer lists every Store fact it depends on.

The server reuses a rendered answer until a Store change touches one of its
dependencies; so whenever a change alters an answer, one of the change's
tokens (`change_dependencies`) must be among the dependencies the answer
had before the change.
"""

import ipaddress

import dns.name
import dns.rcode
import dns.rdatatype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.cache.objects import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Namespace,
    Pod,
    Service,
    ServicePort,
    TargetRef,
)
from discovery.cache.store import Store
from discovery.dns.zone import answer, change_dependencies

from .zone_fixture import ask, lines, options

NAMESPACES = ["a", "b"]
SERVICES = ["web", "db"]
IPS = ["10.0.0.1", "10.0.0.2", "172.0.0.1", "172.0.0.2", "fd00::1"]
PORTS = [ServicePort("http", "TCP", 80), ServicePort("dns", "UDP", 53)]


def _reverse(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


QUESTIONS = [
    (f"{name}{suffix}", qtype)
    for suffix in (".a.svc.cluster.local.", ".b.svc.cluster.local.", ".A.Svc.Cluster.Local.")
    for name, qtype in (
        ("web", "A"),
        ("web", "AAAA"),
        ("web", "SRV"),
        ("web", "CNAME"),
        ("web", "TXT"),
        ("db", "A"),
        ("_http._tcp.web", "SRV"),
        ("_dns._udp.db", "SRV"),
        ("host.web", "A"),
        ("172-0-0-1.web", "A"),
        ("172-0-0-2.db", "SRV"),
        ("pod-1.web", "A"),
    )
] + [
    ("a.svc.cluster.local.", "A"),
    ("b.svc.cluster.local.", "TXT"),
    ("cluster.local.", "SOA"),
    ("cluster.local.", "NS"),
    ("cluster.local.", "A"),
    ("ns.dns.cluster.local.", "A"),
    ("ns.dns.cluster.local.", "AAAA"),
    ("dns-version.cluster.local.", "TXT"),
    ("10-0-0-1.a.pod.cluster.local.", "A"),
    ("172-0-0-2.b.pod.cluster.local.", "A"),
    ("fd00--1.a.pod.cluster.local.", "AAAA"),
    ("a.pod.cluster.local.", "A"),
] + [(_reverse(ip), qtype) for ip in IPS for qtype in ("PTR", "A")]

OPTION_SETS = [
    options(),
    options("pods verified", "endpoint_pod_names", local_ips=["172.0.0.1"]),
    options("pods insecure", "namespaces a", "ignore empty_service"),
    options("noendpoints", "namespace_labels team=x", local_ips=["10.0.0.1", "fd00::1"]),
    options("labels app=web", "ttl 0"),
]

labels = st.sampled_from([(), (("app", "web"),), (("team", "x"),)])


@st.composite
def services(draw):
    kind = draw(st.sampled_from(["ClusterIP", "headless", "ExternalName"]))
    common = dict(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=draw(st.sampled_from(SERVICES)),
        labels=draw(labels),
        publish_not_ready_addresses=draw(st.booleans()),
    )
    if kind == "headless":
        return Service(headless=True, **common)
    if kind == "ExternalName":
        target = draw(st.sampled_from(["example.org", "web.a.svc.cluster.local", "db.b.svc.cluster.local"]))
        return Service(type="ExternalName", external_name=target, **common)
    ips = draw(st.lists(st.sampled_from(IPS), max_size=2, unique=True))
    ports = tuple(draw(st.lists(st.sampled_from(PORTS), max_size=2, unique=True)))
    return Service(cluster_ips=tuple(ips), ports=ports, **common)


@st.composite
def endpoint_slices(draw):
    endpoints = tuple(
        Endpoint(
            (draw(st.sampled_from(IPS)),),
            ready=draw(st.booleans()),
            hostname=draw(st.sampled_from([None, "host"])),
            target_ref=draw(st.sampled_from([None, TargetRef("Pod", "a", "pod-1")])),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    ports = tuple(
        draw(st.lists(st.sampled_from([EndpointPort("http", "TCP", 80), EndpointPort("dns", "UDP", 53)]), max_size=2))
    )
    return EndpointSlice(
        draw(st.sampled_from(NAMESPACES)),
        draw(st.sampled_from(["s1", "s2"])),
        draw(st.sampled_from(SERVICES)),
        draw(st.sampled_from(["IPv4", "IPv6"])),
        endpoints,
        ports,
        draw(labels),
    )


@st.composite
def pods(draw):
    return Pod(
        draw(st.sampled_from(NAMESPACES)),
        draw(st.sampled_from(["pod-1", "pod-2"])),
        ips=tuple(draw(st.lists(st.sampled_from(IPS), min_size=1, max_size=2, unique=True))),
        phase=draw(st.sampled_from(["Running", "Succeeded"])),
        deleting=draw(st.booleans()),
        labels=draw(labels),
    )


namespaces = st.builds(Namespace, st.sampled_from(NAMESPACES), labels)
objects = st.one_of(services(), endpoint_slices(), pods(), namespaces)


@st.composite
def edits(draw):
    """A put of a new or changed object, or a delete of a key that may exist."""
    obj = draw(objects)
    if draw(st.booleans()):
        return ("put", obj)
    return ("delete", type(obj).__name__, obj.key)


def render(got):
    return (
        dns.rcode.to_text(got.rcode),
        lines(got.answer),
        lines(got.authority),
        lines(got.additional),
        got.chase,
    )


def ask_all(store, zone_options):
    return {(qname, qtype): ask(store, zone_options, qname, qtype) for qname, qtype in QUESTIONS}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(objects, max_size=12),
    edit=edits(),
    zone_options=st.sampled_from(OPTION_SETS),
)
def test_an_answer_changes_only_through_its_dependencies(initial, edit, zone_options):
    """After any Store change, every answer that differs listed one of the change's tokens."""
    _assert_changes_go_through(initial, edit, zone_options, render, frozenset())


def _assert_changes_go_through(initial, edit, zone_options, view, ignored: frozenset) -> None:
    """Apply edit after initial: every answer whose view differs listed a change token not in ignored."""
    now = [1_700_000_000]
    store = Store(clock=lambda: now[0])
    for obj in initial:
        store.put(obj)
    before = ask_all(store, zone_options)
    now[0] += 1
    change = store.put(edit[1]) if edit[0] == "put" else store.delete(edit[1], edit[2])
    after = ask_all(store, zone_options)
    tokens = (change_dependencies(change) if change is not None else frozenset()) - ignored
    for question, old in before.items():
        if view(old) != view(after[question]):
            assert tokens & old.dependencies, (question, render(old), render(after[question]), tokens)


def _without_serial(rendered):
    """A rendered answer with the SOA serial (the Store's modification time) left out."""
    rcode, *sections, chase = rendered
    strip = lambda lines: [" ".join(line.split()[:6] + line.split()[7:]) if " SOA " in line else line for line in lines]
    return (rcode, *(strip(lines) for lines in sections), chase)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(objects, max_size=12),
    edit=edits(),
    zone_options=st.sampled_from(OPTION_SETS),
)
def test_an_answer_changes_beyond_its_serial_only_through_its_other_dependencies(initial, edit, zone_options):
    """Every answer that differs in more than the SOA serial listed one of the change's tokens other than the serial.

    The server keeps negative answers across changes and patches their
    serial in place (`DNSServer.fast_miss`), so these tokens alone must
    drop them when they stop being true.
    """
    _assert_changes_go_through(initial, edit, zone_options, lambda got: _without_serial(render(got)), frozenset({("serial",)}))


def test_a_service_change_touches_that_service_its_addresses_and_the_serial():
    """change_dependencies names the Service, every old and new IP, and the serial."""
    store = Store(clock=lambda: 1)
    store.put(Service("a", "web", cluster_ips=("10.0.0.1",)))
    change = store.put(Service("a", "web", cluster_ips=("10.0.0.2",)))
    assert change_dependencies(change) == {
        ("service", "a", "web"),
        ("address", "10.0.0.1"),
        ("address", "10.0.0.2"),
        ("serial",),
    }


def test_an_endpointslice_change_touches_its_service():
    """A slice belongs to the Service it names, not to its whole namespace."""
    store = Store(clock=lambda: 1)
    change = store.put(EndpointSlice("a", "web-x", "web", "IPv4", (Endpoint(("10.0.0.9",)),), ()))
    assert ("service", "a", "web") in change_dependencies(change)
    assert ("namespace", "a") not in change_dependencies(change)


def test_a_namespace_change_touches_that_namespace():
    """A Namespace object belongs to the namespace it names."""
    store = Store(clock=lambda: 1)
    assert ("namespace", "b") in change_dependencies(store.put(Namespace("b")))


def test_an_answer_without_store_facts_has_no_dependencies():
    """dns-version.<zone> depends on nothing in the Store."""
    got = answer(
        dns.name.from_text("dns-version.cluster.local."), dns.rdatatype.TXT, Store(), options(), "cluster.local."
    )
    assert got.dependencies == frozenset()


def test_a_negative_answer_depends_on_the_serial():
    """An answer carrying the SOA depends on the serial."""
    got = answer(dns.name.from_text("foo.cluster.local."), dns.rdatatype.A, Store(), options(), "cluster.local.")
    assert ("serial",) in got.dependencies
