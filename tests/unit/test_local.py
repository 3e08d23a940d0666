"""local: CoreDNS's handler and setup tables (plugin/local/*_test.go), with the records its code writes."""

from __future__ import annotations

import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client import CollectorRegistry

from discovery.dns.local import LocalConfig, LocalPlugin, local_answer, setup_local
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request

SOA = "604800 IN SOA localhost. root.localhost. 1 0 0 0 604800"

#: CoreDNS's testcases (question, type, rcode, answer, authority), with the full records its code writes.
CASES = [
    ("localhost.", "A", "NOERROR", "localhost. 604800 IN A 127.0.0.1", None),
    ("localHOst.", "A", "NOERROR", "localHOst. 604800 IN A 127.0.0.1", None),
    ("localhost.", "AAAA", "NOERROR", "localhost. 604800 IN AAAA ::1", None),
    ("localhost.", "NS", "NOERROR", "localhost. 604800 IN NS localhost.", None),
    ("localhost.", "SOA", "NOERROR", f"localhost. {SOA}", None),
    ("127.in-addr.arpa.", "A", "NOERROR", None, f"127.in-addr.arpa. {SOA}"),
    ("localhost.", "MX", "NOERROR", None, f"localhost. {SOA}"),
    ("a.localhost.", "A", "NOERROR", "a.localhost. 604800 IN A 127.0.0.1", None),
    ("a.localhost.", "AAAA", "NOERROR", "a.localhost. 604800 IN AAAA ::1", None),
    ("a.localhost.", "MX", "NOERROR", None, f"a.localhost. {SOA}"),
    ("1.0.0.127.in-addr.arpa.", "PTR", "NOERROR", "1.0.0.127.in-addr.arpa. 604800 IN PTR localhost.", None),
    ("1.0.0.127.in-addr.arpa.", "MX", "NOERROR", None, f"127.in-addr.arpa. {SOA}"),
    ("2.0.0.127.in-addr.arpa.", "PTR", "NXDOMAIN", None, f"127.in-addr.arpa. {SOA}"),
    # Beyond CoreDNS's table, from its code: the other zones, and the zone spelled as asked.
    ("0.in-addr.arpa.", "NS", "NOERROR", "0.in-addr.arpa. 604800 IN NS localhost.", None),
    ("255.in-addr.arpa.", "A", "NOERROR", None, f"255.in-addr.arpa. {SOA}"),
    ("9.9.255.in-addr.arpa.", "PTR", "NXDOMAIN", None, f"255.in-addr.arpa. {SOA}"),
    ("2.0.0.127.IN-ADDR.arpa.", "PTR", "NXDOMAIN", None, f"127.IN-ADDR.arpa. {SOA}"),
]


def texts(rrsets) -> list[str]:
    return [rrset.to_text() for rrset in rrsets]


@pytest.mark.parametrize("qname, qtype, rcode, answer, authority", CASES)
def test_local_answers(qname, qtype, rcode, answer, authority):
    """CoreDNS's TestLocal rows: rcode, answer and authority of each local question."""
    request = make_request(qname, qtype)
    recorder = Recorder()
    response = LocalPlugin(LocalConfig()).serve(request, recorder)
    assert not recorder.called
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert texts(response.answer) == ([answer] if answer else [])
    assert texts(response.authority) == ([authority] if authority else [])
    assert not response.flags & dns.flags.AA


def test_other_names_go_to_the_next_plugin():
    """example.org. is not local: the next plugin answers."""
    recorder = Recorder()
    LocalPlugin(LocalConfig()).serve(make_request("example.org."), recorder)
    assert recorder.called


def test_the_localhost_prefix_is_intercepted_by_default():
    """localhost.example.net. A is answered 127.0.0.1 (TestLocalInterceptsLocalhostPrefixByDefault)."""
    answer = local_answer(dns.name.from_text("localhost.example.net."), dns.rdatatype.A)
    assert texts(answer.answer) == ["localhost.example.net. 604800 IN A 127.0.0.1"]


def test_the_localhost_prefix_passes_on_when_off():
    """With localhost_prefix off, localhost.example.net. goes to the next plugin (TestLocalDoesNotIntercept...)."""
    recorder = Recorder()
    LocalPlugin(LocalConfig(localhost_prefix=False)).serve(make_request("localhost.example.net."), recorder)
    assert recorder.called


def test_special_localhost_names_are_counted_and_localhost_itself_is_not():
    """coredns_local_localhost_requests_total counts names under .localhost. and localhost.<domain>, not localhost."""
    registry = CollectorRegistry()
    plugin = LocalPlugin(LocalConfig(), registry=registry)
    for name in ("a.localhost.", "localhost.example.net.", "localhost.", "1.0.0.127.in-addr.arpa."):
        request = make_request(name)
        plugin.serve(request, Recorder())
    assert registry.get_sample_value("coredns_local_localhost_requests_total") == 2
    assert len(request.fastpath.on_reuse) == 0


def test_reused_special_answers_still_count():
    """An answer for a.localhost. reused from the table counts each reuse."""
    request = make_request("a.localhost.")
    LocalPlugin(LocalConfig()).serve(request, Recorder())
    assert request.fastpath.reusable and len(request.fastpath.on_reuse) == 1


# --- setup ----------------------------------------------------------------------------------


def test_setup_defaults_the_prefix_on():
    """`local`: localhost_prefix on (TestSetup)."""
    assert setup_of(setup_local, "local") == LocalConfig(True)


def test_setup_reads_localhost_prefix_off():
    """`local { localhost_prefix off }` (TestSetupLocalhostPrefixOption)."""
    assert setup_of(setup_local, "local {\nlocalhost_prefix off\n}") == LocalConfig(False)


@pytest.mark.parametrize("text, line, message", [
    ("local example.org", 2, "expected 0 arguments"),
    ("local {\nfoo\n}", 3, "unknown property 'foo'"),
    ("local {\nlocalhost_prefix maybe\n}", 3, "expects 'on' or 'off'"),
    ("local {\nlocalhost_prefix\n}", 3, "expected 1 argument"),
])
def test_setup_refuses(text, line, message):
    """TestSetupRejectsArgs, ...RejectsBlockOptions, ...RejectsInvalidLocalhostPrefixValue, and a missing value."""
    assert message in setup_error(setup_local, text, line=line).message
