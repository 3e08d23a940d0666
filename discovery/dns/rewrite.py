"""The `rewrite` directive: rewrite the question on its way in, the answer on its way out (CoreDNS's rewrite plugin).

Syntax (CoreDNS's)::

    rewrite [continue|stop] FIELD [TYPE] [(FROM TO)|TTL] [OPTIONS]
    rewrite [continue|stop] {
        FIELD ...            # all lines of the block make ONE rule, as in CoreDNS
    }

FIELD is `name`, `type`, `class`, `edns0`, `ttl`, `cname` or `rcode`. Each
`rewrite` line is one rule; a query passes the rules in the order of the
lines, and a rule that applies ends the list unless it says `continue`.
Request rewrites (`name`, `type`, `class`, `edns0`) change what the plugins
after this one see; response rules (`answer ...`, `ttl`, `rcode`, `cname`,
edns0 `revert`) change what the client gets, the last matching rule's
first. The client's question is written back into the response (so the
table of rendered answers, keyed by the client's question, stays true).

Matching is on the lower-cased, fully qualified name; FROM and TO of the
non-regex kinds are normalised the same way (`foo` is `foo.`), and all
string matching is literal, as CoreDNS does it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Callable, Union

import attrs
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.internet.defer import Deferred

from ..corefile import Directive
from ..departures import Departure
from ..plugin import BuildContext, PluginSpec
from .request import Request

__all__ = [
    "RewriteError",
    "RewriteRule",
    "parse_rule",
    "setup_rewrite",
    "RewritePlugin",
]

log = logging.getLogger("wayfinder.rewrite")

STOP = "stop"
CONTINUE = "continue"
#: CoreDNS refuses longer regular expressions (a guard against huge programs).
MAX_REGEX_LENGTH = 10000
MATCH_KINDS = ("exact", "prefix", "suffix", "substring", "regex")
EDNS0_ACTIONS = ("append", "replace", "set", "unset")
#: The `{...}` data of `edns0 local` that CoreDNS knows without the metadata plugin.
EDNS0_VARIABLES = ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}", "{server_port}")
#: CoreDNS's default TTL ceiling for an open range ("30-").
MAX_TTL = 2147483647
_GROUP = re.compile(r"\{(\d+)\}")
#: The record value each type exposes to `answer value` (CoreDNS's getRecordValueForRewrite).
_VALUE_FIELDS = {
    dns.rdatatype.SRV: "target",
    dns.rdatatype.MX: "exchange",
    dns.rdatatype.CNAME: "target",
    dns.rdatatype.NS: "target",
    dns.rdatatype.DNAME: "target",
    dns.rdatatype.NAPTR: "replacement",
    dns.rdatatype.SOA: "mname",
    dns.rdatatype.PTR: "target",
}


class RewriteError(ValueError):
    """A rule that cannot be parsed; setup turns it into a CorefileError naming the line."""


def _normalize(text: str) -> str:
    """CoreDNS's plugin.Name(...).Normalize(): lower-cased, with a trailing dot."""
    text = text.lower()
    return text if text.endswith(".") else text + "."


def _compile(pattern: str, what: str) -> re.Pattern:
    if len(pattern) > MAX_REGEX_LENGTH:
        raise RewriteError(f"regex pattern too long{what}: {len(pattern)} > {MAX_REGEX_LENGTH}")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise RewriteError(f"invalid regex pattern{what}: {pattern} ({error})") from None


def _expand(template: str, match: re.Match) -> str:
    """Replace {0}, {1}... with the match's groups (a group that did not take part is empty)."""
    groups = (match.group(0),) + match.groups("")
    return _GROUP.sub(lambda m: groups[int(m.group(1))] if int(m.group(1)) < len(groups) else m.group(0), template)


def _checked_regex(pattern: str, replacement: str, what: str = "") -> re.Pattern:
    """CoreDNS's isValidRegexPattern: compiles, and the replacement uses no more groups than there are."""
    compiled = _compile(pattern, what)
    used = sum(1 for i in range(101) if "{%d}" % i in replacement)
    if used > compiled.groups:
        raise RewriteError(
            f"the rewrite regex pattern ({replacement}) uses more subexpressions than its "
            f"corresponding matching regex pattern ({pattern})"
        )
    return compiled


# --- matching names ----------------------------------------------------------------------


@attrs.frozen
class NameMatch:
    """exact|prefix|suffix|substring|regex against the lower-cased question name."""

    kind: str
    text: str
    pattern: re.Pattern | None = None

    def matches(self, name: str) -> bool:
        kind = self.kind
        if kind == "suffix":
            return name.endswith(self.text)
        if kind == "exact":
            return name == self.text
        if kind == "prefix":
            return name.startswith(self.text)
        if kind == "substring":
            return self.text in name
        return self.pattern.search(name) is not None


