"""Figures for `reload` under load: queries lost while the Corefile is rewritten.

    python -m tests.bench.bench_reload [--reloads 10] [--rate 2000] [--services 1000] [--change ttl|lameduck|both]

`python -m discovery` serves a manifests folder of N Services on 127.0.0.1
with a kubeadm-like Corefile and `reload 2s 0s`. This process sends A
queries for those Services, in turn, at a fixed rate from one UDP socket
(each query given 2 seconds to come back) while it rewrites the Corefile R
times, replacing the file atomically as the kubelet updates a ConfigMap,
and waiting for "Reloading complete" before the next rewrite. The stream
runs from a second before the first rewrite until a second after the last.

Two kinds of change:

- ttl: the `kubernetes` ttl changes, so every answer changes: the server's
  table of rendered answers starts afresh and each name takes the full path
  once more. The time until the new TTL shows in the answers is printed.
- lameduck: only `health`'s lameduck changes: the DNS side is untouched and
  keeps its table.

It prints queries sent, answered (by RCODE) and lost for each. Target from
the issue: 0 lost. It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

import dns.rcode
from twisted.internet import defer, task

from tests.integration.live import QueryStream, WayfinderProcess, ask, poll_until

COREFILE = """\
.:0 {{
    bind 127.0.0.1
    errors
    reload 2s 0s
    health 127.0.0.1:0 {{
        lameduck {lameduck}s
    }}
    ready 127.0.0.1:0
    prometheus 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests {folder}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl {ttl}
    }}
    cache 30 {{
        disable success cluster.local
        disable denial cluster.local
    }}
    loadbalance
}}
"""
FIRST_TTL = 30


def write_services(folder: pathlib.Path, count: int) -> list[str]:
    """N ClusterIP Services in `default`, in one file; returns their names."""
    folder.mkdir()
    documents = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n"]
    names = []
    for i in range(count):
        names.append(f"svc-{i}.default.svc.cluster.local.")
        documents.append(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: default\n"
            f"spec:\n  clusterIP: 10.96.{i // 250}.{i % 250 + 1}\n  ports:\n  - name: http\n    port: 80\n"
        )
    (folder / "services.yaml").write_text("---\n".join(documents))
    return names


def replace(path: pathlib.Path, text: str) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    os.replace(staged, path)


def settings(change: str, n: int) -> dict:
    """The Corefile's values for rewrite n (0 is the first Corefile): each rewrite differs from the one before."""
    if change == "ttl":
        return {"ttl": FIRST_TTL - n % 20, "lameduck": 1}
    return {"ttl": FIRST_TTL, "lameduck": 1 + n % 20}


@defer.inlineCallbacks
def measure(reactor, directory: pathlib.Path, change: str, reloads: int, rate: float, services: int):
    folder = directory / "manifests"
    names = write_services(folder, services)
    corefile = directory / "Corefile"
    corefile.write_text(COREFILE.format(folder=folder, **settings(change, 0)))
    child = WayfinderProcess.spawn(reactor, corefile)
    try:
        yield child.wait_for(r"Running configuration SHA512")
        server = ("127.0.0.1", child.dns_port)
        yield poll_until(reactor, lambda: ask(reactor, server, names[-1]),
                         lambda response: getattr(response, "answer", None), timeout=60)
        #: When each TTL was first seen in an answer.
        first_seen: dict[int, float] = {}

        def on_reply(response) -> None:
            if response.answer:
                first_seen.setdefault(response.answer[0].ttl, time.monotonic())

        stream = QueryStream(reactor, server, [(name, "A") for name in names], rate=rate,
                             on_reply=on_reply if change == "ttl" else None)
        stream.start()
        started = time.monotonic()
        yield task.deferLater(reactor, 1.0, lambda: None)
        shown = []
        for n in range(1, reloads + 1):
            values = settings(change, n)
            mark = len(child.lines)
            written = time.monotonic()
            replace(corefile, COREFILE.format(folder=folder, **values))
            yield child.wait_for(r"Reloading complete$", after=mark, timeout=30)
            if change == "ttl":
                yield poll_until(reactor, lambda: defer.succeed(first_seen.get(values["ttl"])),
                                 lambda seen: seen is not None and seen >= written, timeout=30)
                del first_seen[values["ttl"]]
            shown.append(time.monotonic() - written)
        yield task.deferLater(reactor, 1.0, lambda: None)
        yield stream.stop()
        elapsed = time.monotonic() - started
    finally:
        yield child.kill()

    rcodes = ", ".join(f"{dns.rcode.to_text(code)} {count}" for code, count in sorted(stream.rcodes.items()))
    print(f"reload under load, {change} changed: {reloads} Corefile rewrites, {services} Services, "
          f"{rate:g} queries/s for {elapsed:.1f} s")
    print(f"  queries sent {stream.sent}, answered {stream.answered} ({rcodes}), lost {stream.lost} (target 0)")
    if shown:
        what = "new TTL in the answers" if change == "ttl" else "Reloading complete"
        print(f"  rewrite to {what}: min {min(shown):.2f} s, max {max(shown):.2f} s (checked every 2 s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_reload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reloads", type=int, default=10, help="Corefile rewrites (default 10)")
    parser.add_argument("--rate", type=float, default=2000.0, help="queries per second (default 2000)")
    parser.add_argument("--services", type=int, default=1000, help="Services asked for (default 1000)")
    parser.add_argument("--change", choices=("ttl", "lameduck", "both"), default="both",
                        help="what each rewrite changes (default both, one run each)")
    args = parser.parse_args(argv)
    changes = ("ttl", "lameduck") if args.change == "both" else (args.change,)

    @defer.inlineCallbacks
    def run(reactor):
        for change in changes:
            with tempfile.TemporaryDirectory(prefix="bench-reload-") as directory:
                yield measure(reactor, pathlib.Path(directory), change, args.reloads, args.rate, args.services)

    task.react(run)


if __name__ == "__main__":
    main()
