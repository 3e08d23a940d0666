"""The webhook's HTTPS server: AdmissionReview requests in, answers out, on Twisted.

It reads the Store that feeds the DNS server of the same block, through a
memo that renders each namespace's variables (JSON and base64) once per
change instead of once per request (memo.py). Its certificates are tls.py's
(``tls auto`` logs its CA as a caBundle); its HTTP, http.py's.

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
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError

from discovery.cache.store import Store
from discovery.net import join_host_port
from discovery.ops.connections import ConnectionGuard
from discovery.ops.metrics import per_registry

from .admission import AdmissionError, admit, parse_review, review_response
from .config import CertificateFiles, WebhookConfig
from .http import BoundedRequest, GuardedTLSFactory, NoDelayTLS, WebhookResource, WebhookSite, json_message
from .memo import EnvMemo
from .tls import CertificateError, FixedCertificate, ReloadingCertificate, auto_certificate

__all__ = ["WebhookServer", "RETRY_FIRST", "RETRY_MAX"]

log = logging.getLogger("wayfinder.webhook")

RESULTS = ("patched", "unchanged", "invalid", "too_large", "error")
#: Seconds before the first retry of a webhook that could not start, and the most between two.
RETRY_FIRST = 1.0
RETRY_MAX = 10.0
#: Admission answers take well under a millisecond when the memo is warm.
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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
        self._factory: GuardedTLSFactory | None = None
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
        self._certificate = FixedCertificate(context)
        return self._certificate

    def _listen(self) -> None:
        label = f"https://{join_host_port(self.config.host, self.config.port)}"
        site = WebhookSite(WebhookResource(self), self.config, self._reactor, self._guard, label)
        self._factory = GuardedTLSFactory(self._tls(), site, self.config.max_connections, self._reactor)
        self._factory.protocol = NoDelayTLS
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

    def answer(self, request: BoundedRequest) -> list[bytes]:
        """Answer one POSTed AdmissionReview: the body's pieces; the status goes on request."""
        started = time.perf_counter()
        client = request.getClientAddress()
        peer = getattr(client, "host", "?")
        if request.body_too_large:
            result, status = "too_large", 413
            body = [json_message(f"the request body is over {self.config.max_request_bytes} bytes")]
            log.warning("request from %s: body over %d bytes", peer, self.config.max_request_bytes)
        else:
            try:
                review = parse_review(request.content.getvalue())
                admission = admit(review, self._env)
            except AdmissionError as e:
                result, status, body = "invalid", 400, [json_message(str(e))]
                log.warning("bad request from %s: %s", peer, e)
            except Exception as e:  # a bug: one line, and the client learns only that
                result, status = "error", 500
                body = [json_message("internal error answering the review; see the webhook's log")]
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