def _name_match(kind: str, text: str, what: str) -> NameMatch:
    kind = kind.lower()
    if kind == "regex":
        return NameMatch(kind, text, _compile(text, what))
    if kind not in MATCH_KINDS:
        raise RewriteError(f"{what.strip(' a')} supports only exact, prefix, suffix, substring, and regex name matching")
    return NameMatch(kind, _normalize(text))


# --- response rules ----------------------------------------------------------------------


@attrs.frozen
class RegexRewriter:
    """FROM regex -> TO with {N} groups; the whole string is replaced (CoreDNS's regexStringRewriter)."""

    pattern: re.Pattern
    replacement: str

    def __call__(self, text: str) -> str:
        match = self.pattern.search(text)
        return text if match is None else _expand(self.replacement, match)


@attrs.frozen
class RemapRewriter:
    """The name itself, or a name below it, mapped to another (`answer auto`, `exact`)."""

    orig: str
    replacement: str

    def __call__(self, text: str) -> str:
        if text == self.orig:
            return self.replacement
        cut = len(text) - len(self.orig)
        if cut > 0 and text[cut - 1] == "." and text[cut:] == self.orig:
            return text[:cut] + self.replacement
        return text


@attrs.frozen
class SuffixRewriter:
    """A literal suffix swapped (`suffix ... answer auto`)."""

    suffix: str
    replacement: str

    def __call__(self, text: str) -> str:
        if text.endswith(self.suffix):
            return text[: len(text) - len(self.suffix)] + self.replacement
        return text


Rewriter = Union[RegexRewriter, RemapRewriter, SuffixRewriter]


@attrs.frozen
class AnswerName:
    """Rewrite the owner names of the response's records."""

    rewrite: Rewriter


@attrs.frozen
class AnswerValue:
    """Rewrite the names records point to (CNAME, DNAME, SOA, SRV, MX, NAPTR, NS, PTR)."""

    rewrite: Rewriter


@attrs.frozen
class TTLClamp:
    minimum: int
    maximum: int


@attrs.frozen
class RcodeSwap:
    old: int
    new: int


@attrs.frozen
class OptionRemove:
    """edns0 `revert` of an added option: the response loses it."""

    code: int


@attrs.frozen
class OptionRestore:
    """edns0 `revert` of a replaced option: the response gets the client's back."""

    code: int
    option: dns.edns.Option


@attrs.frozen
class CnameTarget:
    """`cname`: a CNAME target matching FROM becomes TO, and what follows it is looked up afresh."""

    rule: "CnameRule"
    qtype: int


ResponseRule = Union[AnswerName, AnswerValue, TTLClamp, RcodeSwap, OptionRemove, OptionRestore, CnameTarget]


# --- the query as the rules change it -----------------------------------------------------


class _Query:
    """The question and options while the rules run: lower-cased name, as CoreDNS's state.Name()."""

    __slots__ = ("request", "name", "qname", "parsed", "qtype", "qclass", "options", "touched", "reusable")

    def __init__(self, request: Request):
        self.request = request
        #: As the question has it (case kept): CoreDNS's state.QName(), for {qname}.
        self.qname = request.qname.to_text()
        self.name = self.qname.lower()
        #: (qname, its dns.name.Name) once a rule changed the name.
        self.parsed: tuple[str, dns.name.Name] | None = None
        self.qtype = request.qtype
        self.qclass = request.qclass
        #: The query's EDNS options, copied when an edns0 rule first runs.
        self.options: list | None = None
        self.touched = False
        #: Cleared when the rewritten query depends on who asked (the table of
        #: rendered answers is keyed by the question as asked and the
        #: client's EDNS state alone).
        self.reusable = True

    def set_name(self, name: str) -> None:
        self.qname = name
        self.name = name.lower()
        self.touched = True

    def edns_options(self) -> list:
        if self.options is None:
            # CoreDNS's setupEdns0Opt: an OPT record (4096, no DO) is added when the query had none.
            self.options = list(self.request.query.options) if self.request.query.edns >= 0 else []
        self.touched = True
        return self.options


# --- request rules ------------------------------------------------------------------------


