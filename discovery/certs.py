"""`wayfinder certs`: the webhook's CA and serving certificate, for clusters without cert-manager.

    wayfinder certs [-dir DIR] [-service NAME] [-namespace NAMESPACE]
                    [-cluster-domain DOMAIN] [-days N] [-ca-days N]

Writes ``DIR/ca.crt``, ``DIR/ca.key``, ``DIR/tls.crt`` and ``DIR/tls.key``
(keys readable by their owner only) and prints the caBundle, the CA
certificate in base64, alone on standard output, ready to paste into the
MutatingWebhookConfiguration's ``clientConfig.caBundle``. What was written
goes to standard error.

The serving certificate names the webhook Service as the API server reaches
it: ``NAME``, ``NAME.NAMESPACE``, ``NAME.NAMESPACE.svc`` (the name the API
server checks) and ``NAME.NAMESPACE.svc.DOMAIN``. When DIR already holds
``ca.crt`` and ``ca.key`` that CA signs the new certificate, so renewing the
serving certificate leaves the caBundle unchanged.

Keys are ECDSA P-256: what kube-apiserver (Go's crypto/tls) verifies fastest,
and quick to make.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import os
import re
import stat
import sys
import tempfile
from typing import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertsError",
    "KeyPair",
    "service_dns_names",
    "make_ca",
    "issue_serving_certificate",
    "load_key_pair",
    "read_pem_files",
    "ca_bundle",
    "main",
    "CA_CERT",
    "CA_KEY",
    "TLS_CERT",
    "TLS_KEY",
]

#: File names in DIR; tls.crt and tls.key are the keys of a kubernetes.io/tls Secret.
CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"
DEFAULT_DIR = "wayfinder-tls"
DEFAULT_SERVICE = "wayfinder-webhook"
DEFAULT_NAMESPACE = "kube-system"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_DAYS = 365
DEFAULT_CA_DAYS = 3650
#: Tolerates clocks a little behind ours (the API server's, a node's).
_CLOCK_SKEW = datetime.timedelta(minutes=5)
# RFC 1123 labels: a namespace, and a Service name as the API server checks
# it under RelaxedServiceNameValidation (Kubernetes 1.34, KEP-5311).
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


class CertsError(Exception):
    """Certificates that cannot be made or read; the message names the file or value."""


@attrs.frozen
class KeyPair:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def service_dns_names(service: str, namespace: str, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> tuple[str, ...]:
    """The names a Service answers to inside the cluster, shortest first. Raises CertsError."""
    if not _DNS1123_LABEL.match(service):
        raise CertsError(f"service name {service!r} is not a DNS-1123 label (like wayfinder-webhook)")
    if not _DNS1123_LABEL.match(namespace):
        raise CertsError(f"namespace {namespace!r} is not a DNS-1123 label (like kube-system)")
    domain = cluster_domain.strip(".").lower()
    if not domain or not all(_DNS1123_LABEL.match(label) for label in domain.split(".")):
        raise CertsError(f"cluster domain {cluster_domain!r} is not a DNS name (like cluster.local)")
    return (service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.{domain}")


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(now: datetime.datetime, days: int = DEFAULT_CA_DAYS, common_name: str = "wayfinder webhook CA") -> KeyPair:
    """A new self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(certificate, key)


