"""The webhook's HTTPS server: AdmissionReview requests in, answers out, on Twisted.

It reads the Store that feeds the DNS server of the same block, through a
memo that renders each namespace's variables (JSON and base64) once per
change instead of once per request: with 1,000 Services in a namespace that
is 8,000 variables and tens of milliseconds, while an answer that reuses
them takes a fraction of one (see tests/bench/bench_webhook.py).

TLS is 1.2 or newer. The certificate and key files are checked whenever a
connection arrives and re-read when either file changes (a new inode, size or
mtime, as when cert-manager or the kubelet swap a Secret's files), so a
rotated certificate serves the next connection without a restart; a pair that
does not load (half written, key and certificate that do not match) is logged
once and the current one keeps serving. ``tls auto`` makes a CA and a serving
certificate in memory for local use and logs the CA as a caBundle.

DNS never waits for the webhook. A webhook whose certificate cannot be
loaded at start (the Secret not issued yet, a pair that does not match) or
whose port cannot be bound does not stop the process: it logs why, reports
0 in ``wayfinder_webhook_serving``, and tries again, 1 s after the first
failure, then twice as long each time up to 10 s, until it can listen.
Until then nothing listens on its port (the API server's call fails
and, with ``failurePolicy: Ignore``, the Pod is admitted unchanged).
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import logging
import os
import time

from cryptography import x509
from OpenSSL import SSL
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from discovery.cache.objects import Namespace, Service
from discovery.certs import CertsError, issue_serving_certificate, make_ca, read_pem_files
from discovery.net import join_host_port
from discovery.ops.metrics import per_registry
from discovery.cache.store import Change, Store
from discovery.ops.connections import ConnectionGuard

from .admission import (
    AdmissionError,
    RenderedEnv,
    StoreEnvSource,
    admit,
    entry_json,
    parse_review,
    review_response,
)
from .config import HEALTH_PATH, CertificateFiles, WebhookConfig
from .envvars import MASTER_NAMESPACE, MASTER_SERVICE, EnvVar, service_variables

__all__ = [
    "WebhookServer",
    "CertificateError",
    "ReloadingCertificate",
    "EnvMemo",
    "auto_certificate",
    "load_certificate_files",
]

log = logging.getLogger("wayfinder.webhook")

RESULTS = ("patched", "unchanged", "invalid", "too_large", "error")
#: Seconds before the first retry of a webhook that could not start, and the most between two.
RETRY_FIRST = 1.0
RETRY_MAX = 10.0
#: Admission answers take well under a millisecond when the memo is warm.
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_AUTO_VALIDITY_DAYS = 365


# --- the cache, rendered -----------------------------------------------------------


class EnvMemo:
    """The Store's variables per namespace, rendered on first use after each change.

    Each Service's variables and their JSON are kept too, so that after one
    Service changes a namespace of 1,000 is rendered again in milliseconds
    rather than tens of them.
    """

    def __init__(self, store: Store):
        self._source = StoreEnvSource(store, self._variables_of, self._render)
        #: By namespace; None holds the variables without service links,
        #: which depend on the master Service only.
        self._rendered: dict[str | None, RenderedEnv] = {}
        self._variables: dict[tuple[str, str], tuple[EnvVar, ...]] = {}
        self._json: dict[EnvVar, str] = {}
        self._unsubscribe = store.subscribe(self._changed)

    def environment(self, namespace: str, service_links: bool) -> RenderedEnv:
        key = namespace if service_links else None
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = self._rendered[key] = self._source.environment(namespace, service_links)
        return rendered

    def service(self, namespace: str, name: str) -> Service | None:
        return self._source.service(namespace, name)

    def namespace(self, name: str) -> Namespace | None:
        return self._source.namespace(name)

    def close(self) -> None:
        """Stop following the Store."""
        self._unsubscribe()
        self._rendered.clear()
        self._variables.clear()
        self._json.clear()

    def _variables_of(self, service: Service) -> tuple[EnvVar, ...]:
        variables = self._variables.get(service.key)
        if variables is None:
            variables = self._variables[service.key] = service_variables(service)
        return variables

    def _render(self, variable: EnvVar) -> str:
        text = self._json.get(variable)
        if text is None:
            text = self._json[variable] = entry_json(variable)
        return text

    def _changed(self, change: Change) -> None:
        if change.kind != "Service":
            return
        for variable in self._variables.pop(change.object.key, ()):
            self._json.pop(variable, None)
        if (change.namespace, change.object.name) == (MASTER_NAMESPACE, MASTER_SERVICE):
            self._rendered.clear()
        else:
            self._rendered.pop(change.namespace, None)


# --- metrics ---------------------------------------------------------------------------


class _Metrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "wayfinder_webhook_requests_total",
            "AdmissionReview requests answered by the webhook, by result.",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            self.requests.labels(result)
        self.duration = Histogram(
            "wayfinder_webhook_request_duration_seconds",
            "Time from a complete AdmissionReview request to its answer.",
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.serving = Gauge(
            "wayfinder_webhook_serving",
            "1 while the webhook listens with a certificate, 0 while it cannot and is retrying.",
            ["address"],
            registry=registry,
        )
        self.certificate_errors = Counter(
            "wayfinder_webhook_certificate_errors_total",
            "Attempts to load the webhook's certificate and key that failed, at start and on rotation.",
            ["address"],
            registry=registry,
        )
        self.listen_errors = Counter(
            "wayfinder_webhook_listen_errors_total",
            "Attempts to listen on the webhook's address that failed.",
            ["address"],
            registry=registry,
        )
        self.expiry = Gauge(
            "wayfinder_webhook_certificate_expiry_timestamp_seconds",
            "Unix time at which the certificate the webhook serves expires.",
            ["address"],
            registry=registry,
        )


#: One set of collectors per registry: several webhooks in one process share them.
_metrics_for = per_registry(_Metrics)


# --- TLS ---------------------------------------------------------------------------------


class CertificateError(Exception):
    """A certificate or key that cannot be served, naming the file."""


def _server_context(chain: list[x509.Certificate], key) -> SSL.Context:
    """A server context holding this chain and key, with Twisted's TLS settings."""
    # CertificateOptions brings Twisted's cipher list, options and curves;
    # the certificate is set here, from cryptography objects.
    context = CertificateOptions(raiseMinimumTo=TLSVersion.TLSv1_2).getContext()
    context.use_certificate(chain[0])
    for certificate in chain[1:]:
        context.add_extra_chain_cert(certificate)
    context.use_privatekey(key)
    context.check_privatekey()
    return context


