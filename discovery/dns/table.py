"""The table of rendered answers: bounded in bytes, CLOCK eviction, dependency index.

The server keeps the answers it rendered, keyed by the lower-cased question
and the client's EDNS state, so that the next identical question costs a
copy (see `discovery.dns.server`). This module is the table itself:

* **Bounded in bytes**, every index included: each entry is charged for
  its key, its rendered bytes, its object, its slot in the clock and its
  memberships in the dependency index (`entry_cost`; the constants are
  checked against tracemalloc by tests/unit/test_table.py). The limit is
  `-dns.table` on the command line (default `DEFAULT_LIMIT`); the
  `wayfinder_answer_table_bytes` gauge reports the use.
* **CLOCK (second chance) eviction**: a hit sets the entry's reference bit;
  the hand passes over referenced entries (clearing the bit) and evicts the
  first unreferenced one. A scan or a flood of names asked once passes
  through the table without pushing out what is asked often, and a cyclic
  working set larger than the table costs a miss per question, never more.
  (The former insertion-order eviction dropped exactly the entries about
  to be asked again, and its `next(iter(dict))` cost grew with the
  deletions at the dict's front: 88 us per eviction at 200,000 entries.)
* **Admission on the second sighting** (`admit`): once the table is full
  (`has_room`), the fast route keeps an answer it rendered for a question
  only when that question was seen before (a Bloom filter of about 1 byte per 100 bytes of the bound, reserved
  out of it, forgotten when it has seen a question per 100 bytes), so a
  flood of one-off names never enters the table, while a hot set whose
  questions recur within that window is let in; prepared answers are kept
  at once.
* **Negative answers by question** (`remember_negative`): an NXDOMAIN or
  NODATA answer is one entry shared by every question of its shape
  (`DNSServer._negative`), so a question's negative answer costs only its
  key and a dict slot. They are kept without dependencies, forgotten all
  at once at any change of the Store (`forget_negatives`), and take at
  most a quarter of the bound (`NEGATIVE_SHARE`): when that is full, they
  are forgotten too.
* **Dependency index**: token -> keys of the entries that depend on it,
  so that a Store change drops exactly its dependants (`invalidate`); an
  evicted entry leaves the index with it, so the index never outgrows the
  table. A token is ``(store_key(store), token)``, with the tokens of
  `discovery.dns.zone`; `invalidation_tokens(store, change)` gives those a
  Store change makes stale. The server that owns the table subscribes to
  the Stores its plugins answer from and applies them.
"""

from __future__ import annotations

from sys import getsizeof
from typing import Hashable, Iterable

from ..cache.store import Change, Store
from .request import ANY_CHANGE
from .zone import change_dependencies

__all__ = ["AnswerTable", "DEFAULT_LIMIT", "entry_cost", "store_key", "invalidation_tokens"]


def store_key(store: Store) -> int:
    """The first element of every dependency token of this Store's answers."""
    return id(store)


def invalidation_tokens(store: Store, change: Change) -> frozenset:
    """The dependency tokens a change of this Store makes stale, ANY_CHANGE included."""
    key = store_key(store)
    return frozenset((key, token) for token in change_dependencies(change)) | {(key, ANY_CHANGE)}

#: The default bound of a server's table: 40 MiB, which holds the answers of
#: a 10,000-Service cluster's search-path mix (80,000 questions, half of them
#: NXDOMAIN: 31.7 MiB charged; tests/bench/bench_dns_miss.py).
DEFAULT_LIMIT = 40 << 20