@attrs.frozen
class NameRule:
    mode: str
    match: NameMatch
    replacement: str
    #: Build `answer auto` rules from the names of each query (exact, prefix,
    #: substring, regex); suffix's are fixed, in `answers`.
    auto: bool
    answers: tuple[ResponseRule, ...] = ()

    def apply(self, query: _Query) -> tuple[ResponseRule, ...] | None:
        name = query.name
        match = self.match
        kind = match.kind
        if kind == "suffix":
            if not name.endswith(match.text):
                return None
            new = name[: len(name) - len(match.text)] + self.replacement
        elif kind == "exact":
            if name != match.text:
                return None
            new = self.replacement
        elif kind == "prefix":
            if not name.startswith(match.text):
                return None
            new = self.replacement + name[len(match.text):]
        elif kind == "substring":
            if match.text not in name:
                return None
            new = name.replace(match.text, self.replacement)
        else:
            found = match.pattern.search(name)
            if found is None:
                return None
            new = _expand(self.replacement, found)
        query.set_name(new)
        if not self.auto:
            return self.answers
        # The rewritten name (and names below it) map back to the asked one.
        back = RemapRewriter(new, name)
        return (AnswerName(back), AnswerValue(back)) + self.answers


@attrs.frozen
class TypeRule:
    mode: str
    old: int
    new: int

    def apply(self, query: _Query) -> tuple | None:
        if query.qtype != self.old:
            return None
        query.qtype = self.new
        query.touched = True
        return ()


@attrs.frozen
class ClassRule:
    mode: str
    old: int
    new: int

    def apply(self, query: _Query) -> tuple | None:
        if query.qclass != self.old:
            return None
        query.qclass = self.new
        query.touched = True
        return ()


@attrs.frozen
class TTLRule:
    mode: str
    match: NameMatch
    clamp: TTLClamp

    def apply(self, query: _Query) -> tuple | None:
        return (self.clamp,) if self.match.matches(query.name) else None


@attrs.frozen
class RcodeRule:
    mode: str
    match: NameMatch
    swap: RcodeSwap

    def apply(self, query: _Query) -> tuple | None:
        return (self.swap,) if self.match.matches(query.name) else None


@attrs.frozen
class CnameRule:
    mode: str
    kind: str
    source: str
    target: str
    pattern: re.Pattern | None = None

    def targets(self, cname: str) -> tuple[str, str]:
        """CoreDNS's getFromAndToTarget: (FROM, TO) for this CNAME target, or ("", "")."""
        kind = self.kind
        if kind == "exact":
            return self.source, self.target
        if kind == "prefix" and cname.startswith(self.source):
            return cname, self.target + cname[len(self.source):]
        if kind == "suffix" and cname.endswith(self.source):
            return cname, cname[: len(cname) - len(self.source)] + self.target
        if kind == "substring" and self.source in cname:
            return cname, cname.replace(self.source, self.target)
        if kind == "regex":
            found = self.pattern.search(cname)
            if found is not None:
                return cname, _expand(self.target, found)
        return "", ""

    def apply(self, query: _Query) -> tuple:
        # Every query "matches": the work happens on the response (so a
        # `stop` cname rule ends the rule list for every query, as in CoreDNS).
        return (CnameTarget(self, query.qtype),)


def _variable_data(variable: str, query: _Query) -> bytes | None:
    """The bytes of an `edns0 local` {variable}, or None when there are none (the rule is then ignored)."""
    request = query.request
    if variable == "{qname}":
        return query.qname.encode()
    if variable == "{qtype}":
        return query.qtype.to_bytes(2, "big")
    if variable == "{client_ip}":
        return ipaddress.ip_address(request.client[0]).packed
    if variable == "{client_port}":
        return int(request.client[1]).to_bytes(2, "big")
    if variable == "{protocol}":
        return request.proto.encode()
    host, _, port = request.server.rpartition("://")[2].rpartition(":")
    if variable == "{server_port}":
        return int(port).to_bytes(2, "big") if port.isdigit() else None
    # {server_ip}: the address the block is bound to; a block listening on
    # every address does not know which one the query came to.
    try:
        return ipaddress.ip_address(host.strip("[]")).packed
    except ValueError:
        return None


def _find(options: list, wanted: Callable[[dns.edns.Option], bool]) -> int:
    for index, option in enumerate(options):
        if wanted(option):
            return index
    return -1


