"""Run the fake API server in a process of its own; prints its URL on the first line."""

from __future__ import annotations

import argparse
import sys

from twisted.internet import reactor

from .cluster import Cluster
from .objects import seed
from .server import FakeApiServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeapi", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--services", type=int, default=0, help="Services to create, each with one EndpointSlice")
    parser.add_argument("--endpoints", type=int, default=5, help="endpoints per EndpointSlice (default 5)")
    parser.add_argument("--namespaces", type=int, default=10, help="namespaces the Services spread over")
    parser.add_argument("--pods", type=int, default=0, help="Pods to create, at the endpoints' addresses")
    args = parser.parse_args(argv)
    cluster = Cluster()
    seed(cluster, services=args.services, endpoints=args.endpoints, namespaces=args.namespaces, pods=args.pods)
    server = FakeApiServer(reactor, cluster, port=args.port)
    server.start()
    print(server.url, flush=True)
    reactor.run()


if __name__ == "__main__":
    sys.exit(main())
