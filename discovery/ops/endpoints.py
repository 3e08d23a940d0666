"""`health`, `ready` and `prometheus`: the operator's HTTP endpoints, as CoreDNS serves them.

Syntax (CoreDNS's)::

    health [ADDRESS] {
        lameduck DURATION
    }
    ready [ADDRESS]
    prometheus [ADDRESS]

Defaults: health on :8080 (`/health`), ready on :8181 (`/ready`),
prometheus on localhost:9153 (`/metrics`). Blocks that name the same address
share one listener. `/health` answers 200 "OK" while the process runs;
`/ready` answers 200 "OK" once every `kubernetes` cache of every block has
synced, 503 with the names of what is not ready otherwise, and 503
"Shutting down" from the moment the process is told to stop; `/metrics` is
the Prometheus text format of the process's registry.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

import attrs
from prometheus_client import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.internet import defer
from twisted.web import resource, server

from ..corefile import Directive
from ..plugin import PluginSpec

__all__ = [
    "HealthConfig",
    "ReadyConfig",
    "PrometheusConfig",
    "setup_health",
    "setup_ready",
    "setup_prometheus",
    "parse_http_address",
    "HTTPEndpoints",
]

log = logging.getLogger("wayfinder.health")
ready_log = logging.getLogger("wayfinder.ready")


def parse_http_address(text: str, directive: Directive) -> tuple[str, int]:
    """'[HOST]:PORT' -> (host, port); an empty host means every address."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise directive.error(f"{directive.name}: {text!r} is not an address like :8080 or 127.0.0.1:8080")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise directive.error(f"{directive.name}: {port_text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise directive.error(f"{directive.name}: port {port} is out of range")
    return host, port


@attrs.frozen
class HealthConfig:
    address: tuple[str, int] = ("", 8080)
    lameduck: float = 0.0


@attrs.frozen
class ReadyConfig:
    address: tuple[str, int] = ("", 8181)


@attrs.frozen
class PrometheusConfig:
    address: tuple[str, int] = ("127.0.0.1", 9153)


def setup_health(directive: Directive, ctx) -> HealthConfig:
    directive.expect_args(0, 1, "health [ADDRESS] { lameduck DURATION }")
    address = parse_http_address(directive.args[0], directive) if directive.args else ("", 8080)
    lameduck = 0.0
    for option in directive.block:
        if option.name != "lameduck":
            raise option.error(f"health: unknown property {option.name!r} (expected lameduck)")
        option.expect_args(1, 1, "lameduck DURATION")
        lameduck = option.duration(option.args[0], "lameduck")
        if lameduck < 0:
            raise option.error("lameduck must not be negative")
    return HealthConfig(address, lameduck)


def setup_ready(directive: Directive, ctx) -> ReadyConfig:
    directive.expect_args(0, 1, "ready [ADDRESS]")
    directive.expect_no_block()
    return ReadyConfig(parse_http_address(directive.args[0], directive) if directive.args else ("", 8181))


def setup_prometheus(directive: Directive, ctx) -> PrometheusConfig:
    directive.expect_args(0, 1, "prometheus [ADDRESS]")
    directive.expect_no_block()
    return PrometheusConfig(
        parse_http_address(directive.args[0], directive) if directive.args else ("127.0.0.1", 9153)
    )


class _Text(resource.Resource):
    isLeaf = True

    def __init__(self, answer: Callable[[], tuple[int, str]]):
        super().__init__()
        self.answer = answer

    def render_GET(self, request):
        code, body = self.answer()
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return body.encode()


class HTTPEndpoints:
    """HTTP listeners by address, each with the paths mounted on it."""

    def __init__(self, reactor):
        self.reactor = reactor
        self._roots: dict[tuple[str, int], resource.Resource] = {}
        self._ports: dict[tuple[str, int], object] = {}

    def mount(self, address: tuple[str, int], path: bytes, leaf: resource.Resource) -> None:
        root = self._roots.setdefault(address, resource.Resource())
        root.putChild(path, leaf)

    def mount_health(self, address, alive: Callable[[], bool]) -> None:
        self.mount(address, b"health", _Text(lambda: (200, "OK") if alive() else (503, "shutting down")))

    def mount_ready(self, address, not_ready: Callable[[], Iterable[str]], stopping: Callable[[], bool]) -> None:
        """/ready: 200 "OK", or 503 with what is not ready, comma-separated (CoreDNS's body)."""

        def answer():
            if stopping():
                return 503, "Shutting down"
            waiting = sorted(set(not_ready()))
            if not waiting:
                return 200, "OK"
            ready_log.info("Plugins not ready: %s", ",".join(waiting))
            return 503, ",".join(waiting)

        self.mount(address, b"ready", _Text(answer))

    def mount_metrics(self, address, registry: CollectorRegistry) -> None:
        self.mount(address, b"metrics", MetricsResource(registry=registry))

    def bound_port(self, address: tuple[str, int]) -> int:
        """The port actually bound (for port 0 in tests)."""
        return self._ports[address].getHost().port

    def take_over(self, previous: "HTTPEndpoints") -> None:
        """Listen in place of `previous` (empty at start-up): its listeners on addresses still mounted serve our paths.

        The new addresses are listened on first; if one cannot be, those
        are closed again and `previous` is left serving as it was (raises
        CannotListenError). Then the listeners on addresses no longer
        mounted close.
        """
        opened = {}
        try:
            for address, root in self._roots.items():
                if address not in previous._ports:
                    opened[address] = self._listen(address, root)
        except Exception:
            for port in opened.values():
                port.stopListening()
            raise
        kept, previous._ports = previous._ports, {}
        for address, port in kept.items():
            if address in self._roots:
                # The listener stays; requests from now on see the new paths.
                port.factory.resource = self._roots[address]
                self._ports[address] = port
            else:
                port.stopListening()
        self._ports.update(opened)

    def _listen(self, address: tuple[str, int], root: resource.Resource):
        host, port = address
        site = server.Site(root)
        site.noisy = False
        listening = self.reactor.listenTCP(port, site, interface=host or "")
        log.info(
            "HTTP endpoints %s on %s:%d",
            ", ".join("/" + p.decode() for p in root.children), host or "*", listening.getHost().port,
        )
        return listening

    def stop(self) -> defer.Deferred:
        ports, self._ports = self._ports, {}
        return defer.gatherResults(
            [defer.maybeDeferred(p.stopListening) for p in ports.values()], consumeErrors=True
        )


PLUGINS = (
    PluginSpec("ready", setup_ready, in_webhook_block=True),
    PluginSpec("health", setup_health, in_webhook_block=True),
    # The server counts the block's queries itself (`BlockRuntime.metrics`).
    PluginSpec("prometheus", setup_prometheus, served_by_server=True, in_webhook_block=True),
)
