"""The `rewrite` directive, against CoreDNS's plugin/rewrite tests translated to our rows.

The next plugin is CoreDNS's msgPrinter: it answers the question it is asked
(`NAME 5 IN A 10.0.0.1` unless a row gives records) and echoes the query's
EDNS options, so a row can read both what the next plugin was asked and what
the client gets back.
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
from twisted.internet import defer
from twisted.internet.task import Clock

from discovery.config import load_text
from discovery.corefile import CorefileError
from discovery.dns.request import Request
from discovery.dns.rewrite import RewriteError, RewritePlugin, parse_rule


def rewrite(*lines: str) -> RewritePlugin:
    """A rewrite plugin from Corefile lines, through the real parser."""
    body = "".join(f"    {line}\n" for line in lines)
    config = load_text(f".:53 {{\n{body}}}\n")
    return RewritePlugin(config.servers[0].plugin("rewrite"), Clock())


def make_request(name: str, rdtype="A", rdclass="IN", *, options=None, client=("10.240.0.1", 40212), server="dns://:53",
                 proto="udp") -> Request:
    use_edns = 0 if options is not None else False
    query = dns.message.make_query(name, rdtype, rdclass, use_edns=use_edns, options=options or None)
    question = query.question[0]
    return Request(query=query, qname=question.name, qtype=question.rdtype, qclass=question.rdclass, zone=".",
                   server=server, proto=proto, client=client, edns=options is not None,
                   max_size=1232 if options is not None else 512)


class Printer:
    """CoreDNS's msgPrinter: answers what it is asked, echoing the query's options."""

    def __init__(self, records=(), rcode=dns.rcode.NOERROR, additional=(), question=True):
        self.records = records
        self.additional = additional
        self.rcode = rcode
        self.question = question
        self.seen: Request | None = None

    def __call__(self, request: Request) -> dns.message.Message:
        self.seen = request
        response = request.reply()
        if request.query.edns >= 0:
            response.use_edns(0, request.query.ednsflags, 1232, options=list(request.query.options))
        response.set_rcode(self.rcode)
        texts = self.records or (f"{request.qname} 5 IN A 10.0.0.1",)
        for text in texts:
            response.answer.append(dns.rrset.from_text(*_split(text)))
        for text in self.additional:
            response.additional.append(dns.rrset.from_text(*_split(text)))
        if not self.question:
            response.question = []
        request.plugin = "printer"
        return response


def _split(text: str):
    name, ttl, rdclass, rdtype, *data = text.split(None, 4)
    return name, int(ttl), rdclass, rdtype, *data


def ask(plugin: RewritePlugin, request: Request, printer: Printer | None = None):
    printer = printer or Printer()
    result = plugin.serve(request, printer)
    if isinstance(result, defer.Deferred):
        # The fake upstream answers at once: the Deferred has fired.
        fired: list = []
        result.addCallback(fired.append)
        (result,) = fired
    return result, printer.seen


# --- parsing: TestNewRule, TestNewNameRule, TestNewTTLRule, TestNewRCodeRule -----------

VALID = [
    "name a.com b.com",
    "name exact a.com b.com",
    "name prefix a.com b.com",
    "name suffix a.com b.com",
    "name substring a.com b.com",
    r"name regex ([a])\.com new-{1}.com",
    r"name regex (dns)\.(core)\.(rocks) {2}.{1}.{3} answer name (core)\.(dns)\.(rocks) {2}.{1}.{3}",
    r"name substring fcore.dns.rocks dns.fcore.rocks answer name (fcore)\.(dns)\.(rocks) {2}.{1}.{3}",
    "type any a",
    "class ch in",
    "edns0 local set 65518 abcdefg",
    "edns0 local set 0xffee abcdefg",
    "edns0 local set 0xffee abcdefg revert",
    "edns0 local append 0xffee abcdefg",
    "edns0 local replace 0xffee abcdefg revert",
    "edns0 local unset 0xffee",
    "edns0 nsid set",
    "edns0 nsid append revert",
    "edns0 nsid replace",
    "edns0 nsid unset",
    "edns0 local set 0xffee {qname}",
    "edns0 local append 0xffee {client_ip}",
    "edns0 local replace 0xffee {server_port} revert",
    "edns0 subnet set 24 56",
    "edns0 subnet append 24 56 revert",
    "edns0 subnet unset",
    "stop name a.com b.com",
    "continue name a.com b.com",
    "continue edns0 subnet replace 24 56",
    "name suffix staging.mydomain.com coredns.rock answer auto",
    "name regex staging.mydomain.com coredns.rock answer auto",
    r"name regex staging.mydomain.com coredns.rock answer name (.*).coredns.rock {1}.staging.mydomain.com "
    r"name (.*).coredns.rock {1}.staging.mydomain.com",
    r"name regex staging.mydomain.com coredns.rock answer name (.*).coredns.rock {1}.staging.mydomain.com "
    r"answer value (.*).coredns.rock {1}.staging.mydomain.com",
    r"name suffix staging.mydomain.com. coredns.rock. answer value (.*).coredns.rock {1}.staging.mydomain.com "
    r"name (.*).coredns.rock {1}.staging.mydomain.com",
    "name regex (.*).coredns.rocks 10",
    "ttl srv1.coredns.rocks 1",
    "ttl regex (srv10)\\.(coredns)\\.(rocks) 10",
    "ttl range.example.com. 30-300",
    "ttl ceil.example.com. -11",
    "ttl floor.example.com. 5-",
    "rcode numeric.rcode.coredns.rocks 2 0",
    "rcode exact match.string.rcode.coredns.rocks SERVFAIL NOERROR",
    r"continue rcode regex (regex)\.rcode\.(coredns)\.(rocks) FORMERR NOERROR",
    "cname exact a.example. b.example.",
    r"cname regex (.*).cdn.example.net. {1}.other.cdn.com.",
]

INVALID = [
    "foo",
    "name",
    "name a.com",
    "name a.com b.com c.com",
    r"name regex ([a]\.com new-{1}.com",
    r"name regex (adns)\.(core)\.(rocks) {2}.{1}.{3} answer name (core)\.(adns)\.(rocks) {2}.{1}.{3} too.long way.too.long",
    r"name regex (bdns)\.(core)\.(rocks) {2}.{1}.{3} NoAnswer name (core)\.(bdns)\.(rocks) {2}.{1}.{3}",
    r"name regex (cdns)\.(core)\.(rocks) {2}.{1}.{3} answer ttl (core)\.(cdns)\.(rocks) {2}.{1}.{3}",
    "name substring a.com b.com c.com",
    "type",
    "type a",
    "type any a a",
    "type XY WV",
    "type ANY WV",
    "class",
    "class IN",
    "class ch in in",
    "class XY WV",
    "class IN WV",
    "edns0",
    "edns0 unknown-rule-type set",
    "edns0 unknown-rule-type unset",
    "edns0 local",
    "edns0 local set",
    "edns0 local set 0xffee",
    "edns0 local set invalid-uint abcdefg",
    "edns0 local unset 0xffee abcdefg",
    "edns0 local unset 0xffee revert",
    "edns0 local foo 0xffee abcdefg",
    "edns0 local set 0xffee 0xabcdefg",
    "edns0 nsid set junk",
    "edns0 nsid unset revert",
    "edns0 nsid foo",
    "edns0 local set invalid-uint {qname}",
    "edns0 local set 0xffee {dummy}",
    "edns0 subnet set -1 56",
    "edns0 subnet set 24 -56",
    "edns0 subnet set 33 56",
    "edns0 subnet set 24 129",
    "edns0 subnet append 24 56 72",
    "edns0 subnet unset 24 56",
    "edns0 subnet unset revert",
    "unknown-action name a.com b.com",
    "answer name a b",
    r"name regex (.*).coredns.rocks {1}.{2}.coredns.rocks",
    "name suffix staging.mydomain.com coredns.rock answer",
    "name suffix staging.mydomain.com coredns.rock answer name",
    "name suffix staging.mydomain.com coredns.rock answer other",
    "name regex staging.mydomain.com coredns.rock answer name",
    r"name regex staging.mydomain.com coredns.rock answer name (.*).coredns.rock {1}.{2}.staging.mydomain.com",
    r"name regex staging.mydomain.com coredns.rock answer name (.*).coredns.rock {1}.staging.mydomain.com name (.*).coredns.rock",
    r"name regex staging.mydomain.com coredns.rock answer auto name (.*).coredns.rock {1}.staging.mydomain.com",
    "ttl srv1.coredns.rocks",
    "ttl srv1.coredns.rocks abc",
    "ttl srv1.coredns.rocks 30-10",
    "ttl srv1.coredns.rocks -",
    "ttl exact a b c d",
    "ttl blurb srv1.coredns.rocks 1",
    "rcode too.few.rcode.coredns.rocks 2",
    "rcode exact too.many.rcode.coredns.rocks 2 1 0",
    "rcode invalid.rcode.coredns.rocks random nothing",
    "rcode a.b 24 0",
    "cname a.example.",
    "cname blurb a. b.",
]


@pytest.mark.parametrize("line", VALID)
def test_coredns_accepts_these_rules(line):
    """Each rule CoreDNS's setup tables accept parses."""
    parse_rule(line.split())


