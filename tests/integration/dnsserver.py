"""Shared helpers for the DNS server's end-to-end tests: a real server, real clients.

In process: the `dns_server` fixture starts an `Application` from Corefile
text in the test's reactor (blocks on port 0, bound to 127.0.0.1), waits
until every cache has synced, and stops it in its cleanup. Tests query it
with dnspython in a worker thread, so that the reactor the server runs in
keeps turning while the client waits.

Out of process: `CLIProcess` runs ``python -m discovery`` as a user would,
collects its log lines as they come, and learns the port it bound from its
"listening on" line; `answers()` asks until it answers or a deadline passes.

Every wait has a deadline, so that a failure cannot hang the suite.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import attrs
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from discovery.app import Application
from discovery.cache.store import Change, Store
from discovery.config import load
from discovery.dns.server import DNSServer

__all__ = [
    "REPO",
    "EXAMPLES",
    "TIMEOUT",
    "until",
    "RunningServer",
    "dns_server",
    "within",
    "eventually",
    "store_settles",
    "addresses",
    "rdata_texts",
    "exchange_raw",
    "read_frame",
    "ipv6_loopback",
    "free_port",
    "cli_environment",
    "run_cli",
    "CLIProcess",
]

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
#: Seconds any wait may last before the test fails.
TIMEOUT = 10.0


def within(d: defer.Deferred, seconds: float = TIMEOUT) -> defer.Deferred:
    """d, failing with TimeoutError after seconds."""
    return d.addTimeout(seconds, reactor)


def until(store, predicate: Callable[[Any], bool], seconds: float = TIMEOUT) -> defer.Deferred:
    """Fires once predicate(store) holds, now or after some change; TimeoutError after seconds.

    It fires on the reactor's next turn, not inside the Store's change
    notification, so that whatever the writer does in that turn (a reload
    writes all its changes in one) is done.
    """
    d = defer.Deferred()

    def fire():
        if not d.called:
            d.callback(None)

    def check(change=None):
        if not d.called and predicate(store):
            reactor.callLater(0, fire)

    unsubscribe = store.subscribe(check)
    d.addBoth(lambda result: (unsubscribe(), result)[1])
    check()
    return within(d, seconds)


async def eventually(check: Callable[[], bool], seconds: float = TIMEOUT, interval: float = 0.01) -> None:
    """Wait, turning the reactor, until check() holds; AssertionError after seconds."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {seconds} seconds: {check}")
        await task.deferLater(reactor, interval, lambda: None)


def store_settles(store: Store, predicate: Callable[[Store], bool]) -> defer.Deferred:
    """Fires once predicate(store) holds, on the reactor turn after the change that made it so.

    Sources write a batch of changes in one reactor turn; resuming on the
    next one means every subscriber (the answer tables) has seen them all.
    """
    d = defer.Deferred()

    def fire() -> None:
        if not d.called:
            d.callback(None)

    def check(change: Change | None = None) -> None:
        if not d.called and predicate(store):
            reactor.callLater(0, fire)

    unsubscribe = store.subscribe(check)
    d.addBoth(lambda result: (unsubscribe(), result)[1])
    check()
    return within(d)


def addresses(response: dns.message.Message) -> list[str]:
    """The A and AAAA data of the answer section, sorted."""
    return sorted(
        rdata.to_text()
        for rrset in response.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for rdata in rrset
    )


def rdata_texts(response: dns.message.Message, rdtype, section: str = "answer") -> list[str]:
    """The data of every record of that type in a section, as text, sorted."""
    rdtype = dns.rdatatype.RdataType.make(rdtype)
    return sorted(
        rdata.to_text() for rrset in getattr(response, section) if rrset.rdtype == rdtype for rdata in rrset
    )


@attrs.define(eq=False)
class RunningServer:
    """An Application serving from a Corefile on 127.0.0.1, and ways to ask it."""

    app: Application
    host: str = "127.0.0.1"

    @property
    def dns(self) -> DNSServer:
        (server,) = self.app.servers.values()
        return server

    @property
    def port(self) -> int:
        return self.dns.port

    @property
    def store(self) -> Store:
        (cache,) = self.app.caches.values()
        return cache.store

    def send(self, query: dns.message.Message, proto: str = "udp", *, host: str | None = None,
             port: int | None = None) -> defer.Deferred:
        """Fires with the response to query, sent with dnspython over proto ("udp" or "tcp").

        Over UDP, a truncated response is returned as it came.
        """
        exchange = dns.query.udp if proto == "udp" else dns.query.tcp
        return within(threads.deferToThread(
            exchange, query, host or self.host, timeout=TIMEOUT, port=port if port is not None else self.port,
        ))

    def query(self, qname: str, rdtype="A", proto: str = "udp", **make_query) -> defer.Deferred:
        """Fires with the response to a query made by dns.message.make_query(qname, rdtype, **make_query)."""
        return self.send(dns.message.make_query(qname, rdtype, **make_query), proto)

    def raw(self, packet: bytes, proto: str = "udp") -> defer.Deferred:
        """Fires with the server's replies to raw bytes (see `exchange_raw`)."""
        return within(threads.deferToThread(exchange_raw, packet, self.host, self.port, proto))


_probes = itertools.count(1)


