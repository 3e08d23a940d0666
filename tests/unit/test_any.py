"""any: CoreDNS's handler and setup tests (plugin/any/*_test.go)."""

from __future__ import annotations

import dns.flags
import dns.rcode
import pytest

from discovery.dns.any import AnyPlugin
from discovery.plugin import Bare, setup_bare
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request


def test_an_any_query_gets_the_rfc_8482_hinfo():
    """TestAny: example.org. ANY is answered `example.org. 8482 IN HINFO "ANY obsoleted" "See RFC 8482"`."""
    recorder = Recorder()
    response = AnyPlugin().serve(make_request("example.org.", "ANY"), recorder)
    assert [rrset.to_text() for rrset in response.answer] == [
        'example.org. 8482 IN HINFO "ANY obsoleted" "See RFC 8482"'
    ]
    assert response.rcode() == dns.rcode.NOERROR and not response.flags & dns.flags.AA
    assert not recorder.called


@pytest.mark.parametrize("qtype", ["A", "AAAA", "MX", "TXT", "CNAME"])
def test_other_types_go_to_the_next_plugin(qtype):
    """TestAnyNonANYQuery: A, AAAA, MX, TXT and CNAME queries pass on."""
    recorder = Recorder()
    AnyPlugin().serve(make_request("example.org.", qtype), recorder)
    assert recorder.called


def test_setup_takes_nothing():
    """TestSetup: `any` loads; an empty block is no property."""
    assert setup_of(setup_bare, "any") == Bare()
    assert setup_of(setup_bare, "any {\n}") == Bare()


def test_setup_refuses_arguments():
    """TestSetupRejectsArgs: `any example.org`."""
    setup_error(setup_bare, "any example.org")


def test_setup_refuses_block_options():
    """TestSetupRejectsBlockOptions: `any { foo }`."""
    assert "unknown property 'foo'" in setup_error(setup_bare, "any {\nfoo\n}", line=3).message
