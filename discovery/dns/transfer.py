"""The `transfer` plugin: zone transfers (AXFR, and IXFR answered as AXFR) of the block's zones.

As CoreDNS's plugin/transfer: a transfer is answered over TCP only (REFUSED
over UDP), to the addresses listed with `to` (REFUSED for others), from
the first plugin of the block that is authoritative for the zone and can
list it: `k8s_external`, then `kubernetes` (their `transfer(zone, serial)`).
The records go out in messages of at most about 63,000 bytes (CoreDNS's
batch), each with the question and AA. An IXFR whose serial is current is
answered with the SOA alone; any other IXFR is answered as an AXFR
(RFC 1995 section 4, as CoreDNS: no incremental history is kept).

Names outside every `transfer` zone, and zones no plugin lists, go to the
next plugin, which answers a transfer REFUSED.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Iterable, Iterator

import attrs
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from ..corefile import Directive
from ..plugin import BuildContext, PluginSpec
from ..zones import longest_match, normalize_zone
from .request import Next, Request, Result, Stream

__all__ = ["TransferConfig", "TransferPlugin", "setup_transfer", "BATCH_BYTES", "PLUGINS"]

log = logging.getLogger("wayfinder.transfer")

#: A message is sent once its records' uncompressed size would pass this
#: (CoreDNS's threshold below the 64 KB TCP message limit).
BATCH_BYTES = 63000
#: Records gathered between two chances for other queries to be answered
#: (a message holds about 1,000): a step stays in the milliseconds.
RECORDS_PER_STEP = 100
_XFR = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})


@attrs.frozen
class TransferConfig:
    """One `transfer [ZONE...] { to ADDRESS...; source ADDRESS }` directive."""

    zones: tuple[str, ...]
    #: IP addresses allowed to transfer, or "*" for every address.
    to: tuple[str, ...]
    #: Where NOTIFY messages would come from; Wayfinder's zones send none.
    source: str | None = None
    file: str = attrs.field(default="", eq=False)
    line: int = attrs.field(default=0, eq=False)

    def allows(self, host: str) -> bool:
        """transfer.go allowed(): "*", or the client's IP among the `to` hosts."""
        return "*" in self.to or host in self.to


def setup_transfer(directive: Directive, ctx) -> TransferConfig:
    """Parse a `transfer` directive (CoreDNS's setup.go). Raises CorefileError."""
    zones = tuple(normalize_zone(arg) for arg in directive.args) or ctx.zones
    to: list[str] = []
    source = None
    for option in directive.block:
        option.expect_no_block()
        if option.name == "to":
            option.expect_args(1, usage="to ADDRESS...")
            for host in option.args:
                to.append("*" if host == "*" else _host(option, host))
        elif option.name == "source":
            option.expect_args(1, 1, "source ADDRESS")
            if source is not None:
                raise option.error("transfer: source already specified")
            try:
                source = ipaddress.ip_address(option.args[0]).compressed
            except ValueError:
                raise option.error(f"transfer: invalid source address {option.args[0]!r}") from None
        else:
            raise option.error(f"transfer: unknown property {option.name!r}")
    if not to:
        raise directive.error("transfer: 'to' is required")
    return TransferConfig(zones, tuple(to), source, directive.file, directive.line)


def _host(option: Directive, text: str) -> str:
    """The IP of `IP`, `IP:PORT` or `[IPv6]:PORT` (parse.HostPort); the port only matters to NOTIFY."""
    host = text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            host = ""
    elif text.count(":") == 1:
        host = text.partition(":")[0]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        raise option.error(f"transfer: {text!r} is not an IP address (or IP:PORT, or *)") from None


