"""The table of rendered answers: its bound in bytes, CLOCK eviction and dependency index."""

from __future__ import annotations

import gc
import tracemalloc

import dns.message
from twisted.internet import task

from discovery.cache.store import Store
from discovery.config import load_text
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.compress import Rendered
from discovery.dns.request import FastPathPolicy
from discovery.dns.server import BlockRuntime, DNSServer, _Entry, _Kind, _question_end, _UDPProtocol
from discovery.dns.table import NEGATIVE_SHARE, AnswerTable

from .zone_fixture import ZONES, cluster

_WIRE = dns.message.make_response(dns.message.make_query("web.default.svc.cluster.local.", "A")).to_wire()
_QEND = _question_end(_WIRE)


def entry() -> _Entry:
    return _Entry(Rendered(_WIRE, False, len(_WIRE)), [_WIRE], _QEND, FastPathPolicy(), 0.0, _Kind(None, "cluster.local.", 0, "kubernetes"))


def key(n: int) -> bytes:
    return b"\x04name" + str(n).encode().rjust(8, b"0") + b"\x00\x00\x01\x00\x01\x00"


def sized_for(entries: int, tokens=()) -> AnswerTable:
    """A table whose limit holds about this many entries like `entry()` with these tokens."""
    probe = AnswerTable(limit=1 << 20)
    probe.put(key(0), entry(), tokens)
    room = (probe.bytes - probe._reserved) * entries + (probe.bytes - probe._reserved) // 2
    limit = room
    while limit - AnswerTable(limit)._reserved < room:
        limit += 16
    return AnswerTable(limit)


def test_the_table_never_holds_more_bytes_than_its_limit():
    """However many answers arrive, the bytes charged stay within the limit."""
    table = sized_for(100, tokens=[("namespace", "a")])
    for n in range(5000):
        table.put(key(n), entry(), [("namespace", "a"), ("address", str(n))])
        assert table.bytes <= table.limit
    assert 0 < len(table) <= 100


def test_the_charge_covers_what_the_table_really_holds():
    """tracemalloc's count of everything the table keeps alive, indexes included, is within the bytes charged."""
    table = AnswerTable(limit=64 << 20)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] - table.bytes
    for n in range(20_000):
        tokens = [("namespace", f"ns-{n % 50}"), ("address", f"10.0.{n // 256}.{n % 256}"), ("serial",)]
        table.put(key(n), entry(), tokens)
    del tokens
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert used <= table.bytes


def test_evicted_answers_leave_the_dependency_index():
    """A stream of answers with tokens of their own keeps the index as small as the table."""
    table = sized_for(50, tokens=[("address", "x")])
    for n in range(2000):
        table.put(key(n), entry(), [("address", str(n))])
    assert len(table._by_token) == len(table) <= 50


def test_a_scan_does_not_evict_the_answers_asked_often():
    """A flood of names asked once passes through; the hot set, asked between them, stays."""
    table = sized_for(200)
    hot = [key(n) for n in range(100)]
    for item in hot:
        table.put(item, entry(), ())
    for n in range(10_000):
        found = table.entries.get(hot[n % 100])
        if found is not None:
            found.referenced = True
        else:
            table.put(hot[n % 100], entry(), ())
        table.put(key(1_000_000 + n), entry(), ())
    assert all(item in table.entries for item in hot)


def test_a_cyclic_working_set_larger_than_the_table_costs_one_eviction_per_miss():
    """Three times the table's size asked in a loop: each miss evicts exactly one answer."""
    table = sized_for(100)
    misses = 0
    for n in range(3000):
        k = key(n % 300)
        found = table.entries.get(k)
        if found is None:
            misses += 1
            table.put(k, entry(), ())
        else:
            found.referenced = True
    assert table.evictions == misses - len(table)


def test_invalidation_drops_exactly_the_dependants():
    """Answers that name the token go; the others stay."""
    table = AnswerTable()
    table.put(key(1), entry(), [("service", "a", "web")])
    table.put(key(2), entry(), [("service", "a", "db")])
    dropped = table.invalidate([("service", "a", "web")])
    assert [k for k, _ in dropped] == [key(1)] and list(table.entries) == [key(2)]


def _unique_name_server(limit: int):
    config = load_text(f"{' '.join(ZONES)} {{\n    kubernetes\n}}\n").servers[0].plugin("kubernetes")
    clock = task.Clock()
    clock.advance(1_000_000)
    block = BlockRuntime(zones=ZONES, server="dns://:53", plugins=[KubernetesPlugin(config, cluster(), True, clock)])
    server = DNSServer(clock, [block], port=0, table_limit=limit)
    protocol = _UDPProtocol(server)
    protocol.sendto = lambda wire, addr: None
    return server, protocol


