"""Talking to upstream DNS servers: CoreDNS's plugin/pkg/proxy, on Twisted.

An `Upstream` is one TO of a `forward` directive. It sends a query over UDP,
TCP or DNS over TLS (RFC 7858: TCP framing inside TLS, every query of a TLS
upstream whatever the client used) through a pool of reusable connections
(`ConnectionPool`, CoreDNS's proxy.Transport), waits for the answer with the
same ID for at most the read timeout, and keeps the health state that
`forward` consults:

- every failed exchange starts a health probe, unless one is running
  (CoreDNS's up.Probe): ``. IN NS`` (RD set unless ``no_rec``) every
  interval until one gets any reply, each failure counting one fail and
  ``coredns_proxy_healthcheck_failures_total``; a reply clears the fails;
- the upstream is down while it has *more* fails than ``max_fails``.

Health probes travel as the queries do: over TLS to a TLS upstream (each on
a fresh connection, with the same certificate checks), so that an upstream
whose certificate no longer verifies is down.

Nothing here blocks: a slow upstream only holds its own Deferreds.
"""

from __future__ import annotations

import collections
import logging
import secrets
import struct
from typing import Callable

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from twisted.internet import defer, error, interfaces, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol, wrapClientTLS
from zope.interface import implementer

from ..net import join_host_port
from .tcp import frame, read_frames
from .tls import TLSSettings

__all__ = [
    "UpstreamAddress",
    "UpstreamError",
    "ConnectionClosed",
    "ProxyMetrics",
    "HealthCheck",
    "ConnectionPool",
    "Upstream",
    "send_probe",
    "query_once",
]

log = logging.getLogger("wayfinder.forward")

#: CoreDNS's hcReadTimeout/hcWriteTimeout: a health probe waits one second.
HEALTH_CHECK_TIMEOUT = 1.0
#: CoreDNS's minDialTimeout/maxDialTimeout: the TCP connect timeout adapts
#: between these to twice the running average of connect times.
MIN_DIAL_TIMEOUT = 1.0
MAX_DIAL_TIMEOUT = 30.0
#: How often idle connections are swept (CoreDNS's connManager ticker).
SWEEP_INTERVAL = 10.0
_MAX_UDP = 65535
#: The connection kinds a pool keeps apart, as CoreDNS labels them (`proto`).
_PROTOS = ("udp", "tcp", "tcp-tls")


class UpstreamError(Exception):
    """An upstream gave no usable answer: refused, timed out, closed, garbled."""


class ConnectionClosed(UpstreamError):
    """The upstream closed the TCP connection before answering."""


#: The transports a TO may name: plain DNS, and DNS over TLS.
DNS, TLS = "dns", "tls"
#: RFC 7858's port for DNS over TLS (CoreDNS's transport.TLSPort).
TLS_PORT = 853


@attrs.frozen
class UpstreamAddress:
    """An upstream's IP address, port and transport (the `to` label is `label`)."""

    host: str
    port: int = 53
    transport: str = DNS
    #: The TLS server name written with the address (``tls://IP%NAME``).
    server_name: str = ""

    @property
    def ipv6(self) -> bool:
        return ":" in self.host

    @property
    def label(self) -> str:
        """Go's net.JoinHostPort form, as CoreDNS labels `to`: "[::1]:53"."""
        return join_host_port(self.host, self.port)


@attrs.frozen
class HealthCheck:
    """How a down upstream is probed (the `health_check` option)."""

    interval: float = 0.5
    recursion_desired: bool = True
    domain: str = "."
    #: Probe over TCP (force_tcp), else UDP.
    tcp: bool = False


@attrs.frozen
class ProxyMetrics:
    """CoreDNS's coredns_proxy_* metrics, shared by every upstream of a registry."""

    request_duration: object
    healthcheck_failures: object
    conn_cache_hits: object
    conn_cache_misses: object


# --- channels: one query at a time over one socket -------------------------------


