"""Assembly: from the configuration to running caches, DNS servers and endpoints.

One cache per distinct `SourceConfig` in the whole Corefile (each resource is
listed and watched once per process), shared by every block's `kubernetes`
plugin and `webhook`. One DNS server per port and bind addresses, holding the
blocks that listen there. One HTTP listener per health/ready/metrics address.

`apply()` takes a new configuration while running (the `reload` directive):
sockets, caches and plugin instances whose configuration did not change are
kept, so no query in flight is dropped and no cache is emptied. Everything
the new configuration needs is made before anything running is touched; if
a step fails, what was made is undone and the running configuration stays.
"""

from __future__ import annotations

import gc
import logging
from typing import Any, Hashable

import attrs
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from . import __version__
from . import plugin as declared
from .cache.config import SourceConfig
from .cache.store import Store
from .config import Config, ServerBlock
from .dns.errors import ErrorLog
from .dns.log import QueryLog
from .dns.server import MAX_UDP_SIZE, BlockRuntime, DNSServer
from .dns.timeouts import TimeoutsConfig
from .ops.connections import ConnectionGuard
from .dns.table import DEFAULT_LIMIT
from .ops.endpoints import HTTPEndpoints
from .ops.metrics import DNSMetrics, new_registry
from .plugin import BuildContext, ServeContext

__all__ = ["Application", "WatchCache"]

log = logging.getLogger("wayfinder.main")
health_log = logging.getLogger("wayfinder.health")


@attrs.define(eq=False)
class WatchCache:
    """One watch cache: a Store and the source that feeds it."""

    config: SourceConfig
    store: Store
    source: Any

    @property
    def synced(self) -> bool:
        return self.source.has_synced


def _make_source(config: SourceConfig, store: Store, reactor, registry):
    if config.manifests is not None:
        from .cache.manifests import ManifestSource

        return ManifestSource(config, store, reactor)
    from .cache.informer import ApiSource

    return ApiSource(config, store, reactor, registry=registry)


class _AppCollector:
    """Metrics read from the running configuration when Prometheus scrapes.

    wayfinder_cache_last_sync_timestamp_seconds: how fresh each cache is;
    coredns_plugin_enabled: 1 per handler directive per server block and
    zone, as CoreDNS's metrics setup lists conf.Handlers() (not bind,
    health, ready, reload).
    """

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
        skipped = GaugeMetricFamily(
            "wayfinder_manifests_skipped_entries",
            "Entries of a manifests folder not read at the latest pass, by reason.",
            labels=["source", "reason"],
        )
        for cache in list(self.app.caches.values()):
            entries = getattr(cache.source, "skipped", None)
            if entries is None:
                continue
            from .cache.manifests.folder import SKIP_REASONS

            counts = {reason: 0 for reason in SKIP_REASONS}
            for skip in entries.values():
                counts[skip.reason] = counts.get(skip.reason, 0) + 1
            for reason, count in counts.items():
                skipped.add_metric([cache.config.describe(), reason], count)
        yield skipped
        enabled = GaugeMetricFamily(
            "coredns_plugin_enabled",
            "A metric that indicates whether a plugin is enabled on per server and zone basis.",
            labels=["server", "zone", "view", "name"],
        )
        # As CoreDNS's metrics setup: for each block with `prometheus`, one
        # series per handler in its query path (conf.Handlers()), per zone.
        for block in self.app.config.servers:
            if block.transport != "dns" or block.plugin("prometheus") is None:
                continue
            server = self.app.servers.get((block.port, block.bind))
            host = block.bind[0] if len(block.bind) == 1 else ""
            label = f"dns://{host}:{server.port if server is not None else block.port}"
            handlers = [name for name, _ in block.plugins if declared.spec(name).handler]
            for zone in block.zones:
                for name in handlers:
                    enabled.add_metric([label, zone, "", name], 1)
        yield enabled
        yield from self._tables()

    def _tables(self):
        """wayfinder_answer_table_*: each DNS listener's table of rendered answers."""
        families = {
            "bytes": GaugeMetricFamily(
                "wayfinder_answer_table_bytes",
                "Bytes held by the table of rendered answers, its indexes included.",
                labels=["server"],
            ),
            "limit": GaugeMetricFamily(
                "wayfinder_answer_table_limit_bytes",
                "The bound of the table of rendered answers (-dns.table).",
                labels=["server"],
            ),
            "entries": GaugeMetricFamily(
                "wayfinder_answer_table_entries", "Answers held by the table of rendered answers.", labels=["server"]
            ),
            "evictions": CounterMetricFamily(
                "wayfinder_answer_table_evictions",
                "Answers evicted from the table of rendered answers to stay within its bound.",
                labels=["server"],
            ),
        }
        for server in list(self.app.servers.values()):
            label = [f"dns://{server.addresses[0] if len(server.addresses) == 1 else ''}:{server.port}"]
            table = server.table
            families["bytes"].add_metric(label, table.bytes)
            families["limit"].add_metric(label, table.limit)
            families["entries"].add_metric(label, len(table))
            families["evictions"].add_metric(label, table.evictions)
        yield from families.values()


