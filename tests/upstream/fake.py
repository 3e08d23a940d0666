"""A scripted DNS server on 127.0.0.1: UDP and TCP (or DNS over TLS) on one port.

The handler gets each query (a Message) and the protocol ("udp"/"tcp") and
returns a Message to send, raw bytes to send, or None to stay silent.
Every query received is recorded, and `wait_for(n)` fires once n have come.
"""

from __future__ import annotations

import struct
from typing import Callable

import dns.message
from twisted.internet import defer, error, protocol

from discovery.dns.upstream import UpstreamAddress

Handler = Callable[[dns.message.Message, str], "dns.message.Message | bytes | None"]


class _UDP(protocol.DatagramProtocol):
    def __init__(self, server: "FakeUpstream"):
        self.server = server

    def datagramReceived(self, data, addr):
        reply = self.server._handle(data, "udp")
        if reply is not None:
            self.transport.write(reply, addr)


class _TCP(protocol.Protocol):
    def __init__(self, server: "FakeUpstream"):
        self.server = server
        self.buffer = b""

    def dataReceived(self, data):
        self.buffer += data
        while len(self.buffer) >= 2:
            (length,) = struct.unpack("!H", self.buffer[:2])
            if len(self.buffer) < 2 + length:
                return
            frame, self.buffer = self.buffer[2 : 2 + length], self.buffer[2 + length :]
            reply = self.server._handle(frame, "tcp")
            if reply is not None:
                self.transport.write(struct.pack("!H", len(reply)) + reply)
            if self.server.close_tcp_after_reply:
                self.transport.loseConnection()


class FakeUpstream:
    def __init__(self, reactor, handler: Handler):
        self.reactor = reactor
        self.handler = handler
        #: (proto, query) for every query received, in order.
        self.received: list[tuple[str, dns.message.Message]] = []
        self._waiters: list[tuple[int, defer.Deferred]] = []
        self._ports = []
        self.tls = False
        #: Hang up every TCP connection after one reply.
        self.close_tcp_after_reply = False

    def start(self, tls=None) -> "FakeUpstream":
        """Listen; with tls (Twisted server TLS options) the stream port speaks DNS over TLS."""
        factory = protocol.Factory.forProtocol(lambda: _TCP(self))
        self.tls = tls is not None
        for _ in range(20):
            udp = self.reactor.listenUDP(0, _UDP(self), interface="127.0.0.1")
            port = udp.getHost().port
            try:
                if tls is None:
                    tcp = self.reactor.listenTCP(port, factory, interface="127.0.0.1")
                else:
                    tcp = self.reactor.listenSSL(port, factory, tls, interface="127.0.0.1")
            except error.CannotListenError:
                udp.stopListening()
                continue
            self._ports = [udp, tcp]
            self.port = port
            return self
        raise RuntimeError("no port free for both UDP and TCP")

    def stop(self) -> defer.Deferred:
        ports, self._ports = self._ports, []
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])

    @property
    def address(self) -> UpstreamAddress:
        return UpstreamAddress("127.0.0.1", self.port, "tls" if self.tls else "dns")

    def wait_for(self, count: int, timeout: float = 5.0) -> defer.Deferred:
        """Fires once `count` queries have arrived."""
        d = defer.Deferred()
        if len(self.received) >= count:
            d.callback(self.received)
        else:
            self._waiters.append((count, d))
        return d.addTimeout(timeout, self.reactor)

    def _handle(self, data: bytes, proto: str) -> bytes | None:
        query = dns.message.from_wire(data)
        self.received.append((proto, query))
        for count, d in list(self._waiters):
            if len(self.received) >= count:
                self._waiters.remove((count, d))
                d.callback(self.received)
        reply = self.handler(query, proto)
        if isinstance(reply, dns.message.Message):
            return reply.to_wire()
        return reply
