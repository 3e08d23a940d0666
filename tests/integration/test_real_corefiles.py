"""Corefiles that real clusters run, from tests/corefiles/, loaded and run unchanged.

Each folder of tests/corefiles/ holds a Corefile copied from a public
distribution source (named in its first lines): kubeadm's successors in the
Kubernetes docs, k3s, AKS with its `coredns-custom` files, OpenShift's DNS
operator, kubespray, EKS, and the examples of CoreDNS's own READMEs. A case
below is one such Corefile (for AKS, with one set of custom files in
custom/), the upstreams its `forward` lines name, and what it must answer.

Only file paths change: a copy is written to a folder of the test with
/etc/coredns/ (k3s's NodeHosts and custom/) and the CA file OpenShift names
pointing into that folder. Ports do not change: the Corefile runs in a
`Sandbox`, a network namespace of its own, where :53, :5353, :9153, :8080
and :8181 are free, with /etc/resolv.conf naming a scripted upstream and the
service account leading to a fake API server that holds the Service
`web.default` (see tests/integration/sandbox.py). Upstreams at fixed
addresses (172.16.0.1, 8.8.8.8, ...) are served on those addresses inside
the namespace.

Every Corefile is parsed, loaded and run unchanged: each directive a
distribution ships must be one Wayfinder supports.
"""

from __future__ import annotations

import datetime
import pathlib
import shutil
import socket

import attrs
import dns.rcode
import pytest
import pytest_twisted
from twisted.internet import reactor

from discovery.config import load
from discovery import certs, plugin
from discovery.corefile import parse_file
from tests.integration.live import poll_until
from tests.integration.sandbox import OUTSIDE_ADDRESS, OUTSIDE_NAME, sandbox  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

CORE_FILES = pathlib.Path(__file__).resolve().parents[1] / "corefiles"
#: The CA file OpenShift's operator names for a DNS-over-TLS upstream's CA bundle.
OPENSHIFT_CA_BUNDLE = "/etc/pki/dns.bar.com-ca-cacerts-2/ca-bundle.crt"


@attrs.frozen
class Check:
    """A question and the records a section of the answer must hold, as "OWNER TYPE RDATA" lines.

    `{web}` in an expected line is the ClusterIP of the Service web.default,
    `{hostname}` the machine's host name.
    """

    name: str
    rdtype: str = "A"
    expected: tuple[str, ...] = ()
    port: int = 53
    rdclass: str = "IN"
    rcode: str = "NOERROR"
    section: str = "answer"
    #: Only records of these types count (all when empty).
    types: tuple[str, ...] = ()


@attrs.frozen
class Upstream:
    """A nameserver a Corefile forwards to: its address, port and A records."""

    host: str
    answers: dict
    port: int = 53


@attrs.frozen
class TLSUpstream:
    """A DNS-over-TLS nameserver a Corefile forwards to, whose certificate names server_name
    and is signed by the CA the Corefile's `tls` line names."""

    host: str
    port: int
    server_name: str
    records: tuple[str, ...]


@attrs.frozen
class Case:
    id: str
    folder: str
    checks: tuple[Check, ...]
    #: A folder beside the Corefile copied as its custom/ (AKS's coredns-custom ConfigMap).
    custom: str | None = None
    upstreams: tuple[Upstream, ...] = ()
    tls_upstreams: tuple[TLSUpstream, ...] = ()
    #: What the nameserver of /etc/resolv.conf answers, when not just OUTSIDE_NAME.
    resolver_answers: dict | None = None


def cluster(port: int = 53) -> Check:
    """The Service web.default: its ClusterIP, from the kubernetes plugin."""
    return Check("web.default.svc.cluster.local.", expected=("web.default.svc.cluster.local. A {web}",), port=port)


def outside(address: str = OUTSIDE_ADDRESS, port: int = 53) -> Check:
    """A name outside the cluster, answered by the upstream the block forwards to."""
    return Check(OUTSIDE_NAME, expected=(f"{OUTSIDE_NAME} A {address}",), port=port)


def a_record(name: str, address: str, port: int = 53) -> Check:
    return Check(name, expected=(f"{name} A {address}",), port=port)


