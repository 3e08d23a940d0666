"""The cache plugin with a scripted next plugin and a Clock (CoreDNS's cache semantics)."""

from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import defer, task

from discovery.dns.cache import CacheConfig, CachePlugin, effective_capacity
from discovery.dns.request import FastPathPolicy
from tests.upstream.requests import answer, make_request

SOA = "example.org. {ttl} IN SOA ns.example.org. admin.example.org. 1 3600 600 86400 {minimum}"


class Next:
    """The next plugin: answers from a script, counts the questions it gets."""

    def __init__(self, *records, rcode=0, authority=(), flags=dns.flags.RA, policy=None):
        self.records, self.rcode, self.authority, self.flags = records, rcode, authority, flags
        self.policy = policy
        self.requests = []
        self.deferreds: list[defer.Deferred] | None = None

    def __call__(self, request):
        self.requests.append(request)
        request.plugin = "next"
        if self.policy is not None:
            request.fastpath = self.policy
        else:
            request.fastpath.forbid()
        response = answer(request, *self.records, rcode=self.rcode, authority=self.authority, flags=self.flags)
        if self.deferreds is not None:
            d = defer.Deferred()
            self.deferreds.append(d)
            return d
        return response

    def respond_later(self):
        self.deferreds = []


def make_cache(clock=None, registry=None, **options):
    options.setdefault("zones", (".",))
    return CachePlugin(CacheConfig(**options), clock or task.Clock(), registry=registry or CollectorRegistry())


def result(value):
    """The value of a Message or of an already fired Deferred."""
    if isinstance(value, defer.Deferred):
        out = []
        value.addBoth(out.append)
        assert len(out) == 1
        return out[0]
    return value


def ttls(response):
    return [rrset.ttl for section in (response.answer, response.authority, response.additional) for rrset in section]


A = "www.example.org. 300 IN A 192.0.2.1"


def test_a_second_identical_question_is_answered_from_the_cache():
    """The first question goes to the next plugin, the second does not."""
    cache, next = make_cache(), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    response = result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 1
    assert [r.to_text() for r in response.answer[0]] == ["192.0.2.1"]


def test_cached_answer_carries_the_new_client_id_question_case_and_aa():
    """A hit has the asking client's ID and question case, and AA set as CoreDNS sets it."""
    cache, next = make_cache(), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    request = make_request("WWW.Example.ORG.", qid=1234)
    response = result(cache.serve(request, next))
    assert response.id == 1234 and response.question[0].name.to_text() == "WWW.Example.ORG."
    assert response.flags & dns.flags.AA and response.flags & dns.flags.RA
    assert request.plugin == "cache"


def test_ttl_decrements_by_whole_seconds_elapsed():
    """After 1.9 s the TTL is one less; after 2 s two less (CoreDNS truncates elapsed seconds)."""
    clock = task.Clock()
    cache, next = make_cache(clock), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    clock.advance(1.9)
    assert ttls(result(cache.serve(make_request("www.example.org."), next))) == [299]
    clock.advance(0.1)
    assert ttls(result(cache.serve(make_request("www.example.org."), next))) == [298]


def test_the_first_answer_already_has_the_capped_ttl_on_every_record():
    """With `cache 30` a 300 s answer leaves with TTL 30 on every record, the first time too."""
    cache = make_cache(success_ttl=30, denial_ttl=30)
    next = Next(A, authority=("example.org. 600 IN NS ns.example.org.",))
    response = result(cache.serve(make_request("www.example.org."), next))
    assert ttls(response) == [30, 30]


def test_all_records_get_the_smallest_ttl():
    """One TTL per response: the smallest of its records."""
    cache = make_cache()
    next = Next("www.example.org. 300 IN CNAME web.example.org.", "web.example.org. 60 IN A 192.0.2.1")
    response = result(cache.serve(make_request("www.example.org."), next))
    assert ttls(response) == [60, 60]


def test_ttls_below_the_minimum_are_raised_to_it():
    """A 1 s TTL is cached (and sent) as the 5 s minimum."""
    cache, next = make_cache(), Next("www.example.org. 1 IN A 192.0.2.1")
    assert ttls(result(cache.serve(make_request("www.example.org."), next))) == [5]


