"""Figures for autopath and `pods verified`: search-path lookups, and what the Pod cache costs.

    python -m tests.bench.bench_autopath [--seconds 5] [--services 10000] [--pods 30000]

1. A Pod's lookup of an outside name (`www-N.bench.example`, ndots:5;
   `hosts` stands in for the upstream and answers NXDOMAIN for the node's
   search domain):
   without autopath the Pod sends five queries (its namespace, svc,
   cluster.local, the node's search domain, then the name itself; four
   NXDOMAIN); with autopath the first of them is answered at once. Measured
   with dnsperf sending from the Pod's address (127.0.0.2): q/s of each mix,
   and lookups/s (q/s / 5 without autopath, q/s with). Autopath answers come
   from the table of rendered answers after the first pass; the first pass
   (every answer walked afresh) is measured too.
2. Resident memory of a process holding the informer and the Store for
   N Services + N EndpointSlices from the fake API server, without Pods and
   with `pods verified` and P Pods (the Pod watch): the ratio's target is
   <= 1.5. Each figure is a fresh process, the median of a few.

It prints figures and asserts nothing. Needs Debian's dnsperf.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from tests.bench.bench_informer import start_fake_server
from tests.bench.bench_dns import COOKIE, SBIN_PATH, clean_up, free_port, wait_for_answer, write_lines

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POD_IP = "127.0.0.2"
NODE_DOMAIN = "node.example"
OUTSIDE = "bench.example"


def ensure_dnsperf() -> None:
    if not shutil.which("dnsperf", path=SBIN_PATH) and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "dnsperf"], check=True, stdout=subprocess.DEVNULL)
    if not shutil.which("dnsperf", path=SBIN_PATH):
        sys.exit("bench_autopath: dnsperf is needed (apt-get install dnsperf)")


def paced(port: int, datafile: str, seconds: float, *, once: bool = False) -> dict:
    """dnsperf from the Pod's address, at full load; once: one pass of the file."""
    command = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-a", POD_IP, "-d", datafile,
               "-c", "8", "-q", "200", "-t", "2", "-E", COOKIE]
    command += ["-n", "1"] if once else ["-l", str(seconds)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {
        "qps": float(re.search(r"Queries per second:\s+([\d.]+)", output).group(1)),
        "lost": int(re.search(r"Queries lost:\s+(\d+)", output).group(1)),
    }


# --- 1. search-path lookups -----------------------------------------------------------------


def cluster_manifest(names: int) -> str:
    return f"""apiVersion: v1
kind: List
items:
- {{apiVersion: v1, kind: Namespace, metadata: {{name: bench}}}}
- apiVersion: v1
  kind: Pod
  metadata: {{name: client, namespace: bench}}
  status: {{phase: Running, podIP: {POD_IP}}}
"""


def hosts_file(names: int) -> str:
    return "".join(f"192.0.2.{i % 250 + 1} www-{i}.{OUTSIDE}\n" for i in range(names))


def corefile(port: int, work: str, autopath: bool) -> str:
    return f""".:{port} {{
    bind 127.0.0.1
    {"autopath @kubernetes" if autopath else ""}
    hosts {work}/hosts {{
        reload 0s
        fallthrough cluster.local
    }}
    kubernetes cluster.local {{
        manifests {work}/cluster
        pods verified
    }}
}}
"""


def search_lookups(names: int) -> tuple[list[str], list[str]]:
    """(the five queries of each lookup, the first of them alone)."""
    five, one = [], []
    for i in range(names):
        name = f"www-{i}.{OUTSIDE}"
        expansions = [f"{name}.bench.svc.cluster.local", f"{name}.svc.cluster.local", f"{name}.cluster.local",
                      f"{name}.{NODE_DOMAIN}", name]
        five.extend(f"{query} A" for query in expansions)
        one.append(f"{expansions[0]} A")
    return five, one


def run_server(work: str, port: int, autopath: bool) -> subprocess.Popen:
    path = os.path.join(work, f"Corefile-{int(autopath)}")
    with open(path, "w") as f:
        f.write(corefile(port, work, autopath))
    command = [sys.executable, "-m", "discovery", "-conf", path, "-quiet"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)


def measure_lookups(seconds: float, names: int) -> None:
    work = tempfile.mkdtemp(prefix="bench-autopath-")
    children: list[subprocess.Popen] = []
    try:
        os.mkdir(os.path.join(work, "cluster"))
        with open(os.path.join(work, "cluster", "cluster.yaml"), "w") as f:
            f.write(cluster_manifest(names))
        with open(os.path.join(work, "hosts"), "w") as f:
            f.write(hosts_file(names))
        five, one = search_lookups(names)
        five_file, one_file = write_lines(work, "five.txt", five), write_lines(work, "one.txt", one)
        print(f"A Pod at {POD_IP} looks up {names:,} outside names; dnsperf 8 clients, 200 outstanding, {seconds:g} s runs")
        for autopath, datafile, per_lookup in ((False, five_file, 5), (True, one_file, 1)):
            port = free_port()
            server = run_server(work, port, autopath)
            children.append(server)
            wait_for_answer(port, f"www-0.{OUTSIDE}.", time.time() + 60)
            label = "with autopath" if autopath else "without autopath"
            first = paced(port, datafile, seconds, once=True)
            runs = [paced(port, datafile, seconds) for _ in range(3)]
            qps = statistics.median(run["qps"] for run in runs)
            print(f"[{label}] first pass (answers made afresh): {first['qps']:,.0f} q/s, "
                  f"{first['qps'] / per_lookup:,.0f} lookups/s")
            print(f"[{label}] from the table: {qps:,.0f} q/s (runs {[round(r['qps']) for r in runs]}), "
                  f"{qps / per_lookup:,.0f} lookups/s ({per_lookup} queries each), lost {runs[-1]['lost']}")
            server.send_signal(signal.SIGKILL)
            server.wait()
    finally:
        clean_up(children, work)


# --- 2. what `pods verified` costs ----------------------------------------------------------


def rss_child(url: str, pods: bool) -> None:
    """In a fresh process: sync an ApiSource (with or without the Pod watch), print RSS in MB."""
    from twisted.internet import defer, task

    from discovery.cache.config import SourceConfig
    from discovery.cache.informer import ApiSource
    from discovery.cache.store import Store
    from tests.bench.bench_informer import memory_mb

    @defer.inlineCallbacks
    def run(reactor):
        store = Store()
        source = ApiSource(SourceConfig(endpoint=url, watch_pods=pods), store, reactor)
        source.start()
        yield source.synced
        gc.collect()
        rss, _ = memory_mb()
        print(f"{rss:.1f} {store.count('Pod')}", flush=True)
        yield source.stop()

    task.react(run)


def measure_pods(services: int, pods: int, repeats: int) -> None:
    api, url = start_fake_server(services, 5, "--pods", str(pods))
    try:
        figures = {}
        for label, with_pods in (("without Pods", False), ("pods verified", True)):
            samples = []
            for _ in range(repeats):
                out = subprocess.run(
                    [sys.executable, "-m", "tests.bench.bench_autopath", "--rss-child", url] + (["--with-pods"] if with_pods else []),
                    cwd=REPO, capture_output=True, text=True, check=True,
                ).stdout.split()
                samples.append(float(out[0]))
                held = int(out[1])
            figures[label] = statistics.median(samples)
            print(f"RSS {label}: {figures[label]:.1f} MB (runs {samples}; {held:,} Pods held)")
        ratio = figures["pods verified"] / figures["without Pods"]
        print(f"{services:,} Services + {services:,} EndpointSlices, {pods:,} Pods: "
              f"pods verified costs {ratio:.2f}x (target <= 1.5)")
    finally:
        api.terminate()
        api.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_autopath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--with-pods", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("lookups", "pods"))
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, args.with_pods)
        return
    if args.only != "pods":
        ensure_dnsperf()
        measure_lookups(args.seconds, args.names)
    if args.only != "lookups":
        measure_pods(args.services, args.pods, args.repeats)


if __name__ == "__main__":
    main()
