"""`wayfinder certs`: a CA and a serving certificate the API server accepts for the webhook Service.

The API server calls the webhook at https://NAME.NAMESPACE.svc:443 and
verifies the certificate against the configuration's caBundle, checking the
name against the certificate's DNS SANs. These tests verify the written
chain two ways, with cryptography's RFC 5280 verifier and with a real TLS
handshake through OpenSSL (the ssl module), and load the pair with the
webhook's own certificate loader.
"""

from __future__ import annotations

import base64
import datetime
import os
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from discovery import certs
from discovery.cli import main
from webhook.tls import load_certificate_files

#: The names kube-apiserver and Pods use for Service wayfinder-webhook in kube-system.
SERVICE_NAMES = (
    "wayfinder-webhook",
    "wayfinder-webhook.kube-system",
    "wayfinder-webhook.kube-system.svc",
    "wayfinder-webhook.kube-system.svc.cluster.local",
)
#: The name the API server checks when it calls a webhook Service.
API_SERVER_NAME = "wayfinder-webhook.kube-system.svc"
HANDSHAKE_ROUNDS = 10


def run_certs(capsys, directory, *options) -> tuple[int, str, str]:
    """Run `wayfinder certs -dir directory options...` as the command line does; (exit code, stdout, stderr)."""
    code = main(["certs", "-dir", str(directory), *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load(directory, name) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / name).read_bytes())


def verify(directory, name: str, at: datetime.datetime | None = None) -> None:
    """Verify tls.crt for name against ca.crt (raises VerificationError)."""
    verifier = (
        PolicyBuilder()
        .store(Store([load(directory, "ca.crt")]))
        .time(at or datetime.datetime.now(datetime.timezone.utc))
        .build_server_verifier(x509.DNSName(name))
    )
    verifier.verify(load(directory, "tls.crt"), [])


def handshake(directory, ca_pem: str, server_hostname: str) -> None:
    """A TLS handshake in memory: a server with tls.crt and tls.key, a client trusting only ca_pem and checking the name."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    client_context = ssl.create_default_context(cadata=ca_pem)
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_out, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(to_server, server_out, server_side=True)
    client = client_context.wrap_bio(to_client, client_out, server_hostname=server_hostname)
    done = {"client": False, "server": False}
    for _ in range(HANDSHAKE_ROUNDS):
        for side, connection in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    connection.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        to_server.write(client_out.read())
        to_client.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError("the TLS handshake did not finish")


@pytest.fixture
def issued(tmp_path, capsys):
    """A directory `wayfinder certs` wrote with its defaults, and what it printed."""
    code, out, err = run_certs(capsys, tmp_path / "tls")
    assert code == 0, err
    return tmp_path / "tls", out


def test_writes_the_ca_and_the_serving_pair(issued):
    """ca.crt, ca.key, tls.crt and tls.key: the last two are a kubernetes.io/tls Secret's keys."""
    directory, _ = issued
    assert sorted(os.listdir(directory)) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_serving_certificate_verifies_for_each_name_of_the_service(issued, name):
    """The chain verifies (RFC 5280, server auth) for every name the webhook Service has."""
    directory, _ = issued
    verify(directory, name)


def test_serving_certificate_is_refused_for_another_name(issued):
    """The certificate names the webhook Service only."""
    directory, _ = issued
    with pytest.raises(VerificationError):
        verify(directory, "other-service.kube-system.svc")


def test_printed_ca_bundle_is_the_ca_certificate_in_base64(issued):
    """Standard output is one line, the caBundle: ca.crt's PEM in base64."""
    directory, out = issued
    (line,) = out.splitlines()
    assert base64.b64decode(line, validate=True) == (directory / "ca.crt").read_bytes()


def test_tls_client_trusting_the_ca_bundle_accepts_the_webhook(issued):
    """A TLS client that trusts only the caBundle completes a handshake with the serving pair, for the name the API server uses."""
    directory, out = issued
    handshake(directory, base64.b64decode(out.strip()).decode(), API_SERVER_NAME)


def test_tls_client_checks_the_name(issued):
    """The same client refuses the certificate when it expects another Service."""
    directory, out = issued
    with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
        handshake(directory, base64.b64decode(out.strip()).decode(), "other-service.kube-system.svc")


def test_webhook_loads_the_written_pair(issued):
    """The webhook's own loader (what `tls CERT KEY` runs) accepts tls.crt and tls.key."""
    directory, _ = issued
    _, certificate = load_certificate_files(str(directory / "tls.crt"), str(directory / "tls.key"))
    assert certificate.subject == load(directory, "tls.crt").subject


