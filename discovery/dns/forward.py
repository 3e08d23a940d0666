"""The `forward` directive: proxy queries to upstream resolvers (CoreDNS's forward).

Syntax (CoreDNS's; plain DNS and DNS-over-TLS upstreams)::

    forward FROM TO... {
        except IGNORED_NAMES...
        force_tcp
        prefer_udp
        expire DURATION
        max_age DURATION
        max_idle_conns INTEGER
        read_timeout DURATION
        max_fails INTEGER
        max_connect_attempts INTEGER
        tls [CERT KEY] [CA]
        tls_servername NAME
        health_check DURATION [no_rec] [domain FQDN]
        policy random|round_robin|sequential
        max_concurrent MAX
        failfast_all_unhealthy_upstreams
        failover RCODE...
        source_address IP
    }

TO is an IP address with an optional port (`1.2.3.4`, `1.2.3.4:5353`,
`[::1]:53`, `dns://...`), a DNS-over-TLS upstream (`tls://1.2.3.4`, port 853
by default, `tls://1.2.3.4%NAME:PORT` to name the server it must prove to
be) or a resolv.conf-like file whose nameservers are read at setup. The
query loop follows CoreDNS's Forward.ServeDNS: upstreams in policy order,
down ones skipped (a random one used when all are down), the next one tried
after a failed exchange, for at most 5 seconds and `max_connect_attempts`
exchanges. When none answers, the query fails (`ForwardError`): the server
answers SERVFAIL and `errors` logs the reason.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from typing import Protocol, Sequence

import attrs
import dns.flags
import dns.message
import dns.rcode
from prometheus_client import CollectorRegistry, Counter, Histogram
from twisted.internet import defer

from ..corefile import Directive
from ..ops.metrics import per_registry
from ..plugin import BuildContext, PluginSpec
from ..zones import in_zone, normalize_zone, zones_from_cidr
from .request import PluginError, Request
from .tls import TLSSettings, TLSSettingsError
from .upstream import (
    DNS,
    TLS,
    TLS_PORT,
    HealthCheck,
    ProxyMetrics,
    Upstream,
    UpstreamAddress,
    UpstreamError,
)

__all__ = ["ForwardConfig", "ForwardPlugin", "ForwardError", "setup_forward", "read_resolv_conf", "MAX_UPSTREAMS"]

log = logging.getLogger("wayfinder.forward")

#: CoreDNS's limit on the number of TO entries.
MAX_UPSTREAMS = 15
#: CoreDNS's defaultTimeout: the whole query, all tries included.
QUERY_DEADLINE = 5.0
#: CoreDNS's defaultConnectAttemptsPerUpstream.
ATTEMPTS_PER_UPSTREAM = 2
POLICIES = ("random", "round_robin", "sequential")
#: CoreDNS's plugin.TimeBuckets: 0.25ms to 8s.
TIME_BUCKETS = tuple(0.00025 * 2**i for i in range(16))
#: What the plain-DNS upstream answers offer the client (request.reply()'s).
CLIENT_PAYLOAD = 1232


@attrs.frozen
class ForwardConfig:
    """One `forward` directive."""

    upstreams: tuple[UpstreamAddress, ...]
    from_zone: str = "."
    ignored: tuple[str, ...] = ()
    force_tcp: bool = False
    prefer_udp: bool = False
    expire: float = 10.0
    max_age: float = 0.0
    max_idle_conns: int = 0
    read_timeout: float = 2.0
    max_fails: int = 2
    #: None: twice the number of upstreams; 0: no cap.
    max_connect_attempts: int | None = None
    health_check: HealthCheck = HealthCheck()
    policy: str = "random"
    max_concurrent: int = 0
    failfast_all_unhealthy_upstreams: bool = False
    failover_rcodes: tuple[int, ...] = ()
    source_address: str | None = None
    #: How the tls:// upstreams are verified (`tls`, `tls_servername`).
    tls: TLSSettings = TLSSettings()
    # Where the directive stands, for messages; not part of what it means, so
    # a reload that only moves the line keeps the running instance.
    file: str = attrs.field(default="", eq=False)
    line: int = attrs.field(default=0, eq=False)

    def matches(self, name: str) -> bool:
        """Is the lower-cased name forwarded (under FROM, and not excepted)?"""
        if not in_zone(name, self.from_zone):
            return False
        if name == self.from_zone:
            return True
        return not any(in_zone(name, ignored) for ignored in self.ignored)


# --- setup ----------------------------------------------------------------------------

_UNSUPPORTED_OPTIONS = {
    "doh_method": "DNS-over-HTTPS upstreams are not supported (plain DNS and tls:// only)",
    "resolver": "upstream host names are not supported (use IP addresses)",
    "next": "only one forward per server block is supported, so there is no next forward",
    "next_on_nodata": "only one forward per server block is supported, so there is no next forward",
}


def read_resolv_conf(path: str) -> list[UpstreamAddress]:
    """The nameservers of a resolv.conf-like file, port 53. Raises OSError."""
    servers = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                try:
                    host = ipaddress.ip_address(fields[1].split("%", 1)[0]).compressed
                except ValueError:
                    continue
                servers.append(UpstreamAddress(host, 53))
    return servers


def _split_server_name(rest: str) -> tuple[str, str]:
    """"IP%NAME[:PORT]" -> ("IP[:PORT]", "NAME") (CoreDNS's splitZone).

    The text after the last '%' is the TLS server name; a port after it
    belongs to the address.
    """
    head, sep, name = rest.rpartition("%")
    if not sep:
        return rest, ""
    if head.startswith("["):
        head += "]"
    port = ""
    if ":" in name:
        name, port = name.rsplit(":", 1)
        name = name.removesuffix("]")
        port = ":" + port
    return head + port, name


def _parse_to(directive: Directive, text: str) -> list[UpstreamAddress]:
    """One TO argument -> upstream addresses (CoreDNS's parse.HostPortOrFile)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = DNS, text
    elif scheme not in (DNS, TLS):
        # https://, quic:// and the like: Wayfinder speaks plain DNS and DNS over TLS.
        raise directive.error(f"forward: '{scheme}' is not supported as a destination protocol: {text}")
    if not rest:
        raise directive.error(f"forward: invalid address: {text!r}")
    server_name = ""
    if scheme == TLS:
        rest, server_name = _split_server_name(rest)
    host, port_text = rest, ""
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        if after.startswith(":"):
            port_text = after[1:]
        elif after:
            raise directive.error(f"forward: invalid address: {text!r}")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0]).compressed
    except ValueError:
        if sep or port_text:
            raise directive.error(f"forward: not an IP address or file: {text!r}") from None
        return _read_file(directive, text)
    port = TLS_PORT if scheme == TLS else 53
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            raise directive.error(f"forward: invalid port {port_text!r} in {text!r}")
        port = int(port_text)
    return [UpstreamAddress(address, port, scheme, server_name)]