@pytest.mark.parametrize("line", INVALID)
def test_coredns_refuses_these_rules(line):
    """Each rule CoreDNS's setup tables refuse is refused."""
    with pytest.raises(RewriteError):
        parse_rule(line.split())


def test_a_regex_longer_than_coredns_allows_is_refused():
    """Regex patterns must not exceed 10000 characters (TestNewNameRuleLargeRegex)."""
    with pytest.raises(RewriteError, match="too long"):
        parse_rule(["ttl", "regex", "a" * 10001, "300"])


def test_a_bad_rule_names_the_file_and_line():
    """A rule that does not parse stops the Corefile at its line."""
    with pytest.raises(CorefileError) as error:
        load_text(".:53 {\n    whoami_is_not_here_either\n}\n".replace("whoami_is_not_here_either", "rewrite name"), "Corefile")
    assert error.value.line == 2 and "rewrite" in str(error.value)


def test_a_bad_rule_in_a_block_names_its_directive_line():
    """The block form's rule errors name the file and the rewrite line."""
    with pytest.raises(CorefileError) as error:
        load_text(".:53 {\n    log\n    rewrite stop {\n        name regex ([a b\n    }\n}\n", "Corefile")
    assert (error.value.file, error.value.line) == ("Corefile", 3)


def test_a_one_line_rule_with_a_block_is_refused():
    """A rule complete on the rewrite line takes no block."""
    with pytest.raises(CorefileError, match="no block"):
        load_text(".:53 {\n    rewrite name a. b. {\n        answer auto\n    }\n}\n")