def test_an_entry_expires_with_its_ttl():
    """Once its TTL has run out, the entry is gone and the next plugin is asked again."""
    clock = task.Clock()
    cache, next = make_cache(clock), Next("www.example.org. 10 IN A 192.0.2.1")
    result(cache.serve(make_request("www.example.org."), next))
    clock.advance(9.99)
    result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 1
    clock.advance(0.01)
    result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 2


def test_nxdomain_is_cached_for_the_soa_ttl():
    """A negative answer lives as long as its SOA record's TTL (RFC 2308 section 5)."""
    clock = task.Clock()
    nxdomain = Next(rcode=dns.rcode.NXDOMAIN, authority=(SOA.format(ttl=60, minimum=60),))
    cache = make_cache(clock)
    first = result(cache.serve(make_request("nope.example.org."), nxdomain))
    assert first.rcode() == dns.rcode.NXDOMAIN and ttls(first) == [60]
    clock.advance(59.5)
    again = result(cache.serve(make_request("nope.example.org."), nxdomain))
    assert again.rcode() == dns.rcode.NXDOMAIN and ttls(again) == [1] and len(nxdomain.requests) == 1


def test_denials_are_capped_at_1800_seconds_by_default():
    """The denial cache's maximum TTL is half the success cache's 3600."""
    nxdomain = Next(rcode=dns.rcode.NXDOMAIN, authority=(SOA.format(ttl=86400, minimum=86400),))
    assert ttls(result(make_cache().serve(make_request("nope.example.org."), nxdomain))) == [1800]


def test_nxdomain_without_soa_is_not_cached():
    """Without an SOA there is no negative TTL, so nothing is kept."""
    cache, nxdomain = make_cache(), Next(rcode=dns.rcode.NXDOMAIN)
    for _ in range(2):
        result(cache.serve(make_request("nope.example.org."), nxdomain))
    assert len(nxdomain.requests) == 2


def test_nodata_is_cached_as_a_denial():
    """NOERROR with no answer and an SOA is NODATA, kept in the denial cache."""
    registry = CollectorRegistry()
    cache = make_cache(registry=registry)
    nodata = Next(authority=(SOA.format(ttl=60, minimum=60),))
    for _ in range(2):
        result(cache.serve(make_request("www.example.org.", "AAAA"), nodata))
    assert len(nodata.requests) == 1
    assert registry.get_sample_value(
        "coredns_cache_hits_total", {"server": "dns://:53", "type": "denial", "zones": ".", "view": ""}) == 1


def test_a_cname_chain_without_the_asked_type_and_without_soa_is_not_cached():
    """An incomplete CNAME chain and no SOA: RFC 2308 section 5 says do not cache it."""
    cache, next = make_cache(), Next("www.example.org. 300 IN CNAME web.example.net.")
    for _ in range(2):
        result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 2


def test_servfail_is_cached_five_seconds_by_default():
    """SERVFAIL is kept for the `servfail` duration, 5 s unless set."""
    clock = task.Clock()
    cache, failing = make_cache(clock), Next(rcode=dns.rcode.SERVFAIL)
    result(cache.serve(make_request("www.example.org."), failing))
    clock.advance(4.9)
    assert result(cache.serve(make_request("www.example.org."), failing)).rcode() == dns.rcode.SERVFAIL
    clock.advance(0.1)
    result(cache.serve(make_request("www.example.org."), failing))
    assert len(failing.requests) == 2


def test_servfail_zero_turns_servfail_caching_off():
    """`servfail 0s`: every SERVFAIL goes back to the next plugin."""
    cache, failing = make_cache(servfail_ttl=0.0), Next(rcode=dns.rcode.SERVFAIL)
    for _ in range(2):
        result(cache.serve(make_request("www.example.org."), failing))
    assert len(failing.requests) == 2


@pytest.mark.parametrize("rcode", [dns.rcode.REFUSED, dns.rcode.FORMERR])
def test_other_errors_are_never_cached(rcode):
    """REFUSED and FORMERR are not kept."""
    cache, next = make_cache(), Next(rcode=rcode)
    for _ in range(2):
        result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 2


