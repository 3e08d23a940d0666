"""The `hosts` directive: answers from a hosts file (CoreDNS's hosts plugin).

Syntax (CoreDNS's)::

    hosts [FILE [ZONES...]] {
        [INLINE]
        ttl SECONDS
        no_reverse
        reload DURATION
        fallthrough [ZONES...]
        fallthrough_unsupported
    }

FILE defaults to /etc/hosts and is read at start and again every `reload`
(5s; 0 never) when its size or modification time changed. Lines of the
block before `fallthrough` that are not options are hosts-file lines too
(INLINE); their addresses come after the file's. Names outside ZONES (the
server block's zones by default) are ignored. `*.example.org` matches one
label. A name with addresses answers A and AAAA (NODATA for a family it
lacks, and for other types); PTR answers come from the addresses unless
`no_reverse`. A name the data does not hold falls through when
`fallthrough` covers it and gets SERVFAIL otherwise: without an SOA there
is no proper NXDOMAIN (CoreDNS).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os

import attrs
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from prometheus_client import CollectorRegistry, Gauge
from twisted.internet import task

from ..corefile import Directive, parse_duration
from ..ops.metrics import per_registry
from ..plugin import BuildContext, PluginSpec
from ..zones import Fallthrough, longest_match, normalize_zone
from .request import Request

__all__ = ["HostsConfig", "HostsData", "HostsPlugin", "setup_hosts", "parse_hosts", "address_from_reverse"]

log = logging.getLogger("wayfinder.hosts")

DEFAULT_PATH = "/etc/hosts"


@attrs.frozen
class HostsConfig:
    zones: tuple[str, ...]
    path: str = DEFAULT_PATH
    #: Hosts-file lines written in the Corefile.
    inline: tuple[str, ...] = ()
    ttl: int = 3600
    reverse: bool = True
    #: Seconds between checks of the file (0: read once).
    reload: float = 5.0
    fallthrough: Fallthrough = Fallthrough()
    fallthrough_unsupported: bool = False


def setup_hosts(directive: Directive, ctx) -> HostsConfig:
    """Parse a `hosts` directive. Raises CorefileError naming file:line."""
    values: dict = {}
    args = list(directive.args)
    if args:
        values["path"] = args.pop(0)
        try:
            os.stat(values["path"])
        except FileNotFoundError:
            # CoreDNS only warns: the file may appear later; the plugin says so at start.
            pass
        except OSError as e:
            raise directive.error(f"hosts: unable to access hosts file '{values['path']}': {e.strerror or e}") from None
    zones = tuple(normalize_zone(zone) for zone in args) or tuple(ctx.zones)
    inline: list[str] = []
    fallthrough = None
    for option in directive.block:
        name = option.name
        if name == "fallthrough":
            fallthrough = Fallthrough.from_args(option.args)
        elif name == "fallthrough_unsupported":
            option.expect_args(0, 0, "fallthrough_unsupported")
            values["fallthrough_unsupported"] = True
        elif name == "no_reverse":
            values["reverse"] = False
        elif name == "ttl":
            if not option.args:
                raise option.error("hosts: ttl needs a time in second")
            try:
                ttl = int(option.args[0])
            except ValueError:
                raise option.error("hosts: ttl needs a number of second") from None
            if not 0 < ttl <= 65535:
                raise option.error("hosts: ttl provided is invalid")
            values["ttl"] = ttl
        elif name == "reload":
            if len(option.args) != 1:
                raise option.error("hosts: reload needs a duration (zero seconds to disable)")
            try:
                reload = parse_duration(option.args[0])
            except ValueError:
                raise option.error(f"hosts: invalid duration for reload '{option.args[0]}'") from None
            if reload < 0:
                raise option.error(f"hosts: invalid negative duration for reload '{option.args[0]}'")
            values["reload"] = reload
        elif fallthrough is None:
            inline.append(" ".join((name, *option.args)))
        else:
            raise option.error(f"hosts: unknown property '{name}'")
    if values.get("fallthrough_unsupported") and fallthrough is None:
        raise directive.error("hosts: fallthrough_unsupported requires fallthrough")
    return HostsConfig(zones=zones, inline=tuple(inline), fallthrough=fallthrough or Fallthrough(), **values)


# --- the data ----------------------------------------------------------------------------


@attrs.frozen
class HostsData:
    """Parsed hosts lines: names -> addresses, addresses -> names."""

    v4: dict = attrs.field(factory=dict)
    v6: dict = attrs.field(factory=dict)
    wild_v4: dict = attrs.field(factory=dict)
    wild_v6: dict = attrs.field(factory=dict)
    names: dict = attrs.field(factory=dict)

    def __len__(self) -> int:
        return sum(len(v) for table in (self.v4, self.v6, self.wild_v4, self.wild_v6, self.names)
                   for v in table.values())

    def addresses(self, name: str, v6: bool) -> list[str]:
        exact, wild = (self.v6, self.wild_v6) if v6 else (self.v4, self.wild_v4)
        found = exact.get(name)
        if found is None and "." in name.rstrip("."):
            found = wild.get("*." + name.split(".", 1)[1])
        return list(found or ())


def parse_hosts(text: str, zones: tuple[str, ...], reverse: bool = True) -> HostsData:
    """Hosts-file text -> HostsData, keeping names inside zones (CoreDNS's Hostsfile.parse)."""
    data = HostsData()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        v6 = address.version == 6
        text_address = address.compressed
        for field in fields[1:]:
            name = normalize_zone(field)
            if longest_match(zones, name) is None:
                continue
            if name.startswith("*."):
                (data.wild_v6 if v6 else data.wild_v4).setdefault(name, []).append(text_address)
                continue
            (data.v6 if v6 else data.v4).setdefault(name, []).append(text_address)
            if reverse:
                data.names.setdefault(text_address, []).append(name)
    return data


def address_from_reverse(name: str) -> str | None:
    """The address a reverse name stands for ("4.3.2.1.in-addr.arpa." -> "1.2.3.4")."""
    name = name.lower()
    try:
        if name.endswith(".in-addr.arpa."):
            labels = name[: -len(".in-addr.arpa.")].split(".")
            return ipaddress.IPv4Address(".".join(reversed(labels))).compressed
        if name.endswith(".ip6.arpa."):
            nibbles = name[: -len(".ip6.arpa.")].split(".")
            if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
                return None
            digits = "".join(reversed(nibbles))
            return ipaddress.IPv6Address(":".join(digits[i : i + 4] for i in range(0, 32, 4))).compressed
    except ValueError:
        return None
    return None


# --- metrics --------------------------------------------------------------------------------


@per_registry
def _metrics(registry: CollectorRegistry) -> tuple[Gauge, Gauge]:
    return (
        Gauge("coredns_hosts_entries", "The combined number of entries in hosts and Corefile.", ["hostsfile"],
              registry=registry),
        Gauge("coredns_hosts_reload_timestamp_seconds", "The timestamp of the last reload of hosts file.",
              registry=registry),
    )


# --- the plugin ------------------------------------------------------------------------------


class HostsPlugin:
    """Answers A, AAAA and PTR from the hosts file and the inline lines."""

    name = "hosts"

    def __init__(self, config: HostsConfig, reactor, *, registry: CollectorRegistry | None = None,
                 server: str = "dns://:53"):
        self.config = config
        self.reactor = reactor
        self.inline = parse_hosts("\n".join(config.inline), config.zones, config.reverse)
        self.file = HostsData()
        self._stamp: tuple[float, int] | None = None
        self._entries, self._reload_time = _metrics(registry if registry is not None else CollectorRegistry())
        self._loop: task.LoopingCall | None = None
        #: When the file is next checked; answers may change then.
        self._next_check = math.inf

    def start(self) -> None:
        if not os.path.exists(self.config.path):
            log.warning("hosts file %s does not exist", self.config.path)
        if self.config.reload > 0:
            self._loop = task.LoopingCall(self.read)
            self._loop.clock = self.reactor
            self._loop.start(self.config.reload, now=True)
        else:
            self.read()

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def read(self) -> None:
        """Read the file again if its size or modification time changed."""
        if self.config.reload > 0:
            self._next_check = self.reactor.seconds() + self.config.reload
        try:
            with open(self.config.path, "rb") as f:
                stat = os.fstat(f.fileno())
                stamp = (stat.st_mtime, stat.st_size)
                if stamp == self._stamp:
                    return
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            # Last good data keeps serving (CoreDNS logs nothing here either).
            return
        self.file = parse_hosts(text, self.config.zones, self.config.reverse)
        self._stamp = stamp
        self._entries.labels(self.config.path).set(len(self.inline) + len(self.file))
        self._reload_time.set(stat.st_mtime)
        log.debug("parsed hosts file %s into %d entries", self.config.path, len(self.file))

    def _addresses(self, name: str, v6: bool) -> list[str]:
        return self.file.addresses(name, v6) + self.inline.addresses(name, v6)

    def transparent(self, name: str, qtype: int, answer) -> bool:
        """Would this plugin pass the question on? (The server's fast route, as `serve` decides.)"""
        if qtype == dns.rdatatype.PTR:
            address = address_from_reverse(name)
            return not address or not (self.file.names.get(address) or self.inline.names.get(address))
        return longest_match(self.config.zones, name) is None

    def serve(self, request: Request, next):
        name = request.name
        qtype = request.qtype
        config = self.config
        if qtype != dns.rdatatype.PTR and longest_match(config.zones, name) is None:
            return next(request)
        answer = None
        if qtype == dns.rdatatype.PTR:
            address = address_from_reverse(name)
            names = (self.file.names.get(address, []) + self.inline.names.get(address, [])) if address else []
            if not names:
                return next(request)
            answer = dns.rrset.from_text_list(request.qname, config.ttl, dns.rdataclass.IN, dns.rdatatype.PTR, names)
        elif qtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            addresses = self._addresses(name, qtype == dns.rdatatype.AAAA)
            if addresses:
                answer = dns.rrset.from_text_list(request.qname, config.ttl, dns.rdataclass.IN, qtype, addresses)
        elif config.fallthrough_unsupported and config.fallthrough.through(name):
            return next(request)
        response = request.reply()
        if answer is None and not self._addresses(name, False) and not self._addresses(name, True):
            if config.fallthrough.through(name):
                return next(request)
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            response.flags |= dns.flags.AA
            if answer is not None:
                response.answer.append(answer)
        request.plugin = self.name
        # The answer only changes when the file is read again.
        request.fastpath.expire_at(self._next_check)
        return response


def _build(config: HostsConfig, ctx: BuildContext) -> HostsPlugin:
    return HostsPlugin(config, ctx.reactor, registry=ctx.registry, server=ctx.server)


PLUGINS = (PluginSpec("hosts", setup_hosts, build=_build),)
