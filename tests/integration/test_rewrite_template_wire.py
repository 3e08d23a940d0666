"""`rewrite` and `template` over real sockets: what a client sees, and what the table of rendered answers serves.

The table is keyed by the client's question and writes the client's question
bytes over the rendered one: these tests check that a rewritten answer is
stored under the name the client asked, carries that name back (in the
client's case), and is never served for another question.
"""

from __future__ import annotations

import textwrap

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.integration.dnsserver import addresses, rdata_texts, store_settles

FRONTEND_IP = "10.96.7.7"
CLUSTER = textwrap.dedent(f"""\
    apiVersion: v1
    kind: Service
    metadata: {{name: frontend, namespace: default}}
    spec:
      clusterIP: {FRONTEND_IP}
      ports: [{{name: http, port: 80, protocol: TCP}}]
    """)

COREFILE = textwrap.dedent(r"""
    .:0 {
        bind 127.0.0.1
        rewrite name suffix .example.com .default.svc.cluster.local answer auto
        rewrite stop {
            name regex ^(.*)\.legacy\.corp\.$ {1}.default.svc.cluster.local
            answer name ^(.*)\.default\.svc\.cluster\.local\.$ {1}.legacy.corp
        }
        template IN A example {
            match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
            answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
            fallthrough
        }
        template IN PTR in-addr.arpa {
            match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
            answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
        }
        template ANY ANY internal.cloudapp.net {
            match "^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$"
            rcode NXDOMAIN
            fallthrough
        }
        kubernetes cluster.local {
            manifests cluster
        }
    }
    """)


@pytest.fixture
def serve(dns_server, tmp_path):
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "cluster.yaml").write_text(CLUSTER)

    async def start():
        return await dns_server(COREFILE)

    return start


def table_has(server, name: str, rdtype: str = "A", edns: bool = False) -> bool:
    """Is there a rendered answer for this client question (name as asked, type IN, EDNS state)?"""
    wire = dns.name.from_text(name).to_wire() + dns.rdatatype.from_text(rdtype).to_bytes(2, "big") + b"\x00\x01"
    return any(key[:-1] == wire and key[-1] & 1 == edns for key in server.dns.table.entries)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_a_suffix_rewrite_answers_the_asked_name(serve, proto):
    """`rewrite name suffix ... answer auto`: a cluster Service under another suffix, with the asked name throughout."""
    server = await serve()
    response = await server.query("frontend.example.com.", "A", proto)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.question[0].name == dns.name.from_text("frontend.example.com.")
    assert [rrset.name.to_text() for rrset in response.answer] == ["frontend.example.com."]
    assert addresses(response) == [FRONTEND_IP]


@pytest_twisted.ensureDeferred
async def test_a_rewritten_answer_is_kept_under_the_clients_question(serve):
    """The table of rendered answers keeps the rewritten answer under the name asked, not the rewritten one."""
    server = await serve()
    await server.query("frontend.example.com.", "A", use_edns=False)
    assert table_has(server, "frontend.example.com.")
    assert not table_has(server, "frontend.default.svc.cluster.local.")


@pytest.mark.parametrize("name, rdtype", [
    ("FrOnTeNd.ExAmPlE.cOm.", "A"),
    ("FrOnTeNd.LeGaCy.CoRp.", "A"),
    ("iP-10-1-2-3.ExAmPlE.", "A"),
    ("3.2.1.10.In-AdDr.ArPa.", "PTR"),
])
@pytest_twisted.ensureDeferred
async def test_the_table_serves_the_full_paths_bytes_in_the_clients_case(serve, name, rdtype):
    """A hit for a rewritten or templated name, in a 0x20 client's case, is byte for byte its full-path answer."""
    running = await serve()
    server = running.dns
    packet = dns.message.make_query(name, rdtype, id=99).to_wire()
    server.answer(dns.message.make_query(name, rdtype, id=7).to_wire(), ("127.0.0.1", 5300), "udp", lambda wire: None)
    hit = server.fast_answer(packet, True, reactor.seconds())
    assert hit is not None
    sent: list[bytes] = []
    server.table.clear()
    server.answer(packet, ("127.0.0.1", 5300), "udp", sent.append)
    assert hit[0] == sent[0]
    assert dns.message.from_wire(hit[0]).question[0].name.to_text() == name


@pytest_twisted.ensureDeferred
async def test_a_rewritten_query_is_never_served_another_questions_answer(serve):
    """The rewritten name, its target and another name rewritten to the same target each get their own question back."""
    server = await serve()
    names = ["frontend.example.com.", "frontend.default.svc.cluster.local.", "frontend.legacy.corp."]
    for _ in range(2):
        for name in names:
            response = await server.query(name, "A")
            assert response.question[0].name.to_text() == name
            assert [rrset.name.to_text() for rrset in response.answer] == [name]
            assert addresses(response) == [FRONTEND_IP]
    assert all(table_has(server, name) for name in names)


