"""The `reload` directive end to end: `python -m discovery` with `reload 2s 0s`, its Corefile rewritten under it.

The Corefile is replaced atomically (write, then rename), as the kubelet
updates a mounted ConfigMap. The tests wait for CoreDNS's log lines
("Reloading complete", "Corefile changed but reload failed: ...") rather
than for time to pass.
"""

from __future__ import annotations

import os
import pathlib
import socket

import dns.rcode
import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.fakeapi import FakeApiServer
from tests.fakeapi.objects import endpoint_slice, namespace, service
from tests.integration.live import QueryStream, WayfinderProcess, ask, poll_until, scrape
from tests.upstream.fake import FakeUpstream
from tests.upstream.requests import answer

pytestmark = pytest.mark.slow

WEB_NAME = "web.default.svc.cluster.local."
#: Long enough for a loaded machine; the stream's queries are each given this long to come back.
QUERY_TIMEOUT = 2.0


def corefile(source: str, *, ttl: int = 30, port: int = 0, extra: tuple[str, ...] = ()) -> str:
    lines = [
        f".:{port} {{",
        "    bind 127.0.0.1",
        "    reload 2s 0s",
        "    prometheus 127.0.0.1:0",
        "    kubernetes cluster.local {",
        f"        {source}",
        f"        ttl {ttl}",
        "    }",
        *(f"    {line}" for line in extra),
        "}",
    ]
    return "\n".join(lines) + "\n"