def test_the_block_form_is_one_rule_of_all_its_lines():
    """`rewrite stop { name regex ...; answer name ... }` is one name rule with its answer rule (CoreDNS's README)."""
    plugin = rewrite(
        "rewrite stop {",
        r"    name regex (.*)-(us-west-1)\.coredns\.rocks {1}.service.{2}.consul",
        r"    answer name (.*)\.service\.(us-west-1)\.consul {1}-{2}.coredns.rocks",
        "}",
    )
    response, seen = ask(plugin, make_request("ftp-us-west-1.coredns.rocks."))
    assert seen.qname == dns.name.from_text("ftp.service.us-west-1.consul.")
    assert response.answer[0].name == dns.name.from_text("ftp-us-west-1.coredns.rocks.")
    assert response.question[0].name == dns.name.from_text("ftp-us-west-1.coredns.rocks.")


# --- requests: TestRewrite (NoRevertPolicy: what the next plugin sees) ------------------

TEST_REWRITE_RULES = (
    "rewrite stop name from.nl. to.nl.",
    r"rewrite stop name regex (core)\.(dns)\.(rocks)\.(nl) {2}.{1}.{3}.{4} answer name (dns)\.(core)\.(rocks)\.(nl) {2}.{1}.{3}.{4}",
    "rewrite stop name exact from.exact.nl. to.nl.",
    "rewrite stop name prefix prefix to",
    "rewrite stop name suffix .suffix. .nl.",
    "rewrite stop name substring from.substring to",
    r"rewrite stop name regex (f.*m)\.regex\.(nl) to.{2}",
    r"rewrite continue name regex consul\.(rocks) core.dns.{1}",
    "rewrite stop name core.dns.rocks to.nl.",
    "rewrite continue class HS CH",
    "rewrite stop class CH IN",
    "rewrite stop type ANY HINFO",
)

#: (from, type, class) -> (to, type, class), TestRewrite's rows.
TEST_REWRITE_ROWS = [
    (("from.nl.", "A", "IN"), ("to.nl.", "A", "IN")),
    (("a.nl.", "A", "IN"), ("a.nl.", "A", "IN")),
    (("a.nl.", "A", "CH"), ("a.nl.", "A", "IN")),
    (("a.nl.", "ANY", "IN"), ("a.nl.", "HINFO", "IN")),
    # The name is rewritten, the type is not (the name rule stops).
    (("from.nl.", "ANY", "IN"), ("to.nl.", "ANY", "IN")),
    (("from.exact.nl.", "A", "IN"), ("to.nl.", "A", "IN")),
    (("prefix.nl.", "A", "IN"), ("to.nl.", "A", "IN")),
    (("to.suffix.", "A", "IN"), ("to.nl.", "A", "IN")),
    (("from.substring.nl.", "A", "IN"), ("to.nl.", "A", "IN")),
    (("from.regex.nl.", "A", "IN"), ("to.nl.", "A", "IN")),
    (("consul.rocks.", "A", "IN"), ("to.nl.", "A", "IN")),
    # The class rule comes before the type rule.
    (("a.nl.", "ANY", "CH"), ("a.nl.", "ANY", "IN")),
    # HS to CH, then CH to IN: continue, then stop.
    (("a.nl.", "ANY", "HS"), ("a.nl.", "ANY", "IN")),
    (("core.dns.rocks.nl.", "A", "IN"), ("dns.core.rocks.nl.", "A", "IN")),
]


@pytest.mark.parametrize("asked, rewritten", TEST_REWRITE_ROWS)
def test_the_next_plugin_sees_the_rewritten_question(asked, rewritten):
    """TestRewrite: rules in line order, continue and stop, name, class and type."""
    plugin = rewrite(*TEST_REWRITE_RULES)
    _, seen = ask(plugin, make_request(*asked))
    name, rdtype, rdclass = rewritten
    assert (seen.qname, seen.qtype, seen.qclass) == (
        dns.name.from_text(name), dns.rdatatype.from_text(rdtype), dns.rdataclass.from_text(rdclass),
    )


DEFAULT_REVERT_ROWS = [
    ("prefix.nl.", "to.nl."),
    ("to.suffix.", "to.nl."),
    ("from.substring.nl.", "to.nl."),
    ("from.regex.nl.", "to.nl."),
]


@pytest.mark.parametrize("asked, answered", DEFAULT_REVERT_ROWS)
def test_the_client_gets_its_question_back_and_unmapped_answer_names(asked, answered):
    """TestRewriteDefaultRevertPolicy: the question is restored; without `answer`, answer names stay rewritten."""
    plugin = rewrite(
        "rewrite stop name prefix prefix to",
        "rewrite stop name suffix .suffix. .nl.",
        "rewrite stop name substring from.substring to",
        r"rewrite stop name regex (f.*m)\.regex\.(nl) to.{2}",
    )
    response, _ = ask(plugin, make_request(asked))
    assert response.question[0].name.to_text() == asked
    assert response.answer[0].name.to_text() == answered


