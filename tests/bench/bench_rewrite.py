"""Per-query CPU cost of `rewrite` and `template`, on the full path and from the table of rendered answers.

    python -m tests.bench.bench_rewrite [--services 10000] [--queries 20000]

In-process, no sockets, as bench_server: datagrams go straight into the
server's UDP protocol, with the kubernetes plugin over a Store of SERVICES
Services and the DNS metrics on. Printed, in microseconds per query (median of
3), for the cluster-name mix of bench_server (A, SRV, search-list NXDOMAIN):

  no rewrite          the kubernetes plugin alone
  rewrite, no match   `rewrite name suffix .corp.example. .cluster.local. answer auto`,
                      asked the cluster names (the rule looks and passes)
  rewrite, match      the same rule, asked the names under .corp.example.

and for `template IN A example` answering ip-A-B-C-D.example (a regex match
and a render of one A record per query): the full path, and from the table.
Then the plugins alone, called with a next plugin that answers at once: what
a rule costs a query that reaches it. Times are CPU time of this process
(time.process_time), so that other load on the machine counts less.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import dns.message
from twisted.internet import task

from discovery.config import load_text
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.rewrite import RewritePlugin
from discovery.dns.server import BlockRuntime, DNSServer, _UDPProtocol
from discovery.dns.template import TemplatePlugin
from discovery.ops.metrics import DNSMetrics
from discovery.dns.request import Request
from tests.bench.bench_server import CLIENT, queries, timed
from tests.bench.bench_zone import build_store

COREFILE = """\
.:53 {
    rewrite name suffix .corp.example. .cluster.local. answer auto
    template IN A example {
        match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
        answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests /unused
    }
}
"""


def renamed(wires: list[bytes]) -> list[bytes]:
    """The same questions under corp.example instead of cluster.local."""
    out = []
    for wire in wires:
        query = dns.message.from_wire(wire)
        name = query.question[0].name.to_text().replace(".cluster.local.", ".corp.example.")
        out.append(dns.message.make_query(name, query.question[0].rdtype, use_edns=0, id=query.id).to_wire())
    return out


def template_queries(count: int) -> list[bytes]:
    return [
        dns.message.make_query(f"ip-10-{n // 65536 % 256}-{n // 256 % 256}-{n % 256}.example.", "A", use_edns=0,
                               id=n % 65536).to_wire()
        for n in range(count)
    ]


def server_for(plugins: list, clock) -> _UDPProtocol:
    block = BlockRuntime(zones=(".",), server="dns://:53", plugins=plugins, metrics=DNSMetrics())
    protocol = _UDPProtocol(DNSServer(clock, [block], port=53))
    protocol.sendto = lambda wire, address: None
    return protocol


def plugin_cost(plugin, wires: list[bytes]) -> float:
    """Seconds per query in plugin.serve alone, the next plugin answering an empty reply at once."""
    requests = []
    for wire in wires:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        requests.append(Request(query=query, qname=question.name, qtype=question.rdtype, qclass=question.rdclass,
                                zone=".", server="dns://:53", proto="udp", client=CLIENT, edns=True, max_size=1232))
    empty = dns.message.make_response(dns.message.make_query("x.", "A"))
    runs = []
    for _ in range(3):
        started = time.process_time()
        for request in requests:
            plugin.serve(request, lambda r: empty)
        runs.append((time.process_time() - started) / len(requests))
    return statistics.median(runs)


def costs(protocol: _UDPProtocol, wires: list[bytes]) -> tuple[float, float]:
    """(full path, from the table) seconds per query, median of 3 each."""
    table = protocol.server.table
    cpu = time.process_time
    full = statistics.median([timed(protocol, wires, table.clear, cpu) for _ in range(3)])
    timed(protocol, wires, clock=cpu)
    hit = statistics.median([timed(protocol, wires, clock=cpu) for _ in range(3)])
    return full, hit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_rewrite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=20_000)
    args = parser.parse_args(argv)
    store = build_store(args.services)
    clock = task.Clock()
    clock.advance(1_000_000)
    block = load_text(COREFILE).servers[0]
    kubernetes = KubernetesPlugin(block.plugin("kubernetes"), store, True, clock)
    rewrite = RewritePlugin(block.plugin("rewrite"), clock)
    template = TemplatePlugin(block.plugin("template"), clock)
    cluster = queries(args.services, args.queries)
    rows = [
        ("no rewrite", [kubernetes], cluster),
        ("rewrite, no match", [rewrite, kubernetes], cluster),
        ("rewrite, match", [rewrite, kubernetes], renamed(cluster)),
        ("template ip-A-B-C-D.example A", [template, kubernetes], template_queries(args.queries)),
    ]
    print(f"{args.services} Services; {args.queries} questions, metrics on; us/query, median of 3")
    print(f"  {'':32} {'full path':>10} {'from table':>11}")
    for label, plugins, wires in rows:
        full, hit = costs(server_for(plugins, clock), wires)
        print(f"  {label:32} {full * 1e6:10.1f} {hit * 1e6:11.2f}   ({1 / full:,.0f} and {1 / hit:,.0f} queries/s on one core)")
    print("The plugin alone (next plugin answers at once), us/query:")
    for label, plugin, wires in (
        ("rewrite, no match", rewrite, cluster),
        ("rewrite, match (copy, restore)", rewrite, renamed(cluster)),
        ("template, names outside its zone", template, cluster),
        ("template (regex, render, parse)", template, template_queries(args.queries)),
    ):
        cost = plugin_cost(plugin, wires)
        print(f"  {label:32} {cost * 1e6:10.2f}   ({1 / cost:,.0f} per second on one core)")


if __name__ == "__main__":
    main()
