"""nsid: CoreDNS's handler and setup tables (plugin/nsid/*_test.go), and reuse of answers."""

from __future__ import annotations

import socket

import dns.edns
import dns.flags
import dns.message
import pytest
from twisted.internet import defer

from discovery.dns.nsid import NsidConfig, NsidPlugin, asks_nsid, setup_nsid
from discovery.dns.server import _question_end
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request

NSID_QUERY = (dns.edns.GenericOption(dns.edns.OptionType.NSID, b""),)


def nsids(response) -> list[bytes]:
    return [option.to_wire() for option in response.options if option.otype == dns.edns.OptionType.NSID]


@pytest.mark.parametrize("text, data", [
    ("nsid", socket.gethostname().encode()),
    ('nsid "ps0"', b"ps0"),
    ('nsid "worker1"', b"worker1"),
    ('nsid "tf 2"', b"tf 2"),
    ("nsid Use The Force", b"Use The Force"),
])
def test_setup_reads_the_data(text, data):
    """CoreDNS's TestSetupNsid rows: the arguments joined by spaces, the host name without any."""
    assert setup_of(setup_nsid, text) == NsidConfig(data)


def test_nsid_may_appear_once_per_block():
    """`nsid` twice in a block stops the Corefile (CoreDNS's plugin.ErrOnce), at the second line."""
    from discovery.config import load_text
    from discovery.corefile import CorefileError

    with pytest.raises(CorefileError) as caught:
        load_text(".:53 {\n    nsid\n    nsid\n}\n")
    assert caught.value.line == 3


def test_setup_refuses_a_block():
    """`nsid x { }` is refused."""
    setup_error(setup_nsid, "nsid x {\n}")


def test_a_query_asking_nsid_gets_the_data():
    """TestNsid: a query with the NSID option gets an NSID option with DATA ("NSID")."""
    request = make_request(".", options=NSID_QUERY)
    response = NsidPlugin(NsidConfig(b"NSID")).serve(request, Recorder())
    assert nsids(response) == [b"NSID"]


def test_a_query_without_the_option_gets_none():
    """Without an NSID option in the query, the answer has none, with or without EDNS."""
    for request in (make_request(".", edns=True), make_request(".")):
        response = NsidPlugin(NsidConfig(b"NSID")).serve(request, Recorder())
        assert nsids(response) == []


def test_an_answer_without_opt_gets_one_with_do():
    """CoreDNS's SetEdns0(size, true) when the next plugin wrote no OPT: the client's size, DO set."""
    request = make_request(".", options=NSID_QUERY, payload=1400)

    def bare(request):
        response = request.reply()
        response.use_edns(False)
        return response

    response = NsidPlugin(NsidConfig(b"x")).serve(request, Recorder(bare))
    assert response.payload == 1400 and response.ednsflags & dns.flags.DO and nsids(response) == [b"x"]


def test_an_upstreams_nsid_is_replaced_in_place():
    """An NSID option already in the answer (an upstream's) carries DATA instead, where it was."""
    request = make_request(".", options=NSID_QUERY)
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")

    def upstream(request):
        response = request.reply()
        response.use_edns(0, 0, 1232, options=[dns.edns.NSIDOption(b"upstream"), cookie])
        return response

    response = NsidPlugin(NsidConfig(b"here")).serve(request, Recorder(upstream))
    assert [option.otype for option in response.options] == [dns.edns.OptionType.NSID, dns.edns.OptionType.COOKIE]
    assert nsids(response) == [b"here"]


def test_a_later_answer_gets_the_data_too():
    """A Deferred answer (forward's) gets the NSID option when it fires."""
    later = defer.Deferred()
    request = make_request(".", options=NSID_QUERY)
    result = NsidPlugin(NsidConfig(b"x")).serve(request, Recorder(lambda r: later))
    later.callback(request.reply())
    assert nsids(result.result) == [b"x"]


# --- the table of rendered answers ----------------------------------------------------------


def test_an_nsid_answer_is_not_reused():
    """An answer carrying NSID is computed afresh for each query that asks."""
    request = make_request(".", options=NSID_QUERY)
    NsidPlugin(NsidConfig(b"x")).serve(request, Recorder())
    assert not request.fastpath.reusable


def test_other_answers_are_reused_only_for_queries_that_do_not_ask():
    """An answer without NSID carries a guard that refuses queries with the NSID option."""
    request = make_request(".", edns=True)
    NsidPlugin(NsidConfig(b"x")).serve(request, Recorder())
    (guard,) = request.fastpath.guards
    for query, asks in [
        (dns.message.make_query(".", "A"), False),
        (dns.message.make_query(".", "A", use_edns=0), False),
        (dns.message.make_query(".", "A", use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")]), False),
        (dns.message.make_query(".", "A", use_edns=0, options=list(NSID_QUERY)), True),
        (dns.message.make_query(".", "A", use_edns=0,
                                options=[dns.edns.GenericOption(10, b"12345678"), *NSID_QUERY]), True),
    ]:
        wire = query.to_wire()
        qend = _question_end(wire)
        assert asks_nsid(wire, qend) is asks
        assert guard(wire, qend, "192.0.2.1") is not asks