def _read_file(directive: Directive, path: str) -> list[UpstreamAddress]:
    try:
        return read_resolv_conf(path)
    except OSError as e:
        raise directive.error(
            f"forward: not an IP address or file: {path!r} ({e.strerror or e})"
        ) from None


def _one(option: Directive, usage: str) -> str:
    option.expect_args(1, 1, usage)
    option.expect_no_block()
    return option.args[0]


def _duration(option: Directive, text: str) -> float:
    return option.duration(text, f"forward: {option.name}")


def _count(option: Directive, text: str) -> int:
    if not text.isdigit():
        raise option.error(f"forward: {option.name}: {text!r} is not a non-negative integer")
    return int(text)


def _rcodes(option: Directive) -> tuple[int, ...]:
    option.expect_args(1, usage=f"{option.name} RCODE...")
    codes = []
    for text in option.args:
        try:
            codes.append(dns.rcode.from_text(text.upper()))
        except dns.rcode.UnknownRcode:
            raise option.error(f"forward: {text} is not a valid rcode") from None
    return tuple(codes)


def _tls_files(option: Directive | None) -> tuple[str | None, str | None, str | None]:
    """`tls` arguments -> (CERT, KEY, CA), as CoreDNS's NewTLSConfigFromArgs:
    one argument is the CA, two the client's certificate and key."""
    args = option.args if option is not None else ()
    if len(args) == 1:
        return None, None, args[0]
    cert, key, ca = (*args, None, None, None)[:3]
    return cert, key, ca


