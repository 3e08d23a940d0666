"""The server's own CoreDNS metrics: coredns_panics_total.

CoreDNS counts a recovered panic in core/dnsserver/server.go (ServeDNS,
`vars.Panic.Inc()` in the deferred recover, line 306 of the mirrored tree),
answers SERVFAIL and logs it; the counter is `coredns_panics_total`, with no
labels (plugin/metrics/vars/vars.go, `Panic`). A plugin's deliberate error
(forward's "no upstream answered") is not a panic there: it goes to the
`errors` plugin only.
"""

from __future__ import annotations

import dns.message
import dns.rcode
from prometheus_client import CollectorRegistry
from twisted.internet import task

from discovery.dns.forward import ForwardError
from discovery.dns.server import BlockRuntime, DNSServer, _UDPProtocol
from discovery.ops.metrics import DNSMetrics

CLIENT = ("192.0.2.7", 5353)


class Raising:
    """A plugin that fails every query with the exception it was given."""

    name = "raising"

    def __init__(self, error: Exception):
        self.error = error

    def serve(self, request, next):
        raise self.error


def ask_once(plugin) -> tuple[dns.message.Message, CollectorRegistry]:
    registry = CollectorRegistry()
    clock = task.Clock()
    block = BlockRuntime(zones=(".",), server="dns://:53", plugins=[plugin], error_log=lambda request, failure: None)
    server = DNSServer(clock, [block], port=0, metrics=DNSMetrics(registry))
    protocol = _UDPProtocol(server)
    sent: list[bytes] = []
    protocol.sendto = lambda wire, addr: sent.append(wire)
    protocol.datagramReceived(dns.message.make_query("www.example.test.", "A").to_wire(), CLIENT)
    return dns.message.from_wire(sent[-1]), registry


def test_an_unexpected_exception_counts_one_panic():
    """A bug while answering is SERVFAIL and moves coredns_panics_total by one, with no labels."""
    response, registry = ask_once(Raising(KeyError("boom")))
    assert response.rcode() == dns.rcode.SERVFAIL
    assert registry.get_sample_value("coredns_panics_total") == 1


def test_a_plugins_deliberate_failure_is_not_a_panic():
    """forward's ForwardError is SERVFAIL for the errors plugin, not a panic."""
    response, registry = ask_once(Raising(ForwardError("127.0.0.1:53: i/o timeout")))
    assert response.rcode() == dns.rcode.SERVFAIL
    assert registry.get_sample_value("coredns_panics_total") == 0