def test_an_illegal_rewritten_name_is_an_error():
    """TestRewriteIllegalName: a name that is no domain name fails the query (SERVFAIL from the server)."""
    plugin = rewrite(r"rewrite name regex (.*) {1}" + "." + "x" * 70)
    with pytest.raises(ValueError, match="invalid name after rewrite"):
        ask(plugin, make_request("foo.example.org."))


# --- names: name_test.go ------------------------------------------------------------------

PREFIX_SUFFIX_ROWS = [
    ("name prefix foo bar", "foo.example.com.", "bar.example.com."),
    ("name prefix foo. bar.", "foo.example.com.", "bar.example.com."),
    ("name suffix com org", "foo.example.com.", "foo.example.org."),
    ("name suffix .com .org", "foo.example.com.", "foo.example.org."),
    ("name suffix .ingress.coredns.rocks nginx.coredns.rocks", "coredns.ingress.coredns.rocks.", "corednsnginx.coredns.rocks."),
]


@pytest.mark.parametrize("rule, asked, rewritten", PREFIX_SUFFIX_ROWS)
def test_prefix_and_suffix_are_literal_with_a_trailing_dot(rule, asked, rewritten):
    """TestRewriteNamePrefixSuffix(NoAutoAnswer): FROM and TO gain a dot; the answer keeps the rewritten name."""
    response, seen = ask(rewrite(f"rewrite stop {rule}"), make_request(asked))
    assert seen.qname.to_text() == rewritten
    assert response.answer[0].name.to_text() == rewritten


@pytest.mark.parametrize("rule, asked", [
    ("name prefix foo bar", "coredns.foo."),
    ("name prefix foo bar.", "coredns.foo."),
    ("name suffix com org", "com.coredns."),
    ("name suffix com org.", "com.coredns."),
    ("name substring service svc", "com.coredns."),
])
def test_a_rule_that_does_not_match_leaves_the_query_alone(rule, asked):
    """TestRewriteNameNoRewrite: the next plugin gets the very same request."""
    request = make_request(asked)
    _, seen = ask(rewrite(f"rewrite stop {rule}"), request)
    assert seen is request


@pytest.mark.parametrize("rule, asked, rewritten, answered", [
    ("name prefix foo bar answer auto", "foo.example.com.", "bar.example.com.", "foo.example.com."),
    ("name prefix foo. bar. answer auto", "foo.example.com.", "bar.example.com.", "foo.example.com."),
    ("name suffix com org answer auto", "foo.example.com.", "foo.example.org.", "foo.example.com."),
    ("name suffix .com .org answer auto", "foo.example.com.", "foo.example.org.", "foo.example.com."),
    ("name suffix .ingress.coredns.rocks nginx.coredns.rocks answer auto", "coredns.ingress.coredns.rocks.",
     "corednsnginx.coredns.rocks.", "coredns.ingress.coredns.rocks."),
    ("name exact coredns.rocks service.consul answer auto", "coredns.rocks.", "service.consul.", "coredns.rocks."),
    ("name exact coredns.rocks. service.consul.", "coredns.rocks.", "service.consul.", "coredns.rocks."),
    ("name exact coredns.org. service.consul.", "coredns.rocks.", "coredns.rocks.", "coredns.rocks."),
    ("name regex (.*).coredns.rocks {1}.coredns.maps answer auto", "foo.coredns.rocks.", "foo.coredns.maps.",
     "foo.coredns.rocks."),
    ("name regex (.*).coredns.rocks {1}.coredns.maps answer name (.*).coredns.maps {1}.coredns.works",
     "foo.coredns.rocks.", "foo.coredns.maps.", "foo.coredns.works."),
    ("name regex (.*).coredns.rocks {1}.coredns.maps", "foo.coredns.rocks.", "foo.coredns.maps.", "foo.coredns.maps."),
])
def test_answer_rules_map_the_answer_names(rule, asked, rewritten, answered):
    """TestRewriteNamePrefixSuffixAutoAnswer, ExactAnswer, RegexAnswer: what is asked, and the owner name sent back."""
    response, seen = ask(rewrite(f"rewrite stop {rule}"), make_request(asked))
    assert seen.qname.to_text() == rewritten
    assert response.answer[0].name.to_text() == answered


@pytest.mark.parametrize("owner, expected", [
    ("example.com.", "example.org."),
    ("sub.example.com.", "sub.example.org."),
    ("a.b.example.com.", "a.b.example.org."),
    ("notexample.com.", "notexample.com."),
    ("example.net.", "example.net."),
    ("com.", "com."),
])
def test_auto_maps_the_name_and_names_below_it_only(owner, expected):
    """TestRemapStringRewriter: the rewritten name and its subdomains, on a label boundary, map back."""
    records = (f"{owner} 5 IN A 10.0.0.1",)
    response, _ = ask(rewrite("rewrite name exact example.org. example.com."), make_request("example.org."),
                      Printer(records))
    assert response.answer[0].name.to_text() == expected


def test_answer_value_rewrites_record_targets():
    """`answer value` rewrites the names records point to (README: PTR value rewrite)."""
    plugin = rewrite(r"rewrite stop name suffix .arpa .arpa answer auto answer value (.*)\.service\.consul\. {1}.coredns.rocks.")
    printer = Printer(("30.30.30.10.in-addr.arpa. 60 IN PTR ftp-us-west-1.service.consul.",))
    response, _ = ask(plugin, make_request("30.30.30.10.in-addr.arpa.", "PTR"), printer)
    assert [rdata.to_text() for rdata in response.answer[0]] == ["ftp-us-west-1.coredns.rocks."]


