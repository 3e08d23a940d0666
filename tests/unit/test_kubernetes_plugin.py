"""The `kubernetes` plugin in a server block's chain: routing, fallthrough, sync state, CNAME chase."""

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from discovery.cache.objects import Namespace, Service
from discovery.config import load_text
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.table import invalidation_tokens, store_key
from discovery.dns.request import ANY_CHANGE, Request
from discovery.dns.zone import change_dependencies

from .zone_fixture import cluster, expected, lines

SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5"


def kubernetes_config(*lines_):
    body = "\n".join(f"        {line}" for line in lines_)
    corefile = f"cluster.local in-addr.arpa {{\n    kubernetes {{\n{body}\n    }}\n}}\n"
    return load_text(corefile).servers[0].plugin("kubernetes")


def request(qname, qtype="A", lookup=None):
    query = dns.message.make_query(qname, qtype)
    return Request(
        query=query,
        qname=query.question[0].name,
        qtype=dns.rdatatype.from_text(qtype),
        qclass=dns.rdataclass.IN,
        zone=".",
        server="dns://:53",
        proto="udp",
        client=("10.1.0.1", 5353),
        lookup=lookup,
    )


class FakeNext:
    """The rest of the chain: remembers what reached it and answers with a marker."""

    def __init__(self):
        self.requests = []
        self.response = dns.message.Message()

    def __call__(self, req):
        self.requests.append(req)
        return self.response


class FakeLookup:
    """The server's internal resolution: records questions, answers with a Deferred the test fires."""

    def __init__(self):
        self.questions = []
        self.pending = Deferred()

    def __call__(self, name, rdtype):
        self.questions.append((name, rdtype))
        return self.pending


def upstream_answer(*records, truncated=False):
    """The server's answer for the ExternalName target, from zone-file lines."""
    flags = "QR RD RA TC" if truncated else "QR RD RA"
    text = f"id 1\nflags {flags}\n;QUESTION\next.interwebs.test. IN A\n;ANSWER\n" + "\n".join(records)
    return dns.message.from_text(text)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store():
    return cluster()


@pytest.fixture
def plugin(store, clock):
    return KubernetesPlugin(kubernetes_config(), store, True, clock)


def fired(deferred):
    """The result of a Deferred that must already have fired."""
    results = []
    deferred.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def test_name_outside_the_zones_goes_to_the_next_plugin(plugin):
    """A question for another zone is passed on untouched."""
    nxt = FakeNext()
    req = request("example.org.")
    assert plugin.serve(req, nxt) is nxt.response
    assert nxt.requests == [req]
    assert req.plugin == ""


def test_answer_is_authoritative_with_the_zone_records(plugin):
    """A name in the zone gets an authoritative reply holding the zone's answer."""
    req = request("svc1.testns.svc.cluster.local.")
    response = plugin.serve(req, FakeNext())
    assert response.flags & dns.flags.AA
    assert response.id == req.query.id
    assert response.rcode() == dns.rcode.NOERROR
    assert lines(response.answer) == expected("svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1")
    assert req.plugin == "kubernetes"


def test_negative_answer_carries_the_soa(plugin):
    """NXDOMAIN comes with the zone's SOA in the authority section."""
    response = plugin.serve(request("svc0.testns.svc.cluster.local."), FakeNext())
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert lines(response.authority) == expected(SOA)


def test_question_keeps_the_clients_case(plugin):
    """The reply's question and owner names are the client's own spelling."""
    response = plugin.serve(request("SvC1.TeStNs.SvC.cLuStEr.LoCaL."), FakeNext())
    assert response.question[0].name.to_text() == "SvC1.TeStNs.SvC.cLuStEr.LoCaL."
    assert lines(response.answer) == expected("SvC1.TeStNs.SvC.cLuStEr.LoCaL. 5 IN A 10.0.0.1")


def test_zone_transfer_is_refused_without_authority(plugin):
    """AXFR is REFUSED, as CoreDNS's kubernetes plugin leaves transfers to the transfer plugin."""
    response = plugin.serve(request("cluster.local.", "AXFR"), FakeNext())
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA


def test_nxdomain_in_a_fallthrough_zone_goes_to_the_next_plugin(store, clock):
    """With `fallthrough`, a name the zone does not have is someone else's."""
    plugin = KubernetesPlugin(kubernetes_config("fallthrough"), store, True, clock)
    nxt = FakeNext()
    assert plugin.serve(request("svc0.testns.svc.cluster.local."), nxt) is nxt.response


