"""The Kubernetes API source: list and watch each resource into the Store.

For every watched resource (and every namespace, when `namespaces` restricts
them) one worker thread runs the official client's blocking calls: list in
pages, watch from the list's resourceVersion with bookmarks on, resume a
dropped watch from the last resourceVersion read, relist when the API answers
410 Gone. Every error is logged and backed off exponentially with jitter;
nothing in the Store is dropped while the API is away.

The workers decode JSON and convert objects with the pure functions below;
what they read crosses to the reactor thread through a `Handoff`, in batches,
and only the `StoreWriter`, in the reactor thread, touches the Store.

Why dedicated threads rather than the reactor's thread pool: a watch holds
its thread for minutes, so four resources (times the namespaces) would occupy
the pool that name resolution and other blocking work share, and starve it.
A thread blocked in a socket read costs little and is woken on `stop()` by
shutting its socket down.

The official client's `ApiClient` makes the requests: configuration,
credentials (including the rotating in-cluster token), TLS, the connection
pool. Not its generated API classes: importing CoreV1Api alone costs about
21 MB of resident memory, a seventh of the budget for a 20,000-object cache,
and validates every call's arguments. Nor `kubernetes.watch.Watch`: it
deserialises every object into the client's models (slow), fails on ERROR
events with ``deserialize=False``, and advances its resume version from
BOOKMARK events only in recent versions. The raw response (no preloading)
and our own JSON parsing are all a list or a watch needs.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import json
import logging
import os
import random
import socket
import threading
import time
from typing import Any, Callable, Iterator, Union

import attrs
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)
from prometheus_client import CollectorRegistry, Histogram
from twisted.internet import defer

from ..ops.metrics import per_registry
from .config import SourceConfig
from .objects import (
    ENDED_POD_PHASES,
    EndpointSlice,
    ObjectError,
    Pod,
    endpoint_slice_from_api,
    namespace_from_api,
    pod_from_api,
    service_from_api,
)
from .store import Store

__all__ = [
    "ApiSource",
    "ApiSourceError",
    "Backoff",
    "Timeouts",
    "client_configuration",
    "plan_streams",
    "Resource",
    "Stream",
    "RESOURCES",
    "POD_FIELD_SELECTOR",
    "TRIGGER_TIME_ANNOTATION",
    # The parts behind ApiSource, each usable (and tested) on its own.
    "Progress",
    "Page",
    "convert",
    "decode_page",
    "decode_event",
    "parse_trigger_time",
    "service_kind",
    "Listed",
    "Put",
    "Removed",
    "Rejected",
    "Progressed",
    "Expired",
    "WatchError",
    "Handoff",
    "StoreWriter",
    "programming_latency_histogram",
]

log = logging.getLogger("wayfinder.cache.informer")

#: CoreDNS watches only Pods that can still serve (controller.go, podListFunc).
POD_FIELD_SELECTOR = ",".join(f"status.phase!={phase}" for phase in ENDED_POD_PHASES)
#: Set by the EndpointSlice controller to the time of the change that caused
#: the slice's last update (k8s.io/api/core/v1 EndpointsLastChangeTriggerTime).
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
#: Items per list page: bounds the memory one page of JSON takes.
PAGE_SIZE = 500
#: client-go's reflector treats a watch that closes sooner than this without
#: an event as an error, so that a server that hangs up at once is backed off.
SHORT_WATCH_SECONDS = 1.0


class ApiSourceError(Exception):
    """The API connection cannot be configured (kubeconfig, in-cluster files)."""


class Expired(Exception):
    """The resourceVersion to resume from has left the API's history (410 Gone)."""


class WatchError(Exception):
    """A watch stream reported an error other than 410 Gone."""


# --- what is watched ---------------------------------------------------------


@attrs.frozen
class Resource:
    """One API resource: the Store kind it fills and where the API serves it."""

    kind: str
    plural: str
    #: The API group's path: /api/v1 or /apis/<group>/<version>.
    prefix: str
    namespaced: bool
    convert: Callable[[Any], Any] = attrs.field(eq=False, repr=False)

    def path(self, namespace: str | None) -> str:
        """The collection's path, cluster-wide or in one namespace."""
        if namespace is None:
            return f"{self.prefix}/{self.plural}"
        return f"{self.prefix}/namespaces/{namespace}/{self.plural}"


