"""`chaos`: answer CH TXT queries for the server's version, authors and host name.

Syntax (CoreDNS's): ``chaos [VERSION] [AUTHORS...]``.

As CoreDNS's plugin/chaos: a TXT query in class CH for `version.bind` or
`version.server` gets VERSION; `authors.bind` one TXT record per author, in
an order shuffled once per second; `hostname.bind` and `id.server` the host
name. Every other query goes to the next plugin. The answers have TTL 0 and
no AA bit, and each string is cut to 255 bytes.
"""

from __future__ import annotations

import random
import socket

import attrs
import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from .. import __version__
from ..corefile import Directive
from ..departures import Departure
from ..plugin import BuildContext, PluginSpec
from .request import Next, Request, Result

__all__ = ["ChaosConfig", "ChaosPlugin", "setup_chaos", "chaos_texts", "DEFAULT_VERSION", "PLUGINS"]

#: CoreDNS's default is caddy.AppName + "-" + caddy.AppVersion ("CoreDNS-1.12.0").
DEFAULT_VERSION = f"Wayfinder-{__version__}"
#: CoreDNS's default is the GitHub handles of its OWNERS files; Wayfinder has one name.
DEFAULT_AUTHORS = ("Wayfinder",)
#: A TXT character-string holds at most 255 bytes.
MAX_TEXT = 255
_VERSION_NAMES = frozenset({"version.bind.", "version.server."})
_HOSTNAME_NAMES = frozenset({"hostname.bind.", "id.server."})
_AUTHORS_NAME = "authors.bind."


def _trim(text: str) -> bytes:
    return text.encode()[:MAX_TEXT]


@attrs.frozen
class ChaosConfig:
    """What `chaos` answers, as TXT strings (already cut to 255 bytes)."""

    version: bytes = _trim(DEFAULT_VERSION)
    authors: tuple[bytes, ...] = tuple(_trim(author) for author in DEFAULT_AUTHORS)


def setup_chaos(directive: Directive, ctx) -> ChaosConfig:
    """VERSION alone keeps the default authors; with AUTHORS they are deduplicated and sorted (CoreDNS's parse)."""
    directive.expect_no_properties()
    args = directive.args
    if not args:
        return ChaosConfig()
    if len(args) == 1:
        return ChaosConfig(version=_trim(args[0]))
    return ChaosConfig(version=_trim(args[0]), authors=tuple(_trim(author) for author in sorted(set(args[1:]))))


def chaos_texts(name: str, config: ChaosConfig, hostname: str, second: int) -> list[bytes] | None:
    """The TXT strings for a lower-cased CH TXT question, or None when chaos does not answer it.

    `second` (whole Unix seconds) seeds the authors' order, as CoreDNS seeds
    its shuffle with time.Now().Unix(): one order per second.
    """
    if name in _VERSION_NAMES:
        return [config.version]
    if name in _HOSTNAME_NAMES:
        return [_trim(hostname)]
    if name == _AUTHORS_NAME:
        return random.Random(second).sample(config.authors, len(config.authors))
    return None


class ChaosPlugin:
    """Answers CH TXT version.bind and friends; see the module doc."""

    name = "chaos"

    def __init__(self, config: ChaosConfig, reactor, hostname: str | None = None):
        self.config = config
        self.reactor = reactor
        self.hostname = hostname if hostname is not None else _hostname()

    def serve(self, request: Request, next: Next) -> Result:
        if request.qclass != dns.rdataclass.CH or request.qtype != dns.rdatatype.TXT:
            return next(request)
        name = request.name
        second = int(self.reactor.seconds())
        texts = chaos_texts(name, self.config, self.hostname, second)
        if texts is None:
            return next(request)
        if name == _AUTHORS_NAME:
            request.fastpath.expire_at(second + 1)
        response = request.reply()
        rrset = dns.rrset.RRset(request.qname, dns.rdataclass.CH, dns.rdatatype.TXT)
        for text in texts:
            rrset.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.CH, dns.rdatatype.TXT, [text]), 0)
        if texts:
            response.answer.append(rrset)
        request.plugin = self.name
        return response


def _hostname() -> str:
    try:
        return socket.gethostname()
    except OSError:
        # CoreDNS's fallback when os.Hostname fails.
        return "localhost"


def _build(config: ChaosConfig, ctx: BuildContext) -> ChaosPlugin:
    return ChaosPlugin(config, ctx.reactor)


PLUGINS = (
    PluginSpec("chaos", setup_chaos, build=_build, departures=(
        Departure("chaos/defaults", "chaos", None, (),
                  "without arguments VERSION is Wayfinder-<version> and AUTHORS Wayfinder; CoreDNS's are "
                  "CoreDNS-<version> and its maintainers; VERSION is always cut to 255 bytes",
                  "discovery/dns/README.md#chaos"),
    )),
)