CASES = (
    Case("kubernetes-docs-default", "kubernetes-docs-default", (cluster(), outside())),
    Case(
        "kubernetes-docs-stub-domain", "kubernetes-docs-stub-domain",
        (cluster(), outside("192.0.2.172"), a_record("web.service.consul.local.", "10.150.0.80")),
        upstreams=(
            Upstream("172.16.0.1", {OUTSIDE_NAME: "192.0.2.172"}),
            Upstream("10.150.0.1", {"web.service.consul.local.": "10.150.0.80"}),
        ),
    ),
    Case(
        "k3s", "k3s",
        (cluster(), outside(), a_record("k3d-infrastructure-server-0.", "172.18.0.3"),
         a_record("host.k3d.internal.", "192.168.65.254")),
    ),
    Case("aks", "aks", (cluster(), outside())),
    Case("aks-hosts-override", "aks", (cluster(), outside(), a_record("example1.org.", "10.0.0.1")),
         custom="custom-hosts"),
    Case(
        "aks-custom-domain", "aks", (cluster(), outside(), a_record("dev.puglife.local.", "192.11.0.20")),
        custom="custom-puglife", upstreams=(Upstream("192.11.0.1", {"dev.puglife.local.": "192.11.0.20"}),),
    ),
    Case(
        "aks-stub-domains", "aks",
        (cluster(), outside(), a_record("www.abc.com.", "1.2.3.40"), a_record("web.my.cluster.local.", "2.3.4.50")),
        custom="custom-stub-domains",
        upstreams=(Upstream("1.2.3.4", {"www.abc.com.": "1.2.3.40"}),
                   Upstream("2.3.4.5", {"web.my.cluster.local.": "2.3.4.50"})),
    ),
    Case(
        # The rewritten name goes to resolv.conf's nameserver, which must know it (as the AKS page warns).
        "aks-rewrite", "aks", (cluster(), outside(), a_record("web.example.com.", "10.0.0.99")),
        custom="custom-rewrite",
        resolver_answers={OUTSIDE_NAME: OUTSIDE_ADDRESS, "web.default.svc.cluster.local.": "10.0.0.99"},
    ),
    Case(
        "openshift-default", "openshift-default",
        (cluster(5353), outside(port=5353), a_record("www.foo.com.", "192.0.2.101", 5353),
         a_record("www.example.com.", "192.0.2.103", 5353)),
        upstreams=(
            Upstream("1.1.1.1", {"www.foo.com.": "192.0.2.101"}),
            Upstream("2.2.2.2", {"www.foo.com.": "192.0.2.101"}, 5353),
            Upstream("3.3.3.3", {"www.example.com.": "192.0.2.103"}),
        ),
    ),
    Case(
        # bar.com's second upstream, tls://2.2.2.2:5353, cannot share :5353 with the
        # server inside one namespace: it stays unreachable, and forward moves on to 1.1.1.1.
        "openshift-forward-tls", "openshift-forward-tls",
        (cluster(5353), outside(port=5353),
         Check("hostname.bind.", "TXT", ('hostname.bind. TXT "{hostname}"',), port=5353, rdclass="CH"),
         a_record("www.bar.com.", "192.0.2.120", 5353)),
        tls_upstreams=(TLSUpstream("1.1.1.1", 853, "dns.bar.com", ("www.bar.com. 300 IN A 192.0.2.120",)),),
    ),
    Case("kubespray-default", "kubespray-default", (cluster(), outside())),
    Case(
        "kubespray-external-zones", "kubespray-external-zones",
        (cluster(), outside(), a_record("www.example.com.", "192.0.2.30"),
         a_record("www.example.io.", "192.0.2.31", 1053)),
        upstreams=tuple(
            Upstream(host, {"www.example.com.": "192.0.2.30", "www.example.io.": "192.0.2.31"})
            for host in ("1.1.1.1", "2.2.2.2")
        ),
    ),
    Case("eks", "eks", (cluster(), outside())),
    Case("rke2", "rke2", (cluster(), outside())),
    Case(
        "coredns-rewrite-edns0-whoami", "coredns-rewrite-edns0-whoami",
        (Check("example.org.", expected=("example.org. A 127.0.0.1",), section="additional", types=("A",)),),
    ),
    Case("coredns-template-nxdomain", "coredns-template-nxdomain",
         (Check("anything.example.", rcode="NXDOMAIN"), Check("cluster.local.", "SOA", rcode="NXDOMAIN"))),
    Case(
        "coredns-template-ip-names", "coredns-template-ip-names",
        (a_record("ip-10-1-2-3.example.", "10.1.2.3"),
         Check("3.2.1.10.in-addr.arpa.", "PTR", ("3.2.1.10.in-addr.arpa. PTR ip-10-1-2-3.example.",)),
         outside("192.0.2.88")),
        upstreams=(Upstream("8.8.8.8", {OUTSIDE_NAME: "192.0.2.88"}),),
    ),
    Case(
        "coredns-template-cname", "coredns-template-cname",
        (Check("foogle.com.", expected=("foogle.com. CNAME google.com.", "google.com. A 192.0.2.40")),),
        upstreams=(Upstream("8.8.8.8", {"google.com.": "192.0.2.40"}),),
    ),
)