SERVICES = Resource("Service", "services", "/api/v1", True, service_from_api)
ENDPOINT_SLICES = Resource(
    "EndpointSlice", "endpointslices", "/apis/discovery.k8s.io/v1", True, endpoint_slice_from_api
)
NAMESPACES = Resource("Namespace", "namespaces", "/api/v1", False, namespace_from_api)
PODS = Resource("Pod", "pods", "/api/v1", True, pod_from_api)
RESOURCES = {r.kind: r for r in (SERVICES, ENDPOINT_SLICES, NAMESPACES, PODS)}


@attrs.frozen
class Stream:
    """One list+watch: a resource, cluster-wide or in one namespace, and its selectors."""

    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None

    def __str__(self) -> str:
        text = self.resource.plural
        if self.namespace is not None:
            text += f" in {self.namespace}"
        if self.label_selector:
            text += f" [{self.label_selector}]"
        return text


def plan_streams(config: SourceConfig) -> tuple[Stream, ...]:
    """The list+watch streams a source configuration asks for.

    Selectors are applied at the API, as CoreDNS does: `labels` on Services,
    EndpointSlices and Pods, `namespace_labels` on Namespaces. With
    `namespaces`, the namespaced resources are watched per namespace.
    Namespaces are always watched, cluster-wide: CoreDNS answers NXDOMAIN for
    a namespace that does not exist.
    """
    labels = config.labels.to_text() if config.labels is not None else None
    resources = [SERVICES]
    if config.watch_endpoints:
        resources.append(ENDPOINT_SLICES)
    if config.watch_pods:
        resources.append(PODS)
    streams = [
        Stream(resource, namespace, labels, POD_FIELD_SELECTOR if resource is PODS else None)
        for resource in resources
        for namespace in (config.namespaces or (None,))
    ]
    namespace_labels = config.namespace_labels.to_text() if config.namespace_labels is not None else None
    streams.append(Stream(NAMESPACES, None, namespace_labels))
    return tuple(streams)


# --- what the workers hand to the reactor ------------------------------------


@attrs.frozen
class Listed:
    """A complete list of one stream: the Store's objects of that scope become these."""

    stream: Stream
    objects: tuple
    rejected: tuple[ObjectError, ...]
    resource_version: str
    relist: bool
    seconds: float


@attrs.frozen
class Put:
    kind: str
    object: Any
    #: The EndpointSlice's trigger-time annotation, for the programming-latency histogram.
    trigger_time: str | None = None


@attrs.frozen
class Removed:
    kind: str
    key: tuple[str, str]


@attrs.frozen
class Rejected:
    kind: str
    error: ObjectError


@attrs.frozen
class Progressed:
    """A bookmark or a cleanly ended watch: the data is current, nothing changed."""

    kind: str


Message = Union[Listed, Put, Removed, Rejected, Progressed]


# --- pure decoding -------------------------------------------------------------


@attrs.frozen
class Page:
    objects: list
    rejected: list[ObjectError]
    resource_version: str
    continue_token: str | None


def _metadata(obj: Any) -> dict:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def convert(resource: Resource, raw: Any) -> Put | Removed | Rejected:
    """Convert one object as an ADDED or MODIFIED event carries it.

    A Pod being deleted (deletionTimestamp set) is treated as gone, as CoreDNS
    does (object/pod.go, errPodTerminating).
    """
    try:
        obj = resource.convert(raw)
    except ObjectError as error:
        return Rejected(resource.kind, error)
    if isinstance(obj, Pod) and obj.deleting:
        return Removed(resource.kind, obj.key)
    trigger_time = None
    if isinstance(obj, EndpointSlice):
        annotations = _metadata(raw).get("annotations")
        if isinstance(annotations, dict):
            value = annotations.get(TRIGGER_TIME_ANNOTATION)
            trigger_time = value if isinstance(value, str) else None
    return Put(resource.kind, obj, trigger_time)


