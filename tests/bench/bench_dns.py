"""DNS throughput against a C reference server, measured in the same run.

    python -m tests.bench.bench_dns [--services 10000] [--seconds 15]

Wayfinder holds N Services (one EndpointSlice of 5 endpoints each) from the
fake API server, in its own process, as it would from a cluster; knotd (one
UDP worker) serves the same records from a zone file. Each server is pinned
to CPU 0 and dnsperf to CPU 1. Queries carry EDNS with a cookie, as dig
sends them. Printed, for each query mix: queries/s of both servers, the
ratio, and latency percentiles at a fixed rate of half Wayfinder's maximum
(dnsperf prints only the average under full load, where latency is queueing).

Mixes:
  cluster   A and SRV for Service names, all hits (issue 3, target >= 0.5 of knotd)
  search    what a pod's search path produces: 50 % NXDOMAIN such as
            name.ns.svc.cluster.local.ns.svc.cluster.local (target >= 0.4)
  outside   names outside the cluster, forwarded to an upstream knotd and
            served from Wayfinder's warm cache, as a ratio of `cluster`
            (issue 4, target >= 0.8)

Also the resident memory of the Wayfinder process after sync and after the
runs (issue 3, target <= 150 MB).

--rewrite miss adds `rewrite name suffix .corp.example. .cluster.local.
answer auto` to Wayfinder's Corefile (the cluster names pass it untouched);
--rewrite hit also asks Wayfinder the cluster mix's names under
corp.example., which the rule turns into the cluster's (knotd is asked the
cluster names as always). Needs Debian's dnsperf and knot (as root,
it installs them); prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import dns.message
import dns.query
import dns.rcode

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
ZONE = "cluster.local"
OUTSIDE = "bench.example"
COOKIE = "10:0102030405060708"
#: The --rewrite rule: names under REWRITTEN are asked as the cluster's.
REWRITTEN = "corp.example"
REWRITE_RULE = f"rewrite name suffix .{REWRITTEN}. .{ZONE}. answer auto"


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("dnsperf", "dnsperf"), ("knotd", "knot")) if not shutil.which(tool, path=SBIN_PATH)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, stdout=subprocess.DEVNULL)
    for tool in ("dnsperf", "knotd", "taskset"):
        if not shutil.which(tool, path=SBIN_PATH):
            sys.exit(f"bench_dns: {tool} is needed (apt-get install dnsperf knot util-linux)")


def free_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def wait_for_answer(port: int, name: str, deadline: float) -> None:
    query = dns.message.make_query(name, "A")
    while time.time() < deadline:
        try:
            response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer for {name} on port {port}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def list_services(api: str) -> list[dict]:
    with urllib.request.urlopen(f"{api}/api/v1/services") as response:
        return json.load(response)["items"]


# --- the reference zone ----------------------------------------------------------


def cluster_zone_text(services: list[dict]) -> str:
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 30",
        f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 5",
        f"@ IN NS ns.dns.{ZONE}.",
        "ns.dns IN A 127.0.0.1",
    ]
    for svc in services:
        name, namespace = svc["metadata"]["name"], svc["metadata"]["namespace"]
        owner = f"{name}.{namespace}.svc"
        lines.append(f"{owner} IN A {svc['spec']['clusterIP']}")
        for port in svc["spec"]["ports"]:
            lines.append(f"_{port['name']}._tcp.{owner} IN SRV 0 100 {port['port']} {owner}.{ZONE}.")
    return "\n".join(lines) + "\n"


def outside_zone_text(count: int) -> str:
    lines = [f"$ORIGIN {OUTSIDE}.", "$TTL 3600", f"@ IN SOA ns.{OUTSIDE}. admin.{OUTSIDE}. 1 3600 600 86400 60", "@ IN NS ns", "ns IN A 127.0.0.1"]
    lines += [f"host-{i} IN A 192.0.2.{i % 250 + 1}" for i in range(count)]
    return "\n".join(lines) + "\n"


KNOT_CONFIG = """\
server:
    listen: 127.0.0.1@{port}
    rundir: {directory}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: {directory}
template:
  - id: default
    storage: {directory}
    semantic-checks: off
zone:
  - domain: {zone}
    file: {zone}.zone
