"""A live Wayfinder for the operator's tests: `python -m discovery` as a child process, and clients to talk to it.

- `WayfinderProcess` spawns the real command line and keeps its log lines;
  a test waits for a line (an event, never a sleep) and reads the ports a
  Corefile with port 0 got from the lines that announce them.
- `ask` sends one DNS query over UDP; `QueryStream` sends queries at a
  fixed rate and counts what comes back, for the reload test and
  tests/bench/bench_reload.py.
- `http_get` and `scrape` are a real HTTP client and a Prometheus text
  parser for /health, /ready and /metrics.

Everything runs on the test's reactor and returns Deferreds with deadlines.
"""

from __future__ import annotations

import collections
import os
import pathlib
import re
import socket
import struct
import sys
from typing import Callable, Iterable, Sequence

import dns.message
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, error, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss

__all__ = ["ROOT", "WayfinderProcess", "ask", "QueryStream", "http_get", "Scrape", "scrape", "poll_until"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Bytes of replies the stream's socket may hold unread (the kernel caps it at net.core.rmem_max).
CLIENT_RECEIVE_BUFFER = 4 * 1024 * 1024
_DNS_PORT_LINE = re.compile(r"listening on \S+ port (\d+) \(udp, tcp\)")
_HTTP_PORT_LINE = re.compile(r"HTTP endpoints .* on \S+:(\d+)$")


class WayfinderProcess(protocol.ProcessProtocol):
    """`python -m discovery` as a child process; its standard output and error, line by line."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.lines: list[str] = []
        #: Fires with the exit code (a negative signal number if killed by one).
        self.ended: defer.Deferred = defer.Deferred()
        self._buffer = b""
        self._waiters: list[tuple[re.Pattern, int, defer.Deferred]] = []

    @classmethod
    def spawn(
        cls,
        reactor,
        corefile: os.PathLike | str,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> "WayfinderProcess":
        """Start `[prefix...] python -m discovery -conf COREFILE [args...]` in the repository root."""
        process = cls(reactor)
        argv = [*prefix, sys.executable, "-m", "discovery", "-conf", os.fspath(corefile), *args]
        environment = dict(os.environ if env is None else env)
        environment["PYTHONUNBUFFERED"] = "1"
        reactor.spawnProcess(process, argv[0], argv, env=environment, path=os.fspath(ROOT))
        return process

    # -- output

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            self.lines.append(raw.decode(errors="replace"))
        self._wake()

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        if self._buffer:
            self.lines.append(self._buffer.decode(errors="replace"))
            self._buffer = b""
            self._wake()
        value = reason.value
        code = value.exitCode if value.exitCode is not None else -(value.signal or 0)
        waiting, self._waiters = self._waiters, []
        for pattern, _, d in waiting:
            d.errback(AssertionError(f"wayfinder exited ({code}) before logging {pattern.pattern!r}:\n{self.log}"))
        self.ended.callback(code)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 20.0) -> defer.Deferred:
        """Fires with the match of the first line from index `after` on that matches pattern (a regex)."""
        compiled = re.compile(pattern)
        d = defer.Deferred()
        self._waiters.append((compiled, after, d))
        self._wake()
        if self.ended.called and not d.called:
            d.errback(AssertionError(f"wayfinder has exited; it never logged {pattern!r}:\n{self.log}"))

        def timed_out(failure):
            failure.trap(defer.TimeoutError)
            raise AssertionError(f"no line matched {pattern!r} within {timeout}s:\n{self.log}")

        return d.addTimeout(timeout, self.reactor).addErrback(timed_out)

    def _wake(self) -> None:
        still = []
        for pattern, after, d in self._waiters:
            if d.called:
                continue
            match = next((m for m in map(pattern.search, self.lines[after:]) if m), None)
            if match is None:
                still.append((pattern, after, d))
            else:
                d.callback(match)
        self._waiters = still

    # -- what the log announces

    @property
    def dns_port(self) -> int:
        """The DNS port of the first server that announced it (for `.:0` Corefiles)."""
        return self._announced(_DNS_PORT_LINE)

    @property
    def http_port(self) -> int:
        """The port of the first HTTP endpoints listener (health, ready, metrics on `127.0.0.1:0`)."""
        return self._announced(_HTTP_PORT_LINE)

    def _announced(self, pattern: re.Pattern) -> int:
        for line in self.lines:
            match = pattern.search(line)
            if match:
                return int(match.group(1))
        raise AssertionError(f"no line matches {pattern.pattern!r}:\n{self.log}")

    # -- control

    def signal(self, name: str) -> None:
        self.transport.signalProcess(name)

    def kill(self) -> defer.Deferred:
        """SIGKILL unless it has ended; fires once it has."""
        if not self.ended.called:
            try:
                self.transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass
        return self.ended


# --- DNS ------------------------------------------------------------------------------------


class _Replies(protocol.DatagramProtocol):
    def __init__(self, received: Callable[[bytes], None]):
        self.received = received

    def datagramReceived(self, data: bytes, addr) -> None:
        self.received(data)


def _client_interface(host: str) -> str:
    return "::1" if ":" in host else "127.0.0.1"


def ask(reactor, server: tuple[str, int], name: str, rdtype: str = "A", *, rdclass: str = "IN",
        timeout: float = 3.0) -> defer.Deferred:
    """One UDP query from a fresh socket; fires with the reply Message (TimeoutError if none)."""
    query = dns.message.make_query(name, rdtype, rdclass)
    d = defer.Deferred()

    def received(data: bytes) -> None:
        reply = dns.message.from_wire(data)
        if reply.id == query.id and not d.called:
            d.callback(reply)

    port = reactor.listenUDP(0, _Replies(received), interface=_client_interface(server[0]))
    port.write(query.to_wire(), server)

    def close(result):
        port.stopListening()
        return result

    return d.addTimeout(timeout, reactor).addBoth(close)


class QueryStream(protocol.DatagramProtocol):
    """UDP queries at a fixed rate from one socket, each answered or, after `timeout`, lost.

    The questions are asked in turn. `stop()` ends the sending and fires
    once every query sent has been answered or lost. `on_reply` (optional)
    gets each reply as a Message.
    """

    def __init__(
        self,
        reactor,
        server: tuple[str, int],
        questions: Iterable[tuple[str, str]],
        *,
        rate: float,
        timeout: float = 2.0,
        on_reply: Callable[[dns.message.Message], None] | None = None,
    ):
        self.reactor = reactor
        self.server = server
        self.rate = rate
        self.timeout = timeout
        self.on_reply = on_reply
        # The wire of each question, its ID patched per query.
        self._wires = [dns.message.make_query(name, rdtype).to_wire() for name, rdtype in questions]
        self.sent = 0
        self.answered = 0
        self.lost = 0
        #: Replies by RCODE number.
        self.rcodes: collections.Counter = collections.Counter()
        self._outstanding: dict[bytes, object] = {}
        self._loop: task.LoopingCall | None = None
        self._port = None
        self._drained: defer.Deferred | None = None

    def start(self) -> "QueryStream":
        self._port = self.reactor.listenUDP(0, self, interface=_client_interface(self.server[0]))
        # Room for a burst of replies, so that what is lost is lost by the server, not here.
        self._port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RECEIVE_BUFFER)
        # withCount: the intervals a busy reactor skipped are made up, so the rate holds.
        self._loop = task.LoopingCall.withCount(self._send)
        self._loop.clock = self.reactor
        self._loop.start(1.0 / self.rate, now=True)
        return self

    def _send(self, count: int) -> None:
        for _ in range(count):
            wire = self._wires[self.sent % len(self._wires)]
            query_id = struct.pack("!H", self.sent % 65536)
            self.sent += 1
            self._outstanding[query_id] = self.reactor.callLater(self.timeout, self._expire, query_id)
            self.transport.write(query_id + wire[2:], self.server)

    def datagramReceived(self, data: bytes, addr) -> None:
        timer = self._outstanding.pop(data[:2], None)
        if timer is None:
            return
        timer.cancel()
        self.answered += 1
        self.rcodes[data[3] & 0x0F] += 1
        if self.on_reply is not None:
            self.on_reply(dns.message.from_wire(data))
        self._check_drained()

    def _expire(self, query_id: bytes) -> None:
        del self._outstanding[query_id]
        self.lost += 1
        self._check_drained()

    def stop(self) -> defer.Deferred:
        """Stop sending; fires with this stream once nothing is outstanding."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._drained = defer.Deferred()
        self._check_drained()
        return self._drained

    def _check_drained(self) -> None:
        if self._drained is not None and not self._outstanding and not self._drained.called:
            self._port.stopListening()
            self._drained.callback(self)


# --- HTTP and metrics ---------------------------------------------------------------------------


class _Direct:
    """Connects to the URL's IP address itself: no name resolution, and the socket is made
    at once, in the calling thread's network namespace (tests/integration/test_kubeadm.py)."""

    def __init__(self, reactor):
        self.reactor = reactor

    def endpointForURI(self, uri):
        host = uri.host.decode()
        endpoint = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
        return endpoint(self.reactor, host, uri.port)


class _Body(protocol.Protocol):
    """Collects a response body (twisted's readBody warns about the transports of short bodies)."""

    def __init__(self, code: int, done: defer.Deferred):
        self.code = code
        self.done = done
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback((self.code, b"".join(self.chunks).decode()))
        else:
            self.done.errback(reason)


def _read(response) -> defer.Deferred:
    done = defer.Deferred()
    response.deliverBody(_Body(response.code, done))
    return done


def http_get(reactor, url: str, *, timeout: float = 5.0) -> defer.Deferred:
    """GET url (an IP address URL) with a real HTTP client; fires with (status code, body text)."""
    d = Agent.usingEndpointFactory(reactor, _Direct(reactor)).request(b"GET", url.encode())
    return d.addCallback(_read).addTimeout(timeout, reactor)


class Scrape:
    """One /metrics scrape, parsed: sample values by name and labels."""

    def __init__(self, text: str):
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of that name whose labels include these (0 when none)."""
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )

    def labels(self, name: str) -> list[dict[str, str]]:
        return [sample_labels for sample_name, sample_labels, _ in self.samples if sample_name == name]


@defer.inlineCallbacks
def scrape(reactor, url: str):
    code, body = yield http_get(reactor, url)
    assert code == 200, f"GET {url}: {code} {body}"
    return Scrape(body)


@defer.inlineCallbacks
def poll_until(reactor, probe: Callable[[], defer.Deferred], done: Callable[[object], bool], *,
               timeout: float = 20.0, interval: float = 0.05):
    """Call probe every `interval` until done(its result); fires with that result, or fails after `timeout`.

    A probe that fails (connection refused while starting up) counts as not done.
    """
    deadline = reactor.seconds() + timeout
    last = None
    while True:
        try:
            last = yield probe()
        except Exception as failure:  # refused while starting up, say: not yet
            last = failure
        else:
            if done(last):
                return last
        if reactor.seconds() >= deadline:
            raise AssertionError(f"not done within {timeout}s; last result: {last!r}")
        yield task.deferLater(reactor, interval, lambda: None)
