"""The `template` directive: answers written as Go templates (CoreDNS's template plugin).

Syntax (CoreDNS's)::

    template CLASS TYPE [ZONE...] {
        match REGEX...
        answer RR
        additional RR
        authority RR
        rcode CODE
        ederror EXTENDED_ERROR_CODE [EXTRA_REASON]
        fallthrough [ZONE...]
        upstream
    }

A query whose name is in ZONE (the block's zones by default) and whose class
and type fit (ANY fits all) is matched against each REGEX (`.*` when none);
the first that matches renders the RRs, parsed as zone-file lines, into the
response. Several `template` lines in a block are tried in order. A query
in the zones that no template matches gets SERVFAIL unless `fallthrough`
covers its name. See `gotemplate` for the template language supported.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import attrs
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.ttl
from prometheus_client import CollectorRegistry, Counter
from twisted.internet import defer
from twisted.python.failure import Failure

from ..corefile import Directive
from ..departures import Departure
from ..ops.metrics import per_registry
from ..plugin import BuildContext, PluginSpec
from ..zones import Fallthrough, longest_match, normalize_zone, zones_from_cidr
from . import gotemplate
from .request import Request

__all__ = ["TemplateConfig", "TemplatePlugin", "setup_template", "parse_rr", "RRError"]

log = logging.getLogger("wayfinder.template")

#: CoreDNS refuses longer regular expressions.
MAX_REGEX_LENGTH = 10000
#: miekg/dns's default TTL for a record line that gives none.
DEFAULT_TTL = 3600
SECTIONS = ("answer", "additional", "authority")
#: The method templates may call with an argument: `.Meta "key"`.
METHODS = frozenset({("Meta",)})
#: Fields whose value differs between clients asking the same question (the
#: table of rendered answers keys on the question as asked and the client's
#: EDNS state; .Message holds the query's ID).
PER_CLIENT_FIELDS = ("Remote", "Message")


class RRError(ValueError):
    """Rendered text that is not a resource record."""


@attrs.frozen
class RRTemplate:
    section: str
    template: gotemplate.Template


@attrs.frozen
class TemplateConfig:
    """One `template` line: what it matches and what it answers."""

    qclass: int
    qtype: int
    zones: tuple[str, ...]
    regexes: tuple[re.Pattern, ...]
    records: tuple[RRTemplate, ...] = ()
    rcode: int = dns.rcode.NOERROR
    ederror: tuple[int, str] | None = None
    fallthrough: Fallthrough = Fallthrough()
    #: The answer depends on who asked (.Remote, .Message): never reused.
    per_client: bool = False


def _class(text: str, directive: Directive) -> int:
    # CoreDNS looks the class up as written (dns.StringToClass): upper case only.
    try:
        if text != text.upper():
            raise ValueError
        return dns.rdataclass.from_text(text)
    except (dns.exception.DNSException, ValueError):
        raise directive.error(f"template: invalid query class {text}") from None


def _type(text: str, directive: Directive) -> int:
    try:
        if text != text.upper():
            raise ValueError
        return dns.rdatatype.from_text(text)
    except (dns.exception.DNSException, ValueError):
        raise directive.error(f"template: invalid RR type {text}") from None


def _zones(args, ctx) -> tuple[str, ...]:
    if not args:
        return tuple(ctx.zones)
    zones = []
    for arg in args:
        zones.extend(zones_from_cidr(arg) if "/" in arg else (normalize_zone(arg),))
    return tuple(zones)


def setup_template(directive: Directive, ctx) -> TemplateConfig:
    """Parse one `template` line and its block. Raises CorefileError naming file:line."""
    if len(directive.args) < 2:
        raise directive.error("template: expected CLASS TYPE [ZONE...]")
    qclass = _class(directive.args[0], directive)
    qtype = _type(directive.args[1], directive)
    try:
        zones = _zones(directive.args[2:], ctx)
    except ValueError as error:
        raise directive.error(f"template: {error}") from None
    regexes: list[re.Pattern] = []
    records: list[RRTemplate] = []
    values: dict[str, Any] = {}
    for option in directive.block:
        name, args = option.name, option.args
        if name == "match":
            if not args:
                raise option.error("template: match needs at least one REGEX")
            for pattern in args:
                if len(pattern) > MAX_REGEX_LENGTH:
                    raise option.error(f"template: regex pattern too long: {len(pattern)} > {MAX_REGEX_LENGTH}")
                try:
                    regexes.append(re.compile(pattern))
                except re.error as error:
                    raise option.error(f"template: could not parse regex: {pattern}, {error}") from None
        elif name in SECTIONS:
            if not args:
                raise option.error(f"template: {name} needs at least one RR")
            for text in args:
                try:
                    parsed = gotemplate.parse(text, gotemplate.FUNCTIONS, METHODS)
                except gotemplate.TemplateSyntaxError as error:
                    raise option.error(f"template: could not compile template: {text}, {error}") from None
                records.append(RRTemplate(name, parsed))
        elif name == "rcode":
            if len(args) != 1:
                raise option.error("template: rcode needs one CODE")
            try:
                if args[0] != args[0].upper():
                    raise ValueError
                values["rcode"] = int(dns.rcode.from_text(args[0]))
            except (dns.exception.DNSException, ValueError):
                raise option.error(f"template: unknown rcode {args[0]}") from None
        elif name == "ederror":
            if len(args) not in (1, 2):
                raise option.error("template: ederror needs EXTENDED_ERROR_CODE [EXTRA_REASON]")
            if not args[0].isdigit() or int(args[0]) > 0xFFFF:
                raise option.error(f"template: error parsing extended DNS error code {args[0]}")
            values["ederror"] = (int(args[0]), args[1] if len(args) == 2 else "")
        elif name == "fallthrough":
            values["fallthrough"] = Fallthrough.from_args(args)
        elif name == "upstream":
            # Accepted and ignored, as in CoreDNS: CNAMEs are always resolved.
            pass
        elif name in ("var", "expr"):
            raise option.error(f"template: {name} (expressions) is not supported")
        else:
            raise option.error(f"template: unknown property '{name}'")
    per_client = any(record.template.uses(field) for record in records for field in PER_CLIENT_FIELDS)
    return TemplateConfig(
        qclass=qclass, qtype=qtype, zones=zones, regexes=tuple(regexes) or (re.compile(".*"),),
        records=tuple(records), per_client=per_client, **values,
    )


# --- rendering ------------------------------------------------------------------------------


def parse_rr(text: str) -> dns.rrset.RRset:
    """One zone-file line -> an RRset, as miekg/dns's NewRR reads it (origin ".", TTL 3600, class IN)."""
    try:
        tok = dns.tokenizer.Tokenizer(text)
        owner = tok.get_name(dns.name.root)
        token = tok.get()
        ttl, rdclass = None, None
        for _ in range(2):
            if not token.is_identifier():
                break
            if ttl is None and token.value[:1].isdigit():
                ttl = dns.ttl.from_text(token.value)
            elif rdclass is None and _is_class(token.value):
                rdclass = dns.rdataclass.from_text(token.value)
            else:
                break
            token = tok.get()
        if not token.is_identifier():
            raise RRError(f"not a resource record: {text!r}")
        rdtype = dns.rdatatype.from_text(token.value)
        rdclass = dns.rdataclass.IN if rdclass is None else rdclass
        rdata = dns.rdata.from_text(rdclass, rdtype, tok, dns.name.root, relativize=False)
    except RRError:
        raise
    except (dns.exception.DNSException, ValueError) as error:
        raise RRError(f"{error}: {text!r}") from None
    rrset = dns.rrset.RRset(owner, rdclass, rdtype)
    rrset.add(rdata, DEFAULT_TTL if ttl is None else ttl)
    return rrset