def setup_forward(directive: Directive, ctx) -> ForwardConfig:
    """Parse a `forward` directive. Raises CorefileError naming file:line."""
    directive.expect_args(2, usage="forward FROM TO...")
    origin = directive.args[0]
    try:
        from_zone = zones_from_cidr(origin)[0] if "/" in origin else normalize_zone(origin)
    except ValueError:
        raise directive.error(f"forward: unable to normalize '{origin}'") from None
    options: dict = {}
    tls_option: Directive | None = None
    health: dict = {}
    for option in directive.block:
        name = option.name
        if name in _UNSUPPORTED_OPTIONS:
            raise option.error(f"forward: option '{name}' is not supported: {_UNSUPPORTED_OPTIONS[name]}")
        if name == "except":
            option.expect_args(1, usage="except IGNORED_NAMES...")
            options["ignored"] = options.get("ignored", ()) + tuple(normalize_zone(a) for a in option.args)
        elif name in ("force_tcp", "prefer_udp", "failfast_all_unhealthy_upstreams"):
            option.expect_args(0, 0, name)
            options[name] = True
        elif name in ("expire", "max_age", "read_timeout"):
            value = _duration(option, _one(option, f"{name} DURATION"))
            if value < 0:
                raise option.error(f"forward: {name} can't be negative: {option.args[0]}")
            if name == "read_timeout" and value == 0:
                raise option.error(f"forward: read_timeout must be positive: {option.args[0]}")
            options[name] = value
        elif name in ("max_fails", "max_connect_attempts", "max_idle_conns", "max_concurrent"):
            options[name] = _count(option, _one(option, f"{name} INTEGER"))
        elif name == "health_check":
            option.expect_args(1, usage="health_check DURATION [no_rec] [domain FQDN]")
            interval = _duration(option, option.args[0])
            if interval < 0:
                raise option.error(f"forward: health_check can't be negative: {option.args[0]}")
            health = {"interval": interval, "domain": "."}
            rest = list(option.args[1:])
            while rest:
                word = rest.pop(0)
                if word == "no_rec":
                    health["recursion_desired"] = False
                elif word == "domain":
                    if not rest:
                        raise option.error("forward: health_check: domain needs a name")
                    health["domain"] = normalize_zone(rest.pop(0))
                else:
                    raise option.error(f"forward: health_check: unknown option {word}")
        elif name == "policy":
            policy = _one(option, "policy random|round_robin|sequential")
            if policy not in POLICIES:
                raise option.error(f"forward: unknown policy '{policy}'")
            options["policy"] = policy
        elif name == "failover":
            codes = _rcodes(option)
            if dns.rcode.NOERROR in codes:
                raise option.error("forward: NoError cannot be used in failover")
            options["failover_rcodes"] = options.get("failover_rcodes", ()) + codes
        elif name == "tls":
            option.expect_args(0, 3, "tls [CERT KEY] [CA]")
            option.expect_no_block()
            tls_option = option
        elif name == "tls_servername":
            options["tls_servername"] = _one(option, "tls_servername NAME")
        elif name == "source_address":
            text = _one(option, "source_address IP")
            try:
                options["source_address"] = ipaddress.ip_address(text).compressed
            except ValueError:
                raise option.error(f"forward: invalid IP address: {text}") from None
        else:
            raise option.error(f"forward: unknown property '{name}'")
    if options.get("max_age", 0) > 0 and options["max_age"] < options.get("expire", 10.0):
        raise directive.error("forward: max_age must not be less than expire")
    if len(directive.args) - 1 > MAX_UPSTREAMS:
        raise directive.error(f"forward: more than {MAX_UPSTREAMS} TOs configured: {len(directive.args) - 1}")
    upstreams: list[UpstreamAddress] = []
    for text in directive.args[1:]:
        for address in _parse_to(directive, text):
            if address not in upstreams:
                upstreams.append(address)
    if not upstreams:
        raise directive.error("forward: no valid upstream addresses found")
    server_name = options.pop("tls_servername", "")
    for address in upstreams:
        if address.server_name and server_name:
            raise directive.error(
                f"forward: both forward ('{server_name}') and proxy level ('{address.server_name}') TLS "
                f"servernames are set for upstream proxy 'tls://{address.label}'"
            )
    try:
        options["tls"] = TLSSettings.from_files(*_tls_files(tls_option), server_name=server_name)
    except TLSSettingsError as e:
        raise tls_option.error(f"forward: tls: {e}") from None
    health["tcp"] = options.get("force_tcp", False)
    return ForwardConfig(
        upstreams=tuple(upstreams),
        from_zone=from_zone,
        health_check=HealthCheck(**health),
        file=directive.file,
        line=directive.line,
        **options,
    )