def replace(path: pathlib.Path, text: str) -> None:
    """Write the new Corefile beside the old one and rename it over, so that no reader sees half of it."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    os.replace(staged, path)


@pytest.fixture
def api():
    server = FakeApiServer(reactor)
    server.cluster.create(namespace("default"))
    server.cluster.create(service("web", "default"))
    server.cluster.create(endpoint_slice("web", "default", addresses=("10.1.0.1",)))
    server.start()
    yield server
    pytest_twisted.blockon(server.stop())


@pytest.fixture
def upstream():
    server = FakeUpstream(reactor, lambda query, proto: answer(query, f"{query.question[0].name} 300 IN A 192.0.2.1"))
    server.start()
    yield server
    pytest_twisted.blockon(server.stop())


@pytest.fixture
def started(tmp_path):
    """Starts wayfinder on a Corefile; fires once it answers the cluster name, with (process, DNS address, path)."""
    children = []

    @defer.inlineCallbacks
    def start(text: str):
        path = tmp_path / "Corefile"
        path.write_text(text)
        child = WayfinderProcess.spawn(reactor, path)
        children.append(child)
        yield child.wait_for(r"Running configuration SHA512 = [0-9a-f]{128}$")
        server = ("127.0.0.1", child.dns_port)
        yield poll_until(reactor, lambda: ask(reactor, server, WEB_NAME),
                         lambda response: getattr(response, "answer", None))
        return child, server, path

    yield start
    for child in children:
        pytest_twisted.blockon(child.kill())


def metrics(child: WayfinderProcess):
    return scrape(reactor, f"http://127.0.0.1:{child.http_port}/metrics")


def ttl_of(response) -> int:
    [rrset] = response.answer
    return rrset.ttl


@pytest_twisted.inlineCallbacks
def test_a_new_ttl_is_applied_under_a_steady_query_stream_with_no_query_lost(started, api):
    """While 200 queries a second flow, `ttl 30` becomes `ttl 7`: answers switch to TTL 7 and every query is answered NOERROR."""
    child, server, path = yield started(corefile(f"endpoint {api.url}", ttl=30))
    switched = defer.Deferred()
    after_switch = {"replies": 0}
    done = defer.Deferred()

    def on_reply(response):
        if ttl_of(response) == 7:
            if not switched.called:
                switched.callback(None)
            after_switch["replies"] += 1
            if after_switch["replies"] == 200 and not done.called:
                done.callback(None)

    stream = QueryStream(reactor, server, [(WEB_NAME, "A")], rate=200, timeout=QUERY_TIMEOUT, on_reply=on_reply)
    stream.start()
    mark = len(child.lines)
    replace(path, corefile(f"endpoint {api.url}", ttl=7))
    yield child.wait_for(r"Reloading complete$", after=mark)
    yield switched.addTimeout(10, reactor)
    yield done.addTimeout(10, reactor)
    yield stream.stop()
    assert stream.sent > 200
    assert (stream.lost, stream.answered) == (0, stream.sent)
    assert set(stream.rcodes) == {dns.rcode.NOERROR}


@pytest_twisted.inlineCallbacks
def test_a_broken_corefile_keeps_the_running_one_and_names_file_and_line(started, api):
    """A Corefile that does not load is logged with its file:line and counted; the running configuration goes on answering."""
    child, server, path = yield started(corefile(f"endpoint {api.url}", ttl=30))
    broken = corefile(f"endpoint {api.url}", ttl=30).replace("ttl 30", "ttl thirty")
    broken_line = broken.splitlines().index("        ttl thirty") + 1
    mark = len(child.lines)
    replace(path, broken)
    yield child.wait_for(rf"Corefile changed but reload failed: {path}:{broken_line}: ", after=mark)
    response = yield ask(reactor, server, WEB_NAME)
    assert response.rcode() == dns.rcode.NOERROR and ttl_of(response) == 30
    scraped = yield metrics(child)
    assert scraped.value("coredns_reload_failed_total") == 1
    [version] = scraped.labels("coredns_reload_version_info")
    running = next(line for line in child.lines if "Running configuration SHA512" in line).rsplit(" ", 1)[1]
    assert version["hash"] == "sha512" and version["value"] != running


@pytest_twisted.inlineCallbacks
def test_a_corefile_whose_port_is_taken_keeps_the_running_one(started, api):
    """A new DNS port already in use fails the reload as a whole: the old port keeps answering, no half-applied change."""
    child, server, path = yield started(corefile(f"endpoint {api.url}", ttl=30))
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        mark = len(child.lines)
        replace(path, corefile(f"endpoint {api.url}", ttl=7, port=port))
        yield child.wait_for(r"Corefile changed but reload failed: .*(in use|Couldn't listen)", after=mark)
    finally:
        taken.close()
    response = yield ask(reactor, server, WEB_NAME)
    assert response.rcode() == dns.rcode.NOERROR and ttl_of(response) == 30


@pytest_twisted.inlineCallbacks
def test_the_kubernetes_store_and_the_dns_cache_survive_a_reload(started, api, upstream):
    """After a reload the API is not listed again, and an answer cached before it is served even with the upstream silent."""
    child, server, path = yield started(
        corefile(f"endpoint {api.url}", ttl=30, extra=("cache 30", f"forward . 127.0.0.1:{upstream.port}"))
    )
    warm = yield ask(reactor, server, "www.example.test.")
    assert warm.rcode() == dns.rcode.NOERROR
    lists = [seen for seen in api.requests if seen.is_list]

    mark = len(child.lines)
    replace(path, corefile(f"endpoint {api.url}", ttl=10,
                           extra=("cache 30", f"forward . 127.0.0.1:{upstream.port}")))
    yield child.wait_for(r"Reloading complete$", after=mark)
    upstream.handler = lambda query, proto: None
    cached = yield ask(reactor, server, "www.example.test.")
    assert cached.rcode() == dns.rcode.NOERROR
    assert [rdata.address for rdata in cached.answer[0]] == ["192.0.2.1"]
    assert [seen for seen in api.requests if seen.is_list] == lists


@pytest_twisted.inlineCallbacks
def test_forward_keeps_its_upstream_connections_across_a_reload(started, api, upstream):
    """The forward plugin is the same instance after a reload that left it alone: its pooled connection is reused (a conn_cache hit, no new miss)."""
    child, server, path = yield started(
        corefile(f"endpoint {api.url}", ttl=30, extra=(f"forward . 127.0.0.1:{upstream.port}",))
    )
    yield ask(reactor, server, "first.example.test.")
    to = dict(proxy_name="forward", to=f"127.0.0.1:{upstream.port}", proto="udp")
    before = yield metrics(child)

    mark = len(child.lines)
    replace(path, corefile(f"endpoint {api.url}", ttl=10, extra=(f"forward . 127.0.0.1:{upstream.port}",)))
    yield child.wait_for(r"Reloading complete$", after=mark)
    response = yield ask(reactor, server, "second.example.test.")
    assert response.rcode() == dns.rcode.NOERROR
    after = yield metrics(child)
    assert after.value("coredns_proxy_conn_cache_misses_total", **to) == before.value(
        "coredns_proxy_conn_cache_misses_total", **to)
    assert after.value("coredns_proxy_conn_cache_hits_total", **to) == before.value(
        "coredns_proxy_conn_cache_hits_total", **to) + 1
