"""The cache plugin's coredns_cache_* metrics, defined once per registry."""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge

from ...ops.metrics import per_registry


@attrs.frozen
class _CacheMetrics:
    entries: Gauge
    requests: Counter
    hits: Counter
    misses: Counter
    prefetch: Counter
    drops: Counter
    served_stale: Counter
    evictions: Counter


@per_registry
def _metrics(registry: CollectorRegistry) -> _CacheMetrics:
    """CoreDNS's coredns_cache_* metrics, defined once per registry."""
    with_type = ["server", "type", "zones", "view"]
    without = ["server", "zones", "view"]
    return _CacheMetrics(
        entries=Gauge("coredns_cache_entries", "The number of elements in the cache.", with_type,
                      registry=registry),
        requests=Counter("coredns_cache_requests", "The count of cache requests.", without, registry=registry),
        hits=Counter("coredns_cache_hits", "The count of cache hits.", with_type, registry=registry),
        misses=Counter(
            "coredns_cache_misses",
            "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
            without, registry=registry,
        ),
        prefetch=Counter("coredns_cache_prefetch", "The number of times the cache has prefetched a cached item.",
                         without, registry=registry),
        drops=Counter("coredns_cache_drops",
                      "The number responses that are not cached, because the reply is malformed.",
                      without, registry=registry),
        served_stale=Counter("coredns_cache_served_stale",
                             "The number of requests served from stale cache entries.", without,
                             registry=registry),
        evictions=Counter("coredns_cache_evictions", "The count of cache evictions.", with_type,
                          registry=registry),
    )
