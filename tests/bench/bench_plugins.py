"""Per-query CPU of the small plugins in front of the cluster zone, from the table and on the full path.

    python -m tests.bench.bench_plugins [--services 2000] [--queries 6000]

In-process, no sockets, as bench_server: datagrams go straight into the
server's UDP protocol, for the same mix of A, SRV and search-list NXDOMAIN
questions under `kubernetes`, with each plugin alone in front of it, built
from its declaration as the application builds it. Printed: microseconds per
query from the table of rendered answers (what a guard costs: acl re-decides
for the client, nsid scans the OPT options) and on the full path (the
plugin's own work per miss), beside the block without the plugin; the median of 5 rounds
that interleave the variants.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import types

from prometheus_client import CollectorRegistry
from twisted.internet import task

from discovery import plugin as declared
from discovery.config import load_text
from discovery.dns.server import BlockRuntime, DNSServer, _UDPProtocol
from discovery.plugin import BuildContext
from tests.bench.bench_server import queries, timed
from tests.bench.bench_zone import build_store

KUBERNETES = "kubernetes cluster.local in-addr.arpa ip6.arpa {\n        manifests /unused\n    }"
VARIANTS = {
    "kubernetes alone": "",
    "bufsize 1232": "bufsize 1232",
    "acl (guarded hits)": "acl {\n        block net 10.0.0.0/8\n    }",
    "nsid (guarded hits)": "nsid node-1",
    "header": "header {\n        response set ra\n    }",
    "local": "local",
    "any": "any",
    "chaos": "chaos",
    "minimal": "minimal",
}


def protocol_for(directive: str, store, clock) -> tuple[DNSServer, _UDPProtocol]:
    (block,) = load_text(f".:53 {{\n    {directive}\n    {KUBERNETES}\n}}\n").servers
    # The watch cache, synced: what Application's cache_for hands the kubernetes plugin.
    cache = types.SimpleNamespace(store=store, source=types.SimpleNamespace(synced=True))
    context = BuildContext(clock, CollectorRegistry(), "dns://:53", block, ("", 53), lambda source: cache)
    chain = [declared.spec(name).build(config, context) for name, config in block.plugins
             if declared.spec(name).build is not None]
    server = DNSServer(clock, [BlockRuntime(zones=(".",), server="dns://:53", plugins=chain)], port=53)
    protocol = _UDPProtocol(server)
    protocol.sendto = lambda wire, address: None
    return server, protocol


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_plugins", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=6000)
    args = parser.parse_args(argv)
    store = build_store(args.services)
    clock = task.Clock()
    clock.advance(1_000_000)
    wires = queries(args.services, args.queries)
    print(f"{args.services} Services; {args.queries} questions (A, SRV, search-list NXDOMAIN); median of 5 rounds")
    built = {label: protocol_for(directive, store, clock) for label, directive in VARIANTS.items()}
    full: dict[str, list[float]] = {label: [] for label in built}
    hit: dict[str, list[float]] = {label: [] for label in built}
    # Rounds interleave the variants, so that a busy neighbour slows them alike.
    for _ in range(5):
        for label, (server, protocol) in built.items():
            full[label].append(timed(protocol, wires, server.table.clear))
            timed(protocol, wires)
            hit[label].append(timed(protocol, wires))
    print(f"  {'block':22} {'table us/query':>15} {'full path us/query':>19}")
    for label in built:
        print(f"  {label:22} {statistics.median(hit[label]) * 1e6:15.2f} {statistics.median(full[label]) * 1e6:19.1f}")

if __name__ == "__main__":
    main()
