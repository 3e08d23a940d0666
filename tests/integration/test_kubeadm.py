"""kubeadm's default Corefile, unchanged, in both its forms, run as a Pod would run it.

The Corefile fixes its ports (DNS 53, health 8080, ready 8181, metrics
9153), reads the API server from the Pod's service account and forwards to
the nameservers of /etc/resolv.conf: each test runs it in a `Sandbox`
(tests/integration/sandbox.py), a network and mount namespace of its own.
"""

from __future__ import annotations

import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.integration.live import poll_until, scrape
from tests.integration.sandbox import OUTSIDE_ADDRESS, OUTSIDE_NAME, sandbox  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

KUBEADM_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
#: The current kubeadm form: cluster names are never cached.
KUBEADM_COREFILE_CURRENT = KUBEADM_COREFILE.replace(
    "    cache 30\n",
    "    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n",
)

def addresses(response) -> list[str]:
    return sorted(rdata.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for rdata in rrset)


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("corefile", [KUBEADM_COREFILE, KUBEADM_COREFILE_CURRENT], ids=["cache-30", "cache-30-disable-cluster"])
@pytest_twisted.inlineCallbacks
def test_the_kubeadm_corefile_answers_cluster_and_outside_names(sandbox, corefile):
    """Unchanged, it becomes ready on :8181 and answers a Service, its PTR and an outside name, with health on :8080 and metrics on :9153."""
    box = sandbox()
    child = box.run(corefile)
    ready = yield poll_until(reactor, lambda: box.get("http://127.0.0.1:8181/ready"),
                             lambda result: isinstance(result, tuple) and result[0] == 200, timeout=30)
    assert ready == (200, "OK")
    cluster_ip = box.api.cluster.get("services", "default", "web")["spec"]["clusterIP"]

    web = yield box.ask("web.default.svc.cluster.local.")
    assert web.rcode() == dns.rcode.NOERROR and addresses(web) == [cluster_ip], child.log
    reverse = yield box.ask(dns.reversename.from_address(cluster_ip).to_text(), "PTR")
    assert [rdata.target.to_text() for rrset in reverse.answer for rdata in rrset] == ["web.default.svc.cluster.local."]
    outside = yield box.ask(OUTSIDE_NAME)
    assert outside.rcode() == dns.rcode.NOERROR and addresses(outside) == [OUTSIDE_ADDRESS], child.log

    health = yield box.get("http://127.0.0.1:8080/health")
    assert health == (200, "OK")
    scraped = yield box.within(scrape, reactor, "http://127.0.0.1:9153/metrics")
    # The loop plugin's HINFO probe counts too, under type "other".
    assert scraped.value("coredns_dns_requests_total", server="dns://:53", zone=".", type="A") == 2
    assert scraped.value("coredns_dns_requests_total", server="dns://:53", zone=".", type="PTR") == 1
    assert scraped.value("coredns_forward_max_concurrent_rejects_total") == 0


@pytest_twisted.inlineCallbacks
def test_a_forward_to_itself_stops_with_the_loop_plugins_message(sandbox):
    """With resolv.conf naming 127.0.0.1 (itself), the kubeadm Corefile exits 1 with CoreDNS's loop message."""
    box = sandbox(nameserver="127.0.0.1")
    child = box.run(KUBEADM_COREFILE)
    line = yield child.wait_for(
        r'^\[FATAL\] plugin/loop: Loop \(127\.0\.0\.1:\d+ -> :53\) detected for zone "\.", '
        r'see https://coredns\.io/plugins/loop#troubleshooting\. Query: "HINFO \d+\.\d+\."$',
        timeout=30,
    )
    assert line
    code = yield child.ended
    assert code == 1


@pytest_twisted.inlineCallbacks
def test_the_loop_probe_goes_to_the_blocks_own_bind_address(sandbox):
    """A block bound to 127.0.0.4 and 127.0.0.5 only (not 127.0.0.1) still finds its own loop: the probe goes to the first bind address, as CoreDNS's ListenHosts[0]."""
    box = sandbox()
    child = box.run(".:53 {\n    bind 127.0.0.4 127.0.0.5\n    loop\n    forward . 127.0.0.4\n}\n")
    yield child.wait_for(
        r'^\[FATAL\] plugin/loop: Loop \([\d.]+:\d+ -> 127\.0\.0\.4:53\) detected for zone "\.", ',
        timeout=30,
    )
    code = yield child.ended
    assert code == 1