def test_truncated_answers_are_never_cached():
    """A TC answer is not kept (the client will ask again over TCP)."""
    cache, next = make_cache(), Next(A, flags=dns.flags.RA | dns.flags.TC)
    for _ in range(2):
        result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 2


def test_the_key_ignores_case_but_not_type_do_or_cd():
    """Name case shares an entry; another type, the DO bit or the CD bit does not."""
    cache, next = make_cache(), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    result(cache.serve(make_request("WWW.EXAMPLE.ORG."), next))
    assert len(next.requests) == 1
    for request in (make_request("www.example.org.", "AAAA"), make_request("www.example.org.", do=True),
                    make_request("www.example.org.", cd=True)):
        result(cache.serve(request, next))
    assert len(next.requests) == 4


def test_the_next_plugin_is_asked_with_ad_set():
    """The refresh query carries AD so a validating upstream reports authenticity (RFC 6840 5.7)."""
    cache, next = make_cache(), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    assert next.requests[0].query.flags & dns.flags.AD


def test_ad_is_cleared_for_clients_that_did_not_ask_for_dnssec():
    """An authenticated answer keeps AD only for clients with DO or AD set."""
    cache, next = make_cache(), Next(A, flags=dns.flags.RA | dns.flags.AD)
    plain = result(cache.serve(make_request("www.example.org."), next))
    assert not plain.flags & dns.flags.AD
    with_ad = result(cache.serve(make_request("www.example.org.", ad=True), next))
    assert with_ad.flags & dns.flags.AD


def test_disable_success_for_a_zone_keeps_positive_answers_out():
    """disable success cluster.local: positive answers there are not kept, and keep the next plugin's reuse policy."""
    cache = make_cache(success_disabled=("cluster.local.",))
    policy = FastPathPolicy(dependencies={"svc"})
    next = Next("a.default.svc.cluster.local. 5 IN A 10.96.0.10", policy=policy)
    request = make_request("a.default.svc.cluster.local.")
    result(cache.serve(request, next))
    result(cache.serve(make_request("a.default.svc.cluster.local."), next))
    assert len(next.requests) == 2 and request.fastpath.dependencies == {"svc"}


def test_disable_denial_for_a_zone_keeps_denials_out():
    """disable denial cluster.local: NXDOMAIN there is not kept; elsewhere it is."""
    cache = make_cache(denial_disabled=("cluster.local.",))
    nxdomain = Next(rcode=dns.rcode.NXDOMAIN, authority=("cluster.local. 5 IN SOA ns.dns.cluster.local. "
                                                         "hostmaster.cluster.local. 1 7200 1800 86400 5",))
    for _ in range(2):
        result(cache.serve(make_request("nope.svc.cluster.local."), nxdomain))
    assert len(nxdomain.requests) == 2


def test_names_outside_the_cache_zones_pass_untouched():
    """A name outside ZONES goes to the next plugin without being counted or kept."""
    registry = CollectorRegistry()
    cache, next = make_cache(zones=("example.org.",), registry=registry), Next("www.example.com. 300 IN A 192.0.2.1")
    for _ in range(2):
        result(cache.serve(make_request("www.example.com."), next))
    assert len(next.requests) == 2
    assert registry.get_sample_value("coredns_cache_requests_total",
                                     {"server": "dns://:53", "zones": "example.org.", "view": ""}) == 0


def test_capacity_is_whole_shards_of_at_least_four():
    """CoreDNS rounds CAPACITY down to 256 shards, each at least 4 entries."""
    assert effective_capacity(10000) == 9984
    assert effective_capacity(5000) == 4864
    assert effective_capacity(1) == 1024


def test_a_full_cache_evicts_and_counts_it():
    """Past its capacity the cache evicts an entry for each new one, counted in evictions_total."""
    registry = CollectorRegistry()
    cache = make_cache(registry=registry, success_capacity=2)
    for i in range(3):
        result(cache.serve(make_request(f"h{i}.example.org."), Next(f"h{i}.example.org. 300 IN A 192.0.2.{i}")))
    labels = {"server": "dns://:53", "type": "success", "zones": ".", "view": ""}
    assert registry.get_sample_value("coredns_cache_evictions_total", labels) == 1
    assert registry.get_sample_value("coredns_cache_entries", labels) == 2


