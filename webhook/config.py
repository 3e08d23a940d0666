"""The `webhook` directive: where the admission webhook listens and which certificate it serves.

Syntax::

    webhook [ADDRESS] {
        tls CERT KEY | tls auto [NAME...]
        path PATH
        read_timeout DURATION
        max_connections COUNT
    }

ADDRESS is ``[HOST]:PORT`` (default ``:8443``, every address); HOST, when
given, is an IP address. ``tls`` is required: the API server only calls
webhooks over HTTPS. ``tls auto`` makes a certificate for localhost, the
loopback addresses and the NAMEs (the Service's DNS names) for local use.
PATH defaults to ``/mutate``. Relative file names are relative to the
Corefile. Each request (headers and body) must be complete within
``read_timeout`` (default 10 s) of the connection's start or of the previous
answer; at most ``max_connections`` (default 1,000) connections are open at
once, and one more is closed as soon as it is accepted.
"""

from __future__ import annotations

import ipaddress
import os
import re

import attrs

from discovery.corefile import Directive, positive_duration
from discovery.plugin import PluginSpec, ServeContext

__all__ = [
    "WebhookConfig",
    "CertificateFiles",
    "AutoCertificate",
    "setup_webhook",
    "DEFAULT_PORT",
    "DEFAULT_PATH",
    "DEFAULT_MAX_REQUEST_BYTES",
    "HEALTH_PATH",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
]

DEFAULT_PORT = 8443
DEFAULT_PATH = "/mutate"
#: The API server's own limit on a request body (3 MiB): no AdmissionReview
#: it sends is larger.
DEFAULT_MAX_REQUEST_BYTES = 3 * 1024 * 1024
HEALTH_PATH = "/healthz"
#: The API server's default webhook timeout is 10 s: a request that takes
#: longer to arrive has been given up by its sender.
DEFAULT_READ_TIMEOUT = 10.0
#: The API servers of a cluster keep a few connections each.
DEFAULT_MAX_CONNECTIONS = 1_000
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_USAGE = (
    "webhook [ADDRESS] { tls CERT KEY | tls auto [NAME...]; path PATH; "
    "read_timeout DURATION; max_connections COUNT }"
)


@attrs.frozen
class CertificateFiles:
    """`tls CERT KEY`: PEM files, re-read when they change."""

    cert: str
    key: str


@attrs.frozen
class AutoCertificate:
    """`tls auto [NAME...]`: a certificate made at start-up, for local use."""

    #: DNS names for the certificate besides localhost.
    names: tuple[str, ...] = ()


@attrs.frozen
class WebhookConfig:
    tls: CertificateFiles | AutoCertificate
    #: "" listens on every address.
    host: str = ""
    port: int = DEFAULT_PORT
    path: str = DEFAULT_PATH
    #: Larger bodies are answered 413 without being kept.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: A request (headers and body) must be complete this long after the
    #: connection opened or the previous answer was sent.
    read_timeout: float = DEFAULT_READ_TIMEOUT
    #: Open connections at most; one more is closed as soon as it is accepted.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Where the directive stands, for messages; not part of what it means, so
    # a reload that only moves the line keeps the running instance.
    file: str = attrs.field(default="", eq=False)
    line: int = attrs.field(default=0, eq=False)


def _parse_address(directive: Directive, text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise directive.error(f"webhook: {text!r} is not an address like [::1]:8443")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        # A bare host: an IPv4 address, or an IPv6 one without brackets.
        host, port_text = text, str(DEFAULT_PORT)
    if host:
        try:
            host = ipaddress.ip_address(host).compressed
        except ValueError:
            raise directive.error(f"webhook: {host!r} in {text!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise directive.error(f"webhook: {port_text!r} in {text!r} is not a port number (0-65535)")
    return host, int(port_text)


def setup_webhook(directive: Directive, ctx) -> WebhookConfig:
    """Parse a `webhook` directive. Raises CorefileError naming file:line."""
    directive.expect_args(0, 1, _USAGE)
    host, port = _parse_address(directive, directive.args[0]) if directive.args else ("", DEFAULT_PORT)
    base = os.path.dirname(os.path.abspath(directive.file)) if directive.file else os.getcwd()
    options: dict = {}
    seen: set[str] = set()
    for option in directive.block:
        if option.name in seen:
            raise option.error(f"webhook: option {option.name!r} is given twice")
        seen.add(option.name)
        option.expect_no_block()
        if option.name == "tls":
            option.expect_args(1, usage="tls CERT KEY | tls auto [NAME...]")
            if option.args[0] == "auto":
                names = tuple(name.rstrip(".").lower() for name in option.args[1:])
                for name in names:
                    if len(name) > 253 or not _DNS_NAME.match(name):
                        raise option.error(f"webhook: tls auto: {name!r} is not a DNS name")
                options["tls"] = AutoCertificate(names)
            else:
                option.expect_args(2, 2, "tls CERT KEY | tls auto [NAME...]")
                cert, key = (p if os.path.isabs(p) else os.path.join(base, p) for p in option.args)
                options["tls"] = CertificateFiles(cert, key)
        elif option.name == "path":
            option.expect_args(1, 1, "path PATH")
            path = option.args[0]
            if not path.startswith("/") or "?" in path or "#" in path:
                raise option.error(f"webhook: path {path!r} must be a URL path starting with '/'")
            if path == HEALTH_PATH:
                raise option.error(f"webhook: path {HEALTH_PATH} is the health check; choose another")
            options["path"] = path
        elif option.name == "read_timeout":
            option.expect_args(1, 1, "read_timeout DURATION")
            options["read_timeout"] = positive_duration(option, option.args[0], "webhook: read_timeout")
        elif option.name == "max_connections":
            option.expect_args(1, 1, "max_connections COUNT")
            text = option.args[0]
            if not text.isdigit() or int(text) < 1:
                raise option.error(f"webhook: max_connections {text!r} is not a positive whole number")
            options["max_connections"] = int(text)
        else:
            raise option.error(
                f"webhook: unknown property {option.name!r} (expected tls, path, read_timeout or max_connections)"
            )
    if "tls" not in options:
        raise directive.error(
            "webhook: tls is required (the API server calls webhooks over HTTPS): "
            "add 'tls CERT KEY', or 'tls auto' for local use"
        )
    return WebhookConfig(host=host, port=port, file=directive.file, line=directive.line, **options)


def serve_webhook(config: WebhookConfig, ctx: ServeContext):
    """The HTTPS server for one `webhook` directive, reading the block's watch cache."""
    # Imported here: finding the directives must not import the TLS stack.
    from webhook.server import WebhookServer

    return WebhookServer(config, ctx.store, ctx.reactor, registry=ctx.registry, guard=ctx.guard)


# Not in CoreDNS: it sits beside the kubernetes directive whose cache feeds it.
PLUGINS = (
    PluginSpec("webhook", setup_webhook, serve=serve_webhook, after="kubernetes", in_webhook_block=True),
)
