"""`minimal`: answer with the answer section alone when that is the whole story, as CoreDNS's plugin/minimal.

Syntax: ``minimal``. A successful answer (CoreDNS's response type NoError:
records in the answer section with NOERROR, or NOERROR with neither an SOA
nor an NS record in the authority section) loses its authority and
additional records. Denials (NXDOMAIN, NODATA), errors, referrals and zone
transfers pass unchanged.
"""

from __future__ import annotations

import dns.message
from twisted.internet.defer import Deferred

from ..departures import Departure
from ..plugin import Bare, BuildContext, PluginSpec, setup_bare
from .cache.classify import NOERROR, typify
from .request import Next, Request, Result

__all__ = ["MinimalPlugin", "is_noerror", "minimize", "PLUGINS"]


def is_noerror(message: dns.message.Message, now: float) -> bool:
    """Is the response of CoreDNS's type NoError? `now` is wall-clock time, for RRSIGs."""
    return typify(message, now) == NOERROR


def minimize(message: dns.message.Message, now: float) -> dns.message.Message:
    """The response without authority and additional records when it is NoError; as it was otherwise.

    CoreDNS writes a message with no Extra at all, OPT included, and its
    server then adds the client's OPT back: the response's own EDNS options
    (an upstream's) go too.
    """
    if is_noerror(message, now):
        message.authority = []
        message.additional = []
        if message.edns >= 0 and message.options:
            message.use_edns(message.edns, message.ednsflags, message.payload, options=[])
    return message


class MinimalPlugin:
    name = "minimal"

    def __init__(self, reactor):
        self.reactor = reactor

    def serve(self, request: Request, next: Next) -> Result:
        result = next(request)
        if isinstance(result, Deferred):
            return result.addCallback(self._minimize)
        return self._minimize(result)

    def _minimize(self, response: dns.message.Message | None) -> dns.message.Message | None:
        return None if response is None else minimize(response, self.reactor.seconds())


def _build(config: Bare, ctx: BuildContext) -> MinimalPlugin:
    return MinimalPlugin(ctx.reactor)


PLUGINS = (
    PluginSpec("minimal", setup_bare, build=_build, departures=(
        Departure("minimal/unexpected-types", "minimal", None, (),
                  "a zone transfer or UPDATE response passes silently; CoreDNS also logs an error for it",
                  "discovery/dns/README.md#minimal"),
    )),
)