def test_requests_hits_and_misses_are_counted():
    """coredns_cache_requests_total, hits_total{type} and misses_total follow every look-up."""
    registry = CollectorRegistry()
    cache, next = make_cache(registry=registry, zones=("example.org.",)), Next(A)
    for _ in range(3):
        result(cache.serve(make_request("www.example.org."), next))
    base = {"server": "dns://:53", "zones": "example.org.", "view": ""}
    assert registry.get_sample_value("coredns_cache_requests_total", base) == 3
    assert registry.get_sample_value("coredns_cache_misses_total", base) == 1
    assert registry.get_sample_value("coredns_cache_hits_total", {**base, "type": "success"}) == 2


def test_keepttl_serves_the_original_ttl():
    """keepttl: hits carry the TTL the entry was stored with."""
    clock = task.Clock()
    cache, next = make_cache(clock, keepttl=True), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    clock.advance(100)
    assert ttls(result(cache.serve(make_request("www.example.org."), next))) == [300]


# --- the server's table of rendered answers ----------------------------------------------


def test_the_answer_as_fetched_is_not_reused():
    """A miss is answered as the next plugin wrote it; that rendering is not the cache's to reuse."""
    cache, request = make_cache(), make_request("www.example.org.")
    result(cache.serve(request, Next(A)))
    assert not request.fastpath.reusable


def test_a_hit_may_be_reused_until_the_entry_goes_stale():
    """A 300 s answer stored at 1000.25 may be reused until 300 s of age, when it goes stale."""
    clock = task.Clock()
    clock.advance(1000.25)
    cache, next = make_cache(clock), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    request = make_request("www.example.org.")
    result(cache.serve(request, next))
    assert request.fastpath.reusable and request.fastpath.expires == 1300.25


def test_a_hit_keeps_what_plugins_before_the_cache_said_about_reuse():
    """A guard and a UDP limit set before the cache (acl, bufsize) survive a hit's own reuse policy."""
    cache, next = make_cache(), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    request = make_request("www.example.org.")

    def guard(data, qend, host):
        return True

    request.fastpath.guard(guard)
    request.fastpath.limit_udp(1232)
    result(cache.serve(request, next))
    assert request.fastpath.reusable and request.fastpath.guards == (guard,)
    assert request.fastpath.max_udp_size == 1232


def test_a_reused_answer_counts_its_ttls_down_from_the_storage_time():
    """The server patches the TTLs itself: they drop by one per second of age since storing."""
    clock = task.Clock()
    clock.advance(1000.25)
    cache, next = make_cache(clock), Next(A)
    result(cache.serve(make_request("www.example.org."), next))
    clock.advance(2.5)
    request = make_request("www.example.org.")
    result(cache.serve(request, next))
    assert request.fastpath.countdown_from == 1000.25


def test_keepttl_answers_are_reused_without_counting_down():
    """keepttl: the server keeps the stored TTLs as they are."""
    cache, request = make_cache(keepttl=True), make_request("www.example.org.")
    result(cache.serve(make_request("www.example.org."), Next(A)))
    result(cache.serve(request, Next(A)))
    assert request.fastpath.reusable and request.fastpath.countdown_from is None


def test_reuses_count_as_cache_requests_and_hits():
    """The server reports reuses to on_reuse, so the cache's counters still count them."""
    registry = CollectorRegistry()
    cache, request = make_cache(registry=registry), make_request("www.example.org.")
    result(cache.serve(make_request("www.example.org."), Next(A)))
    result(cache.serve(request, Next(A)))
    labels = {"server": "dns://:53", "type": "success", "zones": ".", "view": ""}
    before = registry.get_sample_value("coredns_cache_hits_total", labels)
    for report in request.fastpath.on_reuse:
        report(3)
    assert registry.get_sample_value("coredns_cache_hits_total", labels) == before + 3


def test_with_prefetch_reuse_ends_where_the_prefetch_window_begins():
    """prefetch 10% of a 100 s TTL: reuse stops at 90 s of age, when each query counts again."""
    clock = task.Clock()
    cache = make_cache(clock, prefetch=10)
    request = make_request("www.example.org.")
    next = Next("www.example.org. 100 IN A 192.0.2.1")
    result(cache.serve(make_request("www.example.org."), next))
    result(cache.serve(request, next))
    assert request.fastpath.expires == 90


