"""The server's fast route for misses sends the bytes the full path would send.

The fast route (`DNSServer.fast_miss`) writes the kubernetes plugin's
answer straight to wire format (`discovery.dns.wire`) instead of building
dnspython messages; these tests hold it to the full path (the plugin's
`serve`, which turns the pure zone function's answer into a `Message`, and
dnspython's rendering), byte for byte, over generated clusters and every
question shape: case, EDNS or not, DO, and sizes that truncate.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import task

from discovery.cache.objects import Endpoint, EndpointPort, EndpointSlice, Namespace, Service, ServicePort
from discovery.cache.store import Store
from discovery.config import load_text
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.server import BlockRuntime, DNSServer, _checked_name, _UDPProtocol

from .test_zone_dependencies import QUESTIONS, objects
from .zone_fixture import ZONES, ask, cluster

CLIENT = ("192.0.2.7", 5353)

#: `kubernetes` option lines, with the addresses the server answers on.
OPTION_SETS = [
    ((), ()),
    (("pods verified", "endpoint_pod_names"), ("172.0.0.1",)),
    (("pods insecure", "namespaces a", "ignore empty_service"), ()),
    (("noendpoints", "namespace_labels team=x"), ("10.0.0.1", "fd00::1")),
    (("labels app=web", "ttl 0"), ()),
    (("fallthrough in-addr.arpa",), ()),
]


class _Servers:
    """Two servers over one Store: one with the fast route, one forced onto the full path."""

    def __init__(self, store: Store, lines=(), local_ips=(), loadbalance=False, zones=ZONES):
        body = "\n".join(f"        {line}" for line in lines)
        corefile = f"{' '.join(zones)} {{\n    kubernetes {{\n{body}\n    }}\n}}\n"
        config = load_text(corefile).servers[0].plugin("kubernetes")
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.fast, self.fast_sent = self._server(config, store, local_ips, loadbalance, zones)
        self.full, self.full_sent = self._server(config, store, local_ips, loadbalance, zones)
        self.full.server.fast_miss = lambda *args: None

    def _server(self, config, store, local_ips, loadbalance, zones):
        plugin = KubernetesPlugin(config, store, True, self.clock, local_ips=local_ips)
        block = BlockRuntime(zones=zones, server="dns://:53", plugins=[plugin], loadbalance=loadbalance)
        protocol = _UDPProtocol(DNSServer(self.clock, [block], port=0))
        sent: list[bytes] = []
        protocol.sendto = lambda wire, addr: sent.append(wire)
        return protocol, sent

    def both(self, wire: bytes) -> tuple[bytes, bytes]:
        self.fast.datagramReceived(wire, CLIENT)
        self.full.datagramReceived(wire, CLIENT)
        return self.fast_sent[-1], self.full_sent[-1]


def _mixed_case(name: str, mask: int) -> str:
    return "".join(c.upper() if c.isalpha() and mask >> (i % 30) & 1 else c for i, c in enumerate(name))


query_shapes = st.tuples(
    st.sampled_from(QUESTIONS),
    st.integers(0, 2**30 - 1),
    st.sampled_from([(-1, False, 512), (0, False, 1232), (0, True, 4096), (0, False, 512)]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(objects, max_size=12),
    option_set=st.sampled_from(OPTION_SETS),
    shapes=st.lists(query_shapes, min_size=1, max_size=12),
)
def test_the_fast_route_sends_the_full_paths_bytes(initial, option_set, shapes):
    """Over a generated cluster, every question gets the same bytes on both routes."""
    store = Store(clock=lambda: 1_700_000_000)
    for obj in initial:
        store.put(obj)
    servers = _Servers(store, *option_set)
    for (qname, qtype), mask, (edns, dnssec, payload) in shapes:
        wire = dns.message.make_query(
            _mixed_case(qname, mask), qtype, use_edns=edns, want_dnssec=dnssec, payload=payload, id=mask & 0xFFFF
        ).to_wire()
        fast, full = servers.both(wire)
        assert fast == full, (qname, qtype, edns, dnssec)


def test_the_usual_answers_take_the_fast_route():
    """A, AAAA, SRV, PTR, NXDOMAIN, NODATA, SOA and the ExternalName CNAME are rendered without dnspython messages."""
    servers = _Servers(cluster())
    questions = [
        ("svc1.testns.svc.cluster.local.", "A"),
        ("svc1.testns.svc.cluster.local.", "AAAA"),
        ("_http._tcp.svc1.testns.svc.cluster.local.", "SRV"),
        ("1.0.0.10.in-addr.arpa.", "PTR"),
        ("nothing.testns.svc.cluster.local.", "A"),
        ("cluster.local.", "SOA"),
    ]
    for qname, qtype in questions:
        # Kept from the second sighting on (AnswerTable.admit).
        servers.both(dns.message.make_query(qname, qtype).to_wire())
        servers.both(dns.message.make_query(qname, qtype).to_wire())
    table = servers.fast.server.table
    # Negative answers (NXDOMAIN, NODATA) are kept by question, as shared entries.
    entries = [*table.entries.values(), *table.negatives.values()]
    assert sum(entry.prepared for entry in entries) == len(questions)


def test_a_fast_answer_decodes_to_the_zone_functions_answer():
    """The rendered sections are the zone function's RRsets."""
    store = cluster()
    servers = _Servers(store)
    for qname, qtype in [("_http._tcp.svc1.testns.svc.cluster.local.", "SRV"), ("x.testns.svc.cluster.local.", "A")]:
        fast, _ = servers.both(dns.message.make_query(qname, qtype).to_wire())
        got = dns.message.from_wire(fast)
        want = ask(store, KubernetesPlugin(_config(), store, True, servers.clock)._options, qname, qtype)
        assert (got.rcode(), got.answer, got.authority, got.additional) == (
            want.rcode, list(want.answer), list(want.authority), list(want.additional)
        )