class _Channel:
    """A socket that carries one exchange at a time, as the pool hands it out.

    Subclasses send the wire (`_send`), close their socket (`_disconnect`)
    and pass each reply to `_received`;
    the wait for the reply with the query's ID ends with it, with the read
    timeout, or when the socket goes away.
    """

    proto: str

    def __init__(self, reactor, now: float):
        self.reactor = reactor
        self.created = self.used = now
        self.closed = False
        self._waiting: defer.Deferred | None = None
        self._qid = b""
        self._timer = None

    def exchange(self, wire: bytes, timeout: float) -> defer.Deferred:
        """Send a query; fires with the reply bearing its ID, or UpstreamError."""
        self._qid = wire[:2]
        self._waiting = defer.Deferred()
        self._timer = self.reactor.callLater(timeout, self._fail, UpstreamError("i/o timeout"))
        self._send(wire)
        return self._waiting

    def _send(self, wire: bytes) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Fail the exchange in flight, and close the socket once."""
        self._fail(UpstreamError("connection closed"))
        if not self.closed:
            self.closed = True
            self._disconnect()

    def _received(self, reply: bytes) -> None:
        # Short reads and answers to earlier (timed-out) queries are dropped,
        # as CoreDNS's lookupDNS does; the wait goes on.
        if self._waiting is None or len(reply) < 12 or reply[:2] != self._qid:
            return
        self._finish().callback(reply)

    def _fail(self, reason: Exception) -> None:
        if self._waiting is not None:
            self._finish().errback(reason)

    def _finish(self) -> defer.Deferred:
        waiting, self._waiting = self._waiting, None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return waiting


class _UDPChannel(_Channel, protocol.DatagramProtocol):
    """A connected UDP socket: only the upstream's datagrams reach it."""

    proto = "udp"

    def _send(self, wire: bytes) -> None:
        self.transport.write(wire)

    def datagramReceived(self, data, addr) -> None:
        self._received(data)

    def connectionRefused(self) -> None:
        # ICMP port unreachable from the upstream (RFC 1122 3.2.2.1).
        self._fail(UpstreamError("connection refused"))

    def stopProtocol(self) -> None:
        # The epoll reactor closes a connected UDP port on the socket error
        # an ICMP port unreachable raises, without connectionRefused.
        self.closed = True
        self._fail(UpstreamError("connection refused"))

    def _disconnect(self) -> None:
        self.transport.stopListening()


class _TCPChannel(_Channel, protocol.Protocol):
    """A TCP connection with RFC 1035 4.2.2 two-byte length framing."""

    proto = "tcp"

    def __init__(self, reactor, now: float, on_lost: Callable[["_TCPChannel"], None]):
        super().__init__(reactor, now)
        self._on_lost = on_lost
        self._buffer = b""

    def exchange(self, wire: bytes, timeout: float) -> defer.Deferred:
        if self.closed:
            return defer.fail(ConnectionClosed("connection closed by the upstream"))
        return super().exchange(wire, timeout)

    def _send(self, wire: bytes) -> None:
        self.transport.write(frame(wire))

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer + data
        offset = 0
        for message, offset in read_frames(buffer):
            self._received(message)
        self._buffer = buffer[offset:]

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        self._on_lost(self)
        self._fail(ConnectionClosed("connection closed by the upstream"))

    def _disconnect(self) -> None:
        self.transport.loseConnection()


@implementer(interfaces.IHandshakeListener)
class _TLSChannel(_TCPChannel):
    """A TCP channel inside TLS: usable once the handshake (and so the
    certificate check) has succeeded, which `handshake` reports."""

    proto = "tcp-tls"

    def __init__(self, reactor, now: float, on_lost: Callable[["_TCPChannel"], None]):
        super().__init__(reactor, now, on_lost)
        self.handshake = defer.Deferred()

    def handshakeCompleted(self) -> None:
        if not self.handshake.called:
            self.handshake.callback(None)

    def connectionLost(self, reason=None) -> None:
        if not self.handshake.called:
            message = reason.getErrorMessage() if reason is not None else "connection lost"
            self.handshake.errback(UpstreamError(f"TLS handshake failed: {message}"))
        super().connectionLost(reason)


def _open_udp(reactor, address: UpstreamAddress, source: str | None, now: float) -> _UDPChannel:
    channel = _UDPChannel(reactor, now)
    interface = source or ("::" if address.ipv6 else "")
    try:
        reactor.listenUDP(0, channel, interface=interface, maxPacketSize=_MAX_UDP)
        channel.transport.connect(address.host, address.port)
    except (error.CannotListenError, OSError, ValueError) as e:
        raise UpstreamError(f"cannot open a UDP socket to {address.label}: {e}") from e
    return channel


