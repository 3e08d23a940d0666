"""transfer: CoreDNS's plugin/transfer setup_test.go and transfer_test.go, and kubernetes/xfr_test.go.

The cluster-zone golden transfer is CoreDNS's expectedZone (xfr_test.go)
over the same Services, with one difference that comes from the data, not
the code: CoreDNS's fixture holds hdls1's six addresses in one legacy
Endpoints subset (SRV weight 16), where a real cluster has one
EndpointSlice per address family (four IPv4: weight 25, two IPv6: 50).
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from twisted.internet.task import Clock

from discovery.cache.objects import Endpoint, EndpointPort, EndpointSlice, Namespace, Service, ServicePort
from discovery.cache.store import Store
from discovery.config import load_text
from discovery.corefile import CorefileError
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.request import Request, Stream
from discovery.dns.transfer import BATCH_BYTES, TransferConfig, TransferPlugin
from discovery.dns.zone import ZoneOptions, transfer_records

from .test_kubernetes_plugin import FakeNext

SERIAL = 3
HTTP = (ServicePort("http", "TCP", 80),)
EP_HTTP = (EndpointPort("http", "TCP", 80),)


def xfr_store() -> Store:
    """The Services of CoreDNS's xfr_test.go expectedZone."""
    store = Store(clock=lambda: SERIAL)
    for name in ("testns", "kube-system"):
        store.put(Namespace(name))
    for obj in (
        Service("testns", "svc1", cluster_ips=("10.0.0.1",), ports=HTTP),
        Service("testns", "svcempty", cluster_ips=("10.0.0.1",), ports=HTTP),
        Service("testns", "svc6", cluster_ips=("1234:abcd::1",), ports=HTTP),
        Service("testns", "svc-dual-stack", cluster_ips=("10.0.0.3", "10::3"), ports=HTTP),
        Service("testns", "hdls1", headless=True, ports=HTTP),
        EndpointSlice("testns", "hdls1-v4", "hdls1", "IPv4", (
            Endpoint(("172.0.0.2",)), Endpoint(("172.0.0.3",)),
            Endpoint(("172.0.0.4",), hostname="dup-name"), Endpoint(("172.0.0.5",), hostname="dup-name"),
        ), EP_HTTP),
        EndpointSlice("testns", "hdls1-v6", "hdls1", "IPv6", (
            Endpoint(("5678:abcd::1",)), Endpoint(("5678:abcd::2",)),
        ), EP_HTTP),
        Service("testns", "hdlsprtls", headless=True),
        EndpointSlice("testns", "hdlsprtls-a", "hdlsprtls", "IPv4", (Endpoint(("172.0.0.20",)),), ()),
        Service("kube-system", "kubedns", cluster_ips=("10.0.0.10",), ports=(ServicePort("dns", "UDP", 53),)),
        Service("testns", "external", type="ExternalName", external_name="ext.interwebs.test"),
        Service("testns", "external-to-service", type="ExternalName", external_name="svc1.testns.svc.cluster.local"),
        # Not exposed: `namespaces testns kube-system`.
        Service("other", "hidden", cluster_ips=("10.0.9.9",), ports=HTTP),
    ):
        store.put(obj)
    return store


EXPECTED_ZONE = """
cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 3 7200 1800 86400 5
cluster.local. 5 IN NS ns.dns.cluster.local.
ns.dns.cluster.local. 5 IN A 10.0.0.10
external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test.
external-to-service.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2
172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2
_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 172-0-0-2.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3
172-0-0-3.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3
_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 172-0-0-3.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4
dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4
_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 dup-name.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5
dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5
_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 25 80 dup-name.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1
5678-abcd--1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1
_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 50 80 5678-abcd--1.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2
5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2
_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 50 80 5678-abcd--2.hdls1.testns.svc.cluster.local.
hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20
172-0-0-20.hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20
kubedns.kube-system.svc.cluster.local. 5 IN A 10.0.0.10
kubedns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kubedns.kube-system.svc.cluster.local.
_dns._udp.kubedns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kubedns.kube-system.svc.cluster.local.
svc-dual-stack.testns.svc.cluster.local. 5 IN A 10.0.0.3
svc-dual-stack.testns.svc.cluster.local. 5 IN AAAA 10::3
svc-dual-stack.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc-dual-stack.testns.svc.cluster.local.
_http._tcp.svc-dual-stack.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc-dual-stack.testns.svc.cluster.local.
svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1
svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.
_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.
svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1
svc6.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc6.testns.svc.cluster.local.
_http._tcp.svc6.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc6.testns.svc.cluster.local.
svcempty.testns.svc.cluster.local. 5 IN A 10.0.0.1
svcempty.testns.svc.cluster.local. 5 IN SRV 0 100 80 svcempty.testns.svc.cluster.local.
_http._tcp.svcempty.testns.svc.cluster.local. 5 IN SRV 0 100 80 svcempty.testns.svc.cluster.local.
cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 3 7200 1800 86400 5
"""