"""


def start_knot(zone: str, text: str, port: int, cpu: str, directory: str) -> subprocess.Popen:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{zone}.zone"), "w") as f:
        f.write(text)
    config = os.path.join(directory, "knot.conf")
    with open(config, "w") as f:
        f.write(KNOT_CONFIG.format(port=port, directory=directory, zone=zone))
    knotd = shutil.which("knotd", path=SBIN_PATH)
    return subprocess.Popen(["taskset", "-c", cpu, knotd, "-c", config], stderr=subprocess.DEVNULL)


# --- query files ---------------------------------------------------------------------


def cluster_queries(services: list[dict], rng: random.Random) -> list[str]:
    lines = []
    for svc in services:
        owner = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.{ZONE}"
        lines.append(f"{owner} A")
        lines.append(f"_{svc['spec']['ports'][0]['name']}._tcp.{owner} SRV")
    rng.shuffle(lines)
    return lines


def search_queries(services: list[dict], rng: random.Random) -> list[str]:
    """A pod in namespace `here` resolving `name.ns` with ndots:5: misses, then the hit."""
    namespaces = sorted({s["metadata"]["namespace"] for s in services})
    lines = []
    for svc in services:
        name, namespace = svc["metadata"]["name"], svc["metadata"]["namespace"]
        here = rng.choice(namespaces)
        miss = rng.choice(
            (
                f"{name}.{namespace}.{here}.svc.{ZONE}",
                f"{name}.{namespace}.svc.{ZONE}.{here}.svc.{ZONE}",
                f"{name}.{namespace}.svc.{ZONE}.svc.{ZONE}",
            )
        )
        lines.append(f"{miss} A")
        lines.append(f"{name}.{namespace}.svc.{ZONE} A")
    return lines


def outside_queries(count: int, rng: random.Random) -> list[str]:
    lines = [f"host-{i}.{OUTSIDE} A" for i in range(count)]
    rng.shuffle(lines)
    return lines


# --- dnsperf ------------------------------------------------------------------------------


def dnsperf(port: int, datafile: str, seconds: float, *, rate: int | None = None, verbose: bool = False) -> dict:
    command = [
        "taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile,
        "-l", str(seconds), "-c", "8", "-q", "200", "-t", "2", "-E", COOKIE,
    ]
    if rate:
        command += ["-Q", str(rate)]
    if verbose:
        command += ["-v"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {
        "qps": float(re.search(r"Queries per second:\s+([\d.]+)", output).group(1)),
        "sent": int(re.search(r"Queries sent:\s+(\d+)", output).group(1)),
        "lost": int(re.search(r"Queries lost:\s+(\d+)", output).group(1)),
        "average_ms": float(re.search(r"Average Latency \(s\):\s+([\d.]+)", output).group(1)) * 1000,
    }
    if verbose:
        latencies = sorted(float(m) for m in re.findall(r"^> \S+ .* ([\d.]+)$", output, re.M))
        if latencies:
            result["p50_ms"] = latencies[len(latencies) // 2] * 1000
            result["p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000
            result["p999_ms"] = latencies[int(len(latencies) * 0.999)] * 1000
    return result


def measure(port: int, datafile: str, seconds: float, rounds: int) -> dict:
    """The median of a few full-load runs (by queries/s), with every run's figure kept beside it."""
    runs = sorted((dnsperf(port, datafile, seconds) for _ in range(rounds)), key=lambda r: r["qps"])
    median = runs[(len(runs) - 1) // 2]
    median["runs"] = [round(r["qps"]) for r in runs]
    return median


def clean_up(children: list[subprocess.Popen], work: str) -> None:
    """Kill the processes a benchmark started (those still running) and remove its folder."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
    shutil.rmtree(work, ignore_errors=True)


def write_lines(directory: str, name: str, lines: list[str]) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# --- the run --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_dns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="full-load runs per server and mix; the median counts (the lower one of an even count)")
    parser.add_argument("--outside-names", type=int, default=1000)
    parser.add_argument("--rewrite", choices=("none", "miss", "hit"), default="none",
                        help="a rewrite rule the cluster names miss, or hit (see above)")
    args = parser.parse_args(argv)
    ensure_tools()
    rng = random.Random(1)
    work = tempfile.mkdtemp(prefix="bench-dns-")
    children: list[subprocess.Popen] = []
    try:
        api = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeapi", "--services", str(args.services), "--namespaces", "100"],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )
        children.append(api)
        api_url = api.stdout.readline().strip()
        services = list_services(api_url)

        upstream_port = free_port()
        children.append(start_knot(OUTSIDE, outside_zone_text(args.outside_names), upstream_port, "1", os.path.join(work, "upstream")))

        port = free_port()
        corefile = os.path.join(work, "Corefile")
        with open(corefile, "w") as f:
            f.write(
                f""".:{port} {{
    bind 127.0.0.1
    errors
    {REWRITE_RULE if args.rewrite != "none" else ""}
    ready 127.0.0.1:0
    prometheus 127.0.0.1:0
    kubernetes {ZONE} in-addr.arpa ip6.arpa {{
        endpoint {api_url}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . 127.0.0.1:{upstream_port}
    cache 3600 {{
        disable success {ZONE}
        disable denial {ZONE}
    }}
    loadbalance
}}
"""
            )
        started = time.time()
        wayfinder = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "discovery", "-conf", corefile, "-quiet"],
            cwd=REPO, stdout=subprocess.DEVNULL,
        )
        children.append(wayfinder)
        first = services[0]["metadata"]
        wait_for_answer(port, f"{first['name']}.{first['namespace']}.svc.{ZONE}.", time.time() + 120)
        last = services[-1]["metadata"]
        wait_for_answer(port, f"{last['name']}.{last['namespace']}.svc.{ZONE}.", time.time() + 120)
        synced_seconds = time.time() - started
        rss_synced = rss_mb(wayfinder.pid)

        knot_port = free_port()
        children.append(start_knot(ZONE, cluster_zone_text(services), knot_port, "0", os.path.join(work, "knot")))
        wait_for_answer(knot_port, f"{first['name']}.{first['namespace']}.svc.{ZONE}.", time.time() + 60)

        cluster_lines = cluster_queries(services, rng)
        files = {
            "cluster": write_lines(work, "cluster.txt", cluster_lines),
            "search": write_lines(work, "search.txt", search_queries(services, rng)),
            "outside": write_lines(work, "outside.txt", outside_queries(args.outside_names, rng)),
        }
        ours_files = dict(files)
        if args.rewrite == "hit":
            ours_files["cluster"] = write_lines(
                work, "cluster-rewritten.txt", [line.replace(f".{ZONE} ", f".{REWRITTEN} ") for line in cluster_lines]
            )
        # Warm both servers' tables and Wayfinder's cache: one pass of every file.
        for name, path in files.items():
            subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", ours_files[name], "-n", "1", "-E", COOKIE, "-q", "50"], capture_output=True, check=True)
            if name != "outside":
                subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(knot_port), "-d", path, "-n", "1", "-E", COOKIE], capture_output=True, check=True)

        print(f"Services: {len(services)} (+ {len(services)} EndpointSlices of 5 endpoints) from the fake API server")
        print(f"Wayfinder answered its last Service {synced_seconds:.1f} s after start; RSS {rss_synced:.1f} MB")
        print(f"dnsperf: {args.seconds:g} s runs, 8 clients, 200 outstanding, EDNS with a cookie; server on CPU 0, dnsperf on CPU 1")
        if args.rewrite != "none":
            print(f"Wayfinder's Corefile has `{REWRITE_RULE}`; the cluster names {'are asked under ' + REWRITTEN if args.rewrite == 'hit' else 'miss it'}")
        print()
        results = {}
        for mix in ("cluster", "search"):
            ours = measure(port, ours_files[mix], args.seconds, args.rounds)
            knot = measure(knot_port, files[mix], args.seconds, args.rounds)
            results[mix] = ours
            paced = dnsperf(port, ours_files[mix], min(args.seconds, 5), rate=int(ours["qps"] / 2), verbose=True)
            print(f"[{mix}] Wayfinder {ours['qps']:,.0f} q/s (runs {ours['runs']}, lost {ours['lost']})  knotd {knot['qps']:,.0f} q/s (runs {knot['runs']})  ratio {ours['qps'] / knot['qps']:.2f}")
            print(
                f"[{mix}] Wayfinder latency at {int(ours['qps'] / 2):,} q/s: p50 {paced.get('p50_ms', float('nan')):.3f} ms, "
                f"p99 {paced.get('p99_ms', float('nan')):.3f} ms, p99.9 {paced.get('p999_ms', float('nan')):.3f} ms; "
                f"average under full load {ours['average_ms']:.3f} ms"
            )
        outside = measure(port, files["outside"], args.seconds, args.rounds)
        print(
            f"[outside] Wayfinder from its warm cache {outside['qps']:,.0f} q/s (runs {outside['runs']}, lost {outside['lost']}); "
            f"ratio to cluster names {outside['qps'] / results['cluster']['qps']:.2f}"
        )
        print()
        print(f"RSS of the Wayfinder process after the runs: {rss_mb(wayfinder.pid):.1f} MB")
    finally:
        clean_up(children, work)


if __name__ == "__main__":
    main()