@attrs.frozen
class Edns0Rule:
    """edns0 local|nsid|subnet with append|replace|set|unset [revert]."""

    mode: str
    kind: str
    action: str
    code: int = 0
    data: bytes = b""
    variable: str = ""
    v4_bits: int = 0
    v6_bits: int = 0
    revert: bool = False

    def _is_same(self, option: dns.edns.Option) -> bool:
        if self.kind == "local":
            return isinstance(option, dns.edns.GenericOption) and option.otype == self.code
        if self.kind == "nsid":
            return option.otype == dns.edns.OptionType.NSID
        return isinstance(option, dns.edns.ECSOption)

    def _new_option(self, query: _Query) -> dns.edns.Option | None:
        """The option this rule writes, or None when a {variable} has no value here."""
        if self.variable:
            data = _variable_data(self.variable, query)
            return None if data is None else dns.edns.GenericOption(self.code, data)
        if self.kind == "nsid":
            return dns.edns.NSIDOption(b"")
        if self.kind == "subnet":
            address = ipaddress.ip_address(query.request.client[0])
            bits = self.v4_bits if address.version == 4 else self.v6_bits
            network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
            return dns.edns.ECSOption(str(network.network_address), bits, 0)
        return dns.edns.GenericOption(self.code, self.data)

    def apply(self, query: _Query) -> tuple | None:
        if self.kind == "subnet" or self.variable not in ("", "{qtype}", "{qname}"):
            # What the next plugins are asked depends on who asked: the
            # answer is for this client alone.
            query.reusable = False
        option = None
        if self.action != "unset":
            option = self._new_option(query)
            if option is None:
                return None
        # CoreDNS gives the query an OPT record before it looks, whatever the rule then does.
        options = query.edns_options()
        if option is None:
            options[:] = [o for o in options if not self._is_same(o)]
            return ()
        index = _find(options, self._is_same)
        if index >= 0:
            if self.action in ("replace", "set"):
                old, options[index] = options[index], option
                return (OptionRestore(option.otype, old),) if self.revert else ()
            if self.variable or self.kind == "subnet":
                return None
            # A static local or nsid `append` adds another option all the same (CoreDNS).
        if self.action in ("append", "set"):
            options.append(option)
            return (OptionRemove(option.otype),) if self.revert else ()
        return None


RewriteRule = Union[NameRule, TypeRule, ClassRule, TTLRule, RcodeRule, CnameRule, Edns0Rule]


# --- parsing -------------------------------------------------------------------------------


def parse_rule(args: list[str]) -> RewriteRule:
    """One rule from its words (CoreDNS's newRule). Raises RewriteError."""
    if not args:
        raise RewriteError("no rule type specified for rewrite")
    first = args[0].lower()
    mode = STOP
    if first in (STOP, CONTINUE):
        mode = first
        if len(args) < 2:
            raise RewriteError(f"{first} rule must begin with a rule type")
        args = args[1:]
    field = args[0].lower()
    rest = args[1:]
    if field == "answer":
        raise RewriteError("response rewrites must begin with a name rule")
    if field == "name":
        return _name_rule(mode, rest)
    if field in ("type", "class"):
        if len(rest) != 2:
            raise RewriteError(f"{field} rules must have exactly two arguments")
        convert = dns.rdatatype.from_text if field == "type" else dns.rdataclass.from_text
        values = []
        for value in rest:
            try:
                values.append(convert(value.upper()))
            except (dns.exception.DNSException, ValueError):
                raise RewriteError(f"invalid {field} {value.upper()!r}") from None
        return (TypeRule if field == "type" else ClassRule)(mode, values[0], values[1])
    if field == "edns0":
        return _edns0_rule(mode, rest)
    if field == "ttl":
        return _ttl_rule(mode, rest)
    if field == "rcode":
        return _rcode_rule(mode, rest)
    if field == "cname":
        return _cname_rule(mode, rest)
    raise RewriteError(f"invalid rule type {args[0]!r}")


def _name_rule(mode: str, args: list[str]) -> NameRule:
    if len(args) < 2:
        raise RewriteError("too few arguments for a name rule")
    if len(args) == 2:
        kind, source, target = "exact", args[0], args[1]
    else:
        kind, source, target = args[0].lower(), args[1], args[2]
    if kind not in MATCH_KINDS:
        raise RewriteError(
            f"name rule supports only exact, prefix, suffix, substring, and regex name matching, received: {kind}"
        )
    auto, answers = False, ()
    if len(args) > 3:
        auto, answers = _answer_rules(kind, args[3:])
    target_text = _normalize(target)
    if kind == "regex":
        match = NameMatch(kind, source, _checked_regex(source, target))
    else:
        match = NameMatch(kind, _normalize(source))
    if kind == "exact":
        # Exact rules always map the answer back.
        return NameRule(mode, match, target_text, True, answers)
    if kind == "suffix":
        if auto:
            back = SuffixRewriter(target_text, match.text)
            answers = (AnswerName(back), AnswerValue(back)) + answers
        return NameRule(mode, match, target_text, False, answers)
    return NameRule(mode, match, target_text, auto, answers)


