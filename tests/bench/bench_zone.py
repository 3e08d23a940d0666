"""Cost of one `discovery.dns.zone.answer` call: the DNS miss path.

    python -m tests.bench.bench_zone [--services 10000] [--calls 20000]

Builds a Store of SERVICES ClusterIP Services (one named port, one ready
endpoint each) spread over 100 namespaces, plus one headless Service with 10
endpoints, and times `answer()` for typical questions: a ClusterIP A, an
NXDOMAIN (as a search-list miss produces), an SRV, a headless A and SRV, and
a PTR. It prints microseconds per call (median of five runs). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import dns.name
import dns.rdatatype

from discovery.cache.objects import Endpoint, EndpointPort, EndpointSlice, Namespace, Service, ServicePort
from discovery.cache.store import Store
from discovery.dns.zone import ZoneOptions, answer

QUESTIONS = [
    ("ClusterIP A", "svc-42.ns-42.svc.cluster.local.", "A", "cluster.local."),
    ("NXDOMAIN (search-list miss)", "svc-42.ns-42.svc.cluster.local.ns-42.svc.cluster.local.", "A", "cluster.local."),
    ("NODATA (AAAA of an IPv4 Service)", "svc-42.ns-42.svc.cluster.local.", "AAAA", "cluster.local."),
    ("ClusterIP SRV", "_http._tcp.svc-42.ns-42.svc.cluster.local.", "SRV", "cluster.local."),
    ("headless A (10 endpoints)", "headless.ns-0.svc.cluster.local.", "A", "cluster.local."),
    ("headless SRV (10 endpoints)", "_http._tcp.headless.ns-0.svc.cluster.local.", "SRV", "cluster.local."),
    ("PTR of a cluster IP", "42.0.96.10.in-addr.arpa.", "PTR", "in-addr.arpa."),
]


def build_store(services: int) -> Store:
    store = Store()
    for n in range(100):
        store.put(Namespace(f"ns-{n}"))
    http = ServicePort("http", "TCP", 80)
    for n in range(services):
        namespace = f"ns-{n % 100}"
        cluster_ip = f"10.96.{n // 256 % 256}.{n % 256}"
        store.put(Service(namespace, f"svc-{n}", cluster_ips=(cluster_ip,), ports=(http,)))
        store.put(
            EndpointSlice(
                namespace,
                f"svc-{n}-a",
                f"svc-{n}",
                "IPv4",
                (Endpoint((f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",)),),
                (EndpointPort("http", "TCP", 80),),
            )
        )
    store.put(Service("ns-0", "headless", headless=True))
    store.put(
        EndpointSlice(
            "ns-0",
            "headless-a",
            "headless",
            "IPv4",
            tuple(Endpoint((f"172.16.0.{i}",)) for i in range(10)),
            (EndpointPort("http", "TCP", 80),),
        )
    )
    return store


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_zone", description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args(argv)
    store = build_store(args.services)
    options = ZoneOptions(primary_zone="cluster.local.")
    print(f"answer() over {args.services} Services, median of 5 runs of {args.calls} calls")
    for label, qname, qtype, zone in QUESTIONS:
        name = dns.name.from_text(qname)
        rdtype = dns.rdatatype.from_text(qtype)
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(args.calls):
                answer(name, rdtype, store, options, zone)
            runs.append(time.perf_counter() - started)
        print(f"  {label:36s} {statistics.median(runs) / args.calls * 1e6:8.1f} us/call")


if __name__ == "__main__":
    main()