def test_nodata_is_answered_even_with_fallthrough(store, clock):
    """Only NXDOMAIN falls through: a name that exists with another type is answered."""
    plugin = KubernetesPlugin(kubernetes_config("fallthrough"), store, True, clock)
    nxt = FakeNext()
    response = plugin.serve(request("svc1.testns.svc.cluster.local.", "AAAA"), nxt)
    assert nxt.requests == []
    assert response.rcode() == dns.rcode.NOERROR


def test_fallthrough_is_limited_to_its_zones(store, clock):
    """`fallthrough in-addr.arpa` passes reverse misses on and answers NXDOMAIN for the rest."""
    plugin = KubernetesPlugin(kubernetes_config("fallthrough in-addr.arpa"), store, True, clock)
    nxt = FakeNext()
    assert plugin.serve(request("99.0.0.10.in-addr.arpa.", "PTR"), nxt) is nxt.response
    response = plugin.serve(request("svc0.testns.svc.cluster.local."), nxt)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert len(nxt.requests) == 1


def test_before_sync_every_zone_name_is_servfail(store, clock):
    """Within startup_timeout of an unsynced cache, even existing names get SERVFAIL."""
    plugin = KubernetesPlugin(kubernetes_config("startup_timeout 10s"), store, Deferred(), clock)
    clock.advance(9)
    req = request("svc1.testns.svc.cluster.local.")
    response = plugin.serve(req, FakeNext())
    assert response.rcode() == dns.rcode.SERVFAIL
    assert lines(response.answer) == []
    assert lines(response.authority) == expected(SOA)
    assert not req.fastpath.reusable


def test_after_startup_timeout_unsynced_cache_serves_what_it_has(store, clock):
    """Past startup_timeout an unsynced cache answers what it holds, not for reuse."""
    plugin = KubernetesPlugin(kubernetes_config("startup_timeout 10s"), store, Deferred(), clock)
    clock.advance(10)
    req = request("svc1.testns.svc.cluster.local.")
    response = plugin.serve(req, FakeNext())
    assert lines(response.answer) == expected("svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1")
    assert not req.fastpath.reusable


def test_after_startup_timeout_unsynced_cache_turns_nxdomain_into_servfail(store, clock):
    """A name an unsynced cache does not hold may yet come: SERVFAIL, as CoreDNS answers."""
    plugin = KubernetesPlugin(kubernetes_config("startup_timeout 10s"), store, Deferred(), clock)
    clock.advance(10)
    response = plugin.serve(request("svc0.testns.svc.cluster.local."), FakeNext())
    assert response.rcode() == dns.rcode.SERVFAIL
    assert lines(response.authority) == expected(SOA)


def test_sync_deferred_firing_ends_the_servfails(store, clock):
    """Once the source's sync Deferred fires, NXDOMAIN is NXDOMAIN again."""
    synced = Deferred()
    plugin = KubernetesPlugin(kubernetes_config(), store, synced, clock)
    synced.callback(None)
    response = plugin.serve(request("svc0.testns.svc.cluster.local."), FakeNext())
    assert response.rcode() == dns.rcode.NXDOMAIN


def test_sync_deferred_result_passes_through(store, clock):
    """The plugin observes the sync Deferred without taking its result from later callbacks."""
    synced = Deferred()
    KubernetesPlugin(kubernetes_config(), store, synced, clock)
    synced.callback("synced")
    assert fired(synced) == "synced"


def test_sync_state_may_be_a_function(store, clock):
    """A callable sync flag is asked at every question."""
    state = {"synced": False}
    plugin = KubernetesPlugin(kubernetes_config(), store, lambda: state["synced"], clock)
    assert plugin.serve(request("svc1.testns.svc.cluster.local."), FakeNext()).rcode() == dns.rcode.SERVFAIL
    state["synced"] = True
    assert plugin.serve(request("svc1.testns.svc.cluster.local."), FakeNext()).rcode() == dns.rcode.NOERROR


def test_fastpath_depends_on_the_answers_store_facts(plugin, store):
    """The dependencies go to the fast path as (store key, token)."""
    req = request("svc1.testns.svc.cluster.local.")
    plugin.serve(req, FakeNext())
    assert req.fastpath.reusable
    assert req.fastpath.dependencies == {
        (store_key(store), ("namespace", "testns")),
        (store_key(store), ("service", "testns", "svc1")),
    }