def _is_class(text: str) -> bool:
    try:
        dns.rdataclass.from_text(text)
    except (dns.exception.DNSException, ValueError):
        return False
    return True


@attrs.frozen
class _Question:
    template_fields = frozenset({"Name", "Qtype", "Qclass"})

    Name: str
    Qtype: int
    Qclass: int

    def __str__(self) -> str:
        # miekg's Question.String().
        return f";{self.Name}\t{dns.rdataclass.to_text(self.Qclass)}\t{dns.rdatatype.to_text(self.Qtype)}"


class _Message:
    """The query, as much as templates read of it (miekg's dns.Msg fields)."""

    template_fields = frozenset({"Id", "Rcode", "Opcode", "Question"})

    def __init__(self, message: dns.message.Message):
        self._message = message
        self.Id = message.id
        self.Rcode = message.rcode()
        self.Opcode = message.opcode()
        self.Question = [_Question(q.name.to_text(), q.rdtype, q.rdclass) for q in message.question]

    def __str__(self) -> str:
        return self._message.to_text()


class _Data:
    """What `{{ ... }}` reads (CoreDNS's templateData)."""

    __slots__ = ("Zone", "Name", "Regex", "Match", "Group", "Class", "Type", "Remote", "_request", "_message")
    template_fields = frozenset(
        {"Zone", "Name", "Regex", "Match", "Group", "Class", "Type", "Remote", "Question", "Message", "Meta"}
    )

    def __init__(self, zone: str, name: str, regex: re.Pattern, found: re.Match, qclass: str, qtype: str, request: Request):
        self.Zone = zone
        self.Name = name
        self.Regex = regex.pattern
        self.Match = [found.group(0), *found.groups("")]
        group = {str(i): value for i, value in enumerate(self.Match)}
        group.update({key: value or "" for key, value in found.groupdict().items()})
        self.Group = group
        self.Class = qclass
        self.Type = qtype
        self.Remote = request.client[0]
        self._request = request
        self._message = None

    @property
    def Question(self) -> _Question:
        request = self._request
        return _Question(request.qname.to_text(), request.qtype, request.qclass)

    @property
    def Message(self) -> _Message:
        if self._message is None:
            self._message = _Message(self._request.query)
        return self._message

    def Meta(self, key: str) -> str:
        # Metadata needs CoreDNS's metadata plugin, which Wayfinder does not
        # have: every key reads as empty, as in CoreDNS without it.
        return ""


