"""acl: CoreDNS's setup and handler tables (plugin/acl/*_test.go), its metrics, and reuse of answers."""

from __future__ import annotations

import ipaddress

import dns.edns
import dns.flags
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client import CollectorRegistry

from discovery.config import load_text
from discovery.corefile import CorefileError
from discovery.dns.acl import AclPlugin, AclPolicy, AclRule, setup_acl
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request


def rules_of(lines: list[str], zones: tuple[str, ...] = ()) -> tuple[AclRule, ...]:
    """The acl rules of a block keyed by zones (\".\" when none) holding these lines."""
    text = f"{' '.join(zones) or '.'} {{\n" + "\n".join(lines) + "\n}\n"
    (server,) = load_text(text).servers
    return server.plugin("acl")


# --- setup (TestSetup) ----------------------------------------------------------------------

SETUP_ROWS = [
    ('Blacklist 1', ['acl {', 'block type A net 192.168.0.0/16', '}'], False),
    ('Blacklist 2', ['acl {', 'block type * net 192.168.0.0/16', '}'], False),
    ('Blacklist 3', ['acl {', 'block type A net *', '}'], False),
    ('Blacklist 4', ['acl {', 'allow type * net 192.168.1.0/24', 'block type * net 192.168.0.0/16', '}'], False),
    ('Filter 1', ['acl {', 'filter type A net 192.168.0.0/16', '}'], False),
    ('Whitelist 1', ['acl {', 'allow type * net 192.168.0.0/16', 'block type * net *', '}'], False),
    ('Drop 1', ['acl {', 'drop type * net 192.168.0.0/16', '}'], False),
    ('fine-grained 1', ['acl a.example.org {', 'block type * net 192.168.1.0/24', '}'], False),
    ('fine-grained 2', ['acl a.example.org {', 'block type * net 192.168.1.0/24', '}', 'acl b.example.org {', 'block type * net 192.168.2.0/24', '}'], False),
    ('Multiple Networks 1', ['acl example.org {', 'block type * net 192.168.1.0/24 192.168.3.0/24', '}'], False),
    ('Multiple Qtypes 1', ['acl example.org {', 'block type TXT ANY CNAME net 192.168.3.0/24', '}'], False),
    ('Missing argument 1', ['acl {', 'block A net 192.168.0.0/16', '}'], True),
    ('Missing argument 2', ['acl {', 'block type net 192.168.0.0/16', '}'], True),
    ('Illegal argument 1', ['acl {', 'block type ABC net 192.168.0.0/16', '}'], True),
    ('Illegal argument 2', ['acl {', 'blck type A net 192.168.0.0/16', '}'], True),
    ('Illegal argument 3', ['acl {', 'block type A net 192.168.0/16', '}'], True),
    ('Illegal argument 4', ['acl {', 'block type A net 192.168.0.0/33', '}'], True),
    ('Blacklist 1 IPv6', ['acl {', 'block type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334', '}'], False),
    ('Blacklist 2 IPv6', ['acl {', 'block type * net 2001:db8:85a3::8a2e:370:7334', '}'], False),
    ('Blacklist 3 IPv6', ['acl {', 'block type A', '}'], False),
    ('Blacklist 4 IPv6', ['acl {', 'allow net 2001:db8:abcd:0012::0/64', 'block net 2001:db8:abcd:0012::0/48', '}'], False),
    ('Filter 1 IPv6', ['acl {', 'filter type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334', '}'], False),
    ('Whitelist 1 IPv6', ['acl {', 'allow net 2001:db8:abcd:0012::0/64', 'block', '}'], False),
    ('Drop 1 IPv6', ['acl {', 'drop net 2001:db8:abcd:0012::0/64', '}'], False),
    ('fine-grained 1 IPv6', ['acl a.example.org {', 'block net 2001:db8:abcd:0012::0/64', '}'], False),
    ('fine-grained 2 IPv6', ['acl a.example.org {', 'block net 2001:db8:abcd:0012::0/64', '}', 'acl b.example.org {', 'block net 2001:db8:abcd:0013::0/64', '}'], False),
    ('Multiple Networks 1 IPv6', ['acl example.org {', 'block net 2001:db8:abcd:0012::0/64 2001:db8:85a3::8a2e:370:7334/64', '}'], False),
    ('Illegal argument 1 IPv6', ['acl {', 'block type A net 2001::85a3::8a2e:370:7334', '}'], True),
    ('Illegal argument 2 IPv6', ['acl {', 'block type A net 2001:db8:85a3:::8a2e:370:7334', '}'], True),
]


