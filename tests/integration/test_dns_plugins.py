"""The small plugins over real sockets: bufsize, chaos, header, acl, local, any, nsid, whoami, minimal.

Each test starts an Application from Corefile text on 127.0.0.1 port 0 and
asks it with dnspython, as a client would; expectations come from CoreDNS's
plugin READMEs and tests.
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest_twisted
from twisted.internet import reactor, threads

from tests.integration.dnsserver import TIMEOUT, addresses, free_port, within
from tests.integration.live import scrape
from tests.integration.test_ops_endpoints import WEB_MANIFEST

#: A name the hosts plugin answers with 100 addresses: about 1,660 bytes.
BIG = "big.example.org."
BIG_ADDRESSES = [f"10.1.0.{i}" for i in range(1, 101)]


def corefile(*directives: str, hosts: bool = True) -> str:
    """One block for ".", on 127.0.0.1 port 0, with these directives and a hosts plugin answering BIG."""
    lines = [".:0 {", "    bind 127.0.0.1", *(f"    {line}" for line in directives)]
    if hosts:
        lines += ["    hosts {", *(f"        {ip} {BIG}" for ip in BIG_ADDRESSES), "    }"]
    return "\n".join(lines + ["}", ""])


# --- bufsize ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_bufsize_cuts_udp_answers_to_its_size(dns_server):
    """A client offering 4096 bytes gets at most bufsize's 1232 over UDP, truncated with TC."""
    server = await dns_server(corefile("bufsize 1232"))
    response = await server.query(BIG, use_edns=0, payload=4096)
    assert response.flags & dns.flags.TC
    assert len(response.to_wire()) <= 1232


@pytest_twisted.ensureDeferred
async def test_bufsize_leaves_tcp_answers_whole(dns_server):
    """Over TCP the answer is not cut: all 100 addresses come back."""
    server = await dns_server(corefile("bufsize 1232"))
    response = await server.query(BIG, "A", "tcp", use_edns=0, payload=4096)
    assert addresses(response) == sorted(BIG_ADDRESSES)


@pytest_twisted.ensureDeferred
async def test_an_answer_rendered_for_tcp_is_not_reused_beyond_bufsize_over_udp(dns_server):
    """After a TCP client filled the table of rendered answers, a UDP client offering 4096 still gets at most 1232."""
    server = await dns_server(corefile("bufsize 1232"))
    await server.query(BIG, "A", "tcp", use_edns=0, payload=4096)
    response = await server.query(BIG, use_edns=0, payload=4096)
    assert response.flags & dns.flags.TC
    assert len(response.to_wire()) <= 1232


@pytest_twisted.ensureDeferred
async def test_without_bufsize_udp_answers_are_cut_to_1232(dns_server):
    """The same block without bufsize cuts a 4096-byte offer to the DNS flag day's 1232 bytes."""
    server = await dns_server(corefile())
    response = await server.query(BIG, use_edns=0, payload=4096)
    assert response.flags & dns.flags.TC
    assert len(response.to_wire()) <= 1232


@pytest_twisted.ensureDeferred
async def test_bufsize_4096_lets_a_client_have_what_it_offers(dns_server):
    """`bufsize 4096` replaces the 1232-byte cap: a 4096-byte offer gets every address over UDP, twice."""
    server = await dns_server(corefile("bufsize 4096"))
    for _ in range(2):  # the second from the table of rendered answers
        response = await server.query(BIG, use_edns=0, payload=4096)
        assert not response.flags & dns.flags.TC
        assert addresses(response) == sorted(BIG_ADDRESSES)


# --- chaos --------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_chaos_answers_version_bind_in_the_ch_class(dns_server):
    """`dig CH TXT version.bind` gets the configured version, as CoreDNS's README shows."""
    server = await dns_server(corefile("chaos CoreDNS-001 info@coredns.io"))
    for _ in range(2):  # the second from the table of rendered answers
        response = await server.query("version.bind.", "TXT", rdclass="CH")
        assert [rdata.strings for rrset in response.answer for rdata in rrset] == [(b"CoreDNS-001",)]
        assert response.answer[0].rdclass == dns.rdataclass.CH and response.answer[0].ttl == 0


@pytest_twisted.ensureDeferred
async def test_chaos_answers_authors_bind(dns_server):
    """`dig CH TXT authors.bind` gets the configured authors."""
    server = await dns_server(corefile("chaos CoreDNS-001 info@coredns.io"))
    response = await server.query("authors.bind.", "TXT", rdclass="CH")
    assert [rdata.strings for rrset in response.answer for rdata in rrset] == [(b"info@coredns.io",)]


# --- header -------------------------------------------------------------------------------


HEADER_RULES = ("header {", "    response set ra aa", "    response clear rd", "}")


