"""The `loop` directive: stop when queries come back to us (CoreDNS's loop plugin).

Syntax: ``loop`` (no arguments). At start the plugin sends
``<random>.<random>.ZONE. IN HINFO`` (ZONE: the block's first zone) to the
server it runs in, trying for up to 30 seconds, one second between tries.
Every time that query passes the plugin it is counted; seeing it more than
twice means a forwarding loop, and the process stops with CoreDNS's
message. Two seconds after a probe got an answer (or when the 30 seconds are
over) the plugin turns itself off, so that no later query can kill the
server.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Callable

import attrs
import dns.message
import dns.rdatatype
from twisted.internet import defer

from ..corefile import Directive
from ..net import join_host_port
from ..plugin import BuildContext, PluginSpec
from ..zones import in_zone
from .request import Request
from .upstream import UpstreamAddress, UpstreamError, query_once

__all__ = ["LoopConfig", "LoopPlugin", "setup_loop", "loop_message"]

log = logging.getLogger("wayfinder.loop")

#: CoreDNS's loop plugin: how long start-up probing lasts, the pause
#: between tries, and how long after an answer the plugin stays on.
PROBE_PERIOD = 30.0
RETRY_INTERVAL = 1.0
GRACE = 2.0
#: miekg/dns's Exchange timeout.
PROBE_TIMEOUT = 2.0
#: More sightings than this is a loop.
MAX_SEEN = 2


@attrs.frozen
class LoopConfig:
    #: The block's first zone: the probe name lives in it.
    zone: str


def setup_loop(directive: Directive, ctx) -> LoopConfig:
    """Parse a `loop` directive. Raises CorefileError naming file:line."""
    directive.expect_args(0, 0, "loop")
    directive.expect_no_block()
    return LoopConfig(zone=ctx.zones[0] if ctx.zones else ".")


def probe_name(zone: str) -> str:
    """<random 62-bit>.<random 62-bit>.zone."""
    labels = f"{secrets.randbelow(1 << 62)}.{secrets.randbelow(1 << 62)}"
    return f"{labels}." if zone == "." else f"{labels}.{zone}"


def loop_message(client: str, server: str, zone: str, qname: str) -> str:
    """CoreDNS's fatal line, word for word."""
    return (
        f'Loop ({client} -> {server}) detected for zone "{zone}", '
        f'see https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO {qname}"'
    )


def _halt(message: str) -> None:
    # CoreDNS's log.Fatalf: say why, then exit 1 at once.
    log.critical(message)
    logging.shutdown()
    os._exit(1)


def _address_of(server: str) -> tuple[str, int]:
    """The (host, port) of a server label: "dns://[::1]:53" -> ("::1", 53)."""
    host, _, port = server.partition("://")[2].rpartition(":")
    return host.strip("[]"), int(port)


class LoopPlugin:
    """Counts the start-up probe on its way through; see the module doc.

    `registry` is taken like every plugin's, though loop has no metrics;
    `on_loop` gets the fatal line (by default: log it and exit 1, as
    CoreDNS's log.Fatalf).
    """

    name = "loop"

    def __init__(
        self,
        config: LoopConfig,
        reactor,
        *,
        registry=None,
        server: str = "dns://:53",
        on_loop: Callable[[str], None] = _halt,
        qname: str | None = None,
        exchange: Callable[[UpstreamAddress, bytes], defer.Deferred] | None = None,
        address: tuple[str, int] | None = None,
    ):
        self.config = config
        self.reactor = reactor
        self.server = server
        self.qname = (qname or probe_name(config.zone)).lower()
        self._on_loop = on_loop
        #: Sends the probe and fires on the reply (tests pass their own).
        self._exchange = exchange or (lambda target, wire: query_once(reactor, target, wire, PROBE_TIMEOUT))
        #: How often the probe passed since the last failed try.
        self.seen = 0
        self.disabled = False
        self._address = ""
        self._target = UpstreamAddress("127.0.0.1", 53)
        self._deadline = 0.0
        self._timer = None
        self._probe: defer.Deferred | None = None
        #: Where start() sends the probe when it is given no address.
        self._start_address = address

    def start(self, address: tuple[str, int] | None = None) -> None:
        """Start probing the server at address, the block's (host, port).

        Without an address, the one given at construction; without that,
        the server label names it ("dns://:1053" is port 1053 on this host),
        as CoreDNS's first listen host and port.
        """
        address = address if address is not None else self._start_address
        host, port = address if address is not None else _address_of(self.server)
        self._address = join_host_port(host, port)
        self._target = UpstreamAddress(host or "127.0.0.1", port)
        self._deadline = self.reactor.seconds() + PROBE_PERIOD
        self._try()

    def stop(self) -> None:
        self.disabled = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._probe is not None:
            self._probe.cancel()

    def _try(self) -> None:
        self._timer = None
        if self.disabled:
            return
        if self.reactor.seconds() >= self._deadline:
            self.disabled = True
            return
        query = dns.message.make_query(self.qname, dns.rdatatype.HINFO, use_edns=False)
        self._probe = defer.maybeDeferred(self._exchange, self._target, query.to_wire())
        self._probe.addCallbacks(self._answered, self._failed)

    def _answered(self, _) -> None:
        self._probe = None
        if not self.disabled:
            self._timer = self.reactor.callLater(GRACE, self.stop)

    def _failed(self, failure) -> None:
        self._probe = None
        if self.disabled:
            return  # stopped while the probe was out
        failure.trap(UpstreamError)
        self.seen = 0
        self._timer = self.reactor.callLater(RETRY_INTERVAL, self._try)

    def serve(self, request: Request, next):
        if request.qtype != dns.rdatatype.HINFO or self.disabled:
            return next(request)
        name = request.name
        if not in_zone(name, self.config.zone):
            return next(request)
        if name == self.qname:
            self.seen += 1
        if self.seen > MAX_SEEN:
            client = join_host_port(*request.client)
            self._on_loop(loop_message(client, self._address, self.config.zone, self.qname))
        return next(request)


def _build(config: LoopConfig, ctx: BuildContext) -> LoopPlugin:
    # The probe goes to this block's own listener.
    return LoopPlugin(config, ctx.reactor, registry=ctx.registry, server=ctx.server, address=ctx.address)


PLUGINS = (PluginSpec("loop", setup_loop, build=_build),)