# Bytes charged per entry besides its object (sys.getsizeof), its key and
# rendered bytes: the key's and tail's object headers (2 x 33), the dict
# slot at its worst load (~100), the clock's slot (8) and the int of its
# cost (32). Per dependency:
# its slot in the entry's tokens (8) and the key's slot in that token's
# members (a list slot, or a set's at its worst load: ~50). A distinct token
# (its tuples and strings, its members list, its slot in the index) is
# charged while some entry names it. tests/unit/test_table.py checks the sum
# against tracemalloc.
_ENTRY_COST = 206
_DEPENDENCY_COST = 60
_TOKEN_COST = 450
# A token's members: a list [the token, key, key, ...] up to this many keys
# (most tokens are a Service's: a few answers), then [the token, set of keys]
# (a namespace's), so that removing a key never scans a long list.
_LIST_MEMBERS = 8
# A negative answer's serial patcher (`discovery.dns.server._Serial`) and its offsets.
_SERIAL_COST = 150
# Questions seen once (`admit`) per byte of the table's bound, and bits of
# the sightings filter per question: 8 bits and two probes let about 5 % of
# one-off questions in by mistake, which costs nothing but their room.
# Room for an answer with its tokens, with margin (`has_room`).
_ROOM = 4096
# A negative answer kept by question (`remember_negative`): the key's object
# header and its slot in the dict at its worst load, beside the key's bytes.
_NEGATIVE_COST = 140
#: The share of the bound negative answers by question may take.
NEGATIVE_SHARE = 1 / 4
_SIGHTINGS_PER_BYTE = 1 / 100
_BITS_PER_SIGHTING = 8


def entry_cost(key: bytes, entry) -> int:
    """Bytes charged for one entry, without its tokens' first-use cost."""
    tails = entry.tails
    size = len(tails) + 33 if type(tails) is bytes else sum(len(t) + 41 for t in tails) + 56
    cost = _ENTRY_COST + getsizeof(entry) + len(key) + size + _DEPENDENCY_COST * len(entry.tokens)
    return cost + _SERIAL_COST if getattr(entry, "serial", None) is not None else cost