@attrs.define(eq=False)
class _Assembly:
    """What one configuration needs, made before anything running is touched.

    `new_*` is what this assembly made, to be undone if a later step fails.
    """

    caches: dict[SourceConfig, WatchCache] = attrs.field(factory=dict)
    new_caches: list[WatchCache] = attrs.field(factory=list)
    servers: dict[tuple[int, tuple[str, ...]], DNSServer] = attrs.field(factory=dict)
    new_servers: list[DNSServer] = attrs.field(factory=list)
    blocks: dict[tuple[int, tuple[str, ...]], list[BlockRuntime]] = attrs.field(factory=dict)
    runtimes: dict[Hashable, BlockRuntime] = attrs.field(factory=dict)
    plugins: dict[Hashable, Any] = attrs.field(factory=dict)
    #: Plugins to start once serving.
    new_plugins: list[Any] = attrs.field(factory=list)
    #: Servers plugins run beside DNS (the webhook), by (config, source).
    side_servers: dict[Hashable, Any] = attrs.field(factory=dict)
    new_side_servers: list[Any] = attrs.field(factory=list)

    def undo(self) -> None:
        for server in self.new_side_servers:
            server.stop()
        for plugin in self.new_plugins:
            _stop(plugin)
        for server in self.new_servers:
            server.stop()
        for cache in self.new_caches:
            cache.source.stop()


def _either(key: Hashable, made: dict, running: dict) -> Any:
    """What this assembly made for key already, else what runs for it, else None."""
    return made[key] if key in made else running.get(key)


def _stop(plugin) -> Deferred:
    stop = getattr(plugin, "stop", None)
    return defer.maybeDeferred(stop) if stop is not None else defer.succeed(None)


