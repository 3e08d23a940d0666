"""Figures for the API source: time to sync, memory, cost of one event, event latency.

    python -m tests.bench.bench_informer [--services 10000] [--endpoints 5]

1. Time from start() to `synced` for N Services and N EndpointSlices (each
   with E endpoints) served by the fake API server in a process of its own,
   and this process's resident memory after it (current and peak). This
   process holds only the informer and the Store.
2. Watch-event-to-Store latency: the fake server rewrites EndpointSlices at
   100 per second, stamping each with the time of the write; a Store
   subscriber takes the difference when the change lands (p50, p99, max).
3. Cost of applying one watch event to a Store holding 1,000 and 50,000
   objects, and their ratio (flat means the ratio stays near 1).

Targets from the issue: synced <= 10 s, RSS <= 150 MB, ratio <= 1.5,
latency p99 <= 50 ms. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
import urllib.request

from twisted.internet import defer, task

from discovery.cache.config import SourceConfig
from discovery.cache.informer import ApiSource, Put, StoreWriter
from discovery.cache.objects import endpoint_slice_from_api, service_from_api
from discovery.cache.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def memory_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def start_fake_server(services: int, endpoints: int = 5, *extra: str) -> tuple[subprocess.Popen, str]:
    """The fake API server in a process of its own, seeded; (process, URL). extra: more of its options."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakeapi", "--services", str(services), "--endpoints", str(endpoints), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline().strip()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@defer.inlineCallbacks
def measure_sync_and_latency(reactor, url: str, events: int, rate: float):
    store = Store()
    source = ApiSource(SourceConfig(endpoint=url), store, reactor)
    started = time.monotonic()
    source.start()
    yield source.synced
    sync_seconds = time.monotonic() - started
    gc.collect()
    rss, peak = memory_mb()
    print(f"synced: {store.count('Service')} Services, {store.count('EndpointSlice')} EndpointSlices "
          f"in {sync_seconds:.2f} s (target <= 10 s)")
    print(f"RSS after sync: {rss:.1f} MB (peak {peak:.1f} MB; target <= 150 MB)")

    # Imported only now, so that the fake server's modules are not in the memory figure.
    from tests.fakeapi import SENT_LABEL

    latencies: list[float] = []
    done = defer.Deferred()

    def changed(change):
        sent = dict(getattr(change.new, "labels", ())).get(SENT_LABEL)
        if change.kind == "EndpointSlice" and sent is not None:
            latencies.append((time.time_ns() - int(sent)) / 1e9)
            if len(latencies) == events and not done.called:
                done.callback(None)

    store.subscribe(changed)
    request = urllib.request.Request(f"{url}/fakeapi/churn?rate={rate}&count={events}", method="POST")
    urllib.request.urlopen(request).read()
    yield done.addTimeout(events / rate + 30, reactor)
    print(f"watch event -> Store latency at {rate:g} events/s over {events} events: "
          f"p50 {percentile(latencies, 0.5) * 1e3:.2f} ms, p99 {percentile(latencies, 0.99) * 1e3:.2f} ms, "
          f"max {max(latencies) * 1e3:.2f} ms (target p99 <= 50 ms)")
    yield source.stop()


def store_of(objects: int) -> Store:
    """A Store of `objects` objects: half Services, half their EndpointSlices of five endpoints."""
    from tests.fakeapi import Cluster
    from tests.fakeapi.objects import seed

    cluster = Cluster()
    seed(cluster, services=objects // 2, endpoints=5, namespaces=50)
    store = Store()
    for obj in cluster.objects["services"].values():
        store.put(service_from_api(obj))
    for obj in cluster.objects["endpointslices"].values():
        store.put(endpoint_slice_from_api(obj))
    return store


def apply_costs(sizes: tuple[int, ...], rounds: int = 9, events: int = 20000) -> list[float]:
    """Median seconds to apply one EndpointSlice update to Stores of these sizes.

    Rounds alternate between the Stores, so that drift in the machine's load
    weighs on every size alike.
    """
    from tests.fakeapi.objects import endpoint_slice

    writers = [StoreWriter(store_of(size), time.time) for size in sizes]
    # Two versions of one slice, applied in turn, so that every event is a real change.
    versions = [
        Put("EndpointSlice", endpoint_slice_from_api(
            endpoint_slice("svc-0", "ns-0", addresses=tuple(f"10.250.{n}.{j}" for j in range(1, 6)))))
        for n in (1, 2)
    ]
    timings: list[list[float]] = [[] for _ in sizes]
    for _ in range(rounds):
        for writer, timing in zip(writers, timings):
            started = time.perf_counter()
            for i in range(events):
                writer.apply([versions[i & 1]])
            timing.append((time.perf_counter() - started) / events)
    return [statistics.median(timing) for timing in timings]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_informer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args(argv)

    process, url = start_fake_server(args.services, args.endpoints)

    @defer.inlineCallbacks
    def run(reactor):
        try:
            yield measure_sync_and_latency(reactor, url, args.events, args.rate)
        finally:
            process.terminate()
            process.wait()
        small, large = apply_costs((1000, 50000))
        print(f"apply one event: {small * 1e6:.2f} us with 1,000 objects, {large * 1e6:.2f} us with 50,000; "
              f"ratio {large / small:.2f} (target <= 1.5)")

    task.react(run)

if __name__ == "__main__":
    main()
