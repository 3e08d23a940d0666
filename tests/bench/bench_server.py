"""Per-query CPU cost in the server: answers not in the table, and answers from it.

    python -m tests.bench.bench_server [--services 10000] [--queries 20000]

In-process, no sockets: datagrams go straight into the server's UDP protocol
(the send is a no-op), with the kubernetes plugin over a Store of SERVICES
Services and the DNS metrics on, as in the kubeadm Corefile. Printed,
microseconds per query:

* every name new: unique search-path NXDOMAIN names, never asked before
  (the fast route: zone function + wire renderer);
* existing names, each query in a spelling never asked before (0x20
  case, as resolvers that randomise it send): A and SRV of Services, what a
  miss costs after eviction or a change;
* the former mix (A, SRV, search-list NXDOMAIN, each in a new spelling),
  on the fast route and, for comparison, on the full dnspython path
  (`--no-fast` forces it for every row);
* from the table (the same questions asked again);
* the search-path mix of tests/bench/bench_dns_miss.py (per Service four
  NXDOMAIN and four answered questions: 80,000 at 10,000 Services) asked
  three times over, on a fresh server whose answers were prepared: the cost
  per question of each pass and the table's bytes after it (what the live
  `sequence: search-mix` figure is made of);
* a hot set of 20,000 questions (Service A and SRV) at 50 % of the traffic,
  the other 50 % unique names, with the table at its default bound: the
  hot set's hit rate once each hot question has been asked twice (answers
  are kept from the second sighting), and the mean cost per query.

Asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

import dns.message
from twisted.internet import task

from discovery.config import load_text
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.server import BlockRuntime, DNSServer, _UDPProtocol
from discovery.ops.metrics import DNSMetrics
from tests.bench.bench_dns_miss import search_mix
from tests.bench.bench_zone import build_store

COREFILE = ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        manifests /unused\n    }\n}\n"
CLIENT = ("192.0.2.7", 5353)


def queries(services: int, count: int, spelling: int | None = None) -> list[bytes]:
    """The mix; each name in its own 0x20 spelling when spelling (a seed) is given."""
    wires = []
    for n in range(count):
        name = f"svc-{n % services}.ns-{n % services % 100}.svc.cluster.local."
        if n % 3 == 1:
            name = "_http._tcp." + name
        elif n % 3 == 2:
            name = name + "ns-7.svc.cluster.local."
        rdtype = "SRV" if n % 3 == 1 else "A"
        if spelling is not None:
            name = spelled(name, spelling + n)
        wires.append(dns.message.make_query(name, rdtype, use_edns=0, id=n % 65536).to_wire())
    return wires


def spelled(name: str, seed: int) -> str:
    """name with its letters in upper case where seed's bits say: a spelling per seed."""
    out = []
    bit = 0
    for char in name:
        if char.isalpha():
            out.append(char.upper() if seed >> bit & 1 else char)
            bit += 1
        else:
            out.append(char)
    return "".join(out)


def unique_nxdomain(services: int, count: int, salt: str = "") -> list[bytes]:
    """Names as a Pod's search path makes them for outside names: each one new."""
    return [
        dns.message.make_query(
            f"host-{salt}{n}.example.ns-{n % 100}.svc.cluster.local.", "A", use_edns=0, id=n % 65536
        ).to_wire()
        for n in range(count)
    ]