def test_cached_servfail_is_never_reused_by_the_server():
    """A SERVFAIL from the cache is decided afresh for every query."""
    cache, failing = make_cache(), Next(rcode=dns.rcode.SERVFAIL)
    result(cache.serve(make_request("www.example.org."), failing))
    request = make_request("www.example.org.")
    result(cache.serve(request, failing))
    assert not request.fastpath.reusable


def test_inside_the_prefetch_window_every_query_reaches_the_cache():
    """With prefetch on, answers near expiry are not reused, so each query counts towards popularity."""
    clock = task.Clock()
    cache, next = make_cache(clock, prefetch=10), Next("www.example.org. 100 IN A 192.0.2.1")
    result(cache.serve(make_request("www.example.org."), next))
    clock.advance(91)
    request = make_request("www.example.org.")
    result(cache.serve(request, next))
    assert not request.fastpath.reusable


# --- prefetch -------------------------------------------------------------------------------


def test_a_popular_entry_is_prefetched_near_expiry():
    """prefetch 2: seen twice and within 10% of its TTL, the entry is refreshed in the background."""
    clock, registry = task.Clock(), CollectorRegistry()
    cache, next = make_cache(clock, registry=registry, prefetch=2), Next("www.example.org. 100 IN A 192.0.2.1")
    result(cache.serve(make_request("www.example.org."), next))
    clock.advance(50)
    result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 1
    clock.advance(41)
    response = result(cache.serve(make_request("www.example.org."), next))
    assert ttls(response) == [9] and len(next.requests) == 2
    assert next.requests[1].proto == "tcp"
    assert ttls(result(cache.serve(make_request("www.example.org."), next))) == [100]
    assert registry.get_sample_value("coredns_cache_prefetch_total",
                                     {"server": "dns://:53", "zones": ".", "view": ""}) == 1


def test_an_unpopular_entry_is_not_prefetched():
    """Seen less than AMOUNT times: no prefetch, the entry just expires."""
    clock = task.Clock()
    cache, next = make_cache(clock, prefetch=3), Next("www.example.org. 100 IN A 192.0.2.1")
    result(cache.serve(make_request("www.example.org."), next))
    clock.advance(95)
    result(cache.serve(make_request("www.example.org."), next))
    assert len(next.requests) == 1


# --- serve_stale ------------------------------------------------------------------------------


def expired_cache(clock, **options):
    cache = make_cache(clock, **options)
    result(cache.serve(make_request("www.example.org."), Next("www.example.org. 10 IN A 192.0.2.1")))
    clock.advance(20)
    return cache


def test_without_serve_stale_an_expired_entry_is_a_miss():
    """Expired and no serve_stale: the next plugin answers."""
    clock = task.Clock()
    cache, failing = expired_cache(clock), Next(rcode=dns.rcode.SERVFAIL)
    assert result(cache.serve(make_request("www.example.org."), failing)).rcode() == dns.rcode.SERVFAIL


def test_serve_stale_answers_with_the_expired_entry_at_ttl_zero():
    """serve_stale: the expired entry answers at once with TTL 0, is counted, and is never reused."""
    clock, registry = task.Clock(), CollectorRegistry()
    cache = expired_cache(clock, serve_stale=3600.0, registry=registry)
    failing = Next(rcode=dns.rcode.SERVFAIL)
    failing.respond_later()
    request = make_request("www.example.org.")
    response = result(cache.serve(request, failing))
    assert [r.to_text() for r in response.answer[0]] == ["192.0.2.1"] and ttls(response) == [0]
    assert not request.fastpath.reusable
    assert registry.get_sample_value("coredns_cache_served_stale_total",
                                     {"server": "dns://:53", "zones": ".", "view": ""}) == 1


def test_serve_stale_refreshes_in_the_background_once():
    """Two stale hits while the refresh is under way send one refresh."""
    clock = task.Clock()
    cache, slow = expired_cache(clock, serve_stale=3600.0), Next(A)
    slow.respond_later()
    for _ in range(2):
        result(cache.serve(make_request("www.example.org."), slow))
    assert len(slow.requests) == 1