@implementer(IOpenSSLServerConnectionCreator)
class _FixedCertificate:
    """Serves one context (tls auto)."""

    def __init__(self, context: SSL.Context):
        self._context = context

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        return SSL.Connection(self._context, None)


def load_certificate_files(cert_path: str, key_path: str) -> tuple[SSL.Context, x509.Certificate]:
    """A server context for a PEM certificate chain and key, and the certificate; raises CertificateError."""
    try:
        chain, key = read_pem_files(cert_path, key_path)
    except CertsError as e:
        raise CertificateError(str(e)) from None
    try:
        return _server_context(chain, key), chain[0]
    except (SSL.Error, ValueError, TypeError) as e:
        raise CertificateError(f"{cert_path} and {key_path} do not make a usable pair ({e})") from None


def _file_signature(path: str) -> tuple[int, int, int, int]:
    # os.stat follows the ..data symlink of a Secret volume, so a swap shows
    # as a new inode.
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _expiry(certificate: x509.Certificate) -> str:
    return certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


@implementer(IOpenSSLServerConnectionCreator)
class ReloadingCertificate:
    """Serves a certificate and key from files, re-read for new connections when they change."""

    def __init__(self, cert_path: str, key_path: str, *, loaded=None, failed=None):
        self.cert_path = cert_path
        self.key_path = key_path
        #: Called with each certificate loaded, and after each pair that did not load.
        self._loaded = loaded or (lambda certificate: None)
        self._on_failure = failed or (lambda: None)
        try:
            self._signature = self._stat()
        except OSError as e:
            raise CertificateError(f"cannot read {e.filename}: {e.strerror}") from None
        self._context, certificate = load_certificate_files(cert_path, key_path)
        self._failed: object = None
        log.info("serving certificate %s (expires %s)", cert_path, _expiry(certificate))
        self._loaded(certificate)

    def _stat(self):
        return (_file_signature(self.cert_path), _file_signature(self.key_path))

    def refresh(self) -> None:
        """Load the files again if they changed since the last attempt."""
        try:
            signature = self._stat()
        except OSError as e:
            failure = ("stat", e.filename, e.errno)
            if failure != self._failed:
                self._failed = failure
                self._on_failure()
                log.warning("keeping the current certificate: cannot read %s: %s", e.filename, e.strerror)
            return
        if signature == self._signature or signature == self._failed:
            return
        try:
            context, certificate = load_certificate_files(self.cert_path, self.key_path)
        except CertificateError as e:
            self._failed = signature
            self._on_failure()
            log.warning("keeping the current certificate: %s", e)
            return
        self._signature, self._context, self._failed = signature, context, None
        log.info("reloaded certificate %s (expires %s)", self.cert_path, _expiry(certificate))
        self._loaded(certificate)

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        self.refresh()
        return SSL.Connection(self._context, None)


