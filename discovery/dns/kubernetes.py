"""The `kubernetes` plugin: the cluster zone (`discovery.dns.zone`) in a server block's chain.

It answers the names within its zones from the Store and passes every other
name to the next plugin, as CoreDNS's kubernetes/handler.go does:

* an NXDOMAIN in a `fallthrough` zone goes to the next plugin;
* until the Store's source has synced, CoreDNS does not serve at all for
  up to `startup_timeout` (its server waits for the sync before it starts
  listening), and afterwards answers SERVFAIL where it would have answered
  NXDOMAIN. Wayfinder listens at once, so it answers SERVFAIL for every
  name in its zones during that first `startup_timeout`, then behaves as
  CoreDNS: what the cache holds is served, and a name it does not hold is
  SERVFAIL rather than NXDOMAIN until the sync completes. None of these
  answers may be reused;
* an ExternalName whose target lies outside the zone is resolved through
  the server (`Request.lookup`, CoreDNS's upstream), and the records are
  appended after the CNAME.

Reuse of rendered answers: each answer's dependencies go into
``request.fastpath`` as ``(store_key(store), token)``, token as described in
`discovery.dns.zone`; the server's table of rendered answers drops them when
the Store changes (`discovery.dns.table.invalidation_tokens`).
"""

from __future__ import annotations

import socket
from typing import Callable, Hashable, Iterable, Union

import attrs
import dns.flags
import dns.message
import dns.rcode
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ..cache.store import Change, Store
from ..plugin import BuildContext, PluginSpec
from ..zones import is_reverse, longest_match
from . import prepared
from . import zone as zone_answers
from .request import Next, Request, Result
from .kubernetes_setup import KubernetesConfig, setup_kubernetes
from .table import store_key

__all__ = ["KubernetesPlugin", "respond", "local_addresses", "PLUGINS"]

#: The sync state of the Store's source: a Deferred that fires once it has
#: synced, a function that tells, or a fixed flag.
Synced = Union[Deferred, Callable[[], bool], bool]