def _open_tcp(reactor, address: UpstreamAddress, source: str | None, timeout: float, channel,
              tls=None) -> defer.Deferred:
    """Connect channel (a _TLSChannel when tls, the client options, is given);
    fires once it can carry a query, within timeout, or with UpstreamError."""
    endpoint_type = TCP6ClientEndpoint if address.ipv6 else TCP4ClientEndpoint
    bind = (source, 0) if source else None
    endpoint = endpoint_type(reactor, address.host, address.port, timeout=timeout, bindAddress=bind)
    if tls is not None:
        endpoint = wrapClientTLS(tls, endpoint)
    d = connectProtocol(endpoint, channel)

    def failed(failure):
        raise UpstreamError(f"cannot connect to {address.label}: {failure.getErrorMessage()}")

    d.addErrback(failed)
    if tls is None:
        return d
    # The connect timeout covers the TCP handshake only; the TLS one gets the
    # same time again, after which the connection is dropped.
    timer = reactor.callLater(timeout, lambda: channel.transport and channel.transport.abortConnection())

    def handshake(_):
        return channel.handshake

    def done(result):
        if timer.active():
            timer.cancel()
        return result

    def failed_handshake(failure):
        failure.trap(UpstreamError)
        raise UpstreamError(f"{address.label}: {failure.getErrorMessage()}")

    return d.addCallback(handshake).addBoth(done).addErrback(failed_handshake)


def _new_stream_channel(reactor, now: float, on_lost, tls) -> _TCPChannel:
    return (_TLSChannel if tls is not None else _TCPChannel)(reactor, now, on_lost)


# --- the pool -------------------------------------------------------------------------


class ConnectionPool:
    """Idle connections to one upstream, reused oldest first (CoreDNS's Transport).

    A connection idle for longer than `expire` (or older than `max_age`, when
    set) is closed instead of reused; at most `max_idle` per protocol are kept
    (0: no limit).
    """

    def __init__(
        self,
        reactor,
        address: UpstreamAddress,
        metrics: ProxyMetrics,
        *,
        expire: float = 10.0,
        max_age: float = 0.0,
        max_idle: int = 0,
        source: str | None = None,
        proxy_name: str = "forward",
        tls=None,
    ):
        self.reactor = reactor
        self.address = address
        self.expire = expire
        self.max_age = max_age
        self.max_idle = max_idle
        self.source = source
        #: Client TLS options: every connection is DNS over TLS ("tcp-tls").
        self.tls = tls
        self._idle: dict[str, collections.deque] = {p: collections.deque() for p in _PROTOS}
        self._stopped = False
        self._sweeper: task.LoopingCall | None = None
        # Starts in the middle, as CoreDNS's avgDialTime does.
        self._average_dial = MAX_DIAL_TIMEOUT / 2
        label = address.label
        self._hits = {p: metrics.conn_cache_hits.labels(proxy_name, label, p) for p in _PROTOS}
        self._misses = {p: metrics.conn_cache_misses.labels(proxy_name, label, p) for p in _PROTOS}

    def start(self) -> None:
        self._stopped = False
        self._sweeper = task.LoopingCall(self.sweep)
        self._sweeper.clock = self.reactor
        self._sweeper.start(SWEEP_INTERVAL, now=False)

    def stop(self) -> None:
        self._stopped = True
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None
        for idle in self._idle.values():
            while idle:
                idle.popleft().close()

    def idle(self, proto: str) -> int:
        return len(self._idle[proto])

    def _stale(self, channel: _Channel, now: float) -> bool:
        if channel.closed or now - channel.used > self.expire:
            return True
        return self.max_age > 0 and now - channel.created > self.max_age

    def dial(self, proto: str) -> defer.Deferred:
        """A connection for one exchange: Deferred[(channel, reused)].

        A TLS upstream is always dialled over TLS, whatever proto asks
        (CoreDNS's Transport.Dial).
        """
        if self._stopped:
            return defer.fail(UpstreamError("proxy: transport stopped"))
        if self.tls is not None:
            proto = "tcp-tls"
        now = self.reactor.seconds()
        idle = self._idle[proto]
        while idle:
            channel = idle.popleft()
            if self._stale(channel, now):
                channel.close()
                continue
            self._hits[proto].inc()
            return defer.succeed((channel, True))
        self._misses[proto].inc()
        if proto == "udp":
            try:
                return defer.succeed((_open_udp(self.reactor, self.address, self.source, now), False))
            except UpstreamError as e:
                return defer.fail(e)
        timeout = self._dial_timeout()
        channel = _new_stream_channel(self.reactor, now, self._forget, self.tls)
        d = _open_tcp(self.reactor, self.address, self.source, timeout, channel, self.tls)

        def connected(_):
            self._average_dial += (self.reactor.seconds() - now - self._average_dial) / 4
            return (channel, False)

        return d.addCallback(connected)

    def _dial_timeout(self) -> float:
        # CoreDNS's limitTimeout: twice the running average, within bounds.
        if self._average_dial < MIN_DIAL_TIMEOUT:
            return MIN_DIAL_TIMEOUT
        if self._average_dial < MAX_DIAL_TIMEOUT / 2:
            return 2 * self._average_dial
        return MAX_DIAL_TIMEOUT

    def release(self, channel: _Channel) -> None:
        """Give a connection back after a complete exchange."""
        if self._stopped or channel.closed:
            channel.close()
            return
        channel.used = self.reactor.seconds()
        idle = self._idle[channel.proto]
        if self.max_idle and len(idle) >= self.max_idle:
            channel.close()
            return
        idle.append(channel)

    def _forget(self, channel: _Channel) -> None:
        idle = self._idle[channel.proto]
        if channel in idle:
            idle.remove(channel)

    def sweep(self) -> None:
        """Close the connections that have been idle too long."""
        now = self.reactor.seconds()
        for idle in self._idle.values():
            keep = [channel for channel in idle if not self._stale(channel, now)]
            for channel in idle:
                if channel not in keep:
                    channel.close()
            idle.clear()
            idle.extend(keep)


