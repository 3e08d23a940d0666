"""minimal: CoreDNS's TestMinimizeResponse table (plugin/minimal/minimal_test.go), and each response type."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rrset
import pytest
from twisted.internet import defer, task

from discovery.dns.minimal import MinimalPlugin, minimize
from discovery.plugin import Bare, setup_bare
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request

NOW = 1_700_000_000.0
ANSWER = ["example.com. 293 IN A 142.250.76.46"]
NS = [f"example.com. 157127 IN NS ns{i}.example.com." for i in (2, 1, 3, 4)]
EXTRA = [
    "ns2.example.com. 316273 IN A 216.239.34.10", "ns2.example.com. 157127 IN AAAA 2001:4860:4802:34::a",
    "ns3.example.com. 316274 IN A 216.239.36.10", "ns3.example.com. 157127 IN AAAA 2001:4860:4802:36::a",
    "ns1.example.com. 165555 IN A 216.239.32.10", "ns1.example.com. 165555 IN AAAA 2001:4860:4802:32::a",
    "ns4.example.com. 190188 IN A 216.239.38.10", "ns4.example.com. 157127 IN AAAA 2001:4860:4802:38::a",
]
SOA = ["example.com. 60 IN SOA ns1.example.com. dns-admin.example.com. 1 900 900 1800 60"]


def rrsets(lines):
    """Zone-file lines as RRsets, those of one name and type merged."""
    found: dict = {}
    for line in lines:
        name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
        rrset = dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)
        if (name, rdtype) in found:
            found[(name, rdtype)].union_update(rrset)
        else:
            found[(name, rdtype)] = rrset
    return list(found.values())


def message(answer=(), authority=(), additional=(), rcode=0, qtype="A"):
    response = dns.message.make_response(dns.message.make_query("example.com.", qtype))
    response.answer, response.authority, response.additional = rrsets(answer), rrsets(authority), rrsets(additional)
    response.set_rcode(rcode)
    return response


def sections(response):
    return [len(response.answer), len(response.authority), len(response.additional)]


@pytest.mark.parametrize("case, before, after", [
    ("minimization possible NoError case", (ANSWER, (), EXTRA, 0), [1, 0, 0]),
    ("delegate response case", ((), NS, EXTRA, 0), [0, 1, 8]),
    ("negative response case", (ANSWER, NS, EXTRA, 2), [1, 1, 8]),
])
def test_minimize_response_table(case, before, after):
    """CoreDNS's TestMinimizeResponse rows: NoError stripped; a delegation and an error kept whole."""
    answer, authority, additional, rcode = before
    response = minimize(message(answer, authority, additional, rcode), NOW)
    # Counted in RRsets: CoreDNS's four NS records are one RRset here.
    assert sections(response) == after


@pytest.mark.parametrize("case, response, stripped", [
    ("an answer with an SOA (a CNAME chain's NODATA) is NoError", message(ANSWER, SOA, EXTRA), True),
    ("NODATA: an SOA, no answer", message((), SOA, EXTRA), False),
    ("NXDOMAIN", message((), SOA, EXTRA, rcode=3), False),
    ("NOERROR with nothing but additional records", message((), (), EXTRA), True),
    ("a zone transfer", message(ANSWER, SOA, EXTRA, qtype="AXFR"), False),
])
def test_each_response_type(case, response, stripped):
    """CoreDNS's response.Typify decides: only type NoError is minimized."""
    before = sections(response)
    after = sections(minimize(response, NOW))
    assert (after == [before[0], 0, 0]) is stripped and (after == before) is not stripped


def test_an_expired_signature_under_do_is_not_minimized():
    """A DO answer with an expired RRSIG is OtherError, not NoError: passed whole."""
    response = message(ANSWER, SOA, EXTRA)
    response.use_edns(0, dns.flags.DO)
    response.answer.append(dns.rrset.from_text(
        "example.com.", 293, "IN", "RRSIG", "A 8 2 293 20200101000000 20191201000000 1 example.com. AAAA"))
    assert sections(minimize(response, NOW)) == [2, 1, 8]


def test_the_answers_own_edns_options_go_with_the_additional_section():
    """CoreDNS drops the whole Extra, an upstream's OPT options included; the server's OPT stays."""
    response = message(ANSWER, (), EXTRA)
    response.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(3)])
    minimized = minimize(response, NOW)
    assert minimized.edns == 0 and minimized.options == ()


def test_a_later_answer_is_minimized_too():
    """forward's Deferred answers are minimized when they come."""
    later = defer.Deferred()
    clock = task.Clock()
    clock.advance(NOW)
    result = MinimalPlugin(clock).serve(make_request("example.com."), Recorder(lambda request: later))
    later.callback(message(ANSWER, NS, EXTRA))
    assert sections(result.result) == [1, 0, 0]


def test_setup_takes_nothing():
    """TestSetup: `minimal` loads, `minimal example.org` does not."""
    assert setup_of(setup_bare, "minimal") == Bare()
    setup_error(setup_bare, "minimal example.org")