def test_an_answer_larger_than_the_client_takes_is_truncated_as_on_the_full_path():
    """A headless Service with many endpoints: TC over UDP without EDNS, same bytes both ways."""
    store = Store(clock=lambda: 1_700_000_000)
    store.put(Namespace("big"))
    store.put(Service("big", "many", headless=True))
    endpoints = tuple(Endpoint((f"10.1.{i // 250}.{i % 250 + 1}",), hostname=f"host-{i}") for i in range(60))
    store.put(EndpointSlice("big", "many-a", "many", "IPv4", endpoints, (EndpointPort("http", "TCP", 80),)))
    servers = _Servers(store)
    for edns in (-1, 0):
        fast, full = servers.both(dns.message.make_query("_http._tcp.many.big.svc.cluster.local.", "SRV", use_edns=edns).to_wire())
        assert fast == full
    assert dns.message.from_wire(fast, ignore_trailing=True).flags & dns.flags.TC


def test_loadbalance_answers_with_several_addresses_stay_on_the_full_path():
    """Rotations come from the full path: the fast route steps aside for them."""
    store = Store(clock=lambda: 1_700_000_000)
    store.put(Namespace("ns"))
    store.put(Service("ns", "dual", cluster_ips=("10.0.0.1", "10.0.0.2"), ports=(ServicePort("http", "TCP", 80),)))
    servers = _Servers(store, loadbalance=True)
    fast, full = servers.both(dns.message.make_query("dual.ns.svc.cluster.local.", "A").to_wire())
    assert fast == full
    assert not any(entry.prepared for entry in servers.fast.server.table.entries.values())


def _config():
    return load_text(f"{' '.join(ZONES)} {{\n    kubernetes\n}}\n").servers[0].plugin("kubernetes")


