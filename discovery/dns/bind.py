"""`bind`: listen on these addresses only (CoreDNS's bind plugin).

Syntax: ``bind ADDRESS...``, repeatable; the block listens on every address
of every `bind` line (`ServerBlock.bind`), and on every address without one.
Interface names and `except` are not supported.
"""

from __future__ import annotations

import ipaddress

from ..corefile import Directive
from ..plugin import PluginSpec, SetupContext

__all__ = ["setup_bind", "PLUGINS"]


def setup_bind(directive: Directive, ctx: SetupContext) -> tuple[str, ...]:
    """`bind ADDRESS...`: the addresses, compressed."""
    directive.expect_args(1, usage="bind ADDRESS...")
    directive.expect_no_block()
    addresses = []
    for arg in directive.args:
        try:
            addresses.append(ipaddress.ip_address(arg).compressed)
        except ValueError:
            raise directive.error(f"bind: {arg!r} is not an IP address") from None
    return tuple(addresses)


PLUGINS = (PluginSpec("bind", setup_bind, repeatable=True),)