VALUE_RULE_SETS = {
    "stop": (r"rewrite stop name regex (.*)\.domain\.uk {1}.cluster.local answer name (.*)\.cluster\.local {1}.domain.uk "
             r"answer value (.*)\.cluster\.local {1}.domain.uk",),
    "continue": (r"rewrite continue name regex (.*)\.domain\.uk {1}.cluster.local answer name (.*)\.cluster\.local {1}.domain.uk "
                 r"answer value (.*)\.cluster\.local {1}.domain.uk",),
    "suffix": (r"rewrite stop name suffix .domain.uk .cluster.local answer auto answer value (.*)\.cluster\.local {1}.domain.uk",),
    "suffix_multiple": ("rewrite continue name suffix .domain.uk .domain.us answer auto",
                        "rewrite stop name suffix .domain.us .cluster.local answer auto"),
}

#: valueTests of reverter_test.go (the rows with the default revert policy):
#: (type, answer record, additional record, value expected, additional owner expected).
VALUE_ROWS = [
    ("SRV", "my.cluster.local. 5 IN SRV 0 100 100 srv1.my.cluster.local.", "srv1.my.cluster.local. 5 IN A 10.0.0.1",
     "srv1.my.domain.uk.", "srv1.my.domain.uk."),
    ("ANY", "my.cluster.local. 3600 IN CNAME cname.cluster.local.", "cname.cluster.local. 5 IN A 10.0.0.1",
     "cname.domain.uk.", "cname.domain.uk."),
    ("ANY", "my.cluster.local. 3600 IN DNAME dname.cluster.local.", "dname.cluster.local. 5 IN A 10.0.0.1",
     "dname.domain.uk.", "dname.domain.uk."),
    ("MX", "my.cluster.local. 3600 IN MX 1 mx1.cluster.local.", "mx1.cluster.local. 5 IN A 10.0.0.1",
     "mx1.domain.uk.", "mx1.domain.uk."),
    ("ANY", "my.cluster.local. 3600 IN NS ns1.cluster.local.", "ns1.cluster.local. 5 IN A 10.0.0.1",
     "ns1.domain.uk.", "ns1.domain.uk."),
    ("SOA", "my.cluster.local. 1800 IN SOA ns1.cluster.local. admin.cluster.local. 1502165581 14400 3600 604800 14400",
     "ns1.cluster.local. 5 IN A 10.0.0.1", "ns1.domain.uk.", "ns1.domain.uk."),
    ("NAPTR", 'my.cluster.local. 100 IN NAPTR 100 10 "S" "SIP+D2U" "!^.*$!sip:customer-service@example.com!" _sip._udp.cluster.local.',
     "ns1.cluster.local. 5 IN A 10.0.0.1", "_sip._udp.domain.uk.", "ns1.domain.uk."),
]

_VALUE_FIELDS = {"SRV": "target", "CNAME": "target", "DNAME": "target", "MX": "exchange", "NS": "target", "SOA": "mname",
                 "NAPTR": "replacement"}


@pytest.mark.parametrize("rules", list(VALUE_RULE_SETS), ids=list(VALUE_RULE_SETS))
@pytest.mark.parametrize("qtype, record, extra, value, extra_owner", VALUE_ROWS)
def test_answer_value_rules_rewrite_targets_and_additional_owners(rules, qtype, record, extra, value, extra_owner):
    """TestValueResponseReverter: the question comes back, record targets and additional owners are mapped back."""
    response, _ = ask(rewrite(*VALUE_RULE_SETS[rules]), make_request("my.domain.uk.", qtype),
                      Printer((record,), additional=(extra,)))
    assert response.question[0].name.to_text() == "my.domain.uk."
    assert response.question[0].rdtype == dns.rdatatype.from_text(qtype)
    rdata = response.answer[0][0]
    assert getattr(rdata, _VALUE_FIELDS[dns.rdatatype.to_text(rdata.rdtype)]).to_text() == value
    assert response.additional[0].name.to_text() == extra_owner


@pytest.mark.parametrize("question", ["A", "SRV"])
@pytest.mark.parametrize("rules", ["stop", "continue"])
def test_answer_name_rules_map_matching_owners_back(rules, question):
    """TestResponseReverter: `answer name` maps owners the pattern matches back; the question comes back in both modes."""
    rule = (f"rewrite {rules} name regex (core)\\.(dns)\\.(rocks) {{2}}.{{1}}.{{3}} "
            "answer name (dns)\\.(core)\\.(rocks) {2}.{1}.{3}")
    record = ("dns.core.rocks. 5 IN A 10.0.0.1" if question == "A"
              else "dns.core.rocks. 5 IN SRV 0 100 100 srv1.dns.core.rocks.")
    response, seen = ask(rewrite(rule), make_request("core.dns.rocks.", question), Printer((record,)))
    assert seen.qname.to_text() == "dns.core.rocks."
    assert response.question[0].name.to_text() == "core.dns.rocks."
    assert response.answer[0].name.to_text() == "core.dns.rocks."


