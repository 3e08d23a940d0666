"""The server's table of rendered answers: what is reused, for whom, and until when."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from twisted.internet import task

from discovery.dns.request import FastPathPolicy
from discovery.dns.server import BlockRuntime, DNSServer, _UDPProtocol
from discovery.dns.table import DEFAULT_LIMIT

NAME = "web.default.svc.cluster.local."
CLIENT = ("192.0.2.7", 5353)


class Counting:
    """A plugin that answers A with fixed records and counts how often it is asked."""

    name = "counting"

    def __init__(self, *addresses: str, ttl: int = 30, policy=None):
        self.addresses = addresses or ("10.96.0.10",)
        self.ttl = ttl
        self.policy = policy or (lambda request: None)
        self.calls = 0

    def serve(self, request, next):
        self.calls += 1
        response = request.reply()
        response.flags |= dns.flags.AA
        response.answer.append(dns.rrset.from_text(request.qname, self.ttl, "IN", "A", *self.addresses))
        request.plugin = self.name
        self.policy(request)
        return response


class Harness:
    """A DNSServer with one block, fed datagrams straight into its UDP protocol."""

    def __init__(self, plugin, *, loadbalance=False, limit=DEFAULT_LIMIT, max_udp_size=1232):
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.plugin = plugin
        block = BlockRuntime(zones=("cluster.local.",), server="dns://:53", plugins=[plugin], loadbalance=loadbalance,
                             max_udp_size=max_udp_size)
        self.server = DNSServer(self.clock, [block], port=0, table_limit=limit)
        self.protocol = _UDPProtocol(self.server)
        self.sent: list[bytes] = []
        self.protocol.sendto = lambda wire, addr: self.sent.append(wire)

    def ask(self, query: dns.message.Message, client=CLIENT) -> dns.message.Message:
        self.protocol.datagramReceived(query.to_wire(), client)
        return dns.message.from_wire(self.sent[-1])


def query(name=NAME, rdtype="A", **kwargs) -> dns.message.Message:
    kwargs.setdefault("use_edns", 0)
    return dns.message.make_query(name, rdtype, **kwargs)


def test_a_repeated_question_is_answered_without_asking_the_plugins():
    """The second identical question is served from the table."""
    harness = Harness(Counting())
    first, second = harness.ask(query()), harness.ask(query())
    assert harness.plugin.calls == 1
    assert first.answer == second.answer


def test_a_reused_answer_carries_the_clients_id_and_rd_bit():
    """ID and RD come from each query, not from the one that filled the table."""
    harness = Harness(Counting())
    harness.ask(query())
    later = query()
    later.flags = 0  # RD off
    response = harness.ask(later)
    assert harness.plugin.calls == 1
    assert response.id == later.id
    assert not response.flags & dns.flags.RD


def test_a_question_in_another_letter_case_has_its_own_entry():
    """Answers spell out the client's 0x20 case (uncompressed, as CoreDNS sends them), so each spelling is its own entry."""
    harness = Harness(Counting())
    harness.ask(query("web.default.svc.cluster.local."))
    response = harness.ask(query("WeB.DeFault.svc.Cluster.local."))
    again = harness.ask(query("WeB.DeFault.svc.Cluster.local."))
    assert harness.plugin.calls == 2
    for answer in (response, again):
        assert answer.question[0].name.to_text() == "WeB.DeFault.svc.Cluster.local."
        assert answer.answer[0].name.to_text() == "WeB.DeFault.svc.Cluster.local."


@pytest.mark.parametrize(
    "first, second",
    [
        (dict(use_edns=False), dict(use_edns=0)),
        (dict(use_edns=0), dict(use_edns=0, want_dnssec=True)),
    ],
    ids=["edns-or-not", "do-bit"],
)
def test_clients_with_another_edns_state_get_their_own_answer(first, second):
    """An answer with an OPT record is never reused for a client without EDNS, nor DO=0 for DO=1."""
    harness = Harness(Counting())
    harness.ask(query(**first))
    response = harness.ask(query(**second))
    assert harness.plugin.calls == 2
    assert response.edns == 0
    assert bool(response.ednsflags & dns.flags.DO) == bool(second.get("want_dnssec"))


def test_the_cd_bit_keys_the_table():
    """A CD=1 question is not answered with what was rendered for CD=0 (the cache keys on CD)."""
    harness = Harness(Counting())
    harness.ask(query())
    checking_disabled = query()
    checking_disabled.flags |= dns.flags.CD
    response = harness.ask(checking_disabled)
    assert harness.plugin.calls == 2
    assert response.flags & dns.flags.CD


def test_query_types_are_never_folded_like_letters():
    """Type 65 (HTTPS) and type 97 differ only in what lower-casing would fold: two entries."""
    harness = Harness(Counting())
    harness.ask(query(rdtype=65))
    harness.ask(query(rdtype=97))
    assert harness.plugin.calls == 2


def test_an_answer_whose_plugin_forbids_reuse_is_computed_every_time():
    """FastPathPolicy.forbid() keeps an answer out of the table."""
    harness = Harness(Counting(policy=lambda request: request.fastpath.forbid()))
    harness.ask(query())
    harness.ask(query())
    assert harness.plugin.calls == 2


def test_an_answer_is_computed_afresh_once_it_expires():
    """After its policy's expiry time, the plugins are asked again."""
    harness = Harness(Counting(policy=lambda request: request.fastpath.expire_at(1010)))
    harness.ask(query())
    harness.clock.advance(9.9)
    harness.ask(query())
    harness.clock.advance(0.1)
    harness.ask(query())
    assert harness.plugin.calls == 2