@pytest_twisted.ensureDeferred
async def test_header_response_rules_hold_for_every_answer_and_reuse(dns_server):
    """`response set ra aa; response clear rd`: RA and AA set, RD clear, the first time and from the table."""
    server = await dns_server(corefile(*HEADER_RULES))
    for _ in range(3):
        response = await server.query(BIG, "A", "tcp")
        assert response.flags & dns.flags.RA and response.flags & dns.flags.AA
        assert not response.flags & dns.flags.RD


@pytest_twisted.ensureDeferred
async def test_header_query_rules_reach_the_answer(dns_server):
    """`query clear rd`: a client's RD is gone from the answer, which echoes the changed query."""
    server = await dns_server(corefile("header {", "    query clear rd", "}"))
    for _ in range(2):
        response = await server.query(BIG, "A", "tcp")
        assert not response.flags & dns.flags.RD


# --- acl ----------------------------------------------------------------------------------


def ask_from(server, source: str, name: str, rdtype: str = "A", proto: str = "udp"):
    """Ask from a loopback source address of our choosing (all of 127.0.0.0/8 is local)."""
    exchange = dns.query.udp if proto == "udp" else dns.query.tcp
    query = dns.message.make_query(name, rdtype)
    return within(threads.deferToThread(exchange, query, server.host, timeout=TIMEOUT, port=server.port,
                                        source=source))


def extended_errors(response) -> list[int]:
    """The INFO-CODEs of the response's EDE options (RFC 8914), read from their bytes:
    the server process keeps every option raw (discovery.dns.edns)."""
    return [int.from_bytes(option.to_wire()[:2], "big") for option in response.options
            if option.otype == dns.edns.OptionType.EDE]


@pytest_twisted.ensureDeferred
async def test_acl_blocks_a_source_with_refused_and_an_extended_error(dns_server):
    """`block net 127.0.0.2`: that source gets REFUSED with EDE 15 (Blocked); another gets the answer."""
    server = await dns_server(corefile("acl {", "    block net 127.0.0.2", "}"))
    blocked = await ask_from(server, "127.0.0.2", BIG, proto="tcp")
    assert blocked.rcode() == dns.rcode.REFUSED and extended_errors(blocked) == [15]
    allowed = await ask_from(server, "127.0.0.1", BIG, proto="tcp")
    assert addresses(allowed) == sorted(BIG_ADDRESSES)


@pytest_twisted.ensureDeferred
async def test_a_table_hit_never_bypasses_an_acl_block(dns_server):
    """After an allowed client filled the table of rendered answers, a blocked one is still refused, over UDP and TCP."""
    server = await dns_server(corefile("acl {", "    block net 127.0.0.2", "}"))
    for _ in range(3):
        assert (await ask_from(server, "127.0.0.1", "big.example.org.", "AAAA")).rcode() == dns.rcode.NOERROR
    for proto in ("udp", "tcp"):
        refused = await ask_from(server, "127.0.0.2", "big.example.org.", "AAAA", proto)
        assert refused.rcode() == dns.rcode.REFUSED
    assert (await ask_from(server, "127.0.0.1", "big.example.org.", "AAAA")).rcode() == dns.rcode.NOERROR


@pytest_twisted.ensureDeferred
async def test_acl_filter_answers_empty_noerror_with_an_extended_error(dns_server):
    """`filter type A`: an empty NOERROR answer with EDE 17 (Filtered)."""
    server = await dns_server(corefile("acl {", "    filter type A", "}"))
    response = await ask_from(server, "127.0.0.1", BIG, proto="tcp")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer and extended_errors(response) == [17]


@pytest_twisted.ensureDeferred
async def test_acl_drop_sends_no_reply(dns_server):
    """`drop type AAAA`: an AAAA query gets no reply at all, while the A query after it is answered."""
    server = await dns_server(corefile("acl {", "    drop type AAAA", "}"))
    replies = await server.raw(dns.message.make_query(BIG, "AAAA").to_wire())
    assert replies == []



@pytest_twisted.ensureDeferred
async def test_a_dropped_query_still_counts_in_the_metrics(dns_server):
    """A dropped query counts in coredns_acl_dropped_requests_total, and (as CoreDNS's metrics plugin sees an
    unwritten reply) in coredns_dns_requests_total and responses_total as NOERROR."""
    server = await dns_server(corefile("prometheus 127.0.0.1:0", "acl {", "    drop type AAAA", "}"))
    assert await server.raw(dns.message.make_query(BIG, "AAAA").to_wire()) == []
    url = f"http://127.0.0.1:{server.app.http.bound_port(('127.0.0.1', 0))}/metrics"
    scraped = await scrape(reactor, url)
    label = f"dns://127.0.0.1:{server.port}"
    assert scraped.value("coredns_acl_dropped_requests_total", server=label, zone=".") == 1
    assert scraped.value("coredns_dns_requests_total", server=label, type="AAAA") == 1
    assert scraped.value("coredns_dns_responses_total", server=label, rcode="NOERROR", plugin="") == 1