def _probe() -> tuple[int, bytes, dns.name.Name]:
    """A query no fuzzed or hand-made packet asks: a name of its own under .invalid (RFC 6761)."""
    number = next(_probes)
    name = dns.name.from_text(f"probe-{number}.exchange-raw.invalid.")
    query = dns.message.make_query(name, "A", id=number & 0xFFFF)
    return query.id, query.to_wire(), name


def _is_probe_reply(wire: bytes, probe_id: int, probe_name: dns.name.Name) -> bool:
    try:
        reply = dns.message.from_wire(wire)
    except Exception:
        return False
    return reply.id == probe_id and bool(reply.question) and reply.question[0].name == probe_name


def exchange_raw(packet: bytes, host: str, port: int, proto: str = "udp", timeout: float = TIMEOUT) -> list[bytes]:
    """Send raw bytes, then a probe query; return every reply that came before the probe's.

    The server answers a socket's packets in order, so the replies before
    the probe's belong to the packet: an empty list means it was dropped,
    with no waiting for a reply that never comes. Blocking: call it in a thread.
    """
    probe_id, probe, probe_name = _probe()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    replies: list[bytes] = []
    if proto == "udp":
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            sock.send(packet)
            sock.send(probe)
            while True:
                wire = sock.recv(65535)
                if _is_probe_reply(wire, probe_id, probe_name):
                    return replies
                replies.append(wire)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("!H", len(packet)) + packet + struct.pack("!H", len(probe)) + probe)
        while True:
            wire = read_frame(sock)
            if _is_probe_reply(wire, probe_id, probe_name):
                return replies
            replies.append(wire)


def read_frame(sock: socket.socket) -> bytes:
    """One length-prefixed DNS message from a TCP socket (RFC 1035 section 4.2.2)."""
    (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    return _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def ipv6_loopback() -> bool:
    """Can a socket bind ::1 here?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port() -> int:
    """A port that was free for both UDP and TCP on 127.0.0.1 a moment ago."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@pytest_twisted.async_yield_fixture
async def dns_server(tmp_path):
    """start(corefile_text) -> RunningServer, synced; every one started is stopped after the test.

    The Corefile is written to the test's tmp_path, so relative paths in it
    (manifests folders, hosts files) are relative to that folder.
    """
    started: list[Application] = []

    async def start(corefile: str, *, synced: bool = True) -> RunningServer:
        path = tmp_path / "Corefile"
        path.write_text(corefile)
        app = Application(load(str(path)), reactor)
        app.start()
        started.append(app)
        if synced:
            await within(defer.gatherResults([cache.source.synced for cache in app.caches.values()]))
        return RunningServer(app)

    yield start
    for app in started:
        await within(app.shutdown(lameduck=False))


def cli_environment() -> dict[str, str]:
    """This process's environment, with the repository importable from any working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_cli(*args: str, cwd: pathlib.Path | str = REPO) -> subprocess.CompletedProcess:
    """Run `python -m discovery ARGS` to its exit; its status and output (stdout and stderr together)."""
    return subprocess.run(
        [sys.executable, "-m", "discovery", *args], cwd=cwd, env=cli_environment(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT,
    )


class CLIProcess:
    """`python -m discovery ARGS` in a process of its own; its output collected line by line."""

    def __init__(self, args: list[str], cwd: pathlib.Path | str = REPO, *, preexec_fn: Callable | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "discovery", *args],
            cwd=cwd, env=cli_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn,
        )
        self.lines: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._arrived:
                self.lines.append(line.rstrip("\n"))
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    @property
    def output(self) -> str:
        with self._arrived:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """How many lines it has printed so far: `since` for wait_for_line."""
        with self._arrived:
            return len(self.lines)

    def wait_for_line(self, pattern: str, seconds: float = TIMEOUT, since: int = 0) -> re.Match:
        """The first output line (from line `since` on) matching pattern, once it has been printed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        with self._arrived:
            while True:
                for line in self.lines[since:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))
                self._arrived.wait(min(left, 0.1))

    def port(self) -> int:
        """The DNS port it bound, from its "listening on ... port N" line."""
        return int(self.wait_for_line(r"listening on .* port (\d+)").group(1))

    def answers(self, port: int, qname: str = "dns-version.cluster.local.", rdtype: str = "TXT",
                host: str = "127.0.0.1", seconds: float = TIMEOUT) -> dns.message.Message:
        """Ask until it answers (over UDP) other than SERVFAIL; the response.

        SERVFAIL is what a cluster zone answers until its cache has synced
        (the caches load in worker threads while the server already listens).
        """
        deadline = time.monotonic() + seconds
        query = dns.message.make_query(qname, rdtype)
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"exited with {self.process.returncode}:\n{self.output}")
            try:
                response = dns.query.udp(query, host, port=port, timeout=0.2)
            except (dns.exception.Timeout, ConnectionRefusedError):
                response = None
            if response is not None and (response.rcode() != dns.rcode.SERVFAIL or time.monotonic() > deadline):
                return response
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer on {host}:{port} after {seconds} seconds:\n{self.output}")
            if response is not None:
                time.sleep(0.05)

    def wait(self, seconds: float = TIMEOUT) -> int:
        """Its exit status, once it has exited by itself."""
        status = self.process.wait(seconds)
        self._reader.join(seconds)
        return status

    def stop(self, seconds: float = TIMEOUT) -> int:
        """SIGTERM, as a kubelet stops a container; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.wait(seconds)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "CLIProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
