"""`any`: answer ANY queries with a short HINFO record (RFC 8482), as CoreDNS's plugin/any.

Syntax: ``any``. A query of type ANY gets ``NAME 8482 IN HINFO "ANY
obsoleted" "See RFC 8482"`` and goes no further; other types go on.
"""

from __future__ import annotations

import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ..plugin import Bare, BuildContext, PluginSpec, setup_bare
from .request import Next, Request, Result

__all__ = ["AnyPlugin", "PLUGINS"]

#: RFC 8482 section 4.2's suggestion, as CoreDNS writes it.
HINFO_TTL = 8482
HINFO = '"ANY obsoleted" "See RFC 8482"'


class AnyPlugin:
    name = "any"

    def serve(self, request: Request, next: Next) -> Result:
        if request.qtype != dns.rdatatype.ANY:
            return next(request)
        response = request.reply()
        # Class IN whatever the question's, and no AA: CoreDNS's SetReply and header.
        response.answer.append(
            dns.rrset.from_text(request.qname, HINFO_TTL, dns.rdataclass.IN, dns.rdatatype.HINFO, HINFO)
        )
        request.plugin = self.name
        return response


def _build(config: Bare, ctx: BuildContext) -> AnyPlugin:
    return AnyPlugin()


PLUGINS = (PluginSpec("any", setup_bare, build=_build),)
