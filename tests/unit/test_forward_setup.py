"""The `forward` directive's syntax, defaults and errors (CoreDNS's forward/setup.go)."""

from __future__ import annotations

import dns.rcode
import pytest

from discovery.config import SetupContext, load_text
from discovery.corefile import CorefileError, parse
from discovery.dns.forward import setup_forward
from discovery.dns.tls import TLSSettings
from discovery.dns.upstream import HealthCheck, UpstreamAddress
from tests.fakeapi.tls import make_pki


def forward(text: str):
    block = parse(f".:53 {{\n{text}\n}}\n", "Corefile")[0]
    return setup_forward(block.directives[0], SetupContext((".",), "Corefile", 1))


def error_of(text: str) -> CorefileError:
    with pytest.raises(CorefileError) as caught:
        forward(text)
    return caught.value


def test_defaults_are_coredns_defaults():
    """max_fails 2, expire 10s, read timeout 2s, health checks every 0.5s with RD, random policy."""
    config = forward("forward . 192.0.2.1")
    assert config.upstreams == (UpstreamAddress("192.0.2.1", 53),)
    assert (config.max_fails, config.expire, config.read_timeout, config.policy) == (2, 10.0, 2.0, "random")
    assert config.health_check == HealthCheck(interval=0.5, recursion_desired=True, domain=".")
    assert config.max_concurrent == 0 and config.max_connect_attempts is None


@pytest.mark.parametrize(
    "to, expected",
    [
        ("192.0.2.1", UpstreamAddress("192.0.2.1", 53)),
        ("dns://192.0.2.1", UpstreamAddress("192.0.2.1", 53)),
        ("192.0.2.1:5353", UpstreamAddress("192.0.2.1", 5353)),
        ("dns://192.0.2.1:5353", UpstreamAddress("192.0.2.1", 5353)),
        ("2001:db8::1", UpstreamAddress("2001:db8::1", 53)),
        ("[2001:db8::1]:5353", UpstreamAddress("2001:db8::1", 5353)),
        ("dns://[2001:db8::1]", UpstreamAddress("2001:db8::1", 53)),
    ],
)
def test_address_forms(to, expected):
    """Plain, dns:// and bracketed IPv6 addresses, with or without a port (53 by default)."""
    assert forward(f"forward . {to}").upstreams == (expected,)


def test_ipv6_labels_are_bracketed_like_go():
    """The `to` label of an IPv6 upstream is net.JoinHostPort's "[addr]:port"."""
    assert UpstreamAddress("2001:db8::1", 53).label == "[2001:db8::1]:53"


def test_resolv_conf_nameservers_are_read_at_setup(tmp_path):
    """A file argument is a resolv.conf: its nameservers (zone ids dropped) become upstreams."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search cluster.local\nnameserver 192.0.2.1\n# nameserver 192.0.2.9\n"
                      "options ndots:5\nnameserver fe80::1%eth0\n")
    config = forward(f"forward . {resolv}")
    assert config.upstreams == (UpstreamAddress("192.0.2.1", 53), UpstreamAddress("fe80::1", 53))


def test_resolv_conf_without_nameservers_is_an_error(tmp_path):
    """No address at all from the TOs: 'no valid upstream addresses found'."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search example.org\n")
    assert "no valid upstream addresses found" in error_of(f"forward . {resolv}").message


def test_missing_file_is_an_error_naming_it(tmp_path):
    """A TO that is neither an address nor a readable file is named in the error."""
    missing = tmp_path / "nope.conf"
    err = error_of(f"forward . {missing}")
    assert str(missing) in err.message and err.line == 2


def test_addresses_are_deduplicated_in_order():
    """The same upstream twice is one upstream, kept at its first place."""
    config = forward("forward . 192.0.2.2 192.0.2.1 dns://192.0.2.2:53")
    assert [u.host for u in config.upstreams] == ["192.0.2.2", "192.0.2.1"]


def test_more_than_fifteen_tos_is_an_error():
    """CoreDNS allows at most 15 TOs."""
    tos = " ".join(f"192.0.2.{i}" for i in range(1, 17))
    assert "more than 15 TOs configured: 16" in error_of(f"forward . {tos}").message


@pytest.mark.parametrize("to", ["https://192.0.2.1", "quic://192.0.2.1", "grpc://192.0.2.1"])
def test_other_encrypted_transports_are_refused(to):
    """DNS over HTTPS, QUIC and gRPC are not supported, and say so in CoreDNS's words."""
    assert "not supported as a destination protocol" in error_of(f"forward . {to}").message