@pytest.mark.parametrize("name, lines, fails", SETUP_ROWS, ids=[row[0] for row in SETUP_ROWS])
def test_setup_table(name, lines, fails):
    """CoreDNS's TestSetup rows: each configuration loads, or stops with an error naming its file and line."""
    if fails:
        with pytest.raises(CorefileError) as caught:
            rules_of(lines)
        assert caught.value.file == "Corefile" and caught.value.line > 1
    else:
        assert rules_of(lines)


@pytest.mark.parametrize("token, network", [
    ("10.218.10.8/24", "10.218.10.0/24"),
    ("10.218.10.8", "10.218.10.8/32"),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8:85a3::8a2e:370:7334/128"),
])
def test_a_single_address_is_a_host_network(token, network):
    """CoreDNS's TestNormalize: an address alone is a /32 or /128; a CIDR keeps its prefix."""
    config = setup_of(setup_acl, f"acl {{\nblock net {token}\n}}")
    assert config.policies[0].networks == (ipaddress.ip_network(network),)


def test_setup_defaults_to_the_blocks_zones_every_type_and_every_address():
    """`acl { block }`: the block's zones, any type, any source."""
    config = setup_of(setup_acl, "acl {\nblock\n}", zones=("example.org.",))
    assert config == AclRule(("example.org.",), (AclPolicy("block"),))


def test_a_star_stands_for_all_and_ends_its_list():
    """`type * BOGUS`: every type (CoreDNS stops reading the list at `*`)."""
    config = setup_of(setup_acl, "acl {\nblock type * BOGUS net 10.0.0.0/8\n}")
    assert config.policies[0].qtypes is None


def test_types_are_upper_case_mnemonics():
    """`type a` is refused, as miekg/dns's StringToType knows upper-case names only."""
    assert "legal QTYPE" in setup_error(setup_acl, "acl {\nblock type a\n}", line=3).message


def test_actions_are_read_in_any_case():
    """`BLOCK` is block (CoreDNS lower-cases the action)."""
    assert setup_of(setup_acl, "acl {\nBLOCK\n}").policies[0].action == "block"


# --- handler (TestACLServeDNS) --------------------------------------------------------------