def _answer_rules(kind: str, args: list[str]) -> tuple[bool, tuple[ResponseRule, ...]]:
    """`answer auto | answer name FROM TO | answer value FROM TO`, repeated ("answer" may be left out after the first)."""
    if len(args) < 2:
        raise RewriteError(f"invalid arguments for {kind} rule")
    auto, rules, names = False, [], 0
    i, last = 0, ""
    while i < len(args):
        if not last and args[i] != "answer":
            raise RewriteError(f"exceeded the number of arguments for a non-answer rule argument for {kind} rule")
        if args[i] == "answer":
            i += 1
        if i == len(args):
            raise RewriteError(f"type missing for answer rule for {kind} rule")
        last = args[i]
        i += 1
        if last == "auto":
            auto = True
            continue
        if last not in ("name", "value"):
            raise RewriteError(f"invalid type {last!r} for answer rule for {kind} rule")
        if len(args) - i < 2:
            raise RewriteError(f"{last} answer rule for {kind} rule: 2 arguments required")
        source, target = args[i], args[i + 1]
        try:
            pattern = _checked_regex(source, target)
        except RewriteError as error:
            raise RewriteError(f"{last} answer rule for {kind} rule: {error}") from None
        rewriter = RegexRewriter(pattern, _normalize(target))
        rules.append(AnswerName(rewriter) if last == "name" else AnswerValue(rewriter))
        names += last == "name"
        i += 2
    if auto and names:
        raise RewriteError("auto name answer rule cannot be combined with explicit name answer rules")
    return auto, tuple(rules)


def _ttl_range(text: str) -> tuple[int, int] | None:
    """SECONDS, MIN-MAX, -MAX or MIN- (CoreDNS's isValidTTL)."""
    parts = text.split("-")
    if not all(p.isdigit() or p == "" for p in parts):
        return None
    if len(parts) == 1:
        if not text or int(text) > 0xFFFFFFFF:
            return None
        return int(text), int(text)
    if len(parts) != 2 or parts == ["", ""]:
        return None
    low = int(parts[0]) if parts[0] else 0
    high = int(parts[1]) if parts[1] else MAX_TTL
    if low > 0xFFFFFFFF or high > 0xFFFFFFFF or low > high:
        return None
    return low, high


def _ttl_rule(mode: str, args: list[str]) -> TTLRule:
    if len(args) < 2:
        raise RewriteError(f"too few ({len(args)}) arguments for a ttl rule")
    if len(args) > 3:
        raise RewriteError("too many arguments for a ttl rule")
    value = args[-1]
    bounds = _ttl_range(value)
    if bounds is None:
        raise RewriteError(f"invalid TTL '{value}' for a ttl rule")
    match = _name_match(args[0], args[1], " in a ttl rule") if len(args) == 3 else NameMatch("exact", _normalize(args[0]))
    return TTLRule(mode, match, TTLClamp(*bounds))


def _rcode(text: str) -> int | None:
    if text.isdigit():
        return int(text) if int(text) <= 23 else None
    try:
        return int(dns.rcode.from_text(text.upper()))
    except (dns.exception.DNSException, ValueError):
        return None


def _rcode_rule(mode: str, args: list[str]) -> RcodeRule:
    if len(args) < 3:
        raise RewriteError(f"too few ({len(args)}) arguments for a rcode rule")
    if len(args) > 4:
        raise RewriteError("too many arguments for a rcode rule")
    old_text, new_text = args[-2], args[-1]
    old, new = _rcode(old_text), _rcode(new_text)
    if old is None:
        raise RewriteError(f"invalid matching RCODE '{old_text}' for a rcode rule")
    if new is None:
        raise RewriteError(f"invalid replacement RCODE '{new_text}' for a rcode rule")
    match = _name_match(args[0], args[1], " in a rcode rule") if len(args) == 4 else NameMatch("exact", _normalize(args[0]))
    return RcodeRule(mode, match, RcodeSwap(old, new))


def _cname_rule(mode: str, args: list[str]) -> CnameRule:
    if len(args) == 3:
        kind, source, target = args[0].lower(), args[1].lower(), args[2].lower()
        if kind not in MATCH_KINDS:
            raise RewriteError(f"unknown cname rewrite type: {kind}")
    elif len(args) == 2:
        kind, source, target = "exact", args[0].lower(), args[1].lower()
    else:
        raise RewriteError(f"too few ({len(args)}) arguments for a cname rule")
    if kind == "exact":
        source, target = _normalize(source), _normalize(target)
    pattern = _compile(source, " in a cname rule") if kind == "regex" else None
    return CnameRule(mode, kind, source, target, pattern)