@pytest.mark.parametrize(
    "to, expected",
    [
        ("tls://192.0.2.1", UpstreamAddress("192.0.2.1", 853, "tls")),
        ("tls://192.0.2.1:10853", UpstreamAddress("192.0.2.1", 10853, "tls")),
        ("tls://2001:db8::1", UpstreamAddress("2001:db8::1", 853, "tls")),
        ("tls://[2001:db8::1]:10853", UpstreamAddress("2001:db8::1", 10853, "tls")),
        ("tls://9.9.9.9%dns.quad9.net", UpstreamAddress("9.9.9.9", 853, "tls", "dns.quad9.net")),
        ("tls://9.9.9.9%dns.quad9.net:10853", UpstreamAddress("9.9.9.9", 10853, "tls", "dns.quad9.net")),
        ("tls://[2001:db8::1%dns.example]:10853", UpstreamAddress("2001:db8::1", 10853, "tls", "dns.example")),
    ],
)
def test_tls_address_forms(to, expected):
    """tls:// upstreams default to port 853; `%NAME` before the port names the server (CoreDNS's splitZone)."""
    assert forward(f"forward . {to}").upstreams == (expected,)


def test_the_same_address_over_tls_and_plain_dns_is_two_upstreams():
    """Deduplication keeps tls://A and A apart: they are different transports."""
    assert len(forward("forward . tls://192.0.2.1:53 192.0.2.1:53").upstreams) == 2


def test_tls_without_arguments_uses_the_system_trust_store():
    """`tls` alone: no client certificate, the system's CAs (CoreDNS's NewTLSClientConfig(""))."""
    config = forward("forward . tls://192.0.2.1 {\n tls\n}")
    assert config.tls == TLSSettings()


def test_tls_with_one_argument_reads_the_ca(tmp_path):
    """`tls CA`: the server is verified against that CA, and no client certificate is shown."""
    pki = make_pki(str(tmp_path))
    config = forward(f"forward . tls://127.0.0.1 {{\n tls {pki.ca_cert}\n tls_servername localhost\n}}")
    assert config.tls.ca == open(pki.ca_cert, "rb").read()
    assert config.tls.certificate is None and config.tls.server_name == "localhost"


def test_tls_with_two_arguments_reads_the_client_certificate(tmp_path):
    """`tls CERT KEY`: a client certificate, and the system's CAs."""
    pki = make_pki(str(tmp_path))
    config = forward(f"forward . tls://127.0.0.1 {{\n tls {pki.client_cert} {pki.client_key}\n}}")
    assert config.tls.certificate == open(pki.client_cert, "rb").read() and config.tls.ca is None


def test_tls_with_three_arguments_reads_certificate_key_and_ca(tmp_path):
    """`tls CERT KEY CA`: a client certificate and a CA of our own."""
    pki = make_pki(str(tmp_path))
    config = forward(f"forward . tls://127.0.0.1 {{\n tls {pki.client_cert} {pki.client_key} {pki.ca_cert}\n}}")
    assert config.tls.key == open(pki.client_key, "rb").read()
    assert config.tls.ca == open(pki.ca_cert, "rb").read()



def test_the_client_key_stays_out_of_the_configs_repr(tmp_path):
    """The private key read for `tls CERT KEY` is kept, but never shown in a repr (a log line)."""
    pki = make_pki(str(tmp_path))
    config = forward(f"forward . tls://127.0.0.1 {{\n tls {pki.client_cert} {pki.client_key}\n}}")
    assert config.tls.key and b"PRIVATE KEY" in config.tls.key
    assert "PRIVATE KEY" not in repr(config)

@pytest.mark.parametrize(
    "option, message",
    [
        ("tls a b c d", "expected 0 to 3 arguments, got 4"),
        ("tls /nonexistent/ca.pem", "error reading /nonexistent/ca.pem"),
        ("tls /nonexistent/c.pem /nonexistent/k.pem", "error reading /nonexistent/c.pem"),
        ("tls_servername", "expected 1 argument, got 0"),
    ],
)
def test_bad_tls_options_name_the_problem_and_the_line(option, message):
    """tls with too many arguments or unreadable files fails at its own line."""
    err = error_of(f"forward . tls://192.0.2.1 {{\n{option}\n}}")
    assert message in err.message and err.line == 3


