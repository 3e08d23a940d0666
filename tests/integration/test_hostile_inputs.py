"""Nothing a client, a file or a slow peer does takes cluster DNS down: issue 15's table, scaled down.

Each test runs a real server (the Application in the test's reactor, or
`python -m discovery`), does what a careless or hostile user did, and
checks the mechanism that keeps DNS answering: a file over a limit is
skipped with its path in the log; a pipe or a symbolic link loop is one
skipped entry; an alias bomb is refused before it is built; a slow parse
runs beside the answers; a slow TCP or webhook client is cut at its
deadline; connections beyond a cap are closed at once while /health
answers; the soft open-files limit is raised. tests/bench/bench_hostile.py
reproduces the table's full sizes and prints the outages.
"""

from __future__ import annotations

import logging
import os
import pathlib
import resource
import shutil
import socket
import ssl
import struct
import threading
import time

import dns.message
import dns.query
import dns.rcode
import pytest_twisted
from twisted.internet import reactor, threads

from tests.integration.dnsserver import TIMEOUT, CLIProcess, eventually, within
from tests.integration.live import http_get

LOGGER = "wayfinder.cache.manifests"
WEB = "web.default.svc.cluster.local."
WEB_IP = "10.96.7.7"


def service(name: str, ip: str = "None") -> str:
    return (
        f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
        f"spec: {{clusterIP: {ip}, ports: [{{name: http, port: 80}}]}}\n"
    )


def corefile(manifests_block: str = "", *, extra: str = "") -> str:
    return (
        "cluster.local:0 {\n"
        "    bind 127.0.0.1\n"
        "    health 127.0.0.1:0\n"
        "    ready 127.0.0.1:0\n"
        f"{extra}"
        "    kubernetes cluster.local {\n"
        f"        manifests m {{\n{manifests_block}\n        }}\n"
        "    }\n"
        "}\n"
    )


def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "m"
    path.mkdir()
    (path / "web.yaml").write_text(service("web", WEB_IP))
    return path


