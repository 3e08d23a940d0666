"""chaos: CoreDNS's setup and handler tables (plugin/chaos/*_test.go) and the rest of its README."""

from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdataclass
import pytest
from twisted.internet import task

from discovery.dns.chaos import DEFAULT_VERSION, ChaosConfig, ChaosPlugin, chaos_texts, setup_chaos
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request

VERSION = "CoreDNS-001"


def chaos(version=VERSION, authors=("Miek Gieben",), hostname="node-1", now=1000.0):
    clock = task.Clock()
    clock.advance(now)
    config = ChaosConfig(version.encode(), tuple(author.encode() for author in authors))
    return ChaosPlugin(config, clock, hostname=hostname), clock


def ask(plugin, name, rdtype="TXT", rdclass="CH"):
    request = make_request(name, rdtype, rdclass=rdclass)
    recorder = Recorder()
    response = plugin.serve(request, recorder)
    return request, response, recorder


def texts(response):
    return [string for rrset in response.answer for rdata in rrset for string in rdata.strings]


# --- setup (TestSetupChaos) ---------------------------------------------------------------


def test_setup_with_a_version_only_keeps_the_default_authors():
    """`chaos v2`: version v2, the default authors."""
    assert setup_of(setup_chaos, "chaos v2") == ChaosConfig(version=b"v2")


def test_setup_with_authors_takes_them_deduplicated_and_sorted():
    """`chaos v3 "Miek Gieben"`: version v3, authors as given, each once, sorted."""
    assert setup_of(setup_chaos, 'chaos v3 "Miek Gieben"') == ChaosConfig(b"v3", (b"Miek Gieben",))
    assert setup_of(setup_chaos, "chaos v3 b a b").authors == (b"a", b"b")


def test_setup_without_arguments_uses_the_programs_name_and_version():
    """No VERSION: the program's own name and version (CoreDNS's is CoreDNS-<version>)."""
    assert setup_of(setup_chaos, "chaos").version == DEFAULT_VERSION.encode()


def test_setup_refuses_a_block_property():
    """`chaos v2 { unknown }`: unknown property, on the property's line."""
    assert "unknown property" in setup_error(setup_chaos, "chaos v2 {\nunknown\n}", line=3).message


def test_setup_cuts_strings_to_255_bytes():
    """A version or author longer than a TXT string may be is cut to 255 bytes."""
    config = setup_of(setup_chaos, f"chaos {'v' * 300} {'a' * 300}")
    assert config.version == b"v" * 255 and config.authors == (b"a" * 255,)


# --- answers (TestChaos) -----------------------------------------------------------------


def test_version_bind_answers_the_version():
    """CH TXT version.bind: the configured version, NOERROR, TTL 0, class CH, no AA."""
    plugin, _ = chaos()
    _, response, recorder = ask(plugin, "version.bind.")
    assert texts(response) == [VERSION.encode()]
    assert response.rcode() == dns.rcode.NOERROR and not recorder.called
    (rrset,) = response.answer
    assert rrset.ttl == 0 and dns.rdataclass.to_text(rrset.rdclass) == "CH"
    assert not response.flags & dns.flags.AA


def test_version_server_answers_the_version_too():
    """CH TXT version.server is version.bind's synonym."""
    plugin, _ = chaos()
    assert texts(ask(plugin, "version.server.")[1]) == [VERSION.encode()]


def test_authors_bind_answers_one_record_per_author():
    """CH TXT authors.bind: one TXT record per author."""
    plugin, _ = chaos()
    assert texts(ask(plugin, "authors.bind.")[1]) == [b"Miek Gieben"]


@pytest.mark.parametrize("name", ["hostname.bind.", "id.server."])
def test_hostname_names_answer_the_host_name(name):
    """CH TXT hostname.bind and id.server: the host's name."""
    plugin, _ = chaos()
    assert texts(ask(plugin, name)[1]) == [b"node-1"]


def test_another_type_goes_to_the_next_plugin():
    """CH SRV authors.bind is not chaos's: the next plugin answers (CoreDNS's third row)."""
    plugin, _ = chaos()
    _, _, recorder = ask(plugin, "authors.bind.", "SRV")
    assert recorder.called


def test_the_in_class_goes_to_the_next_plugin():
    """IN TXT version.bind is an ordinary question for the next plugin."""
    plugin, _ = chaos()
    assert ask(plugin, "version.bind.", rdclass="IN")[2].called


def test_another_name_goes_to_the_next_plugin():
    """CH TXT for a name chaos does not know goes on."""
    plugin, _ = chaos()
    assert ask(plugin, "example.org.")[2].called


def test_the_question_case_is_kept_and_matched_without_it():
    """VERSION.Bind is answered, with the question's own letters as the owner name."""
    plugin, _ = chaos()
    _, response, _ = ask(plugin, "VERSION.Bind.")
    assert response.answer[0].name.to_text() == "VERSION.Bind."


def test_the_authors_order_is_one_per_second():
    """The authors' order is the same within a second and redrawn at the next (CoreDNS seeds with the Unix time)."""
    authors = tuple(f"author-{i}".encode() for i in range(20))
    config = ChaosConfig(b"v", authors)
    first = chaos_texts("authors.bind.", config, "h", 1000)
    assert chaos_texts("authors.bind.", config, "h", 1000) == first
    assert sorted(first) == sorted(authors)
    assert any(chaos_texts("authors.bind.", config, "h", second) != first for second in range(1001, 1005))


def test_an_authors_answer_is_reused_until_the_next_second_only():
    """The table of rendered answers may reuse authors.bind until the order changes; version.bind for good."""
    plugin, _ = chaos(now=1000.25)
    request, _, _ = ask(plugin, "authors.bind.")
    assert request.fastpath.reusable and request.fastpath.expires == 1001
    request, _, _ = ask(plugin, "version.bind.")
    assert request.fastpath.reusable and request.fastpath.expires == float("inf")
