"""The real `dig` against the real server: the demo cluster as a user asks it.

One `python -m discovery` process serves manifests/examples (the names its
README lists) with the demo Corefile's kubernetes options, plus a block with
a headless Service big enough to be truncated; each test runs
`dig @127.0.0.1 -p PORT ...` and reads dig's own output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import attrs
import pytest

from tests.integration.dnsserver import EXAMPLES, REPO, TIMEOUT, CLIProcess, cli_environment

pytestmark = pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (tests/run installs bind9-dnsutils)")

MANY = 100


@attrs.frozen
class Record:
    name: str
    ttl: int
    rdtype: str
    data: str


@attrs.frozen
class Dig:
    """What dig printed: the header's status and flags, the sections' records, the OPT line."""

    status: str
    flags: frozenset[str]
    answer: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]
    #: dig's "; EDNS: ..." line, or None without an OPT record.
    edns: str | None
    text: str

    def data(self, rdtype: str, section: str = "answer") -> list[str]:
        return sorted(record.data for record in getattr(self, section) if record.rdtype == rdtype)


_RECORD = re.compile(r"^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$")


def parse_dig(text: str) -> Dig:
    """Read dig's default output (the last message, after any TC retry)."""
    status = re.findall(r"->>HEADER<<- opcode: \S+, status: (\S+),", text)
    flags = re.findall(r"^;; flags:([^;]*);", text, re.MULTILINE)
    assert status and flags, text
    sections: dict[str, list[Record]] = {"ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^;; (\w+) SECTION:$", line)
        if heading:
            current = sections.get(heading.group(1))
            if current is not None:
                current.clear()
            continue
        if not line.strip():
            current = None
            continue
        match = _RECORD.match(line)
        if current is not None and match:
            name, ttl, rdtype, data = match.groups()
            current.append(Record(name, int(ttl), rdtype, data.strip()))
    edns = re.findall(r"^; EDNS: (.*)$", text, re.MULTILINE)
    return Dig(
        status=status[-1], flags=frozenset(flags[-1].split()), answer=tuple(sections["ANSWER"]),
        authority=tuple(sections["AUTHORITY"]), additional=tuple(sections["ADDITIONAL"]),
        edns=edns[-1] if edns else None, text=text,
    )


