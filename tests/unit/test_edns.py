"""EDNS(0) options checked on the raw bytes (discovery.dns.edns).

Rows follow the RFCs: 6891 section 6.1.2 (options tile the RDATA), 7873
section 5.2.2 (COOKIE lengths: 8, or 16 to 40), 7871 sections 6 and 7.1.1
(ECS family, prefix lengths and address bytes agree; no bit set past the
source prefix), 8914 section 2 (an extended error holds its 2-byte code).
FAMILY 0 with empty prefixes passes, as miekg/dns's EDNS0_SUBNET.unpack
lets it ("dig sets AddressFamily to 0"); LLQ, UL, EXPIRE and TCP keepalive
lengths follow what miekg/dns's edns.go unpackers refuse.
"""

from __future__ import annotations

import struct

import dns.message
import dns.rrset
import pytest

from discovery.dns.edns import has_malformed_options, options_end


def option(code: int, data: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HH", code, len(data) if length is None else length) + data


def ecs(family: int, source: int, scope: int, address: bytes) -> bytes:
    return option(8, struct.pack("!HBB", family, source, scope) + address)


WELL_FORMED = [
    pytest.param(b"", id="no-options"),
    pytest.param(option(10, b"c" * 8), id="client-cookie"),
    pytest.param(option(10, b"c" * 16), id="server-cookie-of-8"),
    pytest.param(option(10, b"c" * 40), id="server-cookie-of-32"),
    pytest.param(ecs(1, 24, 0, b"\x0a\x01\x02"), id="ecs-ipv4-24"),
    pytest.param(ecs(1, 0, 0, b""), id="ecs-ipv4-0"),
    pytest.param(ecs(1, 23, 0, b"\x0a\x01\x02"), id="ecs-ipv4-23-padding-clear"),
    pytest.param(ecs(2, 128, 0, b"\x20" * 16), id="ecs-ipv6-128"),
    pytest.param(ecs(0, 0, 0, b""), id="ecs-family-0-as-dig-sends-it"),
    pytest.param(option(3, b""), id="nsid"),
    pytest.param(option(65001, b"anything at all"), id="unknown-option"),
    pytest.param(option(15, b"\x00\x06"), id="extended-error-with-its-info-code"),
    pytest.param(option(11, b""), id="tcp-keepalive-empty"),
    pytest.param(option(9, b""), id="expire-empty"),
    pytest.param(option(12, b"\x00" * 7), id="padding"),
    pytest.param(option(24, b"\xff\xfe"), id="filtering-option-not-utf8"),
    pytest.param(option(10, b"c" * 8) + ecs(1, 8, 0, b"\x0a") + option(3, b""), id="three-options"),
]

MALFORMED = [
    pytest.param(option(10, b"c" * 7), id="cookie-of-7"),
    pytest.param(option(10, b""), id="cookie-empty"),
    pytest.param(option(10, b"c" * 9), id="cookie-of-9"),
    pytest.param(option(10, b"c" * 15), id="cookie-of-15"),
    pytest.param(option(10, b"c" * 41), id="cookie-of-41"),
    pytest.param(option(8, b"\x00\x01\x18"), id="ecs-shorter-than-its-header"),
    pytest.param(ecs(1, 24, 0, b"\x0a\x01"), id="ecs-too-few-address-bytes"),
    pytest.param(ecs(1, 24, 0, b"\x0a\x01\x02\x03"), id="ecs-too-many-address-bytes"),
    pytest.param(ecs(1, 33, 0, b"\x0a" * 5), id="ecs-ipv4-prefix-past-32"),
    pytest.param(ecs(1, 8, 33, b"\x0a"), id="ecs-ipv4-scope-past-32"),
    pytest.param(ecs(2, 129, 0, b"\x20" * 17), id="ecs-ipv6-prefix-past-128"),
    pytest.param(ecs(1, 23, 0, b"\x0a\x01\x03"), id="ecs-bit-set-past-the-prefix"),
    pytest.param(ecs(3, 8, 0, b"\x0a"), id="ecs-unknown-family"),
    pytest.param(ecs(0, 8, 0, b"\x0a"), id="ecs-family-0-with-a-prefix"),
    pytest.param(option(3, b"", length=1), id="option-runs-past-the-record"),
    pytest.param(b"\x00\x03\x00", id="truncated-option-header"),
    pytest.param(option(3, b"") + b"\x00", id="stray-byte-after-the-options"),
    pytest.param(option(15, b"\x00"), id="extended-error-without-its-info-code"),
    pytest.param(option(11, b"\x00"), id="tcp-keepalive-of-1"),
    pytest.param(option(9, b"\x00\x00"), id="expire-of-2"),
    pytest.param(option(2, b"\x00" * 5), id="update-lease-of-5"),
    pytest.param(option(1, b"\x00" * 17), id="llq-of-17"),
]


@pytest.mark.parametrize("rdata", WELL_FORMED)
def test_well_formed_options_end_where_the_record_ends(rdata):
    """Options that tile the RDATA and follow their RFCs give the RDATA's end."""
    data = b"\xff" * 5 + rdata
    assert options_end(data, 5, len(rdata)) == len(data)


@pytest.mark.parametrize("rdata", MALFORMED)
def test_malformed_options_give_minus_one(rdata):
    """A malformed option anywhere in the RDATA gives -1 (FORMERR)."""
    assert options_end(rdata, 0, len(rdata)) == -1


def test_an_rdata_longer_than_the_packet_is_malformed():
    """An OPT RDATA length past the packet's end is FORMERR (RFC 6891 section 6.1.2)."""
    assert options_end(option(3, b""), 0, 10) == -1


def query_with(rdata: bytes, **make_query) -> bytes:
    wire = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=0, **make_query).to_wire()
    return wire[:-2] + struct.pack("!H", len(rdata)) + rdata


@pytest.mark.parametrize("rdata", MALFORMED)
def test_a_query_with_a_malformed_option_is_found_out(rdata):
    """has_malformed_options finds the OPT record after the question and judges its options."""
    assert has_malformed_options(query_with(rdata))


@pytest.mark.parametrize("rdata", WELL_FORMED)
def test_a_query_with_well_formed_options_passes(rdata):
    """Well-formed options are not reported."""
    assert not has_malformed_options(query_with(rdata))


def test_an_opt_record_after_another_additional_record_is_found():
    """The OPT record is found wherever it sits in the additional section."""
    query = dns.message.make_query("web.default.svc.cluster.local.", "A")
    query.additional.append(dns.rrset.from_text("x.example.", 60, "IN", "A", "192.0.2.1"))
    wire = query.to_wire()
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 11) + option(10, b"c" * 7)
    wire = wire[:10] + struct.pack("!H", 2) + wire[12:] + opt
    assert has_malformed_options(wire)


def test_a_message_that_cannot_be_walked_is_left_to_the_parser():
    """A name that runs past the end is not "malformed options": the full parser answers FORMERR."""
    assert not has_malformed_options(b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x05abc")