def test_an_edns_answer_made_from_the_plain_one_is_the_full_paths():
    """After a plain question, the EDNS and DO variants (plain rendering + OPT) match the full path."""
    servers = _Servers(cluster())
    for edns, dnssec in ((-1, False), (-1, False), (0, False), (0, True)):
        fast, full = servers.both(
            dns.message.make_query("_http._tcp.SVC1.testns.svc.cluster.local.", "SRV", use_edns=edns, want_dnssec=dnssec).to_wire()
        )
        assert fast == full


def test_a_negative_answer_carries_the_serial_of_the_latest_change():
    """An NXDOMAIN asked again after a change to another Service has the new serial, as the full path does."""
    now = [1_700_000_000]
    store = cluster(clock=lambda: now[0])
    servers = _Servers(store)
    query = dns.message.make_query("nothing.testns.svc.cluster.local.", "A").to_wire()
    servers.both(query)
    servers.both(query)
    now[0] += 7
    store.put(Service("other", "unrelated", cluster_ips=("10.9.9.9",)))
    fast, full = servers.both(query)
    assert fast == full
    assert dns.message.from_wire(fast).authority[0][0].serial == 1_700_000_007


def test_a_name_kept_as_nxdomain_answers_once_its_service_appears():
    """Negative answers are kept without dependencies: any Store change forgets them."""
    store = cluster()
    servers = _Servers(store)
    query = dns.message.make_query("late.testns.svc.cluster.local.", "A").to_wire()
    servers.both(query)
    servers.both(query)
    assert servers.fast.server.table.negatives
    store.put(Service("testns", "late", cluster_ips=("10.0.0.99",)))
    fast, full = servers.both(query)
    assert fast == full
    assert dns.message.from_wire(fast).answer[0][0].address == "10.0.0.99"


def test_negative_answers_of_one_shape_share_one_entry():
    """Two new names in the same zone spelling get one entry: a new name costs no rendering."""
    servers = _Servers(cluster())
    table = servers.fast.server.table
    for name in ("one", "two", "one", "two"):
        fast, full = servers.both(dns.message.make_query(f"{name}.testns.svc.cluster.local.", "A").to_wire())
        assert fast == full
    first, second = table.negatives.values()
    assert first is second


def test_a_negative_answer_past_512_bytes_is_not_shared():
    """A shared entry serves every client size only while the answer fits 512 bytes.

    Under a long zone (spelled out three times in the SOA), a long name's
    NXDOMAIN does not fit: a client without EDNS gets it compressed, as
    from the full path, even after a short name made the shared entry.
    """
    zone = "a" * 45 + "." + "b" * 45 + ".example."
    servers = _Servers(Store(clock=lambda: 1_700_000_000), zones=(zone,))
    long_name = "c" * 60 + "." + "d" * 60 + ".ns.svc." + zone
    for name, edns in (("short.ns.svc." + zone, -1), (long_name, -1), (long_name, 0), (long_name, -1)):
        fast, full = servers.both(dns.message.make_query(name, "A", use_edns=edns).to_wire())
        assert fast == full
    assert len(fast) <= 512


@given(st.lists(st.binary(min_size=1, max_size=63).map(lambda b: bytes(c % 26 + 97 for c in b)), max_size=3))
def test_a_name_made_without_validation_is_dnspythons_name(labels):
    """`_checked_name` skips the checks the hit path has made: the result is the Name dnspython makes."""
    made, expected = _checked_name([*labels, b""]), dns.name.Name([*labels, b""])
    assert (made, hash(made), made.labels, made.to_wire(), made.to_text()) == (
        expected, hash(expected), expected.labels, expected.to_wire(), expected.to_text()
    )


def test_a_label_holding_a_dot_is_not_read_as_two_labels():
    """svc1.testns.svc.cluster\\.local is not in cluster.local: no zone serves it, on both routes."""
    servers = _Servers(cluster())
    query = dns.message.make_query(dns.name.Name([b"svc1", b"testns", b"svc", b"cluster.local", b""]), "A").to_wire()
    fast, full = servers.both(query)
    assert fast == full
    assert dns.message.from_wire(fast).rcode() == dns.rcode.REFUSED
