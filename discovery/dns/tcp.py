"""DNS over TCP: length-prefixed messages (RFC 1035 4.2.2) with deadlines, not idle timers.

An idle timer restarted by every byte lets a client hold a connection
forever with one byte every few seconds. So, as CoreDNS's DNS library sets a
read deadline per message, each message has a deadline: the first message
of a connection must be complete `read` seconds after the connection
opened, and any later one `read` seconds after its first byte; a
connection with no message in progress is closed `idle` seconds after its
last answer (or its last message, while answers are pending); an answer
the client does not take (the socket's send buffer stays full, so Twisted
pauses this producer) for `write` seconds aborts it; after
`max_tcp_queries` queries (unless -1) it is closed once the answers are
sent. While the client does not take its answers, no more of its queries
are read, so a client pipelining without reading cannot make the server
buffer answers without bound.
"""

from __future__ import annotations

import struct
from typing import Iterator

from twisted.internet import protocol, task
from zope.interface import implementer
from twisted.internet.interfaces import IPushProducer

from ..ops.connections import ConnectionGuard
from .timeouts import TimeoutsConfig

__all__ = ["TCPProtocol", "TCPFactory", "frame", "read_frames"]


def frame(wire: bytes) -> bytes:
    """A message with its two-byte length in front (RFC 1035 4.2.2)."""
    return struct.pack("!H", len(wire)) + wire


def read_frames(buffer: bytes) -> Iterator[tuple[bytes, int]]:
    """Each complete framed message in buffer, with the offset just past it.

    Read by offset, so that a segment carrying many pipelined messages costs
    linear time; what follows the last offset is the start of the next one.
    """
    offset, size = 0, len(buffer)
    while size - offset >= 2:
        end = offset + 2 + (buffer[offset] << 8 | buffer[offset + 1])
        if end > size:
            return
        yield buffer[offset + 2 : end], end
        offset = end


@implementer(IPushProducer)
class TCPProtocol(protocol.Protocol):
    """One client's connection: frames in, answers out, each under its deadline."""

    def __init__(self, server, guard: ConnectionGuard):
        self.server = server
        self.guard = guard
        self.timeouts: TimeoutsConfig = server.tcp_timeouts
        self.buffer = b""
        self.timer = None
        self.reason = ""
        self.pending = 0
        self.queries = 0
        self.closing = False
        self.write_timer = None
        self.paused = False
        #: The cooperative task writing a Stream (a zone transfer), or None;
        #: `streaming` chains a second Stream after the first.
        self.stream_task = None
        self.streaming = None

    # -- connection ---------------------------------------------------------------

    def connectionMade(self) -> None:
        self.server._tcp_connections.add(self)
        self.peer = self.transport.getPeer()
        self.transport.registerProducer(self, True)
        self._deadline(self.timeouts.read, "read")

    def connectionLost(self, reason=None) -> None:
        self.server._tcp_connections.discard(self)
        self.guard.release()
        for timer in (self.timer, self.write_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.timer = self.write_timer = None
        self.stopProducing()

    def _deadline(self, seconds: float, reason: str) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.reason = reason
        self.timer = self.server.reactor.callLater(seconds, self._expired)

    def _expired(self) -> None:
        self.guard.closed_at_deadline(self.server.label, self.reason)
        # A FIN, as Go's Close: answers already written still go out.
        self.transport.loseConnection()

    # -- IPushProducer: the transport's send buffer --------------------------------

    def pauseProducing(self) -> None:
        # The client is not taking its answers: read no more of its queries,
        # and give it `write` seconds.
        self.transport.pauseProducing()
        self.paused = True
        _each(self.stream_task, "pause")
        if self.write_timer is None or not self.write_timer.active():
            self.write_timer = self.server.reactor.callLater(self.timeouts.write, self._write_expired)

    def resumeProducing(self) -> None:
        if self.write_timer is not None and self.write_timer.active():
            self.write_timer.cancel()
        self.write_timer = None
        self.paused = False
        _each(self.stream_task, "resume")
        if not self.closing:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        _each(self.stream_task, "stop")
        self.stream_task = None

    # -- Streams: several messages for one query -------------------------------------

    def attach(self, work: task.CooperativeTask) -> None:
        """Write a Stream with work, paused while the client does not take answers."""
        self.stream_task = work
        if self.paused:
            _each(work, "pause")

    def detach(self) -> None:
        self.stream_task = None
        self._maybe_close()

    def _write_expired(self) -> None:
        self.guard.closed_at_deadline(self.server.label, "write")
        # What is buffered will never be taken: drop it.
        self.transport.abortConnection()

    # -- messages --------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        started_message = not self.buffer
        buffer = self.buffer + data if self.buffer else data
        offset = 0
        limit = self.timeouts.max_tcp_queries
        answered = False
        for message, offset in read_frames(buffer):
            self.queries += 1
            self.pending += 1
            answered = True
            self._answer(message)
            if limit != -1 and self.queries >= limit:
                # As CoreDNS: no more queries read; closed once answered.
                self.closing = True
                self.transport.pauseProducing()
                self.buffer = b""
                # An answer that never comes (a dropped query) still ends it.
                self._deadline(self.timeouts.idle, "idle")
                self._maybe_close()
                return
        self.buffer = buffer[offset:]
        if self.buffer:
            if answered or (started_message and self.queries):
                # A new message began: it has `read` seconds from its first
                # byte (the first of a connection, from the connection's start).
                self._deadline(self.timeouts.read, "read")
        elif answered:
            self._deadline(self.timeouts.idle, "idle")

    def _maybe_close(self) -> None:
        if self.closing and not self.pending and self.stream_task is None:
            self.transport.loseConnection()

    def _send(self, wire: bytes) -> None:
        self.pending = max(self.pending - 1, 0)
        transport = self.transport
        if transport is not None and transport.connected:
            transport.write(frame(wire))
            if self.closing:
                self._maybe_close()
            elif not self.buffer:
                # Idle from the last answer, as CoreDNS reads the next
                # message once it has answered.
                self._deadline(self.timeouts.idle, "idle")

    def _answer(self, message: bytes) -> None:
        server = self.server
        started = server.reactor.seconds()
        hit = server.fast_answer(message, False, started, self.peer.host)
        if hit is not None:
            wire, entry, qend, dnssec_ok = hit
            self._send(wire)
            server.record_fast(entry, "tcp", (self.peer.host, self.peer.port), message, wire, qend, dnssec_ok, started)
            return
        server.answer(message, (self.peer.host, self.peer.port), "tcp", self._send, self)


def _each(work: task.CooperativeTask | None, action: str) -> None:
    """Pause, resume or stop a Stream's task, which may have just finished."""
    if work is None:
        return
    try:
        getattr(work, action)()
    except (task.TaskDone, task.TaskFinished, task.TaskStopped):
        pass


class TCPFactory(protocol.ServerFactory):
    """Builds a TCPProtocol per connection while the server's cap and the process's budget allow."""

    def __init__(self, server, guard: ConnectionGuard):
        self.server = server
        self.guard = guard

    def buildProtocol(self, addr):
        server = self.server
        if not self.guard.admit(server.label, len(server._tcp_connections), server.tcp_timeouts.max_tcp_connections):
            # Twisted closes the accepted socket at once.
            return None
        return TCPProtocol(server, self.guard)
