"""DNS throughput away from the table's sweet spot, beside knotd in the same run.

    python -m tests.bench.bench_dns_miss [--services 10000] [--seconds 10] [--repeats 3] [--only NAME ...]

The cluster of tests/bench/bench_dns.py (SERVICES Services over 10
namespaces, so 1,000 per namespace, one EndpointSlice of 5 endpoints each,
plus 100 headless Services), Wayfinder on CPU 0 and dnsperf on CPU 1; knotd
(one UDP worker, CPU 0) serves the same records from a zone file. Every
figure is the median of REPEATS runs, with knotd's median over the same
questions and the ratio. Scenarios (issue 12):

  unique     cluster-zone names never asked before, every one NXDOMAIN
  first10s   the first 10 s of `hits` after /ready first says 200, in a fresh process
  sequence   hits, hits-edns, hits-cookie, search-mix (~80,000 distinct
             questions, half NXDOMAIN) and headless, one after another on one
             server process
  updates    `hits` while a Service in a namespace of 1,000 changes every
             100 ms, as a ratio of `hits` without changes
  rss        resident memory before and after 2,000,000 unique names

Needs Debian's dnsperf and knot (as root, it installs them); prints figures,
asserts nothing. The hot-set-under-a-flood figure is in-process:
tests/bench/bench_server.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from tests.bench.bench_dns import (
    COOKIE,
    REPO,
    ZONE,
    cluster_queries,
    cluster_zone_text,
    ensure_tools,
    free_port,
    list_services,
    rss_mb,
    start_knot,
    wait_for_answer,
    write_lines,
)
from tests.fakeapi.objects import endpoint_slice, service

HEADLESS = 100
SCENARIOS = ("unique", "first10s", "sequence", "updates", "rss")
#: dnsperf's EDNS flags per sequence step.
EDNS = {"hits": [], "hits-edns": ["-e"], "hits-cookie": ["-E", COOKIE], "search-mix": [], "headless": []}


def dnsperf_qps(port: int, datafile: str, seconds: float, flags: list[str], *, once: bool = False) -> float:
    command = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile, "-c", "8", "-q", "200", "-t", "2", *flags]
    command += ["-n", "1"] if once else ["-l", str(seconds)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        if "Queries per second:" in line:
            return float(line.split()[-1])
    raise RuntimeError(output)


def post(api: str, path: str, body: dict) -> None:
    request = urllib.request.Request(f"{api}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request).read()


def add_headless(api: str) -> list[tuple[str, str, list[str]]]:
    made = []
    for i in range(HEADLESS):
        name, namespace = f"headless-{i}", f"ns-{i % 10}"
        addresses = [f"172.20.{i}.{j + 1}" for j in range(5)]
        post(api, f"/api/v1/namespaces/{namespace}/services", service(name, namespace, headless=True))
        post(api, f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", endpoint_slice(name, namespace, addresses=tuple(addresses)))
        made.append((name, namespace, addresses))
    return made


def search_mix(services: list[dict], rng: random.Random) -> list[str]:
    """A Pod's search-path expansions: per Service four NXDOMAIN and four answered questions."""
    namespaces = sorted({s["metadata"]["namespace"] for s in services})
    lines = []
    for svc in services:
        name, namespace = svc["metadata"]["name"], svc["metadata"]["namespace"]
        here = rng.choice(namespaces)
        owner = f"{name}.{namespace}.svc.{ZONE}"
        for rdtype in ("A", "AAAA"):
            lines.append(f"{name}.{namespace}.{here}.svc.{ZONE} {rdtype}")
            lines.append(f"{owner}.{here}.svc.{ZONE} {rdtype}")
            lines.append(f"{owner} {rdtype}")
        lines.append(f"{owner} SRV")
        lines.append(f"_http._tcp.{owner} SRV")
    rng.shuffle(lines)
    return lines


