"""header: CoreDNS's setup and handler tables (plugin/header/*_test.go)."""

from __future__ import annotations

import dns.flags
import pytest
from twisted.internet import defer

from discovery.dns.header import HeaderConfig, HeaderPlugin, setup_header
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request

AA, RA, RD = dns.flags.AA, dns.flags.RA, dns.flags.RD


# --- setup (TestSetupHeader) --------------------------------------------------------------


@pytest.mark.parametrize("text, line, message", [
    ("header {\n}", 2, "expected at least one rule"),
    ("header", 2, "expected at least one rule"),
    ("header {\nfoo\n}", 3, "invalid selector=foo should be query or response"),
    ("header {\nresponse set\n}", 3, "invalid length for flags, at least one should be provided"),
    ("header {\nquery foo\n}", 3, "invalid length for flags, at least one should be provided"),
    ("header {\nquery foo rd\n}", 3, "unknown flag action=foo, should be set or clear"),
    ("header {\nquery\n}", 3, "no flag action provided"),
    ("header {\nquery set cd\n}", 3, "unknown/unsupported flag=cd"),
    ("header x {\nquery set rd\n}", 2, "expected 0 arguments"),
])
def test_setup_refuses(text, line, message):
    """CoreDNS's TestSetupHeader error rows, each naming the line at fault."""
    assert message in setup_error(setup_header, text, line=line).message


@pytest.mark.parametrize("text, config", [
    ("header {\nquery set rd\n}", HeaderConfig(query=((RD, True),))),
    ("header {\nresponse set aa\n}", HeaderConfig(response=((AA, True),))),
    ("header {\nresponse set ra aa\nquery clear rd\n}", HeaderConfig(((RD, False),), ((RA, True), (AA, True)))),
    ("header {\nRESPONSE SET RA\n}", HeaderConfig(response=((RA, True),))),
])
def test_setup_reads_the_rules(text, config):
    """CoreDNS's TestSetupHeader positive rows: rules in the order written; selectors, actions and flags in any case."""
    assert setup_of(setup_header, text) == config


# --- handler (TestHeaderResponseRules, TestHeaderQueryRules) --------------------------------


def serve(config: HeaderConfig, request=None, respond=None):
    request = request or make_request("example.org.")
    recorder = Recorder(respond)
    return request, HeaderPlugin(config).serve(request, recorder), recorder


@pytest.mark.parametrize("rule, flag, expected", [
    ((RA, True), RA, True),
    ((RA, False), RA, False),
    ((RD, True), RD, True),
    ((AA, True), AA, True),
])
def test_response_rules_set_the_responses_flags(rule, flag, expected):
    """Each response rule leaves the flag in the stated state in the response."""
    _, response, _ = serve(HeaderConfig(response=(rule,)), make_request("example.org.", rd=False))
    assert bool(response.flags & flag) is expected


@pytest.mark.parametrize("rule, flag, expected", [
    ((RA, True), RA, True),
    ((RD, True), RD, True),
    ((RD, False), RD, False),
    ((AA, True), AA, True),
])
def test_query_rules_set_the_flags_the_next_plugin_sees(rule, flag, expected):
    """Each query rule leaves the flag in the stated state in the request passed on."""
    _, _, recorder = serve(HeaderConfig(query=(rule,)))
    assert bool(recorder.requests[0].query.flags & flag) is expected


def test_the_last_rule_for_a_flag_wins():
    """Rules apply in order: `set ra` then `clear ra` leaves RA clear."""
    _, response, _ = serve(HeaderConfig(response=((RA, True), (RA, False))))
    assert not response.flags & RA


def test_a_query_rule_on_rd_shows_in_the_response():
    """`query clear rd`: the next plugin's reply echoes the cleared RD."""
    _, response, _ = serve(HeaderConfig(query=((RD, False),)))
    assert not response.flags & RD


def test_rules_apply_to_a_later_answer():
    """A response that comes later (a Deferred, as forward's) gets the rules too."""
    later = defer.Deferred()
    _, result, _ = serve(HeaderConfig(response=((RA, True),)), respond=lambda request: later)
    request = make_request("example.org.")
    later.callback(request.reply())
    assert result.result.flags & RA


def test_a_decided_rd_bit_is_fixed_for_the_table_of_rendered_answers():
    """With an rd rule the reused answer keeps the decided RD (response rules over query rules); without, the client's."""
    assert serve(HeaderConfig(query=((RD, True),), response=((RD, False),)))[0].fastpath.rd == 0
    assert serve(HeaderConfig(query=((RD, True),)))[0].fastpath.rd == 1
    assert serve(HeaderConfig(response=((RA, True),)))[0].fastpath.rd is None