def test_a_successful_background_refresh_replaces_the_stale_entry():
    """After the refresh answers, hits get the fresh data."""
    clock = task.Clock()
    cache = expired_cache(clock, serve_stale=3600.0)
    fresh = Next("www.example.org. 300 IN A 192.0.2.99")
    result(cache.serve(make_request("www.example.org."), fresh))
    response = result(cache.serve(make_request("www.example.org."), fresh))
    assert [r.to_text() for r in response.answer[0]] == ["192.0.2.99"] and ttls(response) == [300]


def test_a_failed_refresh_keeps_the_stale_entry():
    """A SERVFAIL refresh does not replace the stale answer (RFC 8767 section 4)."""
    clock = task.Clock()
    cache, failing = expired_cache(clock, serve_stale=3600.0), Next(rcode=dns.rcode.SERVFAIL)
    for _ in range(2):
        response = result(cache.serve(make_request("www.example.org."), failing))
    assert response.rcode() == dns.rcode.NOERROR and ttls(response) == [0]


def test_stale_entries_older_than_the_duration_are_not_served():
    """serve_stale 10s: stale for longer than that is a miss."""
    clock = task.Clock()
    cache = expired_cache(clock, serve_stale=10.0)
    failing = Next(rcode=dns.rcode.SERVFAIL)
    assert result(cache.serve(make_request("www.example.org."), failing)).rcode() == dns.rcode.SERVFAIL


def test_stale_answers_use_the_response_ttl_when_set():
    """serve_stale 1h immediate 30s: stale answers carry TTL 30 (RFC 8767's recommendation)."""
    clock = task.Clock()
    cache = expired_cache(clock, serve_stale=3600.0, stale_ttl=30)
    failing = Next(rcode=dns.rcode.SERVFAIL)
    failing.respond_later()
    assert ttls(result(cache.serve(make_request("www.example.org."), failing))) == [30]


def test_failure_recheck_holds_back_refreshes_after_a_failure():
    """With FAILURE_RECHECK 30s, a failed refresh is not tried again for 30 s."""
    clock = task.Clock()
    cache, failing = expired_cache(clock, serve_stale=3600.0, stale_recheck=30.0), Next(rcode=dns.rcode.SERVFAIL)
    result(cache.serve(make_request("www.example.org."), failing))
    clock.advance(29)
    result(cache.serve(make_request("www.example.org."), failing))
    assert len(failing.requests) == 1
    clock.advance(1)
    result(cache.serve(make_request("www.example.org."), failing))
    assert len(failing.requests) == 2


def test_verify_mode_asks_first_and_serves_the_fresh_answer():
    """serve_stale verify: the next plugin is asked first; its good answer is what the client gets."""
    clock = task.Clock()
    cache = expired_cache(clock, serve_stale=3600.0, verify_stale=True)
    fresh = Next("www.example.org. 300 IN A 192.0.2.99")
    response = result(cache.serve(make_request("www.example.org."), fresh))
    assert [r.to_text() for r in response.answer[0]] == ["192.0.2.99"]


def test_verify_mode_falls_back_to_stale_when_the_refresh_fails():
    """serve_stale verify: a SERVFAIL from the next plugin means the stale entry is served."""
    clock = task.Clock()
    cache, failing = expired_cache(clock, serve_stale=3600.0, verify_stale=True), Next(rcode=dns.rcode.SERVFAIL)
    response = result(cache.serve(make_request("www.example.org."), failing))
    assert response.rcode() == dns.rcode.NOERROR and ttls(response) == [0]


def test_verify_timeout_serves_stale_when_the_refresh_is_slow():
    """serve_stale 1h verify 100ms: a refresh slower than 100 ms gets the client the stale entry."""
    clock = task.Clock()
    cache, slow = expired_cache(clock, serve_stale=3600.0, verify_stale=True, verify_timeout=0.1), Next(A)
    slow.respond_later()
    pending = cache.serve(make_request("www.example.org."), slow)
    clock.advance(0.1)
    response = result(pending)
    assert ttls(response) == [0]
