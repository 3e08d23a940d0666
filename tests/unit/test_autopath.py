"""autopath: CoreDNS's autopath_test.go and setup_test.go, and the kubernetes search path (autopath.go)."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from discovery.cache.objects import Namespace, Pod, Service, ServicePort
from discovery.cache.store import Store
from discovery.config import load_text
from discovery.corefile import CorefileError
from discovery.dns.autopath import (
    AutopathConfig,
    AutopathPlugin,
    first_in_search_path,
    kubernetes_search_path,
    search_from_resolv_conf,
    success_counter,
)
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.request import Request

from .zone_fixture import expected, lines

DEFAULT_A = " 3600 IN A 127.0.0.53"
SOA_DATA = "example.org. example.org. 1502165581 14400 3600 604800 14400"


def request(qname: str, qtype: str = "A", client: str = "10.1.0.1") -> Request:
    query = dns.message.make_query(qname, qtype)
    return Request(
        query=query, qname=query.question[0].name, qtype=dns.rdatatype.from_text(qtype),
        qclass=dns.rdataclass.IN, zone=".", server="dns://:53", proto="udp", client=(client, 5353),
    )


class MapNext:
    """autopath_test.go nextHandler: NXDOMAIN or an A record per name; SERVFAIL for unknown names."""

    def __init__(self, rcodes: dict[str, int], deferred: bool = False):
        self.rcodes = rcodes
        self.deferred = deferred
        self.asked: list[str] = []

    def __call__(self, req: Request):
        name = req.qname.to_text()
        self.asked.append(name)
        response = req.reply()
        rcode = self.rcodes.get(name, dns.rcode.SERVFAIL)
        response.set_rcode(rcode)
        if rcode == dns.rcode.NXDOMAIN:
            response.authority.append(dns.rrset.from_text("example.org.", 1800, "IN", "SOA", SOA_DATA))
        elif rcode == dns.rcode.NOERROR:
            response.answer.append(dns.rrset.from_text(name, 3600, "IN", "A", "127.0.0.53"))
        return succeed(response) if self.deferred else response


def static_plugin(registry=None) -> AutopathPlugin:
    config = AutopathConfig((".",), ("example.org.", "example.com.", "com.", ""))
    return AutopathPlugin(config, "dns://:53", success_counter(registry or CollectorRegistry()))


RCODES = {"b.example.org.": dns.rcode.NXDOMAIN, "b.com.": dns.rcode.NOERROR, "a.example.com.": dns.rcode.NOERROR}


def resolved(result) -> dns.message.Message:
    if isinstance(result, dns.message.Message):
        return result
    found = []
    result.addCallback(found.append)
    return found[0]


@pytest.mark.parametrize("deferred", [False, True], ids=["sync", "deferred"])
def test_search_path_expansion_is_a_cname_before_the_answer(deferred):
    """autopath_test.go: b.example.org walks to b.com; the CNAME sits before b.com's A record."""
    response = resolved(static_plugin().serve(request("b.example.org."), MapNext(RCODES, deferred)))
    assert [rrset.to_text() for rrset in response.answer] == [
        "b.example.org. 3600 IN CNAME b.com.",
        "b.com." + DEFAULT_A,
    ]
    assert response.question[0].name == dns.name.from_text("b.example.org.")


def test_name_outside_the_first_search_element_is_not_expanded():
    """autopath_test.go: a.example.com is not below example.org: answered as asked."""
    following = MapNext(RCODES)
    response = static_plugin().serve(request("a.example.com."), following)
    assert [rrset.to_text() for rrset in response.answer] == ["a.example.com." + DEFAULT_A]
    assert following.asked == ["a.example.com."]


def test_no_answer_anywhere_is_servfail_and_not_reused():
    """autopath_test.go TestAutoPathNoAnswer: every candidate fails; nothing written, so SERVFAIL."""
    req = request("c.example.org.")
    response = static_plugin().serve(req, MapNext(RCODES))
    assert response.rcode() == dns.rcode.SERVFAIL and not req.fastpath.reusable