def decode_page(resource: Resource, body: Any) -> Page:
    """Convert one page of a list. Raises ValueError for a body that is no List."""
    if not isinstance(body, dict) or not isinstance(body.get("items", []), (list, type(None))):
        raise ValueError(f"{resource.plural}: the list response is not a List object")
    metadata = _metadata(body)
    resource_version = metadata.get("resourceVersion")
    if not isinstance(resource_version, str) or not resource_version:
        raise ValueError(f"{resource.plural}: the list response has no metadata.resourceVersion")
    objects, rejected = [], []
    for raw in body.get("items") or ():
        result = convert(resource, raw)
        if isinstance(result, Put):
            # Its trigger time is dropped: an object met in a list is no
            # change being programmed (after a restart, its age measures
            # the restart), so it stays out of the latency histogram.
            objects.append(result.object)
        elif isinstance(result, Rejected):
            rejected.append(result.error)
    token = metadata.get("continue")
    return Page(objects, rejected, resource_version, token if isinstance(token, str) and token else None)


def decode_event(resource: Resource, line: bytes) -> tuple[str | None, Message]:
    """Turn one line of a watch stream into (resourceVersion, message).

    Raises Expired for a 410 ERROR event, WatchError for any other ERROR
    event, ValueError for a line that is no watch event.
    """
    event = json.loads(line)
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise ValueError(f"{resource.plural}: a watch event without an object: {line[:200]!r}")
    kind, obj = event.get("type"), event["object"]
    if kind == "ERROR":
        reason = f"{obj.get('reason', '')}: {obj.get('message', '')}".strip(": ")
        if obj.get("code") == 410:
            raise Expired(reason or "410 Gone")
        raise WatchError(f"error event {obj.get('code')} {reason}")
    metadata = _metadata(obj)
    resource_version = metadata.get("resourceVersion")
    if not isinstance(resource_version, str) or not resource_version:
        resource_version = None
    if kind == "BOOKMARK":
        return resource_version, Progressed(resource.kind)
    if kind in ("ADDED", "MODIFIED"):
        return resource_version, convert(resource, obj)
    if kind == "DELETED":
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not isinstance(name, str) or not name:
            return resource_version, Rejected(
                resource.kind, ObjectError(resource.kind, namespace, None, "metadata.name is missing")
            )
        key_namespace = namespace if resource.namespaced and isinstance(namespace, str) else ""
        return resource_version, Removed(resource.kind, (key_namespace, name))
    raise ValueError(f"{resource.plural}: unknown watch event type {kind!r}")


def parse_trigger_time(text: str) -> float:
    """An RFC 3339 time (as Go's RFC3339Nano writes it) as POSIX seconds. Raises ValueError."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.timestamp()


def service_kind(headless: bool) -> str:
    """The service_kind label of the programming-latency histogram (object/metrics.go).

    Only slices the EndpointSlice controller wrote carry the trigger time, and
    it writes them only for Services with a selector; CoreDNS's third label
    value, headless_without_selector, is therefore never observed.
    """
    return "headless_with_selector" if headless else "cluster_ip"


# --- retry policy ----------------------------------------------------------------


@attrs.frozen
class Progress:
    """Where one stream stands: what to resume from, and failures in a row."""

    #: None: the stream must (re)list.
    resource_version: str | None = None
    failures: int = 0

    @property
    def must_list(self) -> bool:
        return self.resource_version is None

    def advanced(self, resource_version: str | None) -> "Progress":
        """An event, a bookmark or a clean end of the watch was read."""
        return Progress(resource_version or self.resource_version)

    def expired(self) -> "Progress":
        return Progress(None, self.failures)

    def failed(self) -> "Progress":
        return attrs.evolve(self, failures=self.failures + 1)


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter, capped: the wait after n failures in a row.

    The defaults are client-go's reflector's (800 ms doubling to 30 s); the
    jitter takes up to that fraction off each wait, so that replicas that
    lost the API together do not come back together.
    """

    initial: float = 0.8
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5
    random: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)

    def delay(self, failures: int) -> float:
        base = min(self.cap, self.initial * self.factor ** min(max(failures - 1, 0), 64))
        return base * (1.0 - self.jitter * self.random())


