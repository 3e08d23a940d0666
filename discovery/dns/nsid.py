"""`nsid`: identify this server in answers to clients that ask (RFC 5001), as CoreDNS's plugin/nsid.

Syntax (CoreDNS's): ``nsid [DATA]``; DATA (the arguments joined by spaces)
defaults to the host's name.

A query whose OPT record carries an NSID option gets DATA back in an NSID
option of the answer's OPT record; other queries are untouched.
"""

from __future__ import annotations

import socket

import attrs
import dns.edns
import dns.flags
import dns.message
from twisted.internet.defer import Deferred

from ..corefile import Directive
from ..departures import Departure
from ..plugin import BuildContext, PluginSpec
from .request import Next, Request, Result

__all__ = ["NsidConfig", "NsidPlugin", "setup_nsid", "asks_nsid", "PLUGINS"]

_NSID = dns.edns.OptionType.NSID


@attrs.frozen
class NsidConfig:
    data: bytes


def setup_nsid(directive: Directive, ctx) -> NsidConfig:
    directive.expect_no_block()
    if directive.args:
        return NsidConfig(" ".join(directive.args).encode())
    try:
        hostname = socket.gethostname()
    except OSError:
        # CoreDNS's fallback when os.Hostname fails.
        hostname = "localhost"
    return NsidConfig(hostname.encode())


def asks_nsid(data: bytes, qend: int) -> bool:
    """Does a plain query (one question, then at most its OPT record) carry an NSID option?

    For the table of rendered answers, whose hit path has checked that
    shape already: the OPT's options start 11 bytes past the question.
    """
    i, end = qend + 11, len(data)
    while i + 4 <= end:
        if (data[i] << 8 | data[i + 1]) == _NSID:
            return True
        i += 4 + (data[i + 2] << 8 | data[i + 3])
    return False


def _no_nsid(data: bytes, qend: int, host: str) -> bool:
    return not asks_nsid(data, qend)


class NsidPlugin:
    """Adds DATA to the answers of queries that ask for NSID."""

    name = "nsid"

    def __init__(self, config: NsidConfig):
        self.config = config

    def serve(self, request: Request, next: Next) -> Result:
        if not (request.edns and any(option.otype == _NSID for option in request.query.options)):
            # Reused only for queries that do not ask either.
            request.fastpath.guard(_no_nsid)
            return next(request)
        # Rare (a diagnostic), so such answers are simply not reused.
        request.fastpath.forbid()
        result = next(request)
        if isinstance(result, Deferred):
            return result.addCallback(self._identify, request)
        return self._identify(result, request)

    def _identify(self, response: dns.message.Message | None, request: Request) -> dns.message.Message | None:
        """CoreDNS's ResponseWriter.WriteMsg: an OPT if missing (with DO, as SetEdns0(size, true)), its NSID set."""
        if response is None:
            return None
        if response.edns < 0:
            response.use_edns(0, dns.flags.DO, request.query.payload)
        nsid = dns.edns.NSIDOption(self.config.data)
        options = [nsid if option.otype == _NSID else option for option in response.options]
        if nsid not in options:
            options.append(nsid)
        response.use_edns(response.edns, response.ednsflags, response.payload, options=options)
        return response


def _build(config: NsidConfig, ctx: BuildContext) -> NsidPlugin:
    return NsidPlugin(config)


PLUGINS = (
    PluginSpec("nsid", setup_nsid, build=_build, departures=(
        Departure("nsid/do", "nsid", None, (),
                  "an answer's DO bit stays the client's; CoreDNS's nsid sets DO on answers its plugins wrote "
                  "without an OPT record", "discovery/dns/README.md#nsid"),
    )),
)
