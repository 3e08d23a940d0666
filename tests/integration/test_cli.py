"""The command line, as the coredns binary's: `python -m discovery` in a process of its own.

Flags as CoreDNS's (`-conf`, `-dns.port`, `-plugins`, `-version`), logs on
standard output, start-up errors naming the Corefile's file and line, and
an orderly stop on SIGTERM.
"""

from __future__ import annotations

import json
import re
import socket
import textwrap

from discovery import __version__
from discovery.plugin import names as supported_directives
from tests.integration.dnsserver import EXAMPLES, REPO, CLIProcess, addresses, free_port, run_cli

#: The demo's ClusterIP Service (manifests/examples/README.md).
FRONTEND = "frontend-svc.default.svc.cluster.local."
FRONTEND_IP = "10.96.120.34"


def examples_block(key: str = ".:0") -> str:
    return textwrap.dedent(f"""\
        {key} {{
            bind 127.0.0.1
            kubernetes cluster.local {{
                manifests {EXAMPLES}
            }}
        }}
        """)


def test_version_prints_the_version_and_exits():
    """-version prints Wayfinder-<version>, as `coredns -version` prints CoreDNS-<version>, and exits 0."""
    result = run_cli("-version")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"Wayfinder-{__version__}"


def test_plugins_lists_exactly_the_supported_directives():
    """-plugins lists the server types (dns, webhook) and every directive the Corefile accepts, nothing more."""
    result = run_cli("-plugins")
    assert result.returncode == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[:3] == ["Server types:", "dns", "webhook"]
    listed = lines[lines.index("Directives:") + 1 :]
    assert [line for line in listed if line] == supported_directives()


def test_a_missing_corefile_stops_start_up_naming_it(tmp_path):
    """-conf naming a file that does not exist exits non-zero and says which file."""
    missing = tmp_path / "nowhere" / "Corefile"
    result = run_cli("-conf", str(missing))
    assert result.returncode != 0
    assert str(missing) in result.stdout


def test_the_default_corefile_is_the_one_in_the_working_directory(tmp_path):
    """Without -conf, ./Corefile is loaded."""
    (tmp_path / "Corefile").write_text(examples_block())
    with CLIProcess([], cwd=tmp_path) as process:
        response = process.answers(process.port(), FRONTEND, "A")
        assert addresses(response) == [FRONTEND_IP]


def test_an_unsupported_directive_stops_start_up_with_file_and_line(tmp_path):
    """`dnssec` (not implemented) exits non-zero; stdout names Corefile:3, the directive and what is supported."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:0 {\n    bind 127.0.0.1\n    dnssec example.org\n}\n")
    result = run_cli("-conf", str(corefile))
    assert result.returncode != 0
    assert f"{corefile}:3:" in result.stdout
    assert "dnssec" in result.stdout and "kubernetes" in result.stdout


def test_a_bad_argument_stops_start_up_with_file_and_line(tmp_path):
    """`ttl abc` inside kubernetes exits non-zero; stdout names Corefile:4 and the option."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:0 {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        ttl abc\n    }\n}\n")
    result = run_cli("-conf", str(corefile))
    assert result.returncode != 0
    assert re.search(rf"{re.escape(str(corefile))}:4: .*ttl.*abc", result.stdout)


def test_dns_port_applies_to_blocks_without_a_port(tmp_path):
    """-dns.port N: a block without a port listens on N; a block with its own port keeps it."""
    default_port, own_port = free_port(), free_port()
    (tmp_path / "hosts").write_text("192.0.2.1 www.example.test\n")
    corefile = tmp_path / "Corefile"
    corefile.write_text(examples_block("cluster.local") + textwrap.dedent(f"""\
        example.test:{own_port} {{
            bind 127.0.0.1
            hosts {tmp_path / "hosts"}
        }}
        """))
    with CLIProcess(["-conf", str(corefile), "-dns.port", str(default_port)]) as process:
        assert addresses(process.answers(default_port, FRONTEND, "A")) == [FRONTEND_IP]
        assert addresses(process.answers(own_port, "www.example.test.", "A")) == ["192.0.2.1"]


def test_log_format_json_writes_one_json_object_per_line(tmp_path):
    """-log.format json: every output line is a JSON object with time, level, component and msg."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(examples_block().replace("    bind 127.0.0.1\n", "    bind 127.0.0.1\n    log\n"))
    with CLIProcess(["-conf", str(corefile), "-log.format", "json"]) as process:
        port = int(process.wait_for_line(r'"msg":"listening on .* port (\d+)').group(1))
        process.answers(port, FRONTEND, "A")
        process.wait_for_line(re.escape(FRONTEND))
    lines = process.lines
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "component", "msg"} <= set(entry)
    assert any(FRONTEND in json.loads(line)["msg"] for line in lines)


def test_sigterm_stops_the_server_in_order(tmp_path):
    """SIGTERM (as a kubelet stops a container) ends the process with status 0."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(examples_block())
    process = CLIProcess(["-conf", str(corefile)])
    try:
        process.answers(process.port())
    finally:
        status = process.stop()
    assert status == 0


def test_a_port_in_use_stops_start_up(tmp_path):
    """A DNS port another socket holds: the process names the address and port, and exits non-zero."""
    corefile = tmp_path / "Corefile"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        corefile.write_text(examples_block(f".:{port}"))
        result = run_cli("-conf", str(corefile))
    assert result.returncode != 0
    assert f"127.0.0.1 port {port}" in result.stdout


def test_check_subcommand_reports_every_line_and_exits_1_when_start_up_would_fail(tmp_path):
    """`wayfinder check -conf FILE CUSTOM`: a line per directive, the failing ones named with file:line, exit 1; nothing is bound."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:53 {\n    errors\n    etcd\n    import custom/*.override\n}\n")
    custom = tmp_path / "coredns-custom"
    custom.mkdir()
    (custom / "debug.override").write_text("dnssec\n")
    result = run_cli("check", "-conf", str(corefile), str(custom))
    assert result.returncode == 1
    assert f"{corefile}:2: ok:   errors" in result.stdout
    assert f"{corefile}:3: error:   etcd" in result.stdout
    assert f"{custom / 'debug.override'}:1: error:   dnssec" in result.stdout


def test_check_flag_exits_0_for_a_corefile_that_would_start(tmp_path):
    """`wayfinder -conf FILE -check`, CoreDNS-style: exit 0 for kubeadm's Corefile, without binding port 53."""
    corefile = REPO / "tests" / "unit" / "corefiles" / "kubeadm-cache-block.Corefile"
    result = run_cli("-conf", str(corefile), "-check")
    assert result.returncode == 0, result.stdout
    assert "the Corefile loads" in result.stdout
