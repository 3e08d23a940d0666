"""bufsize: CoreDNS's setup and handler tables (plugin/bufsize/*_test.go), and the table of rendered answers."""

from __future__ import annotations

import pytest

from discovery.dns.bufsize import BufsizeConfig, BufsizePlugin, setup_bufsize
from discovery.dns.request import FastPathPolicy
from tests.unit.plugin_setup import Recorder, setup_error, setup_of
from tests.upstream.requests import make_request


@pytest.mark.parametrize("text, size", [
    ("bufsize", 1232),
    ('bufsize "1220"', 1220),
    ("bufsize 512", 512),
    ("bufsize 4096", 4096),
])
def test_setup_reads_the_size(text, size):
    """CoreDNS's TestSetupBufsize positive rows: no argument is 1232, else the size given."""
    assert setup_of(setup_bufsize, text) == BufsizeConfig(size)


@pytest.mark.parametrize("text", [
    'bufsize "5000"', 'bufsize "512 512"', 'bufsize "511"', 'bufsize "abc123"', "bufsize 512 512",
    "bufsize 4097", "bufsize 1232 {\n}",
])
def test_setup_refuses_a_bad_size(text):
    """CoreDNS's TestSetupBufsize error rows: out of 512-4096, not a number, or more than one argument."""
    assert "bufsize" in setup_error(setup_bufsize, text).message


def run(size: int, request):
    recorder = Recorder()
    BufsizePlugin(BufsizeConfig(size)).serve(request, recorder)
    return recorder.requests[0]


def test_a_larger_request_size_is_limited():
    """A request offering more than SIZE reaches the next plugin offering SIZE, and a UDP answer is cut there."""
    seen = run(1024, make_request(".", edns=True, payload=1024 + 128))
    assert seen.query.payload == 1024
    assert seen.max_size == 1024


def test_a_smaller_request_size_is_not_increased():
    """A request offering less than SIZE keeps its own size."""
    seen = run(1024, make_request(".", edns=True, payload=1024 - 128))
    assert seen.query.payload == 1024 - 128
    assert seen.max_size == 1024 - 128


def test_a_request_without_edns_gets_no_opt():
    """A request without OPT gets none added, and stays at 512."""
    seen = run(1024, make_request("."))
    assert seen.query.edns < 0
    assert seen.max_size == 512


def test_tcp_answers_are_not_cut_but_the_opt_is_lowered():
    """Over TCP the answer may be any size (CoreDNS's edns.Size), though the OPT passed on says SIZE."""
    seen = run(1024, make_request(".", proto="tcp", edns=True, payload=4096))
    assert seen.query.payload == 1024
    assert seen.max_size == 65535


def test_reused_udp_answers_are_limited_to_the_size():
    """Every answer that passed bufsize may be reused over UDP only up to SIZE, whatever the client offered."""
    request = make_request(".", edns=True, payload=512)
    run(1232, request)
    assert request.fastpath.max_udp_size == 1232
    assert FastPathPolicy().max_udp_size == 65535
