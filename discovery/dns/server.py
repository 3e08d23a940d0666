"""The DNS wire edge: UDP and TCP listeners, the table of rendered answers, the error ladder.

Per query, the hot path reads the header and the question straight from the
packet, without building a message object, and looks the question exactly
as written (plus the client's EDNS state) up in a table of answers rendered
earlier. A hit copies the rendered bytes and writes the client's ID, RD and
CD bits. The key keeps the question's case because the answers do, byte for
byte as CoreDNS writes them (compress.py): CoreDNS sends answers that fit
uncompressed, so owner names spell out the client's 0x20 case rather than
pointing to the question. Tuned against dnsperf on 10,000 Services: see
tests/bench/bench_dns.py.

A miss in the cluster zone takes the fast route when the block's chain
allows (`fast_miss`): the kubernetes plugin's answer, from the pure zone
function, written straight to wire format (`discovery.dns.wire`). A negative
answer is an entry shared by every question of its shape (`_negative`), so
a name never asked before costs the zone function's verdict: 13 us, and 44
us for an existing name in a new spelling, against the full path's 337 us
(tests/bench/bench_server.py). Answers for the names that exist are rendered
that way ahead of the first question (`prepare`).

Anything else takes the full path (dnspython): parse, dispatch to the server
block whose zone is the longest match, run its plugin chain, render as
CoreDNS does (compress.render: truncation to what the client accepts, and
UDP answers never larger than `max_udp_size`, 1232 bytes by default, the
DNS flag day 2020 value), and store the rendering when the plugins allow it
(`FastPathPolicy`). Rendered answers are dropped when the Store changes what
they depend on, when they expire, or when the table (`discovery.dns.table`,
bounded in bytes) needs room.

The error ladder, in one place: an unreadable header or a response packet
is dropped; a packet that does not parse, that carries a malformed EDNS
option (edns.py), or that does not hold exactly one question, gets FORMERR; an opcode other than QUERY gets NOTIMP; an EDNS
version other than 0 gets BADVERS; a bug while answering gets SERVFAIL and
one log line naming the query.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import struct
from typing import Callable, Hashable, Iterable

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
from twisted.internet import defer, protocol, task
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ..cache.store import Change, Store
from ..ops.connections import ConnectionGuard
from ..ops.metrics import DNSMetrics
from ..zones import longest_match
from .compress import FRAGMENT_LIMIT_IPV6, Rendered, render, udp_sizes_served
from .edns import COOKIE_ALONE, has_malformed_options, options_end
from .loadbalance import rotations
from .request import FastPathPolicy, PluginError, Request, Stream
from .tcp import TCPFactory
from .timeouts import TimeoutsConfig
from .table import DEFAULT_LIMIT, AnswerTable, invalidation_tokens
from .wire import OPT_RECORDS as _OPT_RECORDS
from .wire import render_answer

__all__ = ["BlockRuntime", "DNSServer", "AnswerTable", "render", "MAX_UDP_SIZE"]

log = logging.getLogger("wayfinder.dns")

#: Internal lookups (CNAME chasing) nest at most this deep.
MAX_LOOKUP_DEPTH = 8
#: Ports tried for port 0 before giving up (a free UDP port may be taken for TCP).
_PORT_0_ATTEMPTS = 20
#: Seconds between reports of reused answers to their plugins' counters.
REUSE_REPORT_INTERVAL = 1.0
#: UDP answers are never larger than this, whatever the client advertises:
#: the DNS flag day 2020 value knotd and BIND use; `bufsize` sets another.
MAX_UDP_SIZE = 1232
#: Longest run of answer preparation between two looks at the sockets.
PREPARE_SLICE = 0.005
#: The UDP receive buffer asked for: 4 MiB.
UDP_RECEIVE_BUFFER = 4 << 20
_OPT = 41
_STATE_BYTES = tuple(bytes((i,)) for i in range(8))
_OPT_SIZE = len(_OPT_RECORDS[0])
_SERVFAIL = dns.rcode.SERVFAIL
_AA = int(dns.flags.AA)
_SERIAL_TOKEN = ("serial",)
_SOA_TYPE = dns.rdatatype.SOA
#: A negative answer's entry is shared by every question that keeps the answer within this size.
_SHARED_NEGATIVE_SIZE = 512
#: Shared negative entries held at most (`DNSServer._negative`).
_NEGATIVE_SHAPES = 1024
#: Shared entry kinds held at most (`DNSServer._kind`).
_KINDS = 4096


@attrs.define(eq=False)
class BlockRuntime:
    """One server block, running: its zones and plugin chain, and how it reports."""

    zones: tuple[str, ...]
    #: The server label of metrics and logs ("dns://:53").
    server: str
    plugins: list
    #: The `log` directive: called with (client host, client port, proto,
    #: query wire, response wire, rcode, duration) for every answer.
    query_log: Callable | None = None
    #: Called with (request, failure) for the `errors` directive.
    error_log: Callable | None = None
    #: Rotate A/AAAA records between answers (`loadbalance`).
    loadbalance: bool = False
    metrics: DNSMetrics | None = None
    #: The largest UDP answer, whatever the client offers: 1232 (DNS flag
    #: day 2020) unless the block's `bufsize` says otherwise.
    max_udp_size: int = MAX_UDP_SIZE

    def fast_plugin(self, name: str) -> tuple[object, list] | None:
        """The plugin that may answer name on the fast route, and the plugins in front of it.

        The first plugin with a `fast_answer`, provided that each plugin in
        front of it can tell whether it would pass the question on and
        leave the answer untouched (`transparent(name, qtype, answer)`,
        asked by `DNSServer.fast_miss` once the answer is known).
        """
        front = []
        for plugin in self.plugins:
            if hasattr(plugin, "fast_answer"):
                return plugin, front
            if not hasattr(plugin, "transparent"):
                return None
            front.append(plugin)
        return None

    def run(self, request: Request):
        """Pass the request down the chain; returns a Message or a Deferred of one."""
        plugins = self.plugins
        count = len(plugins)

        def call(index: int, req: Request):
            if index == count:
                # CoreDNS's plugin.NextOrFailure: nothing left to answer.
                response = req.reply()
                response.set_rcode(_SERVFAIL)
                req.fastpath.forbid()
                return response
            return plugins[index].serve(req, lambda r: call(index + 1, r))

        return call(0, request)


#: Header prefixes (flags and counts, with the client's RD and CD bits) are
#: shared by every entry with the same flags and counts: there are few.
_PREFIXES: dict[tuple[int, bytes], tuple[bytes, ...]] = {}
#: The same headers with one more additional record (the OPT), by prefixes (`DNSServer._with_opt`).
_OPT_PREFIXES: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}


def _prefixes(wire: bytes, rd: int | None = None) -> tuple[bytes, ...]:
    """rd: the answer's own RD bit when it does not follow the client's (FastPathPolicy.rd)."""
    flags = struct.unpack_from("!H", wire, 2)[0] & ~(dns.flags.RD | dns.flags.CD)
    key = (flags, wire[4:12], rd)
    prefixes = _PREFIXES.get(key)
    if prefixes is None:
        # Indexed by (client RD) | (client CD) << 1.
        prefixes = _PREFIXES[key] = tuple(
            struct.pack(
                "!H",
                flags
                | (dns.flags.RD if (i & 1 if rd is None else rd) else 0)
                | (dns.flags.CD if i & 2 else 0),
            )
            + wire[4:12]
            for i in range(4)
        )
    return prefixes


def _ttl_offsets(wire: bytes, qend: int) -> tuple[int, ...]:
    """Offsets (from qend) of every RR's TTL, OPT excepted."""
    offsets = []
    count = sum(struct.unpack_from("!HHH", wire, 6))
    i = qend
    for _ in range(count):
        while True:
            length = wire[i]
            if length & 0xC0 == 0xC0:
                i += 2
                break
            i += length + 1
            if length == 0:
                break
        rdtype = wire[i] << 8 | wire[i + 1]
        if rdtype != _OPT:
            offsets.append(i + 4 - qend)
        i += 10 + (wire[i + 8] << 8 | wire[i + 9])
    return tuple(offsets)