def auto_certificate(names: tuple[str, ...], now: datetime.datetime) -> tuple[SSL.Context, bytes]:
    """A fresh CA and a certificate it signs for localhost, the loopback addresses and names.

    Returns a server context and the CA certificate in PEM (the caBundle).
    """
    ca = make_ca(now, _AUTO_VALIDITY_DAYS, common_name="wayfinder webhook CA (tls auto)")
    dns_names = ["localhost", *(n for n in names if n != "localhost")]
    leaf = issue_serving_certificate(ca, dns_names, now, _AUTO_VALIDITY_DAYS, addresses=("127.0.0.1", "::1"))
    return _server_context([leaf.certificate], leaf.key), ca.certificate_pem()


# --- HTTP ------------------------------------------------------------------------------------


class _BoundedRequest(Request):
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


class _NoDelayTLS(BufferingTLSTransport):
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


class _WebhookSite(Site):
    noisy = False
    protocol = _DeadlineChannel

    def __init__(self, resource, config: WebhookConfig, reactor, guard: ConnectionGuard, label: str):
        super().__init__(
            resource, requestFactory=_BoundedRequest, parsePOSTFormSubmission=False, reactor=reactor
        )
        self.max_request_bytes = config.max_request_bytes
        self.read_timeout = config.read_timeout
        self.guard = guard
        self.label = label

    def log(self, request):
        # The webhook writes its own line per request, at debug.
        pass


class _GuardedTLSFactory(TLSMemoryBIOFactory):
    """TLS connections while the webhook's cap and the process's descriptor budget allow."""

    def __init__(self, contextFactory, site: _WebhookSite, cap: int, reactor):
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


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


class _WebhookResource(Resource):
    isLeaf = True

    def __init__(self, server: "WebhookServer"):
        super().__init__()
        self._server = server
        self._path = server.config.path.encode()

    def render(self, request: _BoundedRequest) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if request.path == self._path:
            if request.method != b"POST":
                request.setResponseCode(405)
                request.setHeader(b"Allow", b"POST")
                return _message(f"{request.method.decode('ascii', 'replace')} is not allowed; POST an AdmissionReview")
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
        return _message(f"no such path; POST AdmissionReviews to {self._server.config.path}")