def _code(text: str) -> int:
    """strconv.ParseUint(text, 0, 16): decimal, 0x hex, 0o/0 octal, 0b binary."""
    try:
        value = int(text, 0)
    except ValueError:
        try:
            value = int(text, 8) if text.startswith("0") else -1
        except ValueError:
            value = -1
    if not 0 <= value <= 0xFFFF:
        raise RewriteError(f"invalid EDNS0 option code {text!r}")
    return value


def _edns0_rule(mode: str, args: list[str]) -> Edns0Rule:
    if len(args) < 2:
        raise RewriteError("too few arguments for an EDNS0 rule")
    kind, action = args[0].lower(), args[1].lower()
    if action not in EDNS0_ACTIONS:
        raise RewriteError(f"invalid action: {action!r}")
    if kind not in ("local", "nsid", "subnet"):
        raise RewriteError(f"invalid rule type {kind!r}")
    if action == "unset":
        wanted = 3 if kind == "local" else 2
        if len(args) != wanted:
            raise RewriteError(f"{kind} unset action requires exactly {wanted - 1} argument{'s' if wanted == 3 else ''}")
        return Edns0Rule(mode, kind, action, code=_code(args[2]) if kind == "local" else 0)
    revert = args[-1] == "revert"
    if revert:
        args = args[:-1]
    if kind == "nsid":
        if len(args) != 2:
            raise RewriteError("EDNS0 NSID rules can accept no more than one arg")
        return Edns0Rule(mode, kind, action, revert=revert)
    if len(args) != 4:
        raise RewriteError(f"EDNS0 {kind} rules require three or four args")
    if kind == "subnet":
        bits = []
        for text, limit, family in ((args[2], 32, "IPv4"), (args[3], 128, "IPv6")):
            try:
                value = int(text, 0)
            except ValueError:
                raise RewriteError(f"invalid {family} bit mask length {text!r}") from None
            if not 0 <= value <= limit:
                raise RewriteError(f"invalid {family} bit mask length {value}")
            bits.append(value)
        return Edns0Rule(mode, kind, action, v4_bits=bits[0], v6_bits=bits[1], revert=revert)
    code, data = _code(args[2]), args[3]
    if data.startswith("{") and data.endswith("}"):
        if data not in EDNS0_VARIABLES:
            # Other labels need CoreDNS's metadata plugin, which Wayfinder does not have.
            raise RewriteError(f"unsupported variable name {data!r}")
        return Edns0Rule(mode, kind, action, code=code, variable=data, revert=revert)
    if data.startswith("0x"):
        try:
            raw = bytes.fromhex(data[2:])
        except ValueError:
            raise RewriteError(f"invalid hex data {data!r}") from None
    else:
        raw = data.encode()
    return Edns0Rule(mode, kind, action, code=code, data=raw, revert=revert)


def setup_rewrite(directive: Directive, ctx) -> RewriteRule:
    """Parse one `rewrite` line (or block) into its rule. Raises CorefileError naming file:line."""
    args = list(directive.args)
    if len(args) < 2:
        # `rewrite [stop|continue] { ... }`: the words of every line of the block make one rule.
        for line in directive.block:
            args.extend((line.name, *line.args))
    elif directive.has_block:
        raise directive.error("rewrite: a rule written on the rewrite line takes no block")
    try:
        return parse_rule(args)
    except RewriteError as error:
        raise directive.error(f"rewrite: {error}") from None


# --- answering -------------------------------------------------------------------------------


def _copy_message(response: dns.message.Message) -> dns.message.Message:
    """A new response with the same header, sections (new lists) and EDNS: the original may be a cache's."""
    out = dns.message.Message(id=response.id)
    out.flags = response.flags
    out.question = list(response.question)
    out.answer = list(response.answer)
    out.authority = list(response.authority)
    out.additional = list(response.additional)
    if response.edns >= 0:
        out.use_edns(response.edns, response.ednsflags, response.payload, options=list(response.options))
    out.set_rcode(response.rcode())
    return out


def _renamed(name: dns.name.Name, rewrite: Rewriter) -> dns.name.Name:
    text = name.to_text()
    new = rewrite(text)
    if new == text:
        return name
    try:
        return dns.name.from_text(new)
    except dns.exception.DNSException:
        return name


def _revalued(rdata, field: str, rewrite: Rewriter):
    old = getattr(rdata, field)
    new = _renamed(old, rewrite)
    return rdata if new is old else rdata.replace(**{field: new})