@pytest.mark.parametrize("rule, options", [
    ("edns0 local set 0xffee 0xabcdef revert", None),
    ("edns0 local replace 0xffee 0x222222 revert", [dns.edns.GenericOption(0xFFEE, b"\x11\x11\x11")]),
])
def test_revert_rules_on_a_response_without_opt(rule, options):
    """TestEDNS0ResponseReverterNoOPT: a response without an OPT record is left without one."""

    def no_opt(request: Request) -> dns.message.Message:
        response = request.reply()
        response.use_edns(False)
        response.answer.append(dns.rrset.from_text("example.org.", 60, "IN", "A", "127.0.0.1"))
        return response

    response = rewrite(f"rewrite {rule}").serve(make_request("example.org.", options=options), no_opt)
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer) == 1 and response.edns < 0


def test_a_response_without_a_question_gets_the_clients():
    """TestResponseReverterRestoresMissingQuestion: the client's question is put in, and the answer mapped back."""
    printer = Printer(("service.example.net. 60 IN A 127.0.0.1",), question=False)
    response, _ = ask(rewrite("rewrite stop name suffix .example.org .example.net answer auto"),
                      make_request("service.example.org."), printer)
    assert [(q.name.to_text(), q.rdtype) for q in response.question] == [("service.example.org.", dns.rdatatype.A)]
    assert response.answer[0].name.to_text() == "service.example.org."


def test_several_response_rules_apply_last_matching_rule_first():
    """The request rewrite follows the line order, the response rewrite the reverse order (README)."""
    plugin = rewrite(
        "rewrite continue name suffix .a.example. .b.example. answer auto",
        "rewrite stop name suffix .b.example. .c.example. answer auto",
    )
    response, seen = ask(plugin, make_request("x.a.example."))
    assert seen.qname.to_text() == "x.c.example."
    assert response.answer[0].name.to_text() == "x.a.example."


def test_continue_rules_without_response_rules_leave_the_rewritten_question():
    """CoreDNS restores the question only when a stop rule applied or a response rule was collected."""
    response, _ = ask(rewrite("rewrite continue type A AAAA"), make_request("a.example.", "A"))
    assert response.question[0].rdtype == dns.rdatatype.AAAA


# --- ttl and rcode: ttl_test.go, rcode_test.go ------------------------------------------

TTL_RULES = (
    "rewrite stop ttl srv1.coredns.rocks 1",
    "rewrite stop ttl exact srv15.coredns.rocks 15",
    "rewrite stop ttl prefix srv30 30",
    "rewrite stop ttl suffix 45.coredns.rocks 45",
    "rewrite stop ttl substring rv50 50",
    r"rewrite stop ttl regex (srv10)\.(coredns)\.(rocks) 10",
    r"rewrite stop ttl regex (srv20)\.(coredns)\.(rocks) 20",
    "rewrite stop ttl range.example.com. 30-300",
    "rewrite stop ttl ceil.example.com. -11",
    "rewrite stop ttl floor.example.com. 5-",
)

TTL_ROWS = [
    ("srv1.coredns.rocks.", "A", ["srv1.coredns.rocks. 5 IN A 10.0.0.1"], 1),
    ("srv15.coredns.rocks.", "A", ["srv15.coredns.rocks. 5 IN A 10.0.0.15"], 15),
    ("srv30.coredns.rocks.", "A", ["srv30.coredns.rocks. 5 IN A 10.0.0.30"], 30),
    ("srv45.coredns.rocks.", "A", ["srv45.coredns.rocks. 5 IN A 10.0.0.45"], 45),
    ("srv50.coredns.rocks.", "A", ["srv50.coredns.rocks. 5 IN A 10.0.0.50"], 50),
    ("srv10.coredns.rocks.", "A", ["srv10.coredns.rocks. 5 IN A 10.0.0.10"], 10),
    ("xmpp.coredns.rocks.", "SRV", ["xmpp.coredns.rocks. 5 IN SRV 0 100 100 srvxmpp.coredns.rocks."], 5),
    ("srv15.coredns.rocks.", "HINFO", ['srv15.coredns.rocks. 5 IN HINFO INTEL-64 "RHEL 7.5"'], 15),
    ("srv20.coredns.rocks.", "A", ["srv20.coredns.rocks. 5 IN A 10.0.0.22", "srv20.coredns.rocks. 5 IN A 10.0.0.23"], 20),
    ("range.example.com.", "A", ["range.example.com. 5 IN A 10.0.0.1"], 30),
    ("range.example.com.", "A", ["range.example.com. 55 IN A 10.0.0.1"], 55),
    ("range.example.com.", "A", ["range.example.com. 500 IN A 10.0.0.1"], 300),
    ("ceil.example.com.", "A", ["ceil.example.com. 5 IN A 10.0.0.1"], 5),
    ("ceil.example.com.", "A", ["ceil.example.com. 15 IN A 10.0.0.1"], 11),
    ("floor.example.com.", "A", ["floor.example.com. 0 IN A 10.0.0.1"], 5),
    ("floor.example.com.", "A", ["floor.example.com. 30 IN A 10.0.0.1"], 30),
]


@pytest.mark.parametrize("name, rdtype, records, ttl", TTL_ROWS)
def test_ttl_rules_set_or_clamp_the_answer_ttls(name, rdtype, records, ttl):
    """TestTtlRewrite: a value sets the TTL, a range clamps it, other names keep theirs."""
    response, _ = ask(rewrite(*TTL_RULES), make_request(name, rdtype), Printer(tuple(records)))
    assert {rrset.ttl for rrset in response.answer} == {ttl}


