"""Webhook latency at a steady request rate over HTTPS.

    python -m tests.bench.bench_webhook [--services 1000] [--rate 200] [--duration 20]

This process runs the webhook (one Twisted reactor, `tls auto`) over a Store
holding SERVICES Services in the Pod's namespace, each with one named port,
so every answer carries about 8 x SERVICES variables. A separate client
process sends the AdmissionReview of a one-container Deployment Pod (three
env entries of its own) at RATE requests/s for DURATION seconds, open loop:
each request leaves at its scheduled time, over keep-alive connections from
several threads, with the certificate verified. It reports the time from
sending a request to reading the whole answer (p50/p90/p99/max), the rate
achieved, the server's own time to build an answer (from its histogram), CPU
time per request on each side (this machine's load average beside it: the
figures mean little on a busy machine), and how long rendering the namespace
takes, which the first request after a Service change pays. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REVIEW = REPO / "tests" / "integration" / "data" / "webhook" / "create-deployment-pod.json"
NAMESPACE = "bench"
#: Requests sent before measuring: connections, the rendered namespace.
WARM_UP = 20


def bench_review() -> bytes:
    """The fixture's Deployment Pod, with its main container only, in the bench namespace."""
    review = json.loads(REVIEW.read_text())
    request = review["request"]
    request["namespace"] = NAMESPACE
    spec = request["object"]["spec"]
    spec.pop("initContainers")
    spec["containers"] = spec["containers"][:1]
    return json.dumps(review).encode()


# --- the client process -----------------------------------------------------------------------


def run_client(port: int, ca_file: str, rate: float, duration: float, threads: int) -> dict:
    """Send rate x duration reviews on schedule; return latencies and counts."""
    body = bench_review()
    context = ssl.create_default_context(cafile=ca_file)
    headers = {"Content-Type": "application/json"}
    total = int(rate * duration)
    lock = threading.Lock()
    state = {"next": 0, "late": 0, "errors": 0, "bytes": 0}
    latencies: list[float] = []

    def connect() -> http.client.HTTPSConnection:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        for _ in range(WARM_UP // threads + 1):
            connection.request("POST", "/mutate", body, headers)
            connection.getresponse().read()
        return connection

    connections = [connect() for _ in range(threads)]
    start = time.perf_counter() + 0.2

    def worker(connection: http.client.HTTPSConnection) -> None:
        while True:
            with lock:
                index = state["next"]
                state["next"] += 1
            if index >= total:
                return
            due = start + index / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.001:
                with lock:
                    state["late"] += 1
            sent = time.perf_counter()
            connection.request("POST", "/mutate", body, headers)
            response = connection.getresponse()
            answer = response.read()
            elapsed = time.perf_counter() - sent
            with lock:
                latencies.append(elapsed)
                state["bytes"] = len(answer)
                if response.status != 200:
                    state["errors"] += 1

    workers = [threading.Thread(target=worker, args=(c,)) for c in connections]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    wall = time.perf_counter() - start
    for connection in connections:
        connection.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    return {"latencies": latencies, "wall": wall, "cpu": cpu, "request_bytes": len(body), **state}


# --- the server process -----------------------------------------------------------------------------


def build_store(services: int):
    from discovery.cache.objects import service_from_api
    from discovery.cache.store import Store

    store = Store()
    store.put(
        service_from_api(
            {"metadata": {"name": "kubernetes", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}}
        )
    )
    for i in range(services):
        store.put(
            service_from_api(
                {"metadata": {"name": f"svc-{i:04d}", "namespace": NAMESPACE},
                 "spec": {"clusterIP": f"10.100.{i // 250}.{i % 250 + 1}", "ports": [{"name": "http", "port": 8080}]}}
            )
        )
    return store


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def serve_and_measure(reactor, args) -> None:
    from twisted.internet.utils import getProcessOutputAndValue

    from prometheus_client import CollectorRegistry

    from discovery.cache.objects import service_from_api
    from webhook.config import AutoCertificate, WebhookConfig
    from webhook.memo import EnvMemo
    from webhook.server import WebhookServer

    store = build_store(args.services)
    memo = EnvMemo(store)
    started = time.perf_counter()
    rendered = memo.environment(NAMESPACE, True)
    cold_seconds = time.perf_counter() - started
    store.put(
        service_from_api(
            {"metadata": {"name": "svc-0000", "namespace": NAMESPACE},
             "spec": {"clusterIP": "10.101.0.1", "ports": [{"name": "http", "port": 8080}]}}
        )
    )
    started = time.perf_counter()
    memo.environment(NAMESPACE, True)
    change_seconds = time.perf_counter() - started
    memo.close()

    registry = CollectorRegistry()
    server = WebhookServer(
        WebhookConfig(tls=AutoCertificate(), host="127.0.0.1", port=0), store, reactor, registry=registry
    )
    await server.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.NamedTemporaryFile(suffix=".pem") as ca_file:
        ca_file.write(server.ca_bundle)
        ca_file.flush()
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "tests.bench.bench_webhook", "--client", str(server.port), ca_file.name,
             "--rate", str(args.rate), "--duration", str(args.duration), "--threads", str(args.threads)],
            env=dict(os.environ),
            path=str(REPO),
            reactor=reactor,
        )
    after = resource.getrusage(resource.RUSAGE_SELF)
    await server.stop()
    if code != 0:
        sys.stderr.write(err.decode())
        raise SystemExit(f"client failed with exit code {code}")
    result = json.loads(out)
    latencies = [value * 1000 for value in result["latencies"]]
    print(f"webhook over HTTPS: {args.services} Services in the namespace, "
          f"{len(rendered.variables)} variables per container")
    print(f"  request {result['request_bytes']} bytes, answer {result['bytes']} bytes")
    print(f"  target {args.rate:.0f} requests/s for {args.duration:.0f} s from {args.threads} threads (keep-alive)")
    print(f"  achieved {len(latencies) / result['wall']:.1f} requests/s ({len(latencies)} requests, "
          f"{result['errors']} errors, {result['late']} sent more than 1 ms late)")
    print(f"  latency ms: p50 {percentile(latencies, 0.50):.2f}  p90 {percentile(latencies, 0.90):.2f}  "
          f"p99 {percentile(latencies, 0.99):.2f}  max {max(latencies):.2f}  mean {statistics.fmean(latencies):.2f}")
    decided = registry.get_sample_value("wayfinder_webhook_request_duration_seconds_sum") / registry.get_sample_value(
        "wayfinder_webhook_request_duration_seconds_count"
    )
    print(f"  server time to build an answer (mean, before sending it): {decided * 1000:.2f} ms")
    server_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  CPU per request: server {server_cpu * 1000 / len(latencies):.2f} ms, "
          f"client {result['cpu'] * 1000 / len(latencies):.2f} ms ({os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"  rendering the namespace (paid by the first request after a change): "
          f"{cold_seconds * 1000:.1f} ms from nothing, {change_seconds * 1000:.1f} ms after one Service changed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--client", nargs=2, metavar=("PORT", "CA_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        port, ca_file = args.client
        json.dump(run_client(int(port), ca_file, args.rate, args.duration, args.threads), sys.stdout)
        return
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(serve_and_measure(reactor, args)))


if __name__ == "__main__":
    main()