class Application:
    """Everything the Corefile describes, running in one reactor."""

    def __init__(self, config: Config, reactor, *, registry=None, table_limit: int = DEFAULT_LIMIT):
        self.reactor = reactor
        #: Bytes for each DNS server's table of rendered answers (`-dns.table`).
        self.table_limit = table_limit
        self.registry = registry if registry is not None else new_registry()
        self.dns_metrics = DNSMetrics(self.registry)
        #: The client connections of every DNS and webhook server, against the descriptor budget.
        self.connections = ConnectionGuard(registry=self.registry)
        self.registry.register(_AppCollector(self))
        self.caches: dict[SourceConfig, WatchCache] = {}
        #: DNS servers by (configured port, bind addresses).
        self.servers: dict[tuple[int, tuple[str, ...]], DNSServer] = {}
        self.http = HTTPEndpoints(reactor)
        #: Servers plugins run beside DNS (the webhook), by (config, source).
        self.side_servers: dict[Hashable, Any] = {}
        #: Plugin instances by (zones, port, bind, directive, config): reused across reloads.
        self._plugins: dict[Hashable, Any] = {}
        #: Server blocks by everything they are made of: reused across reloads.
        self._runtimes: dict[Hashable, BlockRuntime] = {}
        self.stopping = False
        self.config = config
        #: Initial answer preparations not finished yet (they hold /ready back).
        self._preparing: set[Deferred] = set()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the caches and listen; every listener is bound when it returns.

        Raises (with nothing left running) when a listener cannot be bound
        or a source cannot be configured.
        """
        log.info("Wayfinder-%s", __version__)
        self._build(self.config)

    def not_ready(self) -> list[str]:
        """What keeps /ready from answering 200 (empty when ready).

        A kubernetes cache until it has synced and the answers for the
        names it holds are prepared (`DNSServer.prepare`).
        """
        # A source that has stopped applying changes serves stale data: the
        # manifests source says so after its stale_after.
        waiting = [
            "kubernetes" for cache in self.caches.values()
            if not cache.synced or getattr(cache.source, "stale", False)
        ]
        if self._preparing and not waiting:
            waiting.append("kubernetes")
        return waiting

    def lameduck(self) -> float:
        durations = [block.plugin("health").lameduck for block in self.config.servers if block.plugin("health")]
        return max(durations, default=0.0)

    def shutdown(self, lameduck: bool = True) -> Deferred:
        """Stop reporting ready, keep answering for the lameduck period, then stop."""
        self.stopping = True
        delay = self.lameduck() if lameduck else 0.0
        if delay:
            health_log.info("Going into lameduck mode for %gs", delay)
        waited = task.deferLater(self.reactor, delay, lambda: None)
        waited.addCallback(lambda _: self._stop_everything())
        return waited

    def _stop_everything(self) -> Deferred:
        stopping = [server.stop() for server in self.servers.values()]
        stopping.append(self.http.stop())
        stopping.extend(_stop(plugin) for plugin in self._plugins.values())
        stopping.extend(defer.maybeDeferred(server.stop) for server in self.side_servers.values())
        for cache in self.caches.values():
            stopping.append(defer.maybeDeferred(cache.source.stop))
        return defer.gatherResults(stopping, consumeErrors=True)

    def apply(self, config: Config) -> None:
        """Switch to a new configuration while running (Corefile reload).

        Sockets, caches and plugin instances whose configuration did not
        change are kept, so no query in flight is dropped and no cache is
        emptied. Raises, with the running configuration untouched, when
        something the new one needs cannot be made (a DNS or HTTP port in
        use, a source without credentials). A new webhook whose certificate
        or port is not usable yet does not fail it: it retries on its own.
        """
        self._build(config)
        self.config = config

    # -- assembly ----------------------------------------------------------------

    def _build(self, config: Config) -> None:
        """Make what config needs, then swap it in; undo everything made if a step fails."""
        assembly = _Assembly()
        try:
            self._prepare(config, assembly)
            http = self._http_for(config)
            # Last of the steps that can fail: on success it has taken over.
            http.take_over(self.http)
        except Exception:
            assembly.undo()
            raise
        self.http = http
        self._commit(assembly, config)
        for zones in self._banner(config):
            log.info(zones)

    def _prepare(self, config: Config, assembly: _Assembly) -> None:
        for block in config.servers:
            if block.transport != "dns":
                # webhook://: no DNS listener; its webhook is prepared below.
                continue
            key = (block.port, block.bind)
            server = _either(key, assembly.servers, self.servers)
            if server is None:
                server = DNSServer(
                    self.reactor, [], port=block.port, addresses=block.bind, metrics=self.dns_metrics,
                    guard=self.connections, table_limit=self.table_limit,
                )
                assembly.new_servers.append(server)
                # Listening first: a block on port 0 learns its port, for
                # its label and for the loop plugin's probe.
                server.listen()
            assembly.servers[key] = server
            assembly.blocks.setdefault(key, []).append(self._block_runtime(block, server, assembly))
        self._prepare_side_servers(config, assembly)

    def _commit(self, assembly: _Assembly, config: Config) -> None:
        timeouts: dict[tuple[int, tuple[str, ...]], TimeoutsConfig] = {}
        for block in config.servers:
            if block.transport == "dns" and block.plugin("timeouts") is not None:
                # As CoreDNS: of the blocks sharing a server, the last that sets it wins.
                timeouts[(block.port, block.bind)] = block.plugin("timeouts")
        for key, server in assembly.servers.items():
            server.tcp_timeouts = timeouts.get(key, TimeoutsConfig())
            blocks = assembly.blocks[key]
            # The same blocks give the same answers: the server keeps its table
            # of rendered answers, which takes a moment to fill again under load.
            if [id(block) for block in server.blocks] != [id(block) for block in blocks]:
                server.set_blocks(blocks)
                self._prepare_answers(server)
        retired_servers = [server for key, server in self.servers.items() if key not in assembly.servers]
        retired_plugins = [plugin for key, plugin in self._plugins.items() if key not in assembly.plugins]
        retired_side_servers = [server for key, server in self.side_servers.items() if key not in assembly.side_servers]
        retired_caches = [cache for source, cache in self.caches.items() if source not in assembly.caches]
        self.servers, self._plugins, self._runtimes = assembly.servers, assembly.plugins, assembly.runtimes
        self.side_servers, self.caches = assembly.side_servers, assembly.caches
        for server in retired_servers:
            server.stop()
        for plugin in retired_plugins:
            # A forwarded query in flight still completes: stopping only
            # closes idle upstream connections.
            _stop(plugin)
        for server in retired_side_servers:
            server.stop()
        for cache in retired_caches:
            cache.source.stop()
        for plugin in assembly.new_plugins:
            start = getattr(plugin, "start", None)
            if start is not None:
                start()

    def _cache_for(self, source: SourceConfig, assembly: _Assembly) -> WatchCache:
        """The running cache for source, or a new one, started."""
        cache = _either(source, assembly.caches, self.caches)
        if cache is None:
            store = Store()
            cache = WatchCache(source, store, _make_source(source, store, self.reactor, self.registry))
            assembly.new_caches.append(cache)
            log.info("cache: %s", source.describe())
            cache.source.start()
            cache.source.synced.addCallback(lambda _: self._settle_memory())
        assembly.caches[source] = cache
        return cache

    def _settle_memory(self) -> None:
        """Once every cache has synced, move what exists to the GC's permanent generation.

        The cache holds hundreds of thousands of small objects that live as
        long as the process; each full collection would walk them all, a
        pause of tens of milliseconds that lands on some query. Frozen, they
        are skipped; the value objects form no cycles, so reference counting
        still frees those the Store drops.
        """
        if all(cache.source.has_synced for cache in self.caches.values()):
            gc.collect()
            gc.freeze()

    def _prepare_answers(self, server: DNSServer) -> None:
        """Once each Store a block answers from has synced, prepare its answers; /ready waits."""
        for plugin in server.preparers():
            preparing = plugin.when_synced()
            preparing.addCallback(lambda _, plugin=plugin: server.prepare(plugin.questions()))
            self._preparing.add(preparing)
            preparing.addBoth(lambda result, preparing=preparing: self._preparing.discard(preparing) or result)

    def _banner(self, config: Config) -> list[str]:
        lines = []
        for block in config.servers:
            if block.transport == "dns":
                server = self.servers.get((block.port, block.bind))
                lines.append(f"{' '.join(block.zones)}:{server.port if server is not None else block.port}")
            else:
                lines.append(f"webhook://{' '.join(block.zones)}")
        return lines

    def _block_runtime(self, block: ServerBlock, server: DNSServer, assembly: _Assembly) -> BlockRuntime:
        host = block.bind[0] if len(block.bind) == 1 else ""
        # CoreDNS's server label: the listening address, "dns://:53".
        label = f"dns://{host}:{server.port}"
        context = BuildContext(
            reactor=self.reactor,
            registry=self.registry,
            server=label,
            block=block,
            address=(block.bind[0] if block.bind else "", server.port),
            cache_for=lambda source: self._cache_for(source, assembly),
        )
        chain, keys = [], []
        for name, config in block.plugins:
            build = declared.spec(name).build
            if build is None:
                continue
            key = (block.zones, block.port, block.bind, name, config)
            plugin = _either(key, assembly.plugins, self._plugins)
            if plugin is None:
                plugin = build(config, context)
                assembly.new_plugins.append(plugin)
            assembly.plugins[key] = plugin
            chain.append(plugin)
            keys.append(key)
        for plugin in chain:
            # transfer and autopath find the plugins they ask (zones to list, search paths).
            set_chain = getattr(plugin, "set_chain", None)
            if set_chain is not None:
                set_chain(chain)
        log_configs = block.plugin("log")
        errors_config = block.plugin("errors")
        loadbalance = block.plugin("loadbalance") is not None
        metrics = block.plugin("prometheus") is not None
        # `bufsize` also replaces the server's 1232-byte cap for this block.
        bufsize = block.plugin("bufsize")
        key = (label, block.zones, tuple(keys), log_configs, errors_config, loadbalance, metrics, bufsize)
        runtime = _either(key, assembly.runtimes, self._runtimes)
        if runtime is None:
            runtime = BlockRuntime(
                zones=block.zones,
                server=label,
                plugins=chain,
                query_log=QueryLog(log_configs) if log_configs else None,
                error_log=ErrorLog(errors_config, self.reactor) if errors_config is not None else None,
                loadbalance=loadbalance,
                metrics=self.dns_metrics if metrics else None,
                max_udp_size=bufsize.size if bufsize is not None else MAX_UDP_SIZE,
            )
        assembly.runtimes[key] = runtime
        return runtime

    def _http_for(self, config: Config) -> HTTPEndpoints:
        http = HTTPEndpoints(self.reactor)
        for block in config.servers:
            health, ready, prometheus = block.plugin("health"), block.plugin("ready"), block.plugin("prometheus")
            if health is not None:
                http.mount_health(health.address, lambda: True)
            if ready is not None:
                http.mount_ready(ready.address, self.not_ready, lambda: self.stopping)
            if prometheus is not None:
                http.mount_metrics(prometheus.address, self.registry)
        return http

    def _prepare_side_servers(self, config: Config, assembly: _Assembly) -> None:
        """Start the servers plugins run beside DNS (the webhook), each fed by its block's watch cache."""
        for block in config.servers:
            for name, plugin_config in block.plugins:
                spec = declared.spec(name)
                if spec is None or spec.serve is None:
                    continue
                # config.assemble has made sure the block has a kubernetes directive.
                source = block.plugin("kubernetes").source
                key = (plugin_config, source)
                server = _either(key, assembly.side_servers, self.side_servers)
                if server is None:
                    store = self._cache_for(source, assembly).store
                    context = ServeContext(self.reactor, self.registry, store, self.connections)
                    server = spec.serve(plugin_config, context)
                    assembly.new_side_servers.append(server)
                    failures: list = []
                    server.start().addErrback(failures.append)
                    if failures:
                        failures[0].raiseException()
                assembly.side_servers[key] = server

