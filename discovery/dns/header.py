"""`header`: set or clear flags of queries and responses, as CoreDNS's plugin/header.

Syntax (CoreDNS's)::

    header {
        query|response set|clear FLAGS...
    }

FLAGS are `aa`, `ra` and `rd`. Query rules change the request before the
plugins after `header` see it (`forward` sends it upstream so changed, and
the response's RD echoes it); response rules change every response those
plugins write. Rules apply in order, so the last one for a flag wins.
"""

from __future__ import annotations

from typing import Iterable

import attrs
import dns.flags
import dns.message
from twisted.internet.defer import Deferred

from ..corefile import Directive
from ..departures import Departure
from ..plugin import BuildContext, PluginSpec
from .request import Next, Request, Result

__all__ = ["HeaderConfig", "HeaderPlugin", "setup_header", "apply_rules", "PLUGINS"]

FLAGS = {"aa": dns.flags.AA, "ra": dns.flags.RA, "rd": dns.flags.RD}
_USAGE = "header { query|response set|clear FLAGS... }"


@attrs.frozen
class HeaderConfig:
    """Rules as (flag bit, state), in the order written."""

    query: tuple[tuple[int, bool], ...] = ()
    response: tuple[tuple[int, bool], ...] = ()


def _rules(option: Directive) -> tuple[tuple[int, bool], ...]:
    """One rule line's rules, checked in CoreDNS's order (newRules)."""
    action = option.args[0] if option.args else ""
    flags = option.args[1:]
    if not action:
        raise option.error("header: setting up rule: no flag action provided")
    if not flags:
        raise option.error("header: setting up rule: invalid length for flags, at least one should be provided")
    action = action.lower()
    if action not in ("set", "clear"):
        raise option.error(f"header: setting up rule: unknown flag action={action}, should be set or clear")
    rules = []
    for flag in flags:
        bit = FLAGS.get(flag.lower())
        if bit is None:
            raise option.error(f"header: setting up rule: unknown/unsupported flag={flag.lower()}")
        rules.append((bit, action == "set"))
    return tuple(rules)


def setup_header(directive: Directive, ctx) -> HeaderConfig:
    directive.expect_args(0, 0, _USAGE)
    query: list = []
    response: list = []
    for option in directive.block:
        selector = option.name.lower()
        if selector not in ("query", "response"):
            raise option.error(f"header: setting up rule: invalid selector={selector} should be query or response")
        option.expect_no_block()
        (query if selector == "query" else response).extend(_rules(option))
    if not query and not response:
        raise directive.error(f"header: expected at least one rule; usage: {_USAGE}")
    return HeaderConfig(tuple(query), tuple(response))


def apply_rules(flags: int, rules: Iterable[tuple[int, bool]]) -> int:
    for bit, state in rules:
        flags = flags | bit if state else flags & ~bit
    return flags


def _fixed_rd(config: HeaderConfig) -> int | None:
    """The RD bit every response after `header` carries, when its rules decide it."""
    for rules in (config.response, config.query):
        decided = [state for bit, state in rules if bit == dns.flags.RD]
        if decided:
            return int(decided[-1])
    return None


class HeaderPlugin:
    """Applies the query rules, then the response rules to what the next plugins answer."""

    name = "header"

    def __init__(self, config: HeaderConfig):
        self.config = config
        self._rd = _fixed_rd(config)

    def serve(self, request: Request, next: Next) -> Result:
        config = self.config
        if config.query:
            request.query.flags = apply_rules(request.query.flags, config.query)
        if self._rd is not None:
            # The table of rendered answers must not write the client's RD in.
            request.fastpath.rd = self._rd
        result = next(request)
        if not config.response:
            return result
        if isinstance(result, Deferred):
            return result.addCallback(self._respond)
        return self._respond(result)

    def _respond(self, response: dns.message.Message | None) -> dns.message.Message | None:
        if response is not None:
            response.flags = apply_rules(response.flags, self.config.response)
        return response


def _build(config: HeaderConfig, ctx: BuildContext) -> HeaderPlugin:
    return HeaderPlugin(config)


PLUGINS = (
    PluginSpec("header", setup_header, build=_build, departures=(
        Departure("header/servfail", "header", None, (),
                  "the SERVFAIL of a block where no plugin answers gets the response rules; CoreDNS's server "
                  "writes it untouched", "discovery/dns/README.md#header"),
    )),
)
