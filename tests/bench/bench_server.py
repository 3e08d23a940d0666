"""Per-query CPU cost in the server, with and without the table of rendered answers.

    python -m tests.bench.bench_server [--services 10000] [--queries 20000]

In-process, no sockets: datagrams go straight into the server's UDP protocol
(the send is a no-op), with the kubernetes plugin over a Store of SERVICES
Services and the DNS metrics on, as in the kubeadm Corefile. Printed:
microseconds per query on the full path (parse, plugin chain, render: what
every query cost before the table existed, measured here by emptying the
table before each query) and from the table (the same questions asked
again), and the ratio. Asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import dns.message
from twisted.internet import task

from discovery.config import load_text
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.server import BlockRuntime, DNSServer, _UDPProtocol
from discovery.ops.metrics import DNSMetrics
from tests.bench.bench_zone import build_store

COREFILE = ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        manifests /unused\n    }\n}\n"
CLIENT = ("192.0.2.7", 5353)


def queries(services: int, count: int) -> list[bytes]:
    wires = []
    for n in range(count):
        name = f"svc-{n % services}.ns-{n % services % 100}.svc.cluster.local."
        if n % 3 == 1:
            name = "_http._tcp." + name
        elif n % 3 == 2:
            name = name + "ns-7.svc.cluster.local."
        rdtype = "SRV" if n % 3 == 1 else "A"
        wires.append(dns.message.make_query(name, rdtype, use_edns=0, id=n % 65536).to_wire())
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
    parser.add_argument("--queries", type=int, default=20_000)
    args = parser.parse_args(argv)
    store = build_store(args.services)
    clock = task.Clock()
    clock.advance(1_000_000)
    config = load_text(COREFILE).servers[0].plugin("kubernetes")
    plugin = KubernetesPlugin(config, store, True, clock)
    block = BlockRuntime(zones=(".",), server="dns://:53", plugins=[plugin], metrics=DNSMetrics())
    server = DNSServer(clock, [block], port=53)
    protocol = _UDPProtocol(server)
    protocol.sendto = lambda wire, address: None
    wires = queries(args.services, args.queries)
    # A mix of A, SRV and search-list NXDOMAIN questions, one third each.
    full = min(timed(protocol, wires, server.table.clear) for _ in range(3))
    timed(protocol, wires)
    hit = min(timed(protocol, wires) for _ in range(3))
    print(f"{args.services} Services; {args.queries} questions (A, SRV, search-list NXDOMAIN), metrics on; best of 3")
    print(f"  full path (parse, plugins, render): {full * 1e6:8.1f} us/query  ({1 / full:,.0f} queries/s on one core)")
    print(f"  from the table of rendered answers: {hit * 1e6:8.1f} us/query  ({1 / hit:,.0f} queries/s on one core)")
    print(f"  the table is {full / hit:.0f} times cheaper")


if __name__ == "__main__":
    main()