def manifest_lines(caplog, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


async def answers_web(server) -> None:
    response = await server.query(WEB, "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert [rdata.address for rrset in response.answer for rdata in rrset] == [WEB_IP]


# --- the manifests folder ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_file_over_max_file_size_is_skipped_with_its_path_in_the_log(dns_server, tmp_path, caplog):
    """A file larger than max_file_size is not read: a warning names it, and DNS answers on."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = folder(tmp_path)
    server = await dns_server(corefile("max_file_size 64Ki"))
    big = path / "big.yaml"
    big.write_text(service("big", "10.96.0.50") + "#" * (128 << 10) + "\n")
    await eventually(lambda: any(str(big) in m and "max_file_size" in m for m in manifest_lines(caplog)))
    await answers_web(server)
    assert server.store.service("default", "big") is None


@pytest_twisted.ensureDeferred
async def test_a_named_pipe_is_skipped_and_the_folder_still_loads(dns_server, tmp_path, caplog):
    """pipe.yaml (a FIFO nobody writes to) is named in a warning and counted; the rest of the folder serves."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = folder(tmp_path)
    os.mkfifo(path / "pipe.yaml")
    server = await dns_server(corefile())
    await answers_web(server)
    assert any(str(path / "pipe.yaml") in m and "named pipe" in m for m in manifest_lines(caplog))
    source = f"manifests {path}"
    skipped = server.app.registry.get_sample_value(
        "wayfinder_manifests_skipped_entries", {"source": source, "reason": "not_regular"}
    )
    assert skipped == 1


@pytest_twisted.ensureDeferred
async def test_a_symlink_loop_does_not_stop_later_files_from_applying(dns_server, tmp_path, caplog):
    """A link loop is one warning; a file added afterwards still reaches DNS."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = folder(tmp_path)
    os.symlink("loop.yaml", path / "loop.yaml")
    server = await dns_server(corefile())
    assert any(str(path / "loop.yaml") in m and "symbolic link loop" in m for m in manifest_lines(caplog))
    (path / "later.yaml").write_text(service("later", "10.96.0.60"))
    await eventually(lambda: server.store.service("default", "later") is not None)
    response = await server.query("later.default.svc.cluster.local.", "A")
    assert [rdata.address for rrset in response.answer for rdata in rrset] == ["10.96.0.60"]


def billion_laughs(levels: int = 9) -> str:
    lines = ["apiVersion: v1", "kind: Service", "x0: &l0 [lol]"]
    for level in range(1, levels + 1):
        lines.append(f"x{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    lines.append(f"metadata: {{name: *l{levels}}}")
    return "\n".join(lines) + "\n"


@pytest_twisted.ensureDeferred
async def test_an_alias_bomb_is_refused_with_a_short_log_line_and_bounded_memory(dns_server, tmp_path, caplog):
    """A 10^9-node alias bomb as metadata.name: one short error naming the file, no growth in memory, DNS answers."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    path = folder(tmp_path)
    server = await dns_server(corefile())
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bomb = path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    await eventually(lambda: any(str(bomb) in m and "max_alias_nodes" in m for m in manifest_lines(caplog)))
    await answers_web(server)
    assert max(len(m) for m in manifest_lines(caplog, logging.DEBUG)) < 1000
    # ru_maxrss is in KiB: expanding the bomb would take gigabytes.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100 << 10


@pytest_twisted.ensureDeferred
async def test_a_slow_parse_runs_beside_the_answers(dns_server, tmp_path, caplog):
    """While a file of 5,000 Services is parsed (most of a second), DNS keeps answering; the load logs a line or two."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = folder(tmp_path)
    server = await dns_server(corefile())
    logged_before = len(manifest_lines(caplog, logging.INFO))
    source = next(iter(server.app.caches.values())).source
    seen: list[tuple[float, bool]] = []
    stop = threading.Event()

    def probe() -> None:
        query = dns.message.make_query(WEB, "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            while not stop.is_set():
                busy = source._busy
                dns.query.udp(query, server.host, port=server.port, timeout=TIMEOUT, sock=sock)
                seen.append((time.monotonic(), busy and source._busy))
                time.sleep(0.005)

    probing = threads.deferToThread(probe)
    (path / "many.yaml").write_text("".join(service(f"s{i}") for i in range(5000)))
    try:
        await eventually(lambda: server.store.service("default", "s4999") is not None, seconds=60)
    finally:
        stop.set()
        await within(probing)
    during = [at for at, busy in seen if busy]
    # The pass took its time, and answers kept coming all along it.
    assert len(during) >= 3, f"only {len(during)} answers during the pass"
    # One summary line for the pass, not one per object.
    assert len(manifest_lines(caplog, logging.INFO)) - logged_before <= 2


# --- slow peers ---------------------------------------------------------------------------------------------


def drip(host: str, port: int, data: bytes, interval: float, wrap=None) -> float:
    """Send data one byte per interval until the server closes; seconds until it did."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        sock = wrap(raw) if wrap is not None else raw
        sock.settimeout(interval)
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    return time.monotonic() - started
            except socket.timeout:
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                return time.monotonic() - started
        sock.settimeout(TIMEOUT)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        return time.monotonic() - started


@pytest_twisted.ensureDeferred
async def test_a_tcp_client_dripping_bytes_is_cut_at_its_read_deadline(dns_server, tmp_path):
    """One byte every 0.25 s of a 30-byte query (7.5 s) is cut at `timeouts { read 1s }`, well before its end."""
    folder(tmp_path)
    server = await dns_server(corefile(extra="    timeouts {\n        read 1s\n    }\n"))
    wire = dns.message.make_query(WEB, "A").to_wire()
    closed_after = await within(
        threads.deferToThread(drip, server.host, server.port, struct.pack("!H", len(wire)) + wire, 0.25)
    )
    assert closed_after < len(wire) * 0.25 / 2
    labels = {"server": server.dns.label, "reason": "read"}
    assert server.app.registry.get_sample_value("wayfinder_connections_deadline_closed_total", labels) == 1


@pytest_twisted.ensureDeferred
async def test_a_webhook_client_sending_its_body_slowly_is_cut_at_read_timeout(dns_server, tmp_path):
    """A POST whose body comes one byte every 0.25 s is cut at the webhook's read_timeout of 1 s."""
    folder(tmp_path)
    webhook = "    webhook 127.0.0.1:0 {\n        tls auto\n        read_timeout 1s\n    }\n"
    server = await dns_server(corefile(extra=webhook))
    (hook,) = server.app.side_servers.values()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = (
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 40\r\n\r\n" + b"{" * 40
    )
    closed_after = await within(
        threads.deferToThread(drip, "127.0.0.1", hook.port, request, 0.25, context.wrap_socket)
    )
    assert closed_after < len(request) * 0.25 / 2
    labels = {"server": f"https://127.0.0.1:{hook.port}", "reason": "read"}
    assert server.app.registry.get_sample_value("wayfinder_connections_deadline_closed_total", labels) == 1


def refused(host: str, port: int) -> bytes:
    """What a fresh connection reads first: b"" when the server closes it at once."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        try:
            return sock.recv(1)
        except ConnectionResetError:
            return b""


@pytest_twisted.ensureDeferred
async def test_webhook_connections_beyond_max_connections_are_closed_at_once(dns_server, tmp_path):
    """With max_connections 2, a third connection to the webhook is closed as soon as it opens, and counted."""
    folder(tmp_path)
    webhook = "    webhook 127.0.0.1:0 {\n        tls auto\n        max_connections 2\n    }\n"
    server = await dns_server(corefile(extra=webhook))
    (hook,) = server.app.side_servers.values()
    held = [socket.create_connection(("127.0.0.1", hook.port), timeout=TIMEOUT) for _ in range(2)]
    try:
        await eventually(lambda: len(hook._factory.protocols) == 2)
        assert await within(threads.deferToThread(refused, "127.0.0.1", hook.port)) == b""
        labels = {"server": f"https://127.0.0.1:{hook.port}"}
        assert server.app.registry.get_sample_value("wayfinder_connections_refused_total", labels) == 1
    finally:
        for sock in held:
            sock.close()


@pytest_twisted.ensureDeferred
async def test_tcp_connections_beyond_the_cap_are_closed_at_once_and_health_answers(dns_server, tmp_path):
    """With maxtcpconnections 3, a fourth connection is closed as soon as it opens; /health still answers."""
    folder(tmp_path)
    server = await dns_server(corefile(extra="    timeouts {\n        maxtcpconnections 3\n    }\n"))
    held = [socket.create_connection((server.host, server.port), timeout=TIMEOUT) for _ in range(3)]
    try:
        await eventually(lambda: len(server.dns._tcp_connections) == 3)
        assert await within(threads.deferToThread(refused, server.host, server.port)) == b""
        port = server.app.http.bound_port(("127.0.0.1", 0))
        code, _ = await http_get(reactor, f"http://127.0.0.1:{port}/health")
        assert code == 200
        labels = {"server": server.dns.label}
        assert server.app.registry.get_sample_value("wayfinder_connections_refused_total", labels) == 1
    finally:
        for sock in held:
            sock.close()


@pytest_twisted.ensureDeferred
async def test_ready_turns_503_once_the_manifests_source_is_stale(dns_server, tmp_path):
    """The folder gone, no pass can finish: /ready answers 503 after stale_after, while the data keeps serving."""
    path = folder(tmp_path)
    server = await dns_server(corefile("stale_after 1s"))
    port = server.app.http.bound_port(("127.0.0.1", 0))
    code, _ = await http_get(reactor, f"http://127.0.0.1:{port}/ready")
    assert code == 200
    shutil.rmtree(path)
    await eventually(lambda: server.app.not_ready() == ["kubernetes"])
    code, body = await http_get(reactor, f"http://127.0.0.1:{port}/ready")
    assert (code, body) == (503, "kubernetes")
    await answers_web(server)


# --- file descriptors -----------------------------------------------------------------------------------------


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit(tmp_path):
    """Started with a soft limit of 256, the process raises it to the hard limit and logs the figure."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    folder(tmp_path)
    (tmp_path / "Corefile").write_text(corefile())

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    with CLIProcess(["-conf", str(tmp_path / "Corefile")], cwd=tmp_path, preexec_fn=low_soft_limit) as process:
        line = process.wait_for_line(r"open files limit: (\d+)")
        assert int(line.group(1)) == hard
        limits = pathlib.Path(f"/proc/{process.process.pid}/limits").read_text()
        (row,) = [r for r in limits.splitlines() if r.startswith("Max open files")]
        assert row.split()[3:5] == [str(hard), str(hard)]
