"""The `timeouts` directive, and the deadlines of DNS over TCP.

Syntax (CoreDNS's, plus `maxtcpconnections`)::

    timeouts {
        read DURATION
        write DURATION
        idle DURATION
        maxtcpqueries MAXIMUM
        maxtcpconnections MAXIMUM
    }

As CoreDNS's server (core/dnsserver/server.go): read 3 s, write 5 s, idle
10 s, maxtcpqueries -1 (unlimited); each duration between 1 s and 24 h.
They apply to the TCP side of the block's server. `maxtcpconnections` is
Wayfinder's: the open TCP connections the server keeps at once (default
10,000), beyond which a new one is closed as soon as it is accepted.
"""

from __future__ import annotations

import attrs

from ..corefile import Directive
from ..plugin import PluginSpec

__all__ = ["TimeoutsConfig", "setup_timeouts", "DEFAULT_MAX_TCP_CONNECTIONS"]

#: Go's process has no file-descriptor budget to guard; ours does (see
#: discovery/ops/fds.py), so the server keeps at most this many.
DEFAULT_MAX_TCP_CONNECTIONS = 10_000
_MIN_TIMEOUT, _MAX_TIMEOUT = 1.0, 24 * 3600.0
_USAGE = "timeouts { read|write|idle DURATION; maxtcpqueries MAXIMUM; maxtcpconnections MAXIMUM }"


@attrs.frozen
class TimeoutsConfig:
    """How long a TCP client may take, and how much of the server it may hold."""

    #: The first message of a connection must be complete this long after
    #: the connection opens, and any message this long after its first byte.
    read: float = 3.0
    #: An answer the client does not take (its window stays full) for this
    #: long closes the connection.
    write: float = 5.0
    #: A connection with no message in progress and no answer pending is
    #: closed after this long.
    idle: float = 10.0
    #: Queries answered on one connection before it is closed; -1: no limit.
    max_tcp_queries: int = -1
    max_tcp_connections: int = DEFAULT_MAX_TCP_CONNECTIONS


def _whole(option: Directive, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise option.error(f"invalid value for {option.name} {text!r}: not a whole number") from None


def setup_timeouts(directive: Directive, ctx) -> TimeoutsConfig:
    """Parse a `timeouts` block, as CoreDNS's plugin/timeouts/setup.go does. Raises CorefileError."""
    directive.expect_args(0, 0, _USAGE)
    values: dict = {}
    for option in directive.block:
        option.expect_args(1, 1, f"{option.name} VALUE")
        option.expect_no_block()
        text = option.args[0]
        if option.name == "maxtcpqueries":
            count = _whole(option, text)
            if count == 0 or count < -1:
                raise option.error(f"maxtcpqueries provided '{count}' needs to be -1 (unlimited) or a positive integer")
            values["max_tcp_queries"] = count
        elif option.name == "maxtcpconnections":
            count = _whole(option, text)
            if count < 1:
                raise option.error(f"maxtcpconnections provided '{count}' needs to be a positive integer")
            values["max_tcp_connections"] = count
        elif option.name in ("read", "write", "idle"):
            # A bare number is seconds (plugin/pkg/durations).
            seconds = float(int(text)) if text.isdigit() else option.duration(text, "timeouts")
            if not _MIN_TIMEOUT <= seconds <= _MAX_TIMEOUT:
                raise option.error(f"timeout provided '{text}' needs to be between 1 second and 24 hours")
            values[option.name] = seconds
        else:
            raise option.error(f"unknown option: '{option.name}'")
    if not values:
        raise directive.error("timeouts block with no timeouts specified")
    return TimeoutsConfig(**values)


# Not in the query's path: the server reads it (Application._commit).
PLUGINS = (PluginSpec("timeouts", setup_timeouts),)
