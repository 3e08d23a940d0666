"""Answers rendered ahead: before the first question, and again at once after a change."""

from __future__ import annotations

import dns.message
from twisted.internet import task

from discovery.cache.objects import Service, ServicePort
from discovery.config import load_text
from discovery.dns.kubernetes import KubernetesPlugin
from discovery.dns.server import BlockRuntime, DNSServer

from .zone_fixture import ZONES, cluster

SVC1 = b"\x04svc1\x06testns\x03svc\x07cluster\x05local\x00"
SVC2 = b"\x04svc2\x06testns\x03svc\x07cluster\x05local\x00"
A_IN = b"\x00\x01\x00\x01"
SRV_IN = b"\x00\x21\x00\x01"


class Prepared:
    """A server over the fixture cluster whose plugin's questions have been prepared."""

    def __init__(self, synced=True):
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.store = cluster()
        config = load_text(f"{' '.join(ZONES)} {{\n    kubernetes\n}}\n").servers[0].plugin("kubernetes")
        self.plugin = KubernetesPlugin(config, self.store, synced, self.clock)
        self.server = DNSServer(self.clock, [BlockRuntime(zones=ZONES, server="dns://:53", plugins=[self.plugin])], port=0)
        self.done = []
        self.server.prepare(self.plugin.questions()).addCallback(self.done.append)
        self.run()

    def run(self) -> None:
        while self.server.preparing or self.server._preparing is not None:
            self.clock.advance(0)

    def entry(self, question: bytes):
        return self.server.table.entries.get(question + b"\x00")

    def change(self, obj) -> None:
        # The server follows the Stores its blocks answer from: nothing else to call.
        self.store.put(obj)


def test_the_answers_for_existing_names_are_rendered_before_anyone_asks():
    """A Service's A and its port's SRV answers are in the table once preparation is done."""
    prepared = Prepared()
    assert prepared.done == [None]
    assert prepared.entry(SVC1 + A_IN) is not None
    assert prepared.entry(b"\x05_http\x04_tcp" + SVC1 + SRV_IN) is not None


def test_a_prepared_answer_is_the_one_a_client_gets():
    """The first question for a prepared name is answered from the table, with its records."""
    prepared = Prepared()
    query = dns.message.make_query("svc1.testns.svc.cluster.local.", "A")
    hit = prepared.server.fast_answer(query.to_wire(), True, prepared.clock.seconds())
    assert hit is not None and hit[1] is prepared.entry(SVC1 + A_IN)
    assert [rdata.address for rdata in dns.message.from_wire(hit[0]).answer[0]] == ["10.0.0.1"]


def test_nothing_is_prepared_before_the_store_has_synced():
    """Not synced: the plugin gives no fast answers, so nothing is rendered ahead."""
    prepared = Prepared(synced=False)
    assert prepared.entry(SVC1 + A_IN) is None


def test_a_service_change_costs_only_its_own_answers_and_they_are_rendered_again_at_once():
    """After svc1 changes, svc2's answer is untouched and svc1's new answer is ready without a question."""
    prepared = Prepared()
    untouched = prepared.entry(SVC2 + A_IN)
    prepared.change(Service("testns", "svc1", cluster_ips=("10.0.0.99",), ports=(ServicePort("http", "TCP", 80),)))
    assert prepared.entry(SVC1 + A_IN) is None
    prepared.run()
    assert prepared.entry(SVC2 + A_IN) is untouched
    wire = prepared.entry(SVC1 + A_IN).tails
    assert bytes([10, 0, 0, 99]) in wire


def test_a_new_service_is_prepared_when_it_appears():
    """A Service added after the sync has its answers rendered ahead too."""
    prepared = Prepared()
    prepared.change(Service("testns", "fresh", cluster_ips=("10.0.0.77",), ports=(ServicePort("http", "TCP", 80),)))
    prepared.run()
    assert prepared.entry(b"\x05fresh\x06testns\x03svc\x07cluster\x05local\x00" + A_IN) is not None


def test_changes_during_the_initial_list_queue_nothing():
    """Before the sync, a change adds no questions: all of them are prepared once, at the sync."""
    prepared = Prepared(synced=False)
    prepared.change(Service("testns", "fresh", cluster_ips=("10.0.0.77",)))
    assert prepared.server.preparing == 0


def test_a_server_stops_following_a_store_its_blocks_no_longer_answer_from():
    """After set_blocks([]) a change to the old Store neither drops nor prepares anything."""
    prepared = Prepared()
    prepared.server.set_blocks([])
    prepared.server.prepare([SVC1 + A_IN])
    prepared.run()
    before = dict(prepared.server.table.entries)
    prepared.store.put(Service("svc1", "testns", cluster_ips=("10.0.0.99",)))
    assert prepared.server.table.entries == before and not prepared.server.preparing


def test_a_stopped_server_no_longer_follows_its_stores():
    """After stop() a change to the Store leaves the table as it was."""
    prepared = Prepared()
    prepared.server.stop()
    before = prepared.entry(SVC1 + A_IN)
    prepared.store.put(Service("svc1", "testns", cluster_ips=("10.0.0.99",)))
    prepared.run()
    assert before is not None and prepared.entry(SVC1 + A_IN) is before
