"""The `template` directive, against CoreDNS's plugin/template tests translated to our rows.

Templates are built with the real Corefile parser; the next plugin marks a
fall through (CoreDNS's rcodeFallthrough) by answering with a TXT record
saying so.
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import defer
from twisted.internet.task import Clock

from discovery.config import load_text
from discovery.corefile import CorefileError
from discovery.dns import gotemplate
from discovery.dns.request import Request
from discovery.dns.template import RRError, TemplateError, TemplatePlugin, parse_rr

FALLTHROUGH = "fallthrough"
IP_GROUPS = r"(^|[.])ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$"


def template(body: str, keys: str = ".", registry: CollectorRegistry | None = None) -> TemplatePlugin:
    """A template plugin from the `template` lines of a block, through the real parser."""
    config = load_text(f"{keys} {{\n{body}\n}}\n")
    return TemplatePlugin(config.servers[0].plugin("template"), Clock(), registry=registry, server="dns://:53")


def make_request(name: str, rdtype="A", rdclass="IN", client=("10.240.0.1", 40212)) -> Request:
    query = dns.message.make_query(name, rdtype, rdclass)
    question = query.question[0]
    return Request(query=query, qname=question.name, qtype=question.rdtype, qclass=question.rdclass, zone=".",
                   server="dns://:53", proto="udp", client=client)


def fall_through(request: Request) -> dns.message.Message:
    response = request.reply()
    response.answer.append(dns.rrset.from_text(request.qname, 0, "IN", "TXT", FALLTHROUGH))
    return response


def ask(plugin: TemplatePlugin, request: Request) -> dns.message.Message:
    result = plugin.serve(request, fall_through)
    if isinstance(result, defer.Deferred):
        fired: list = []
        result.addCallback(fired.append)
        (result,) = fired
    return result


def fell_through(response: dns.message.Message) -> bool:
    return any(rrset.rdtype == dns.rdatatype.TXT and FALLTHROUGH in rrset.to_text() for rrset in response.answer)


def records(response: dns.message.Message, section: str = "answer") -> list[str]:
    return [f"{rrset.name} {rrset.ttl} {dns.rdataclass.to_text(rrset.rdclass)} {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
            for rrset in getattr(response, section) for rdata in rrset]


# --- TestHandler ---------------------------------------------------------------------------

HANDLER_ROWS = [
    # (name, template block, qname, qtype, rcode, answer, authority, additional)
    ("ExampleDomainNameMismatch",
     f'template ANY ANY {{\n match "{IP_GROUPS}"\n answer "{{{{ .Name }}}} 60 IN A 10.{{{{ .Group.b }}}}.{{{{ .Group.c }}}}.{{{{ .Group.d }}}}"\n fallthrough\n}}',
     "test.invalid.", "A", FALLTHROUGH, [], [], []),
    ("ExampleIPMatch",
     'template IN A {\n match .*\n answer "{{ .Name }} 60 IN A {{ .Remote }}"\n fallthrough\n}',
     "test.example.", "A", dns.rcode.NOERROR, ["test.example. 60 IN A 10.240.0.1"], [], []),
    ("ExampleDomainMatch",
     f'template ANY ANY {{\n match "{IP_GROUPS}"\n answer "{{{{ .Name }}}} 60 IN A 10.{{{{ .Group.b }}}}.{{{{ .Group.c }}}}.{{{{ .Group.d }}}}"\n fallthrough\n}}',
     "ip-10-95-12-8.example.", "A", dns.rcode.NOERROR, ["ip-10-95-12-8.example. 60 IN A 10.95.12.8"], [], []),
    ("ExampleDomainMatchHexIp",
     'template ANY ANY {\n match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"\n'
     ' answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}"\n fallthrough\n}',
     "ip0a5f0c09.example.", "A", dns.rcode.NOERROR, ["ip0a5f0c09.example. 60 IN A 10.95.12.9"], [], []),
    ("ExampleDomainMXMatch",
     f'template ANY ANY {{\n match "{IP_GROUPS}"\n answer "{{{{ .Name }}}} 60 MX 10 {{{{ .Name }}}}"\n'
     f' additional "{{{{ .Name }}}} 60 IN A 10.{{{{ .Group.b }}}}.{{{{ .Group.c }}}}.{{{{ .Group.d }}}}"\n fallthrough\n}}',
     "ip-10-95-12-8.example.", "MX", dns.rcode.NOERROR, ["ip-10-95-12-8.example. 60 IN MX 10 ip-10-95-12-8.example."], [],
     ["ip-10-95-12-8.example. 60 IN A 10.95.12.8"]),
    ("ExampleDomainANSMatch",
     f'template ANY ANY {{\n match "{IP_GROUPS}"\n answer "{{{{ .Name }}}} 60 IN A 10.{{{{ .Group.b }}}}.{{{{ .Group.c }}}}.{{{{ .Group.d }}}}"\n'
     ' additional "ns0.example. IN A 203.0.113.8"\n authority "example. IN NS ns0.example.com."\n fallthrough\n}',
     "ip-10-95-12-8.example.", "A", dns.rcode.NOERROR, ["ip-10-95-12-8.example. 60 IN A 10.95.12.8"],
     ["example. 3600 IN NS ns0.example.com."], ["ns0.example. 3600 IN A 203.0.113.8"]),
    ("ExampleInvalidNXDOMAIN",
     'template ANY ANY {\n match "[.]invalid[.]$"\n rcode NXDOMAIN\n'
     ' answer "invalid. 60 {{ .Class }} SOA a.invalid. b.invalid. (1 60 60 60 60)"\n fallthrough\n}',
     "test.invalid.", "MX", dns.rcode.NXDOMAIN, ["invalid. 60 IN SOA a.invalid. b.invalid. 1 60 60 60 60"], [], []),
    ("CNAMEWithoutUpstream",
     'template ANY ANY {\n match "example[.]net[.]"\n answer "example.net 60 IN CNAME target.example.com"\n fallthrough\n}',
     "example.net.", "A", dns.rcode.NOERROR, ["example.net. 60 IN CNAME target.example.com."], [], []),
    ("mdMissing",
     f'template ANY ANY {{\n match "{IP_GROUPS}"\n answer "{{{{ .Meta \\"foofoo\\" }}}}{{{{ .Name }}}} 60 IN A 10.{{{{ .Group.b }}}}.{{{{ .Group.c }}}}.{{{{ .Group.d }}}}"\n fallthrough\n}}',
     "ip-10-95-12-8.example.", "A", dns.rcode.NOERROR, ["ip-10-95-12-8.example. 60 IN A 10.95.12.8"], [], []),
]


@pytest.mark.parametrize("name, block, qname, qtype, rcode, answer, authority, additional", HANDLER_ROWS,
                         ids=[row[0] for row in HANDLER_ROWS])
def test_handler_rows(name, block, qname, qtype, rcode, answer, authority, additional):
    """TestHandler: the response a template gives, or a fall through."""
    response = ask(template(block), make_request(qname, qtype))
    if rcode == FALLTHROUGH:
        assert fell_through(response)
        return
    assert response.rcode() == rcode
    assert response.flags & dns.flags.AA
    assert (records(response), records(response, "authority"), records(response, "additional")) == (
        answer, authority, additional)


def test_rcode_servfail_answers_servfail():
    """RcodeServFail: `rcode SERVFAIL` fails the matching query."""
    response = ask(template("template ANY ANY {\n rcode SERVFAIL\n}"), make_request("test.invalid."))
    assert response.rcode() == dns.rcode.SERVFAIL and not response.answer


@pytest.mark.parametrize("section", ["answer", "additional", "authority"])
def test_a_rendering_that_is_no_record_fails_the_query_and_counts(section):
    """NonRRTemplate, NonRRAdditionalTemplate, NonRRAuthorityTemplate: SERVFAIL and coredns_template_rr_failures_total."""
    registry = CollectorRegistry()
    plugin = template(f'template ANY ANY {{\n match "[.]example[.]$"\n {section} "{{{{ .Name }}}}"\n fallthrough\n}}', registry=registry)
    with pytest.raises(TemplateError):
        ask(plugin, make_request("test.example.", "ANY"))
    labels = {"server": "dns://:53", "zone": ".", "view": "", "class": "IN", "type": "ANY", "section": section,
              "template": "{{.Name}}"}
    assert registry.get_sample_value("coredns_template_rr_failures_total", labels) == 1


@pytest.mark.parametrize("text, message", [
    ('{{ .Name }} 60 IN TXT "{{ index .Match 2 }}"', "index out of range: 2"),
    ('{{ .Name }} 60 IN TXT "{{ parseInt "gg" 16 8 }}"', 'strconv.ParseUint: parsing "gg": invalid syntax'),
])
def test_a_template_that_fails_to_execute_fails_the_query_and_counts(text, message):
    """BrokenTemplate, BrokenParseIntTemplate: SERVFAIL with Go's reason, and coredns_template_template_failures_total."""
    registry = CollectorRegistry()
    escaped = text.replace('"', '\\"')
    plugin = template(f'template ANY ANY {{\n match "[.]example[.]$"\n answer "{escaped}"\n fallthrough\n}}', registry=registry)
    with pytest.raises(TemplateError, match=message):
        ask(plugin, make_request("test.example.", "ANY"))
    assert registry.get_sample_value(
        "coredns_template_template_failures_total",
        {"server": "dns://:53", "zone": ".", "view": "", "class": "IN", "type": "ANY", "section": "answer",
         "template": str(gotemplate.parse(text, gotemplate.FUNCTIONS))},
    ) == 1


