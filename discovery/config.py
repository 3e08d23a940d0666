"""From the Corefile tree to the configuration: one frozen attrs value per directive.

Configuration flows one way: Corefile -> this tree of frozen values ->
constructors. Each supported directive has a setup function, registered in
`REGISTRY` in CoreDNS's plugin order (plugin.cfg); that order is the order in
which a query passes the plugins of a server block, whatever order the
Corefile lists them in. A directive that is not registered stops start-up
with its file and line.
"""

from __future__ import annotations

import importlib
import ipaddress
from typing import Any, Callable, Mapping

import attrs

from .corefile import CorefileError, Directive, ServerBlockSource, parse, parse_file
from .zones import normalize_zone, zones_from_cidr

__all__ = [
    "Config",
    "ServerBlock",
    "SetupContext",
    "PluginSpec",
    "REGISTRY",
    "supported_directives",
    "load",
    "load_text",
    "assemble",
]

DEFAULT_DNS_PORT = 53
#: Server block transports: CoreDNS's plain DNS, and Wayfinder's webhook-only blocks.
TRANSPORTS = ("dns", "webhook")
#: What a webhook:// block may hold: the webhook, its cache, and the operator's endpoints.
WEBHOOK_BLOCK_DIRECTIVES = frozenset({"kubernetes", "webhook", "health", "ready", "prometheus", "reload"})


@attrs.frozen
class SetupContext:
    """What a directive's setup function may know about its server block."""

    #: The block's zones, normalised ("cluster.local.", "."), in key order.
    zones: tuple[str, ...]
    file: str
    line: int


@attrs.frozen
class PluginSpec:
    name: str
    #: "module:function", imported when first used; the function takes
    #: (Directive, SetupContext) and returns the directive's frozen config.
    setup: str
    #: May the directive appear more than once in a block? Then the block's
    #: config holds a tuple of the results, one per line.
    repeatable: bool = False

    def load(self) -> Callable[[Directive, SetupContext], Any]:
        module, _, function = self.setup.partition(":")
        return getattr(importlib.import_module(module), function)


#: The supported directives, in the order a query passes them (plugin.cfg).
REGISTRY: tuple[PluginSpec, ...] = (
    PluginSpec("reload", "discovery.ops.reload:setup_reload"),
    PluginSpec("bind", "discovery.config:setup_bind", repeatable=True),
    PluginSpec("ready", "discovery.ops.endpoints:setup_ready"),
    PluginSpec("health", "discovery.ops.endpoints:setup_health"),
    PluginSpec("prometheus", "discovery.ops.endpoints:setup_prometheus"),
    PluginSpec("errors", "discovery.dns.errors:setup_errors"),
    PluginSpec("log", "discovery.dns.log:setup_log", repeatable=True),
    PluginSpec("loadbalance", "discovery.dns.loadbalance:setup_loadbalance"),
    PluginSpec("cache", "discovery.dns.cache:setup_cache"),
    PluginSpec("hosts", "discovery.dns.hosts:setup_hosts"),
    PluginSpec("kubernetes", "discovery.cache.config:setup_kubernetes"),
    PluginSpec("webhook", "webhook.config:setup_webhook"),
    PluginSpec("loop", "discovery.dns.loop:setup_loop"),
    PluginSpec("forward", "discovery.dns.forward:setup_forward"),
)


def supported_directives() -> list[str]:
    return [spec.name for spec in REGISTRY]


@attrs.frozen
class ServerBlock:
    """One server block: its zones, port and the configs of its directives."""

    zones: tuple[str, ...]
    port: int
    file: str
    line: int
    #: (directive name, config) in REGISTRY order.
    plugins: tuple[tuple[str, Any], ...] = ()
    #: "dns", or "webhook" for a block that serves the admission webhook
    #: alone, with no DNS listener (a Wayfinder addition: `webhook://ZONE`).
    transport: str = "dns"

    def plugin(self, name: str) -> Any:
        """The config of a directive in this block, or None."""
        for plugin_name, config in self.plugins:
            if plugin_name == name:
                return config
        return None

    @property
    def bind(self) -> tuple[str, ...]:
        """Addresses to listen on; empty means every address."""
        configs = self.plugin("bind") or ()
        return tuple(address for config in configs for address in config)


@attrs.frozen
class Config:
    servers: tuple[ServerBlock, ...]
    file: str


def setup_bind(directive: Directive, ctx: SetupContext) -> tuple[str, ...]:
    """`bind ADDRESS...`: listen on these addresses only (CoreDNS's bind plugin)."""
    directive.expect_args(1, usage="bind ADDRESS...")
    directive.expect_no_block()
    addresses = []
    for arg in directive.args:
        try:
            addresses.append(ipaddress.ip_address(arg).compressed)
        except ValueError:
            raise directive.error(f"bind: {arg!r} is not an IP address") from None
    return tuple(addresses)