class _Kind:
    """What answers rendered alike share: their block, zone, rcode and plugin, and the
    Meter of the last (proto, family, DO) seen (almost always the same).

    One per (block, zone, rcode, plugin, question type) (`DNSServer._kind`):
    the metrics label an answer by the question's type.
    """

    __slots__ = ("block", "zone", "rcode", "plugin", "meter_key", "meter")

    def __init__(self, block, zone: str, rcode: int, plugin: str):
        self.block = block
        self.zone = zone
        self.rcode = rcode
        self.plugin = plugin
        self.meter_key = None
        self.meter = None


class _Entry:
    """A rendered answer from the full path: everything but the client's ID, RD/CD bits and question."""

    __slots__ = (
        "prefixes", "tails", "turn", "udp_min", "udp_max", "tcp", "expires", "kind",
        "countdown", "on_reuse", "reuses", "guard",
        # Kept by the table: CLOCK bit, clock slot, dependencies, bytes charged.
        "referenced", "slot", "tokens", "cost",
        # The SOA serials it carries, patched when the Store moves (`_Serial`).
        "serial",
    )
    #: Rendered by the fast route (`_FastEntry`): re-rendered at once when a Store change drops it.
    prepared = False

    def __init__(self, rendered, variants: list[bytes], qend: int, policy: FastPathPolicy, now: float, kind: _Kind):
        wire = rendered.wire
        self.prefixes = _prefixes(wire, policy.rd)
        #: What follows the question: one bytes object, or a tuple of the
        #: loadbalance rotations handed out in turn.
        self.tails = wire[qend:] if len(variants) == 1 else tuple(variant[qend:] for variant in variants)
        self.turn = 0
        #: The clients these bytes are CoreDNS's answer for: a UDP size in
        #: [udp_min, udp_max], or TCP (compress.udp_sizes_served).
        self.udp_min, self.udp_max = _udp_sizes(rendered, policy.max_udp_size)
        self.tcp = rendered.plain_size == len(wire)
        #: None, or (query, qend, client host) -> may this answer be reused for it.
        self.guard = _all_of(policy.guards)
        self.expires = policy.expires
        self.kind = kind
        self.on_reuse = policy.on_reuse
        #: Reuses not yet reported to on_reuse (see DNSServer.report_reuses).
        self.reuses = 0
        self.countdown = None
        self.serial = None
        if policy.countdown_from is not None:
            origin = policy.countdown_from
            self.countdown = _Countdown(origin, int(now - origin), _ttl_offsets(wire, qend), self.tails)

    def tail(self, now: float) -> bytes:
        if self.countdown is not None:
            self.countdown.advance(self, now)
        if self.serial is not None:
            self.serial.refresh(self)
        tails = self.tails
        if type(tails) is bytes:
            return tails
        self.turn = turn = (self.turn + 1) % len(tails)
        return tails[turn]


def _udp_sizes(rendered: Rendered, cap: int) -> tuple[int, int]:
    """The UDP client sizes a rendering serves, under the block's cap (`bufsize`)."""
    least, most = udp_sizes_served(rendered)
    if len(rendered.wire) > cap:
        # `bufsize` cuts every UDP client below these bytes: TCP only.
        return 1, 0
    if cap <= most:
        # Any larger size a client offers is cut to the cap, served here.
        return least, 65535
    return least, most


class _FastEntry:
    """A fast-route rendering (`DNSServer.fast_miss`): spelled out, one bytes object,
    for every client, until a Store change drops it (then rendered again at once).

    The same interface as `_Entry`; what is the same for every such answer
    is kept once, on the class, and what answers rendered alike share, in
    their `_Kind`: the table holds more answers in its bytes.
    """

    __slots__ = ("prefixes", "tails", "udp_min", "udp_max", "kind", "referenced", "slot", "tokens", "cost", "serial")
    turn = 0
    tcp = True
    expires = math.inf
    guard = None
    countdown = None
    on_reuse = ()
    prepared = True

    def __init__(self, wire: bytes, qend: int, kind: _Kind):
        self.prefixes = _prefixes(wire)
        self.tails = wire[qend:]
        self.udp_min, self.udp_max = _udp_sizes(Rendered(wire, False, len(wire)), kind.block.max_udp_size)
        self.kind = kind
        self.serial = None

    def tail(self, now: float) -> bytes:
        if self.serial is not None:
            self.serial.refresh(self)
        return self.tails