# --- metrics --------------------------------------------------------------------------------

@per_registry
def _metrics(registry: CollectorRegistry) -> tuple[Counter, Counter, Counter]:
    labels = ["server", "zone", "view", "class", "type"]
    return (
        Counter("coredns_template_matches", "Counter of template regex matches.", labels, registry=registry),
        Counter("coredns_template_template_failures", "Counter of go template failures.",
                labels + ["section", "template"], registry=registry),
        Counter("coredns_template_rr_failures", "Counter of mis-templated RRs.",
                labels + ["section", "template"], registry=registry),
    )


# --- the plugin -----------------------------------------------------------------------------


class TemplateError(RuntimeError):
    """A template that failed while answering: the query gets SERVFAIL and `errors` logs this."""


class TemplatePlugin:
    """The block's `template` lines, tried in order."""

    name = "template"

    def __init__(self, configs: tuple[TemplateConfig, ...], reactor, *, registry: CollectorRegistry | None = None,
                 server: str = "dns://:53"):
        self.templates = tuple(configs)
        self.zones = tuple(zone for config in self.templates for zone in config.zones)
        self.reactor = reactor
        self.server = server
        self._matches, self._template_failures, self._rr_failures = _metrics(
            registry if registry is not None else CollectorRegistry()
        )

    def serve(self, request: Request, next):
        name = request.name
        if longest_match(self.zones, name) is None:
            return next(request)
        for template in self.templates:
            zone = longest_match(template.zones, name)
            if zone is None or not _fits(template, request):
                continue
            for regex in template.regexes:
                found = regex.search(name)
                if found is not None:
                    return self._answer(request, template, zone, regex, found)
            if not template.fallthrough.through(name):
                return self._servfail(request)
        return next(request)

    def _servfail(self, request: Request) -> dns.message.Message:
        response = request.reply()
        response.set_rcode(dns.rcode.SERVFAIL)
        request.plugin = self.name
        return response

    def _answer(self, request: Request, template: TemplateConfig, zone: str, regex, found):
        qclass = request.qclass if request.qclass != dns.rdataclass.ANY else template.qclass
        qtype = request.qtype if request.qtype != dns.rdatatype.ANY else template.qtype
        class_text, type_text = dns.rdataclass.to_text(qclass), dns.rdatatype.to_text(qtype)
        matches = self._matches.labels(self.server, zone, "", class_text, type_text)
        matches.inc()
        # Reuses from the table of rendered answers count as matches too.
        request.fastpath.on_reuse += (matches.inc,)
        if template.per_client:
            request.fastpath.forbid()
        if template.rcode == dns.rcode.SERVFAIL:
            return self._servfail(request)
        data = _Data(zone, request.name, regex, found, class_text, type_text, request)
        response = request.reply()
        response.flags |= dns.flags.AA
        response.set_rcode(template.rcode)
        #: (position in the answer section after a CNAME, its target): each is
        #: resolved and its records go right after it, as CoreDNS appends them.
        chases: list[tuple[int, dns.name.Name]] = []
        address_question = request.qtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for record in template.records:
            rrset = self._render(record, data, zone, class_text, type_text)
            section = getattr(response, record.section)
            _merge(section, rrset)
            if record.section == "answer" and address_question and rrset.rdtype == dns.rdatatype.CNAME:
                chases.append((len(section), rrset[0].target))
        if template.ederror is not None:
            # CoreDNS's SetEdns0(4096, true): the DO bit is set with the extended error.
            code, reason = template.ederror
            options = list(response.options) + [dns.edns.EDEOption(code, reason or None)]
            response.use_edns(0, dns.flags.DO, 4096, options=options)
        request.plugin = self.name
        if chases and request.lookup is not None:
            return self._chase(request, response, chases)
        return response

    def _render(self, record: RRTemplate, data: _Data, zone: str, class_text: str, type_text: str) -> dns.rrset.RRset:
        try:
            text = record.template.execute(data, gotemplate.FUNCTIONS)
        except gotemplate.ExecError as error:
            self._template_failures.labels(
                self.server, zone, "", class_text, type_text, record.section, str(record.template)
            ).inc()
            raise TemplateError(f"template: {record.section}: {error}") from None
        try:
            return parse_rr(text)
        except RRError as error:
            self._rr_failures.labels(
                self.server, zone, "", class_text, type_text, record.section, str(record.template)
            ).inc()
            raise TemplateError(f"template: {record.section}: {error}") from None

    def _chase(self, request: Request, response: dns.message.Message, chases: list[tuple[int, dns.name.Name]]):
        """CNAME answers to an A/AAAA question: each target is resolved through the server (CoreDNS's upstream)."""

        def looked_up(index: int, outcome) -> tuple[int, dns.message.Message | None]:
            if isinstance(outcome, Failure):
                # CoreDNS keeps the answer without the target's records.
                return index, None
            return index, outcome

        def appended(results: list) -> dns.message.Message:
            now = self.reactor.seconds()
            for index, reply in reversed(results):
                if reply is None or not reply.answer:
                    # The target's denial or a failure carries no TTL we keep.
                    request.fastpath.forbid()
                    continue
                request.fastpath.expire_at(now + min(rrset.ttl for rrset in reply.answer))
                response.answer[index:index] = reply.answer
                if reply.flags & dns.flags.TC:
                    response.flags |= dns.flags.TC
            return response

        lookups = [
            request.lookup(target, request.qtype).addBoth(lambda outcome, index=index: looked_up(index, outcome))
            for index, target in chases
        ]
        return defer.gatherResults(lookups).addCallback(appended)