def test_matches_are_counted_by_zone_class_and_type():
    """coredns_template_matches_total counts each regex match."""
    registry = CollectorRegistry()
    plugin = template('template IN A example {\n answer "{{ .Name }} 60 IN A 10.0.0.1"\n}', registry=registry)
    ask(plugin, make_request("a.example."))
    ask(plugin, make_request("b.example."))
    assert registry.get_sample_value(
        "coredns_template_matches_total",
        {"server": "dns://:53", "zone": "example.", "view": "", "class": "IN", "type": "A"},
    ) == 2


def test_an_extended_error_is_added_with_the_do_bit():
    """EDNS error: `ederror 21 REASON` adds an EDE option (CoreDNS's SetEdns0(4096, true))."""
    plugin = template('template ANY ANY {\n rcode NXDOMAIN\n'
                      ' authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"\n'
                      ' ederror 21 "Blocked due to RFC2606"\n}')
    response = ask(plugin, make_request("test.invalid."))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.ednsflags & dns.flags.DO
    assert list(response.options) == [dns.edns.EDEOption(21, "Blocked due to RFC2606")]


def test_a_cname_to_an_address_question_is_resolved_and_truncation_kept():
    """TestTruncatedCNAME: the CNAME target is looked up through the server and its TC bit kept."""
    plugin = template('template IN A test {\n match "^cname\\.test\\.$"\n answer "cname.test. 600 IN CNAME test.up"\n}')
    request = make_request("cname.test.")

    def lookup(name, rdtype):
        reply = dns.message.make_response(dns.message.make_query(name, rdtype))
        reply.flags |= dns.flags.TC
        reply.answer.append(dns.rrset.from_text("test.up.", 600, "IN", "A", "1.2.3.4"))
        return defer.succeed(reply)

    request.lookup = lookup
    response = ask(plugin, request)
    assert response.flags & dns.flags.TC
    assert records(response) == ["cname.test. 600 IN CNAME test.up.", "test.up. 600 IN A 1.2.3.4"]
    assert request.fastpath.expires == 600