def _all_of(guards: tuple) -> Callable[[bytes, int, str], bool] | None:
    if not guards:
        return None
    if len(guards) == 1:
        return guards[0]
    return lambda data, qend, host: all(guard(data, qend, host) for guard in guards)


class _Countdown:
    """TTLs that drop by one per second of age: patched once per second, not per query."""

    __slots__ = ("origin", "age", "offsets", "rendered", "rendered_age")

    def __init__(self, origin: float, age: int, offsets: tuple[int, ...], tails):
        self.origin = origin
        self.age = age
        self.rendered_age = age
        self.offsets = offsets
        self.rendered = tails

    def advance(self, entry: _Entry, now: float) -> None:
        age = int(now - self.origin)
        if age == self.age:
            return
        self.age = age
        drop = age - self.rendered_age
        if type(self.rendered) is bytes:
            entry.tails = self._patched(self.rendered, drop)
        else:
            entry.tails = tuple(self._patched(rendered, drop) for rendered in self.rendered)

    def _patched(self, rendered: bytes, drop: int) -> bytes:
        tail = bytearray(rendered)
        for offset in self.offsets:
            ttl = struct.unpack_from("!I", rendered, offset)[0] - drop
            struct.pack_into("!I", tail, offset, ttl if ttl > 0 else 0)
        return bytes(tail)


class _Vary:
    """A table entry standing for answers that depend on the client (autopath).

    The answers themselves are kept under the question's key plus the
    client's class (`FastPathPolicy.vary`), so an answer rendered for one
    class of client is never found by a client of another. It carries what
    the table keeps for every entry (`discovery.dns.table`).
    """

    __slots__ = ("classify", "tails", "referenced", "slot", "tokens", "cost", "serial")
    prepared = False

    def __init__(self, classify: Callable[[str], bytes]):
        self.classify = classify
        self.tails = b""
        self.serial = None


class _Serial:
    """SOA serials (the Store's modification time) patched into a rendering when the Store moves."""

    __slots__ = ("store", "offsets", "rendered")

    def __init__(self, store, offsets: tuple[int, ...], rendered: int):
        self.store = store
        #: From the end of the question.
        self.offsets = offsets
        self.rendered = rendered

    def refresh(self, entry: _Entry) -> None:
        serial = self.store.modified & 0xFFFFFFFF
        if serial == self.rendered:
            return
        tail = bytearray(entry.tails)
        for offset in self.offsets:
            struct.pack_into("!I", tail, offset, serial)
        entry.tails = bytes(tail)
        self.rendered = serial


class _Deadline:
    """A Cooperator's termination predicate on the reactor's clock."""

    def __init__(self, reactor, seconds: float):
        self.reactor = reactor
        self.end = reactor.seconds() + seconds

    def __call__(self) -> bool:
        return self.reactor.seconds() >= self.end


def _table_key(data: bytes, qend: int, edns_state: int) -> bytes:
    """The table's key for a query: its question as written (name, type,
    class), then one byte of client state that changes the answer: EDNS (1),
    DO (2) and CD (4: the cache keys on it). The name keeps its case: the
    rendered answer spells it out (see the module docstring)."""
    return data[12:qend] + _STATE_BYTES[edns_state | (data[3] & 0x10) >> 2]


#: Bytes a name may hold for the fast route: what needs no escaping in
#: presentation format (the zones and longest_match compare such text), and
#: the dots between labels.
_PLAIN_NAME_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789-_*."


def _labels(key: bytes, name_length: int) -> tuple[list[bytes], str] | None:
    """The labels at the front of a table key, as written, and the name as
    lower-case text; None if a label needs escaping."""
    labels = []
    i = 0
    while i < name_length:
        length = key[i]
        labels.append(key[i + 1 : i + 1 + length])
        i += 1 + length
    if not labels:
        return labels, "."
    text = b".".join(labels).lower()
    # One pass over the whole name; a dot inside a label shows in the count.
    if text.translate(None, _PLAIN_NAME_BYTES) or text.count(b".") != len(labels) - 1:
        return None
    return labels, text.decode() + "."


def _checked_name(labels: list[bytes]) -> dns.name.Name:
    """The dnspython Name of labels that `_question_end` and `_labels` have checked.

    Without dnspython's own validation and immutability guard: a tenth of
    what a new name costs on the fast route (tests/bench/bench_server.py).
    """
    name = _new_object(dns.name.Name)
    _set_attribute(name, "labels", tuple(labels))
    return name


_new_object = object.__new__
_set_attribute = object.__setattr__


def _question_end(data: bytes) -> int:
    """Offset just past the first question, or -1 if it cannot be read plainly.

    -1 too for a name longer than 255 octets (RFC 1035 section 3.1): the full
    path answers it FORMERR.
    """
    i = 12
    n = min(len(data), 12 + 255)
    while i < n:
        length = data[i]
        if length == 0:
            end = i + 5
            return end if end <= len(data) else -1
        if length > 63:
            return -1
        i += length + 1
    return -1


def _header_reply(data: bytes, rcode: int, question: bytes = b"") -> bytes:
    """A reply built from the raw header alone: QR set, opcode and RD kept."""
    flags = (data[2] << 8 | data[3]) & (0x7800 | dns.flags.RD | dns.flags.CD)
    return data[:2] + struct.pack("!HHHHH", flags | dns.flags.QR | rcode, 1 if question else 0, 0, 0, 0) + question


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Room for a burst while answers are rendered afresh (after a reload or a
    big change): with the default ~200 KB, 2,000 queries/s overflowed it."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            # SO_RCVBUFFORCE passes net.core.rmem_max with CAP_NET_ADMIN;
            # SO_RCVBUF is capped by it.
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:
            continue


def _family_of(host: str) -> str:
    if ":" in host and not host.startswith("::ffff:"):
        return "2"
    return "1"


def _client_host(host: str) -> str:
    # A dual-stack socket reports IPv4 clients as IPv4-mapped IPv6 addresses.
    return host[7:] if host.startswith("::ffff:") else host