# --- health probes --------------------------------------------------------------------


def _probe_wire(check: HealthCheck) -> bytes:
    query = dns.message.make_query(check.domain, dns.rdatatype.NS, use_edns=False)
    query.id = secrets.randbits(16)
    if not check.recursion_desired:
        query.flags &= ~dns.flags.RD
    return query.to_wire()


@defer.inlineCallbacks
def query_once(reactor, address: UpstreamAddress, wire: bytes, timeout: float, *, tcp: bool = False,
               source: str | None = None, tls=None):
    """Send one query on a fresh socket; fire with the first reply's bytes.

    Over TLS when tls (client options) is given, else TCP or UDP. Raises
    UpstreamError on a timeout, a refused or a closed connection, a failed
    TLS handshake.
    """
    now = reactor.seconds()
    if tcp or tls is not None:
        channel = _new_stream_channel(reactor, now, lambda _: None, tls)
        yield _open_tcp(reactor, address, source, timeout, channel, tls)
    else:
        channel = _open_udp(reactor, address, source, now)
    try:
        reply = yield channel.exchange(wire, timeout)
    finally:
        channel.close()
    return reply


def send_probe(reactor, address: UpstreamAddress, check: HealthCheck, source: str | None = None,
               tls=None) -> defer.Deferred:
    """Send one health probe; fires on any reply, whatever its RCODE.

    CoreDNS's dnsHc.send: "if we got a header, we're alright"; a timeout, a
    refused connection or a failed TLS handshake is a failure (UpstreamError).
    A TLS upstream (tls: client options) is probed over TLS, never over
    plain TCP even with force_tcp.
    """
    return query_once(reactor, address, _probe_wire(check), HEALTH_CHECK_TIMEOUT, tcp=check.tcp, source=source,
                      tls=tls)


# --- one upstream -----------------------------------------------------------------------