@attrs.frozen
class Timeouts:
    """Socket timeouts, in seconds, and the length of a watch."""

    connect: float = 5.0
    #: The longest silence while a list, or a watch's response headers, arrive.
    read: float = 30.0
    #: A watch asks the server to end it after between this and twice this
    #: many seconds (client-go: 5 to 10 minutes), so that reconnections spread.
    watch: int = 300


# --- connection --------------------------------------------------------------------


def client_configuration(
    config: SourceConfig,
    *,
    environ=os.environ,
    token_file: str = SERVICE_TOKEN_FILENAME,
    ca_file: str = SERVICE_CERT_FILENAME,
) -> k8s.Configuration:
    """The client configuration for a source, as CoreDNS's plugin connects.

    `kubeconfig FILE [CONTEXT]`, else `endpoint URL` (with `tls CERT KEY
    CACERT`), else the Pod's service account. Raises ApiSourceError.
    """
    configuration = k8s.Configuration()
    try:
        if config.kubeconfig is not None:
            k8s_config.load_kube_config(
                config_file=config.kubeconfig,
                context=config.context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif config.endpoint is not None:
            configuration.host = config.endpoint.rstrip("/")
            if config.tls is not None:
                configuration.cert_file = config.tls.cert
                configuration.key_file = config.tls.key
                configuration.ssl_ca_cert = config.tls.ca
        else:
            # Bound service-account tokens rotate; the loader rereads the file.
            InClusterConfigLoader(
                token_filename=token_file, cert_filename=ca_file, try_refresh_token=True, environ=environ
            ).load_and_set(configuration)
    except Exception as error:
        raise ApiSourceError(f"{config.describe()}: {error}") from None
    # urllib3 otherwise retries failed requests (and 429s) by itself, sleeping
    # in between: an outage must surface at once, to be logged and backed off.
    configuration.retries = False
    return configuration


# --- the reactor side ------------------------------------------------------------


class Handoff:
    """Carries messages from worker threads to the reactor thread, in batches.

    A put schedules one delivery unless one is already pending; that delivery
    takes everything queued by then, so a burst costs one reactor wake-up.
    """

    def __init__(self, reactor, deliver: Callable[[list], None]):
        self._reactor = reactor
        self._deliver = deliver
        self._queue: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, message: Message) -> None:
        """Queue a message (any thread)."""
        self._queue.append(message)
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self._reactor.callFromThread(self._drain)

    def _drain(self) -> None:
        # Cleared before taking, so that a put racing with this drain
        # schedules another one rather than being left behind.
        with self._lock:
            self._scheduled = False
        batch = []
        while self._queue:
            batch.append(self._queue.popleft())
        if batch:
            self._deliver(batch)


@per_registry
def programming_latency_histogram(registry: CollectorRegistry) -> Histogram:
    """CoreDNS's coredns_kubernetes_dns_programming_duration_seconds, once per registry."""
    return Histogram(
        "coredns_kubernetes_dns_programming_duration_seconds",
        "Histogram of the time (in seconds) it took to program a dns instance.",
        ["service_kind"],
        # CoreDNS's: prometheus.ExponentialBuckets(0.001, 2, 20).
        buckets=[0.001 * 2**i for i in range(20)],
        registry=registry,
    )