def kubernetes_config(local=""):
    text = "cluster.local {\n kubernetes cluster.local {\n  namespaces testns kube-system\n }\n}\n"
    return load_text(text).servers[0].plugin("kubernetes")


def zone_options(local_ips=("10.0.0.10",)) -> ZoneOptions:
    return ZoneOptions.from_config(kubernetes_config(), local_ips)


def texts(rrsets) -> list[str]:
    """One line per record, in order (each RRset of a transfer holds one record)."""
    return [line for rrset in rrsets for line in rrset.to_text().splitlines()]


def zone_lines(text: str) -> list[str]:
    found = []
    for line in text.strip().splitlines():
        owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
        found.extend(dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata).to_text().splitlines())
    return found


def test_kubernetes_axfr_is_coredns_expected_zone_in_order():
    """xfr_test.go TestKubernetesAXFR: SOA, NS, glue, Services by name, SOA, record for record."""
    records = transfer_records(xfr_store(), zone_options(), "cluster.local.")
    assert texts(records) == zone_lines(EXPECTED_ZONE)


def test_kubernetes_axfr_with_two_local_addresses_has_one_ns_and_both_glue_records():
    """xfr_test.go TestKubernetesAXFRMultipleNSAddrs: the NS name once, an A and an AAAA for it."""
    records = list(transfer_records(xfr_store(), zone_options(("10.0.0.10", "fd00::10")), "cluster.local."))
    assert records[0].rdtype == dns.rdatatype.SOA and records[-1].rdtype == dns.rdatatype.SOA
    assert sum(r.rdtype == dns.rdatatype.NS for r in records) == 1
    glue = [(r.rdtype, r[0].address) for r in records if r.name == dns.name.from_text("ns.dns.cluster.local.")]
    assert glue == [(dns.rdatatype.A, "10.0.0.10"), (dns.rdatatype.AAAA, "fd00::10")]


@pytest.fixture
def kubernetes_plugin():
    return KubernetesPlugin(kubernetes_config(), xfr_store(), True, Clock(), local_ips=("10.0.0.10",))


def test_kubernetes_is_not_authoritative_for_another_zone(kubernetes_plugin):
    """xfr_test.go TestKubernetesTransferNonAuthZone: example.com is not ours."""
    assert kubernetes_plugin.transfer("example.com.", 0) is None


def test_kubernetes_ixfr_with_the_current_serial_is_the_soa_alone(kubernetes_plugin):
    """xfr_test.go TestKubernetesIXFRCurrent: one record, the SOA."""
    records = list(kubernetes_plugin.transfer("cluster.local.", SERIAL))
    assert [r.rdtype for r in records] == [dns.rdatatype.SOA]


def test_kubernetes_ixfr_with_another_serial_falls_back_to_axfr(kubernetes_plugin):
    """xfr_test.go TestKubernetesIXFRFallback: the whole zone."""
    assert texts(kubernetes_plugin.transfer("cluster.local.", 1)) == zone_lines(EXPECTED_ZONE)


# --- the transfer plugin -----------------------------------------------------------------------


def request(qname="cluster.local.", qtype="AXFR", proto="tcp", client="10.1.0.1", serial=None):
    query = dns.message.make_query(qname, qtype)
    if serial is not None:
        soa = dns.rrset.from_text(qname, 0, "IN", "SOA", f". . {serial} 0 0 0 0")
        query.authority.append(soa)
    return Request(
        query=query, qname=query.question[0].name, qtype=dns.rdatatype.from_text(qtype),
        qclass=dns.rdataclass.IN, zone=".", server="dns://:53", proto=proto, client=(client, 5353),
    )