# --- local --------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_local_answers_localhost_and_its_reverse(dns_server):
    """localhost. A is 127.0.0.1 and 1.0.0.127.in-addr.arpa. PTR is localhost., with no other plugin asked."""
    server = await dns_server(corefile("local"))
    for _ in range(2):
        assert addresses(await server.query("localhost.")) == ["127.0.0.1"]
    ptr = await server.query("1.0.0.127.in-addr.arpa.", "PTR")
    assert [rdata.to_text() for rrset in ptr.answer for rdata in rrset] == ["localhost."]


@pytest_twisted.ensureDeferred
async def test_local_keeps_search_path_localhost_names_from_other_plugins(dns_server):
    """localhost.example.org. (a search-path expansion) gets ::1 for AAAA from local, and 2.0.0.127.in-addr.arpa. NXDOMAIN."""
    server = await dns_server(corefile("local"))
    assert addresses(await server.query("localhost.example.org.", "AAAA")) == ["::1"]
    assert (await server.query("2.0.0.127.in-addr.arpa.", "PTR")).rcode() == dns.rcode.NXDOMAIN


# --- any ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_any_answers_an_any_query_with_hinfo(dns_server):
    """`dig ANY big.example.org` gets the RFC 8482 HINFO instead of the hosts plugin's 100 addresses."""
    server = await dns_server(corefile("any"))
    for _ in range(2):
        response = await server.query(BIG, "ANY")
        assert [rrset.to_text() for rrset in response.answer] == [
            f'{BIG} 8482 IN HINFO "ANY obsoleted" "See RFC 8482"'
        ]
    assert addresses(await server.query(BIG, "A", "tcp")) == sorted(BIG_ADDRESSES)


# --- nsid ---------------------------------------------------------------------------------


def nsids(response) -> list[bytes]:
    return [option.to_wire() for option in response.options if option.otype == dns.edns.OptionType.NSID]


@pytest_twisted.ensureDeferred
async def test_nsid_answers_the_clients_that_ask_and_only_them(dns_server):
    """`nsid Use The Force`: a query with the NSID option gets it back, even after plain queries filled the table."""
    server = await dns_server(corefile("nsid Use The Force"))
    asking = [dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")]
    for _ in range(2):
        assert nsids(await server.query(BIG, "AAAA", use_edns=0)) == []
    assert nsids(await server.query(BIG, "AAAA", use_edns=0, options=asking)) == [b"Use The Force"]
    assert nsids(await server.query(BIG, "AAAA", use_edns=0)) == []


# --- whoami -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_whoami_tells_each_client_its_own_address_port_and_transport(dns_server):
    """Two clients on two source addresses and ports each get their own A and `_udp`/`_tcp` SRV, never the other's."""
    server = await dns_server(corefile("whoami", hosts=False))
    for source, proto in (("127.0.0.1", "udp"), ("127.0.0.2", "udp"), ("127.0.0.3", "tcp")):
        port = free_port()
        exchange = dns.query.udp if proto == "udp" else dns.query.tcp
        query = dns.message.make_query("Example.ORG.", "A")
        response = await within(threads.deferToThread(
            exchange, query, server.host, timeout=TIMEOUT, port=server.port, source=source, source_port=port,
        ))
        assert [rrset.to_text() for rrset in response.additional] == [
            f"Example.ORG. 0 IN A {source}",
            f"_{proto}.Example.ORG. 0 IN SRV 0 0 {port} .",
        ]
        assert response.flags & dns.flags.AA and not response.answer


# --- minimal ------------------------------------------------------------------------------

WEB_SRV = "_http._tcp.web.default.svc.cluster.local."


def cluster_corefile(folder, *directives: str) -> str:
    return corefile(*directives, "kubernetes cluster.local {", f"    manifests {folder}", "}", hosts=False)


@pytest_twisted.ensureDeferred
async def test_minimal_leaves_the_answer_section_alone(dns_server, tmp_path):
    """An SRV answer loses the additional A record of its target with minimal, and keeps it without."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "web.yaml").write_text(WEB_MANIFEST)
    plain = await dns_server(cluster_corefile(folder))
    full = await plain.query(WEB_SRV, "SRV")
    assert full.answer and full.additional
    server = await dns_server(cluster_corefile(folder, "minimal"))
    for _ in range(2):
        response = await server.query(WEB_SRV, "SRV")
        assert response.answer == full.answer and not response.additional and not response.authority


@pytest_twisted.ensureDeferred
async def test_minimal_leaves_denials_whole(dns_server, tmp_path):
    """An NXDOMAIN keeps its SOA in authority."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "web.yaml").write_text(WEB_MANIFEST)
    server = await dns_server(cluster_corefile(folder, "minimal"))
    response = await server.query("nothing.default.svc.cluster.local.", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN and response.authority
