"""autopath over real sockets: Pods in two namespaces, at 127.0.0.2 and 127.0.0.3, asking the same question.

The answer to a question below ``alpha.svc.cluster.local`` depends on
whether the client is a Pod of alpha; the table of rendered answers must
never hand one client's answer to the other, whichever asks first, and
each keeps being served from the table.
"""

from __future__ import annotations

import textwrap

import dns.message
import dns.query
import dns.rcode
import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from tests.integration.dnsserver import TIMEOUT, addresses, rdata_texts

ALPHA, BETA = "127.0.0.2", "127.0.0.3"
QUESTION = "api.shared.alpha.svc.cluster.local."
OUTSIDE = "www.example.com.alpha.svc.cluster.local."

CLUSTER = textwrap.dedent("""\
    apiVersion: v1
    kind: List
    items:
    - {apiVersion: v1, kind: Namespace, metadata: {name: alpha}}
    - {apiVersion: v1, kind: Namespace, metadata: {name: beta}}
    - {apiVersion: v1, kind: Namespace, metadata: {name: shared}}
    - apiVersion: v1
      kind: Service
      metadata: {name: api, namespace: shared}
      spec:
        clusterIP: 10.96.7.7
        ports: [{name: http, port: 80}]
    - apiVersion: v1
      kind: Pod
      metadata: {name: client-a, namespace: alpha}
      status: {phase: Running, podIP: 127.0.0.2}
    - apiVersion: v1
      kind: Pod
      metadata: {name: client-b, namespace: beta}
      status: {phase: Running, podIP: 127.0.0.3}
    """)


@pytest.fixture
def serve(dns_server, tmp_path):
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "cluster.yaml").write_text(CLUSTER)

    async def start():
        return await dns_server(textwrap.dedent("""\
            .:0 {
                bind 127.0.0.1
                autopath @kubernetes
                hosts {
                    192.0.2.80 www.example.com
                    fallthrough
                }
                kubernetes cluster.local {
                    manifests cluster
                    pods verified
                }
                prometheus 127.0.0.1:0
            }
            """))

    return start


def ask_from(server, source: str, qname: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype)
    return dns.query.udp(query, "127.0.0.1", port=server.port, source=source, timeout=TIMEOUT)


async def ask(server, source, qname, rdtype="A"):
    return await threads.deferToThread(ask_from, server, source, qname, rdtype)


def reused_for(server, source: str, qname: str) -> bool:
    wire = dns.message.make_query(qname, "A").to_wire()
    return server.dns.fast_answer(wire, True, reactor.seconds(), source) is not None


def check_alpha(response):
    assert rdata_texts(response, "CNAME") == ["api.shared.svc.cluster.local."]
    assert addresses(response) == ["10.96.7.7"]


def check_beta(response):
    assert response.rcode() == dns.rcode.NXDOMAIN and not response.answer


@pytest.mark.parametrize("first", [ALPHA, BETA])
@pytest_twisted.ensureDeferred
async def test_two_namespaces_never_get_each_others_answer(serve, first):
    """The Pod of alpha gets the CNAME to api.shared; the Pod of beta NXDOMAIN; in either order, repeatedly."""
    server = await serve()
    order = [first, BETA if first == ALPHA else ALPHA] * 3
    for source in order:
        response = await ask(server, source, QUESTION)
        (check_alpha if source == ALPHA else check_beta)(response)
    assert reused_for(server, ALPHA, QUESTION) and reused_for(server, BETA, QUESTION)


@pytest_twisted.ensureDeferred
async def test_outside_name_is_one_query_instead_of_the_search_path(serve):
    """www.example.com asked as its first search-path expansion is answered at once: CNAME to www.example.com."""
    server = await serve()
    response = await ask(server, ALPHA, OUTSIDE)
    assert rdata_texts(response, "CNAME") == ["www.example.com."]
    assert addresses(response) == ["192.0.2.80"]


@pytest_twisted.ensureDeferred
async def test_autopath_answers_count_even_when_reused(serve):
    """coredns_autopath_success_total counts every answer autopath found, from the table too."""
    server = await serve()
    for _ in range(3):
        await ask(server, ALPHA, QUESTION)
    server.dns.report_reuses()
    assert server.app.registry.get_sample_value("coredns_autopath_success_total", {"server": f"dns://127.0.0.1:{server.port}"}) == 3
