"""The webhook's HTTP over TLS: bounded bodies, a deadline per request, a cap on connections, the routes."""

from __future__ import annotations

import io
import json

from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from discovery.ops.connections import ConnectionGuard

from .config import HEALTH_PATH, WebhookConfig

__all__ = ["BoundedRequest", "NoDelayTLS", "WebhookSite", "GuardedTLSFactory", "WebhookResource", "json_message"]


class BoundedRequest(Request):
    """Keeps at most the site's max_request_bytes of a body, and notes when there was more."""

    body_too_large = False
    _received = 0

    def gotLength(self, length):
        self._received = 0
        self.body_too_large = length is not None and length > self.channel.site.max_request_bytes
        # In memory, never a temporary file: the body is bounded.
        self.content = io.BytesIO()

    def handleContentChunk(self, data):
        self._received += len(data)
        if self._received > self.channel.site.max_request_bytes:
            self.body_too_large = True
        if not self.body_too_large:
            self.content.write(data)


class NoDelayTLS(BufferingTLSTransport):
    """TLS over a TCP connection with Nagle's algorithm off, as Go's net/http has it.

    An answer ends in a partial segment; with Nagle on, it can wait for the
    client's delayed ACK (40 ms on Linux).
    """

    def makeConnection(self, transport):
        transport.setTcpNoDelay(True)
        super().makeConnection(transport)


class _DeadlineChannel(HTTPChannel):
    """HTTP with a deadline per request, as Go's http.Server ReadTimeout.

    Each request, headers and body, must be complete `read_timeout` seconds
    after the connection opened (the TLS handshake included) or after the
    previous answer: a client sending a byte now and then cannot hold the
    connection, as it can against an idle timer restarted by every byte.
    """

    _deadline = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        site = self.site
        self._deadline = site.reactor.callLater(site.read_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self) -> None:
        self.site.guard.closed_at_deadline(self.site.label, "read")
        self.transport.abortConnection()

    def allContentReceived(self) -> None:
        self._disarm()
        super().allContentReceived()

    _lost = False

    def requestDone(self, request) -> None:
        super().requestDone(request)
        if not self._lost:
            # The next request on a kept-alive connection has its own deadline.
            self._arm()

    def connectionLost(self, reason) -> None:
        self._lost = True
        self._disarm()
        super().connectionLost(reason)


class WebhookSite(Site):
    noisy = False
    protocol = _DeadlineChannel

    def __init__(self, resource, config: WebhookConfig, reactor, guard: ConnectionGuard, label: str):
        super().__init__(
            resource, requestFactory=BoundedRequest, parsePOSTFormSubmission=False, reactor=reactor
        )
        self.max_request_bytes = config.max_request_bytes
        self.read_timeout = config.read_timeout
        self.guard = guard
        self.label = label

    def log(self, request):
        # The webhook writes its own line per request, at debug.
        pass


class GuardedTLSFactory(TLSMemoryBIOFactory):
    """TLS connections while the webhook's cap and the process's descriptor budget allow."""

    def __init__(self, contextFactory, site: WebhookSite, cap: int, reactor):
        super().__init__(contextFactory, False, site, clock=reactor)
        self._site = site
        self._cap = cap

    def buildProtocol(self, addr):
        if not self._site.guard.admit(self._site.label, len(self.protocols), self._cap):
            # Twisted closes the accepted socket at once.
            return None
        return super().buildProtocol(addr)

    def unregisterProtocol(self, protocol) -> None:
        super().unregisterProtocol(protocol)
        self._site.guard.release()


def json_message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


class WebhookResource(Resource):
    """The routes: POST an AdmissionReview to the configured path (answered by
    `server.answer`, `webhook.server.WebhookServer`), GET the health path."""

    isLeaf = True

    def __init__(self, server):
        super().__init__()
        self._server = server
        self._path = server.config.path.encode()

    def render(self, request: BoundedRequest) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if request.path == self._path:
            if request.method != b"POST":
                request.setResponseCode(405)
                request.setHeader(b"Allow", b"POST")
                return json_message(f"{request.method.decode('ascii', 'replace')} is not allowed; POST an AdmissionReview")
            chunks = self._server.answer(request)
            # Written piece by piece: the rendered variables are sent as
            # they are, never copied into one body here.
            request.setHeader(b"Content-Length", b"%d" % sum(map(len, chunks)))
            for chunk in chunks:
                request.write(chunk)
            request.finish()
            return NOT_DONE_YET
        if request.path == HEALTH_PATH.encode() and request.method in (b"GET", b"HEAD"):
            request.setHeader(b"Content-Type", b"text/plain")
            return b"ok\n"
        request.setResponseCode(404)
        return json_message(f"no such path; POST AdmissionReviews to {self._server.config.path}")