def existing(services: int, count: int, spelling: int | None = None) -> list[bytes]:
    """A and SRV questions for Services: distinct up to twice the Services,
    or every one when spelling (a seed) gives each its own 0x20 spelling."""
    wires = []
    for n in range(count):
        name = f"svc-{n % services}.ns-{n % services % 100}.svc.cluster.local."
        srv = (n + n // services) % 2 == 1
        name = ("_http._tcp." + name) if srv else name
        if spelling is not None:
            name = spelled(name, spelling + n)
        wires.append(dns.message.make_query(name, "SRV" if srv else "A", id=n % 65536).to_wire())
    return wires


def timed(protocol: _UDPProtocol, wires: list[bytes], before_each=None, clock=time.perf_counter) -> float:
    started = clock()
    for wire in wires:
        if before_each is not None:
            before_each()
        protocol.datagramReceived(wire, CLIENT)
    return (clock() - started) / len(wires)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=20_000, help="at most 100,000 (distinct spellings)")
    parser.add_argument("--no-fast", action="store_true", help="every miss on the full dnspython path")
    args = parser.parse_args(argv)
    store = build_store(args.services)
    # As the application does once its caches have synced (app._settle_memory).
    gc.collect()
    gc.freeze()
    clock = task.Clock()
    clock.advance(1_000_000)
    config = load_text(COREFILE).servers[0].plugin("kubernetes")
    plugin = KubernetesPlugin(config, store, True, clock)
    block = BlockRuntime(zones=(".",), server="dns://:53", plugins=[plugin], metrics=DNSMetrics())
    server = DNSServer(clock, [block], port=53)
    protocol = _UDPProtocol(server)
    protocol.sendto = lambda wire, address: None
    if args.no_fast:
        server.fast_miss = lambda *a: None
    rows = []
    rows.append(("every name new (unique NXDOMAIN)", statistics.median([
        timed(protocol, unique_nxdomain(args.services, args.queries, f"r{r}-")) for r in range(3)
    ])))
    # Seeds a round apart: no spelling is asked twice (a name of the
    # cluster has at least 20 letters: 2**20 spellings).
    n = args.queries
    rows.append(("existing names, every spelling new", statistics.median([
        timed(protocol, existing(args.services, n, r * n)) for r in range(3)
    ])))
    # A mix of A, SRV and search-list NXDOMAIN questions, one third each.
    rows.append(("mix (A, SRV, NXDOMAIN), every spelling new", statistics.median([
        timed(protocol, queries(args.services, n, (r + 3) * n)) for r in range(3)
    ])))
    if not args.no_fast:
        server.fast_miss = lambda *a: None
        rows.append(("  the same on the full dnspython path", statistics.median([
            timed(protocol, queries(args.services, n, (r + 6) * n)) for r in range(3)
        ])))
        del server.fast_miss
    wires = queries(args.services, args.queries)
    timed(protocol, wires)
    hit = statistics.median([timed(protocol, wires) for _ in range(3)])
    rows.append(("from the table of rendered answers", hit))
    hot_rate, flood_cost = hot_set_under_a_flood(server, protocol, args.services, max(args.queries, 120_000))
    rows.append(("hot set 50 % + unique names 50 %", flood_cost))
    print(f"{args.services} Services; {args.queries} questions per row, metrics on; median of 3")
    for label, cost in rows:
        print(f"  {label:40s} {cost * 1e6:8.1f} us/query  ({1 / cost:,.0f} queries/s on one core)")
    print(f"  hot set hit rate under the flood: {hot_rate:.3f} (table {server.table.bytes / 2**20:.1f} of {server.table.limit / 2**20:.0f} MiB, {len(server.table):,} answers)")
    for number, (cost, used, limit, answers, negatives) in enumerate(search_mix_passes(store, config, args.services), 1):
        print(f"  search-path mix, pass {number}: {cost * 1e6:6.1f} us/question"
              f"  (table {used / 2**20:.1f} of {limit / 2**20:.0f} MiB: {answers:,} answers, {negatives:,} negative)")


def search_mix_passes(store, config, services: int):
    """A fresh server with its answers prepared; per pass of three: seconds per question, then the
    table's bytes, bound, answers and negative answers after it."""
    clock = task.Clock()
    clock.advance(1_000_000)
    plugin = KubernetesPlugin(config, store, True, clock)
    server = DNSServer(clock, [BlockRuntime(zones=(".",), server="dns://:53", plugins=[plugin], metrics=DNSMetrics())], port=53)
    protocol = _UDPProtocol(server)
    protocol.sendto = lambda wire, address: None
    server.prepare(plugin.questions())
    while server.preparing or server._preparing is not None:
        clock.advance(1)
    lines = search_mix([{"metadata": {"name": f"svc-{n}", "namespace": f"ns-{n % 100}"}} for n in range(services)], random.Random(1))
    wires = [dns.message.make_query(name + ".", rdtype, id=n % 65536).to_wire() for n, (name, rdtype) in enumerate(line.split() for line in lines)]
    passes = []
    table = server.table
    for _ in range(3):
        passes.append((timed(protocol, wires), table.bytes, table.limit, len(table), len(table.negatives)))
    return passes


def hot_set_under_a_flood(server: DNSServer, protocol: _UDPProtocol, services: int, count: int) -> tuple[float, float]:
    """Alternate a question of the hot set and a unique name; (hot hits / hot questions, seconds per query)."""
    server.table.clear()
    hot = existing(services, 20_000)
    flood = unique_nxdomain(services, count // 2, "flood-")
    for wire in hot:
        protocol.datagramReceived(wire, CLIENT)
    entries = server.table.entries
    hits = asked = 0
    started = time.perf_counter()
    for n in range(count // 2):
        wire = hot[n % len(hot)]
        before = len(entries), server.table.evictions
        protocol.datagramReceived(wire, CLIENT)
        if n >= len(hot):
            # After one cycle, every hot question has had its second sighting.
            asked += 1
            hits += (len(entries), server.table.evictions) == before
        protocol.datagramReceived(flood[n], CLIENT)
    return hits / max(asked, 1), (time.perf_counter() - started) / count


if __name__ == "__main__":
    main()
