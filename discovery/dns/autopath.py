"""The `autopath` plugin: the client's search path, walked on the server.

A Pod resolves ``name`` with ``ndots:5`` as ``name.<ns>.svc.cluster.local``,
``name.svc.cluster.local``, ``name.cluster.local``, (the node's search
domains), and ``name.`` in turn: up to five queries, four of them NXDOMAIN.
With autopath, the first of them is answered with the first candidate that
exists, behind a CNAME from the question to it, as CoreDNS's plugin/autopath
(autopath.go, cname.go) with plugin/kubernetes/autopath.go does:

* the search path comes from a resolv.conf-like file (the same for every
  client), or with ``@kubernetes`` from the client's Pod, found by its
  source address (`pods verified`); ``[<ns>.svc.ZONE, svc.ZONE, ZONE,
  the search domains of this host's /etc/resolv.conf..., ""]``;
* only a question at or below the first element is walked; each candidate
  goes down the rest of the chain; the first answer that is not NXDOMAIN
  (nor a failure) is returned, with the question put back and a CNAME from
  it to the answer's owner; when every candidate fails, the first reply;
* ``coredns_autopath_success_total{server}`` counts the walks that found one.

Reuse of rendered answers: with ``@kubernetes`` the answer to a question
below ``<ns>.svc.ZONE`` depends on whether the client is a Pod of ``<ns>``.
The answer's policy says so (`FastPathPolicy.vary`), and the server keys
such answers by that class of client, so no client is ever served what was
rendered for a client of the other class.
"""

from __future__ import annotations

from typing import Callable, Sequence

import attrs
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from prometheus_client import CollectorRegistry, Counter
from twisted.internet.defer import Deferred

from ..corefile import Directive
from ..ops.metrics import per_registry
from ..plugin import BuildContext, PluginSpec
from ..zones import longest_match, normalize_zone, zone_arguments
from .request import FastPathPolicy, Next, Request, Result

__all__ = [
    "AutopathConfig",
    "AutopathPlugin",
    "setup_autopath",
    "search_from_resolv_conf",
    "kubernetes_search_path",
    "first_in_search_path",
    "cnamer",
    "success_counter",
    "PLUGINS",
]

#: Rcodes with which CoreDNS's plugins write nothing (plugin.ClientWrite is false).
_NOT_WRITTEN = frozenset({dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.NOTIMP})
_IN_CLASS = b"\x01"
_OUT_CLASS = b"\x00"


@attrs.frozen
class AutopathConfig:
    """`autopath [ZONE...] RESOLV-CONF`: zones, and the static search path or the plugin to ask."""

    zones: tuple[str, ...]
    #: The search path read from RESOLV-CONF, normalised, "" last; empty with `plugin`.
    search: tuple[str, ...] = ()
    #: "kubernetes" for `@kubernetes`: the search path comes from that plugin per client.
    plugin: str = ""
    file: str = attrs.field(default="", eq=False)
    line: int = attrs.field(default=0, eq=False)


def setup_autopath(directive: Directive, ctx) -> AutopathConfig:
    """Parse an `autopath` directive (CoreDNS's setup.go). Raises CorefileError."""
    directive.expect_args(1, usage="autopath [ZONE...] RESOLV-CONF")
    directive.expect_no_block()
    *zones, resolv = directive.args
    normalised = zone_arguments(directive, zones) or ctx.zones
    if resolv.startswith("@"):
        return AutopathConfig(normalised, plugin=resolv[1:], file=directive.file, line=directive.line)
    try:
        with open(resolv, encoding="utf-8") as f:
            search = search_from_resolv_conf(f.read())
    except OSError as e:
        raise directive.error(f"autopath: failed to parse {resolv!r}: {e.strerror}") from None
    return AutopathConfig(normalised, search + ("",), file=directive.file, line=directive.line)


