"""Assembly: from the configuration to running caches, DNS servers and endpoints.

One cache per distinct `SourceConfig` in the whole Corefile (each resource is
listed and watched once per process), shared by every block's `kubernetes`
plugin and `webhook`. One DNS server per port and bind addresses, holding the
blocks that listen there. One HTTP listener per health/ready/metrics address.

`apply()` takes a new configuration while running (the `reload` directive):
sockets, caches and plugin instances whose configuration did not change are
kept, so no query in flight is dropped and no cache is emptied.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable, Hashable, Iterable

import attrs
from prometheus_client.core import GaugeMetricFamily
from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from . import __version__
from .cache.config import KubernetesConfig, SourceConfig
from .cache.store import Change, Store
from .config import Config, ServerBlock
from .dns.errors import ErrorLog
from .dns.log import QueryLog
from .dns.server import BlockRuntime, DNSServer
from .ops.endpoints import HTTPEndpoints
from .ops.metrics import DNSMetrics, new_registry

__all__ = ["Application", "Cache"]

log = logging.getLogger("wayfinder.main")


@attrs.define(eq=False)
class Cache:
    """One Store and the source that feeds it."""

    config: SourceConfig
    store: Store
    source: Any

    @property
    def key(self) -> Hashable:
        return id(self.store)

    @property
    def synced(self) -> bool:
        return self.source.has_synced


def _make_source(config: SourceConfig, store: Store, reactor, registry):
    if config.manifests is not None:
        from .cache.manifests import ManifestSource

        return ManifestSource(config, store, reactor)
    from .cache.informer import ApiSource

    return ApiSource(config, store, reactor, registry=registry)


def local_addresses(bound: Iterable[str]) -> tuple[str, ...]:
    """This host's addresses, as CoreDNS's kubernetes plugin finds its own pod IP.

    The bind addresses when given; otherwise the source address the kernel
    picks for outside traffic (no packet is sent by a UDP connect).
    """
    addresses = [a for a in bound if a not in ("0.0.0.0", "::")]
    if addresses:
        return tuple(addresses)
    found = []
    for family, target in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "fd00::ffff")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 53))
                found.append(probe.getsockname()[0])
        except OSError:
            continue
    return tuple(found)


class _LastSyncCollector:
    """wayfinder_cache_last_sync_timestamp_seconds: how fresh each cache is."""

    def __init__(self, app: "Application"):
        self.app = app

    def describe(self):
        return []

    def collect(self):
        gauge = GaugeMetricFamily(
            "wayfinder_cache_last_sync_timestamp_seconds",
            "Unix time of the last successful list, watch event or manifests load of each cache.",
            labels=["source"],
        )
        for cache in list(self.app.caches.values()):
            gauge.add_metric([cache.config.describe()], cache.source.last_sync or 0.0)
        yield gauge


class Application:
    """Everything the Corefile describes, running in one reactor."""

    def __init__(self, config: Config, reactor, *, registry=None):
        self.reactor = reactor
        self.registry = registry if registry is not None else new_registry()
        self.dns_metrics = DNSMetrics(self.registry)
        self.registry.register(_LastSyncCollector(self))
        self.caches: dict[SourceConfig, Cache] = {}
        self.servers: dict[tuple[int, tuple[str, ...]], DNSServer] = {}
        self.http = HTTPEndpoints(reactor)
        self.webhooks: dict[Hashable, Any] = {}
        #: Plugin instances by (block file:line, zones, name, config): reused across reloads.
        self._plugins: dict[Hashable, Any] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self.stopping = False
        self.config = config

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Deferred:
        """Start the caches, listen, and return once every listener is bound."""
        log.info("Wayfinder-%s", __version__)
        self._build(self.config)
        return defer.succeed(None)

    def not_ready(self) -> list[str]:
        """What keeps /ready from answering 200 (empty when ready)."""
        if self.stopping:
            return ["lameduck"]
        return ["kubernetes" for cache in self.caches.values() if not cache.synced]

    def lameduck(self) -> float:
        durations = [block.plugin("health").lameduck for block in self.config.servers if block.plugin("health")]
        return max(durations, default=0.0)

    def shutdown(self, lameduck: bool = True) -> Deferred:
        """Stop reporting ready, keep answering for the lameduck period, then stop."""
        self.stopping = True
        delay = self.lameduck() if lameduck else 0.0
        if delay:
            log.info("going into lameduck mode for %ss", delay)
        waited = task.deferLater(self.reactor, delay, lambda: None)
        waited.addCallback(lambda _: self._stop_everything())
        return waited

    def _stop_everything(self) -> Deferred:
        stopping = [server.stop() for server in self.servers.values()]
        stopping.append(self.http.stop())
        for plugin in self._plugins.values():
            stop = getattr(plugin, "stop", None)
            if stop is not None:
                stopping.append(defer.maybeDeferred(stop))
        for webhook in self.webhooks.values():
            stopping.append(defer.maybeDeferred(webhook.stop))
        for cache in self.caches.values():
            stopping.append(defer.maybeDeferred(cache.source.stop))
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        return defer.gatherResults(stopping, consumeErrors=True)

    def apply(self, config: Config) -> None:
        """Switch to a new configuration while running (Corefile reload)."""
        self.config = config
        self._build(config)

    # -- assembly ----------------------------------------------------------------

    def cache_for(self, source: SourceConfig) -> Cache:
        cache = self.caches.get(source)
        if cache is None:
            store = Store()
            cache = Cache(source, store, _make_source(source, store, self.reactor, self.registry))
            self.caches[source] = cache
            self._unsubscribe.append(store.subscribe(lambda change, store=store: self._invalidate(store, change)))
            log.info("cache: %s", source.describe())
            cache.source.start()
        return cache

    def _invalidate(self, store: Store, change: Change) -> None:
        from .dns.kubernetes import invalidation_tokens

        tokens = invalidation_tokens(store, change)
        for server in self.servers.values():
            server.invalidate(tokens)

    def _build(self, config: Config) -> None:
        wanted_caches = {
            block.plugin("kubernetes").source for block in config.servers if block.plugin("kubernetes")
        }
        groups: dict[tuple[int, tuple[str, ...]], list[BlockRuntime]] = {}
        plugins_in_use: dict[Hashable, Any] = {}
        for block in config.servers:
            runtime = self._block_runtime(block, plugins_in_use)
            groups.setdefault((block.port, block.bind), []).append(runtime)
        for key, runtimes in groups.items():
            server = self.servers.get(key)
            if server is None:
                port, addresses = key
                server = DNSServer(self.reactor, runtimes, port=port, addresses=addresses)
                server.listen()
                self.servers[key] = server
            else:
                server.set_blocks(runtimes)
        for key in list(self.servers):
            if key not in groups:
                self.servers.pop(key).stop()
        for key, plugin in list(self._plugins.items()):
            if key not in plugins_in_use:
                stop = getattr(plugin, "stop", None)
                if stop is not None:
                    stop()
        self._plugins = plugins_in_use
        for source, cache in list(self.caches.items()):
            if source not in wanted_caches:
                del self.caches[source]
                cache.source.stop()
        self._build_http(config)
        self._build_webhooks(config)
        for zones in self._banner(config):
            log.info(zones)

    def _banner(self, config: Config) -> list[str]:
        return [f"{' '.join(block.zones)}:{block.port}" for block in config.servers]

    def _block_runtime(self, block: ServerBlock, plugins_in_use: dict) -> BlockRuntime:
        label = f"dns://{block.bind[0] if len(block.bind) == 1 else ''}:{block.port}"
        chain = []
        for name, config in block.plugins:
            builder = _CHAIN_BUILDERS.get(name)
            if builder is None:
                continue
            key = (block.file, block.line, block.zones, block.port, name, config)
            plugin = self._plugins.get(key) or plugins_in_use.get(key)
            if plugin is None:
                plugin = builder(self, block, config, label)
                start = getattr(plugin, "start", None)
                if start is not None:
                    start()
            plugins_in_use[key] = plugin
            chain.append(plugin)
        log_configs = block.plugin("log")
        errors_config = block.plugin("errors")
        return BlockRuntime(
            zones=block.zones,
            server=label,
            plugins=chain,
            query_log=QueryLog(log_configs) if log_configs else None,
            error_log=ErrorLog(errors_config, self.reactor) if errors_config is not None else None,
            loadbalance=block.plugin("loadbalance") is not None,
            metrics=self.dns_metrics if block.plugin("prometheus") is not None else None,
        )

    def _build_http(self, config: Config) -> None:
        http = HTTPEndpoints(self.reactor)
        for block in config.servers:
            health, ready, prometheus = block.plugin("health"), block.plugin("ready"), block.plugin("prometheus")
            if health is not None:
                http.mount_health(health.address, lambda: True)
            if ready is not None:
                http.mount_ready(ready.address, self.not_ready)
            if prometheus is not None:
                http.mount_metrics(prometheus.address, self.registry)
        if set(http._roots) != set(self.http._roots):
            self.http.stop()
            self.http = http
            http.start()
        else:
            # Same addresses: keep the listeners, swap what they serve.
            for address, root in http._roots.items():
                self.http._ports[address].factory.resource = root
            self.http._roots = http._roots

    def _build_webhooks(self, config: Config) -> None:
        wanted = {}
        for block in config.servers:
            webhook = block.plugin("webhook")
            kubernetes = block.plugin("kubernetes")
            if webhook is None:
                continue
            if kubernetes is None:
                raise RuntimeError(f"{block.file}:{block.line}: webhook needs a kubernetes directive in the same block")
            wanted[(webhook, kubernetes.source)] = (webhook, kubernetes.source)
        for key in list(self.webhooks):
            if key not in wanted:
                self.webhooks.pop(key).stop()
        for key, (webhook, source) in wanted.items():
            if key not in self.webhooks:
                from webhook.server import WebhookServer

                server = WebhookServer(webhook, self.cache_for(source).store, self.reactor, registry=self.registry)
                server.start()
                self.webhooks[key] = server


def _build_kubernetes(app: Application, block: ServerBlock, config: KubernetesConfig, label: str):
    from .dns.kubernetes import KubernetesPlugin

    cache = app.cache_for(config.source)
    return KubernetesPlugin(
        config, cache.store, cache.source.synced, app.reactor, local_ips=local_addresses(block.bind)
    )


def _build_with_registry(module: str, cls: str):
    def build(app: Application, block: ServerBlock, config, label: str):
        import importlib

        plugin_class = getattr(importlib.import_module(module), cls)
        return plugin_class(config, app.reactor, registry=app.registry, server=label)

    return build


#: Plugins that sit in the query's path, by directive name.
_CHAIN_BUILDERS: dict[str, Callable] = {
    "cache": _build_with_registry("discovery.dns.cache", "CachePlugin"),
    "hosts": _build_with_registry("discovery.dns.hosts", "HostsPlugin"),
    "kubernetes": _build_kubernetes,
    "loop": _build_with_registry("discovery.dns.loop", "LoopPlugin"),
    "forward": _build_with_registry("discovery.dns.forward", "ForwardPlugin"),
}