class TransferPlugin:
    """The `transfer` directives of one server block."""

    name = "transfer"

    def __init__(self, configs: tuple[TransferConfig, ...]):
        self.configs = configs
        self._by_zone = {zone: config for config in configs for zone in config.zones}
        #: The block's plugins that can list a zone (set when the chain is built).
        self.transferers: list = []

    def set_chain(self, chain: Iterable) -> None:
        """Remember the plugins of the block that implement transfer(zone, serial)."""
        self.transferers = [plugin for plugin in chain if callable(getattr(plugin, "transfer", None))]

    def serve(self, request: Request, next: Next) -> Result:
        if request.qtype not in _XFR:
            return next(request)
        request.fastpath.forbid()
        if request.proto != "tcp":
            return self._reply(request, dns.rcode.REFUSED)
        zone = longest_match(tuple(self._by_zone), request.name)
        if zone is None:
            return next(request)
        if not self._by_zone[zone].allows(request.client[0]):
            return self._reply(request, dns.rcode.REFUSED)
        serial = 0
        if request.qtype == dns.rdatatype.IXFR:
            authority = request.query.authority
            if len(authority) != 1 or authority[0].rdtype != dns.rdatatype.SOA or len(authority[0]) != 1:
                return self._reply(request, dns.rcode.SERVFAIL)
            serial = authority[0][0].serial
        for plugin in self.transferers:
            records = plugin.transfer(request.name, serial)
            if records is not None:
                request.plugin = self.name
                return Stream(self._messages(request, iter(records)))
        return next(request)

    def _reply(self, request: Request, rcode: int) -> dns.message.Message:
        response = request.reply()
        response.set_rcode(rcode)
        request.plugin = self.name
        return response

    def _messages(self, request: Request, records: Iterator[dns.rrset.RRset]) -> Iterator[dns.message.Message | None]:
        """Batches of records as messages; a lone SOA (an IXFR that is current) as a plain reply.

        None every RECORDS_PER_STEP records: the server lets other work run then.
        """
        count = 0
        batch: list[dns.rrset.RRset] = []
        size = 0
        first = True
        for seen, rrset in enumerate(records, 1):
            if seen % RECORDS_PER_STEP == 0:
                yield None
            length = _wire_length(rrset)
            if batch and size + length > BATCH_BYTES:
                yield self._message(request, batch, True)
                count += len(batch)
                first = False
                batch, size = [], 0
            batch.append(rrset)
            size += length
        if first and len(batch) == 1 and batch[0].rdtype == dns.rdatatype.SOA:
            log.info("Outgoing noop, incremental transfer for up to date zone %s to %s for %d SOA serial",
                     request.name, request.client[0], batch[0][0].serial)
            yield self._message(request, batch, False)
            return
        if batch:
            yield self._message(request, batch, True)
            count += len(batch)
        log.info("Outgoing transfer of %d records of zone %s to %s", count, request.name, request.client[0])

    @staticmethod
    def _message(request: Request, batch: list, authoritative: bool) -> dns.message.Message:
        response = request.reply()
        if authoritative:
            response.flags |= dns.flags.AA
        response.answer.extend(batch)
        return response


def _wire_length(rrset: dns.rrset.RRset) -> int:
    """The records' uncompressed wire length (dns.Len), as CoreDNS counts a batch.

    From the labels and the rdata's fields, not by rendering: rendering
    each record twice cost a third of a transfer.
    """
    owner = _name_length(rrset.name)
    return sum(owner + 10 + _rdata_length(rdata) for rdata in rrset)


def _name_length(name: dns.name.Name) -> int:
    return sum(len(label) + 1 for label in name.labels)


def _rdata_length(rdata) -> int:
    rdtype = rdata.rdtype
    if rdtype == dns.rdatatype.A:
        return 4
    if rdtype == dns.rdatatype.AAAA:
        return 16
    if rdtype == dns.rdatatype.SRV:
        return 6 + _name_length(rdata.target)
    if rdtype in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR):
        return _name_length(rdata.target)
    if rdtype == dns.rdatatype.SOA:
        return _name_length(rdata.mname) + _name_length(rdata.rname) + 20
    return len(rdata.to_wire())


def _build(configs: tuple[TransferConfig, ...], ctx: BuildContext) -> TransferPlugin:
    return TransferPlugin(configs)


PLUGINS = (PluginSpec("transfer", setup_transfer, repeatable=True, build=_build),)