def headless_service(name: str, count: int) -> str:
    endpoints = "".join(f"- addresses: [10.2.{i // 250}.{i % 250 + 1}]\n" for i in range(count))
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: default}}
        spec: {{clusterIP: None, ports: [{{name: http, port: 80}}]}}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {{name: {name}-aaaaa, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
        addressType: IPv4
        ports: [{{name: http, port: 80}}]
        endpoints:
        """) + endpoints


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A `python -m discovery` serving the demo cluster, logging every query; stopped after the module."""
    folder = tmp_path_factory.mktemp("dig")
    (folder / "big").mkdir()
    (folder / "big" / "many.yaml").write_text(headless_service("many", MANY))
    (folder / "hosts").write_text("192.0.2.44 my.database.example.com\n")
    (folder / "Corefile").write_text(textwrap.dedent(f"""\
        .:0 {{
            bind 127.0.0.1
            errors
            log
            hosts {folder / "hosts"} example.com {{
                fallthrough
            }}
            kubernetes cluster.local in-addr.arpa ip6.arpa {{
                manifests {EXAMPLES}
                pods verified
                fallthrough in-addr.arpa ip6.arpa
                ttl 30
            }}
        }}
        big.test:0 {{
            bind 127.0.0.1
            kubernetes big.test {{
                manifests big
            }}
        }}
        """))
    with CLIProcess(["-conf", str(folder / "Corefile")], cwd=folder) as process:
        process.answers(process.port())
        yield process


@pytest.fixture
def port(server) -> int:
    return server.port()


@pytest.fixture
def dig(port):
    """dig(ARGS...) -> Dig: `dig @127.0.0.1 -p PORT ARGS`, parsed."""

    def run(*args: str) -> Dig:
        result = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(port), "+time=5", "+tries=1", *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return parse_dig(result.stdout)

    return run


# --- the demo's names (manifests/examples/README.md) ----------------------------------------


def test_the_readme_first_query_answers(dig):
    """`dig frontend-svc.default.svc.cluster.local`: NOERROR, authoritative, its cluster IP with TTL 30."""
    result = dig("frontend-svc.default.svc.cluster.local")
    assert result.status == "NOERROR"
    assert {"qr", "aa"} <= result.flags
    assert result.answer == (Record("frontend-svc.default.svc.cluster.local.", 30, "A", "10.96.120.34"),)


def test_a_dual_stack_service_answers_aaaa(dig):
    """echo.default.svc AAAA is its IPv6 cluster IP."""
    assert dig("echo.default.svc.cluster.local", "AAAA").data("AAAA") == ["fd00:10:96::5a1c"]


def test_a_named_port_answers_srv(dig):
    """_http._tcp.frontend-svc SRV: port 80 on the Service's own name, its address as glue."""
    result = dig("_http._tcp.frontend-svc.default.svc.cluster.local", "SRV")
    assert result.data("SRV") == ["0 100 80 frontend-svc.default.svc.cluster.local."]
    assert result.data("A", "additional") == ["10.96.120.34"]


def test_a_headless_service_answers_its_pods(dig):
    """web.default.svc A is both StatefulSet Pods; web-0.web is the first alone."""
    assert dig("web.default.svc.cluster.local").data("A") == ["10.244.1.12", "10.244.2.9"]
    assert dig("web-0.web.default.svc.cluster.local").data("A") == ["10.244.1.12"]


def test_reverse_lookup_names_the_service(dig):
    """`dig -x 10.96.120.34` is frontend-svc.default.svc.cluster.local."""
    assert dig("-x", "10.96.120.34").data("PTR") == ["frontend-svc.default.svc.cluster.local."]


def test_the_external_name_is_a_cname_followed_to_its_target(dig):
    """my-service.prod.svc A: the CNAME to my.database.example.com, then its address from the hosts plugin."""
    result = dig("my-service.prod.svc.cluster.local")
    assert result.data("CNAME") == ["my.database.example.com."]
    assert result.data("A") == ["192.0.2.44"]


def test_another_namespaces_service_answers(dig):
    """redis-master.my-namespace.svc A is its cluster IP."""
    assert dig("redis-master.my-namespace.svc.cluster.local").data("A") == ["10.96.0.11"]


def test_a_verified_pod_answers(dig):
    """`pods verified`: 10-244-1-12.default.pod is web-0's address."""
    assert dig("10-244-1-12.default.pod.cluster.local").data("A") == ["10.244.1.12"]


def test_dns_version_answers_txt(dig):
    """dns-version.cluster.local TXT is "1.1.0"."""
    assert dig("dns-version.cluster.local", "TXT").data("TXT") == ['"1.1.0"']


def test_a_missing_name_is_nxdomain_with_the_soa(dig):
    """nothing.default.svc: status NXDOMAIN, the zone's SOA in authority."""
    result = dig("nothing.default.svc.cluster.local")
    assert result.status == "NXDOMAIN"
    assert not result.answer
    assert [(r.name, r.rdtype) for r in result.authority] == [("cluster.local.", "SOA")]


def test_the_question_keeps_its_case(dig):
    """A mixed-case question is answered under the same spelling."""
    result = dig("FrontEnd-Svc.DEFAULT.svc.Cluster.Local")
    assert [r.name for r in result.answer] == ["FrontEnd-Svc.DEFAULT.svc.Cluster.Local."]


#: Inside a network namespace of its own (its fixed ports are free there):
#: `python -m discovery` with the repository's ./Corefile, then the README's
#: first command once the server answers, asked again until a deadline.
DEMO_SCRIPT = """
ip link set lo up
"$PYTHON" -m discovery > "$LOG" 2>&1 &
server=$!
trap 'kill -KILL $server' EXIT
for attempt in $(seq 100); do
    if dig @127.0.0.1 -p 1053 +time=1 +tries=1 frontend-svc.default.svc.cluster.local > "$OUT"; then
        exit 0
    fi
    sleep 0.1
done
exit 1
"""


def test_the_demo_corefile_answers_the_readme_first_command(tmp_path):
    """The repository's ./Corefile on 127.0.0.1:1053: `dig @127.0.0.1 -p 1053 frontend-svc.default.svc.cluster.local` answers."""
    if shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("the demo's fixed ports are free in a network namespace of its own: that needs root, unshare and ip")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("the kernel refuses a new network namespace")
    env = {**cli_environment(), "PYTHON": sys.executable, "LOG": str(tmp_path / "log"), "OUT": str(tmp_path / "out")}
    result = subprocess.run(["unshare", "-n", "--", "bash", "-c", DEMO_SCRIPT], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3 * TIMEOUT)
    assert result.returncode == 0, (tmp_path / "log").read_text()
    answer = parse_dig((tmp_path / "out").read_text())
    assert answer.status == "NOERROR"
    assert answer.answer == (Record("frontend-svc.default.svc.cluster.local.", 30, "A", "10.96.120.34"),)


# --- transport and EDNS -----------------------------------------------------------------


def test_tcp_answers_the_same(dig):
    """`+tcp` gets the same answer over TCP."""
    assert dig("+tcp", "frontend-svc.default.svc.cluster.local").data("A") == ["10.96.120.34"]


def test_several_queries_share_one_tcp_connection(server, port):
    """`+tcp +keepopen` with three questions: all three answered, from one client port (one connection)."""
    names = ["frontend-svc.default.svc.cluster.local.", "redis-master.my-namespace.svc.cluster.local.",
             "web-1.web.default.svc.cluster.local."]
    since = server.mark()
    result = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+time=5", "+tries=1", "+tcp", "+keepopen", "+short", *names],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert result.stdout.split() == ["10.96.120.34", "10.96.0.11", "10.244.2.9"]
    client_ports = {
        server.wait_for_line(rf'127\.0\.0\.1:(\d+) - \d+ "A IN {re.escape(name)} tcp ', since=since).group(1)
        for name in names
    }
    assert len(client_ports) == 1


def test_edns_is_answered_with_an_opt_record(dig):
    """dig's default EDNS query gets an OPT record: version 0, 1232 bytes."""
    result = dig("frontend-svc.default.svc.cluster.local")
    assert result.edns is not None
    assert result.edns.startswith("version: 0,") and result.edns.endswith("udp: 1232")


def test_no_edns_no_opt_record(dig):
    """`+noedns`: no OPT pseudosection in the reply."""
    result = dig("+noedns", "frontend-svc.default.svc.cluster.local")
    assert result.edns is None
    assert result.data("A") == ["10.96.120.34"]


def test_an_unknown_edns_version_gets_badvers(dig):
    """`+edns=1 +noednsnegotiation`: status BADVERS."""
    assert dig("+edns=1", "+noednsnegotiation", "frontend-svc.default.svc.cluster.local").status == "BADVERS"


def test_a_big_answer_is_truncated_over_udp(dig):
    """`+ignore` (no TCP retry) on a 100-address answer without EDNS: the tc flag."""
    result = dig("+ignore", "+noedns", "many.default.svc.big.test")
    assert "tc" in result.flags


def test_dig_retries_a_truncated_answer_over_tcp(dig):
    """Plain dig sees TC, says so, asks again over TCP and gets all 100 addresses."""
    result = dig("+noedns", "many.default.svc.big.test")
    assert "Truncated, retrying in TCP mode" in result.text
    assert len(result.data("A")) == MANY


# --- the error ladder ----------------------------------------------------------------------


def test_an_opcode_other_than_query_gets_notimp(dig):
    """`+opcode=notify`: status NOTIMP."""
    assert dig("+opcode=notify", "frontend-svc.default.svc.cluster.local").status == "NOTIMP"


def test_a_query_without_a_question_gets_formerr(dig):
    """`+header-only`: status FORMERR."""
    assert dig("+header-only").status == "FORMERR"


def test_a_name_no_plugin_answers_gets_servfail(dig):
    """www.example.org falls in the `.` block, whose plugins all pass it on: SERVFAIL (CoreDNS's NextOrFailure)."""
    assert dig("www.example.org").status == "SERVFAIL"