def test_private_keys_are_readable_by_their_owner_only(issued):
    """ca.key and tls.key are written with mode 0600."""
    directory, _ = issued
    for name in ("ca.key", "tls.key"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600


def test_serving_certificate_is_valid_for_the_days_asked(tmp_path, capsys):
    """-days N: the certificate is valid from now (less a little clock skew) for N days."""
    before = datetime.datetime.now(datetime.timezone.utc)
    code, _, err = run_certs(capsys, tmp_path, "-days", "30")
    assert code == 0, err
    certificate = load(tmp_path, "tls.crt")
    assert certificate.not_valid_before_utc <= before
    lifetime = certificate.not_valid_after_utc - before
    assert datetime.timedelta(days=30) - datetime.timedelta(minutes=1) <= lifetime <= datetime.timedelta(days=30, minutes=1)


def test_running_again_keeps_the_ca(issued, capsys):
    """A second run signs a new serving certificate with the CA already there: the caBundle does not change."""
    directory, first_bundle = issued
    first = load(directory, "tls.crt")
    code, second_bundle, err = run_certs(capsys, directory)
    assert code == 0, err
    assert second_bundle == first_bundle
    assert load(directory, "tls.crt").serial_number != first.serial_number
    verify(directory, API_SERVER_NAME)


def test_options_name_another_service(tmp_path, capsys):
    """-service, -namespace and -cluster-domain choose the names in the certificate."""
    code, _, err = run_certs(
        capsys, tmp_path, "-service", "hooks", "-namespace", "platform", "-cluster-domain", "corp.internal"
    )
    assert code == 0, err
    names = load(tmp_path, "tls.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "hooks", "hooks.platform", "hooks.platform.svc", "hooks.platform.svc.corp.internal",
    ]
    verify(tmp_path, "hooks.platform.svc")


def test_serving_certificate_never_outlives_its_ca(tmp_path, capsys):
    """A serving certificate asked to last longer than its CA ends when the CA does."""
    assert run_certs(capsys, tmp_path, "-ca-days", "10")[0] == 0
    assert run_certs(capsys, tmp_path, "-days", "365")[0] == 0
    assert load(tmp_path, "tls.crt").not_valid_after_utc == load(tmp_path, "ca.crt").not_valid_after_utc


def test_expired_ca_is_refused(tmp_path, capsys):
    """An expired CA in the directory is an error that says how to make a new one, and nothing is written."""
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    ca = certs.make_ca(long_ago, days=1)
    (tmp_path / "ca.crt").write_bytes(ca.certificate_pem())
    (tmp_path / "ca.key").write_bytes(ca.key_pem())
    code, out, err = run_certs(capsys, tmp_path)
    assert code == 1 and out == ""
    assert "expired" in err and "ca.crt" in err
    assert not (tmp_path / "tls.crt").exists()


def test_ca_certificate_without_its_key_is_an_error(tmp_path, capsys):
    """ca.crt without ca.key is refused, naming the file, rather than silently replaced."""
    (tmp_path / "ca.crt").write_text("left over\n")
    code, out, err = run_certs(capsys, tmp_path)
    assert code == 1 and out == ""
    assert str(tmp_path / "ca.crt") in err
    assert (tmp_path / "ca.crt").read_text() == "left over\n"


def test_key_of_another_certificate_is_an_error(tmp_path, capsys):
    """A ca.key that does not belong to ca.crt is refused, naming both files."""
    now = datetime.datetime.now(datetime.timezone.utc)
    (tmp_path / "ca.crt").write_bytes(certs.make_ca(now).certificate_pem())
    (tmp_path / "ca.key").write_bytes(certs.make_ca(now).key_pem())
    code, _, err = run_certs(capsys, tmp_path)
    assert code == 1
    assert "ca.key" in err and "ca.crt" in err


@pytest.mark.parametrize(
    "option, value",
    [("-service", "Webhook_Service"), ("-namespace", "kube.system"), ("-cluster-domain", "bad..domain")],
)
def test_invalid_name_is_an_error(tmp_path, capsys, option, value):
    """A Service name, namespace or domain Kubernetes would not accept is refused, quoting it."""
    code, out, err = run_certs(capsys, tmp_path, option, value)
    assert code == 1 and out == ""
    assert repr(value) in err
    assert not os.listdir(tmp_path)