def _fits(template: TemplateConfig, request: Request) -> bool:
    """Class and type: ANY on either side fits."""
    if template.qclass != dns.rdataclass.ANY and request.qclass != dns.rdataclass.ANY and request.qclass != template.qclass:
        return False
    return template.qtype == dns.rdatatype.ANY or request.qtype == dns.rdatatype.ANY or request.qtype == template.qtype


def _merge(section: list, rrset: dns.rrset.RRset) -> None:
    """Records of one name, class and type go into one RRset (the wire keeps them together)."""
    for existing in section:
        if existing.name == rrset.name and existing.rdtype == rrset.rdtype and existing.rdclass == rrset.rdclass:
            if existing.ttl == rrset.ttl:
                existing.update(rrset)
                return
    section.append(rrset)


def _build(configs: tuple, ctx: BuildContext) -> TemplatePlugin:
    return TemplatePlugin(configs, ctx.reactor, registry=ctx.registry, server=ctx.server)


_SOURCE = "discovery/dns/README.md#template"

#: One template per line, several lines per server block.
PLUGINS = (
    PluginSpec("template", setup_template, repeatable=True, build=_build, departures=(
        Departure("template/meta", "template", None, (),
                  ".Meta reads as empty: Wayfinder has no metadata plugin (as CoreDNS without it)", _SOURCE),
        Departure("template/cname-lookups", "template", None, (),
                  "the CNAMEs of an answer are resolved all at once, and TC is set when any lookup was truncated; "
                  "CoreDNS resolves them one after the other and keeps the last lookup's TC", _SOURCE),
        Departure("template/regex", "template", "match", (),
                  "Python's regular expressions, not RE2: RE2-only escapes such as \\z are refused and nested "
                  "repeats can backtrack", _SOURCE),
    )),
)
