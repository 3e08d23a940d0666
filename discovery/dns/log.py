"""`log`: one line per query on standard output, in CoreDNS's formats.

Syntax (CoreDNS's)::

    log [NAMES...] [FORMAT] {
        class success|denial|error|all...
    }

The default, ``{common}``, is
``{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}``,
so a line reads
``[INFO] 10.0.0.1:5353 - 1234 "A IN name. udp 52 false 512" NOERROR qr,aa,rd 106 0.000123s``.
``{combined}`` adds ``"{>opcode}"``. Lines are built from the query and
response bytes, so answers from the table of rendered answers are logged
exactly like the others.
"""

from __future__ import annotations

import logging
import re
import struct
from decimal import Decimal

import attrs
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from ..corefile import Directive
from ..zones import in_zone, normalize_zone
from ..plugin import PluginSpec

__all__ = ["LogConfig", "setup_log", "QueryLog", "COMMON_FORMAT"]

COMMON_FORMAT = '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}'
COMBINED_FORMAT = COMMON_FORMAT + ' "{>opcode}"'
CLASSES = ("all", "success", "denial", "error")

query_logger = logging.getLogger("wayfinder.querylog")

_PLACEHOLDER = re.compile(r"\{>?[a-z]+\}|\{/[^}]*\}")
_FLAG_BITS = (("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100), ("ra", 0x0080), ("z", 0x0040), ("ad", 0x0020), ("cd", 0x0010))


@attrs.frozen
class LogConfig:
    names: tuple[str, ...] = (".",)
    format: str = COMMON_FORMAT
    classes: frozenset[str] = frozenset({"all"})


def setup_log(directive: Directive, ctx) -> LogConfig:
    """Parse one `log` line (the directive may be repeated)."""
    args = list(directive.args)
    fmt = COMMON_FORMAT
    if args and "{" in args[-1]:
        fmt = args.pop()
        fmt = fmt.replace("{common}", COMMON_FORMAT).replace("{combined}", COMBINED_FORMAT)
    names = tuple(normalize_zone(a) for a in args) or (".",)
    classes: set[str] = set()
    for option in directive.block:
        if option.name != "class":
            raise option.error(f"log: unknown property {option.name!r} (expected class)")
        option.expect_args(1, usage="class success|denial|error|all...")
        for value in option.args:
            if value not in CLASSES:
                raise option.error(f"log: unknown class {value!r} (expected one of {', '.join(CLASSES)})")
            classes.add(value)
    return LogConfig(names, fmt, frozenset(classes or {"all"}))


def _seconds(value: float) -> str:
    # Go's strconv.FormatFloat(d.Seconds(), 'f', -1, 64): shortest, no exponent.
    text = format(Decimal(repr(value)), "f")
    return text + "s"


def _classify(rcode: int, ancount: int) -> str:
    if rcode == dns.rcode.NOERROR:
        return "success" if ancount else "denial"
    if rcode == dns.rcode.NXDOMAIN:
        return "denial"
    return "error"


class QueryLog:
    """The `log` lines of one server block."""

    def __init__(self, configs: tuple[LogConfig, ...], logger: logging.Logger = query_logger):
        self.configs = configs
        self.logger = logger

    def __call__(self, host: str, port: int, proto: str, query: bytes, response: bytes, rcode: int, duration: float) -> None:
        fields = None
        for config in self.configs:
            if fields is None:
                fields = _Fields(host, port, proto, query, response, rcode, duration)
                if fields.name is None:
                    return
            if not any(in_zone(fields.name_lower, zone) for zone in config.names):
                continue
            if "all" not in config.classes and _classify(rcode, fields.ancount) not in config.classes:
                continue
            self.logger.info(_PLACEHOLDER.sub(fields.replace, config.format))
            return


class _Fields:
    """The placeholders of one query and its response."""

    def __init__(self, host, port, proto, query: bytes, response: bytes, rcode: int, duration: float):
        self.host, self.port, self.proto = host, port, proto
        self.query, self.response, self.rcode, self.duration = query, response, rcode, duration
        self.ancount = struct.unpack_from("!H", response, 6)[0] if len(response) >= 12 else 0
        self.name = None
        try:
            name, used = dns.name.from_wire(query, 12)
            offset = 12 + used
            self.qtype, self.qclass = struct.unpack_from("!HH", query, offset)
        except Exception:
            return
        self.name = name.to_text()
        self.name_lower = self.name.lower()
        offset += 4
        self.bufsize = 65535 if proto == "tcp" else 512
        self.do = False
        if len(query) >= offset + 11 and query[offset + 1 : offset + 3] == b"\x00\x29":
            if proto != "tcp":
                self.bufsize = max(512, struct.unpack_from("!H", query, offset + 3)[0])
            self.do = bool(query[offset + 7] & 0x80)

    def replace(self, match: re.Match) -> str:
        key = match.group(0)
        if key == "{remote}":
            return f"[{self.host}]" if ":" in self.host else self.host
        if key == "{port}":
            return str(self.port)
        if key == "{>id}":
            return str(struct.unpack_from("!H", self.query, 0)[0])
        if key == "{type}":
            return dns.rdatatype.to_text(self.qtype)
        if key == "{class}":
            return dns.rdataclass.to_text(self.qclass)
        if key == "{name}":
            return self.name
        if key == "{proto}":
            return self.proto
        if key == "{size}":
            return str(len(self.query))
        if key == "{>do}":
            return "true" if self.do else "false"
        if key == "{>bufsize}":
            return str(self.bufsize)
        if key == "{rcode}":
            return dns.rcode.to_text(self.rcode)
        if key == "{>rflags}":
            flags = struct.unpack_from("!H", self.response, 2)[0] if len(self.response) >= 4 else 0
            return ",".join(name for name, bit in _FLAG_BITS if flags & bit)
        if key == "{rsize}":
            return str(len(self.response))
        if key == "{duration}":
            return _seconds(self.duration)
        if key == "{>opcode}":
            return dns.opcode.to_text((self.query[2] >> 3) & 0x0F)
        if key == "{local}":
            return "-"
        # Unknown placeholders and metadata labels print as "-", as CoreDNS's replacer.
        return "-"


# The server calls the block's QueryLog for each answer (`BlockRuntime.query_log`).
PLUGINS = (PluginSpec("log", setup_log, repeatable=True, served_by_server=True),)
