"""A wire-level fake Kubernetes API server for Services, EndpointSlices, Namespaces and Pods.

It speaks what the official client and client-go speak to a real API server:
lists (`limit`, `continue`, `labelSelector`, `fieldSelector`), watches
(`watch=true&resourceVersion=N&allowWatchBookmarks=true&timeoutSeconds=T`)
as chunked newline-delimited JSON events, 410 Expired as an ERROR event after
a 200, and create/replace/delete on the namespaced paths. Storage and
semantics live in cluster.py; this module is the HTTP side and the faults a
test injects: cut streams (TCP reset), end them cleanly, fail or stall lists,
compact history, send bookmarks, stop and start again on the same port.

The same controls answer POST /fakeapi/<control> when the server runs in a
process of its own (python -m tests.fakeapi).
"""

from __future__ import annotations

import datetime
import json
import socket
import struct
import time
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import attrs
from OpenSSL import SSL
from twisted.internet import defer, ssl, task, tcp
from twisted.web import http, resource, server

from .cluster import RESOURCES, ApiError, Change, Cluster, ResourceType, bookmark_event, watch_event, with_type

__all__ = ["FakeApiServer", "ServerTLS", "Seen", "SENT_LABEL"]

#: The label churn() stamps on EndpointSlices: nanoseconds since the epoch at
#: the write, so that a reader can measure how long the change took to arrive.
SENT_LABEL = "fakeapi.wayfinder.test/sent-ns"
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


@attrs.frozen
class ServerTLS:
    """PEM files: the server's certificate and key, and the CA its clients' certificates must chain to."""

    cert: str
    key: str
    client_ca: str | None = None

    def context_factory(self) -> ssl.DefaultOpenSSLContextFactory:
        factory = ssl.DefaultOpenSSLContextFactory(self.key, self.cert)
        if self.client_ca is not None:
            context = factory.getContext()
            context.load_verify_locations(self.client_ca)
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
        return factory


@attrs.frozen
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]

    @property
    def plural(self) -> str | None:
        return _split(self.path)[0]

    @property
    def namespace(self) -> str | None:
        return _split(self.path)[1]

    @property
    def name(self) -> str | None:
        return _split(self.path)[2]

    @property
    def is_watch(self) -> bool:
        return self.method == "GET" and self.query.get("watch") in _TRUE

    @property
    def is_list(self) -> bool:
        """A GET of a collection that is not a watch."""
        return self.method == "GET" and not self.is_watch and self.plural is not None and self.name is None