def test_each_cname_answer_is_followed_by_its_targets_records():
    """Every CNAME the template answers is resolved, and its target's records follow it, in the template's order."""
    plugin = template('template IN A test {\n'
                      ' answer "one.test. 60 IN CNAME a.up." "two.test. 60 IN CNAME b.up."\n}')
    request = make_request("x.test.")
    targets = {"a.up.": "1.1.1.1", "b.up.": "2.2.2.2"}

    def lookup(name, rdtype):
        reply = dns.message.make_response(dns.message.make_query(name, rdtype))
        reply.answer.append(dns.rrset.from_text(name, 30, "IN", "A", targets[name.to_text()]))
        return defer.succeed(reply)

    request.lookup = lookup
    assert records(ask(plugin, request)) == [
        "one.test. 60 IN CNAME a.up.", "a.up. 30 IN A 1.1.1.1", "two.test. 60 IN CNAME b.up.", "b.up. 30 IN A 2.2.2.2",
    ]


def test_a_failed_cname_lookup_keeps_the_cname_and_is_not_reused():
    """A target the server cannot resolve leaves the CNAME alone in the answer, computed afresh next time."""
    plugin = template('template IN A test {\n answer "one.test. 60 IN CNAME a.up."\n}')
    request = make_request("x.test.")
    request.lookup = lambda name, rdtype: defer.fail(RuntimeError("no upstream"))
    assert records(ask(plugin, request)) == ["one.test. 60 IN CNAME a.up."]
    assert not request.fastpath.reusable


