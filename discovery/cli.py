"""The command line, as the coredns binary's: `wayfinder -conf Corefile -dns.port 53`.

`wayfinder` and `python -m discovery` are the same program.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from . import __version__
from . import plugin as declared
from .config import DEFAULT_DNS_PORT, TRANSPORTS
from .corefile import CorefileError
from .dns.table import DEFAULT_LIMIT

__all__ = ["main", "build_parser"]

log = logging.getLogger("wayfinder.main")


def _mebibytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of MiB") from None
    if not 0 < value <= 65536:
        raise argparse.ArgumentTypeError(f"{text} MiB is outside 0 (excluded) to 65536")
    return int(value * (1 << 20))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wayfinder",
        description="Kubernetes service discovery: cluster DNS as CoreDNS answers it, and the kubelet's Service environment variables at admission.",
        allow_abbrev=False,
    )
    parser.add_argument("-conf", default="Corefile", metavar="FILE", help="Corefile to load (default: ./Corefile)")
    parser.add_argument(
        "-dns.port", dest="dns_port", type=int, default=DEFAULT_DNS_PORT, metavar="N",
        help="default port for server blocks that name none (default: 53)",
    )
    parser.add_argument(
        "-dns.table", dest="dns_table", type=_mebibytes, default=DEFAULT_LIMIT, metavar="MIB",
        help="memory for each DNS listener's table of rendered answers, in MiB, indexes included "
        f"(default: {DEFAULT_LIMIT >> 20})",
    )
    parser.add_argument("-plugins", action="store_true", help="list the supported directives and exit")
    parser.add_argument(
        "-check", action="store_true",
        help="report whether the Corefile would load, line by line, and exit (0: it would, 1: it would not); "
             "`wayfinder check -h` for coredns-custom files",
    )
    parser.add_argument("-version", action="store_true", help="show the version and exit")
    parser.add_argument("-quiet", action="store_true", help="quiet mode: no start-up banner, warnings and errors only")
    parser.add_argument("-pidfile", metavar="FILE", help="write the process ID to FILE")
    parser.add_argument(
        "-log.format", dest="log_format", choices=("text", "json"), default="text",
        help="log line format (default: text)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "certs":
        from .certs import main as certs_main

        return certs_main(argv[1:])
    if argv and argv[0] == "check":
        from .check import main as check_main

        return check_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"Wayfinder-{__version__}")
        return 0
    if args.plugins:
        print("Server types:")
        for transport in TRANSPORTS:
            print(f"  {transport}")
        print("\nDirectives:")
        for name in declared.names():
            print(f"  {name}")
        return 0
    if args.check:
        from .check import run

        return run(args.conf, (), args.dns_port, sys.stdin, sys.stdout, sys.stderr)

    from .logformat import configure

    configure(args.log_format, logging.WARNING if args.quiet else logging.INFO)
    from .ops.connections import raise_open_files_limit

    # As Go's runtime does for CoreDNS: the soft limit (often 1024) up to the hard one.
    soft, hard = raise_open_files_limit()
    log.info("open files limit: %d (hard limit %d)", soft, hard)
    from .ops.reload import CorefileWatcher, load_corefile

    try:
        loaded = load_corefile(args.conf, args.dns_port)
    except CorefileError as error:
        log.critical("%s", error)
        return 1

    from twisted.internet import reactor

    from .app import Application

    app = Application(loaded.config, reactor, table_limit=args.dns_table)
    watcher = CorefileWatcher(args.conf, args.dns_port, loaded.digest, app.apply, reactor, registry=app.registry)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")

    failures = []
    stopping = []

    def stop(*_):
        # SIGTERM and SIGINT: one orderly stop, however many signals arrive.
        if not stopping:
            stopping.append(True)
            reactor.stop()

    def start():
        try:
            app.start()
        except Exception as error:
            failures.append(error)
            log.critical("start-up failed: %s", error)
            stop()
            return
        watcher.start(loaded.config)

    def shutdown():
        # No reload once stopping; the returned Deferred holds the shutdown
        # for the lameduck period while the servers keep answering (a
        # failed start-up skips it).
        watcher.stop()
        return app.shutdown(lameduck=not failures)

    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(stop))
    signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(stop))
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run(installSignalHandlers=False)
    return 1 if failures else 0
