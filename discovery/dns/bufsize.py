"""`bufsize`: cap the EDNS buffer size of the requests a server block handles.

Syntax (CoreDNS's): ``bufsize [SIZE]``; SIZE from 512 to 4096, default 1232
(the DNS flag day 2020 size).

As CoreDNS's plugin/bufsize: a request with an OPT record whose UDP size is
larger than SIZE has it lowered to SIZE before the next plugins see it; a
smaller one, or a request without OPT, is left alone (the plugin never
raises a size, nor adds an OPT record). So a UDP answer is cut to SIZE,
`forward` asks its upstreams with SIZE, and an answer of the table of
rendered answers larger than SIZE is reused over TCP only.
"""

from __future__ import annotations

import re

import attrs

from ..corefile import Directive
from ..departures import Departure
from ..plugin import BuildContext, PluginSpec
from .request import Next, Request, Result

__all__ = ["BufsizeConfig", "BufsizePlugin", "setup_bufsize", "DEFAULT_SIZE", "PLUGINS"]

#: http://www.dnsflagday.net/2020/
DEFAULT_SIZE = 1232
#: RFC 6891's range, as CoreDNS checks it.
MIN_SIZE, MAX_SIZE = 512, 4096
_INTEGER = re.compile(r"[+-]?[0-9]+")


@attrs.frozen
class BufsizeConfig:
    size: int = DEFAULT_SIZE


def setup_bufsize(directive: Directive, ctx) -> BufsizeConfig:
    directive.expect_args(0, 1, "bufsize [SIZE]")
    directive.expect_no_block()
    if not directive.args:
        return BufsizeConfig()
    text = directive.args[0]
    # Go's strconv.Atoi: an optional sign and ASCII digits.
    size = int(text) if _INTEGER.fullmatch(text) else -1
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise directive.error(f"bufsize: {text!r} is not a buffer size from {MIN_SIZE} to {MAX_SIZE}")
    return BufsizeConfig(size)


class BufsizePlugin:
    """Lowers the request's EDNS UDP size to the configured one."""

    name = "bufsize"

    def __init__(self, config: BufsizeConfig):
        self.size = config.size

    def serve(self, request: Request, next: Next) -> Result:
        size = self.size
        query = request.query
        if request.edns and query.payload > size:
            query.use_edns(query.edns, query.ednsflags, size, options=query.options)
            if request.proto == "udp":
                request.max_size = size
        # Whatever this client said, the next one may have said more.
        request.fastpath.limit_udp(size)
        return next(request)


def _build(config: BufsizeConfig, ctx: BuildContext) -> BufsizePlugin:
    return BufsizePlugin(config)


PLUGINS = (
    PluginSpec("bufsize", setup_bufsize, build=_build, departures=(
        Departure("bufsize/opt-size", "bufsize", None, (),
                  "the answer's OPT offers 1232 bytes; CoreDNS's echoes the lowered size of the request",
                  "discovery/dns/README.md#bufsize"),
    )),
)