# --- TestMultiSection -------------------------------------------------------------------------

MULTI = """\
    template IN A {
        rcode REFUSED
    }
    template IN TXT {
        match "$^"
        rcode SERVFAIL
        fallthrough
    }
    template CH TXT coredns.invalid {
        answer "{{ .Name }} 60 CH TXT \\"test\\""
    }
    template IN A example {
        match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
        answer "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        fallthrough
    }
    template IN MX example {
        match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
        answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
        additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
    }"""


@pytest.mark.parametrize("qname, qtype, qclass, rcode, answer", [
    ("some.test.", "A", "IN", dns.rcode.REFUSED, []),
    ("some.test.", "TXT", "IN", FALLTHROUGH, []),
    ("coredns.invalid.", "TXT", "CH", dns.rcode.NOERROR, ['coredns.invalid. 60 CH TXT "test"']),
    ("ip-10-11-12-13.example.", "A", "IN", dns.rcode.NOERROR, ["ip-10-11-12-13.example. 60 IN A 10.11.12.13"]),
    ("ip-10-11-12-13.example.", "MX", "IN", dns.rcode.NOERROR, ["ip-10-11-12-13.example. 60 IN MX 10 ip-10-11-12-13.example."]),
    ("something.example.", "A", "IN", FALLTHROUGH, []),
    ("something.example.", "MX", "IN", dns.rcode.SERVFAIL, []),
])
def test_several_templates_in_one_block(qname, qtype, qclass, rcode, answer):
    """TestMultiSection: templates are tried in order, each in its zones, class and type."""
    plugin = template(MULTI, keys="test.:8053")
    response = ask(plugin, make_request(qname, qtype, qclass))
    if rcode == FALLTHROUGH:
        assert fell_through(response)
        return
    assert response.rcode() == rcode
    assert records(response) == answer


# --- the README's examples ----------------------------------------------------------------------

README_A_PTR = r"""
    template IN A example {
      match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }
    template IN PTR in-addr.arpa {
      match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
      answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
    }"""


@pytest.mark.parametrize("qname, qtype, expected", [
    ("ip-10-1-2-3.example.", "A", "ip-10-1-2-3.example. 60 IN A 10.1.2.3"),
    ("www.ip-10-1-2-3.example.", "A", "www.ip-10-1-2-3.example. 60 IN A 10.1.2.3"),
    ("3.2.1.10.in-addr.arpa.", "PTR", "3.2.1.10.in-addr.arpa. 60 IN PTR ip-10-1-2-3.example."),
])
def test_the_readme_a_and_ptr_pair(qname, qtype, expected):
    """README "Resolve A/PTR for .example": ip-a-b-c-d.example is a.b.c.d, and back."""
    assert records(ask(template(README_A_PTR), make_request(qname, qtype))) == [expected]


AKS = r"""
    template ANY ANY internal.cloudapp.net {
        match "^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$"
        rcode NXDOMAIN
        fallthrough
    }"""


@pytest.mark.parametrize("qname, nxdomain", [
    ("a.b.c.d.internal.cloudapp.net.", True),
    ("myvm.default.svc.cluster.local.internal.cloudapp.net.", True),
    ("myvm.internal.cloudapp.net.", False),
    ("a.b.c.internal.cloudapp.net.", False),
])
def test_aks_search_path_completions_are_nxdomain(qname, nxdomain):
    """AKS's default: names with four or more labels before internal.cloudapp.net are NXDOMAIN, the rest fall through."""
    response = ask(template(AKS), make_request(qname, "AAAA"))
    assert fell_through(response) is not nxdomain
    if nxdomain:
        assert response.rcode() == dns.rcode.NXDOMAIN and not response.answer


def test_names_outside_every_template_zone_pass_on():
    """A name in none of the templates' zones goes to the next plugin whatever the templates say."""
    response = ask(template("template ANY ANY example {\n rcode REFUSED\n}"), make_request("other.org."))
    assert fell_through(response)


# --- reuse of answers ------------------------------------------------------------------------------


def test_a_template_answer_may_be_reused():
    """An answer made from the question alone may be served from the table of rendered answers."""
    request = make_request("ip-10-1-2-3.example.")
    ask(template(README_A_PTR), request)
    assert request.fastpath.reusable


