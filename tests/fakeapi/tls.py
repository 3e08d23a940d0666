"""A throwaway certificate authority for tests: server and client certificates.

The server certificate names 127.0.0.1 and localhost, so that the official
client verifies it exactly as it verifies a real API server's.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .server import ServerTLS

__all__ = ["Pki", "make_pki"]


@attrs.frozen
class Pki:
    """Paths of the PEM files make_pki wrote."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def server_tls(self, *, require_client_cert: bool = True) -> ServerTLS:
        return ServerTLS(self.server_cert, self.server_key, self.ca_cert if require_client_cert else None)

    def kubeconfig(self, url: str) -> str:
        """A kubeconfig whose current context points nowhere and whose context `fake` reaches url with these files."""
        return (
            "apiVersion: v1\n"
            "kind: Config\n"
            "current-context: elsewhere\n"
            "clusters:\n"
            "- name: nowhere\n"
            '  cluster: {server: "https://127.0.0.1:9"}\n'
            "- name: fake\n"
            f'  cluster: {{server: "{url}", certificate-authority: "{self.ca_cert}"}}\n'
            "users:\n"
            "- name: wayfinder\n"
            f'  user: {{client-certificate: "{self.client_cert}", client-key: "{self.client_key}"}}\n'
            "contexts:\n"
            "- name: elsewhere\n"
            "  context: {cluster: nowhere, user: wayfinder}\n"
            "- name: fake\n"
            "  context: {cluster: fake, user: wayfinder}\n"
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, key, issuer: str, issuer_key, extensions) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(directory: str) -> Pki:
    """Write a CA, a server certificate for 127.0.0.1 and a client certificate into directory."""
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _issue("fakeapi-ca", ca_key, "fakeapi-ca", ca_key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
    ])
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    server_cert = _issue("fakeapi", server_key, "fakeapi-ca", ca_key, [
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                      x509.DNSName("localhost")]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (authority, False),
    ])
    client_cert = _issue("wayfinder", client_key, "fakeapi-ca", ca_key, [
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (authority, False),
    ])
    pem = serialization.Encoding.PEM
    return Pki(
        ca_cert=_write(os.path.join(directory, "ca.crt"), ca.public_bytes(pem)),
        server_cert=_write(os.path.join(directory, "server.crt"), server_cert.public_bytes(pem)),
        server_key=_write(os.path.join(directory, "server.key"), _key_pem(server_key)),
        client_cert=_write(os.path.join(directory, "client.crt"), client_cert.public_bytes(pem)),
        client_key=_write(os.path.join(directory, "client.key"), _key_pem(client_key)),
    )