class StoreWriter:
    """Applies what the workers read to the Store. Reactor thread only."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float],
        *,
        on_listed: Callable[[Listed], None] = lambda listed: None,
        latency: Histogram | None = None,
    ):
        self.store = store
        self._clock = clock
        self._on_listed = on_listed
        self._latency = latency
        #: Wall-clock time of the latest list, event, bookmark or clean watch end.
        self.last_sync = 0.0
        # (kind, key) -> reason last logged, so that a bad object is logged once.
        self._rejected: dict[tuple[str, tuple[str, str]], str] = {}

    def apply(self, batch: list) -> None:
        # Stamped first: readers woken by the Store's change events see it.
        self.last_sync = self._clock()
        for message in batch:
            if isinstance(message, Put):
                self._put(message)
            elif isinstance(message, Removed):
                self._forget(message.kind, message.key)
                self.store.delete(message.kind, message.key)
            elif isinstance(message, Rejected):
                self._reject(message.kind, message.error)
            elif isinstance(message, Listed):
                self._replace(message)

    def _put(self, message: Put) -> None:
        obj = message.object
        self._forget(message.kind, obj.key)
        self.store.put(obj)
        if message.trigger_time is not None and self._latency is not None:
            self._observe_latency(obj, message.trigger_time)

    def _observe_latency(self, eps: EndpointSlice, text: str) -> None:
        try:
            triggered = parse_trigger_time(text)
        except ValueError:
            log.warning(
                "EndpointSlice %s/%s: invalid %s %r; no programming latency recorded",
                eps.namespace, eps.name, TRIGGER_TIME_ANNOTATION, text,
            )
            return
        # As CoreDNS: only when the backing Service is known; a lagging
        # Service watch rarely matters since Services change seldom.
        service = self.store.service(eps.namespace, eps.service_name) if eps.service_name else None
        if service is not None:
            self._latency.labels(service_kind(service.headless)).observe(self._clock() - triggered)

    def _replace(self, listed: Listed) -> None:
        kind, namespace = listed.stream.resource.kind, listed.stream.namespace
        objects = list(listed.objects)
        if self._rejected:
            for obj in objects:
                self._forget(kind, obj.key)
        for error in listed.rejected:
            self._reject(kind, error)
            # The last good version of a rejected object keeps serving.
            previous = self.store.get(kind, _error_key(kind, error))
            if previous is not None:
                objects.append(previous)
        changes = self.store.replace(kind, objects, namespace)
        if listed.relist:
            log.info(
                "%s relisted in %.2f seconds: %d objects, %d changes",
                listed.stream, listed.seconds, len(objects), len(changes),
            )
        self._on_listed(listed)

    def _reject(self, kind: str, error: ObjectError) -> None:
        key = (kind, _error_key(kind, error))
        if self._rejected.get(key) == error.reason:
            return
        self._rejected[key] = error.reason
        kept = self.store.get(*key) is not None
        log.warning("skipping %s%s", error, "; its previous version keeps serving" if kept else "")

    def _forget(self, kind: str, key: tuple[str, str]) -> None:
        if self._rejected:
            self._rejected.pop((kind, key), None)


def _error_key(kind: str, error: ObjectError) -> tuple[str, str]:
    if kind == "Namespace":
        return ("", error.name or "")
    return (error.namespace or "", error.name or "")


# --- the source ------------------------------------------------------------------


class _Stopped(Exception):
    pass


class ApiSource:
    """Feeds a Store from the Kubernetes API: list, watch, resume, relist.

    `start()` starts one worker thread per stream; `synced` fires once every
    stream's first list is in the Store; `stop()` ends the threads.
    """

    def __init__(
        self,
        config: SourceConfig,
        store: Store,
        reactor,
        *,
        registry: CollectorRegistry | None = None,
        api_client: k8s.ApiClient | None = None,
        backoff: Backoff = Backoff(),
        timeouts: Timeouts = Timeouts(),
    ):
        if config.manifests is not None:
            raise ValueError("ApiSource reads the API; this configuration names a manifests folder")
        self.config = config
        self.store = store
        self.streams = plan_streams(config)
        self._reactor = reactor
        self._backoff = backoff
        self._timeouts = timeouts
        self._owns_client = api_client is None
        if api_client is None:
            configuration = client_configuration(config)
            # One connection per stream, so that none waits for the pool.
            configuration.connection_pool_maxsize = len(self.streams) + 1
            api_client = k8s.ApiClient(configuration)
        self._api_client = api_client
        self._writer = StoreWriter(
            store,
            reactor.seconds,
            on_listed=self._listed,
            latency=programming_latency_histogram(registry) if registry is not None else None,
        )
        self._handoff = Handoff(reactor, self._deliver)
        self._unlisted = {stream.resource.kind: set() for stream in self.streams}
        for stream in self.streams:
            self._unlisted[stream.resource.kind].add(stream)
        self._kind_waiters: dict[str, list[defer.Deferred]] = {kind: [] for kind in self._unlisted}
        self._waiters: list[defer.Deferred] = []
        self._stop_waiters: list[defer.Deferred] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._responses: set = set()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._started_at = 0.0

    # -- public ------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return not any(self._unlisted.values())

    @property
    def synced(self) -> defer.Deferred:
        """Fires once every stream's first list is in the Store (a new Deferred each time)."""
        return self._when(self.has_synced, self._waiters)

    def synced_for(self, kind: str) -> defer.Deferred:
        """Fires once the first list of that kind ("Service", ...) is in the Store."""
        if kind not in self._unlisted:
            raise ValueError(f"{kind} is not watched; watched: {', '.join(self._unlisted)}")
        return self._when(not self._unlisted[kind], self._kind_waiters[kind])

    @property
    def last_sync(self) -> float:
        """Wall-clock time of the latest successful list, watch event or bookmark (0 before any)."""
        return self._writer.last_sync

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("ApiSource.start() was called twice")
        self._started_at = time.monotonic()
        log.info("watching %s from %s", ", ".join(map(str, self.streams)), self.config.describe())
        for stream in self.streams:
            name = f"wayfinder-informer-{stream.resource.plural}"
            if stream.namespace is not None:
                name += f"-{stream.namespace}"
            thread = threading.Thread(target=self._run, args=(stream,), name=name, daemon=True)
            self._threads.append(thread)
        self._running = len(self._threads)
        for thread in self._threads:
            thread.start()

    def stop(self) -> defer.Deferred:
        """Stop every worker; fires once all have ended. The Store keeps its data."""
        self._stopping.set()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            _shut_down(response)
        if self._running == 0:
            self._close_client()
            return defer.succeed(None)
        d = defer.Deferred()
        self._stop_waiters.append(d)
        return d

    # -- reactor thread ------------------------------------------------------------

    def _deliver(self, batch: list) -> None:
        if not self._stopping.is_set():
            self._writer.apply(batch)

    def _listed(self, listed: Listed) -> None:
        kind = listed.stream.resource.kind
        pending = self._unlisted[kind]
        if listed.stream not in pending:
            return
        pending.discard(listed.stream)
        if not pending:
            _fire(self._kind_waiters[kind])
        if self.has_synced:
            counts = ", ".join(f"{self.store.count(k)} {k}" for k in self._unlisted)
            log.info("API source synced in %.2f seconds: %s", time.monotonic() - self._started_at, counts)
            _fire(self._waiters)

    def _worker_ended(self, thread: threading.Thread) -> None:
        # The worker's last act was to call us: joining it takes no time,
        # and stop() then fires only once every thread is gone.
        thread.join()
        self._running -= 1
        if self._running == 0 and self._stopping.is_set():
            self._close_client()
            _fire(self._stop_waiters)

    def _close_client(self) -> None:
        if self._owns_client:
            self._api_client.close()

    @staticmethod
    def _when(done: bool, waiters: list) -> defer.Deferred:
        if done:
            return defer.succeed(None)
        d = defer.Deferred()
        waiters.append(d)
        return d

    # -- worker threads ------------------------------------------------------------

    def _run(self, stream: Stream) -> None:
        progress = Progress()
        listed_before = False
        try:
            while not self._stopping.is_set():
                try:
                    if progress.must_list:
                        progress = self._list(stream, relist=listed_before)
                        listed_before = True
                    else:
                        # The watch yields its progress after every event, so
                        # that a cut stream resumes from the last event read.
                        for progress in self._watch(stream, progress):
                            pass
                except Exception as error:
                    if self._stopping.is_set():
                        break
                    if isinstance(error, Expired):
                        log.info("%s: %s; relisting", stream, error)
                        progress = progress.expired()
                        continue
                    progress = progress.failed()
                    delay = self._backoff.delay(progress.failures)
                    log.warning(
                        "%s: %s; retrying in %.2f seconds", stream, _describe(error), delay,
                        exc_info=not isinstance(error, _EXPECTED_ERRORS),
                    )
                    self._stopping.wait(delay)
        finally:
            self._reactor.callFromThread(self._worker_ended, threading.current_thread())

    def _get(self, stream: Stream, query: list[tuple[str, Any]], timeout: tuple[float, float]):
        """GET the stream's collection; the raw urllib3 response, or ApiException."""
        for name, value in (("labelSelector", stream.label_selector), ("fieldSelector", stream.field_selector)):
            if value:
                query.append((name, value))
        request = self._api_client.param_serialize(
            "GET",
            stream.resource.path(stream.namespace),
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self._api_client.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException(http_resp=response)
        return response.response

    def _list(self, stream: Stream, relist: bool) -> Progress:
        started = time.monotonic()
        objects: list = []
        rejected: list = []
        token = None
        while True:
            query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
            if token is not None:
                query.append(("continue", token))
            response = self._get(stream, query, (self._timeouts.connect, self._timeouts.read))
            with self._tracking(response):
                body = json.loads(response.data)
            page = decode_page(stream.resource, body)
            del body
            objects.extend(page.objects)
            rejected.extend(page.rejected)
            if page.continue_token is None:
                break
            token = page.continue_token
        self._handoff.put(
            Listed(stream, tuple(objects), tuple(rejected), page.resource_version, relist,
                   time.monotonic() - started)
        )
        return Progress(page.resource_version)

    def _watch(self, stream: Stream, progress: Progress) -> Iterator[Progress]:
        timeout = int(self._timeouts.watch * (1 + random.random()))
        started = time.monotonic()
        try:
            response = self._get(
                stream,
                [
                    ("watch", True),
                    ("resourceVersion", progress.resource_version),
                    ("allowWatchBookmarks", True),
                    ("timeoutSeconds", timeout),
                ],
                (self._timeouts.connect, timeout + self._timeouts.read),
            )
        except ApiException as error:
            # Servers without a watch cache answer 410 as the HTTP status.
            if error.status == 410:
                raise Expired(f"resourceVersion {progress.resource_version} is too old") from None
            raise
        events = 0
        with self._tracking(response):
            for line in _lines(response):
                resource_version, message = decode_event(stream.resource, line)
                self._handoff.put(message)
                events += 1
                progress = progress.advanced(resource_version)
                yield progress
        if not events and time.monotonic() - started < SHORT_WATCH_SECONDS:
            raise WatchError("the watch closed at once without an event")
        self._handoff.put(Progressed(stream.resource.kind))
        yield progress.advanced(None)

    @contextlib.contextmanager
    def _tracking(self, response) -> Iterator[None]:
        """Make a response's socket shut down by stop(); return its connection after."""
        with self._lock:
            self._responses.add(response)
        try:
            if self._stopping.is_set():
                raise _Stopped()
            yield
        except BaseException:
            response.close()
            raise
        finally:
            with self._lock:
                self._responses.discard(response)
            response.release_conn()


_EXPECTED_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError, WatchError)


