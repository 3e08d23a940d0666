"""How the API source connects (kubeconfig, endpoint with TLS files, or the in-cluster service account), and how its failures read in the log."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from discovery.cache.config import SourceConfig, TLSFiles
from discovery.cache.informer import ApiSourceError, _describe, client_configuration

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: first
clusters:
- name: one
  cluster: {server: "https://one.example:6443", insecure-skip-tls-verify: true}
- name: two
  cluster: {server: "https://two.example:6443", insecure-skip-tls-verify: true}
users:
- name: someone
  user: {token: secret-token}
contexts:
- name: first
  context: {cluster: one, user: someone}
- name: second
  context: {cluster: two, user: someone}
"""


def test_endpoint_with_tls_uses_the_three_files():
    """`endpoint URL` with `tls CERT KEY CACERT` authenticates with the client certificate against that CA."""
    configuration = client_configuration(
        SourceConfig(endpoint="https://10.0.0.1:6443/", tls=TLSFiles("c.crt", "c.key", "ca.crt"))
    )
    assert configuration.host == "https://10.0.0.1:6443"
    assert (configuration.cert_file, configuration.key_file, configuration.ssl_ca_cert) == (
        "c.crt", "c.key", "ca.crt")


def test_every_configuration_turns_urllib3_retries_off():
    """Outages must surface at once to the backoff, not be retried silently by urllib3."""
    assert client_configuration(SourceConfig(endpoint="http://127.0.0.1:8080")).retries is False


def test_kubeconfig_uses_the_named_context(tmp_path):
    """`kubeconfig FILE CONTEXT` connects to that context's cluster, not the current one."""
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    configuration = client_configuration(SourceConfig(kubeconfig=str(path), context="second"))
    assert configuration.host == "https://two.example:6443"
    assert configuration.api_key["BearerToken"] == "Bearer secret-token"


def test_kubeconfig_without_context_uses_the_current_context(tmp_path):
    """`kubeconfig FILE` alone follows the file's current-context."""
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    assert client_configuration(SourceConfig(kubeconfig=str(path))).host == "https://one.example:6443"


def test_missing_kubeconfig_is_an_error_naming_the_file(tmp_path):
    """A kubeconfig that is not there stops start-up with a message naming it."""
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ApiSourceError, match="nowhere"):
        client_configuration(SourceConfig(kubeconfig=missing))


def test_in_cluster_reads_the_service_account(tmp_path):
    """In a Pod: the API at KUBERNETES_SERVICE_HOST:PORT over HTTPS, the mounted token and CA."""
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("mounted-token")
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    configuration = client_configuration(
        SourceConfig(),
        environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        token_file=str(token),
        ca_file=str(ca),
    )
    assert configuration.host == "https://10.96.0.1:443"
    assert configuration.ssl_ca_cert == str(ca)
    assert configuration.api_key["BearerToken"] == "bearer mounted-token"


def test_in_cluster_outside_a_pod_is_an_error_saying_so(tmp_path):
    """Without the service environment, start-up fails naming the in-cluster source."""
    with pytest.raises(ApiSourceError, match="in-cluster"):
        client_configuration(SourceConfig(), environ={}, token_file=str(tmp_path / "t"), ca_file=str(tmp_path / "c"))


def test_an_api_error_is_described_with_the_apis_message():
    """A 403 is logged with the Status message the API sent (what RBAC lacks), not only 'HTTP 403 Forbidden'."""
    error = ApiException(status=403, reason="Forbidden")
    error.body = (
        b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"services is forbidden: '
        b'User \\"system:serviceaccount:kube-system:wayfinder\\" cannot list resource \\"services\\" in API group '
        b'\\"\\" at the cluster scope","reason":"Forbidden","code":403}'
    )
    assert _describe(error) == (
        'HTTP 403 Forbidden: services is forbidden: User "system:serviceaccount:kube-system:wayfinder" '
        'cannot list resource "services" in API group "" at the cluster scope'
    )


def test_an_api_error_without_a_status_body_is_its_http_status():
    """A body that is not a Status (a proxy's HTML page) leaves the line at the HTTP status."""
    error = ApiException(status=502, reason="Bad Gateway")
    error.body = b"<html>bad gateway</html>"
    assert _describe(error) == "HTTP 502 Bad Gateway"