SERVE_ROWS = [
    ('Blacklist 1 BLOCKED', ['acl example.org {', 'block type A net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.168.0.2', 'A', 'REFUSED'),
    ('Blacklist 1 ALLOWED', ['acl example.org {', 'block type A net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.167.0.2', 'A', 'NOERROR'),
    ('Blacklist 2 BLOCKED', ['acl example.org {', 'block type * net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.168.0.2', 'AAAA', 'REFUSED'),
    ('Blacklist 3 BLOCKED', ['acl example.org {', 'block type A', '}'], (), 'www.example.org.', '10.1.0.2', 'A', 'REFUSED'),
    ('Blacklist 3 ALLOWED', ['acl example.org {', 'block type A', '}'], (), 'www.example.org.', '10.1.0.2', 'AAAA', 'NOERROR'),
    ('Blacklist 4 Single IP BLOCKED', ['acl example.org {', 'block type A net 192.168.1.2', '}'], (), 'www.example.org.', '192.168.1.2', 'A', 'REFUSED'),
    ('Blacklist 4 Single IP ALLOWED', ['acl example.org {', 'block type A net 192.168.1.2', '}'], (), 'www.example.org.', '192.168.1.3', 'A', 'NOERROR'),
    ('Filter 1 FILTERED', ['acl example.org {', 'filter type A net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.168.0.2', 'A', 'FILTERED'),
    ('Filter 1 ALLOWED', ['acl example.org {', 'filter type A net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.167.0.2', 'A', 'NOERROR'),
    ('Whitelist 1 ALLOWED', ['acl example.org {', 'allow net 192.168.0.0/16', 'block', '}'], (), 'www.example.org.', '192.168.0.2', 'A', 'NOERROR'),
    ('Whitelist 1 REFUSED', ['acl example.org {', 'allow type * net 192.168.0.0/16', 'block', '}'], (), 'www.example.org.', '10.1.0.2', 'A', 'REFUSED'),
    ('Drop 1 DROPPED', ['acl example.org {', 'drop net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.168.0.2', 'A', 'DROP'),
    ('Subnet-Order 1 REFUSED', ['acl example.org {', 'block net 192.168.1.0/24', 'drop net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.168.1.2', 'A', 'REFUSED'),
    ('Subnet-Order 2 DROPPED', ['acl example.org {', 'drop net 192.168.0.0/16', 'block net 192.168.1.0/24', '}'], (), 'www.example.org.', '192.168.1.1', 'A', 'DROP'),
    ('Drop-Type 1 DROPPED', ['acl example.org {', 'drop type A', 'allow net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.168.1.1', 'A', 'DROP'),
    ('Drop-Type 2 ALLOWED', ['acl example.org {', 'drop type A', 'allow net 192.168.0.0/16', '}'], (), 'www.example.org.', '192.168.1.1', 'AAAA', 'NOERROR'),
    ('Fine-Grained 1 REFUSED', ['acl a.example.org {', 'block type * net 192.168.1.0/24', '}'], ('example.org',), 'a.example.org.', '192.168.1.2', 'A', 'REFUSED'),
    ('Fine-Grained 1 ALLOWED', ['acl a.example.org {', 'block net 192.168.1.0/24', '}'], ('example.org',), 'www.example.org.', '192.168.1.2', 'A', 'NOERROR'),
    ('Fine-Grained 2 REFUSED', ['acl example.org {', 'block net 192.168.1.0/24', '}'], ('example.org',), 'a.example.org.', '192.168.1.2', 'A', 'REFUSED'),
    ('Fine-Grained 2 ALLOWED', ['acl {', 'block net 192.168.1.0/24', '}'], ('example.org',), 'a.example.com.', '192.168.1.2', 'A', 'NOERROR'),
    ('Fine-Grained 3 REFUSED', ['acl a.example.org {', 'block net 192.168.1.0/24', '}', 'acl b.example.org {', 'block type * net 192.168.2.0/24', '}'], ('example.org',), 'b.example.org.', '192.168.2.2', 'A', 'REFUSED'),
    ('Fine-Grained 3 ALLOWED', ['acl a.example.org {', 'block net 192.168.1.0/24', '}', 'acl b.example.org {', 'block net 192.168.2.0/24', '}'], ('example.org',), 'b.example.org.', '192.168.1.2', 'A', 'NOERROR'),
    ('Blacklist 1 BLOCKED IPv6', ['acl example.org {', 'block type A net 2001:db8:abcd:0012::0/64', '}'], (), 'www.example.org.', '2001:db8:abcd:0012::1230', 'A', 'REFUSED'),
    ('Blacklist 1 ALLOWED IPv6', ['acl example.org {', 'block type A net 2001:db8:abcd:0012::0/64', '}'], (), 'www.example.org.', '2001:db8:abcd:0013::0', 'A', 'NOERROR'),
    ('Blacklist 2 BLOCKED IPv6', ['acl example.org {', 'block type A', '}'], (), 'www.example.org.', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'A', 'REFUSED'),
    ('Blacklist 3 Single IP BLOCKED IPv6', ['acl example.org {', 'block type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334', '}'], (), 'www.example.org.', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'A', 'REFUSED'),
    ('Blacklist 3 Single IP ALLOWED IPv6', ['acl example.org {', 'block type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334', '}'], (), 'www.example.org.', '2001:0db8:85a3:0000:0000:8a2e:0370:7335', 'A', 'NOERROR'),
    ('Fine-Grained 1 REFUSED IPv6', ['acl a.example.org {', 'block type * net 2001:db8:abcd:0012::0/64', '}'], ('example.org',), 'a.example.org.', '2001:db8:abcd:0012:2019::0', 'A', 'REFUSED'),
    ('Fine-Grained 1 ALLOWED IPv6', ['acl a.example.org {', 'block net 2001:db8:abcd:0012::0/64', '}'], ('example.org',), 'www.example.org.', '2001:db8:abcd:0012:2019::0', 'A', 'NOERROR'),
    ('Blacklist Address%ifname', ['acl example.org {', 'block type AAAA net 2001:0db8:85a3:0000:0000:8a2e:0370:7334', '}'], ('eth0',), 'www.example.org.', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'AAAA', 'REFUSED'),
    ('Drop 1 DROPPED IPV6', ['acl example.org {', 'drop net 2001:0db8:85a3:0000:0000:8a2e:0370:7334', '}'], (), 'www.example.org.', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'AAAA', 'DROP'),
    ('Subnet-Order 1 REFUSED IPv6', ['acl example.org {', 'block net 2001:db8:abcd:0012:8000::/66', 'drop net 2001:db8:abcd:0012::0/64', '}'], (), 'www.example.org.', '2001:db8:abcd:0012:8000::1', 'AAAA', 'REFUSED'),
    ('Subnet-Order 2 DROPPED IPv6', ['acl example.org {', 'drop net 2001:db8:abcd:0012::0/64', 'block net 2001:db8:abcd:0012:8000::/66', '}'], (), 'www.example.org.', '2001:db8:abcd:0012:8000::1', 'AAAA', 'DROP'),
    ('Drop-Type 1 DROPPED IPv6', ['acl example.org {', 'drop type A', 'allow net 2001:db8:85a3:0000::0/64', '}'], (), 'www.example.org.', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'A', 'DROP'),
    ('Drop-Type 2 ALLOWED IPv6', ['acl example.org {', 'drop type A', 'allow net 2001:db8:85a3:0000::0/64', '}'], (), 'www.example.org.', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'AAAA', 'NOERROR'),
]


def serve(lines, zones, domain, source, qtype, registry=None):
    if source.startswith("2001") and zones == ("eth0",):
        # CoreDNS's test puts the block key in the remote address's IPv6 zone.
        source, zones = f"{source}%eth0", ()
    plugin = AclPlugin(rules_of(lines, zones), registry=registry or CollectorRegistry())
    request = make_request(domain, qtype, client=(source, 53))
    recorder = Recorder()
    return request, plugin.serve(request, recorder), recorder


def extended_errors(response) -> list[int]:
    return [option.code for option in response.options if isinstance(option, dns.edns.EDEOption)]


@pytest.mark.parametrize("name, lines, zones, domain, source, qtype, outcome", SERVE_ROWS,
                         ids=[row[0] for row in SERVE_ROWS])
def test_serve_table(name, lines, zones, domain, source, qtype, outcome):
    """CoreDNS's TestACLServeDNS rows: REFUSED with EDE Blocked, NOERROR with EDE Filtered, no reply, or the next plugin."""
    _, response, recorder = serve(lines, zones, domain, source, qtype)
    if outcome == "NOERROR":
        assert recorder.called
        return
    assert not recorder.called
    if outcome == "DROP":
        assert response is None
    elif outcome == "REFUSED":
        assert response.rcode() == dns.rcode.REFUSED and extended_errors(response) == [15]
    else:
        assert response.rcode() == dns.rcode.NOERROR and not response.answer
        assert extended_errors(response) == [17]


def test_a_refusal_carries_an_opt_with_do_even_without_edns():
    """CoreDNS's SetEdns0(4096, true): a client that sent no OPT gets one, 4096 bytes, DO set; no AA."""
    _, response, _ = serve(["acl {", "block", "}"], (), "www.example.org.", "10.0.0.1", "A")
    assert response.edns == 0 and response.payload == 4096 and response.ednsflags & dns.flags.DO
    assert not response.flags & dns.flags.AA


def test_a_refusal_to_an_edns_client_offers_its_own_size():
    """With the client's OPT, the answer's size is the client's (CoreDNS's SizeAndDo)."""
    lines = ["acl {", "block", "}"]
    plugin = AclPlugin(rules_of(lines), registry=CollectorRegistry())
    request = make_request("www.example.org.", edns=True, payload=1400, client=("10.0.0.1", 53))
    assert plugin.serve(request, Recorder()).payload == 1400


# --- metrics --------------------------------------------------------------------------------


def test_each_outcome_counts_in_its_metric():
    """Blocked, filtered and dropped count per server and zone; allowed per server."""
    registry = CollectorRegistry()
    lines = ["acl example.org {", "block net 10.0.0.0/8", "filter net 172.16.0.0/12", "drop net 192.168.0.0/16", "}"]
    for source in ("10.0.0.1", "172.16.0.1", "192.168.0.1", "192.0.2.1", "192.0.2.2"):
        serve(lines, (), "www.example.org.", source, "A", registry)
    labels = {"server": "dns://:53", "zone": "example.org.", "view": ""}
    assert registry.get_sample_value("coredns_acl_blocked_requests_total", labels) == 1
    assert registry.get_sample_value("coredns_acl_filtered_requests_total", labels) == 1
    assert registry.get_sample_value("coredns_acl_dropped_requests_total", labels) == 1
    assert registry.get_sample_value("coredns_acl_allowed_requests_total", {"server": "dns://:53", "view": ""}) == 2


# --- the table of rendered answers ----------------------------------------------------------


def test_an_allowed_answer_is_guarded_against_clients_the_acl_refuses():
    """An answer let through for one client may be reused only for clients the acl also lets through."""
    request, _, _ = serve(["acl {", "block net 10.0.0.0/8", "}"], (), "www.example.org.", "192.0.2.1", "A")
    (guard,) = request.fastpath.guards
    assert guard(b"", 0, "192.0.2.9") and not guard(b"", 0, "10.0.0.1")
    assert not guard(b"", 0, "::ffff:10.0.0.1")


def test_a_name_no_rule_covers_needs_no_guard():
    """Outside every rule's zones the answer holds for every client: no guard, but reuses still count as allowed."""
    request, _, _ = serve(["acl a.example.org {", "block", "}"], (), "b.example.org.", "10.0.0.1", "A")
    assert request.fastpath.reusable and request.fastpath.guards == ()
    assert len(request.fastpath.on_reuse) == 1


@pytest.mark.parametrize("action", ["block", "filter", "drop"])
def test_refusals_are_never_reused(action):
    """A blocked, filtered or dropped query is decided afresh every time."""
    request, _, _ = serve(["acl {", action, "}"], (), "www.example.org.", "10.0.0.1", "A")
    assert not request.fastpath.reusable
