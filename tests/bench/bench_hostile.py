"""Figures for issue 15: the DNS outage each hostile input causes, at the issue's full sizes.

    python -m tests.bench.bench_hostile [--rows pipe,bomb8,...] [--rate 1000]

For each row of the issue's table, `python -m discovery` serves a small
manifests folder on 127.0.0.1 (plus the webhook with `tls auto`), a probe
thread sends A queries over UDP at a steady rate (1,000 q/s) and records
when each reply arrives, and the row's input is applied. Printed per row:
the outage (the longest gap between two replies while the input was
applied, which is 1 ms at 1,000 q/s when nothing stalls), queries lost,
the server's peak RSS (VmHWM), and the row's own check (a new file applied,
slow connections still open, /health answering...). Targets: 0 s of outage
beyond the probe's interval, RSS bounded. It asserts nothing.

Rows (names for --rows):

- big: a 100 MB YAML file dropped in the folder (default limits: skipped);
- services: 100,000 Services in one file, with max_file_size and
  max_file_objects raised to admit it, then an edit to another file;
- pipe: a named pipe pipe.yaml in the folder;
- bomb8, bomb9: a manifest whose metadata.name is an alias expanding to
  10^8 (10^9) nodes;
- loop: a symbolic link loop, then a new file;
- tcpdrip: 500 TCP DNS connections sending one byte every 2 s;
- webhookdrip: 200 webhook connections sending their body at 1 byte/s;
- fds: about 1,010 slow connections to the DNS and webhook ports, the
  process started with soft and hard RLIMIT_NOFILE 1024 (so raising the
  soft limit cannot help: the budget and the reserve must).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import resource
import socket
import ssl
import struct
import tempfile
import threading
import time
import urllib.request

import dns.message

from tests.integration.dnsserver import CLIProcess

ROWS = ("big", "services", "pipe", "bomb8", "bomb9", "loop", "tcpdrip", "webhookdrip", "fds")
WEB = "web.default.svc.cluster.local."


def service(name: str, ip: str = "None") -> str:
    return (
        f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
        f"spec: {{clusterIP: {ip}, ports: [{{name: http, port: 80}}]}}\n"
    )


def corefile(limits: str = "") -> str:
    return (
        "cluster.local:0 {\n    bind 127.0.0.1\n    health 127.0.0.1:0\n    ready 127.0.0.1:0\n"
        "    webhook 127.0.0.1:0 {\n        tls auto\n    }\n"
        f"    kubernetes cluster.local {{\n        manifests m {{\n{limits}\n        }}\n    }}\n}}\n"
    )


class Probe:
    """UDP queries at a steady rate from one thread, reply times recorded by another."""

    def __init__(self, port: int, rate: float):
        self.port = port
        self.interval = 1.0 / rate
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.wire = dns.message.make_query(WEB, "A").to_wire()
        self.sent = 0
        self.replies: list[float] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send), threading.Thread(target=self._receive)]

    def start(self) -> "Probe":
        for thread in self.threads:
            thread.start()
        return self

    def _send(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            now = time.monotonic()
            while next_at <= now:
                self.sock.send(struct.pack("!H", self.sent & 0xFFFF) + self.wire[2:])
                self.sent += 1
                next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _receive(self) -> None:
        while not self.stopping.is_set():
            try:
                self.sock.recv(4096)
            except (socket.timeout, ConnectionRefusedError):
                continue
            self.replies.append(time.monotonic())

    def stop(self) -> None:
        time.sleep(0.3)
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        self.sock.close()

    def outage(self, since: float) -> float:
        return self.longest_gap(since)[0]

    def longest_gap(self, since: float) -> tuple[float, float]:
        """(the longest gap between replies after `since`, seconds from `since` to its start)."""
        times = [t for t in self.replies if t >= since]
        gaps = [(b - a, a - since) for a, b in zip(times, times[1:])]
        return max(gaps, default=(float("inf"), 0.0))


class Server:
    """python -m discovery on a fresh folder, and where it listens."""

    def __init__(self, root: pathlib.Path, limits: str = "", preexec_fn=None):
        self.root = root
        self.folder = root / "m"
        self.folder.mkdir()
        (self.folder / "web.yaml").write_text(service("web", "10.96.7.7"))
        (root / "Corefile").write_text(corefile(limits))
        self.process = CLIProcess(["-conf", str(root / "Corefile")], cwd=root, preexec_fn=preexec_fn)
        self.dns_port = self.process.port()
        self.webhook_port = int(self.process.wait_for_line(r"listening on https://127.0.0.1:(\d+)").group(1))
        self.http_port = int(self.process.wait_for_line(r"HTTP endpoints .* on 127.0.0.1:(\d+)").group(1))
        self.process.answers(self.dns_port, WEB, "A", seconds=60)

    def peak_rss_mb(self) -> float:
        status = pathlib.Path(f"/proc/{self.process.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024

    def http(self, path: str, timeout: float = 2.0) -> int | str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError as error:
            return f"no answer ({error})"

    def resolves(self, name: str, seconds: float = 120.0) -> float:
        """Seconds until `name` answers NOERROR with data."""
        started = time.monotonic()
        query = dns.message.make_query(name, "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            while time.monotonic() - started < seconds:
                sock.sendto(query.to_wire(), ("127.0.0.1", self.dns_port))
                try:
                    reply = dns.message.from_wire(sock.recv(4096))
                    if reply.answer:
                        return time.monotonic() - started
                except (socket.timeout, ConnectionRefusedError):
                    pass
                time.sleep(0.05)
        return float("inf")

    def stop(self) -> None:
        self.process.stop()


def laughs(levels: int) -> str:
    lines = ["apiVersion: v1", "kind: Service", "x0: &l0 [lol]"]
    for level in range(1, levels + 1):
        lines.append(f"x{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines + [f"metadata: {{name: *l{levels}}}"]) + "\n"


def slow_clients(port: int, count: int, payload: bytes, interval: float, seconds: float, tls: bool = False) -> str:
    """count connections each sending payload one byte per interval; how many the server still held after `seconds`."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    socks = []
    refused = 0
    for _ in range(count):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=2)
            socks.append(context.wrap_socket(raw) if tls else raw)
        except OSError:
            refused += 1
    started = time.monotonic()
    position = 0
    while time.monotonic() - started < seconds:
        for sock in socks:
            try:
                sock.send(payload[position % len(payload) : position % len(payload) + 1])
            except OSError:
                pass
        position += 1
        time.sleep(interval)
    held = 0
    for sock in socks:
        try:
            sock.setblocking(False)
            held += sock.recv(1) != b""
        except (BlockingIOError, ssl.SSLWantReadError):
            held += 1
        except OSError:
            pass
        sock.close()
    return f"{held} of {count} still open after {seconds:.0f} s ({refused} refused at connect)"


