"""Cached answers: one response kept (CoreDNS's item.go), and the bounded shelves of them."""

from __future__ import annotations

import math

import attrs
import dns.message
import dns.name

from ..request import Request
from .classify import _AA, _AD, _RA


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


class _CachedAnswers:
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