class WebhookServer:
    """The env-injecting admission webhook over HTTPS, reading one Store."""

    def __init__(
        self, config: WebhookConfig, store: Store, reactor, *, registry: CollectorRegistry | None = None,
        guard: ConnectionGuard | None = None,
    ):
        self.config = config
        self._guard = guard if guard is not None else ConnectionGuard()
        self._store = store
        self._reactor = reactor
        #: Follows the Store while listening.
        self._env: EnvMemo | None = None
        self._metrics = _metrics_for(registry if registry is not None else CollectorRegistry())
        self._listening = None
        self._factory: TLSMemoryBIOFactory | None = None
        #: The bound port once started (useful with ADDRESS ":0").
        self.port: int | None = None
        #: The CA certificate (PEM) of `tls auto`, once started.
        self.ca_bundle: bytes | None = None
        #: The certificate source, once one has loaded (kept across retries to listen).
        self._certificate = None
        self._address = join_host_port(config.host, config.port)
        #: The next attempt to start, while it cannot.
        self._retry = None
        self._retry_delay = RETRY_FIRST
        #: Why the last attempt failed, so that a reason is logged once, not at every retry.
        self._last_failure: str | None = None

    @property
    def serving(self) -> bool:
        """Listening with a certificate (the webhook's own readiness; /ready does not wait for it)."""
        return self._listening is not None

    def start(self) -> Deferred:
        """Listen now if it can; otherwise report why and keep trying (see the module's docstring).

        Fires at once: a certificate that cannot be loaded, or a port that
        cannot be bound, never fails it, so nothing else waits for the webhook.
        """
        return maybeDeferred(self._attempt)

    def _attempt(self) -> None:
        self._retry = None
        metrics = self._metrics
        try:
            self._listen()
        except (CertificateError, CannotListenError) as e:
            kind = metrics.certificate_errors if isinstance(e, CertificateError) else metrics.listen_errors
            kind.labels(self._address).inc()
            metrics.serving.labels(self._address).set(0)
            reason = str(e)
            if reason != self._last_failure:
                self._last_failure = reason
                log.warning(
                    "not serving on %s (DNS is unaffected): %s; trying again every %g s at most",
                    self._address, reason, RETRY_MAX,
                )
            self._retry = self._reactor.callLater(self._retry_delay, self._attempt)
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
            return
        self._retry_delay, self._last_failure = RETRY_FIRST, None
        metrics.serving.labels(self._address).set(1)

    def _tls(self):
        if self._certificate is not None:
            return self._certificate
        tls = self.config.tls
        if isinstance(tls, CertificateFiles):
            self._certificate = ReloadingCertificate(
                tls.cert, tls.key,
                loaded=lambda certificate: self._metrics.expiry.labels(self._address).set(
                    certificate.not_valid_after_utc.timestamp()
                ),
                failed=self._metrics.certificate_errors.labels(self._address).inc,
            )
            return self._certificate
        now = datetime.datetime.fromtimestamp(self._reactor.seconds(), datetime.timezone.utc)
        context, self.ca_bundle = auto_certificate(tls.names, now)
        log.info(
            "tls auto: a self-signed certificate for localhost, 127.0.0.1, ::1%s; caBundle: %s",
            "".join(f", {n}" for n in tls.names),
            base64.b64encode(self.ca_bundle).decode("ascii"),
        )
        self._certificate = _FixedCertificate(context)
        return self._certificate

    def _listen(self) -> None:
        label = f"https://{join_host_port(self.config.host, self.config.port)}"
        site = _WebhookSite(_WebhookResource(self), self.config, self._reactor, self._guard, label)
        self._factory = _GuardedTLSFactory(self._tls(), site, self.config.max_connections, self._reactor)
        self._factory.protocol = _NoDelayTLS
        host = self.config.host
        if host:
            self._listening = self._reactor.listenTCP(self.config.port, self._factory, interface=host)
        else:
            # ":8443" means every address, as in Go; fall back to IPv4 where
            # the host has no IPv6.
            try:
                self._listening = self._reactor.listenTCP(self.config.port, self._factory, interface="::")
            except CannotListenError:
                self._listening = self._reactor.listenTCP(self.config.port, self._factory, interface="0.0.0.0")
        self._env = EnvMemo(self._store)
        address = self._listening.getHost()
        self.port = address.port
        # The metrics name the configured host and the bound port (":0" in tests).
        site.label = f"https://{join_host_port(self.config.host, self.port)}"
        log.info("listening on https://%s%s", join_host_port(address.host, address.port), self.config.path)

    def stop(self) -> Deferred:
        """Stop listening (or trying to), close open connections and stop following the Store."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._listening is None:
            return succeed(None)
        self._metrics.serving.labels(self._address).set(0)
        self._env.close()
        listening, self._listening = self._listening, None
        for protocol in list(self._factory.protocols):
            protocol.transport.loseConnection()
        return maybeDeferred(listening.stopListening)

    def answer(self, request: _BoundedRequest) -> list[bytes]:
        """Answer one POSTed AdmissionReview: the body's pieces; the status goes on request."""
        started = time.perf_counter()
        client = request.getClientAddress()
        peer = getattr(client, "host", "?")
        if request.body_too_large:
            result, status = "too_large", 413
            body = [_message(f"the request body is over {self.config.max_request_bytes} bytes")]
            log.warning("request from %s: body over %d bytes", peer, self.config.max_request_bytes)
        else:
            try:
                review = parse_review(request.content.getvalue())
                admission = admit(review, self._env)
            except AdmissionError as e:
                result, status, body = "invalid", 400, [_message(str(e))]
                log.warning("bad request from %s: %s", peer, e)
            except Exception as e:  # a bug: one line, and the client learns only that
                result, status = "error", 500
                body = [_message("internal error answering the review; see the webhook's log")]
                log.warning("error answering a review from %s: %r", peer, e)
                log.debug("traceback of that error:", exc_info=True)
            else:
                body = review_response(admission)
                result, status = ("patched" if admission.patch_base64 else "unchanged"), 200
                log.debug(
                    "uid %s: %s (%.6f s)", admission.uid, admission.summary, time.perf_counter() - started
                )
        request.setResponseCode(status)
        self._metrics.requests.labels(result).inc()
        self._metrics.duration.observe(time.perf_counter() - started)
        return body
