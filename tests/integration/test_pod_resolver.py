"""A Pod's resolver against Wayfinder: glibc's `getent ahosts` with a Pod's resolv.conf.

In fresh network and mount namespaces (`unshare -n -m`, as root), this
module runs itself (`python -m tests.integration.test_pod_resolver`): it
brings up lo, starts `python -m discovery` on 127.0.0.1:53 serving the demo
cluster (manifests/examples), bind-mounts over /etc/resolv.conf what the
kubelet writes into a Pod in `default` (ClusterFirst) and over
/etc/nsswitch.conf a plain `hosts: files dns` (a host's `mdns4_minimal
[NOTFOUND=return]` would stop every `.local` name before DNS), then asks
glibc for short names exactly as a Pod's process would, so the search list
and ndots:5 do the rest. It prints what getent said as JSON.

The ExternalName `my-service.prod` points at my.database.example.com,
which has no address here (no network in the namespace): the server's
`hosts` plugin gives it one, and the kubernetes plugin resolves the CNAME
target through the server as CoreDNS's upstream does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap

import attrs
import pytest

from tests.integration.dnsserver import EXAMPLES, REPO, TIMEOUT, CLIProcess, cli_environment

#: What the kubelet writes for a Pod in namespace `default` with dnsPolicy ClusterFirst.
POD_RESOLV_CONF = textwrap.dedent("""\
    nameserver 127.0.0.1
    search default.svc.cluster.local svc.cluster.local cluster.local
    options ndots:5
    """)
NSSWITCH = "hosts: files dns\n"
DATABASE_IP = "192.0.2.44"
NAMES = ("frontend-svc", "redis-master.my-namespace", "my-service.prod", "no-such-service")


def corefile(hosts_file: str) -> str:
    return textwrap.dedent(f"""\
        .:53 {{
            bind 127.0.0.1
            hosts {hosts_file} example.com {{
                fallthrough
            }}
            kubernetes cluster.local in-addr.arpa ip6.arpa {{
                manifests {EXAMPLES}
                fallthrough in-addr.arpa ip6.arpa
            }}
        }}
        """)


# --- inside the namespaces ------------------------------------------------------------------


def inside(folder: str, names: list[str]) -> dict:
    """Serve, mount the Pod's files, and ask glibc for each name: {name: [exit status, output]}."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with CLIProcess(["-conf", os.path.join(folder, "Corefile")], cwd=folder) as server:
        server.answers(53)
        for name in ("resolv.conf", "nsswitch.conf"):
            subprocess.run(["mount", "--bind", os.path.join(folder, name), f"/etc/{name}"], check=True)
        results = {}
        for name in names:
            result = subprocess.run(["getent", "ahosts", name], capture_output=True, text=True, timeout=TIMEOUT)
            results[name] = [result.returncode, result.stdout]
    return {"getent": results, "server": server.output}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run inside `unshare -n -m`: serve, then resolve with getent.")
    parser.add_argument("folder", help="holds Corefile, resolv.conf, nsswitch.conf and hosts")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    print(json.dumps(inside(args.folder, args.names)))


# --- the test side -----------------------------------------------------------------------


def namespaces_refused() -> str | None:
    """Why `unshare -n -m` cannot run here, or None when it can."""
    if shutil.which("unshare") is None:
        return "unshare is not installed (tests/run installs util-linux)"
    if shutil.which("ip") is None:
        return "ip is not installed (tests/run installs iproute2)"
    if os.geteuid() != 0:
        return "new network and mount namespaces need root"
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True, timeout=TIMEOUT)
    if probe.returncode != 0:
        return f"the kernel refuses new network and mount namespaces: {probe.stderr.strip()}"
    return None


@attrs.frozen
class Lookup:
    """What `getent ahosts NAME` said: its exit status, the addresses and the canonical name."""

    status: int
    addresses: frozenset[str]
    canonical: str | None

    @classmethod
    def parse(cls, status: int, output: str) -> "Lookup":
        # Lines: "ADDRESS  STREAM CANONICAL", then DGRAM and RAW lines, per address.
        rows = [line.split() for line in output.splitlines() if line.strip()]
        canonical = rows[0][2] if rows and len(rows[0]) > 2 else None
        return cls(status, frozenset(row[0] for row in rows), canonical)


@pytest.fixture(scope="module")
def lookups(tmp_path_factory) -> dict[str, Lookup]:
    refused = namespaces_refused()
    if refused is not None:
        pytest.skip(refused)
    folder = tmp_path_factory.mktemp("pod")
    (folder / "hosts").write_text(f"{DATABASE_IP} my.database.example.com\n")
    (folder / "Corefile").write_text(corefile(str(folder / "hosts")))
    (folder / "resolv.conf").write_text(POD_RESOLV_CONF)
    (folder / "nsswitch.conf").write_text(NSSWITCH)
    result = subprocess.run(
        ["unshare", "-n", "-m", "--", sys.executable, "-m", "tests.integration.test_pod_resolver", str(folder), *NAMES],
        cwd=REPO, env=cli_environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=4 * TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    return {name: Lookup.parse(*answer) for name, answer in report["getent"].items()}


def test_a_service_name_resolves_through_the_first_search_domain(lookups):
    """`frontend-svc` is frontend-svc.default.svc.cluster.local: its cluster IP."""
    lookup = lookups["frontend-svc"]
    assert lookup.status == 0
    assert lookup.addresses == {"10.96.120.34"}
    assert lookup.canonical == "frontend-svc.default.svc.cluster.local"


def test_a_service_in_another_namespace_resolves_through_svc_cluster_local(lookups):
    """`redis-master.my-namespace` misses under default.svc, then is found under svc.cluster.local."""
    lookup = lookups["redis-master.my-namespace"]
    assert lookup.status == 0
    assert lookup.addresses == {"10.96.0.11"}
    assert lookup.canonical == "redis-master.my-namespace.svc.cluster.local"


def test_an_external_name_resolves_to_its_targets_address(lookups):
    """`my-service.prod`: the CNAME's target becomes the canonical name, with its address."""
    lookup = lookups["my-service.prod"]
    assert lookup.status == 0
    assert lookup.addresses == {DATABASE_IP}
    assert lookup.canonical == "my.database.example.com"


def test_a_name_no_search_domain_holds_is_not_found(lookups):
    """`no-such-service`: NXDOMAIN under every search domain; getent exits 2 (not found)."""
    assert lookups["no-such-service"].status == 2


if __name__ == "__main__":
    main()