def test_a_template_reading_the_question_as_asked_may_be_reused():
    """.Question keeps the client's case, and the table is keyed by the question as asked: reuse is safe."""
    request = make_request("A.Example.", "TXT")
    response = ask(template('template IN TXT example {\n answer "{{ .Name }} 60 IN TXT {{ .Question.Name }}"\n}'), request)
    assert records(response) == ['a.example. 60 IN TXT "A.Example."']
    assert request.fastpath.reusable


@pytest.mark.parametrize("field", [".Remote", "(index .Message.Question 0).Name"])
def test_a_template_reading_the_client_is_not_reused(field):
    """An answer that names the client (.Remote) or reads its message (its ID) is computed afresh for every query."""
    request = make_request("a.example.", "TXT")
    ask(template(f'template IN TXT example {{\n answer "{{{{ .Name }}}} 60 IN TXT {{{{ {field} }}}}"\n}}'), request)
    assert not request.fastpath.reusable


# --- TestSetupParse ------------------------------------------------------------------------------

SETUP_OK = [
    "template ANY ANY {\n answer \"{{ parseInt }}\"\n additional \"{{ parseInt }}\"\n authority \"{{ parseInt }}\"\n}",
    "template ANY ANY (?P<x>",
    "template ANY ANY {\n\n}",
    "template ANY A example.com {\n match ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com\n"
    " answer \"{{ .Name }} A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Grup.d }}.\"\n fallthrough\n}",
    "template ANY AAAA example.com {\n match ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com\n"
    " authority \"example.com 60 IN SOA ns.example.com hostmaster.example.com (1 60 60 60 60)\"\n fallthrough\n}",
    "template IN ANY example.com {\n match \"[.](example[.]com[.]dc1[.]example[.]com[.])$\"\n rcode NXDOMAIN\n"
    " authority \"{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.example.com (1 60 60 60 60)\"\n"
    " fallthrough example.com\n}",
    "template IN A example {\n match ^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$\n"
    " answer \"{{ .Name }} 3600 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}\"\n}",
    "template ANY ANY invalid {\n rcode NXDOMAIN\n"
    " authority \"invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)\"\n"
    " ederror 21 \"Blocked according to RFC2606\"\n}",
    "template IN A example {\n upstream 8.8.8.8\n}",
    "template IN A example {\n answer \"{{- .Name -}} 60 IN A {{/* a comment */}}10.0.0.1\"\n}",
    "template IN A example {\n answer \"{{ .Name | printf \\\"%s\\\" }} 60 IN A 10.0.0.1\"\n}",
]

SETUP_ERRORS = [
    ("template", 2),
    ("template X", 2),
    ("template ANY", 2),
    ("template ANY X", 2),
    ("template in A", 2),
    ("template ANY ANY .* {\n notavailable\n}", 3),
    ("template ANY ANY {\n answer\n}", 3),
    ("template ANY ANY {\n additional\n}", 3),
    ("template ANY ANY {\n rcode\n}", 3),
    ("template ANY ANY {\n rcode UNDEFINED\n}", 3),
    ("template ANY ANY {\n answer \"{{\"\n}", 3),
    ("template ANY ANY {\n additional \"{{\"\n}", 3),
    ("template ANY ANY {\n authority \"{{\"\n}", 3),
    ("template ANY ANY {\n answer \"{{ notAFunction }}\"\n}", 3),
    ("template ANY ANY invalid {\n rcode NXDOMAIN\n ederror invalid \"Blocked according to RFC2606\"\n}", 4),
    ("template ANY ANY invalid {\n rcode NXDOMAIN\n ederror too many arguments\n}", 4),
    ("template ANY ANY {\n match ([a\n}", 3),
    ("template ANY ANY {\n answer \"{{ if .Name }}x{{ end }}\"\n}", 3),
    ("template ANY ANY {\n answer \"{{ range .Match }}x{{ end }}\"\n}", 3),
    ("template ANY ANY {\n answer \"{{ $x := .Name }}\"\n}", 3),
    ("template ANY ANY {\n var ip 1\n}", 3),
    ("template ANY ANY {\n expr true\n}", 3),
]


@pytest.mark.parametrize("block", SETUP_OK)
def test_coredns_accepts_these_templates(block):
    """TestSetupParse's accepted stanzas load (unknown fields fail when a query runs them, as in Go)."""
    template(block, keys="domain.com.:8053 dynamic.domain.com.:8053")