@pytest.mark.parametrize("mode", ["stop", "continue"])
@pytest.mark.parametrize("old", ["FORMERR", "SERVFAIL", "REFUSED", "NOTIMP"])
def test_rcode_rules_swap_the_response_code(mode, old):
    """TestRCodeRewriteAfterNext: the response's rcode is swapped, with or without records."""
    plugin = rewrite(f"rewrite {mode} rcode exact srv1.coredns.rocks {old} NOERROR")
    response, _ = ask(plugin, make_request("srv1.coredns.rocks."), Printer(rcode=dns.rcode.from_text(old)))
    assert response.rcode() == dns.rcode.NOERROR


def test_an_rcode_rule_leaves_other_codes_alone():
    """Only the FROM code is swapped."""
    plugin = rewrite("rewrite rcode srv1.coredns.rocks SERVFAIL FORMERR")
    response, _ = ask(plugin, make_request("srv1.coredns.rocks."), Printer(rcode=dns.rcode.NXDOMAIN))
    assert response.rcode() == dns.rcode.NXDOMAIN


# --- edns0: rewrite_test.go TestRewriteEDNS0Local, TestEdns0MultiRule ---------------------

LOCAL = 0xFFEE


def local(data: bytes) -> dns.edns.GenericOption:
    return dns.edns.GenericOption(LOCAL, data)


def ecs(address: str, bits: int) -> dns.edns.ECSOption:
    return dns.edns.ECSOption(address, bits, 0)


@pytest.mark.parametrize("rule, expected", [
    ("edns0 local set 0xffee 0xabcdef", [local(b"\xab\xcd\xef")]),
    ("edns0 local append 0xffee abcdefghijklmnop", [local(b"abcdefghijklmnop")]),
    ("edns0 local replace 0xffee abcdefghijklmnop", []),
    ("edns0 nsid set", [dns.edns.NSIDOption(b"")]),
    ("edns0 nsid append", [dns.edns.NSIDOption(b"")]),
    ("edns0 nsid replace", []),
])
def test_edns0_rules_on_a_query_without_options(rule, expected):
    """TestRewriteEDNS0Local: what the next plugin is asked; CoreDNS gives the query an OPT record first."""
    _, seen = ask(rewrite(f"rewrite {rule}"), make_request("example.com."))
    assert seen.query.edns == 0 and seen.query.payload == 4096
    assert list(seen.query.options) == expected


MULTI_ROWS = [
    # Local.
    (("replace 0xffee abcdef", "set 0xffee fedcba"), "local", None, [local(b"fedcba")], False),
    (("replace 0xffee abcdef", "set 0xffee fedcba"), "local", [local(b"foobar")], [local(b"abcdef")], False),
    # Local with revert: the response does not carry the option, or carries the client's.
    (("replace 0xffee abcdef revert", "set 0xffee fedcba revert"), "local", [], [], True),
    (("replace 0xffee abcdef revert", "set 0xffee fedcba revert"), "local", [local(b"foobar")], [local(b"foobar")], True),
    # Local variables.
    (("replace 0xffee {qname}", "set 0xffee {qtype}"), "local", None, [local(b"\x00\x01")], False),
    (("replace 0xffee {qname}", "set 0xffee {qtype}"), "local", [local(b"foobar")], [local(b"example.com.")], False),
    (("replace 0xffee {qname} revert", "set 0xffee {qtype} revert"), "local", [], [], True),
    (("replace 0xffee {qname} revert", "set 0xffee {qtype} revert"), "local", [local(b"foobar")], [local(b"foobar")], True),
    # Nsid.
    (("replace", "set"), "nsid", None, [dns.edns.NSIDOption(b"")], False),
    (("replace", "set"), "nsid", [local(b"foobar")], [local(b"foobar"), dns.edns.NSIDOption(b"")], False),
    (("replace", "set"), "nsid", [dns.edns.NSIDOption(b"")], [dns.edns.NSIDOption(b"")], False),
    (("replace revert", "set revert"), "nsid", [], [], True),
    (("replace revert", "set revert"), "nsid", [local(b"foobar")], [local(b"foobar")], True),
    (("replace revert", "set revert"), "nsid", [dns.edns.NSIDOption(b"")], [dns.edns.NSIDOption(b"")], True),
    # Subnet (the client is 10.240.0.1).
    (("replace 32 56", "set 0 56"), "subnet", None, [ecs("0.0.0.0", 0)], False),
    (("replace 32 56", "set 0 56"), "subnet", [ecs("0.0.0.0", 0)], [ecs("10.240.0.1", 32)], False),
    (("replace 32 56 revert", "set 0 56 revert"), "subnet", [], [], True),
    (("replace 32 56 revert", "set 0 56 revert"), "subnet", [ecs("0.0.0.0", 0)], [ecs("0.0.0.0", 0)], True),
]


@pytest.mark.parametrize("actions, kind, given, expected, reverted", MULTI_ROWS)
def test_edns0_rules_in_order(actions, kind, given, expected, reverted):
    """TestEdns0MultiRule: the first rule that applies stops; `revert` restores the client's options in the response."""
    plugin = rewrite(*(f"rewrite stop edns0 {kind} {action}" for action in actions))
    response, seen = ask(plugin, make_request("example.com.", options=given))
    options = list(response.options) if reverted else list(seen.query.options)
    assert options == expected


