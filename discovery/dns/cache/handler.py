"""The cache plugin in the query's path (CoreDNS's handler.go and cache.go).

It answers from its cached answers, or asks the next plugin and keeps its answer.
"""

from __future__ import annotations

import copy
import logging
import math

import attrs
import dns.flags
import dns.message
import dns.rcode
from prometheus_client import CollectorRegistry
from twisted.internet import defer

from ...zones import longest_match
from ..request import FastPathPolicy, Request
from .classify import (
    _CD, DELEGATION, META, NODATA, NOERROR, NXDOMAIN, OTHERERROR, SERVERERROR, UPDATE, _cacheable, _minimal_ttl,
    classify,
)
from .entries import _Item, _CachedAnswers, _with_ttl
from .metrics import _metrics
from .setup import CacheConfig


log = logging.getLogger("wayfinder.cache")



class CachePlugin:
    """Answers from the cache, or asks the next plugin and keeps its answer."""

    name = "cache"

    def __init__(self, config: CacheConfig, reactor, *, registry: CollectorRegistry | None = None,
                 server: str = "dns://:53", view: str = ""):
        self.config = config
        self.reactor = reactor
        self.success = _CachedAnswers(config.success_capacity)
        self.denial = _CachedAnswers(config.denial_capacity)
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
        if answer.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return False
        # One TTL across the answer, else the cap may change some.
        ttl = None
        for section in (answer.answer, answer.authority, answer.additional):
            for rrset in section:
                if ttl is None:
                    ttl = rrset.ttl
                elif rrset.ttl != ttl:
                    return False
        if ttl is None:
            return False
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