@pytest_twisted.ensureDeferred
async def test_a_rewritten_answer_changes_with_the_service(serve, tmp_path):
    """The rewritten name's rendered answer depends on the Service it was made from: editing it drops the answer."""
    server = await serve()
    assert addresses(await server.query("frontend.example.com.", "A")) == [FRONTEND_IP]
    assert table_has(server, "frontend.example.com.")
    (tmp_path / "cluster" / "cluster.yaml").write_text(CLUSTER.replace(FRONTEND_IP, "10.96.7.8"))
    await store_settles(server.store, lambda store: store.service("default", "frontend").cluster_ips == ("10.96.7.8",))
    assert addresses(await server.query("frontend.example.com.", "A")) == ["10.96.7.8"]


@pytest_twisted.ensureDeferred
async def test_a_name_no_rule_touches_answers_as_before(serve):
    """A cluster name that no rule rewrites answers as the kubernetes directive alone would, from the table the second time."""
    server = await serve()
    for _ in range(2):
        response = await server.query("frontend.default.svc.cluster.local.", "A")
        assert addresses(response) == [FRONTEND_IP]
        assert response.flags & dns.flags.AA


@pytest.mark.parametrize("name, rdtype, expected", [
    ("ip-10-1-2-3.example.", "A", ["10.1.2.3"]),
    ("3.2.1.10.in-addr.arpa.", "PTR", ["ip-10-1-2-3.example."]),
])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_the_template_a_and_ptr_pair(serve, proto, name, rdtype, expected):
    """The README's template pair: ip-10-1-2-3.example is 10.1.2.3 and back, authoritative, the second time from the table."""
    server = await serve()
    for _ in range(2):
        response = await server.query(name, rdtype, proto)
        assert response.flags & dns.flags.AA
        assert rdata_texts(response, rdtype) == expected
    assert table_has(server, name, rdtype)


@pytest_twisted.ensureDeferred
async def test_template_matches_served_from_the_table_are_counted(serve):
    """coredns_template_matches_total counts the answers the table serves for the template as well."""
    server = await serve()
    for _ in range(3):
        await server.query("ip-10-1-2-3.example.", "A")
    server.dns.report_reuses()
    labels = {"server": "dns://127.0.0.1:%d" % server.port, "zone": "example.", "view": "", "class": "IN", "type": "A"}
    assert server.app.registry.get_sample_value("coredns_template_matches_total", labels) == 3


@pytest_twisted.ensureDeferred
async def test_aks_search_path_completions_get_nxdomain(serve):
    """AKS's template: a Pod's search-path completion under internal.cloudapp.net is NXDOMAIN at once."""
    server = await serve()
    response = await server.query("frontend.default.svc.cluster.local.internal.cloudapp.net.", "AAAA")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert not response.answer


@pytest_twisted.ensureDeferred
async def test_an_edns_client_gets_its_own_rendering_of_a_rewritten_answer(serve):
    """EDNS and plain clients of one rewritten name get answers rendered for their EDNS state."""
    server = await serve()
    plain = await server.query("frontend.example.com.", "A", use_edns=False)
    edns = await server.query("frontend.example.com.", "A", use_edns=0)
    assert plain.edns == -1 and edns.edns == 0
    assert table_has(server, "frontend.example.com.", edns=False) and table_has(server, "frontend.example.com.", edns=True)


#: AKS's default Corefile, its cluster-zone and ops parts kept (forwarding
#: left out: no upstream here), with a ConfigMap key mounted as
#: custom/test.override: the "Rewrite DNS" customization of AKS's docs.
AKS_COREFILE = textwrap.dedent(r"""
    .:0 {
        bind 127.0.0.1
        errors
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            manifests cluster
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        cache 30
        loadbalance
        import custom/*.override
        template ANY ANY internal.cloudapp.net {
            match "^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$"
            rcode NXDOMAIN
            fallthrough
        }
        template ANY ANY reddog.microsoft.com {
            rcode NXDOMAIN
        }
    }
    """)
AKS_OVERRIDE = textwrap.dedent(r"""
    rewrite stop {
        name regex (.*)\.contoso\.com\.$ {1}.default.svc.cluster.local
        answer name (.*)\.default\.svc\.cluster\.local\.$ {1}.contoso.com
    }
    """)


@pytest.fixture
def aks(dns_server, tmp_path):
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "custom").mkdir()
    (tmp_path / "custom" / "test.override").write_text(AKS_OVERRIDE)

    async def start():
        return await dns_server(AKS_COREFILE)

    return start


@pytest.mark.parametrize("name, rcode, answer", [
    ("frontend.contoso.com.", dns.rcode.NOERROR, [FRONTEND_IP]),
    ("frontend.default.svc.cluster.local.", dns.rcode.NOERROR, [FRONTEND_IP]),
    ("frontend.default.svc.cluster.local.internal.cloudapp.net.", dns.rcode.NXDOMAIN, []),
    ("anything.reddog.microsoft.com.", dns.rcode.NXDOMAIN, []),
])
@pytest_twisted.ensureDeferred
async def test_akss_corefile_with_an_imported_rewrite(aks, name, rcode, answer):
    """AKS's default Corefile and its documented rewrite override answer as on AKS, twice (the second from the table)."""
    server = await aks()
    for _ in range(2):
        response = await server.query(name, "A")
        assert response.rcode() == rcode
        assert response.question[0].name.to_text() == name
        assert addresses(response) == answer
        assert all(rrset.name.to_text() == name for rrset in response.answer)