class DNSServer:
    """The listeners of one address:port and the server blocks behind them."""

    def __init__(
        self, reactor, blocks: list[BlockRuntime], *, port: int, addresses: tuple[str, ...] = (),
        table_limit: int = DEFAULT_LIMIT, metrics: DNSMetrics | None = None,
        tcp_timeouts: TimeoutsConfig = TimeoutsConfig(), guard: ConnectionGuard | None = None,
    ):
        self.reactor = reactor
        #: Where coredns_panics_total is counted: every server, whether or
        #: not its blocks have `prometheus`, as CoreDNS counts them.
        self.metrics = metrics
        self.port = port
        self.addresses = addresses
        #: The `timeouts` directive's settings for TCP clients; a reload may change them.
        self.tcp_timeouts = tcp_timeouts
        self.guard = guard if guard is not None else ConnectionGuard()
        self.table = AnswerTable(table_limit)
        self._listening: list = []
        self._tcp_connections: set = set()
        self._unreported: list[_Entry] = []
        # Questions to prepare, in order, once each (see `prepare`).
        self._to_prepare: dict[bytes, None] = {}
        self._prepared_waiters: list[Deferred] = []
        self._preparing = None
        # Batches of at most PREPARE_SLICE seconds, then the reactor answers queries.
        self._cooperator = task.Cooperator(
            terminationPredicateFactory=lambda: _Deadline(reactor, PREPARE_SLICE),
            scheduler=lambda step: reactor.callLater(0, step),
        )
        # Reuses reach the plugins' counters within a second.
        self._reporter = task.LoopingCall(self.report_reuses)
        self._reporter.clock = reactor
        #: Runs the steps of Streams (zone transfers) between other work.
        self._streams = task.Cooperator(scheduler=lambda step: reactor.callLater(0, step))
        #: Store -> its unsubscribe: the Stores the blocks' plugins answer from.
        self._subscriptions: dict[Store, Callable[[], None]] = {}
        #: Negative answers by shape (`_negative`): one entry each, shared by
        #: every question of that shape.
        self._negative_shapes: dict[tuple, _FastEntry] = {}
        #: Shared by the entries they describe (`_kind`).
        self._kinds: dict[tuple, _Kind] = {}
        self.set_blocks(blocks)

    # -- configuration ------------------------------------------------------

    def set_blocks(self, blocks: list[BlockRuntime]) -> None:
        """Swap the server blocks (Corefile reload); the sockets stay."""
        self.blocks = list(blocks)
        self._zone_block = {zone: block for block in self.blocks for zone in block.zones}
        self._zones = tuple(self._zone_block)
        # The hit path clamps a client's size before it knows the block: to
        # the largest cap, each entry then says what its own block's cap serves.
        self.max_udp_size = max((block.max_udp_size for block in self.blocks), default=MAX_UDP_SIZE)
        self.table.clear()
        # Keyed by the blocks' and plugins' identities.
        self._negative_shapes.clear()
        self._kinds.clear()
        self._follow(self._stores())

    # -- following the Stores: what the table of rendered answers depends on -----------

    def _stores(self) -> set[Store]:
        """The Stores the blocks' plugins answer from (`kubernetes`, `k8s_external`)."""
        return {plugin.store for block in self.blocks for plugin in block.plugins
                if isinstance(getattr(plugin, "store", None), Store)}

    def _follow(self, stores: set[Store]) -> None:
        """Subscribe to these Stores' changes, and only these."""
        for store in set(self._subscriptions) - stores:
            self._subscriptions.pop(store)()
        for store in stores - set(self._subscriptions):
            self._subscriptions[store] = store.subscribe(lambda change, store=store: self._changed(store, change))

    def _changed(self, store: Store, change: Change) -> None:
        """Drop the answers a Store change makes stale, and render what it made new."""
        self.invalidate(invalidation_tokens(store, change))
        # A question's negative answer is kept without its dependencies:
        # any change may have made it positive.
        self.table.forget_negatives()
        for plugin in self.preparers(store):
            self.prepare(plugin.questions(change))

    def preparers(self, store: Store | None = None) -> list:
        """The plugins that prepare answers ahead (`kubernetes`), of store or of any."""
        found = []
        for block in self.blocks:
            for plugin in block.plugins:
                if hasattr(plugin, "questions") and (store is None or plugin.store is store) and plugin not in found:
                    found.append(plugin)
        return found

    def invalidate(self, tokens: Iterable[Hashable]) -> int:
        """Drop the answers that depend on the tokens; returns how many.

        Positive answers rendered on the fast route are rendered again at
        once, off the query path (`prepare`). Negative ones (they carry the
        SOA) cost little to render when next asked; a change that only
        moves their serial does not drop them (`_Serial`).
        """
        dropped = self.table.invalidate(tokens)
        again = [key[:-1] for key, entry in dropped if entry.prepared and not key[-1] & 3 and entry.serial is None]
        if again:
            self.prepare(again)
        return len(dropped)

    # -- prepared answers ---------------------------------------------------------

    def prepare(self, questions: Iterable[bytes]) -> Deferred:
        """Render these questions' answers ahead, in batches between queries.

        A question is wire bytes: the lower-cased name, type, class. Answers
        are rendered on the fast route (`fast_miss`) for a client without
        EDNS; one with EDNS gets that rendering plus the OPT record
        (`_with_opt`). Returns a Deferred that fires once every question
        given so far is done.
        """
        queue = self._to_prepare
        for question in questions:
            queue[question] = None
        done = Deferred()
        self._prepared_waiters.append(done)
        if self._preparing is None:
            self._preparing = self._cooperator.cooperate(self._prepare_all())
        return done

    def _prepare_all(self):
        queue = self._to_prepare
        header = b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        table = self.table
        while queue:
            # popitem: from the end, O(1); taking from the front of a dict
            # costs a scan over what was deleted before it.
            question, _ = queue.popitem()
            data = header + question
            qend = len(data)
            key = _table_key(data, qend, 0)
            now = self.reactor.seconds()
            entry = table.entries.get(key)
            if entry is None or entry.expires <= now:
                self.fast_miss(data, qend, 0, key, now, keep=True)
            yield None
        self._preparing = None
        waiters, self._prepared_waiters = self._prepared_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    @property
    def preparing(self) -> int:
        """Questions waiting to be prepared."""
        return len(self._to_prepare)

    # -- listening ------------------------------------------------------------

    def listen(self) -> None:
        """Bind UDP and TCP on every address (all of them when none is configured).

        Port 0 (tests): every socket takes the port the kernel gave the first
        UDP one; when a TCP socket finds it taken, another port is tried.
        """
        addresses = self.addresses or self._default_addresses()
        if not self._reporter.running:
            self._reporter.start(REUSE_REPORT_INTERVAL, now=False)
        any_port = self.port == 0
        for attempt in range(_PORT_0_ATTEMPTS if any_port else 1):
            try:
                self._bind(addresses)
                break
            except OSError as error:
                for port in self._listening:
                    port.stopListening()
                self._listening = []
                if not any_port or error.errno != errno.EADDRINUSE or attempt == _PORT_0_ATTEMPTS - 1:
                    raise
                self.port = 0
        log.info("listening on %s port %d (udp, tcp)", ", ".join(addresses), self.port)

    def _bind(self, addresses: tuple[str, ...]) -> None:
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                for sock in (udp, tcp):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.setblocking(False)
                _grow_receive_buffer(udp)
                try:
                    udp.bind((address, self.port))
                    if self.port == 0:
                        # Port 0 (tests): TCP and every family share UDP's port.
                        self.port = udp.getsockname()[1]
                    tcp.bind((address, self.port))
                    tcp.listen(1024)
                except OSError as error:
                    raise OSError(error.errno, f"cannot listen on {address} port {self.port}: {error.strerror}") from None
                self._listening.append(
                    self.reactor.adoptDatagramPort(udp.fileno(), family, _UDPProtocol(self))
                )
                self._listening.append(
                    self.reactor.adoptStreamPort(tcp.fileno(), family, TCPFactory(self, self.guard))
                )
            finally:
                # The reactor holds duplicates of the descriptors now.
                udp.close()
                tcp.close()

    @property
    def label(self) -> str:
        """The server's name in metrics, as CoreDNS's: dns://HOST:PORT, HOST empty for every address."""
        host = self.addresses[0] if len(self.addresses) == 1 else ""
        return f"dns://{host}:{self.port}"

    @staticmethod
    def _default_addresses() -> tuple[str, ...]:
        if socket.has_ipv6:
            try:
                probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                probe.bind(("::", 0))
                probe.close()
                return ("0.0.0.0", "::")
            except OSError:
                pass
        return ("0.0.0.0",)

    def report_reuses(self) -> None:
        """Tell plugins how often their answers were reused since the last report."""
        unreported, self._unreported = self._unreported, []
        for entry in unreported:
            count, entry.reuses = entry.reuses, 0
            for report in entry.on_reuse:
                report(count)

    def stop(self) -> Deferred:
        """Stop listening and close TCP connections."""
        if self._reporter.running:
            self._reporter.stop()
        self.report_reuses()
        self._follow(set())
        stopping = [defer.maybeDeferred(port.stopListening) for port in self._listening]
        self._listening = []
        for connection in list(self._tcp_connections):
            connection.transport.loseConnection()
        return defer.gatherResults(stopping, consumeErrors=True)

    # -- the hot path -----------------------------------------------------------

    def fast_answer(self, data: bytes, max_size_udp: bool, now: float, client: str = "") -> tuple[bytes, _Entry, int, bool] | None:
        """The rendered answer for a plain query, or None to take the full path.

        Returns (wire, entry, qend, dnssec_ok). max_size_udp: apply the
        client's UDP limit (512, or its EDNS size); TCP takes anything.
        client: the client's host, for answers that hold for some clients only
        (guards) or depend on who asks (vary).
        """
        n = len(data)
        # Header: QR=0, opcode QUERY, qdcount 1, ancount 0, nscount 0.
        if n < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
            return None
        qend = _question_end(data)
        if qend < 0:
            return None
        arcount = data[11] | data[10] << 8
        if arcount == 0:
            if qend != n:
                return None
            state = 0
            limit = 512
            dnssec_ok = False
        elif arcount == 1:
            # One OPT RR: root name, type 41, class = UDP size, TTL = ext-rcode,
            # version, flags; then the options, which change nothing here but
            # must be well-formed (a malformed one is FORMERR on the full path).
            if n < qend + 11 or data[qend] != 0 or data[qend + 1] != 0 or data[qend + 2] != _OPT:
                return None
            rdlength = data[qend + 9] << 8 | data[qend + 10]
            if data[qend + 6] != 0 or n != qend + 11 + rdlength:
                return None
            # A lone COOKIE (what dig sends) in one lookup, inline: 0.5 us saved
            # per query against the call and loop of options_end.
            if rdlength and COOKIE_ALONE.get(data[qend + 11 : qend + 15]) != rdlength and options_end(data, qend + 11, rdlength) < 0:
                return None
            dnssec_ok = bool(data[qend + 7] & 0x80)
            state = 3 if dnssec_ok else 1
            limit = data[qend + 3] << 8 | data[qend + 4]
            if limit < 512:
                limit = 512
            elif limit > self.max_udp_size:
                limit = self.max_udp_size
        else:
            return None
        entries = self.table.entries
        if state:
            # A client with EDNS gets the fast route's rendering for a client
            # without, plus the OPT record: `wire.render_answer` writes OPT
            # last and changes nothing else, so these are the same bytes,
            # and the table holds one entry for both.
            plain_key = data[12:qend] + _STATE_BYTES[(data[3] & 0x10) >> 2]
            plain = entries.get(plain_key)
            if type(plain) is _FastEntry:
                plain.referenced = True
                return self._with_opt(data, qend, plain, limit if max_size_udp else 0, dnssec_ok, now)
        key = _table_key(data, qend, state)
        entry = entries.get(key)
        if entry is None or (type(entry) is not _Vary and entry.expires <= now):
            if state and plain is None:
                plain = self.fast_miss(data, qend, 0, plain_key, now)
                return None if plain is None else self._with_opt(data, qend, plain, limit if max_size_udp else 0, dnssec_ok, now)
            entry = self.fast_miss(data, qend, state, key, now)
            if entry is None:
                return None
        else:
            entry.referenced = True
            if type(entry) is _Vary:
                entry = entries.get(key + entry.classify(_client_host(client)))
                if entry is None or entry.expires <= now:
                    return None
                entry.referenced = True
        if max_size_udp:
            if not entry.udp_min <= limit <= entry.udp_max:
                return None
        elif not entry.tcp:
            return None
        if entry.guard is not None and not entry.guard(data, qend, client):
            return None
        wire = (
            data[:2]
            + entry.prefixes[(data[2] & 1) | (data[3] >> 3 & 2)]
            + data[12:qend]
            + entry.tail(now)
        )
        return wire, entry, qend, dnssec_ok

    # -- the fast route for misses ------------------------------------------------

    def fast_miss(self, data: bytes, qend: int, state: int, key: bytes, now: float, keep: bool = False) -> _FastEntry | None:
        """Render a missing answer straight to wire format and keep it; None for the full path.

        Taken when the question's server block lets a plugin answer without
        the chain in front of it (`BlockRuntime.fast_plugin`): the
        kubernetes plugin's `fast_answer` gives the pure zone function's
        answer, and `wire.render_answer` writes the bytes the full path
        would send. Costs about a fifth of the full path for a name that
        exists, a twentieth for one that does not (tests/bench/bench_server.py).
        A positive answer is kept in the table when keep is set (prepared
        answers), while the table has room, or on its question's second
        sighting (`AnswerTable.admit`); a negative one is an entry shared by
        its shape (`_negative`), kept by question from the second sighting.
        """
        if data[qend - 2] != 0 or data[qend - 1] != 1:
            return None
        negative = self.table.negatives.get(key)
        if negative is not None:
            return negative
        found = _labels(key, qend - 17)
        if found is None:
            return None
        labels, name = found
        zone = longest_match(self._zones, name)
        if zone is None:
            return None
        block = self._zone_block[zone]
        qtype = data[qend - 4] << 8 | data[qend - 3]
        chosen = block.fast_plugin(name)
        if chosen is None:
            return None
        plugin, front = chosen
        labels.append(b"")
        found = plugin.fast_answer(_checked_name(labels), name, qtype)
        if found is None:
            return None
        answer, authoritative = found
        for passing in front:
            if not passing.transparent(name, qtype, answer):
                return None
        authority = answer.authority
        if not answer.answer and not answer.additional and len(authority) == 1 and authority[0].rdtype == _SOA_TYPE:
            soa = authority[0]
            shape = (soa.name.labels, soa.ttl, answer.rcode, authoritative, state, qtype, id(block), id(plugin))
            entry = self._negative(shape, key, qend, state, now, block, zone, plugin, answer, authoritative)
            if entry is not None:
                if not keep and self.table.admit(key):
                    self.table.remember_negative(key, entry)
                return entry
        if block.loadbalance and any(len(rrset) > 1 for rrset in answer.answer):
            # Rotations are made by the full path (loadbalance.rotations).
            return None
        entry = self._render(key, qend, state, now, block, zone, plugin, answer, authoritative, 65535)
        if entry is None:
            return None
        if keep or self.table.has_room() or self.table.admit(key):
            tokens = plugin.tokens(answer.dependencies)
            if entry.serial is not None:
                # The SOA serial is patched when the entry is next used rather
                # than dropping it at every change (its other tokens still drop
                # it when it stops being true: tests/unit/test_zone_dependencies.py).
                tokens = [token for token in tokens if token[-1] != _SERIAL_TOKEN]
            self.table.put(key, entry, tokens)
        return entry

    def _render(self, key: bytes, qend: int, state: int, now: float, block, zone: str, plugin, answer, authoritative: bool, max_size: int) -> _FastEntry | None:
        """The fast route's entry for a zone function answer; None when `wire.render_answer` does not write it."""
        sections = (answer.answer, answer.authority, answer.additional)
        flags = _AA if authoritative else 0
        rendered = render_answer(key[: qend - 12], flags, answer.rcode, sections, bool(state & 1), bool(state & 2), max_size)
        if rendered is None:
            return None
        wire, serials = rendered
        entry = _FastEntry(wire, qend, self._kind(block, zone, answer.rcode, plugin.name, key[qend - 16] << 8 | key[qend - 15]))
        if serials:
            # The SOA serial is the Store's modification time.
            offsets = tuple(offset - qend for offset in serials)
            entry.serial = _Serial(plugin.store, offsets, struct.unpack_from("!I", wire, serials[0])[0])
        return entry

    def _negative(self, shape: tuple, key: bytes, qend: int, state: int, now: float, block, zone: str, plugin, answer, authoritative: bool) -> _FastEntry | None:
        """The entry for a negative answer (NXDOMAIN or NODATA: the zone's SOA alone), shared by its shape.

        Everything after the question depends only on the shape: the SOA
        (its owner is the zone as the client wrote it), the rcode, AA, the
        client's EDNS state, and the question's type (for the metrics). A
        new name costs the zone function's verdict and no rendering. Shared
        only while the whole answer fits 512 bytes, so that every client
        size takes it spelled out (`compress.udp_sizes_served`); a longer
        question gets an entry of its own (None here).
        """
        shapes = self._negative_shapes
        entry = shapes.get(shape)
        if entry is not None:
            return entry if qend + len(entry.tails) <= _SHARED_NEGATIVE_SIZE else None
        entry = self._render(key, qend, state, now, block, zone, plugin, answer, authoritative, _SHARED_NEGATIVE_SIZE)
        if entry is None:
            return None
        if len(shapes) >= _NEGATIVE_SHAPES:
            # Zone spellings are the client's: bounded whatever clients send.
            shapes.clear()
        # Not keyed on the serial: it is patched per use (`_Serial`).
        shapes[shape] = entry
        return entry

    def _with_opt(self, data: bytes, qend: int, plain: _FastEntry, limit: int, dnssec_ok: bool, now: float):
        """The answer for a client with EDNS from the fast route's rendering for one without (`fast_answer`).

        limit: the client's UDP size, 0 over TCP. Spelled out, as CoreDNS
        sends it, only up to the limits below which every client size takes
        it so; past them, None (the full path).
        """
        size = qend + len(plain.tails) + _OPT_SIZE
        if limit and (size > limit or size > FRAGMENT_LIMIT_IPV6 or size > plain.kind.block.max_udp_size):
            return None
        prefixes = _OPT_PREFIXES.get(plain.prefixes)
        if prefixes is None:
            # ARCOUNT + 1 in each of the four header variants.
            prefixes = _OPT_PREFIXES[plain.prefixes] = tuple(
                head[:8] + ((head[8] << 8 | head[9]) + 1).to_bytes(2, "big") for head in plain.prefixes
            )
        wire = (
            data[:2]
            + prefixes[(data[2] & 1) | (data[3] >> 3 & 2)]
            + data[12:qend]
            + plain.tail(now)
            + _OPT_RECORDS[dnssec_ok]
        )
        return wire, plain, qend, dnssec_ok

    def _kind(self, block: BlockRuntime, zone: str, rcode: int, plugin: str, qtype: int) -> _Kind:
        """The shared `_Kind` of answers rendered alike."""
        key = (id(block), zone, rcode, plugin, qtype)
        kind = self._kinds.get(key)
        if kind is None:
            if len(self._kinds) >= _KINDS:
                # Question types are the client's: bounded whatever clients
                # send (entries keep their own; only the sharing is lost).
                self._kinds.clear()
            kind = self._kinds[key] = _Kind(block, zone, rcode, plugin)
        return kind

    # -- the full path ------------------------------------------------------------

    def answer(self, data: bytes, client: tuple[str, int], proto: str, send: Callable[[bytes], None], connection=None) -> None:
        """Answer one packet on the full path; send is called at most once,
        except for a `Stream` on a TCP connection (see `_stream`)."""
        started = self.reactor.seconds()
        if len(data) < 12 or data[2] & 0x80:
            # Unreadable header, or a response: never answer (no loops).
            return
        opcode = (data[2] >> 3) & 0x0F
        if opcode != dns.opcode.QUERY:
            send(_header_reply(data, dns.rcode.NOTIMP))
            return
        try:
            if has_malformed_options(data):
                raise dns.exception.FormError("malformed EDNS option")
            query = dns.message.from_wire(data, ignore_trailing=False)
        except Exception:
            qend = _question_end(data)
            question = data[12:qend] if qend > 0 and data[4:6] == b"\x00\x01" else b""
            send(_header_reply(data, dns.rcode.FORMERR, question))
            return
        if len(query.question) != 1:
            send(_header_reply(data, dns.rcode.FORMERR))
            return
        question = query.question[0]
        host, port = client[0], client[1]
        request = Request(
            query=query,
            qname=question.name,
            qtype=question.rdtype,
            qclass=question.rdclass,
            zone="",
            server="",
            proto=proto,
            client=(_client_host(host), port),
            edns=query.edns == 0,
            # Cut to the block's cap once the block is known.
            max_size=65535 if proto == "tcp" else (max(512, query.payload) if query.edns >= 0 else 512),
            dnssec_ok=query.edns >= 0 and bool(query.ednsflags & dns.flags.DO),
        )
        if query.edns > 0:
            # RFC 6891 section 6.1.3: answer BADVERS with version 0.
            response = request.reply()
            response.set_rcode(dns.rcode.BADVERS)
            send(response.to_wire())
            return
        zone = longest_match(self._zones, request.name)
        if zone is None:
            # No server block serves this name (CoreDNS answers REFUSED).
            response = request.reply()
            response.set_rcode(dns.rcode.REFUSED)
            send(response.to_wire())
            return
        block = self._zone_block[zone]
        request.zone = zone
        request.server = block.server
        if proto == "udp" and request.max_size > block.max_udp_size:
            request.max_size = block.max_udp_size
        request.fastpath.limit_udp(block.max_udp_size)
        request.lookup = lambda name, rdtype: self._lookup(block, request, name, rdtype)
        result = self._run(block, request)
        if isinstance(result, Deferred):
            result.addCallback(self._respond, block, request, data, send, started, connection)
            result.addErrback(_log_unhandled)
        else:
            self._respond(result, block, request, data, send, started, connection)

    def _run(self, block: BlockRuntime, request: Request):
        try:
            result = block.run(request)
        except Exception:
            return self._servfail(block, request, Failure())
        if isinstance(result, Deferred):
            return result.addErrback(lambda failure: self._servfail(block, request, failure))
        return result

    def _servfail(self, block: BlockRuntime, request: Request, failure: Failure) -> dns.message.Message:
        if self.metrics is not None and not failure.check(PluginError):
            # CoreDNS's vars.Panic: a bug, not a plugin's deliberate failure.
            self.metrics.panics += 1
        if block.error_log is not None:
            block.error_log(request, failure)
        else:
            log.error(
                "%s %s %s: %s",
                request.qname,
                dns.rdatatype.to_text(request.qtype),
                request.plugin or "chain",
                failure.getErrorMessage(),
            )
        response = request.reply()
        response.set_rcode(_SERVFAIL)
        request.fastpath.forbid()
        return response

    def _respond(self, response, block: BlockRuntime, request: Request, data: bytes, send, started: float, connection=None) -> None:
        if isinstance(response, Stream):
            self._stream(response, block, request, data, send, started, connection)
            return
        if response is None:
            # A plugin dropped the query (acl's drop): no reply at all. As
            # in CoreDNS, metrics and log still count it: NOERROR, size 0.
            self._report(block, request, data, b"", dns.rcode.NOERROR, started)
            return
        variants = rotations(response) if block.loadbalance else None
        if variants:
            response = variants[0]
        rendered = render(response, request.max_size, udp=request.proto == "udp", ipv6=_family_of(request.client[0]) == "2")
        wire = rendered.wire
        send(wire)
        rcode = response.rcode()
        if not rendered.truncated:
            self._remember(block, request, data, rendered, variants, rcode)
        self._report(block, request, data, wire, rcode, started)

    def _report(self, block: BlockRuntime, request: Request, data: bytes, wire: bytes, rcode: int, started: float) -> None:
        duration = self.reactor.seconds() - started
        if block.metrics is not None:
            block.metrics.meter(
                block.server, request.zone, request.proto, _family_of(request.client[0]),
                request.qtype, request.dnssec_ok, dns.rcode.to_text(rcode), request.plugin,
            ).record(len(data), len(wire), duration)
        if block.query_log is not None:
            block.query_log(request.client[0], request.client[1], request.proto, data, wire, rcode, duration)

    # -- responses of several messages (zone transfers) ---------------------------

    def _stream(self, stream: Stream, block: BlockRuntime, request: Request, data: bytes, send, started: float, connection) -> None:
        """Write a Stream's messages one per cooperative step, as fast as the client reads.

        Each step renders one message (up to 64 KB), so other queries are
        answered between steps; the connection's transport pauses the steps
        while its buffer is full (an IPushProducer). A second stream on the
        same connection waits for the first. Without a TCP connection there
        is no stream: REFUSED, as CoreDNS answers a transfer over UDP.
        """
        if connection is None:
            response = request.reply()
            response.set_rcode(dns.rcode.REFUSED)
            self._respond(response, block, request, data, send, started)
            return
        sent = [b""]

        def steps():
            for message in stream.messages:
                if message is None:
                    # The stream is still gathering its next message.
                    yield None
                    continue
                wire = message.to_wire(max_size=65535, want_shuffle=False)
                if not sent[0]:
                    sent[0] = wire
                send(wire)
                yield None

        def start(_=None) -> Deferred:
            transport = connection.transport
            if transport is None or not transport.connected:
                return defer.succeed(None)
            work = self._streams.cooperate(steps())
            # The connection is its transport's producer: it pauses the
            # steps while the client does not read (see tcp.TCPProtocol).
            connection.attach(work)

            def finished(result):
                connection.detach()
                if isinstance(result, Failure) and not result.check(task.TaskStopped):
                    log.error("%s %s: stream failed: %s", request.qname, dns.rdatatype.to_text(request.qtype), result.getErrorMessage())
                    connection.transport.loseConnection()
                # Counted once, with the first message's size (each message is one response).
                self._report(block, request, data, sent[0], dns.rcode.NOERROR, started)

            return work.whenDone().addBoth(finished)

        previous = connection.streaming
        connection.streaming = previous.addCallback(start) if previous is not None else start()
        connection.streaming.addBoth(lambda _: None)

    def _remember(self, block, request: Request, data: bytes, rendered, variants, rcode: int) -> None:
        policy: FastPathPolicy = request.fastpath
        if not policy.reusable or request.depth:
            return
        qend = _question_end(data)
        wire = rendered.wire
        # The rendered question must be the client's, where the client's is.
        if qend < 0 or wire[12:qend] != data[12:qend]:
            return
        udp, ipv6 = request.proto == "udp", _family_of(request.client[0]) == "2"
        variants_wire = [wire] + [render(v, request.max_size, udp=udp, ipv6=ipv6).wire for v in (variants or [])[1:]]
        if any(len(r) != len(wire) for r in variants_wire):
            variants_wire = [wire]
        key = _table_key(data, qend, (1 if request.edns else 0) | (2 if request.dnssec_ok else 0))
        kind = self._kind(block, request.zone, rcode, request.plugin, request.qtype)
        entry = _Entry(rendered, variants_wire, qend, policy, self.reactor.seconds(), kind)
        if policy.vary is not None:
            # By construction, a client of another class looks under another key.
            self.table.put(key, _Vary(policy.vary), policy.dependencies)
            key += policy.vary(request.client[0])
        self.table.put(key, entry, policy.dependencies)

    def record_fast(self, entry: _Entry, proto: str, client: tuple, query: bytes, wire: bytes, qend: int, dnssec_ok: bool, started: float) -> None:
        """Metrics and the query log for an answer from the table."""
        if entry.on_reuse:
            # Counted here, reported in batches: a prometheus_client update
            # per hit cost a third of a hit.
            entry.reuses += 1
            if entry.reuses == 1:
                self._unreported.append(entry)
        kind = entry.kind
        block = kind.block
        if block.metrics is None and block.query_log is None:
            return
        duration = self.reactor.seconds() - started
        if block.metrics is not None:
            family = _family_of(client[0])
            key = (proto, family, dnssec_ok)
            if key != kind.meter_key:
                kind.meter_key = key
                kind.meter = block.metrics.meter(
                    block.server, kind.zone, proto, family, query[qend - 4] << 8 | query[qend - 3],
                    dnssec_ok, dns.rcode.to_text(kind.rcode), kind.plugin,
                )
            kind.meter.record(len(query), len(wire), duration)
        if block.query_log is not None:
            block.query_log(_client_host(client[0]), client[1], proto, query, wire, kind.rcode, duration)

    # -- internal lookups (CoreDNS's upstream) ----------------------------------------

    def _lookup(self, block: BlockRuntime, parent: Request, name: dns.name.Name, rdtype: int) -> Deferred:
        if parent.depth >= MAX_LOOKUP_DEPTH:
            return defer.fail(PluginError(f"lookup of {name} nests deeper than {MAX_LOOKUP_DEPTH}"))
        query = dns.message.make_query(name, rdtype)
        zone = longest_match(self._zones, name.to_text().lower())
        target = self._zone_block.get(zone, block) if zone is not None else block
        request = Request(
            query=query, qname=name, qtype=rdtype, qclass=query.question[0].rdclass,
            zone=zone or parent.zone, server=target.server, proto=parent.proto, client=parent.client,
            max_size=65535, depth=parent.depth + 1,
        )
        request.lookup = lambda n, t: self._lookup(target, request, n, t)
        return defer.maybeDeferred(self._run, target, request).addCallback(_not_dropped, name)