class Upstream:
    """One upstream server: exchanges, its connection pool and its health.

    `probe` is the health probe, `(Upstream) -> Deferred[None]`; the default
    sends `. IN NS` as described above. Tests pass their own.
    """

    def __init__(
        self,
        reactor,
        address: UpstreamAddress,
        metrics: ProxyMetrics,
        *,
        health: HealthCheck = HealthCheck(),
        read_timeout: float = 2.0,
        expire: float = 10.0,
        max_age: float = 0.0,
        max_idle: int = 0,
        source: str | None = None,
        proxy_name: str = "forward",
        probe: Callable[["Upstream"], defer.Deferred] | None = None,
        tls: TLSSettings = TLSSettings(),
    ):
        self.reactor = reactor
        self.address = address
        self.health = health
        self.read_timeout = read_timeout
        self.source = source
        self.proxy_name = proxy_name
        client_tls = tls.client_options(address) if address.transport == TLS else None
        self.pool = ConnectionPool(
            reactor, address, metrics, expire=expire, max_age=max_age, max_idle=max_idle,
            source=source, proxy_name=proxy_name, tls=client_tls,
        )
        #: Consecutive failed health probes since the last good one.
        self.fails = 0
        self._metrics = metrics
        self._probe = probe or (lambda _: send_probe(reactor, address, health, source, client_tls))
        self._probing = False
        self._stopped = False
        self._next_probe = None
        self._failures = metrics.healthcheck_failures.labels(proxy_name, address.label)

    @property
    def label(self) -> str:
        return self.address.label

    def down(self, max_fails: int) -> bool:
        """Down: more failed probes than max_fails (never when max_fails is 0)."""
        return max_fails != 0 and self.fails > max_fails

    def start(self) -> None:
        self._stopped = False
        self.pool.start()

    def stop(self) -> None:
        self._stopped = True
        if self._next_probe is not None and self._next_probe.active():
            self._next_probe.cancel()
        self._next_probe = None
        self._probing = False
        self.pool.stop()

    # -- exchanges

    @defer.inlineCallbacks
    def exchange(self, query: dns.message.Message, proto: str):
        """Send query (any ID) and fire with the upstream's reply, a Message.

        The query goes out with a new random ID and otherwise as the client
        sent it (flags, EDNS); the reply keeps the upstream's ID. Raises
        UpstreamError.
        """
        wire = bytearray(query.to_wire())
        wire[:2] = struct.pack("!H", secrets.randbits(16))
        wire = bytes(wire)
        start = self.reactor.seconds()
        while True:
            channel, reused = yield self.pool.dial(proto)
            try:
                data = yield channel.exchange(wire, self.read_timeout)
            except ConnectionClosed:
                channel.close()
                if reused:
                    # The upstream closed an idle connection under us: dial
                    # again (CoreDNS's ErrCachedClosed).
                    continue
                raise
            except UpstreamError:
                channel.close()
                raise
            break
        reply = _parse_reply(data, query)
        self.pool.release(channel)
        self._metrics.request_duration.labels(self.proxy_name, self.label, _rcode_text(reply)).observe(
            self.reactor.seconds() - start
        )
        return reply

    # -- health

    def healthcheck(self) -> None:
        """Start probing until a probe succeeds, unless probing already."""
        if self._probing or self._stopped:
            return
        self._probing = True
        self._probe_once()

    def _probe_once(self) -> None:
        self._next_probe = None
        if self._stopped:
            return
        d = defer.maybeDeferred(self._probe, self)
        d.addCallbacks(self._probe_succeeded, self._probe_failed)

    def _probe_succeeded(self, _) -> None:
        if self.fails:
            log.info("upstream %s answers health checks again", self.label)
        self.fails = 0
        self._probing = False

    def _probe_failed(self, failure) -> None:
        if self._stopped:
            return
        self._failures.inc()
        self.fails += 1
        log.debug("health check of upstream %s failed: %s", self.label, failure.getErrorMessage())
        self._next_probe = self.reactor.callLater(self.health.interval, self._probe_once)


def _parse_reply(data: bytes, query: dns.message.Message) -> dns.message.Message:
    try:
        return dns.message.from_wire(data, ignore_trailing=True)
    except dns.exception.DNSException as e:
        (flags,) = struct.unpack("!H", data[2:4])
        if flags & dns.flags.TC:
            # A truncated reply cut mid-record: what counts is the TC bit, so
            # hand back an empty truncated reply (CoreDNS's truncateResponse).
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.TC
            reply.id = struct.unpack("!H", data[:2])[0]
            return reply
        raise UpstreamError(f"unreadable reply: {e}") from e


def _rcode_text(message: dns.message.Message) -> str:
    return dns.rcode.to_text(message.rcode())