def test_client_dependent_edns0_data_is_not_reused_for_other_clients():
    """An option made from the client's address forbids the table of rendered answers to reuse the answer."""
    request = make_request("example.com.")
    ask(rewrite("rewrite edns0 subnet set 24 56"), request)
    assert not request.fastpath.reusable


@pytest.mark.parametrize("data", ["abcd", "{qname}", "{qtype}"])
def test_edns0_data_from_the_question_keeps_the_answer_reusable(data):
    """An option fixed, or made from the question as asked, is the same for every client asking it: reuse is safe."""
    request = make_request("Example.com.")
    ask(rewrite(f"rewrite edns0 local set 0xffee {data}"), request)
    assert request.fastpath.reusable


def test_a_client_without_edns_gets_no_opt_record_back():
    """The OPT record an edns0 rule added is the next plugins' business, not the client's."""
    response, seen = ask(rewrite("rewrite edns0 local set 0xffee abcd"), make_request("example.com."))
    assert seen.query.edns == 0 and response.edns < 0


@pytest.mark.parametrize("variable, expected", [
    ("{client_ip}", bytes([10, 240, 0, 1])),
    ("{client_port}", (40212).to_bytes(2, "big")),
    ("{protocol}", b"udp"),
    ("{server_ip}", bytes([10, 0, 0, 53])),
    ("{server_port}", (1053).to_bytes(2, "big")),
])
def test_edns0_local_variables(variable, expected):
    """The {variables} of `edns0 local` carry the client's and server's address, port and protocol."""
    request = make_request("example.com.", server="dns://10.0.0.53:1053")
    _, seen = ask(rewrite(f"rewrite edns0 local set 0xffee {variable}"), request)
    assert list(seen.query.options) == [local(expected)]


def test_server_ip_of_a_block_on_every_address_is_unknown_and_the_rule_ignored():
    """A block listening on every address cannot say which one was asked: the rule does nothing."""
    request = make_request("example.com.", server="dns://:53")
    _, seen = ask(rewrite("rewrite edns0 local set 0xffee {server_ip}"), request)
    assert seen is request


# --- cname: cname_target_test.go -----------------------------------------------------------


class Upstream:
    """The server's lookup (CoreDNS's upstream): fixed answers by name."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    def __call__(self, name: dns.name.Name, rdtype: int) -> defer.Deferred:
        self.asked.append((name.to_text(), rdtype))
        reply = dns.message.make_response(dns.message.make_query(name, rdtype))
        for text in self.answers.get(name.to_text(), []):
            reply.answer.append(dns.rrset.from_text(*_split(text)))
        return defer.succeed(reply)


CNAME_RULES = (
    "rewrite continue cname exact def.example.com. xyz.example.com.",
    "rewrite continue cname prefix chain.xyz. target.xyz.",
    "rewrite continue cname suffix uvw. xyz.",
    "rewrite continue cname substring efgh mnop",
    r"rewrite continue cname regex (.*)\.cdn\.example\.net\. {1}.other.cdn.com.",
)


@pytest.mark.parametrize("asked, records, upstream, expected", [
    ("abc.example.com.", ["abc.example.com. 5 IN CNAME def.example.com.", "def.example.com. 5 IN A 1.1.1.1"],
     {"xyz.example.com.": ["xyz.example.com. 3600 IN A 3.4.5.6"]},
     ["abc.example.com. 5 IN CNAME xyz.example.com.", "xyz.example.com. 3600 IN A 3.4.5.6"]),
    ("chain.example.", ["chain.example. 5 IN CNAME chain.xyz.abcd.", "chain.xyz.abcd. 5 IN A 1.1.1.1"],
     {"target.xyz.abcd.": ["target.xyz.abcd. 300 IN A 5.6.7.8"]},
     ["chain.example. 5 IN CNAME target.xyz.abcd.", "target.xyz.abcd. 300 IN A 5.6.7.8"]),
    ("my-app.com.", ["my-app.com. 200 IN CNAME my-app.example.", "my-app.example. 200 IN CNAME my-app.com.cdn.example.net.",
                     "my-app.com.cdn.example.net. 300 IN A 20.2.0.1"],
     {"my-app.com.other.cdn.com.": ["my-app.com.other.cdn.com. 100 IN A 30.3.1.2"]},
     ["my-app.com. 200 IN CNAME my-app.example.", "my-app.example. 200 IN CNAME my-app.com.other.cdn.com.",
      "my-app.com.other.cdn.com. 100 IN A 30.3.1.2"]),
    ("plain.example.", ["plain.example. 5 IN A 1.2.3.4"], {}, ["plain.example. 5 IN A 1.2.3.4"]),
])
def test_cname_rules_replace_the_target_and_what_follows_it(asked, records, upstream, expected):
    """TestCNameTargetRewrite and the README's example: the matching CNAME's target changes, the rest is looked up."""
    plugin = rewrite(*CNAME_RULES)
    request = make_request(asked)
    request.lookup = Upstream(upstream)
    response, _ = ask(plugin, request, Printer(tuple(records)))
    got = [f"{rrset.name} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
           for rrset in response.answer for rdata in rrset]
    assert got == expected