def search_from_resolv_conf(text: str) -> tuple[str, ...]:
    """The search domains of resolv.conf text, as fully qualified lower-case names.

    As miekg/dns ClientConfigFromReader: the last `search` or `domain` line wins.
    """
    search: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "search":
            search = fields[1:]
        elif fields[0] == "domain" and len(fields) > 1:
            search = [fields[1]]
    return tuple(normalize_zone(domain) for domain in search)


def kubernetes_search_path(zone: str, namespace: str, host_search: Sequence[str]) -> tuple[str, ...]:
    """kubernetes/autopath.go AutoPath: the search path of a Pod in namespace, "" last."""
    if zone == ".":
        first = (f"{namespace}.svc.", "svc.", ".")
    else:
        first = (f"{namespace}.svc.{zone}", f"svc.{zone}", zone)
    return first + tuple(host_search) + ("",)


def first_in_search_path(name: str, search: Sequence[str]) -> bool:
    """autopath.go firstInSearchPath: name is the first element or below it (lower-case names)."""
    first = search[0]
    return name == first or first == "." or name.endswith("." + first)


def cnamer(response: dns.message.Message, original: dns.name.Name) -> None:
    """cname.go: a CNAME from the question to the owner of the first answer record named otherwise,
    with its TTL, in front of the answer; and the question put back."""
    for rrset in response.answer:
        if rrset.name == original:
            continue
        cname = dns.rrset.RRset(original, dns.rdataclass.IN, dns.rdatatype.CNAME)
        cname.add(CNAME(dns.rdataclass.IN, dns.rdatatype.CNAME, rrset.name), rrset.ttl)
        response.answer.insert(0, cname)
        break
    question = response.question[0]
    response.question = [dns.rrset.RRset(original, question.rdclass, question.rdtype)]


@per_registry
def success_counter(registry: CollectorRegistry) -> Counter:
    """coredns_autopath_success_total{server}, once per registry."""
    return Counter(
        "coredns_autopath_success", "Counter of requests that did autopath.", ["server"], registry=registry
    )


class AutopathPlugin:
    """The `autopath` directive of one server block."""

    name = "autopath"

    def __init__(self, config: AutopathConfig, server: str, success: Counter, kubernetes=None, host_search=()):
        self.config = config
        self.server = server
        self.success = success.labels(server)
        #: The kubernetes plugin of the block, for `@kubernetes`; None: no autopath.
        self.kubernetes = kubernetes
        #: This host's own search domains (CoreDNS's autoPathSearch), after the cluster's.
        self.host_search = tuple(host_search)

    def set_chain(self, chain) -> None:
        """`@NAME`: use the block's plugin of that name (CoreDNS: none there, no autopath)."""
        if not self.config.plugin:
            return
        self.kubernetes = None
        for plugin in chain:
            if getattr(plugin, "name", None) == self.config.plugin:
                if not callable(getattr(plugin, "auto_path", None)):
                    raise ValueError(
                        f"{self.config.file}:{self.config.line}: autopath: {self.config.plugin} "
                        "does not implement the AutoPather interface"
                    )
                self.kubernetes = plugin

    def serve(self, request: Request, next: Next) -> Result:
        if longest_match(self.config.zones, request.name) is None:
            return next(request)
        if self.config.plugin:
            if self.kubernetes is None:
                return next(request)
            vary = self.kubernetes.autopath_vary(request.name)
            if vary is not None:
                request.fastpath.vary = vary
            search = self.kubernetes.auto_path(request, self.host_search)
        else:
            search = self.config.search
        if not search or not first_in_search_path(request.name, search):
            return next(request)
        original = request.qname
        cut = len(original.labels) - len(dns.name.from_text(search[0]).labels)
        if cut <= 0:
            # The first element itself: nothing to prepend to (CoreDNS fails
            # with SERVFAIL here, trimming the zone from itself).
            return next(request)
        base = original.labels[:cut]
        candidates = []
        for element in search:
            try:
                candidates.append(dns.name.Name(base + dns.name.from_text(element or ".").labels))
            except dns.name.NameTooLong:
                continue
        return _Walk(self, request, next, candidates).run(0)

    def succeeded(self, request: Request) -> None:
        self.success.inc()
        request.fastpath.on_reuse += (self.success.inc,)