def _rewrite_rrset(response: dns.message.Message, rrset: dns.rrset.RRset, rules: list) -> dns.rrset.RRset:
    """Each rule, last first, on each record of the RRset (CoreDNS's rewriteResourceRecord)."""
    name, ttl = rrset.name, rrset.ttl
    rdatas = list(rrset)
    value_field = _VALUE_FIELDS.get(rrset.rdtype)
    for rule in rules:
        kind = type(rule)
        if kind is AnswerName:
            name = _renamed(name, rule.rewrite)
        elif kind is AnswerValue:
            if value_field is not None:
                rdatas = [_revalued(rdata, value_field, rule.rewrite) for rdata in rdatas]
        elif kind is TTLClamp:
            if ttl < rule.minimum:
                ttl = rule.minimum
            elif ttl > rule.maximum:
                ttl = rule.maximum
        elif kind is RcodeSwap:
            if response.rcode() == rule.old:
                response.set_rcode(rule.new)
    if name is rrset.name and ttl == rrset.ttl and all(a is b for a, b in zip(rdatas, rrset)):
        # Nothing changed: the RRset is shared with the response the next plugin made.
        return rrset
    out = dns.rrset.RRset(name, rrset.rdclass, rrset.rdtype, rrset.covers)
    for rdata in rdatas:
        out.add(rdata, ttl)
    return out


def _rewrite_options(response: dns.message.Message, rules: list) -> None:
    if response.edns < 0:
        return
    options = list(response.options)
    for rule in rules:
        index = _find(options, lambda o, code=rule.code: o.otype == code)
        if index < 0:
            continue
        if type(rule) is OptionRemove:
            del options[index]
        else:
            options[index] = rule.option
    response.use_edns(response.edns, response.ednsflags, response.payload, options=options)


class RewritePlugin:
    """Runs the block's rewrite rules on each query and puts the answer back into the client's terms."""

    name = "rewrite"

    def __init__(self, rules: tuple[RewriteRule, ...], reactor):
        self.rules = tuple(rules)
        self.reactor = reactor

    def serve(self, request: Request, next):
        query = _Query(request)
        response_rules: list = []
        stopped = False
        for rule in self.rules:
            result = rule.apply(query)
            if result is None:
                continue
            if query.touched:
                _check_name(query)
            response_rules.extend(result)
            if rule.mode == STOP:
                stopped = True
                break
        if not query.reusable:
            request.fastpath.forbid()
        if not query.touched and not response_rules:
            return next(request)
        inner = _rewritten(request, query) if query.touched else request
        result = next(inner)
        if not stopped and not response_rules:
            # CoreDNS sends the answer through its reverter (question
            # restored, response rules applied) only when a `stop` rule
            # applied or a response rule was collected: here the client gets
            # the rewritten question (and the table of rendered answers,
            # keyed by the client's, does not keep the answer).
            return _after(result, lambda response: _finish(request, inner, response))
        cnames = [rule for rule in response_rules if type(rule) is CnameTarget]
        others = [rule for rule in reversed(response_rules) if type(rule) is not CnameTarget]
        now = self.reactor.seconds

        def revert(response: dns.message.Message):
            response = _copy_message(response)
            response.question = list(request.query.question)
            if cnames:
                return _chase_cnames(request, response, cnames, now, lambda r: _apply(request, inner, r, others))
            return _apply(request, inner, response, others)

        return _after(result, revert)


def _check_name(query: _Query) -> None:
    """The rewritten name must be a domain name; it is kept, parsed, for the next plugins."""
    if query.parsed is not None and query.parsed[0] == query.qname:
        return
    try:
        query.parsed = (query.qname, dns.name.from_text(query.qname))
    except dns.exception.DNSException:
        # CoreDNS answers SERVFAIL and reports the error (the `errors` plugin logs it).
        raise ValueError(f"invalid name after rewrite: {query.qname}") from None


def _rewritten(request: Request, query: _Query) -> Request:
    """The request the next plugins see: the rewritten question and options, the same client and policy."""
    original = request.query
    qname = query.parsed[1] if query.parsed is not None else request.qname
    message = dns.message.QueryMessage(id=original.id)
    message.flags = original.flags
    message.question = [dns.rrset.RRset(qname, query.qclass, query.qtype)]
    options = query.options
    if original.edns >= 0:
        message.use_edns(original.edns, original.ednsflags, original.payload,
                         options=list(original.options) if options is None else options)
    elif options is not None:
        message.use_edns(0, 0, 4096, options=options)
    return attrs.evolve(request, query=message, qname=qname, qtype=query.qtype, qclass=query.qclass)


def _after(result, then):
    if isinstance(result, Deferred):
        return result.addCallback(then)
    return then(result)