def transfer_plugin(kubernetes_plugin, to=("*",), zones=("cluster.local.",)) -> TransferPlugin:
    plugin = TransferPlugin((TransferConfig(zones, to),))
    plugin.set_chain([plugin, kubernetes_plugin])
    return plugin


def messages(result) -> list[dns.message.Message]:
    """The messages of a Stream, without the pauses between them."""
    assert isinstance(result, Stream)
    return [message for message in result.messages if message is not None]


def test_other_types_go_to_the_next_plugin(kubernetes_plugin):
    """transfer_test.go TestTransferNotAXFRorIXFR: an A question is not ours."""
    following = FakeNext()
    assert transfer_plugin(kubernetes_plugin).serve(request(qtype="A"), following) is following.response


def test_names_outside_the_transfer_zones_go_to_the_next_plugin(kubernetes_plugin):
    """transfer_test.go TestTransferNonZone: a zone no `transfer` lists is passed on."""
    following = FakeNext()
    assert transfer_plugin(kubernetes_plugin).serve(request("example.org."), following) is following.response


def test_transfer_over_udp_is_refused(kubernetes_plugin):
    """transfer.go: a transfer is TCP only; over UDP, REFUSED."""
    response = transfer_plugin(kubernetes_plugin).serve(request(proto="udp"), FakeNext())
    assert response.rcode() == dns.rcode.REFUSED


def test_transfer_to_an_unlisted_address_is_refused(kubernetes_plugin):
    """transfer_test.go TestTransferNotAllowed: a client not in `to` gets REFUSED."""
    response = transfer_plugin(kubernetes_plugin, to=("10.9.9.9",)).serve(request(client="10.1.0.1"), FakeNext())
    assert response.rcode() == dns.rcode.REFUSED


def test_transfer_to_a_listed_address_streams_the_zone(kubernetes_plugin):
    """The zone in AA messages carrying the question, SOA first and last."""
    (message,) = messages(transfer_plugin(kubernetes_plugin, to=("10.1.0.1",)).serve(request(), FakeNext()))
    assert message.flags & dns.flags.AA
    assert message.question[0].name == dns.name.from_text("cluster.local.")
    assert texts(message.answer) == zone_lines(EXPECTED_ZONE)


def test_ixfr_with_the_current_serial_is_one_plain_soa_message(kubernetes_plugin):
    """transfer_test.go TestTransferIXFRCurrent: the SOA alone, in one reply."""
    (message,) = messages(transfer_plugin(kubernetes_plugin).serve(request(qtype="IXFR", serial=SERIAL), FakeNext()))
    assert [rrset.rdtype for rrset in message.answer] == [dns.rdatatype.SOA]


def test_ixfr_with_an_older_serial_is_answered_as_axfr(kubernetes_plugin):
    """transfer_test.go TestTransferIXFRFallback: the whole zone."""
    (message,) = messages(transfer_plugin(kubernetes_plugin).serve(request(qtype="IXFR", serial=1), FakeNext()))
    assert texts(message.answer) == zone_lines(EXPECTED_ZONE)


def test_ixfr_without_a_soa_is_servfail(kubernetes_plugin):
    """transfer.go: an IXFR must carry exactly one SOA in its authority section."""
    response = transfer_plugin(kubernetes_plugin).serve(request(qtype="IXFR"), FakeNext())
    assert response.rcode() == dns.rcode.SERVFAIL


def test_zone_match_is_case_insensitive(kubernetes_plugin):
    """transfer_test.go TestAXFRZoneMatchCaseInsensitive: CLUSTER.local is our zone."""
    assert messages(transfer_plugin(kubernetes_plugin).serve(request("CLUSTER.local."), FakeNext()))


def test_large_zone_is_split_into_messages_below_64k():
    """transfer_test.go TestTransferLargeRecordBatching: several messages, each packable."""
    store = Store(clock=lambda: SERIAL)
    store.put(Namespace("big"))
    for i in range(3000):
        store.put(Service("big", f"service-number-{i:05d}", cluster_ips=(f"10.{i // 250}.{i % 250}.1",), ports=HTTP))
    config = load_text("cluster.local {\n kubernetes {\n  namespaces big\n }\n}\n").servers[0].plugin("kubernetes")
    plugin = KubernetesPlugin(config, store, True, Clock(), local_ips=("10.0.0.10",))
    sent = messages(transfer_plugin(plugin).serve(request(), FakeNext()))
    assert len(sent) > 1
    assert all(len(message.to_wire()) <= 65535 for message in sent)
    total = sum(len(rrset) for message in sent for rrset in message.answer)
    assert total == 3 + 3000 * 3 + 1  # SOA, NS, glue; A and two SRV per Service; SOA


