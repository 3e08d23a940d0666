"""The `cache` directive: a front-end cache of responses (CoreDNS's cache plugin).

Syntax (CoreDNS's)::

    cache [TTL] [ZONES...] {
        success CAPACITY [TTL] [MINTTL]
        denial CAPACITY [TTL] [MINTTL]
        prefetch AMOUNT [[DURATION] [PERCENTAGE%]]
        serve_stale [DURATION] [immediate [RESPONSE_TTL [FAILURE_RECHECK]] | verify [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]]]
        servfail DURATION
        disable success|denial [ZONES...]
        keepttl
    }

Semantics follow CoreDNS's handler.go, cache.go and item.go: responses are
keyed by (qname case-insensitively, qtype, qclass, DO bit, CD bit); positive
answers and delegations go to the success cache, NXDOMAIN, NODATA and
SERVFAIL to the denial cache; an entry lives for the smallest TTL of the
response (the SOA's TTL for denials), clamped to [MINTTL, TTL]; every record
of a response carries that one TTL, decremented by whole elapsed seconds on
the way out; cached answers are sent with AA set and the client's ID and
question.

The per-hit work is one dictionary look-up and a small message, and the
server's table of rendered answers (see `FastPathPolicy`) reuses it until
the next whole second of the entry's age, when the TTL would change.

The files, as CoreDNS's plugin folder splits them: setup.py (the directive's
config and its parsing), classify.py (what a response is), entries.py (the
cached answers), metrics.py (coredns_cache_*), handler.py (the plugin in the
query's path).
"""

from __future__ import annotations

from ...plugin import BuildContext, PluginSpec
from .classify import NOERROR, classify, typify
from .handler import CachePlugin
from .setup import CacheConfig, effective_capacity, setup_cache

__all__ = ["CacheConfig", "CachePlugin", "setup_cache", "classify", "typify", "effective_capacity", "NOERROR"]


def _build(config: CacheConfig, ctx: BuildContext) -> CachePlugin:
    return CachePlugin(config, ctx.reactor, registry=ctx.registry, server=ctx.server)


PLUGINS = (PluginSpec("cache", setup_cache, build=_build),)