def _not_dropped(response: dns.message.Message | None, name: dns.name.Name) -> dns.message.Message:
    if response is None:
        raise RuntimeError(f"lookup of {name} was dropped")
    return response


def _log_unhandled(failure: Failure) -> None:
    log.error("unhandled error while answering: %s", failure.getTraceback())


class _UDPProtocol(protocol.DatagramProtocol):
    def __init__(self, server: DNSServer):
        self.server = server
        self.sendto = None

    def startProtocol(self) -> None:
        # Straight to the socket: Twisted's Port.write validates the address
        # on every datagram, a tenth of the hot path (recvfrom gave it to us).
        self.sendto = self.transport.socket.sendto

    def send(self, wire: bytes, addr) -> None:
        try:
            self.sendto(wire, addr)
        except BlockingIOError:
            # The socket buffer is full: as if the datagram were lost; the
            # client asks again.
            pass
        except OSError as error:
            log.debug("sending to %s:%s: %s", addr[0], addr[1], error)

    def datagramReceived(self, data: bytes, addr) -> None:
        server = self.server
        started = server.reactor.seconds()
        hit = server.fast_answer(data, True, started, addr[0])
        if hit is not None:
            wire, entry, qend, dnssec_ok = hit
            self.send(wire, addr)
            server.record_fast(entry, "udp", addr, data, wire, qend, dnssec_ok, started)
            return
        server.answer(data, addr, "udp", lambda wire: self.send(wire, addr))