def unique_names(count: int, salt: str) -> list[str]:
    return [f"q{salt}-{n}.nowhere.ns-{n % 10}.svc.{ZONE} A" for n in range(count)]


class Wayfinder:
    """A Wayfinder process over the fake API server, pinned to CPU 0."""

    def __init__(self, api: str, work: str):
        self.port, self.ready_port = free_port(), free_port()
        corefile = os.path.join(work, f"Corefile-{self.port}")
        with open(corefile, "w") as f:
            f.write(f""".:{self.port} {{
    bind 127.0.0.1
    errors
    ready 127.0.0.1:{self.ready_port}
    prometheus 127.0.0.1:0
    kubernetes {ZONE} in-addr.arpa ip6.arpa {{
        endpoint {api}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 3600 {{
        disable success {ZONE}
        disable denial {ZONE}
    }}
    loadbalance
}}
""")
        self.started = time.time()
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "discovery", "-conf", corefile, "-quiet"], cwd=REPO, stdout=subprocess.DEVNULL
        )

    def wait_ready(self, deadline: float = 300) -> float:
        end = time.time() + deadline
        while time.time() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ready_port}/ready", timeout=1) as response:
                    if response.status == 200:
                        return time.time() - self.started
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError("Wayfinder never became ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def row(label: str, ours: list[float], knot: list[float] | None) -> None:
    mine = statistics.median(ours)
    if knot:
        theirs = statistics.median(knot)
        print(f"  {label:34s} Wayfinder {mine:>9,.0f} q/s  knotd {theirs:>9,.0f} q/s  ratio {mine / theirs:.2f}   runs {[round(q) for q in ours]}")
    else:
        print(f"  {label:34s} Wayfinder {mine:>9,.0f} q/s   runs {[round(q) for q in ours]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_dns_miss", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-names", type=int, default=2_000_000)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    args = parser.parse_args(argv)
    ensure_tools()
    rng = random.Random(1)
    work = tempfile.mkdtemp(prefix="bench-dns-miss-")
    children: list = []
    try:
        api_process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeapi", "--services", str(args.services), "--namespaces", "10"],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )
        children.append(api_process)
        api = api_process.stdout.readline().strip()
        headless = add_headless(api)
        services = [s for s in list_services(api) if s["spec"].get("clusterIP") not in (None, "None") and s["metadata"]["name"].startswith("svc-")]
        zone = cluster_zone_text(services) + "".join(
            f"{name}.{namespace}.svc IN A {address}\n" for name, namespace, addresses in headless for address in addresses
        )
        knot_port = free_port()
        children.append(start_knot(ZONE, zone, knot_port, "0", os.path.join(work, "knot")))
        first = services[0]["metadata"]
        wait_for_answer(knot_port, f"{first['name']}.{first['namespace']}.svc.{ZONE}.", time.time() + 60)
        files = {
            "hits": write_lines(work, "hits.txt", cluster_queries(services, rng)),
            "search-mix": write_lines(work, "search.txt", search_mix(services, rng)),
            "headless": write_lines(work, "headless.txt", [f"{n}.{ns}.svc.{ZONE} A" for n, ns, _ in headless]),
        }
        files["hits-edns"] = files["hits-cookie"] = files["hits"]
        print(f"{len(services)} Services + {HEADLESS} headless over 10 namespaces; dnsperf {args.seconds:g} s, 8 clients, 200 outstanding;"
              f" median of {args.repeats}; server on CPU 0, dnsperf on CPU 1")
        unique_rate = 200_000
        if "unique" in args.only:
            server = Wayfinder(api, work)
            children.append(server)
            server.wait_ready()
            ours, knot = [], []
            for r in range(args.repeats):
                count = int(unique_rate * args.seconds)
                ours.append(dnsperf_qps(server.port, write_lines(work, "u.txt", unique_names(count, f"w{r}")), args.seconds, []))
                knot.append(dnsperf_qps(knot_port, write_lines(work, "u.txt", unique_names(count, f"k{r}")), args.seconds, []))
            row("unique names, every one new", ours, knot)
            server.stop()
        if "first10s" in args.only:
            ours, knot, ready = [], [], []
            for _ in range(args.repeats):
                server = Wayfinder(api, work)
                children.append(server)
                ready.append(server.wait_ready())
                ours.append(dnsperf_qps(server.port, files["hits"], 10, []))
                knot.append(dnsperf_qps(knot_port, files["hits"], 10, []))
                server.stop()
            row("hits, first 10 s after /ready", ours, knot)
            print(f"  (/ready said 200 after {[round(s, 1) for s in ready]} s)")
        if "sequence" in args.only:
            server = Wayfinder(api, work)
            children.append(server)
            server.wait_ready()
            for step in ("hits", "hits-edns", "hits-cookie", "search-mix", "headless"):
                ours = [dnsperf_qps(server.port, files[step], args.seconds, EDNS[step]) for _ in range(args.repeats)]
                knot = [dnsperf_qps(knot_port, files[step], args.seconds, EDNS[step]) for _ in range(args.repeats)]
                row(f"sequence: {step}", ours, knot)
            print(f"  RSS after the sequence: {rss_mb(server.process.pid):.1f} MB")
            server.stop()
        if "updates" in args.only:
            server = Wayfinder(api, work)
            children.append(server)
            server.wait_ready()
            quiet = [dnsperf_qps(server.port, files["hits"], args.seconds, []) for _ in range(args.repeats)]
            stop = threading.Event()
            changes = threading.Thread(target=_change_services, args=(api, stop), daemon=True)
            changes.start()
            busy = [dnsperf_qps(server.port, files["hits"], args.seconds, []) for _ in range(args.repeats)]
            stop.set()
            changes.join()
            row("hits, no changes", quiet, None)
            row("hits, a Service change every 100 ms", busy, None)
            print(f"  ratio {statistics.median(busy) / statistics.median(quiet):.2f} (target >= 0.8)")
            server.stop()
        if "rss" in args.only:
            server = Wayfinder(api, work)
            children.append(server)
            server.wait_ready()
            before = rss_mb(server.process.pid)
            middle, after = (_after_unique_names(server, work, args.rss_names, salt) for salt in ("rss", "rss2"))
            print(f"  RSS: {before:.1f} MB at ready, {middle:.1f} MB after {args.rss_names:,} unique names (the negative answers' share of the table full),"
                  f" {after:.1f} MB after {args.rss_names:,} more: growth once full {after - middle:+.1f} MB")
            server.stop()
    finally:
        for child in children:
            if isinstance(child, Wayfinder):
                child.stop()
            elif child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
        shutil.rmtree(work, ignore_errors=True)


def _after_unique_names(server: Wayfinder, work: str, count: int, salt: str) -> float:
    """Ask count never-seen names once each; the process's RSS afterwards."""
    dnsperf_qps(server.port, write_lines(work, "rss.txt", unique_names(count, salt)), 0, [], once=True)
    return rss_mb(server.process.pid)


def _change_services(api: str, stop: threading.Event) -> None:
    """Every 100 ms, one Service of ns-0 (1,000 Services) moves its port: a real change to its answers."""
    n = 0
    while not stop.is_set():
        name = f"svc-{(n % 1000) * 10}"
        url = f"{api}/api/v1/namespaces/ns-0/services/{name}"
        with urllib.request.urlopen(url) as response:
            obj = json.load(response)
        obj["spec"]["ports"][0]["port"] = 80 if obj["spec"]["ports"][0]["port"] != 80 else 81
        request = urllib.request.Request(url, json.dumps(obj).encode(), {"Content-Type": "application/json"}, method="PUT")
        urllib.request.urlopen(request).read()
        n += 1
        stop.wait(0.1)


if __name__ == "__main__":
    main()