def test_a_flood_of_names_asked_once_barely_enters_the_table():
    """Unique NXDOMAIN names through the server: answered, at most the filter's mistakes (5 %) kept."""
    server, protocol = _unique_name_server(128 << 10)
    for n in range(5_000):
        protocol.datagramReceived(dns.message.make_query(f"n{n}.example.testns.svc.cluster.local.", "A").to_wire(), ("192.0.2.1", 53))
    assert len(server.table) + len(server.table.negatives) <= 5_000 * 0.05
    assert server.table._sightings <= server.table._sightings_limit


def _spelled(name: str, seed: int) -> str:
    """name with its letters upper-cased where seed's bits say: a distinct question per seed."""
    letters = iter(range(len(name)))
    return "".join(c.upper() if c.isalpha() and seed >> next(letters) & 1 else c for c in name)


def test_answers_asked_twice_fill_the_table_only_to_its_limit():
    """Repeated questions are kept from their second sighting, and the table stays within its bytes."""
    server, protocol = _unique_name_server(128 << 10)
    for n in range(3_000):
        query = dns.message.make_query(_spelled("svc1.testns.svc.cluster.local.", n), "A").to_wire()
        protocol.datagramReceived(query, ("192.0.2.1", 53))
        protocol.datagramReceived(query, ("192.0.2.1", 53))
    assert server.table.bytes <= 128 << 10
    assert len(server.table._by_token) <= len(server.table) + 10
    assert server.table.evictions > 0


def test_negative_answers_asked_twice_take_at_most_their_share_of_the_table():
    """NXDOMAIN answers kept by question stay within NEGATIVE_SHARE of the bound, the whole within the bound."""
    server, protocol = _unique_name_server(128 << 10)
    for n in range(3_000):
        query = dns.message.make_query(f"n{n}.example.testns.svc.cluster.local.", "A").to_wire()
        protocol.datagramReceived(query, ("192.0.2.1", 53))
        protocol.datagramReceived(query, ("192.0.2.1", 53))
    assert server.table.negatives
    assert server.table._negative_bytes <= (128 << 10) * NEGATIVE_SHARE
    assert server.table.bytes <= 128 << 10


def test_the_charge_covers_negative_answers_from_the_fast_route():
    """NXDOMAIN answers kept by question (shared entries) cost no more than charged."""
    server, protocol = _unique_name_server(64 << 20)
    queries = [dns.message.make_query(f"n{n}.example.testns.svc.cluster.local.", "A").to_wire() for n in range(3000)]
    for query in queries:
        protocol.datagramReceived(query, ("192.0.2.1", 53))
    protocol.datagramReceived(queries[0], ("192.0.2.1", 53))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    charged = server.table.bytes
    for query in queries[1:]:
        protocol.datagramReceived(query, ("192.0.2.1", 53))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert used <= server.table.bytes - charged


def test_the_charge_covers_answers_from_the_fast_route():
    """Positive answers the server renders on the fast route (`_FastEntry`) cost no more than charged."""
    server, protocol = _unique_name_server(64 << 20)

    def queries(spellings: range) -> list[bytes]:
        return [
            dns.message.make_query(_spelled(name, n), qtype).to_wire()
            for n in spellings
            for name, qtype in (("svc1.testns.svc.cluster.local.", "A"), ("_http._tcp.svc1.testns.svc.cluster.local.", "SRV"))
        ]

    # Other spellings first: the zone function's own memos fill here.
    for query in queries(range(1500, 1600)):
        protocol.datagramReceived(query, ("192.0.2.1", 53))
    traced = queries(range(1500))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    charged = server.table.bytes
    for query in traced:
        protocol.datagramReceived(query, ("192.0.2.1", 53))
    del query
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(server.table) == 200 + len(traced)
    assert used <= server.table.bytes - charged


def test_while_the_table_has_room_an_answer_is_kept_at_its_first_sighting():
    """No eviction to fear: the fast route keeps what it rendered at once."""
    server, protocol = _unique_name_server(1 << 20)
    protocol.datagramReceived(dns.message.make_query("svc1.testns.svc.cluster.local.", "A").to_wire(), ("192.0.2.1", 53))
    assert len(server.table) == 1


def test_once_the_table_is_full_answers_asked_once_evict_nothing():
    """A full table keeps new answers from their second sighting only: one-off spellings pass by."""
    server, protocol = _unique_name_server(128 << 10)
    n = 0
    while server.table.has_room():
        protocol.datagramReceived(dns.message.make_query(_spelled("svc1.testns.svc.cluster.local.", n), "A").to_wire(), ("192.0.2.1", 53))
        n += 1
    held = set(server.table.entries)
    for m in range(n, n + 500):
        protocol.datagramReceived(dns.message.make_query(_spelled("svc1.testns.svc.cluster.local.", m), "A").to_wire(), ("192.0.2.1", 53))
    assert len(held - set(server.table.entries)) <= 500 * 0.05
