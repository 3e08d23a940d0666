"""File descriptors and client connections: the budget every listener draws on.

A process starts with the soft RLIMIT_NOFILE its parent gave it, often
1024, while the hard limit is far higher; Go's runtime (CoreDNS's included)
raises the soft limit to the hard one at start-up, and so does
`raise_open_files_limit`. What clients may hold is that figure less a
reserve (`RESERVED_DESCRIPTORS`) for everything else the process opens: the
operator's endpoints (/health, /ready, /metrics), manifest files, the API
connections, logs. `ConnectionGuard` counts the connections DNS-over-TCP
and webhook clients hold, refuses one beyond a server's cap or the budget
by closing it as soon as it is accepted, and counts refusals and
connections closed at a deadline.
"""

from __future__ import annotations

import logging
import resource

from prometheus_client import CollectorRegistry, Counter

__all__ = ["raise_open_files_limit", "ConnectionGuard", "RESERVED_DESCRIPTORS", "CLOSE_REASONS"]

log = logging.getLogger("wayfinder.main")

#: Descriptors kept back from clients: the operator's endpoints, files,
#: upstream and API sockets.
RESERVED_DESCRIPTORS = 256
#: Why a server closed a client's connection (the metric's labels).
CLOSE_REASONS = ("read", "idle", "write")


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (soft, hard) as they then are."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        target = hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            # macOS refuses RLIM_INFINITY; keep what we were given.
            pass
    return soft, hard


class ConnectionGuard:
    """The open client connections of the process, against its descriptor budget."""

    def __init__(self, budget: int | None = None, registry: CollectorRegistry | None = None):
        if budget is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            budget = max(soft - RESERVED_DESCRIPTORS, 16) if soft != resource.RLIM_INFINITY else 1 << 20
        #: Client connections the process keeps open at once, all servers together.
        self.budget = budget
        self.open = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._refused = Counter(
            "wayfinder_connections_refused_total",
            "Client connections closed as soon as accepted: over the server's cap or the descriptor budget.",
            ["server"],
            registry=registry,
        )
        self._closed = Counter(
            "wayfinder_connections_deadline_closed_total",
            "Client connections closed at a deadline: read (a message or request not complete in time), "
            "idle, or write (an answer not taken in time).",
            ["server", "reason"],
            registry=registry,
        )

    def admit(self, server: str, open_here: int, cap: int) -> bool:
        """May a new connection to `server` (which holds `open_here` of its `cap`) stay open? Counts it if so."""
        if open_here >= cap or self.open >= self.budget:
            self._refused.labels(server).inc()
            return False
        self.open += 1
        return True

    def release(self) -> None:
        """An admitted connection closed."""
        self.open -= 1

    def closed_at_deadline(self, server: str, reason: str) -> None:
        self._closed.labels(server, reason).inc()