def _finish(request: Request, inner: Request, response: dns.message.Message) -> dns.message.Message:
    request.plugin = inner.plugin
    if not request.edns and response.edns >= 0:
        # An edns0 rule gave the query an OPT record; the client sent none.
        response = _copy_message(response)
        response.use_edns(False)
    return response


def _apply(request: Request, inner: Request, response: dns.message.Message, rules: list) -> dns.message.Message:
    """The response rules, last matching rule first, on every record (authority, answer, additional)."""
    if rules:
        record_rules = [rule for rule in rules if type(rule) in (AnswerName, AnswerValue, TTLClamp, RcodeSwap)]
        if record_rules:
            sections = (response.authority, response.answer, response.additional)
            if any(sections):
                response.authority, response.answer, response.additional = (
                    [_rewrite_rrset(response, rrset, record_rules) for rrset in section] for section in sections
                )
            else:
                for rule in record_rules:
                    if type(rule) is RcodeSwap and response.rcode() == rule.old:
                        response.set_rcode(rule.new)
        option_rules = [rule for rule in rules if type(rule) in (OptionRemove, OptionRestore)]
        if option_rules:
            _rewrite_options(response, option_rules)
    return _finish(request, inner, response)


def _chase_cnames(request: Request, response: dns.message.Message, rules: list, now: Callable[[], float], then) -> Deferred | dns.message.Message:
    """`cname` rules: the first CNAME target a rule matches is replaced, and what follows it looked up afresh."""
    for rule in reversed(rules):
        for rrset in response.answer:
            if rrset.rdtype != dns.rdatatype.CNAME:
                continue
            target = rrset[0].target.to_text()
            source, new_target = rule.rule.targets(target)
            if target != source or request.lookup is None:
                continue
            try:
                new_name = dns.name.from_text(new_target)
            except dns.exception.DNSException:
                continue
            return _lookup_cname(request, response, source, new_name, rule.qtype, now, then)
    return then(response)


def _lookup_cname(request, response, source: str, new_name: dns.name.Name, qtype: int, now, then):
    def looked_up(reply: dns.message.Message):
        answer = []
        for rrset in response.answer:
            if rrset.rdtype != dns.rdatatype.CNAME:
                continue
            if rrset[0].target.to_text() == source:
                renamed = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
                renamed.add(rrset[0].replace(target=new_name), rrset.ttl)
                answer.append(renamed)
                break
            answer.append(rrset)
        answer.extend(reply.answer)
        response.answer = answer
        if reply.flags & dns.flags.TC:
            response.flags |= dns.flags.TC
        else:
            response.flags &= ~dns.flags.TC
        # The looked-up records hold only for their TTLs.
        if reply.answer:
            request.fastpath.expire_at(now() + min(rrset.ttl for rrset in reply.answer))
        else:
            request.fastpath.forbid()
        return then(response)

    def failed(failure):
        log.error("upstream lookup failed: %s", failure.getErrorMessage())
        request.fastpath.forbid()
        return then(response)

    return request.lookup(new_name, qtype).addCallbacks(looked_up, failed)


def _build(configs: tuple, ctx: BuildContext) -> RewritePlugin:
    return RewritePlugin(configs, ctx.reactor)


_SOURCE = "discovery/dns/README.md#rewrite"
#: The README's "Where Wayfinder departs" bullets, by the field of the rules they concern.
_FIELD_DEPARTURES = (
    ("edns0-server-ip", "edns0",
     "{server_ip} of a block listening on every address is unknown and the rule does nothing (CoreDNS reads "
     "each packet's destination address); a client that sent no OPT record gets none back, though a rule gave "
     "the query one (CoreDNS sends it back)"),
    ("cname-order", "cname",
     "cname rules run before the other response rules and replace the first CNAME they match; CoreDNS "
     "interleaves them record by record"),
    ("ttl-opt", "ttl", "the OPT record's flags are left alone; CoreDNS clamps its TTL field too"),
)


def _departures() -> tuple[Departure, ...]:
    """Each bullet for a rule of its field, written `rewrite FIELD`, `rewrite stop|continue FIELD`, or in a block."""
    found = []
    for key, field, text in _FIELD_DEPARTURES:
        for prefix in ((), (STOP,), (CONTINUE,)):
            found.append(Departure(f"rewrite/{key}{'-' + prefix[0] if prefix else ''}", "rewrite", None,
                                   prefix + (field,), text, _SOURCE))
        found.append(Departure(f"rewrite/{key}-block", "rewrite", field, (), text, _SOURCE))
    return tuple(found)


#: One rule per line (or block), several lines per server block.
PLUGINS = (PluginSpec("rewrite", setup_rewrite, repeatable=True, build=_build, departures=_departures()),)