def low_open_files_limit() -> None:
    """In the child: soft and hard RLIMIT_NOFILE 1024, so the server cannot raise its way out."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def run_row(row: str, rate: float) -> None:
    limits = ""
    if row == "services":
        limits = "max_file_size 256Mi\nmax_file_objects 200000"
    preexec = low_open_files_limit if row == "fds" else None

    with tempfile.TemporaryDirectory() as tmp:
        # Large inputs are written before the probe starts and dropped into
        # the folder by a rename, as a real drop is: writing them here while
        # probing would starve the probe's threads of this process's GIL.
        prepared = pathlib.Path(tmp) / "prepared.yaml"
        if row == "big":
            line = "# " + "x" * 98 + "\n"
            with open(prepared, "w") as f:
                f.write(service("big", "10.96.0.50"))
                f.write(line * (100 * 1024 * 1024 // len(line)))
        elif row == "services":
            # Each with its own cluster IP, taken as written, so that each resolves.
            prepared.write_text("".join(
                service(f"s{i}", f"10.{100 + i // 65025}.{i // 255 % 255}.{i % 255 + 1}") for i in range(100_000)
            ))
        server = Server(pathlib.Path(tmp), limits, preexec)
        probe = Probe(server.dns_port, rate).start()
        time.sleep(0.5)
        started = time.monotonic()
        note = ""
        try:
            folder = server.folder
            if row == "big":
                os.rename(prepared, folder / "big.yaml")
                time.sleep(3)
                note = f"big applied: {server.resolves('big.default.svc.cluster.local.', 0.5) != float('inf')}"
            elif row == "services":
                os.rename(prepared, folder / "many.yaml")
                loaded = server.resolves("s99999.default.svc.cluster.local.", 600)
                edit = time.monotonic()
                (folder / "other.yaml").write_text(service("other", "10.96.0.61"))
                applied = server.resolves("other.default.svc.cluster.local.")
                note = f"100,000 Services applied after {loaded:.1f} s; an edit to another file after {applied:.2f} s"
                note += f"; outage during the edit {probe.outage(edit) * 1000:.0f} ms"
            elif row == "pipe":
                os.mkfifo(folder / "pipe.yaml")
                (folder / "after.yaml").write_text(service("after", "10.96.0.62"))
                note = f"a file beside it applied after {server.resolves('after.default.svc.cluster.local.'):.2f} s"
                note += f"; /ready {server.http('/ready')}"
            elif row in ("bomb8", "bomb9"):
                (folder / "bomb.yaml").write_text(laughs(8 if row == "bomb8" else 9))
                time.sleep(3)
                note = f"{os.path.getsize(folder / 'bomb.yaml')} bytes; /ready {server.http('/ready')}"
            elif row == "loop":
                os.symlink("loop.yaml", folder / "loop.yaml")
                time.sleep(0.5)
                (folder / "new.yaml").write_text(service("new", "10.96.0.63"))
                note = f"a new file applied after {server.resolves('new.default.svc.cluster.local.'):.2f} s"
            elif row == "tcpdrip":
                wire = dns.message.make_query(WEB, "A").to_wire()
                note = slow_clients(server.dns_port, 500, struct.pack("!H", len(wire)) + wire, 2.0, 20)
            elif row == "webhookdrip":
                body = b"{" * 1000
                request = b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + body
                note = slow_clients(server.webhook_port, 200, request, 1.0, 20, tls=True)
            elif row == "fds":
                wire = dns.message.make_query(WEB, "A").to_wire()
                framed = struct.pack("!H", len(wire)) + wire
                results: dict[str, str] = {}
                attackers = [
                    threading.Thread(target=lambda: results.__setitem__(
                        "dns", slow_clients(server.dns_port, 700, framed, 1.0, 10))),
                    threading.Thread(target=lambda: results.__setitem__(
                        "webhook", slow_clients(server.webhook_port, 310, b"POST / HTTP/1.1\r\n", 1.0, 10))),
                ]
                for thread in attackers:
                    thread.start()
                time.sleep(4)
                health, ready = server.http("/health"), server.http("/ready")
                fresh = tcp_query(server.dns_port)
                for thread in attackers:
                    thread.join()
                note = (f"during the attack: /health {health}, /ready {ready}, a fresh TCP query {fresh}; "
                        f"dns: {results.get('dns')}; webhook: {results.get('webhook')}")
        finally:
            probe.stop()
            rss = server.peak_rss_mb()
            server.stop()
        lost = probe.sent - len(probe.replies)
        gap, at = probe.longest_gap(started)
        print(f"{row:12s} outage {gap * 1000:8.1f} ms (at {at:5.1f} s)  lost {lost:6d}/{probe.sent:<7d} "
              f"peak RSS {rss:6.0f} MB  {note}", flush=True)


def tcp_query(port: int) -> str:
    wire = dns.message.make_query(WEB, "A").to_wire()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                if len(sock.recv(2)) == 2:
                    return "answered"
        except OSError:
            time.sleep(0.1)
    return "not answered within 5 s"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_hostile")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    parser.add_argument("--rate", type=float, default=1000.0, help="probe queries per second (default 1000)")
    args = parser.parse_args(argv)
    print(f"probe: {args.rate:.0f} q/s over UDP; outage = longest gap between replies while the input applies")
    for row in args.rows.split(","):
        run_row(row, args.rate)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
