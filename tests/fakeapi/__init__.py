"""A protocol-faithful fake Kubernetes API server for tests and benchmarks.

In a test: ``FakeApiServer(reactor)`` on the test's reactor, its ``cluster``
filled with the builders of `tests.fakeapi.objects`. In a process of its own:
``python -m tests.fakeapi --services N`` prints its URL and serves until
stopped, with its controls at POST /fakeapi/<control>.
"""

from .cluster import ApiError, Cluster
from .server import SENT_LABEL, FakeApiServer, Seen, ServerTLS

__all__ = ["ApiError", "Cluster", "FakeApiServer", "Seen", "ServerTLS", "SENT_LABEL"]