def prepare(case: Case, directory: pathlib.Path) -> pathlib.Path:
    """Copy the case's Corefile (and custom files) into directory with its paths pointing there."""
    source = CORE_FILES / case.folder
    text = (source / "Corefile").read_text()
    text = text.replace("/etc/coredns/", f"{directory}/").replace(OPENSHIFT_CA_BUNDLE, f"{directory}/ca-bundle.crt")
    for extra in source.iterdir():
        if extra.is_file() and extra.name != "Corefile":
            shutil.copy(extra, directory / extra.name)
    if case.custom:
        shutil.copytree(source / case.custom, directory / "custom")
    if OPENSHIFT_CA_BUNDLE in (source / "Corefile").read_text():
        ca = certs.make_ca(datetime.datetime.now(datetime.timezone.utc), common_name="test DNS-over-TLS CA")
        (directory / "ca-bundle.crt").write_bytes(ca.certificate_pem())
        (directory / "ca-bundle.key").write_bytes(ca.key_pem())
    corefile = directory / "Corefile"
    corefile.write_text(text)
    return corefile


def directives_of(corefile: pathlib.Path) -> set[str]:
    """The directives the Corefile's server blocks use, after imports."""
    return {directive.name for block in parse_file(str(corefile), environ={}) for directive in block.directives}


def test_the_folder_and_the_cases_agree():
    """Every folder of tests/corefiles/ is a case, so that no copied Corefile goes untested."""
    assert {path.name for path in CORE_FILES.iterdir() if path.is_dir()} == {case.folder for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_real_corefile_parses(case, tmp_path):
    """The grammar (imports of custom files and of globs that match nothing included) takes every one."""
    blocks = parse_file(str(prepare(case, tmp_path)), environ={})
    assert blocks and all(block.directives for block in blocks)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_real_corefile_uses_only_supported_directives(case, tmp_path):
    """Each directive the distribution's Corefile uses (its imports included) is one Wayfinder has."""
    assert directives_of(prepare(case, tmp_path)) - set(plugin.names()) == set()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_real_corefile_loads(case, tmp_path):
    """The Corefile loads as it is."""
    assert load(str(prepare(case, tmp_path)), environ={}).servers


def issue(folder: pathlib.Path, server_name: str) -> tuple[pathlib.Path, pathlib.Path]:
    """A server certificate for server_name from the CA prepare() wrote as the CA bundle."""
    ca = certs.load_key_pair(str(folder / "ca-bundle.crt"), str(folder / "ca-bundle.key"))
    pair = certs.issue_serving_certificate(ca, [server_name], datetime.datetime.now(datetime.timezone.utc))
    cert, key = folder / f"{server_name}.crt", folder / f"{server_name}.key"
    cert.write_bytes(pair.certificate_pem())
    key.write_bytes(pair.key_pem())
    return cert, key


def section_lines(response, check: Check) -> list[str]:
    return sorted(
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
        for rrset in getattr(response, check.section)
        if not check.types or dns.rdatatype.to_text(rrset.rdtype) in check.types
        for rdata in rrset
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest_twisted.inlineCallbacks
def test_a_real_corefile_answers_as_its_distribution_means(case, sandbox, tmp_path):
    """Run unchanged in a sandbox, it answers its cluster name, its outside name and what its customisation adds."""
    folder = tmp_path / "etc-coredns"
    folder.mkdir()
    corefile = prepare(case, folder)
    box = sandbox(answers=case.resolver_answers)
    for upstream in case.upstreams:
        box.serve_upstream(upstream.host, upstream.port, upstream.answers)
    for upstream in case.tls_upstreams:
        cert, key = issue(folder, upstream.server_name)
        yield box.serve_tls_upstream(upstream.host, upstream.port, str(cert), str(key), upstream.records)
    child = box.run(corefile.read_text(), corefile)
    web = box.api.cluster.get("services", "default", "web")["spec"]["clusterIP"]
    values = {"web": web, "hostname": socket.gethostname()}
    for index, check in enumerate(case.checks):
        expected = sorted(line.format(**values) for line in check.expected)

        def probe(check=check):
            return box.ask(check.name, check.rdtype, port=check.port, rdclass=check.rdclass)

        def answered(response, check=check, expected=expected):
            return dns.rcode.to_text(response.rcode()) == check.rcode and section_lines(response, check) == expected

        # The first question waits for start-up (the API's lists, the listeners); the others are asked once.
        response = yield poll_until(reactor, probe, answered, timeout=30) if index == 0 else probe()
        assert dns.rcode.to_text(response.rcode()) == check.rcode, (check, response.to_text(), child.log)
        assert section_lines(response, check) == expected, (check, response.to_text(), child.log)