def test_every_candidate_nxdomain_returns_the_first_reply():
    """autopath.go: when all candidates are NXDOMAIN, the first reply goes back as it was, question restored."""
    rcodes = {name: dns.rcode.NXDOMAIN for name in ("d.example.org.", "d.example.com.", "d.com.", "d.")}
    response = static_plugin().serve(request("d.example.org."), MapNext(rcodes))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.question[0].name == dns.name.from_text("d.example.org.")


def test_success_is_counted():
    """coredns_autopath_success_total{server} counts walks that found an answer."""
    registry = CollectorRegistry()
    plugin = static_plugin(registry)
    plugin.serve(request("b.example.org."), MapNext(RCODES))
    plugin.serve(request("a.example.com."), MapNext(RCODES))
    assert registry.get_sample_value("coredns_autopath_success_total", {"server": "dns://:53"}) == 1


@pytest.mark.parametrize("qname,inside", [
    ("google.com.", False),
    ("default.svc.cluster.local.", True),
    ("a.default.svc.cluster.local.", True),
    ("a.b.svc.cluster.local.", False),
])
def test_in_search_path(qname, inside):
    """autopath_test.go TestInSearchPath: the first element itself or a name below it."""
    assert first_in_search_path(qname, ("default.svc.cluster.local.", "svc.cluster.local.", "cluster.local.")) is inside


RESOLV_CONF = "nameserver 1.2.3.4\ndomain foo.com\nsearch bar.com baz.com\noptions ndots:5\n"


def test_resolv_conf_search_is_the_last_search_line():
    """setup_test.go: `domain foo.com` then `search bar.com baz.com`: bar.com. baz.com."""
    assert search_from_resolv_conf(RESOLV_CONF) == ("bar.com.", "baz.com.")


@pytest.mark.parametrize("args,zones,plugin", [
    ("@kubernetes", (".",), "kubernetes"),
    ("example.org @kubernetes", ("example.org.",), "kubernetes"),
    ("10.0.0.0/8 @kubernetes", ("10.in-addr.arpa.",), "kubernetes"),
])
def test_setup_plugin(args, zones, plugin):
    """setup_test.go: zones (the block's by default, a CIDR as its reverse zone) and `@PLUGIN`."""
    config = load_text(f". {{\n autopath {args}\n}}\n").servers[0].plugin("autopath")
    assert (config.zones, config.plugin, config.search) == (zones, plugin, ())


def test_setup_resolv_conf(tmp_path):
    """setup_test.go: a resolv.conf's search domains, and "" last."""
    (tmp_path / "resolv.conf").write_text(RESOLV_CONF)
    config = load_text(f". {{\n autopath {tmp_path / 'resolv.conf'}\n}}\n").servers[0].plugin("autopath")
    assert config.search == ("bar.com.", "baz.com.", "")


@pytest.mark.parametrize("args", ["kubernetes", "", '""'])
def test_setup_errors(args):
    """setup_test.go negatives: a file that cannot be read, no argument."""
    with pytest.raises(CorefileError):
        load_text(f". {{\n autopath {args}\n}}\n")


# --- @kubernetes ----------------------------------------------------------------------------


def test_kubernetes_search_path():
    """kubernetes/autopath.go: <ns>.svc.ZONE, svc.ZONE, ZONE, the host's search domains, ""."""
    assert kubernetes_search_path("cluster.local.", "podns", ("corp.example.",)) == (
        "podns.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "corp.example.", "",
    )


def test_kubernetes_search_path_in_the_root_zone():
    """kubernetes/autopath.go: for zone ".", <ns>.svc., svc., "."."""
    assert kubernetes_search_path(".", "podns", ()) == ("podns.svc.", "svc.", ".", "")


def pod_store() -> Store:
    store = Store(clock=lambda: 1_700_000_000)
    for name in ("testns", "podns", "other"):
        store.put(Namespace(name))
    store.put(Service("testns", "svc1", cluster_ips=("10.0.0.1",), ports=(ServicePort("http", "TCP", 80),)))
    store.put(Pod("podns", "client", ips=("10.240.0.1",), phase="Running"))
    store.put(Pod("other", "elsewhere", ips=("10.240.0.2",), phase="Running"))
    store.put(Pod("podns", "gone", ips=("10.240.0.3",), phase="Succeeded"))
    return store


