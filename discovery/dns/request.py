"""A query on its way through a server block's plugins, and the plugin contract.

A server block's plugins form a chain in CoreDNS's order (cache, hosts,
kubernetes, loop, forward). Each plugin's ``serve(request, next)`` either
answers, returning a response `dns.message.Message` (or a Deferred that fires
with one, or over TCP a `Stream` of several), or passes the request on with
``next(request)``.

While it answers, a plugin also says how the server may reuse the rendered
answer for the next identical question (`FastPathPolicy`): which cache
objects it depends on, until when it stays true, or that it must not be
reused at all. The server's table of rendered answers relies on that.
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Iterator, Protocol, Union

import attrs
import dns.flags
import dns.message
import dns.name
from twisted.internet.defer import Deferred

__all__ = [
    "Request",
    "Stream",
    "FastPathPolicy",
    "Plugin",
    "Next",
    "Result",
    "ANY_CHANGE",
    "PluginError",
]

Result = Union[dns.message.Message, Deferred, "Stream"]
Next = Callable[["Request"], Result]

#: A dependency on every change of a store (a token is (store key, what)).
ANY_CHANGE = "*"


class PluginError(Exception):
    """A query a plugin fails on purpose (CoreDNS's ``return rcode, err``).

    The server answers SERVFAIL and `errors` logs it; unlike any other
    exception it is not a bug, so it does not count in coredns_panics_total.
    """


@attrs.define(eq=False)
class Stream:
    """A response of several messages, over TCP only (a zone transfer, RFC 5936).

    The messages are made lazily: the server renders and writes one at a
    time, as fast as the client reads them, and answers other queries in
    between. The iterator may also yield None while it works towards the
    next message, to let other work run sooner. Never reused.
    """

    messages: Iterator[dns.message.Message | None]


@attrs.define(slots=True)
class FastPathPolicy:
    """How the server may reuse an answer for later identical questions.

    Dependencies are hashable tokens, ``(store key, token)`` with the tokens
    of `discovery.dns.zone`: the server drops a reused answer when a cache
    change touches one of them (`discovery.dns.table.invalidation_tokens`).
    """

    reusable: bool = True
    dependencies: set[Hashable] = attrs.field(factory=set)
    #: Reactor time (reactor.seconds()) after which the answer must be computed afresh.
    expires: float = math.inf
    #: When set, every TTL in the answer drops by one per whole second of age
    #: counted from this moment (a cache entry's storage time), and the server
    #: patches the rendered TTLs instead of asking the plugins again.
    countdown_from: float | None = None
    #: Called with the number of reuses since the last call (within a second
    #: of them), so that plugins' own counters (cache hits) still count the
    #: queries the server answers for them: a Counter's ``inc`` fits.
    on_reuse: tuple[Callable[[int], None], ...] = ()
    #: The largest UDP answer this may be reused for (`bufsize`); a larger
    #: rendering is reused over TCP only.
    max_udp_size: int = 65535
    #: The RD bit of the answer when it does not follow the client's (a
    #: `header` rule fixes it); None: the client's, written in on each reuse.
    rd: int | None = None
    #: Checks that must all pass before the answer is reused for a query:
    #: (query wire, offset past its question, client host) -> bool. For
    #: answers that hold for some clients or queries only (`acl`, `nsid`);
    #: an answer without any costs nothing extra on reuse.
    guards: tuple[Callable[[bytes, int, str], bool], ...] = ()
    #: The answer depends on who asks (autopath): a function from the
    #: client's address to a class (bytes). The server reuses the answer
    #: only for clients of the same class: the class is part of the key.
    vary: Callable[[str], bytes] | None = None

    def forbid(self) -> None:
        """This answer must be computed afresh for every query."""
        self.reusable = False

    def depend(self, *tokens: Hashable) -> None:
        self.dependencies.update(tokens)

    def expire_at(self, when: float) -> None:
        self.expires = min(self.expires, when)

    def limit_udp(self, size: int) -> None:
        self.max_udp_size = min(self.max_udp_size, size)

    def guard(self, check: Callable[[bytes, int, str], bool]) -> None:
        self.guards = self.guards + (check,)

    def count_reuse(self, report: Callable[[int], None]) -> None:
        self.on_reuse = self.on_reuse + (report,)

    def merge(self, other: "FastPathPolicy") -> None:
        """Add what a later plugin said (a cache hit, the answer it fetched) to this policy."""
        self.reusable = self.reusable and other.reusable
        self.dependencies |= other.dependencies
        self.expires = min(self.expires, other.expires)
        if other.countdown_from is not None:
            self.countdown_from = other.countdown_from
        self.on_reuse = self.on_reuse + other.on_reuse
        self.max_udp_size = min(self.max_udp_size, other.max_udp_size)
        if other.rd is not None:
            self.rd = other.rd
        self.guards = self.guards + other.guards


@attrs.define(slots=True, eq=False)
class Request:
    """One question from one client, as the plugins see it."""

    query: dns.message.Message
    qname: dns.name.Name
    qtype: int
    qclass: int
    #: The server block zone the question fell in ("cluster.local.", ".").
    zone: str
    #: The server's label for metrics and logs, like "dns://:53".
    server: str
    proto: str
    client: tuple[str, int]
    #: The client sent a (version 0) OPT record.
    edns: bool = False
    #: What the client accepts: 512 without EDNS, its OPT size, 65535 on TCP.
    max_size: int = 512
    dnssec_ok: bool = False
    fastpath: FastPathPolicy = attrs.field(factory=FastPathPolicy)
    #: The plugin that wrote the response, for coredns_dns_responses_total.
    plugin: str = ""
    #: Resolves another name through this server block (CoreDNS's upstream),
    #: for CNAME targets outside the zone: (name, rdtype) -> Deferred[Message].
    lookup: Callable[[dns.name.Name, int], Deferred] | None = None
    #: Internal lookups nest; a cap stops CNAME loops.
    depth: int = 0

    @property
    def name(self) -> str:
        """The lower-cased question name, fully qualified ("a.b.")."""
        return self.qname.to_text().lower()

    def reply(self) -> dns.message.Message:
        """An empty response to this query: ID, question, RD and CD copied.

        With EDNS, the OPT record offers 1232 bytes (the DNS flag day 2020
        size) and echoes the DO bit, as CoreDNS does.
        """
        response = dns.message.make_response(self.query, our_payload=1232)
        response.flags |= self.query.flags & dns.flags.CD
        if self.dnssec_ok:
            response.ednsflags |= dns.flags.DO
        return response


class Plugin(Protocol):
    """What the server block needs from a plugin in its chain."""

    #: The label for coredns_dns_responses_total{plugin} ("kubernetes").
    name: str

    def serve(self, request: Request, next: Next) -> Result: ...