def test_invalidating_a_token_drops_only_the_answers_that_depend_on_it():
    """A Store change touching a token drops the answers depending on it, and no other."""
    plugin = Counting(policy=lambda request: request.fastpath.depend(("store", request.name)))
    harness = Harness(plugin)
    harness.ask(query("a.default.svc.cluster.local."))
    harness.ask(query("b.default.svc.cluster.local."))
    assert harness.server.invalidate([("store", "a.default.svc.cluster.local.")]) == 1
    harness.ask(query("a.default.svc.cluster.local."))
    harness.ask(query("b.default.svc.cluster.local."))
    assert plugin.calls == 3


def test_counted_down_ttls_drop_by_one_per_second_of_age():
    """With countdown_from, the reused answer's TTL is the stored TTL less the whole seconds since."""

    def cached(request):
        request.fastpath = FastPathPolicy(countdown_from=1000.0)

    harness = Harness(Counting(ttl=300, policy=cached))
    harness.ask(query())
    harness.clock.advance(2.5)
    response = harness.ask(query())
    assert harness.plugin.calls == 1
    assert response.answer[0].ttl == 298


def test_counted_down_ttls_stop_at_zero():
    """A TTL is never written below zero, however long the answer is reused."""

    def cached(request):
        request.fastpath = FastPathPolicy(countdown_from=1000.0)

    harness = Harness(Counting(ttl=3, policy=cached))
    harness.ask(query())
    harness.clock.advance(10)
    assert harness.ask(query()).answer[0].ttl == 0


def test_reuses_are_reported_to_the_plugins_hooks_in_batches():
    """on_reuse hears how many times an answer was served from the table since the last report."""
    reports = []

    def cached(request):
        request.fastpath = FastPathPolicy(on_reuse=(reports.append,))

    harness = Harness(Counting(policy=cached))
    for _ in range(3):
        harness.ask(query())
    harness.server.report_reuses()
    harness.ask(query())
    harness.server.report_reuses()
    harness.server.report_reuses()
    assert reports == [2, 1]


def test_an_answer_too_big_for_the_client_is_truncated_on_the_full_path():
    """A rendered answer over the client's UDP size is not reused as is: the full path truncates it."""
    many = tuple(f"10.0.{i // 250}.{i % 250}" for i in range(60))
    harness = Harness(Counting(*many))
    big = harness.ask(query(payload=4096))
    small = harness.ask(query(use_edns=False))
    assert not big.flags & dns.flags.TC and len(big.answer[0]) == 60
    assert small.flags & dns.flags.TC


def test_a_full_table_makes_room_by_dropping_an_answer_not_asked_again():
    """When full, an answer reused since it was stored outlives one that was not (CLOCK)."""
    harness = Harness(Counting())
    harness.ask(query("a.default.svc.cluster.local."))
    table = harness.server.table
    each = table.bytes - table._reserved
    table.limit = table._reserved + each * 2 + each // 2
    harness.ask(query("b.default.svc.cluster.local."))
    harness.ask(query("a.default.svc.cluster.local."))
    harness.ask(query("c.default.svc.cluster.local."))
    harness.ask(query("a.default.svc.cluster.local."))
    harness.ask(query("b.default.svc.cluster.local."))
    assert harness.plugin.calls == 4


def test_loadbalance_hands_out_rotations_of_the_address_records_in_turn():
    """With loadbalance, successive answers from the table lead with each address in turn."""
    harness = Harness(Counting("10.0.0.1", "10.0.0.2", "10.0.0.3"), loadbalance=True)
    leaders = {str(next(iter(harness.ask(query()).answer[0]))) for _ in range(3)}
    assert leaders == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    assert harness.plugin.calls == 1


def test_an_answer_above_the_policys_udp_limit_is_not_reused_over_udp():
    """An answer larger than FastPathPolicy.max_udp_size (bufsize) is computed afresh for a UDP client offering more."""
    addresses = [f"10.1.0.{i}" for i in range(1, 101)]
    harness = Harness(Counting(*addresses, policy=lambda request: request.fastpath.limit_udp(1232)), max_udp_size=4096)
    first = harness.ask(query(payload=4096))
    assert len(first.to_wire()) > 1232
    harness.ask(query(payload=4096))
    assert harness.plugin.calls == 2


def test_an_answer_within_the_policys_udp_limit_is_reused():
    """An answer that fits the policy's UDP limit is reused as usual."""
    harness = Harness(Counting(policy=lambda request: request.fastpath.limit_udp(1232)))
    harness.ask(query(payload=4096))
    harness.ask(query(payload=4096))
    assert harness.plugin.calls == 1


def test_a_guard_sends_the_clients_it_refuses_to_the_full_path():
    """An answer with a guard is reused only for the clients the guard lets through."""
    allowed = {"192.0.2.7"}
    harness = Harness(Counting(policy=lambda request: request.fastpath.guard(lambda data, qend, host: host in allowed)))
    harness.ask(query())
    harness.ask(query())
    assert harness.plugin.calls == 1
    harness.ask(query(), ("198.51.100.1", 53))
    assert harness.plugin.calls == 2


def test_a_fixed_rd_bit_is_kept_on_reuse():
    """An answer whose RD bit a plugin fixed (header) keeps it, whatever RD the reusing client sent."""

    def fix_rd(request):
        request.fastpath.rd = 0

    class ClearsRD(Counting):
        def serve(self, request, next):
            response = super().serve(request, next)
            response.flags &= ~dns.flags.RD
            return response

    harness = Harness(ClearsRD(policy=fix_rd))
    first, second = harness.ask(query()), harness.ask(query())
    assert harness.plugin.calls == 1
    assert not first.flags & dns.flags.RD and not second.flags & dns.flags.RD