class _Walk:
    """One query's walk down the search path; synchronous until a plugin answers later."""

    def __init__(self, plugin: AutopathPlugin, request: Request, next: Next, candidates: list[dns.name.Name]):
        self.plugin = plugin
        self.request = request
        self.next = next
        self.candidates = candidates
        self.first: dns.message.Message | None = None

    def run(self, index: int) -> Result:
        while index < len(self.candidates):
            sub = _retarget(self.request, self.candidates[index])
            result = self.next(sub)
            if isinstance(result, Deferred):
                return result.addCallback(self._judged, sub, index)
            done = self._judge(result, sub, index)
            if done is not None:
                return done
            index += 1
        return self._give_up()

    def _judged(self, response: dns.message.Message, sub: Request, index: int) -> Result:
        done = self._judge(response, sub, index)
        return done if done is not None else self.run(index + 1)

    def _judge(self, response: dns.message.Message, sub: Request, index: int) -> dns.message.Message | None:
        request = self.request
        _merge(request.fastpath, sub.fastpath)
        rcode = response.rcode()
        if index == 0:
            self.first = response
            request.plugin = sub.plugin
        if rcode in _NOT_WRITTEN or rcode == dns.rcode.NXDOMAIN:
            return None
        cnamer(response, request.qname)
        if sub.fastpath.countdown_from is not None:
            request.fastpath.countdown_from = sub.fastpath.countdown_from
        request.plugin = sub.plugin
        self.plugin.succeeded(request)
        return response

    def _give_up(self) -> dns.message.Message:
        first = self.first
        if first is None or first.rcode() in _NOT_WRITTEN:
            # Nothing written: the server's SERVFAIL, never reused.
            self.request.fastpath.forbid()
            response = self.request.reply()
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        first.question = [dns.rrset.RRset(self.request.qname, self.request.qclass, self.request.qtype)]
        return first


def _retarget(request: Request, name: dns.name.Name) -> Request:
    """The same request, asking for name instead (with its own reuse policy)."""
    original = request.query
    query = dns.message.make_query(name, request.qtype, request.qclass)
    query.id = original.id
    query.flags = original.flags
    if original.edns >= 0:
        query.use_edns(original.edns, original.ednsflags, original.payload, options=original.options)
    return attrs.evolve(request, query=query, qname=name, fastpath=FastPathPolicy(), plugin="")


def _merge(policy: FastPathPolicy, sub: FastPathPolicy) -> None:
    """The walk's answer is as reusable as every answer it read."""
    if not sub.reusable:
        policy.forbid()
    policy.depend(*sub.dependencies)
    policy.expire_at(sub.expires)
    policy.on_reuse += sub.on_reuse


def autopath_vary_for(label: str, namespace_of: Callable[[str], str | None]) -> Callable[[str], bytes]:
    """The class of a client for a question below ``label.svc.ZONE``: is it a Pod of `label`?"""

    def classify(host: str) -> bytes:
        return _IN_CLASS if namespace_of(host) == label else _OUT_CLASS

    return classify


def _build(config: AutopathConfig, ctx: BuildContext) -> AutopathPlugin:
    """autopath; with `@kubernetes`, the block's kubernetes plugin is found once the chain is built."""
    host_search: tuple[str, ...] = ()
    if config.plugin == "kubernetes":
        # CoreDNS's kubernetes plugin reads its own host's search domains at start-up.
        try:
            with open("/etc/resolv.conf", encoding="utf-8") as f:
                host_search = search_from_resolv_conf(f.read())
        except OSError:
            pass
    return AutopathPlugin(config, ctx.server, success_counter(ctx.registry), host_search=host_search)


PLUGINS = (PluginSpec("autopath", setup_autopath, build=_build),)
