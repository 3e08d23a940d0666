"""The webhook's certificates: files re-read when they change, or one made at start-up (`tls auto`).

TLS is 1.2 or newer. The certificate and key files are checked whenever a
connection arrives and re-read when either file changes (a new inode, size or
mtime, as when cert-manager or the kubelet swap a Secret's files), so a
rotated certificate serves the next connection without a restart; a pair that
does not load (half written, key and certificate that do not match) is logged
once and the current one keeps serving. ``tls auto`` makes a CA and a serving
certificate in memory for local use.
"""

from __future__ import annotations

import datetime
import logging
import os

from cryptography import x509
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from zope.interface import implementer

from discovery.certs import CertsError, issue_serving_certificate, make_ca, read_pem_files

__all__ = [
    "CertificateError",
    "FixedCertificate",
    "ReloadingCertificate",
    "auto_certificate",
    "load_certificate_files",
]

log = logging.getLogger("wayfinder.webhook")

_AUTO_VALIDITY_DAYS = 365


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
class FixedCertificate:
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
