"""Figures for zone transfers: AXFR of a 10,000-Service zone, and ordinary queries meanwhile.

    python -m tests.bench.bench_transfer [--services 10000] [--seconds 5] [--rate 2000]

1. Time for dnspython's dns.query.xfr to pull cluster.local from a
   Wayfinder process (the fake API server's Services, each with an
   EndpointSlice of 5 endpoints): records, messages, seconds (median of a few).
2. Latency of ordinary queries (cluster names, dnsperf at a paced rate from
   the other core) without any transfer, and while transfers run back to
   back: p50 and p99. The transfer streams one message per reactor step, so
   other queries wait at most for one message's rendering.

It prints figures and asserts nothing. Needs Debian's dnsperf.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import dns.query

from tests.bench.bench_informer import start_fake_server
from tests.bench.bench_dns import clean_up, cluster_queries, dnsperf, ensure_tools, free_port, list_services, wait_for_answer, write_lines

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_until_ready(port: int, deadline: float) -> None:
    """Until /ready answers 200: a transfer waits for the whole first list (else it is not ours yet)."""
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("Wayfinder did not become ready")


def axfr(port: int) -> tuple[float, int, int]:
    """(seconds, records, messages) of one transfer of cluster.local."""
    started = time.perf_counter()
    messages = list(dns.query.xfr("127.0.0.1", "cluster.local.", port=port, timeout=60, lifetime=120))
    seconds = time.perf_counter() - started
    return seconds, sum(len(rrset) for message in messages for rrset in message.answer), len(messages)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    ensure_tools()
    work = tempfile.mkdtemp(prefix="bench-transfer-")
    children: list[subprocess.Popen] = []
    try:
        api, api_url = start_fake_server(args.services, 5, "--namespaces", "100")
        children.append(api)
        services = list_services(api_url)
        port, ready_port = free_port(), free_port()
        corefile = os.path.join(work, "Corefile")
        with open(corefile, "w") as f:
            f.write(f""".:{port} {{
    bind 127.0.0.1
    ready 127.0.0.1:{ready_port}
    transfer {{
        to *
    }}
    kubernetes cluster.local {{
        endpoint {api_url}
    }}
}}
""")
        command = [sys.executable, "-m", "discovery", "-conf", corefile, "-quiet"]
        wayfinder = subprocess.Popen(["taskset", "-c", "0", *command], cwd=REPO, stdout=subprocess.DEVNULL)
        children.append(wayfinder)
        last = services[-1]["metadata"]
        wait_for_answer(port, f"{last['name']}.{last['namespace']}.svc.cluster.local.", time.time() + 120)
        wait_until_ready(ready_port, time.time() + 120)

        runs = [axfr(port) for _ in range(args.repeats)]
        seconds = statistics.median(run[0] for run in runs)
        _, records, messages = runs[0]
        print(f"AXFR of cluster.local with {len(services):,} Services: {records:,} records in {messages} messages, "
              f"{seconds:.2f} s (runs {[round(run[0], 2) for run in runs]})")

        queries = write_lines(work, "cluster.txt", cluster_queries(services, random.Random(1)))
        subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries, "-n", "1"], capture_output=True, check=True)
        quiet = dnsperf(port, queries, args.seconds, rate=args.rate, verbose=True)
        stop = threading.Event()
        transfers: list[tuple[float, int, int]] = []

        def transfer_loop():
            while not stop.is_set():
                transfers.append(axfr(port))

        loop = threading.Thread(target=transfer_loop)
        loop.start()
        try:
            busy = dnsperf(port, queries, args.seconds, rate=args.rate, verbose=True)
        finally:
            stop.set()
            loop.join()
        print(f"ordinary queries at {args.rate:,} q/s: p50 {quiet.get('p50_ms', float('nan')):.2f} ms, "
              f"p99 {quiet.get('p99_ms', float('nan')):.2f} ms without transfers; "
              f"p50 {busy.get('p50_ms', float('nan')):.2f} ms, p99 {busy.get('p99_ms', float('nan')):.2f} ms, "
              f"lost {busy['lost']} during {len(transfers)} back-to-back transfers")
    finally:
        clean_up(children, work)


if __name__ == "__main__":
    main()
