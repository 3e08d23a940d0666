"""How `forward` speaks DNS over TLS: its `tls` and `tls_servername` options.

CoreDNS's plugin/pkg/tls NewTLSConfigFromArgs, for a client: the PEM files
are read (and checked) once, at setup, and kept as text in a frozen
`TLSSettings`, so that a reload that changes a file's content makes a new
forward; each TLS upstream then gets Twisted's client options from it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs
from OpenSSL import crypto
from twisted.internet import error, ssl

if TYPE_CHECKING:
    from .upstream import UpstreamAddress

__all__ = ["TLSSettings", "TLSSettingsError"]


class TLSSettingsError(Exception):
    """Certificates or keys that cannot be used; the message names the file."""


#: What reading an unusable PEM file raises (VerifyError: a key that is not the certificate's).
_BAD_PEM = (crypto.Error, ValueError, error.VerifyError)


@attrs.frozen
class TLSSettings:
    """How a forward verifies its TLS upstreams and shows itself to them.

    CoreDNS's pkg/tls NewTLSConfigFromArgs, as PEM text read at setup: no CA
    means the system's trust store; a certificate and key authenticate us;
    TLS 1.2 at least. The name checked against the upstream's certificate
    is `server_name` (``tls_servername``), else the one written with the
    address, else the upstream's IP address (sent as no SNI).
    """

    server_name: str = ""
    ca: bytes | None = None
    certificate: bytes | None = None
    #: The client's private key: never in a repr (nor so in a log line).
    key: bytes | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_files(cls, cert: str | None = None, key: str | None = None, ca: str | None = None,
                   server_name: str = "") -> "TLSSettings":
        """Read and check the PEM files. Raises TLSSettingsError naming a file."""
        settings = cls(
            server_name=server_name,
            ca=_read_pem(ca) if ca else None,
            certificate=_read_pem(cert) if cert else None,
            key=_read_pem(key) if key else None,
        )
        if ca:
            try:
                _trust_root(settings.ca)
            except _BAD_PEM as e:
                raise TLSSettingsError(f"could not read root certs from {ca}: {_ssl_message(e)}") from None
        if cert:
            try:
                _client_certificate(settings)
            except _BAD_PEM as e:
                raise TLSSettingsError(f"could not load TLS cert {cert} with key {key}: {_ssl_message(e)}") from None
        return settings

    def client_options(self, address: UpstreamAddress):
        """Twisted's client TLS options for one upstream (an IOpenSSLClientConnectionCreator)."""
        name = self.server_name or address.server_name or address.host
        extra: dict = {"raiseMinimumTo": ssl.TLSVersion.TLSv1_2}
        client = None
        if self.certificate:
            client = _client_certificate(self)
            # The rest of the certificate file is the chain up to the CA, sent
            # along, as Go's LoadX509KeyPair keeps every certificate in it.
            chain = _pem_blocks(self.certificate)[1:]
            if chain:
                extra["extraCertChain"] = [ssl.Certificate.loadPEM(block).original for block in chain]
        return ssl.optionsForClientTLS(
            name,
            trustRoot=_trust_root(self.ca) if self.ca else None,
            clientCertificate=client,
            extraCertificateOptions=extra,
        )


def _read_pem(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSSettingsError(f"error reading {path}: {e.strerror or e}") from None


def _trust_root(pem: bytes):
    certificates = [ssl.Certificate.loadPEM(block) for block in _pem_blocks(pem)]
    if not certificates:
        raise ValueError("no PEM certificate found")
    return ssl.trustRootFromCertificates(certificates)


def _client_certificate(settings: TLSSettings):
    blocks = _pem_blocks(settings.certificate)
    if not blocks:
        raise ValueError("no PEM certificate found")
    return ssl.PrivateCertificate.loadPEM(blocks[0] + b"\n" + (settings.key or b""))


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _pem_blocks(pem: bytes) -> list[bytes]:
    return _PEM_CERTIFICATE.findall(pem)


def _ssl_message(e: Exception) -> str:
    if isinstance(e, crypto.Error) and e.args and isinstance(e.args[0], list):
        return "; ".join(str(reason[-1]) for reason in e.args[0]) or "invalid PEM"
    return str(e)