@pytest.mark.parametrize("block, line", SETUP_ERRORS)
def test_coredns_refuses_these_templates_naming_the_line(block, line):
    """TestSetupParse's refused stanzas, and the constructs outside the supported subset, stop start-up at their line."""
    with pytest.raises(CorefileError) as error:
        load_text(f".:53 {{\n{block}\n}}\n", "Corefile")
    assert (error.value.file, error.value.line) == ("Corefile", line)


def test_an_unknown_field_fails_at_query_time_and_counts():
    """`.Grup.d` parses, and fails as Go's Execute does when a query runs it."""
    registry = CollectorRegistry()
    plugin = template('template ANY ANY {\n answer "{{ .Name }} A 10.0.0.{{ .Grup.d }}"\n}', registry=registry)
    with pytest.raises(TemplateError, match="can't evaluate field Grup"):
        ask(plugin, make_request("a.example."))


# --- the template language and the record parser ------------------------------------------------


class Data:
    template_fields = frozenset({"Name", "Group", "Match"})

    def __init__(self):
        self.Name = "a.example."
        self.Group = {"b": "11"}
        self.Match = ["a.example.", "a"]


@pytest.mark.parametrize("text, expected", [
    ("{{ .Name }}", "a.example."),
    ("{{ .Group.b }}-{{ .Group.missing }}", "11-"),
    ("{{ index .Match 1 }}", "a"),
    ("{{ index .Group \"b\" }}", "11"),
    ("{{ parseInt .Group.b 10 8 }}", "11"),
    ("{{ parseInt \"0x1f\" 0 8 }}", "31"),
    ("{{ len .Match }}", "2"),
    ("{{ printf \"%s-%03d\" .Name 7 }}", "a.example.-007"),
    ("{{ .Name | printf \"<%s>\" }}", "<a.example.>"),
    ("{{ (index .Match 1) }}", "a"),
    ("x {{- .Group.b -}} y", "x11y"),
    ("{{/* nothing */}}", ""),
    ("{{ print 1 2 }}{{ print \"a\" \"b\" }}", "1 2ab"),
    ("{{ .Match }} {{ .Group }}", "[a.example. a] map[b:11]"),
])
def test_the_supported_template_subset(text, expected):
    """Fields, maps, index, parseInt, len, printf, pipes, parentheses, trim markers and comments, as Go prints them."""
    assert gotemplate.parse(text, gotemplate.FUNCTIONS).execute(Data(), gotemplate.FUNCTIONS) == expected


@pytest.mark.parametrize("text, error", [
    ("{{ parseInt \"256\" 10 8 }}", "value out of range"),
    ("{{ index .Match 5 }}", "index out of range: 5"),
    ("{{ .Name.Upper }}", "can't evaluate field Upper"),
])
def test_template_execution_errors(text, error):
    """Go's execution errors: parse failures, out-of-range indexes, fields a value does not have."""
    with pytest.raises(gotemplate.ExecError, match=error):
        gotemplate.parse(text, gotemplate.FUNCTIONS).execute(Data(), gotemplate.FUNCTIONS)


@pytest.mark.parametrize("text, expected", [
    ("a.example. 60 IN A 10.0.0.1", "a.example. 60 IN A 10.0.0.1"),
    ("a.example 60 A 10.0.0.1", "a.example. 60 IN A 10.0.0.1"),
    ("a.example. IN 60 A 10.0.0.1", "a.example. 60 IN A 10.0.0.1"),
    ("a.example. IN A 10.0.0.1", "a.example. 3600 IN A 10.0.0.1"),
    ("example.net 60 IN CNAME target.example.com", "example.net. 60 IN CNAME target.example.com."),
    ("invalid. 60 CH SOA a.invalid. b.invalid. (1 60 60 60 60)", "invalid. 60 CH SOA a.invalid. b.invalid. 1 60 60 60 60"),
])
def test_records_are_read_as_miekg_reads_them(text, expected):
    """dns.NewRR: origin ".", default TTL 3600 and class IN, TTL and class in either order."""
    assert parse_rr(text).to_text() == expected


@pytest.mark.parametrize("text", ["test.example.", "a.example. 60 IN A 300.1.1.1", "a.example. 60 IN BOGUS x", ""])
def test_text_that_is_no_record_is_refused(text):
    """NonRRTemplate: a name alone, bad data or an unknown type is no record."""
    with pytest.raises(RRError):
        parse_rr(text)