# --- metrics --------------------------------------------------------------------------


@attrs.frozen
class _ForwardMetrics:
    healthcheck_broken: Counter
    max_concurrent_rejects: Counter
    proxy: ProxyMetrics


@per_registry
def _metrics(registry: CollectorRegistry) -> _ForwardMetrics:
    """CoreDNS's forward and proxy metrics, defined once per registry."""
    return _ForwardMetrics(
        healthcheck_broken=Counter(
            "coredns_forward_healthcheck_broken",
            "Counter of the number of complete failures of the healthchecks.",
            registry=registry,
        ),
        max_concurrent_rejects=Counter(
            "coredns_forward_max_concurrent_rejects",
            "Counter of the number of queries rejected because the concurrent queries were at maximum.",
            registry=registry,
        ),
        proxy=ProxyMetrics(
            request_duration=Histogram(
                "coredns_proxy_request_duration_seconds",
                "Histogram of the time each request took.",
                ["proxy_name", "to", "rcode"],
                buckets=TIME_BUCKETS,
                registry=registry,
            ),
            healthcheck_failures=Counter(
                "coredns_proxy_healthcheck_failures",
                "Counter of the number of failed healthchecks.",
                ["proxy_name", "to"],
                registry=registry,
            ),
            conn_cache_hits=Counter(
                "coredns_proxy_conn_cache_hits",
                "Counter of connection cache hits per upstream and protocol.",
                ["proxy_name", "to", "proto"],
                registry=registry,
            ),
            conn_cache_misses=Counter(
                "coredns_proxy_conn_cache_misses",
                "Counter of connection cache misses per upstream and protocol.",
                ["proxy_name", "to", "proto"],
                registry=registry,
            ),
        ),
    )


# --- policies -------------------------------------------------------------------------


def order_upstreams(policy: str, upstreams: Sequence, turn: int, rng: random.Random) -> list:
    """The order in which one query tries the upstreams (CoreDNS's policy.go).

    `turn` counts the queries so far (round_robin starts at the second
    upstream, as CoreDNS's pre-incremented counter does).
    """
    if policy == "sequential" or len(upstreams) == 1:
        return list(upstreams)
    if policy == "round_robin":
        i = (turn + 1) % len(upstreams)
        return [upstreams[i], *upstreams[:i], *upstreams[i + 1 :]]
    order = list(upstreams)
    rng.shuffle(order)
    return order


# --- the plugin ---------------------------------------------------------------------------


class UpstreamLike(Protocol):
    """What the query loop needs from an upstream (`Upstream`, or a test's fake)."""

    label: str

    def down(self, max_fails: int) -> bool: ...

    def exchange(self, query: dns.message.Message, proto: str) -> defer.Deferred: ...

    def healthcheck(self) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ForwardError(PluginError):
    """No upstream answered. The server answers SERVFAIL and `errors` logs the
    reason, as CoreDNS logs "2 NAME TYPE: read udp ...: i/o timeout"."""


