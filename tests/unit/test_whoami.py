"""whoami: CoreDNS's handler and setup tests (plugin/whoami/*_test.go)."""

from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdataclass
import pytest

from discovery.dns.whoami import WhoamiPlugin
from discovery.plugin import Bare, setup_bare
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request


def whoami(qname, client=("10.240.0.1", 40212), proto="udp", rdclass="IN"):
    request = make_request(qname, "A", client=client, proto=proto, rdclass=rdclass)
    recorder = Recorder()
    return request, WhoamiPlugin().serve(request, recorder), recorder


@pytest.mark.parametrize("qname, client, owners", [
    ("example.org.", ("10.240.0.1", 40212), ["example.org.", "_udp.example.org."]),
    ("Example.ORG.", ("10.240.0.1", 40212), ["Example.ORG.", "_udp.Example.ORG."]),
    ("example.org.", ("2003::1", 40212), ["example.org.", "_udp.example.org."]),
    ("Example.ORG.", ("2003::1", 40212), ["Example.ORG.", "_udp.Example.ORG."]),
])
def test_whoami_table(qname, client, owners):
    """CoreDNS's TestWhoami rows: NOERROR, the owner names of the additional records, case kept."""
    _, response, recorder = whoami(qname, client)
    assert response.rcode() == dns.rcode.NOERROR and not recorder.called
    assert [rrset.name.to_text() for rrset in response.additional] == owners


def test_the_records_are_the_clients_address_and_port():
    """An IPv4 client gets A and SRV 0 0 PORT .; AA set, nothing in the answer section, TTL 0."""
    _, response, _ = whoami("example.org.")
    assert [rrset.to_text() for rrset in response.additional] == [
        "example.org. 0 IN A 10.240.0.1",
        "_udp.example.org. 0 IN SRV 0 0 40212 .",
    ]
    assert response.flags & dns.flags.AA and not response.answer


def test_an_ipv6_client_gets_aaaa_and_tcp_its_own_srv():
    """An IPv6 client over TCP: AAAA and _tcp."""
    _, response, _ = whoami("example.org.", ("2003::1", 5300), "tcp")
    assert [rrset.to_text() for rrset in response.additional] == [
        "example.org. 0 IN AAAA 2003::1",
        "_tcp.example.org. 0 IN SRV 0 0 5300 .",
    ]


def test_the_root_question_names_the_srv_underscore_proto_dot():
    """A question for the root: the SRV's owner is `_udp.`."""
    _, response, _ = whoami(".")
    assert response.additional[1].name.to_text() == "_udp."


def test_the_records_take_the_questions_class():
    """A CH question gets CH records (CoreDNS copies the question's class)."""
    _, response, _ = whoami("example.org.", rdclass="CH")
    assert [rrset.rdclass for rrset in response.additional] == [dns.rdataclass.CH] * 2


def test_an_answer_is_never_reused():
    """The answer is the client's own."""
    request, _, _ = whoami("example.org.")
    assert not request.fastpath.reusable


def test_setup_takes_nothing():
    """`whoami` loads; `whoami example.org` does not (TestSetupWhoami)."""
    assert setup_of(setup_bare, "whoami") == Bare()
    setup_error(setup_bare, "whoami example.org")
