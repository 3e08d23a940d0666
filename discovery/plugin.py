"""How a Corefile directive declares itself, once, and how the declarations are found.

A plugin is one module (or a package's ``__init__``, for a plugin split into
files by concern) that assigns, at its top level, ``PLUGINS``: a tuple
of `PluginSpec`, usually one. The spec names the directive, its setup
(Corefile `Directive` + `SetupContext` -> frozen config; errors name
file:line), whether it may be repeated, and, for a plugin in the query's
path, how its handler is built from the config and what the assembly offers
(`BuildContext`). Its place in the chain is CoreDNS's: `PLUGIN_CFG` below is
CoreDNS's plugin.cfg order (an upstream fact, not our list); a directive
CoreDNS does not have says which plugin.cfg entry it follows (`after`).

`specs()` finds the declarations the first time it is asked: it walks the
modules of Wayfinder's packages and imports those whose source assigns
``PLUGINS`` at top level, and only those, so that finding the directives
does not import the Kubernetes client or the webhook's TLS stack. `-plugins`,
the Corefile loader, the application's chain, ``coredns_plugin_enabled`` and
the operator's guide's directive reference (checked by a test) all read
these declarations. Adding a plugin is: its module, its README section, its
tests.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from typing import Any, Callable

import attrs

__all__ = [
    "PLUGIN_CFG",
    "PluginSpec",
    "SetupContext",
    "BuildContext",
    "ServeContext",
    "Bare",
    "setup_bare",
    "specs",
    "spec",
    "names",
]

#: CoreDNS's plugin.cfg, in order: the order in which a query passes the
#: plugins of a server block, whatever order the Corefile lists them in.
PLUGIN_CFG: tuple[str, ...] = (
    "root", "metadata", "geoip", "cancel", "proxyproto", "quic", "grpc_server", "https", "https3",
    "timeouts", "multisocket", "reload", "nsid", "bufsize", "bind", "debug", "trace", "ready",
    "health", "pprof", "shed", "prometheus", "errors", "log", "dnstap", "local", "dns64", "any",
    "chaos", "loadbalance", "tsig", "rewrite", "autopath", "acl", "cache", "header", "dnssec",
    "tls", "minimal", "template", "transfer", "hosts", "route53", "azure", "clouddns",
    "k8s_external", "kubernetes", "file", "auto", "secondary", "etcd", "loop", "forward", "grpc",
    "erratic", "whoami", "on", "sign", "view", "nomad",
)

#: The packages whose modules may declare plugins: Wayfinder's own.
SCAN_ROOTS = ("discovery", "webhook")
_DECLARES = re.compile(r"^PLUGINS\b", re.M)


@attrs.frozen
class SetupContext:
    """What a directive's setup function may know about its server block."""

    #: The block's zones, normalised ("cluster.local.", "."), in key order.
    zones: tuple[str, ...]
    file: str
    line: int


@attrs.frozen
class BuildContext:
    """What the assembly offers a handler being built for one server block."""

    reactor: Any
    #: The prometheus_client registry every metric goes to.
    registry: Any
    #: The server label of metrics and logs ("dns://:53").
    server: str
    #: The `discovery.config.ServerBlock`.
    block: Any
    #: The block's listening (host, port); host "" is every address.
    address: tuple[str, int]
    #: SourceConfig -> the running `discovery.app.WatchCache` for it (made and started if new).
    cache_for: Callable[[Any], Any]


@attrs.frozen
class ServeContext:
    """What the assembly offers a plugin's own server (beside DNS) for one server block."""

    reactor: Any
    #: The prometheus_client registry every metric goes to.
    registry: Any
    #: The watch cache's Store of the block's `kubernetes` directive.
    store: Any
    #: The process's `discovery.ops.connections.ConnectionGuard`.
    guard: Any


@attrs.frozen
class PluginSpec:
    """One directive, declared by the module that implements it."""

    name: str
    #: (Directive, SetupContext) -> the directive's frozen config.
    setup: Callable[[Any, SetupContext], Any]
    #: May the directive appear more than once in a block? Then the block's
    #: config holds a tuple of the results, one per line.
    repeatable: bool = False
    #: (config, BuildContext) -> the handler in the query's path, with
    #: ``name`` and ``serve(request, next)`` (`discovery.dns.request.Plugin`),
    #: and optionally ``start()`` and ``stop()``. None: not in the chain.
    build: Callable[[Any, BuildContext], Any] | None = None
    #: In the query's path though the server itself carries it out (log,
    #: errors, loadbalance, prometheus): a handler as CoreDNS counts them.
    served_by_server: bool = False
    #: A directive CoreDNS does not have: the plugin.cfg entry it follows.
    after: str | None = None
    #: (config, ServeContext) -> a server of its own, outside the query's
    #: path, fed by the block's watch cache (the admission webhook), with
    #: ``start()`` (a Deferred that fires at once) and ``stop()``. The block
    #: must have a kubernetes directive (`discovery.config` checks).
    serve: Callable[[Any, ServeContext], Any] | None = None
    #: Allowed in a webhook:// block (which has no DNS listener).
    in_webhook_block: bool = False
    #: Where it departs from CoreDNS (`discovery.departures.Departure`), as
    #: its README section says; `wayfinder check` reports them.
    departures: tuple = ()

    @property
    def handler(self) -> bool:
        """Is it in the query's path (one of CoreDNS's conf.Handlers())?"""
        return self.build is not None or self.served_by_server

    @property
    def order(self) -> tuple[int, int]:
        anchor = self.after if self.after is not None else self.name
        return (PLUGIN_CFG.index(anchor), 0 if self.after is None else 1)


@attrs.frozen
class Bare:
    """The config of a directive that takes no arguments and no properties (any, whoami, minimal)."""


def setup_bare(directive, ctx: SetupContext) -> Bare:
    """No arguments (CoreDNS's ArgErr); an empty block passes, a line in one is an unknown property."""
    directive.expect_args(0, 0, directive.name)
    directive.expect_no_properties()
    return Bare()


def _declaring_modules() -> list[str]:
    found = []
    for root in SCAN_ROOTS:
        package = importlib.import_module(root)
        # A plugin split into a folder (dns/cache/) declares in its __init__.
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            module_spec = info.module_finder.find_spec(info.name)
            source = module_spec.loader.get_source(info.name) if module_spec is not None else None
            if source and _DECLARES.search(source):
                found.append(info.name)
    return found


@functools.cache
def specs() -> tuple[PluginSpec, ...]:
    """Every declared directive, in chain order (plugin.cfg's)."""
    declared: dict[str, PluginSpec] = {}
    for module_name in _declaring_modules():
        for plugin in importlib.import_module(module_name).PLUGINS:
            if plugin.name in declared:
                raise RuntimeError(f"directive {plugin.name!r} is declared twice (again in {module_name})")
            if plugin.after is None and plugin.name not in PLUGIN_CFG:
                raise RuntimeError(f"directive {plugin.name!r} ({module_name}) is not in plugin.cfg: declare `after`")
            declared[plugin.name] = plugin
    return tuple(sorted(declared.values(), key=lambda plugin: plugin.order))


@functools.cache
def _by_name() -> dict[str, PluginSpec]:
    return {plugin.name: plugin for plugin in specs()}


def spec(name: str) -> PluginSpec | None:
    """The declaration of a directive, or None when there is no such directive."""
    return _by_name().get(name)


def names() -> list[str]:
    """The supported directives, in chain order."""
    return [plugin.name for plugin in specs()]
