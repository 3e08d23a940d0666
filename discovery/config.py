"""From the Corefile tree to the configuration: one frozen attrs value per directive.

Configuration flows one way: Corefile -> this tree of frozen values ->
constructors. Each supported directive is declared by the module that
implements it (`discovery.plugin`): its setup function, and its place in
CoreDNS's plugin order (plugin.cfg), the order in which a query passes the
plugins of a server block, whatever order the Corefile lists them in. A
directive that is not declared stops start-up with its file and line.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from . import plugin as declared
from .corefile import CorefileError, ServerBlockSource, parse, parse_file
from .plugin import SetupContext
from .zones import normalize_zone, zones_from_cidr

__all__ = [
    "Config",
    "ServerBlock",
    "SetupContext",
    "load",
    "load_text",
    "assemble",
]

DEFAULT_DNS_PORT = 53
#: Server block transports: CoreDNS's plain DNS, and Wayfinder's webhook-only blocks.
TRANSPORTS = ("dns", "webhook")


@attrs.frozen
class ServerBlock:
    """One server block: its zones, port and the configs of its directives."""

    zones: tuple[str, ...]
    port: int
    file: str
    line: int
    #: (directive name, config) in chain order (plugin.cfg's).
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
    by_name: dict[str, list] = {}
    for directive in block.directives:
        if declared.spec(directive.name) is None:
            raise directive.error(
                f"unknown directive {directive.name!r} (supported: {', '.join(sorted(declared.names()))})"
            )
        by_name.setdefault(directive.name, []).append(directive)
    configs = []
    for spec in declared.specs():
        directives = by_name.get(spec.name)
        if not directives:
            continue
        if not spec.repeatable and len(directives) > 1:
            raise directives[1].error(f"{spec.name}: this directive can only appear once per server block")
        if spec.repeatable:
            configs.append((spec.name, tuple(spec.setup(d, ctx) for d in directives)))
        else:
            configs.append((spec.name, spec.setup(directives[0], ctx)))
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
        _check_webhook_source(block, plugins)
        for port, zones in by_port.items():
            servers.append(ServerBlock(tuple(zones), port, block.file, block.line, plugins, transport))
    return Config(tuple(servers), file)


def _check_webhook_source(block: ServerBlockSource, plugins: tuple[tuple[str, Any], ...]) -> None:
    """The webhook reads the cache of its block's `kubernetes` directive: it needs one."""
    names = {name for name, _ in plugins}
    if "webhook" in names and "kubernetes" not in names:
        webhook = next(d for d in block.directives if d.name == "webhook")
        raise webhook.error("webhook: needs a kubernetes directive in the same server block (its cache feeds the webhook)")


def _check_webhook_block(block: ServerBlockSource) -> None:
    """A webhook:// block listens for AdmissionReviews only: no DNS directives."""
    names = {directive.name for directive in block.directives}
    allowed = sorted(spec.name for spec in declared.specs() if spec.in_webhook_block)
    for directive in block.directives:
        if directive.name not in allowed:
            raise directive.error(
                f"{directive.name}: answers DNS, and a webhook:// block has no DNS listener "
                f"(allowed here: {', '.join(allowed)})"
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