class KubernetesPlugin:
    """The `kubernetes` directive of one server block, answering from one Store."""

    name = "kubernetes"

    def __init__(
        self,
        config: KubernetesConfig,
        store: Store,
        synced: Synced,
        reactor,
        local_ips: Iterable[str] = (),
    ):
        self._config = config
        self._store = store
        self._reactor = reactor
        self._options = zone_answers.ZoneOptions.from_config(config, local_ips)
        self._key = store_key(store)
        self._startup_deadline = reactor.seconds() + config.startup_timeout
        self._synced_now = False
        self._sync_waiters: list[Deferred] = []
        if isinstance(synced, Deferred):
            synced.addCallback(self._on_synced)
            self._has_synced: Callable[[], bool] = lambda: self._synced_now
        elif callable(synced):
            self._has_synced = synced
        else:
            flag = bool(synced)
            self._has_synced = lambda: flag

    def _on_synced(self, result):
        self._synced_now = True
        waiters, self._sync_waiters = self._sync_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        return result

    @property
    def store(self) -> Store:
        return self._store

    def when_synced(self) -> Deferred:
        """Fires once the Store's source has synced (at once if it has)."""
        if self._has_synced():
            return defer.succeed(None)
        waiter = Deferred()
        self._sync_waiters.append(waiter)
        return waiter

    def questions(self, change: Change | None = None) -> Iterable[bytes]:
        """The questions worth answering ahead (`discovery.dns.prepared`): all, or a change's."""
        zones = self._config.zones
        if change is None:
            return prepared.questions(self._store, self._options, zones)
        if not self._has_synced():
            # The initial list: everything is prepared once it has synced.
            return ()
        return prepared.change_questions(self._store, self._options, zones, change)

    def serve(self, request: Request, next: Next) -> Result:
        zone = longest_match(self._config.zones, request.name)
        if zone is None:
            return next(request)
        synced = self._has_synced()
        # CoreDNS is not even listening yet in this window (see the module docstring).
        if not synced and self._reactor.seconds() < self._startup_deadline:
            request.fastpath.forbid()
            negative = zone_answers.nodata(request.qname, self._store, self._options, zone)
            return self._respond(request, attrs.evolve(negative, rcode=dns.rcode.SERVFAIL))
        answer = zone_answers.answer(request.qname, request.qtype, self._store, self._options, zone)
        if answer.rcode == dns.rcode.NXDOMAIN:
            if self._config.fallthrough.through(request.name):
                return next(request)
            if not synced:
                answer = attrs.evolve(answer, rcode=dns.rcode.SERVFAIL)
        if synced:
            request.fastpath.depend(*self.tokens(answer.dependencies))
        else:
            request.fastpath.forbid()
        if answer.chase is not None and request.lookup is not None:
            return self._chase(request, answer, zone)
        return self._respond(request, answer)

    def fast_answer(self, qname, name: str, qtype: int):
        """What `serve` answers, when that is the zone function's answer as is; else None.

        For the server's fast route (`DNSServer.fast_miss`): returns
        (answer, authoritative); `tokens` gives the table's dependency
        tokens of the answers it keeps. None whenever `serve`
        would do more than answer from the zone function: not synced yet,
        an NXDOMAIN that falls through, an ExternalName target to chase,
        a name outside our zones.
        """
        zone = longest_match(self._config.zones, name)
        if zone is None or not self._has_synced():
            return None
        answer = zone_answers.answer(qname, qtype, self._store, self._options, zone)
        if answer.chase is not None:
            return None
        if answer.rcode == dns.rcode.NXDOMAIN and self._config.fallthrough.through(name):
            return None
        return answer, _authoritative(answer)

    def auto_path(self, request: Request, host_search=()) -> tuple[str, ...] | None:
        """autopath.go AutoPath: the search path of the Pod that asks, or None (no autopath).

        Only for names in our zones, with `pods verified`, and a client address that is a Pod's.
        """
        zone = longest_match(self._config.zones, request.name)
        if zone is None or self._config.pods != "verified":
            return None
        namespace = zone_answers.client_namespace(self._store, self._options, request.client[0])
        if namespace is None:
            return None
        from .autopath import kubernetes_search_path

        return kubernetes_search_path(zone, namespace, host_search)

    def autopath_vary(self, name: str):
        """For a name below ``NS.svc.ZONE``: the client classifier autopath's answers depend on (else None)."""
        zone = longest_match(self._config.zones, name)
        if zone is None or self._config.pods != "verified":
            return None
        svc_zone = "svc." if zone == "." else "svc." + zone
        if not name.endswith("." + svc_zone):
            return None
        label = name[: -len(svc_zone) - 1].rpartition(".")[2]
        from .autopath import autopath_vary_for

        store, options = self._store, self._options
        return autopath_vary_for(label, lambda host: zone_answers.client_namespace(store, options, host))

    def transfer(self, zone: str, serial: int):
        """The zone's records for AXFR (xfr.go), or None when this is not one of our forward zones.

        An IXFR whose serial is the current one gets the SOA alone. Until the
        cache has synced there is nothing true to transfer: None.
        """
        if zone not in self._config.zones or is_reverse(zone) or not self._has_synced():
            return None
        records = zone_answers.transfer_records(self._store, self._options, zone)
        if serial and serial == zone_answers.soa_serial(self._store):
            return [next(records)]
        return records

    def tokens(self, dependencies: Iterable[Hashable]) -> list[tuple]:
        """The table's dependency tokens for an answer's dependencies (`discovery.dns.table`)."""
        key = self._key
        return [(key, token) for token in dependencies]

    def _chase(self, request: Request, answer: zone_answers.Answer, zone: str) -> Deferred:
        """backend_lookup.go A/AAAA: resolve the CNAME target upstream and append its answer.

        The appended records are valid only for their own TTLs: the rendered
        answer expires with the shortest of them; with nothing appended, it
        is not reused (the upstream's denial carries no TTL we keep).
        """

        def appended(message: dns.message.Message) -> dns.message.Message:
            if message.answer:
                shortest = min(rrset.ttl for rrset in message.answer)
                request.fastpath.expire_at(self._reactor.seconds() + shortest)
            else:
                request.fastpath.forbid()
            response = self._respond(
                request, attrs.evolve(answer, answer=answer.answer + tuple(message.answer))
            )
            if message.flags & dns.flags.TC:
                response.flags |= dns.flags.TC
            return response

        def failed(failure: Failure) -> dns.message.Message:
            # CoreDNS drops the whole answer when the upstream lookup fails.
            request.fastpath.forbid()
            return self._respond(
                request, zone_answers.nodata(request.qname, self._store, self._options, zone)
            )

        lookup = request.lookup(answer.chase, request.qtype)
        lookup.addCallbacks(appended, failed)
        return lookup

    def _respond(self, request: Request, answer: zone_answers.Answer) -> dns.message.Message:
        return respond(request, answer, self.name)


def respond(request: Request, answer: zone_answers.Answer, plugin: str) -> dns.message.Message:
    """The response carrying an Answer, written by plugin (for the metrics' plugin label)."""
    response = request.reply()
    if _authoritative(answer):
        response.flags |= dns.flags.AA
    response.set_rcode(answer.rcode)
    response.answer.extend(answer.answer)
    response.authority.extend(answer.authority)
    response.additional.extend(answer.additional)
    request.plugin = plugin
    return response


def _authoritative(answer: zone_answers.Answer) -> bool:
    # CoreDNS writes REFUSED (zone transfers) through the server's error
    # path, which does not claim authority; every other answer is ours.
    return answer.rcode != dns.rcode.REFUSED


def local_addresses(bound: Iterable[str]) -> tuple[str, ...]:
    """This host's addresses, as CoreDNS's kubernetes plugin finds its own pod IP.

    The bind addresses when given; otherwise the source address the kernel
    picks for outside traffic (no packet is sent by a UDP connect).
    """
    addresses = [a for a in bound if a not in ("0.0.0.0", "::")]
    if addresses:
        return tuple(addresses)
    found = []
    for family, target in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "fd00::ffff")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 53))
                found.append(probe.getsockname()[0])
        except OSError:
            continue
    return tuple(found)


def _build(config: KubernetesConfig, ctx: BuildContext) -> KubernetesPlugin:
    cache = ctx.cache_for(config.source)
    return KubernetesPlugin(
        config, cache.store, cache.source.synced, ctx.reactor, local_ips=local_addresses(ctx.block.bind)
    )


PLUGINS = (PluginSpec("kubernetes", setup_kubernetes, build=_build, in_webhook_block=True),)