def test_batches_follow_the_coredns_threshold():
    """A batch is sent before it would pass BATCH_BYTES of uncompressed records."""
    assert BATCH_BYTES == 63000


SETUP = [
    ("transfer example.net example.org {\n to 1.2.3.4 5.6.7.8:1053 [1::2]:34\n source 2001:db8::53\n}",
     (TransferConfig(("example.net.", "example.org."), ("1.2.3.4", "5.6.7.8", "1::2"), "2001:db8::53"),)),
    ("transfer example.com example.edu {\n to * 1.2.3.4\n}",
     (TransferConfig(("example.com.", "example.edu."), ("*", "1.2.3.4")),)),
    ("transfer {\n to 1.2.3.4\n}", (TransferConfig(("cluster.local.",), ("1.2.3.4",)),)),
    ("transfer a.org {\n to 1.2.3.4\n}\ntransfer b.org {\n to *\n}",
     (TransferConfig(("a.org.",), ("1.2.3.4",)), TransferConfig(("b.org.",), ("*",)))),
]


@pytest.mark.parametrize("text,expected", SETUP)
def test_setup(text, expected):
    """setup_test.go TestParse: zones (the block's by default), `to` hosts, `source`; repeatable."""
    assert load_text(f"cluster.local {{\n{text}\n}}\n").servers[0].plugin("transfer") == expected


@pytest.mark.parametrize("text", [
    "transfer example.net {\n}",
    "transfer example.net {\n invalid option\n}",
    "transfer example.net {\n to 1.2.3.4\n source example.org\n}",
    "transfer example.net {\n to 1.2.3.4\n source 192.0.2.53\n source 2001:db8::53\n}",
    "transfer example.com {\n to example.com 1.2.3.4\n}",
])
def test_setup_errors(text):
    """setup_test.go TestParse errors: no `to`, unknown option, bad or repeated source, a name in `to`."""
    with pytest.raises(CorefileError):
        load_text(f"cluster.local {{\n{text}\n}}\n")


@pytest.mark.parametrize("record", [
    "x.example. 5 IN A 1.2.3.4",
    "x.example. 5 IN AAAA ::1",
    "_h._t.x.example. 5 IN SRV 0 100 80 svc.ns.svc.cluster.local.",
    "x.example. 5 IN CNAME y.example.com.",
    "example. 5 IN NS ns.dns.example.",
    "example. 5 IN SOA ns.dns.example. hostmaster.example. 1 2 3 4 5",
    "x. 5 IN TXT hello",
])
def test_batch_length_is_the_uncompressed_wire_length(record):
    """The batch counts each record's uncompressed wire length (dns.Len), computed without rendering."""
    from discovery.dns.transfer import _wire_length

    owner, ttl, rdclass, rdtype, rdata = record.split(None, 4)
    rrset = dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata)
    assert _wire_length(rrset) == sum(len(rrset.name.to_wire()) + 10 + len(r.to_wire()) for r in rrset)


def test_large_zone_pauses_between_records_for_other_work():
    """The stream pauses at least every RECORDS_PER_STEP records it gathers, so no step holds the reactor long."""
    from discovery.dns.transfer import RECORDS_PER_STEP

    record = dns.rrset.from_text("a.cluster.local.", 5, "IN", "A", "10.0.0.1")

    class Counting:
        name = "counting"
        pulled = 0

        def transfer(self, zone, serial):
            for _ in range(1000):
                self.pulled += 1
                yield record

    source = Counting()
    plugin = TransferPlugin((TransferConfig(("cluster.local.",), ("*",)),))
    plugin.set_chain([plugin, source])
    pauses, last = 0, 0
    for item in plugin.serve(request(), FakeNext()).messages:
        if item is None:
            assert source.pulled - last <= RECORDS_PER_STEP
            last, pauses = source.pulled, pauses + 1
    assert pauses >= 1000 // RECORDS_PER_STEP - 1
