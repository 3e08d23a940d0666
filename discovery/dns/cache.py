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
"""

from __future__ import annotations

import copy
import logging
import math
import weakref

import attrs
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from prometheus_client import CollectorRegistry, Counter, Gauge
from twisted.internet import defer

from ..corefile import Directive, parse_duration
from ..plugin import BuildContext, PluginSpec
from ..zones import longest_match, normalize_zone
from .request import FastPathPolicy, Request

__all__ = ["CacheConfig", "CachePlugin", "setup_cache", "classify", "typify", "effective_capacity"]

log = logging.getLogger("wayfinder.cache")

#: CoreDNS's dnsutil.MaximumDefaultTTL and MinimalDefaultTTL.
MAX_TTL = 3600
MIN_TTL = 5
#: CoreDNS's maxNTTL.
MAX_DENIAL_TTL = MAX_TTL // 2
#: CoreDNS's defaultCap, before rounding to whole shards.
DEFAULT_CAPACITY = 10000
#: CoreDNS splits a cache into 256 shards of at least 4 entries each.
SHARDS = 256
MIN_SHARD = 4
#: RFC 2308 section 7.1: SERVFAIL may be cached for at most five minutes.
MAX_SERVFAIL_TTL = 300.0
#: RFC 8767 section 4 recommends at most five minutes between failed refreshes.
MAX_STALE_RECHECK = 300.0


def effective_capacity(capacity: int) -> int:
    """What CoreDNS really holds for a CAPACITY: whole shards, at least 1024."""
    return max(int(capacity / SHARDS), MIN_SHARD) * SHARDS


@attrs.frozen
class CacheConfig:
    """One `cache` directive. Durations in seconds; TTLs in whole seconds."""

    zones: tuple[str, ...]
    success_capacity: int = effective_capacity(DEFAULT_CAPACITY)
    success_ttl: int = MAX_TTL
    success_min_ttl: int = MIN_TTL
    denial_capacity: int = effective_capacity(DEFAULT_CAPACITY)
    denial_ttl: int = MAX_DENIAL_TTL
    denial_min_ttl: int = MIN_TTL
    #: Prefetch entries seen this many times without a gap of
    #: prefetch_duration (0: never), once prefetch_percentage of the TTL is left.
    prefetch: int = 0
    prefetch_duration: float = 60.0
    prefetch_percentage: int = 10
    #: Serve expired entries for up to this long (0: never).
    serve_stale: float = 0.0
    #: serve_stale's verify mode: ask the next plugin before serving stale.
    verify_stale: bool = False
    #: How long verify waits for the next plugin (0: as long as it takes).
    verify_timeout: float = 0.0
    #: The TTL of stale answers.
    stale_ttl: int = 0
    #: After a failed refresh of a stale entry, wait this long before another.
    stale_recheck: float = 0.0
    servfail_ttl: float = 5.0
    success_disabled: tuple[str, ...] = ()
    denial_disabled: tuple[str, ...] = ()
    keepttl: bool = False


# --- setup ------------------------------------------------------------------------------


def _integer(option: Directive, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise option.error(f"cache: {what} {text!r} is not an integer") from None


def _duration(option: Directive, text: str, what: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise option.error(f"cache: {what}: {e}") from None


def _ttl(option: Directive, text: str) -> int:
    ttl = _integer(option, text, "TTL")
    if ttl <= 0:
        raise option.error(f"cache: cache TTL can not be zero or negative: {ttl}")
    return ttl


def _capacity_and_ttls(option: Directive, kind: str) -> dict:
    option.expect_args(1, 3, f"{kind} CAPACITY [TTL] [MINTTL]")
    option.expect_no_block()
    args = option.args
    values = {f"{kind}_capacity": effective_capacity(_integer(option, args[0], "capacity"))}
    if len(args) > 1:
        values[f"{kind}_ttl"] = _ttl(option, args[1])
    if len(args) > 2:
        minimum = _integer(option, args[2], "min TTL")
        if minimum < 0:
            raise option.error(f"cache: cache min TTL can not be negative: {minimum}")
        values[f"{kind}_min_ttl"] = minimum
    return values


def _prefetch(option: Directive) -> dict:
    option.expect_args(1, 3, "prefetch AMOUNT [[DURATION] [PERCENTAGE%]]")
    amount = _integer(option, option.args[0], "prefetch amount")
    if amount < 0:
        raise option.error(f"cache: prefetch amount should be positive: {amount}")
    values: dict = {"prefetch": amount}
    if len(option.args) > 1:
        values["prefetch_duration"] = _duration(option, option.args[1], "prefetch duration")
    if len(option.args) > 2:
        text = option.args[2]
        if not text.endswith("%"):
            raise option.error(f"cache: last character of percentage should be `%`, but is: {text[-1:]!r}")
        percentage = _integer(option, text[:-1], "prefetch percentage")
        if not 10 <= percentage <= 90:
            raise option.error(f"cache: percentage should fall in range [10, 90]: {percentage}")
        values["prefetch_percentage"] = percentage
    return values


def _stale_ttl(option: Directive, text: str) -> int:
    ttl = _duration(option, text, "serve_stale response TTL")
    if ttl < 0:
        raise option.error("cache: invalid negative response TTL for serve_stale")
    if ttl != int(ttl):
        raise option.error("cache: serve_stale response TTL must be a whole number of seconds")
    if ttl > 2**32 - 1:
        raise option.error("cache: serve_stale response TTL exceeds the DNS TTL range")
    return int(ttl)


def _stale_recheck(option: Directive, text: str) -> float:
    recheck = _duration(option, text, "serve_stale failure recheck")
    if recheck < 0:
        raise option.error("cache: invalid negative failure recheck for serve_stale")
    if recheck > MAX_STALE_RECHECK:
        raise option.error("cache: serve_stale failure recheck cannot exceed 5 minutes")
    return recheck


def _serve_stale(option: Directive) -> dict:
    option.expect_args(
        0, 5,
        "serve_stale [DURATION] [immediate [RESPONSE_TTL [FAILURE_RECHECK]] | "
        "verify [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]]]",
    )
    args = option.args
    values: dict = {"serve_stale": 3600.0, "verify_stale": False, "verify_timeout": 0.0, "stale_ttl": 0,
                    "stale_recheck": 0.0}
    if args:
        duration = _duration(option, args[0], "serve_stale duration")
        if duration < 0:
            raise option.error("cache: invalid negative duration for serve_stale")
        values["serve_stale"] = duration
    if len(args) > 1:
        mode = args[1].lower()
        if mode not in ("immediate", "verify"):
            raise option.error(f"cache: invalid value for serve_stale refresh mode: {mode}")
        values["verify_stale"] = mode == "verify"
    rest = list(args[2:])
    if values["verify_stale"] and rest:
        timeout = _duration(option, rest.pop(0), "serve_stale verify timeout")
        if timeout < 0:
            raise option.error("cache: invalid negative timeout for serve_stale verify")
        values["verify_timeout"] = timeout
    if len(rest) > 2:
        raise option.error("cache: serve_stale: too many arguments for the immediate mode")
    if rest:
        values["stale_ttl"] = _stale_ttl(option, rest[0])
    if len(rest) > 1:
        values["stale_recheck"] = _stale_recheck(option, rest[1])
    return values


def setup_cache(directive: Directive, ctx) -> CacheConfig:
    """Parse a `cache` directive. Raises CorefileError naming file:line."""
    args = list(directive.args)
    values: dict = {}
    if args:
        try:
            ttl = int(args[0])
        except ValueError:
            pass
        else:
            if ttl <= 0:
                raise directive.error(f"cache: cache TTL can not be zero or negative: {ttl}")
            values["success_ttl"] = values["denial_ttl"] = ttl
            args = args[1:]
    zones = tuple(normalize_zone(zone) for zone in args) or tuple(ctx.zones)
    for option in directive.block:
        name = option.name
        if name in ("success", "denial"):
            values.update(_capacity_and_ttls(option, name))
        elif name == "prefetch":
            values.update(_prefetch(option))
        elif name == "serve_stale":
            values.update(_serve_stale(option))
        elif name == "serve_stale_policy":
            raise option.error("cache: serve_stale_policy is not supported")
        elif name == "servfail":
            option.expect_args(1, 1, "servfail DURATION")
            duration = _duration(option, option.args[0], "servfail")
            if duration < 0:
                raise option.error("cache: invalid negative ttl for servfail")
            if duration > MAX_SERVFAIL_TTL:
                raise option.error("cache: caching SERVFAIL responses over 5 minutes is not permitted")
            values["servfail_ttl"] = duration
        elif name == "disable":
            option.expect_args(1, usage="disable success|denial [ZONES...]")
            kind = option.args[0]
            if kind not in ("success", "denial"):
                raise option.error('cache: cache type for disable must be "success" or "denial"')
            # Without zones the whole cache of that kind is off; a later
            # `disable` of the same kind replaces an earlier one (as CoreDNS).
            values[f"{kind}_disabled"] = tuple(normalize_zone(z) for z in option.args[1:]) or (".",)
        elif name == "keepttl":
            option.expect_args(0, 0, "keepttl")
            values["keepttl"] = True
        else:
            raise option.error(f"cache: unknown property '{name}'")
    return CacheConfig(zones=zones, **values)


# --- what a response is (CoreDNS's response.Typify and cacheResponseType) ----------------

NOERROR = "noerror"
NODATA = "nodata"
NXDOMAIN = "nxdomain"
DELEGATION = "delegation"
SERVERERROR = "servererror"
OTHERERROR = "othererror"
META = "meta"
UPDATE = "update"

_YEAR68 = 1 << 31
# Plain ints: IntFlag arithmetic costs more than the rest of a cache hit.
_AA, _AD, _CD, _RA = int(dns.flags.AA), int(dns.flags.AD), int(dns.flags.CD), int(dns.flags.RA)


def _signature_expired(message: dns.message.Message, now: float) -> bool:
    """Is an RRSIG outside its validity period (RFC 4034 3.1.5, serial arithmetic)?"""
    for section in (message.answer, message.authority, message.additional):
        for rrset in section:
            if rrset.rdtype != dns.rdatatype.RRSIG:
                continue
            for sig in rrset:
                modi = int((sig.inception - now) / _YEAR68)
                mode = int((sig.expiration - now) / _YEAR68)
                inception = sig.inception + modi * _YEAR68
                expiration = sig.expiration + mode * _YEAR68
                if not inception <= now <= expiration:
                    return True
    return False


def typify(message: dns.message.Message, now: float) -> str:
    """The type of a response, as CoreDNS's response.Typify.

    `now` is the wall-clock time, for RRSIG validity.
    """
    opcode = message.opcode()
    if opcode == dns.opcode.UPDATE:
        return UPDATE
    if opcode == dns.opcode.NOTIFY:
        return META
    if message.question and message.question[0].rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return META
    if message.ednsflags & dns.flags.DO and _signature_expired(message, now):
        return OTHERERROR
    rcode = message.rcode()
    if message.answer:
        if rcode == dns.rcode.NOERROR:
            return NOERROR
        if rcode == dns.rcode.NXDOMAIN:
            return OTHERERROR
    soa = _has_soa(message)
    if soa and rcode == dns.rcode.NOERROR:
        return NODATA
    if rcode == dns.rcode.NXDOMAIN:
        return NXDOMAIN
    if rcode in (dns.rcode.SERVFAIL, dns.rcode.NOTIMP):
        return SERVERERROR
    if rcode == dns.rcode.NOERROR:
        if any(rrset.rdtype == dns.rdatatype.NS for rrset in message.authority):
            return DELEGATION
        return NOERROR
    return OTHERERROR


def classify(message: dns.message.Message, now: float) -> str:
    """The kind of a response, for caching (CoreDNS's cacheResponseType): `typify`, except below.

    `now` is the wall-clock time, for RRSIG validity.
    """
    kind = typify(message, now)
    if kind == NOERROR and message.answer and _has_soa(message) and not _answers_question(message):
        # A CNAME chain that ends without the asked type, with an SOA for
        # the negative TTL: NODATA (RFC 2308 sections 1 and 2.2).
        return NODATA
    return kind


def _has_soa(message: dns.message.Message) -> bool:
    return any(rrset.rdtype == dns.rdatatype.SOA for rrset in message.authority)


def _answers_question(message: dns.message.Message) -> bool:
    """Does the answer hold the asked type at the end of the CNAME chain?"""
    question = message.question[0]
    qclass, qtype = question.rdclass, question.rdtype

    def in_class(rrset) -> bool:
        return qclass == dns.rdataclass.ANY or rrset.rdclass == qclass

    def cname_target(owner):
        targets = {
            rdata.target
            for rrset in message.answer
            if rrset.rdtype == dns.rdatatype.CNAME and in_class(rrset) and rrset.name == owner
            for rdata in rrset
        }
        if len(targets) > 1:
            return None, False  # RFC 2181 10.1: an alias has one canonical name
        return (targets.pop() if targets else None), True

    name = question.name
    if qtype == dns.rdatatype.ANY:
        return any(in_class(rrset) and rrset.name == name for rrset in message.answer)
    if qtype == dns.rdatatype.CNAME:
        target, ok = cname_target(name)
        return ok and target is not None
    seen = set()
    while True:
        if name in seen:
            return False  # a CNAME loop (RFC 1034 3.6.2)
        seen.add(name)
        target, ok = cname_target(name)
        if not ok:
            return False
        if target is None:
            break
        name = target
    return any(rrset.rdtype == qtype and in_class(rrset) and rrset.name == name for rrset in message.answer)


def _cacheable(message: dns.message.Message, kind: str) -> bool:
    """CoreDNS's key(): truncated, erroneous and SOA-less denials are never cached."""
    if message.flags & dns.flags.TC or kind in (OTHERERROR, META, UPDATE):
        return False
    if kind == NXDOMAIN and not _has_soa(message):
        return False
    if kind == NOERROR and message.answer and not _has_soa(message) and not _answers_question(message):
        # An incomplete CNAME chain without an SOA: RFC 2308 section 5 says
        # SHOULD NOT cache.
        return False
    return True


def _minimal_ttl(message: dns.message.Message, kind: str, maximum: int) -> int:
    """The smallest TTL of the response, at most `maximum` (CoreDNS's dnsutil.MinimalTTL)."""
    if kind not in (NOERROR, NXDOMAIN, NODATA):
        return MIN_TTL
    if not message.answer and not message.authority and not message.additional:
        return MIN_TTL
    ttl = maximum
    for section in (message.answer, message.authority, message.additional):
        for rrset in section:
            ttl = min(ttl, rrset.ttl)
    return ttl


# --- entries ------------------------------------------------------------------------------


@attrs.define(slots=True, eq=False)
class _Item:
    """A cached response (CoreDNS's item)."""

    qname: dns.name.Name
    qtype: int
    qclass: int
    rcode: int
    authenticated: bool
    recursion_available: bool
    answer: list
    authority: list
    additional: list
    orig_ttl: int
    stored: float
    #: Which store holds it: "success" or "denial" (the hits metric's type).
    kind: str = "success"
    #: Prefetch popularity (CoreDNS's freq.Freq).
    last_seen: float = -math.inf
    hits: int = 0
    refreshing: bool = False
    retry_after: float = -math.inf

    def ttl(self, now: float) -> int:
        """The TTL left, whole seconds elapsed taken off (CoreDNS's item.ttl)."""
        return self.orig_ttl - int(now - self.stored)

    def seen(self, window: float, now: float) -> int:
        """Count a hit; a gap of `window` or more starts the count again."""
        if self.last_seen < now - window:
            self.hits = 1
        else:
            self.hits += 1
        self.last_seen = now
        return self.hits

    def begin_refresh(self, now: float, recheck: float) -> bool:
        """At most one refresh at a time, none within `recheck` of a failed one."""
        if self.refreshing or (recheck > 0 and now < self.retry_after):
            return False
        self.refreshing = True
        return True

    def end_refresh(self, now: float, recheck: float, refreshed: bool) -> None:
        self.retry_after = now + recheck if recheck > 0 and not refreshed else -math.inf
        self.refreshing = False

    def to_message(self, request: Request, ttl: int) -> dns.message.Message:
        response = request.reply()
        # CoreDNS sets AA on every cached answer: some stub resolvers (old
        # glibc getaddrinfo) drop non-authoritative answers (item.go).
        flags = int(response.flags) | _AA
        if self.recursion_available:
            flags |= _RA
        if self.authenticated and (request.dnssec_ok or request.query.flags & _AD):
            # RFC 6840 5.7-5.8: AD only for clients that asked for DNSSEC or AD.
            flags |= _AD
        response.flags = flags
        if self.rcode:
            response.set_rcode(self.rcode)
        response.answer = _with_ttl(self.answer, ttl)
        response.authority = _with_ttl(self.authority, ttl)
        response.additional = _with_ttl(self.additional, ttl)
        return response


def _with_ttl(rrsets: list, ttl: int) -> list:
    out = []
    for rrset in rrsets:
        rrset = rrset.copy()
        rrset.ttl = ttl
        out.append(rrset)
    return out


class _Store:
    """Bounded entries of one kind. When full, the oldest entry makes room
    (CoreDNS evicts a random entry of the full shard)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: dict = {}

    def add(self, key, item: _Item) -> bool:
        """Store item; True when another entry was evicted for it."""
        items = self.items
        evicted = False
        if key not in items and len(items) >= self.capacity:
            del items[next(iter(items))]
            evicted = True
        items[key] = item
        return evicted

    def __len__(self) -> int:
        return len(self.items)


# --- metrics ----------------------------------------------------------------------------------


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


_METRICS: "weakref.WeakKeyDictionary[CollectorRegistry, _CacheMetrics]" = weakref.WeakKeyDictionary()


def _metrics(registry: CollectorRegistry) -> _CacheMetrics:
    """CoreDNS's coredns_cache_* metrics, defined once per registry."""
    metrics = _METRICS.get(registry)
    if metrics is None:
        with_type = ["server", "type", "zones", "view"]
        without = ["server", "zones", "view"]
        metrics = _CacheMetrics(
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
        _METRICS[registry] = metrics
    return metrics


# --- the plugin -------------------------------------------------------------------------------


class CachePlugin:
    """Answers from the cache, or asks the next plugin and keeps its answer."""

    name = "cache"

    def __init__(self, config: CacheConfig, reactor, *, registry: CollectorRegistry | None = None,
                 server: str = "dns://:53", view: str = ""):
        self.config = config
        self.reactor = reactor
        self.success = _Store(config.success_capacity)
        self.denial = _Store(config.denial_capacity)
        metrics = _metrics(registry if registry is not None else CollectorRegistry())
        zones = ",".join(config.zones)
        self._requests = metrics.requests.labels(server, zones, view)
        self._misses = metrics.misses.labels(server, zones, view)
        self._hits = {kind: metrics.hits.labels(server, kind, zones, view) for kind in ("success", "denial")}
        self._entries = {kind: metrics.entries.labels(server, kind, zones, view) for kind in ("success", "denial")}
        self._evictions = {kind: metrics.evictions.labels(server, kind, zones, view) for kind in ("success", "denial")}
        self._prefetches = metrics.prefetch.labels(server, zones, view)
        self._drops = metrics.drops.labels(server, zones, view)
        self._served_stale = metrics.served_stale.labels(server, zones, view)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    # -- serving

    def transparent(self, name: str, qtype: int, answer) -> bool:
        """Would this cache pass the question on and send the next plugin's answer as is?

        For the server's fast route (`BlockRuntime.fast_plugin`); answer
        is the `discovery.dns.zone.Answer` the next plugin gives. Yes when
        the name is outside our zones, or when neither kind of answer is
        kept for it and the TTL cap (`_write`) leaves every TTL as it is.
        """
        config = self.config
        if longest_match(config.zones, name) is None:
            return True
        if longest_match(config.success_disabled, name) is None or longest_match(config.denial_disabled, name) is None:
            return False
        ttls = {rrset.ttl for section in (answer.answer, answer.authority, answer.additional) for rrset in section}
        if len(ttls) != 1 or answer.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return False
        (ttl,) = ttls
        if answer.rcode == dns.rcode.NOERROR and answer.answer:
            low, high = config.success_min_ttl, config.success_ttl
        else:
            low, high = config.denial_min_ttl, config.denial_ttl
        return min(max(ttl, low), high) == ttl

    def serve(self, request: Request, next):
        name = request.name
        if longest_match(self.config.zones, name) is None:
            return next(request)
        config = self.config
        now = self.reactor.seconds()
        # CoreDNS's key: the lower-cased name, type, class, DO and CD bits.
        key = (name, request.qtype, request.qclass, request.dnssec_ok, bool(request.query.flags & _CD))
        item = self._lookup(key, request, now)
        if item is None:
            return self._fetch(request, next, key)
        ttl = item.ttl(now)
        stale = ttl <= 0
        request.plugin = self.name
        if stale:
            if config.verify_stale:
                return self._verify(request, next, key, item, now)
            self._refresh_in_background(request, next, key, item, now, stale=True)
            self._served_stale.inc()
        elif config.prefetch > 0 and self._should_prefetch(item, now, ttl):
            self._refresh_in_background(request, next, key, item, now, stale=False)
        return self._answer(request, item, now, ttl, stale)

    def _answer(self, request: Request, item: _Item, now: float, ttl: int, stale: bool) -> dns.message.Message:
        """A cached answer, and for how long the server may reuse it."""
        config = self.config
        if stale:
            ttl = config.stale_ttl
        elif config.keepttl:
            ttl = item.orig_ttl
        response = item.to_message(request, ttl)
        if stale or item.rcode == dns.rcode.SERVFAIL or item.authenticated:
            # Stale and SERVFAIL answers are re-decided for every query; an
            # AD bit depends on each client's DO and AD bits.
            request.fastpath.forbid()
        elif config.prefetch > 0 and ttl <= self._prefetch_threshold(item):
            # Inside the prefetch window every query counts towards popularity.
            request.fastpath.forbid()
        else:
            # Merged, not replaced: what plugins before the cache said
            # (an acl's guard, a bufsize limit) still holds.
            request.fastpath.merge(self._reuse_policy(item))
        return response

    def _reuse_policy(self, item: _Item) -> FastPathPolicy:
        """Reuse until the entry goes stale or enters the prefetch window.

        Meanwhile the server counts the TTLs down itself (keepttl: they stay)
        and counts each reuse as a request and a hit of this cache.
        """
        limit = item.stored + item.orig_ttl
        if self.config.prefetch > 0:
            limit -= self._prefetch_threshold(item)
        return FastPathPolicy(
            expires=limit,
            countdown_from=None if self.config.keepttl else item.stored,
            on_reuse=(self._requests.inc, self._hits[item.kind].inc),
        )

    def _lookup(self, key, request: Request, now: float) -> _Item | None:
        """The usable entry for key, counting requests, hits and misses (getIfNotStale)."""
        self._requests.inc()
        stale_for = self.config.serve_stale
        item = self.denial.items.get(key)
        if item is not None and _usable(item, now, stale_for):
            if item.rcode == dns.rcode.SERVFAIL:
                # A transient SERVFAIL does not shadow a good answer still held.
                positive = self.success.items.get(key)
                if positive is not None and _usable(positive, now, stale_for):
                    self._hits["success"].inc()
                    return positive
            self._hits["denial"].inc()
            return item
        item = self.success.items.get(key)
        if item is not None and _usable(item, now, stale_for):
            self._hits["success"].inc()
            return item
        self._misses.inc()
        return None

    def _should_prefetch(self, item: _Item, now: float, ttl: int) -> bool:
        hits = item.seen(self.config.prefetch_duration, now)
        return hits >= self.config.prefetch and ttl <= self._prefetch_threshold(item)

    def _prefetch_threshold(self, item: _Item) -> int:
        return math.ceil(self.config.prefetch_percentage / 100 * item.orig_ttl)

    # -- asking the next plugin

    def _fetch(self, request: Request, next, key):
        """A miss: ask the next plugin, keep what it says, pass it on."""
        child = _refresh_request(request, background=False)
        result = next(child)
        if isinstance(result, defer.Deferred):
            return result.addCallback(self._fetched, request, child, key)
        return self._fetched(result, request, child, key)

    def _fetched(self, response: dns.message.Message, request: Request, child: Request, key):
        request.plugin = child.plugin
        response, item = self._write(response, request, key, refresh=False)
        if item is None:
            # Not kept: the answer is the next plugin's, TTLs capped, and
            # reusable as long as that plugin said.
            request.fastpath.merge(child.fastpath)
        else:
            # The answer as fetched is the next plugin's (its flags, its
            # metrics label): the first hit, built by the cache, is the one
            # the server may reuse.
            request.fastpath.forbid()
        return response

    def _write(self, response: dns.message.Message, request: Request, key, refresh: bool):
        """Cap the TTLs, keep the response when it may be kept (CoreDNS's WriteMsg).

        Returns (the response for the client, the new entry or None).
        """
        config = self.config
        now = self.reactor.seconds()
        kind = classify(response, now)
        if kind in (NXDOMAIN, NODATA):
            duration = min(max(_minimal_ttl(response, kind, config.denial_ttl), config.denial_min_ttl),
                           config.denial_ttl)
        elif kind == SERVERERROR:
            duration = config.servfail_ttl
        else:
            duration = min(max(_minimal_ttl(response, kind, config.success_ttl), config.success_min_ttl),
                           config.success_ttl)
        ttl = int(duration)
        # One TTL for the whole response, so that a client never sees 1799
        # for one record and 8 for the next.
        response.answer = _with_ttl(response.answer, ttl)
        response.authority = _with_ttl(response.authority, ttl)
        response.additional = _with_ttl(response.additional, ttl)
        item = None
        if duration > 0 and _cacheable(response, kind):
            if _matches(response, request):
                item = self._set(response, key, kind, duration, now, refresh)
            else:
                self._drops.inc()
        if not request.dnssec_ok and not request.query.flags & dns.flags.AD:
            response.flags &= ~dns.flags.AD
        return response, item

    def _set(self, response: dns.message.Message, key, kind: str, duration: float, now: float,
             refresh: bool) -> _Item | None:
        name = response.question[0].name.to_text().lower()
        if kind in (NOERROR, DELEGATION):
            if longest_match(self.config.success_disabled, name) is not None:
                return None
            store, label = self.success, "success"
        else:
            if longest_match(self.config.denial_disabled, name) is not None:
                return None
            store, label = self.denial, "denial"
        item = _new_item(response, now, duration)
        item.kind = label
        if store.add(key, item):
            self._evictions[label].inc()
        if refresh and label == "success":
            # A refreshed positive answer is the newest word on this key.
            self.denial.items.pop(key, None)
        self._entries["success"].set(len(self.success))
        self._entries["denial"].set(len(self.denial))
        return item

    # -- refreshing

    def _refresh_in_background(self, request: Request, next, key, item: _Item, now: float, stale: bool) -> None:
        """Prefetch, or refresh a stale entry, without holding up the client."""
        recheck = self.config.stale_recheck if stale else 0.0
        if not item.begin_refresh(now, recheck):
            return
        self._prefetches.inc()
        child = _refresh_request(request, background=True)
        d = defer.maybeDeferred(next, child)
        d.addCallback(self._refreshed, child, key, item, now, stale)
        d.addErrback(self._refresh_failed, request)
        d.addCallback(lambda refreshed: item.end_refresh(self.reactor.seconds(), recheck, bool(refreshed)))

    def _refreshed(self, response, child: Request, key, item: _Item, now: float, stale: bool) -> bool:
        if stale and not _refreshes_stale(response, child, self.reactor.seconds()):
            return False
        _, new = self._write(response, child, key, refresh=True)
        if new is not None:
            # Popularity carries over to the refreshed entry (CoreDNS's doPrefetch).
            new.last_seen, new.hits = now, item.hits
        return True

    def _refresh_failed(self, failure, request: Request) -> bool:
        log.warning("cache refresh of %s failed: %s", request.name, failure.getErrorMessage())
        return False

    def _verify(self, request: Request, next, key, item: _Item, now: float):
        """serve_stale verify: ask first, serve the stale entry only if that fails."""
        config = self.config
        recheck = config.stale_recheck
        if recheck > 0 and not item.begin_refresh(now, recheck):
            return self._serve_stale(request, item, now)
        child = _refresh_request(request, background=False)
        outcome: dict = {}

        def answered(response):
            refreshed = _refreshes_stale(response, child, self.reactor.seconds())
            if refreshed:
                outcome["response"], _ = self._write(response, request, key, refresh=True)
            if recheck > 0:
                item.end_refresh(self.reactor.seconds(), recheck, refreshed)
            return refreshed

        def failed(failure):
            if recheck > 0:
                item.end_refresh(self.reactor.seconds(), recheck, False)
            log.warning("cache verify of %s failed: %s", request.name, failure.getErrorMessage())
            return False

        refresh = defer.maybeDeferred(next, child).addCallbacks(answered, failed)

        def decide(refreshed):
            if not refreshed:
                return self._serve_stale(request, item, now)
            request.plugin = child.plugin
            request.fastpath.forbid()
            return outcome["response"]

        if config.verify_timeout <= 0:
            return refresh.addCallback(decide)
        waiter: defer.Deferred = defer.Deferred()
        timer = self.reactor.callLater(config.verify_timeout, lambda: waiter.called or waiter.callback(False))

        def finished(refreshed):
            if not waiter.called:
                timer.cancel()
                waiter.callback(refreshed)
            return refreshed

        refresh.addCallback(finished)
        return waiter.addCallback(decide)

    def _serve_stale(self, request: Request, item: _Item, now: float) -> dns.message.Message:
        self._served_stale.inc()
        request.plugin = self.name
        return self._answer(request, item, now, 0, stale=True)


def _usable(item: _Item, now: float, stale_for: float) -> bool:
    ttl = item.ttl(now)
    return ttl > 0 or (stale_for > 0 and -ttl < int(stale_for))


def _matches(response: dns.message.Message, request: Request) -> bool:
    if len(response.question) != 1 or not response.flags & dns.flags.QR:
        return False
    question = response.question[0]
    return question.name == request.qname and question.rdtype == request.qtype and question.rdclass == request.qclass


def _refreshes_stale(response: dns.message.Message, request: Request, now: float) -> bool:
    """May this response replace a stale entry? (RFC 8767 section 4: NOERROR or NXDOMAIN.)"""
    if response is None or response.flags & dns.flags.TC or not _matches(response, request):
        return False
    if classify(response, now) in (OTHERERROR, META, UPDATE):
        return False
    return response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


def _new_item(response: dns.message.Message, now: float, duration: float) -> _Item:
    question = response.question[0]
    return _Item(
        qname=question.name,
        qtype=question.rdtype,
        qclass=question.rdclass,
        rcode=response.rcode(),
        authenticated=bool(response.flags & dns.flags.AD),
        recursion_available=bool(response.flags & dns.flags.RA),
        # The response's RRsets are already copies with the capped TTL.
        answer=list(response.answer),
        authority=list(response.authority),
        additional=list(response.additional),
        orig_ttl=int(duration),
        stored=now,
    )


def _refresh_request(request: Request, background: bool) -> Request:
    """The request the next plugin sees: AD set, so that a validating upstream
    says whether the data is authentic (CoreDNS's authenticatedRefreshState)."""
    query = copy.copy(request.query)
    query.flags = request.query.flags | dns.flags.AD
    if background:
        # A prefetch has no client; over TCP nothing comes back truncated.
        return attrs.evolve(request, query=query, fastpath=FastPathPolicy(), plugin="", proto="tcp",
                            max_size=65535)
    return attrs.evolve(request, query=query, fastpath=FastPathPolicy(), plugin="")


def _build(config: CacheConfig, ctx: BuildContext) -> CachePlugin:
    return CachePlugin(config, ctx.reactor, registry=ctx.registry, server=ctx.server)


PLUGINS = (PluginSpec("cache", setup_cache, build=_build),)