class ForwardPlugin:
    """Forwards the queries under FROM to the upstreams; see the module doc."""

    name = "forward"

    def __init__(
        self,
        config: ForwardConfig,
        reactor,
        *,
        registry: CollectorRegistry | None = None,
        server: str = "dns://:53",
        rng: random.Random | None = None,
        upstreams: Sequence[UpstreamLike] | None = None,
    ):
        self.config = config
        self.reactor = reactor
        self.server = server
        self._metrics = _metrics(registry if registry is not None else CollectorRegistry())
        self._rng = rng or random.Random()
        if upstreams is None:
            upstreams = [
                Upstream(
                    reactor,
                    address,
                    self._metrics.proxy,
                    health=config.health_check,
                    read_timeout=config.read_timeout,
                    expire=config.expire,
                    max_age=config.max_age,
                    max_idle=config.max_idle_conns,
                    source=config.source_address,
                    tls=config.tls,
                )
                for address in config.upstreams
            ]
        #: The upstreams in configuration order.
        self.upstreams: list[UpstreamLike] = list(upstreams)
        self._turn = 0
        #: Queries waiting for an upstream now (max_concurrent).
        self.in_flight = 0

    def start(self) -> None:
        for upstream in self.upstreams:
            upstream.start()

    def stop(self) -> None:
        for upstream in self.upstreams:
            upstream.stop()

    def serve(self, request: Request, next):
        if not self.config.matches(request.name):
            return next(request)
        request.plugin = self.name
        # Without a cache in front, every query goes upstream (as in CoreDNS).
        request.fastpath.forbid()
        limit = self.config.max_concurrent
        if limit and self.in_flight >= limit:
            self._metrics.max_concurrent_rejects.inc()
            return _error_reply(request, dns.rcode.REFUSED)
        self.in_flight += 1
        d = defer.ensureDeferred(self._forward(request))

        def done(result):
            self.in_flight -= 1
            return result

        return d.addBoth(done)

    async def _forward(self, request: Request) -> dns.message.Message:
        config = self.config
        order = order_upstreams(config.policy, self.upstreams, self._turn, self._rng)
        self._turn += 1
        max_attempts = config.max_connect_attempts
        if max_attempts is None:
            max_attempts = ATTEMPTS_PER_UPSTREAM * len(order)
        deadline = self.reactor.seconds() + QUERY_DEADLINE
        attempts = fails = failovers = 0
        index = 0
        reason = "no healthy upstream"
        while self.reactor.seconds() < deadline and (max_attempts == 0 or attempts < max_attempts):
            if index >= len(order):
                index = fails = 0
            upstream = order[index]
            index += 1
            if upstream.down(config.max_fails):
                fails += 1
                if fails < len(self.upstreams):
                    continue
                self._metrics.healthcheck_broken.inc()
                if config.failfast_all_unhealthy_upstreams:
                    break
                # Health checking looks broken: try any upstream at all.
                upstream = self._rng.choice(self.upstreams)
            try:
                reply = await self._exchange(upstream, request)
            except UpstreamError as e:
                reason = f"{upstream.label}: {e}"
                log.debug("forward of %s %s to %s failed: %s", request.name, request.qtype, upstream.label, e)
                if config.max_fails != 0:
                    upstream.healthcheck()
                attempts += 1
                if max_attempts and attempts >= max_attempts:
                    break
                if fails < len(self.upstreams):
                    continue
                break
            if not _matches(reply, request):
                return _error_reply(request, dns.rcode.FORMERR)
            if reply.rcode() in config.failover_rcodes:
                failovers += 1
                if failovers < len(self.upstreams):
                    continue
            return _to_client(reply, request)
        raise ForwardError(reason)

    async def _exchange(self, upstream: UpstreamLike, request: Request) -> dns.message.Message:
        if self.config.force_tcp:
            proto = "tcp"
        elif self.config.prefer_udp:
            proto = "udp"
        else:
            proto = request.proto
        reply = await upstream.exchange(request.query, proto)
        if reply.flags & dns.flags.TC and proto == "udp" and self.config.prefer_udp:
            # prefer_udp: a truncated UDP answer is asked again over TCP.
            reply = await upstream.exchange(request.query, "tcp")
        return reply


def _matches(reply: dns.message.Message, request: Request) -> bool:
    """Does the reply answer this question? (CoreDNS's request.Match)"""
    if len(reply.question) != 1 or not reply.flags & dns.flags.QR:
        return False
    question = reply.question[0]
    return question.name == request.qname and question.rdtype == request.qtype and question.rdclass == request.qclass


def _to_client(reply: dns.message.Message, request: Request) -> dns.message.Message:
    """The upstream's reply with the client's ID, question (its case) and EDNS."""
    reply.id = request.query.id
    reply.question = list(request.query.question)
    rcode = reply.rcode()
    if request.edns:
        # Upstream EDNS options stay (an extended error, say), as CoreDNS's
        # SizeAndDo keeps them; the size and DO bit are ours to say.
        reply.use_edns(
            0,
            ednsflags=dns.flags.DO if request.dnssec_ok else 0,
            payload=CLIENT_PAYLOAD,
            options=list(reply.options),
        )
    else:
        reply.use_edns(False)
    reply.set_rcode(rcode)
    return reply


def _error_reply(request: Request, rcode: int) -> dns.message.Message:
    response = request.reply()
    response.set_rcode(rcode)
    return response


def _build(config: ForwardConfig, ctx: BuildContext) -> ForwardPlugin:
    return ForwardPlugin(config, ctx.reactor, registry=ctx.registry, server=ctx.server)


PLUGINS = (PluginSpec("forward", setup_forward, build=_build),)