def kubernetes_plugin(pods: str = "verified", store=None) -> KubernetesPlugin:
    config = load_text(f"cluster.local {{\n kubernetes {{\n  pods {pods}\n }}\n}}\n").servers[0].plugin("kubernetes")
    return KubernetesPlugin(config, store or pod_store(), True, Clock())


@pytest.mark.parametrize("client,search", [
    ("10.240.0.1", ("podns.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "")),
    ("10.240.0.2", ("other.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "")),
    ("10.240.0.3", None),
    ("10.9.9.9", None),
])
def test_search_path_comes_from_the_clients_pod(client, search):
    """The client's Pod (by source address) gives the namespace; no live Pod, no autopath."""
    assert kubernetes_plugin().auto_path(request("x.podns.svc.cluster.local.", client=client)) == search


def test_no_search_path_without_pods_verified():
    """kubernetes/autopath.go: without the Pod cache (`pods verified`) there is no autopath."""
    assert kubernetes_plugin("insecure").auto_path(request("x.podns.svc.cluster.local.", client="10.240.0.1")) is None


def kubernetes_autopath(store=None):
    k8s = kubernetes_plugin(store=store)
    plugin = AutopathPlugin(AutopathConfig(("cluster.local.",), plugin="kubernetes"), "dns://:53",
                            success_counter(CollectorRegistry()))
    plugin.set_chain([plugin, k8s])
    return plugin, k8s


def chain(plugin, k8s):
    def following(req):
        return k8s.serve(req, lambda r: (_ for _ in ()).throw(AssertionError(f"{r.qname} left the zone")))

    return following


def test_pod_lookup_of_a_service_in_another_namespace_is_one_cname():
    """A Pod of podns asking svc1.testns.podns.svc.cluster.local gets a CNAME to svc1.testns.svc.cluster.local and its A."""
    plugin, k8s = kubernetes_autopath()
    req = request("svc1.testns.podns.svc.cluster.local.", client="10.240.0.1")
    response = plugin.serve(req, chain(plugin, k8s))
    assert lines(response.answer) == expected(
        "svc1.testns.podns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.\n"
        "svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"
    )
    assert req.fastpath.reusable and req.fastpath.vary is not None


def test_same_question_from_a_pod_of_another_namespace_is_nxdomain():
    """Not its search path: a Pod of `other` gets the plain answer, NXDOMAIN."""
    plugin, k8s = kubernetes_autopath()
    response = plugin.serve(request("svc1.testns.podns.svc.cluster.local.", client="10.240.0.2"), chain(plugin, k8s))
    assert response.rcode() == dns.rcode.NXDOMAIN


def test_answers_vary_by_whether_the_client_is_a_pod_of_the_questions_namespace():
    """The reuse class: 1 for Pods of the namespace the question names, 0 for anyone else."""
    plugin, k8s = kubernetes_autopath()
    classify = k8s.autopath_vary("svc1.testns.podns.svc.cluster.local.")
    assert [classify(ip) for ip in ("10.240.0.1", "10.240.0.2", "10.9.9.9")] == [b"\x01", b"\x00", b"\x00"]
    assert k8s.autopath_vary("svc.cluster.local.") is None
    assert k8s.autopath_vary("example.com.") is None


def test_the_walk_depends_on_every_candidate_it_read():
    """The NXDOMAIN candidates' dependencies stay: a Service created there drops the rendered answer."""
    plugin, k8s = kubernetes_autopath()
    req = request("svc1.testns.podns.svc.cluster.local.", client="10.240.0.1")
    plugin.serve(req, chain(plugin, k8s))
    tokens = {token for _, token in req.fastpath.dependencies}
    assert ("namespace", "podns") in tokens and ("namespace", "testns") in tokens