def issue_serving_certificate(
    ca: KeyPair, names: Sequence[str], now: datetime.datetime, days: int = DEFAULT_DAYS, addresses: Sequence[str] = ()
) -> KeyPair:
    """A TLS server certificate for names (and IP addresses), signed by ca. Raises CertsError.

    The first name is also the common name, which is informational only (Go
    has ignored it since 1.15): kube-apiserver checks the DNS SANs, against
    NAME.NAMESPACE.svc. The certificate never outlives its CA: past the
    issuer's expiry it fails verification anyway.
    """
    ca_expiry = ca.certificate.not_valid_after_utc
    if ca_expiry <= now:
        raise CertsError(f"the CA expired on {ca_expiry:%Y-%m-%d}; remove {CA_CERT} and {CA_KEY} to make a new one")
    if not names or len(names[0]) > 64:
        raise CertsError("a serving certificate needs DNS names, the first at most 64 characters (the common name's limit)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_expiry))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in names]
                + [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.certificate.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return KeyPair(certificate, key)


def read_pem_files(cert_path: str, key_path: str) -> tuple[list[x509.Certificate], object]:
    """A PEM certificate chain (leaf first) and its unencrypted private key. Raises CertsError naming the file."""
    try:
        with open(cert_path, "rb") as f:
            cert_pem = f.read()
        with open(key_path, "rb") as f:
            key_pem = f.read()
    except OSError as e:
        raise CertsError(f"cannot read {e.filename}: {e.strerror}") from None
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        raise CertsError(f"{cert_path}: not a PEM certificate ({e})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise CertsError(f"{key_path}: not an unencrypted PEM private key ({e})") from None
    return chain, key


def load_key_pair(cert_path: str, key_path: str) -> KeyPair:
    """Read a PEM certificate and its unencrypted ECDSA key. Raises CertsError naming the file."""
    chain, key = read_pem_files(cert_path, key_path)
    certificate = chain[0]
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertsError(f"{key_path}: not an ECDSA key (this command makes and reads ECDSA P-256 keys)")
    if key.public_key() != certificate.public_key():
        raise CertsError(f"{key_path} is not the key of {cert_path}")
    return KeyPair(certificate, key)


def ca_bundle(ca_certificate_pem: bytes) -> str:
    """What clientConfig.caBundle holds: the PEM, base64-encoded."""
    return base64.b64encode(ca_certificate_pem).decode("ascii")


def _write(directory: str, name: str, data: bytes, mode: int) -> str:
    """Write a file whole or not at all (a temporary file renamed into place)."""
    path = os.path.join(directory, name)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


def check_directory(directory: str) -> None:
    """Refuse a -dir this user does not own or cannot write, before anything is made. Raises CertsError.

    The keys are written readable by their owner only (0600). Written by
    another user than the folder's (the image's UID 65532 into a mounted
    folder of the operator's), they would be keys the folder's owner cannot
    read; into a folder the user cannot write, nothing could be written.
    """
    existing = os.path.abspath(directory)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    try:
        st = os.stat(existing)
    except OSError as e:
        raise CertsError(f"cannot use {existing}: {e.strerror}") from None
    uid = os.geteuid()
    hint = (
        "run as the folder's owner (in a container: docker run --user \"$(id -u):$(id -g)\" ...), "
        "or give -dir a folder of your own"
    )
    # A folder made here belongs to this user; inside a shared sticky folder
    # (/tmp) that is what the user wants. Elsewhere it must be the user's own.
    shared = existing != os.path.abspath(directory) and st.st_mode & stat.S_ISVTX
    if st.st_uid != uid and not shared:
        raise CertsError(
            f"{existing} belongs to UID {st.st_uid} and this runs as UID {uid}: the keys would be "
            f"written readable by UID {uid} only; {hint}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CertsError(f"cannot write to {existing} (mode {st.st_mode & 0o777:04o}); {hint}")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wayfinder certs",
        description=(
            "Write a CA and a serving certificate for the webhook Service, and print the caBundle "
            "to paste into the MutatingWebhookConfiguration."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("-dir", default=DEFAULT_DIR, metavar="DIR",
                        help=f"where to write {CA_CERT}, {CA_KEY}, {TLS_CERT} and {TLS_KEY}; "
                             f"a CA already there is reused (default: {DEFAULT_DIR})")
    parser.add_argument("-service", default=DEFAULT_SERVICE, metavar="NAME",
                        help=f"the webhook Service's name (default: {DEFAULT_SERVICE})")
    parser.add_argument("-namespace", default=DEFAULT_NAMESPACE, metavar="NAMESPACE",
                        help=f"the webhook Service's namespace (default: {DEFAULT_NAMESPACE})")
    parser.add_argument("-cluster-domain", dest="cluster_domain", default=DEFAULT_CLUSTER_DOMAIN, metavar="DOMAIN",
                        help=f"the cluster's DNS domain (default: {DEFAULT_CLUSTER_DOMAIN})")
    parser.add_argument("-days", type=int, default=DEFAULT_DAYS, metavar="N",
                        help=f"validity of the serving certificate (default: {DEFAULT_DAYS})")
    parser.add_argument("-ca-days", dest="ca_days", type=int, default=DEFAULT_CA_DAYS, metavar="N",
                        help=f"validity of a new CA (default: {DEFAULT_CA_DAYS})")
    return parser


def main(argv: list[str]) -> int:
    """Run `wayfinder certs`; 0 on success, 1 with a message on standard error otherwise."""
    args = _build_parser().parse_args(argv)
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        if args.days < 1 or args.ca_days < 1:
            raise CertsError("-days and -ca-days must be at least 1")
        names = service_dns_names(args.service, args.namespace, args.cluster_domain)
        check_directory(args.dir)
        os.makedirs(args.dir, mode=0o700, exist_ok=True)
        ca_cert_path, ca_key_path = os.path.join(args.dir, CA_CERT), os.path.join(args.dir, CA_KEY)
        existing = [path for path in (ca_cert_path, ca_key_path) if os.path.exists(path)]
        if len(existing) == 2:
            ca, made_ca = load_key_pair(ca_cert_path, ca_key_path), False
        elif existing:
            raise CertsError(f"{existing[0]} exists without its pair; remove it to make a new CA, or restore the other file")
        else:
            ca, made_ca = make_ca(now, args.ca_days), True
        # Checked before anything is written: an expired CA leaves the directory as it was.
        serving = issue_serving_certificate(ca, names, now, args.days)
        written = []
        if made_ca:
            written += [_write(args.dir, CA_KEY, ca.key_pem(), 0o600), _write(args.dir, CA_CERT, ca.certificate_pem(), 0o644)]
        written += [
            _write(args.dir, TLS_KEY, serving.key_pem(), 0o600),
            _write(args.dir, TLS_CERT, serving.certificate_pem(), 0o644),
        ]
    except OSError as e:
        print(f"wayfinder certs: {e.filename or args.dir}: {e.strerror}", file=sys.stderr)
        return 1
    except CertsError as e:
        print(f"wayfinder certs: {e}", file=sys.stderr)
        return 1
    signer = "a new CA" if made_ca else f"the existing CA {ca_cert_path}"
    print(f"wrote {', '.join(written)}; the serving certificate is signed by {signer}", file=sys.stderr)
    print(f"serving certificate for {', '.join(names)}, valid until "
          f"{serving.certificate.not_valid_after_utc:%Y-%m-%d}", file=sys.stderr)
    print("caBundle for the MutatingWebhookConfiguration:", file=sys.stderr)
    print(ca_bundle(ca.certificate_pem()))
    return 0