def test_invalidation_tokens_match_the_fastpath_dependencies(plugin, store):
    """A change to a Service yields a token its answers depend on, and ANY_CHANGE."""
    req = request("svc1.testns.svc.cluster.local.")
    plugin.serve(req, FakeNext())
    change = store.put(Service("testns", "svc1", cluster_ips=("10.0.0.99",)))
    tokens = invalidation_tokens(store, change)
    assert tokens & req.fastpath.dependencies
    assert (store_key(store), ANY_CHANGE) in tokens
    assert {token for _, token in tokens} == change_dependencies(change) | {ANY_CHANGE}


def test_change_in_another_namespace_leaves_the_answer_alone(plugin, store):
    """A change elsewhere shares no token with the answer."""
    req = request("svc1.testns.svc.cluster.local.")
    plugin.serve(req, FakeNext())
    change = store.put(Namespace("elsewhere"))
    assert not invalidation_tokens(store, change) & req.fastpath.dependencies


def test_externalname_target_outside_the_zone_is_resolved_and_appended(plugin, clock):
    """The upstream's records follow the CNAME; the answer expires with their shortest TTL."""
    lookup = FakeLookup()
    clock.advance(100)
    req = request("external.testns.svc.cluster.local.", lookup=lookup)
    result = plugin.serve(req, FakeNext())
    assert lookup.questions == [(dns.name.from_text("ext.interwebs.test."), dns.rdatatype.A)]
    lookup.pending.callback(
        upstream_answer("ext.interwebs.test. 300 IN A 192.0.2.1", "ext.interwebs.test. 300 IN A 192.0.2.2")
    )
    response = fired(result)
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert lines(response.answer) == expected(
        """
        external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test.
        ext.interwebs.test. 300 IN A 192.0.2.1
        ext.interwebs.test. 300 IN A 192.0.2.2
        """
    )
    assert response.flags & dns.flags.AA
    assert req.fastpath.expires == 400
    assert req.plugin == "kubernetes"


def test_externalname_chase_keeps_the_upstreams_truncation(plugin):
    """A truncated upstream answer makes the reply truncated, as in CoreDNS."""
    lookup = FakeLookup()
    result = plugin.serve(request("external.testns.svc.cluster.local.", lookup=lookup), FakeNext())
    lookup.pending.callback(upstream_answer("ext.interwebs.test. 5 IN A 192.0.2.1", truncated=True))
    assert fired(result).flags & dns.flags.TC


def test_externalname_chase_without_upstream_records_is_the_cname_alone(plugin):
    """An empty upstream answer leaves the CNAME, and the answer is not reused."""
    req = request("external.testns.svc.cluster.local.", "AAAA", lookup=lambda name, rdtype: succeed(upstream_answer()))
    response = fired(plugin.serve(req, FakeNext()))
    assert lines(response.answer) == expected("external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test.")
    assert not req.fastpath.reusable


def test_externalname_chase_failure_is_nodata(plugin):
    """When the upstream lookup fails CoreDNS answers nothing: NOERROR, SOA, not reused."""
    req = request(
        "external.testns.svc.cluster.local.", lookup=lambda name, rdtype: fail(RuntimeError("upstream down"))
    )
    response = fired(plugin.serve(req, FakeNext()))
    assert response.rcode() == dns.rcode.NOERROR
    assert lines(response.answer) == []
    assert lines(response.authority) == expected(SOA)
    assert not req.fastpath.reusable


def test_externalname_without_a_lookup_is_the_cname_alone(plugin):
    """Without a way to resolve the target the client gets the CNAME to follow itself."""
    response = plugin.serve(request("external.testns.svc.cluster.local."), FakeNext())
    assert lines(response.answer) == expected("external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test.")


def test_externalname_inside_the_zone_needs_no_lookup(plugin):
    """A CNAME into the zone is answered at once, without the server's help."""
    lookup = FakeLookup()
    response = plugin.serve(request("external-to-service.testns.svc.cluster.local.", lookup=lookup), FakeNext())
    assert lookup.questions == []
    assert lines(response.answer) == expected(
        """
        external-to-service.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.
        svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1
        """
    )


def test_ns_records_use_the_servers_addresses(store, clock):
    """The local addresses given to the plugin make the apex NS records."""
    plugin = KubernetesPlugin(kubernetes_config(), store, True, clock, local_ips=["192.0.2.53"])
    response = plugin.serve(request("cluster.local.", "NS"), FakeNext())
    assert lines(response.answer) == expected("cluster.local. 5 IN NS ns.dns.cluster.local.")
    assert lines(response.additional) == expected("ns.dns.cluster.local. 5 IN A 192.0.2.53")