class AnswerTable:
    """Rendered answers by question; see the module docstring."""

    def __init__(self, limit: int = DEFAULT_LIMIT):
        self.limit = limit
        self.entries: dict[bytes, object] = {}
        #: Bytes charged for what the table holds now.
        self.bytes = 0
        #: Entries evicted to stay within the limit, since start.
        self.evictions = 0
        #: Question -> the shared entry of its negative answer (`remember_negative`).
        self.negatives: dict[bytes, object] = {}
        self._negative_bytes = 0
        self._negative_limit = int(limit * NEGATIVE_SHARE)
        #: token -> its members: [the token, keys...] or [the token, {keys}]
        #: (`_LIST_MEMBERS`). The token kept there is the one object every
        #: entry naming it shares (answers come with fresh token tuples).
        self._by_token: dict[Hashable, list] = {}
        # The clock: keys by slot (None for a free slot), the hand, free slots.
        self._ring: list[bytes | None] = []
        self._hand = 0
        self._free: list[int] = []
        # Questions seen once (`admit`): a Bloom filter of two probes,
        # forgotten all at once when it has taken its share; its bytes are
        # reserved out of the limit.
        self._sightings_limit = max(1024, int(limit * _SIGHTINGS_PER_BYTE))
        size = 1 << (self._sightings_limit * _BITS_PER_SIGHTING - 1).bit_length()
        self._mask = size - 1
        self._filter = bytearray(size >> 3)
        self._sightings = 0
        self._reserved = len(self._filter) + 100
        self.bytes = self._reserved

    def __len__(self) -> int:
        return len(self.entries)

    def admit(self, key: bytes) -> bool:
        """Is this the second sighting of key (since sightings were last forgotten)?

        Answers rendered for a question are kept from its second sighting
        on: a flood of names asked once then passes by without displacing
        anything (TinyLFU's doorkeeper).
        """
        bits = self._filter
        value = hash(key)
        mask = self._mask
        first, second = value & mask, (value >> 32) & mask
        if bits[first >> 3] >> (first & 7) & 1 and bits[second >> 3] >> (second & 7) & 1:
            return True
        if self._sightings >= self._sightings_limit:
            bits[:] = bytes(len(bits))
            self._sightings = 0
        bits[first >> 3] |= 1 << (first & 7)
        bits[second >> 3] |= 1 << (second & 7)
        self._sightings += 1
        return False

    def has_room(self) -> bool:
        """Is there room for another answer without evicting any?

        While there is, the fast route keeps an answer at its first
        sighting; once the table is full, from its second (`admit`).
        """
        return self.bytes + _ROOM <= self.limit

    def put(self, key: bytes, entry, tokens: Iterable[Hashable]) -> bool:
        """Keep entry under key (replacing any); False when it alone exceeds the limit."""
        if key in self.entries:
            self._remove(key)
        by_token = self._by_token
        entry.tokens = tokens = tuple(by_token[token][0] if token in by_token else token for token in tokens)
        entry.referenced = False
        entry.cost = cost = entry_cost(key, entry)
        if cost + _TOKEN_COST * len(tokens) > self.limit - self._reserved:
            return False
        while True:
            need = cost + _TOKEN_COST * sum(1 for token in tokens if token not in by_token)
            if self.bytes + need <= self.limit:
                break
            if not self.entries:
                return False
            self._evict_one()
        free = self._free
        if free:
            slot = free.pop()
            self._ring[slot] = key
        else:
            slot = len(self._ring)
            self._ring.append(key)
        entry.slot = slot
        self.entries[key] = entry
        self.bytes += need
        for token in entry.tokens:
            members = by_token.get(token)
            if members is None:
                by_token[token] = [token, key]
            elif type(members[1]) is set:
                members[1].add(key)
            elif len(members) <= _LIST_MEMBERS:
                members.append(key)
            else:
                members[1:] = [{*members[1:], key}]
        return True

    def remember_negative(self, key: bytes, entry) -> None:
        """Keep the shared entry of key's negative answer, until `forget_negatives`."""
        cost = _NEGATIVE_COST + len(key)
        if self._negative_bytes + cost > self._negative_limit:
            self.forget_negatives()
            if cost > self._negative_limit:
                return
        while self.bytes + cost > self.limit and self.entries:
            self._evict_one()
        if self.bytes + cost > self.limit:
            return
        self.negatives[key] = entry
        self._negative_bytes += cost
        self.bytes += cost

    def forget_negatives(self) -> None:
        """Drop every negative answer kept by question (the Store changed, or their share is full)."""
        self.negatives.clear()
        self.bytes -= self._negative_bytes
        self._negative_bytes = 0

    def invalidate(self, tokens: Iterable[Hashable]) -> list[tuple[bytes, object]]:
        """Drop every answer that depends on one of the tokens; returns (key, entry) of each."""
        dropped = []
        entries = self.entries
        for token in tokens:
            for key in _keys(self._by_token.get(token)):
                if key in entries:
                    dropped.append((key, entries[key]))
                    self._remove(key)
        return dropped

    def clear(self) -> None:
        self.negatives.clear()
        self._negative_bytes = 0
        self.entries.clear()
        self._by_token.clear()
        self._ring.clear()
        self._free.clear()
        self._filter[:] = bytes(len(self._filter))
        self._sightings = 0
        self._hand = 0
        self.bytes = self._reserved

    # -- internals

    def _evict_one(self) -> None:
        ring = self._ring
        entries = self.entries
        size = len(ring)
        hand = self._hand
        # Two passes at most: the first clears every reference bit it passes.
        for _ in range(2 * size + 1):
            if hand >= size:
                hand = 0
            key = ring[hand]
            hand += 1
            if key is None:
                continue
            entry = entries[key]
            if entry.referenced:
                entry.referenced = False
                continue
            self._hand = hand
            self._remove(key)
            self.evictions += 1
            return
        self._hand = hand

    def _remove(self, key: bytes) -> None:
        entry = self.entries.pop(key)
        self.bytes -= entry.cost
        self._ring[entry.slot] = None
        self._free.append(entry.slot)
        by_token = self._by_token
        for token in entry.tokens:
            members = by_token.get(token)
            if members is None:
                continue
            keys = members[1]
            if type(keys) is set:
                keys.discard(key)
                left = len(keys)
            else:
                if key in members:
                    members.remove(key)
                left = len(members) - 1
            if not left:
                # A token is charged while some entry names it.
                del by_token[token]
                self.bytes -= _TOKEN_COST


def _keys(members: list | None) -> tuple[bytes, ...]:
    """The keys among a token's members (see `AnswerTable._by_token`)."""
    if members is None:
        return ()
    return tuple(members[1]) if type(members[1]) is set else tuple(members[1:])
