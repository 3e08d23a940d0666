"""CoreDNS's DNS metrics, recorded cheaply enough for the per-query path.

prometheus_client's labelled metrics cost a few microseconds per update
(label lookup, a lock), more than a whole answer from the table of rendered
answers. So the per-query counters here are plain dicts of ints keyed by
label tuples, and a collector turns them into CoreDNS's metric families
(`coredns_dns_requests_total`, `..._responses_total`,
`..._request_duration_seconds`, `..._request_size_bytes`,
`..._response_size_bytes`, `..._do_requests_total`, `coredns_panics_total`)
when Prometheus scrapes.
Everything else (cache, forward, webhook, ...) uses prometheus_client
directly on the same registry.
"""

from __future__ import annotations

import bisect
import platform
import weakref
from typing import Callable, Iterable, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .. import __version__

__all__ = ["DNSMetrics", "Meter", "new_registry", "qtype_label", "per_registry", "TIME_BUCKETS", "SIZE_BUCKETS"]

_T = TypeVar("_T")

#: plugin.TimeBuckets: ExponentialBuckets(0.00025, 2, 16), 0.25 ms to 8 s.
TIME_BUCKETS = tuple(0.00025 * 2**i for i in range(16))
#: CoreDNS's request/response size buckets.
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)

# CoreDNS labels these query types by name and every other one "other".
_MONITORED_TYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 64: "SVCB",
    65: "HTTPS", 251: "IXFR", 252: "AXFR", 255: "ANY",
}


def per_registry(make: Callable[[CollectorRegistry], _T]) -> Callable[[CollectorRegistry], _T]:
    """make(registry) once per registry, shared after: a metric is defined once in each
    registry, while every server block's plugin instance counts in it."""
    made: "weakref.WeakKeyDictionary[CollectorRegistry, _T]" = weakref.WeakKeyDictionary()

    def get(registry: CollectorRegistry) -> _T:
        metrics = made.get(registry)
        if metrics is None:
            metrics = made[registry] = make(registry)
        return metrics

    return get


def qtype_label(qtype: int) -> str:
    return _MONITORED_TYPES.get(qtype, "other")


def new_registry() -> CollectorRegistry:
    """A registry with the process-wide metrics (build info) registered."""
    # CoreDNS exports no *_created series; prometheus_client would add one
    # per counter and histogram child (56 on kubeadm's Corefile). The switch
    # is process-wide, as the registry is for the process.
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=True)
    # process_* (CPU, memory, file descriptors) as CoreDNS's dashboards read them.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build = Gauge(
        "coredns_build_info",
        "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
        ["version", "revision", "goversion"],
        registry=registry,
    )
    build.labels(__version__, "wayfinder", f"python{platform.python_version()}").set(1)
    return registry


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        # One count per bucket plus +Inf, not cumulative: cumulated on scrape.
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # Most observations land in the first bucket (answers from the table).
        if value <= self.bounds[0]:
            self.counts[0] += 1
        else:
            self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, int]]:
        out = []
        running = 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            out.append((_bound_text(bound), running))
        running += self.counts[-1]
        out.append(("+Inf", running))
        return out


def _bound_text(bound: float) -> str:
    return repr(float(bound))


class Meter:
    """The counters of one label combination, updated in place per query.

    The table of rendered answers keeps the Meter of each answer, so a hit
    costs a few attribute updates instead of label lookups.
    """

    __slots__ = ("requests", "responses", "do_requests", "duration", "request_size", "response_size")

    def __init__(self, requests, responses, do_requests, duration, request_size, response_size):
        self.requests = requests
        self.responses = responses
        self.do_requests = do_requests
        self.duration = duration
        self.request_size = request_size
        self.response_size = response_size

    def record(self, request_size: int, response_size: int, duration: float) -> None:
        self.requests[0] += 1
        self.responses[0] += 1
        if self.do_requests is not None:
            self.do_requests[0] += 1
        self.duration.observe(duration)
        self.request_size.observe(request_size)
        self.response_size.observe(response_size)


class DNSMetrics(Collector):
    """The per-query metrics of every DNS server in the process."""

    def __init__(self, registry: CollectorRegistry | None = None):
        # Label tuple -> one-element list (a counter cell) or _Histogram.
        self.requests: dict[tuple, list[int]] = {}
        self.responses: dict[tuple, list[int]] = {}
        self.do_requests: dict[tuple, list[int]] = {}
        self.durations: dict[tuple, _Histogram] = {}
        self.request_sizes: dict[tuple, _Histogram] = {}
        self.response_sizes: dict[tuple, _Histogram] = {}
        self._meters: dict[tuple, Meter] = {}
        #: Queries that ended in an unexpected exception (SERVFAIL and a log
        #: line): CoreDNS's recovered panics, which carry no labels.
        self.panics = 0
        if registry is not None:
            registry.register(self)

    def meter(
        self, server: str, zone: str, proto: str, family: str, qtype: int, dnssec_ok: bool, rcode: str, plugin: str
    ) -> Meter:
        """The Meter for one answer's labels, as CoreDNS's vars.Report labels them."""
        key = (server, zone, proto, family, qtype, dnssec_ok, rcode, plugin)
        meter = self._meters.get(key)
        if meter is None:
            meter = self._meters[key] = Meter(
                _cell(self.requests, (server, zone, "", proto, family, qtype_label(qtype))),
                _cell(self.responses, (server, zone, "", rcode, plugin)),
                _cell(self.do_requests, (server, zone, "")) if dnssec_ok else None,
                _histogram(self.durations, (server, zone, ""), TIME_BUCKETS),
                _histogram(self.request_sizes, (server, zone, "", proto), SIZE_BUCKETS),
                _histogram(self.response_sizes, (server, zone, "", proto), SIZE_BUCKETS),
            )
        return meter

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterable:
        yield _counter_family(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            ["server", "zone", "view", "proto", "family", "type"],
            self.requests,
        )
        yield _counter_family(
            "coredns_dns_responses",
            "Counter of response status codes.",
            ["server", "zone", "view", "rcode", "plugin"],
            self.responses,
        )
        yield _counter_family(
            "coredns_dns_do_requests",
            "Counter of DNS requests with DO bit set per zone.",
            ["server", "zone", "view"],
            self.do_requests,
        )
        yield CounterMetricFamily(
            "coredns_panics", "A metrics that counts the number of panics.", value=self.panics
        )
        yield _histogram_family(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            ["server", "zone", "view"],
            self.durations,
        )
        yield _histogram_family(
            "coredns_dns_request_size_bytes",
            "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
            ["server", "zone", "view", "proto"],
            self.request_sizes,
        )
        yield _histogram_family(
            "coredns_dns_response_size_bytes",
            "Size of the returned response in bytes.",
            ["server", "zone", "view", "proto"],
            self.response_sizes,
        )


def _cell(cells: dict, key: tuple) -> list[int]:
    cell = cells.get(key)
    if cell is None:
        cell = cells[key] = [0]
    return cell


def _histogram(histograms: dict, key: tuple, bounds: tuple[float, ...]) -> _Histogram:
    histogram = histograms.get(key)
    if histogram is None:
        histogram = histograms[key] = _Histogram(bounds)
    return histogram


def _counter_family(name: str, documentation: str, labels: list[str], cells: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, cell in list(cells.items()):
        family.add_metric(label_values, cell[0])
    return family


def _histogram_family(name: str, documentation: str, labels: list[str], histograms: dict) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for key, histogram in list(histograms.items()):
        family.add_metric(list(key), histogram.buckets(), histogram.total)
    return family
