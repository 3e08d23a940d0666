"""`whoami`: tell the client its own address, port and transport, as CoreDNS's plugin/whoami.

Syntax: ``whoami``. Every query that reaches it is answered (it is last in
CoreDNS's order and never passes a query on): NOERROR, AA, an empty answer
section, and in the additional section the client's address (A or AAAA,
owned by the question's name) and an SRV record ``_PROTO.NAME`` whose port
is the client's port, target the root. Records have TTL 0 and the
question's class.
"""

from __future__ import annotations

import ipaddress

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from ..plugin import Bare, BuildContext, PluginSpec, setup_bare
from .request import Next, Request, Result

__all__ = ["WhoamiPlugin", "whoami_records", "PLUGINS"]


def _rrset(name: dns.name.Name, rdata) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rdata.rdclass, rdata.rdtype)
    rrset.add(rdata, 0)
    return rrset


def whoami_records(qname: dns.name.Name, qclass: int, host: str, port: int, proto: str) -> list[dns.rrset.RRset]:
    """The additional section: the client's address, then `_PROTO.NAME` SRV with its port."""
    address = ipaddress.ip_address(host)
    if address.version == 4:
        rdata = dns.rdtypes.IN.A.A(qclass, dns.rdatatype.A, str(address))
    else:
        rdata = dns.rdtypes.IN.AAAA.AAAA(qclass, dns.rdatatype.AAAA, str(address))
    # "_udp." + "." is "_udp." for the root, as CoreDNS special-cases it.
    srv_name = dns.name.Name((f"_{proto}".encode(),) + qname.labels)
    srv = dns.rdtypes.IN.SRV.SRV(qclass, dns.rdatatype.SRV, 0, 0, port, dns.name.root)
    return [_rrset(qname, rdata), _rrset(srv_name, srv)]


class WhoamiPlugin:
    name = "whoami"

    def serve(self, request: Request, next: Next) -> Result:
        # The answer is the client's own: never reused for another.
        request.fastpath.forbid()
        response = request.reply()
        response.flags |= dns.flags.AA
        host, port = request.client
        response.additional.extend(whoami_records(request.qname, request.qclass, host, port, request.proto))
        request.plugin = self.name
        return response


def _build(config: Bare, ctx: BuildContext) -> WhoamiPlugin:
    return WhoamiPlugin()


PLUGINS = (PluginSpec("whoami", setup_bare, build=_build),)