def _parse_key(key: str, default_port: int, block: ServerBlockSource) -> tuple[str, list[tuple[str, int]]]:
    """A server block key ([dns://]ZONE[:PORT], a CIDR, or webhook://ZONE) -> (transport, [(zone, port)])."""
    text = key
    transport = "dns"
    if "://" in text:
        scheme, _, text = text.partition("://")
        transport = scheme.lower()
        if transport not in TRANSPORTS:
            raise block.error(
                f"server block key {key!r}: transport {scheme}:// is not supported (only dns:// and webhook://)"
            )
    if transport == "webhook":
        if ":" in text or "/" in text or not text:
            raise block.error(
                f"server block key {key!r}: a webhook:// block takes a zone only; "
                "the webhook's address is the webhook directive's"
            )
        return transport, [(normalize_zone(text), 0)]
    host, port = text, default_port
    # A reverse zone's port follows its prefix length, after an IPv6 CIDR's
    # own colons: "fd00::/64:1053" (plugin.SplitHostPort reads the last colon).
    cidr_port = "/" in text and "/" in text.rpartition(":")[0]
    if cidr_port or text.count(":") == 1 or (text.startswith("[") and "]:" in text):
        host, _, port_text = text.rpartition(":")
        host = host.strip("[]")
        try:
            port = int(port_text)
        except ValueError:
            raise block.error(f"server block key {key!r}: {port_text!r} is not a port number") from None
        if not 0 <= port <= 65535:
            raise block.error(f"server block key {key!r}: port {port} is out of range")
    if "/" in host:
        try:
            zones = zones_from_cidr(host)
        except ValueError:
            raise block.error(f"server block key {key!r}: {host!r} is not a CIDR") from None
    else:
        if not host:
            raise block.error(f"server block key {key!r}: the zone is empty")
        zones = (normalize_zone(host),)
    return transport, [(zone, port) for zone in zones]


def _block_configs(block: ServerBlockSource, ctx: SetupContext) -> tuple[tuple[str, Any], ...]:
    known = {spec.name: spec for spec in REGISTRY}
    by_name: dict[str, list[Directive]] = {}
    for directive in block.directives:
        if directive.name not in known:
            raise directive.error(
                f"unknown directive {directive.name!r} (supported: {', '.join(sorted(known))})"
            )
        by_name.setdefault(directive.name, []).append(directive)
    configs = []
    for spec in REGISTRY:
        directives = by_name.get(spec.name)
        if not directives:
            continue
        if not spec.repeatable and len(directives) > 1:
            raise directives[1].error(f"{spec.name}: this directive can only appear once per server block")
        setup = spec.load()
        if spec.repeatable:
            configs.append((spec.name, tuple(setup(d, ctx) for d in directives)))
        else:
            configs.append((spec.name, setup(directives[0], ctx)))
    return tuple(configs)


def assemble(blocks: list[ServerBlockSource], file: str, dns_port: int = DEFAULT_DNS_PORT) -> Config:
    """Turn parsed server blocks into the configuration. Raises CorefileError."""
    if not blocks:
        raise CorefileError(file, 0, "no server blocks: expected at least one, like '.:53 { ... }'")
    servers = []
    seen: dict[tuple[str, int, str], ServerBlockSource] = {}
    for block in blocks:
        by_port: dict[int, list[str]] = {}
        transports = set()
        for key in block.keys:
            transport, zones = _parse_key(key, dns_port, block)
            transports.add(transport)
            for zone, port in zones:
                if (zone, port, transport) in seen:
                    first = seen[(zone, port, transport)]
                    where = "in a webhook:// block" if transport == "webhook" else f"on port {port}"
                    raise block.error(
                        f"zone {zone} {where} is already served by the block at {first.file}:{first.line}"
                    )
                seen[(zone, port, transport)] = block
                by_port.setdefault(port, []).append(zone)
        if len(transports) > 1:
            raise block.error("a server block's keys must share one transport (dns:// or webhook://)")
        (transport,) = transports
        if transport == "webhook":
            _check_webhook_block(block)
        all_zones = tuple(zone for zones in by_port.values() for zone in zones)
        plugins = _block_configs(block, SetupContext(all_zones, block.file, block.line))
        for port, zones in by_port.items():
            servers.append(ServerBlock(tuple(zones), port, block.file, block.line, plugins, transport))
    return Config(tuple(servers), file)


def _check_webhook_block(block: ServerBlockSource) -> None:
    """A webhook:// block listens for AdmissionReviews only: no DNS directives."""
    names = {directive.name for directive in block.directives}
    for directive in block.directives:
        if directive.name not in WEBHOOK_BLOCK_DIRECTIVES:
            raise directive.error(
                f"{directive.name}: answers DNS, and a webhook:// block has no DNS listener "
                f"(allowed here: {', '.join(sorted(WEBHOOK_BLOCK_DIRECTIVES))})"
            )
    for needed in ("webhook", "kubernetes"):
        if needed not in names:
            raise block.error(f"a webhook:// block needs a {needed} directive")


def load(path: str, dns_port: int = DEFAULT_DNS_PORT, environ: Mapping[str, str] | None = None) -> Config:
    """Load a Corefile from disk. Raises CorefileError naming file:line."""
    return assemble(parse_file(path, environ), path, dns_port)


def load_text(
    text: str, file: str = "Corefile", dns_port: int = DEFAULT_DNS_PORT, environ: Mapping[str, str] | None = None
) -> Config:
    """Load Corefile text (tests, and the ConfigMap check). Raises CorefileError."""
    return assemble(parse(text, file, environ), file, dns_port)