#: An API error's message is logged up to this many characters (one line, bounded).
_MAX_STATUS_MESSAGE = 500


def _describe(error: BaseException) -> str:
    """One log line's worth: the HTTP status and, for an API error, the Status message the API sent.

    The message says what an operator must fix ("services is forbidden:
    User \"system:serviceaccount:kube-system:wayfinder\" cannot list ...").
    """
    if isinstance(error, ApiException):
        status = f"HTTP {error.status} {error.reason or ''}".strip()
        message = _status_message(error.body)
        return f"{status}: {message}" if message else status
    return f"{type(error).__name__}: {error}"


def _status_message(body) -> str:
    """The `message` of a Kubernetes Status body, on one line; empty when the body is not one."""
    try:
        status = json.loads(body) if body else None
    except (TypeError, ValueError):
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    if not isinstance(message, str):
        return ""
    return " ".join(message.split())[:_MAX_STATUS_MESSAGE]


def _lines(response) -> Iterator[bytes]:
    """The lines of a chunked watch response, as they arrive."""
    buffer = bytearray()
    for chunk in response.stream(amt=None):
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            if end > start:
                yield bytes(buffer[start:end])
            start = end + 1
        del buffer[:start]
    if buffer.strip():
        yield bytes(buffer)


def _shut_down(response) -> None:
    # Wakes the worker blocked reading this response (as the client's own
    # Watch.stop does); the worker then closes it.
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _fire(waiters: list) -> None:
    pending, waiters[:] = list(waiters), []
    for d in pending:
        if not d.called:
            d.callback(None)