def _split(path: str) -> tuple[str | None, str | None, str | None]:
    """(plural, namespace, name) of an API path, whether or not the server serves it."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        return None, None, None
    namespace = None
    if len(rest) in (3, 4) and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 2:
        return None, None, None
    return rest[0], namespace, rest[1] if len(rest) == 2 else None


def _route(path: str) -> tuple[ResourceType, str | None, str | None]:
    """(resource, namespace, name) for an API path; ApiError 404 for anything else."""
    plural, namespace, name = _split(path)
    rtype = RESOURCES.get(plural) if plural is not None else None
    group = "v1" if path.startswith("/api/") else "/".join(path.strip("/").split("/")[1:3])
    if rtype is None or rtype.api_version != group or (namespace is not None and not rtype.namespaced):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return rtype, namespace, name


class _Watch:
    """One open watch stream."""

    def __init__(self, request, rtype: ResourceType, namespace, labels, fields, bookmarks: bool):
        self.request = request
        self.rtype = rtype
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.bookmarks = bookmarks
        self.closed = False

    def send(self, event: dict) -> None:
        if not self.closed:
            self.request.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    def change(self, change: Change) -> None:
        if change.plural == self.rtype.plural:
            event = watch_event(change, self.rtype, self.namespace, self.labels, self.fields)
            if event is not None:
                self.send(event)

    def end(self) -> None:
        if not self.closed:
            self.closed = True
            self.request.finish()

    def reset(self) -> None:
        if not self.closed:
            self.closed = True
            _reset(self.request.channel.transport)


def _reset(transport) -> None:
    """Close a connection with a TCP reset, as a crashed server or a middlebox does."""
    inner = transport
    while not isinstance(inner, tcp.Connection):
        inner = inner.transport  # through the TLS layer
    inner.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abortConnection()


class _Channel(http.HTTPChannel):
    def connectionMade(self):
        super().connectionMade()
        self.site.owner._connections.add(self)

    def connectionLost(self, reason):
        self.site.owner._connections.discard(self)
        super().connectionLost(reason)


class _Site(server.Site):
    protocol = _Channel

    def __init__(self, owner: "FakeApiServer"):
        super().__init__(_Api(owner))
        self.owner = owner

    def log(self, request):
        pass


class _Api(resource.Resource):
    isLeaf = True

    def __init__(self, owner: "FakeApiServer"):
        super().__init__()
        self.owner = owner

    def render(self, request):
        return self.owner._handle(request)


class FakeApiServer:
    """The fake API server on 127.0.0.1, over HTTP or HTTPS, optionally requiring a bearer token."""

    def __init__(self, reactor, cluster: Cluster | None = None, *, tls: ServerTLS | None = None,
                 token: str | None = None, port: int = 0):
        self.reactor = reactor
        self.cluster = cluster if cluster is not None else Cluster()
        self.tls = tls
        self.token = token
        #: Every request received, in order.
        self.requests: list[Seen] = []
        self._port = port
        self._listening = None
        self._site = _Site(self)
        self._connections: set[_Channel] = set()
        self._watches: set[_Watch] = set()
        self._request_waiters: list[tuple[Callable[[Seen], bool], defer.Deferred]] = []
        self._list_failure: int | None = None
        self._stalling = False
        self._stalled: list[Callable[[], None]] = []
        self._churn: task.LoopingCall | None = None
        self.cluster.subscribe(self._changed)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Listen; after a stop(), on the same port again."""
        if self.tls is None:
            self._listening = self.reactor.listenTCP(self._port, self._site, interface="127.0.0.1")
        else:
            self._listening = self.reactor.listenSSL(
                self._port, self._site, self.tls.context_factory(), interface="127.0.0.1"
            )
        self._port = self._listening.getHost().port

    def stop(self) -> defer.Deferred:
        """Stop listening and drop every connection, as a server going away."""
        listening, self._listening = self._listening, None
        for watch in list(self._watches):
            watch.closed = True
        self._watches.clear()
        self._stalled.clear()
        for channel in list(self._connections):
            channel.transport.abortConnection()
        if self._churn is not None and self._churn.running:
            self._churn.stop()
        return defer.maybeDeferred(listening.stopListening) if listening else defer.succeed(None)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._port}"

    # -- faults and controls --------------------------------------------------------

    def cut_streams(self) -> None:
        """Reset the TCP connection of every open watch."""
        for watch in list(self._watches):
            watch.reset()
        self._watches.clear()

    def end_streams(self) -> None:
        """End every open watch cleanly, as its timeoutSeconds would."""
        for watch in list(self._watches):
            watch.end()
        self._watches.clear()

    def fail_lists(self, code: int = 503) -> None:
        """Answer every list with this HTTP status until heal()."""
        self._list_failure = code

    def stall_lists(self) -> None:
        """Never answer a list until heal()."""
        self._stalling = True

    def heal(self) -> None:
        """Stop failing and stalling lists; answer the stalled ones now."""
        self._list_failure = None
        self._stalling = False
        stalled, self._stalled = self._stalled, []
        for answer in stalled:
            answer()

    def compact(self) -> None:
        """Forget history: a watch from an older resourceVersion gets 410 Expired."""
        self.cluster.compact()

    def emit_bookmarks(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to every watch that allows them."""
        for watch in list(self._watches):
            if watch.bookmarks:
                watch.send(bookmark_event(watch.rtype, self.cluster.resource_version))

    def churn(self, rate: float, count: int) -> None:
        """Rewrite `count` EndpointSlices in turn, `rate` per second, stamped with SENT_LABEL.

        Each write also sets the trigger-time annotation the EndpointSlice
        controller sets, as a real change would.
        """
        keys = list(self.cluster.objects["endpointslices"])
        if not keys:
            raise ApiError(409, "Conflict", "there is no EndpointSlice to churn")
        written = 0

        def write():
            nonlocal written
            current = self.cluster.objects["endpointslices"].get(keys[written % len(keys)])
            written += 1
            if current is not None:
                obj = json.loads(json.dumps(current))
                metadata = obj["metadata"]
                metadata.setdefault("labels", {})[SENT_LABEL] = str(time.time_ns())
                now = datetime.datetime.now(datetime.timezone.utc)
                metadata.setdefault("annotations", {})[TRIGGER_TIME_ANNOTATION] = (
                    now.isoformat(timespec="microseconds").replace("+00:00", "Z")
                )
                self.cluster.update(obj, "endpointslices")
            if written >= count:
                self._churn.stop()

        if self._churn is not None and self._churn.running:
            self._churn.stop()
        self._churn = task.LoopingCall(write)
        self._churn.clock = self.reactor
        self._churn.start(1.0 / rate, now=False)

    def next_request(self, predicate: Callable[[Seen], bool] = lambda seen: True) -> defer.Deferred:
        """Fires with the next request received that matches, once the server has handled it.

        (On the reactor's next turn: a watch is then open and receives what
        the test does next.)
        """
        d = defer.Deferred()
        self._request_waiters.append((predicate, d))
        return d

    # -- objects ----------------------------------------------------------------------

    def create(self, obj: dict) -> dict:
        return self.cluster.create(obj)

    def update(self, obj: dict) -> dict:
        return self.cluster.update(obj)

    def delete(self, plural: str, namespace: str | None, name: str) -> dict:
        return self.cluster.delete(plural, namespace, name)

    # -- HTTP -------------------------------------------------------------------------

    def _changed(self, change: Change) -> None:
        for watch in list(self._watches):
            watch.change(change)

    def _seen(self, request) -> Seen:
        url = urlsplit(request.uri.decode())
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        seen = Seen(request.method.decode(), url.path, query)
        self.requests.append(seen)
        waiting, self._request_waiters = self._request_waiters, []
        for predicate, d in waiting:
            if d.called:
                continue
            if predicate(seen):
                self.reactor.callLater(0, _fire, d, seen)
            else:
                self._request_waiters.append((predicate, d))
        return seen

    def _handle(self, request):
        seen = self._seen(request)
        request.setHeader(b"content-type", b"application/json")
        try:
            if seen.path.startswith("/fakeapi/"):
                return self._control(request, seen)
            self._authorize(request)
            rtype, namespace, name = _route(seen.path)
            if seen.method == "GET" and name is None:
                if seen.is_watch:
                    return self._watch(request, seen, rtype, namespace)
                return self._list(request, seen, rtype, namespace)
            if seen.method == "GET":
                return _json(with_type(rtype, self.cluster.get(rtype.plural, namespace, name)))
            if seen.method == "POST" and name is None:
                if rtype.namespaced and namespace is None:
                    raise ApiError(405, "MethodNotAllowed", "create needs a namespaced path")
                created = self.cluster.create(_body(request), rtype.plural, namespace)
                request.setResponseCode(201)
                return _json(with_type(rtype, created))
            if seen.method == "PUT" and name is not None:
                body = _body(request)
                if (body.get("metadata") or {}).get("name") != name:
                    raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
                return _json(with_type(rtype, self.cluster.update(body, rtype.plural, namespace)))
            if seen.method == "DELETE" and name is not None:
                return _json(with_type(rtype, self.cluster.delete(rtype.plural, namespace, name)))
            raise ApiError(405, "MethodNotAllowed", f"{seen.method} is not supported here")
        except ApiError as error:
            request.setResponseCode(error.code)
            return _json(error.status())

    def _authorize(self, request) -> None:
        if self.token is None:
            return
        scheme, _, credentials = (request.getHeader(b"authorization") or b"").decode().partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.token:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _list(self, request, seen: Seen, rtype: ResourceType, namespace):
        def answer() -> bytes:
            if self._list_failure is not None:
                request.setResponseCode(self._list_failure)
                reason = "ServiceUnavailable" if self._list_failure == 503 else "InternalError"
                return _json(ApiError(self._list_failure, reason, "the fake API server was told to fail").status())
            try:
                limit = int(seen.query.get("limit") or 0)
            except ValueError:
                raise ApiError(400, "BadRequest", "limit must be an integer") from None
            return _json(self.cluster.list(
                rtype.plural,
                namespace=namespace,
                label_selector=seen.query.get("labelSelector"),
                field_selector=seen.query.get("fieldSelector"),
                limit=limit,
                continue_token=seen.query.get("continue"),
            ))

        if not self._stalling:
            return answer()

        def answer_later() -> None:
            if request._disconnected or request.finished:
                return
            try:
                body = answer()
            except ApiError as error:
                request.setResponseCode(error.code)
                body = _json(error.status())
            request.write(body)
            request.finish()

        self._stalled.append(answer_later)
        return server.NOT_DONE_YET

    def _watch(self, request, seen: Seen, rtype: ResourceType, namespace):
        labels, fields = self.cluster.matchers(rtype, seen.query.get("labelSelector"), seen.query.get("fieldSelector"))
        since = seen.query.get("resourceVersion") or "0"
        try:
            since_version = int(since)
            timeout = int(seen.query.get("timeoutSeconds") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resourceVersion or timeoutSeconds: {since!r}") from None
        watch = _Watch(request, rtype, namespace, labels, fields, seen.query.get("allowWatchBookmarks") in _TRUE)
        # The API server sends the headers at once, before any event.
        request.write(b"")
        if since_version == 0:
            # "Any" version: synthetic ADDED events for what exists now.
            for key in sorted(self.cluster.objects[rtype.plural]):
                if namespace is None or key[0] == namespace:
                    obj = self.cluster.objects[rtype.plural][key]
                    if labels(obj) and fields(obj):
                        watch.send({"type": "ADDED", "object": with_type(rtype, obj)})
        else:
            try:
                changes = self.cluster.changes_since(since_version)
            except ApiError as error:
                watch.send({"type": "ERROR", "object": error.status()})
                watch.end()
                return server.NOT_DONE_YET
            for change in changes:
                watch.change(change)
        self._watches.add(watch)
        ending = self.reactor.callLater(timeout, watch.end) if timeout > 0 else None

        def finished(_):
            watch.closed = True
            self._watches.discard(watch)
            if ending is not None and ending.active():
                ending.cancel()

        request.notifyFinish().addBoth(finished)
        return server.NOT_DONE_YET

    def _control(self, request, seen: Seen) -> bytes:
        if seen.method != "POST":
            raise ApiError(405, "MethodNotAllowed", "controls take POST")
        name = seen.path[len("/fakeapi/"):]
        query = seen.query
        if name == "cut":
            self.cut_streams()
        elif name == "end":
            self.end_streams()
        elif name == "compact":
            self.compact()
        elif name == "bookmark":
            self.emit_bookmarks()
        elif name == "fail-lists":
            self.fail_lists(int(query.get("code", 503)))
        elif name == "stall-lists":
            self.stall_lists()
        elif name == "heal":
            self.heal()
        elif name == "churn":
            self.churn(float(query.get("rate", 100)), int(query.get("count", 1000)))
        else:
            raise ApiError(404, "NotFound", f"no control {name!r}")
        return _json({"resourceVersion": str(self.cluster.resource_version)})


def _fire(d: defer.Deferred, result) -> None:
    if not d.called:
        d.callback(result)


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _body(request) -> dict:
    try:
        body = json.loads(request.content.read() or b"null")
    except ValueError:
        raise ApiError(400, "BadRequest", "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body is not a JSON object")
    return body