def test_a_file_that_is_not_a_certificate_is_an_error(tmp_path):
    """A CA file without a PEM certificate fails at setup, naming the file."""
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    err = error_of(f"forward . tls://192.0.2.1 {{\n tls {bogus}\n}}")
    assert f"could not read root certs from {bogus}" in err.message and err.line == 3


def test_a_key_that_is_not_the_certificates_is_an_error(tmp_path):
    """tls CERT KEY with a key of another certificate fails at setup."""
    pki = make_pki(str(tmp_path))
    err = error_of(f"forward . tls://192.0.2.1 {{\n tls {pki.client_cert} {pki.server_key}\n}}")
    assert "could not load TLS cert" in err.message and err.line == 3


def test_both_server_name_forms_at_once_is_an_error():
    """tls_servername and a per-address %NAME clash, as in CoreDNS."""
    err = error_of("forward . tls://192.0.2.1%a.example {\n tls_servername b.example\n}")
    assert "both forward ('b.example') and proxy level ('a.example') TLS servernames are set" in err.message


def test_a_bad_port_is_an_error():
    """A port outside 1-65535 is refused at setup."""
    assert "invalid port" in error_of("forward . 192.0.2.1:70000").message


def test_from_is_normalised_and_a_cidr_takes_its_first_zone():
    """FROM is lower-cased and fully qualified; a CIDR FROM uses its first reverse zone."""
    assert forward("forward Example.ORG 192.0.2.1").from_zone == "example.org."
    assert forward("forward 10.0.0.0/8 192.0.2.1").from_zone == "10.in-addr.arpa."


def test_block_options():
    """Every supported option lands in the config."""
    config = forward(
        "forward . 192.0.2.1 {\n except Example.org internal\n force_tcp\n prefer_udp\n expire 5s\n"
        " max_fails 3\n health_check 5s no_rec domain example.net\n policy round_robin\n max_concurrent 100\n"
        " read_timeout 1s\n max_connect_attempts 4\n failover SERVFAIL refused\n"
        " failfast_all_unhealthy_upstreams\n source_address 127.0.0.2\n}"
    )
    assert config.ignored == ("example.org.", "internal.")
    assert config.force_tcp and config.prefer_udp and config.failfast_all_unhealthy_upstreams
    assert (config.expire, config.max_fails, config.policy, config.max_concurrent) == (5.0, 3, "round_robin", 100)
    assert config.health_check == HealthCheck(interval=5.0, recursion_desired=False, domain="example.net.", tcp=True)
    assert (config.read_timeout, config.max_connect_attempts) == (1.0, 4)
    assert config.failover_rcodes == (dns.rcode.SERVFAIL, dns.rcode.REFUSED)
    assert config.source_address == "127.0.0.2"


@pytest.mark.parametrize(
    "option, message",
    [
        ("policy fastest", "unknown policy 'fastest'"),
        ("health_check -1s", "health_check can't be negative"),
        ("health_check 1s sometimes", "health_check: unknown option sometimes"),
        ("failover NOERROR", "NoError cannot be used in failover"),
        ("failover BOGUS", "BOGUS is not a valid rcode"),
        ("max_concurrent -1", "not a non-negative integer"),
        ("max_fails many", "not a non-negative integer"),
        ("expire soon", "invalid duration"),
        ("read_timeout 0s", "read_timeout must be positive"),
        ("frobnicate", "unknown property 'frobnicate'"),
        ("doh_method GET", "not supported"),
        ("next NXDOMAIN", "not supported"),
    ],
)
def test_bad_options_name_the_problem_and_the_line(option, message):
    """A bad option is a CorefileError at its own line with CoreDNS's wording where it has one."""
    err = error_of(f"forward . 192.0.2.1 {{\n{option}\n}}")
    assert message in err.message and err.line == 3


def test_except_matching():
    """Names under an except zone are not forwarded; others under FROM are."""
    config = forward("forward . 192.0.2.1 {\n except example.org\n}")
    assert not config.matches("www.example.org.") and config.matches("example.com.")


def test_kubeadm_corefile_blocks_load_in_plugin_order(tmp_path):
    """cache, loop and forward from a kubeadm-style block come out in CoreDNS's plugin order."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.1\n")
    config = load_text(
        f".:53 {{\n    forward . {resolv} {{\n       max_concurrent 1000\n    }}\n    loop\n"
        "    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n}\n"
    )
    assert [name for name, _ in config.servers[0].plugins] == ["cache", "loop", "forward"]
