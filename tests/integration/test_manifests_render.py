"""The manifests in manifests/, rendered by `kubectl kustomize` as an operator would render them.

Each overlay must render; every object must validate against the Kubernetes
OpenAPI schema (kubernetes-validate, strict: unknown fields fail); and the
rendered objects must keep the promises of the operator's guide: read-only
RBAC, a webhook registration that can never block a Pod or its own Pods,
unprivileged containers, a Corefile that loads with the real parser, and
CoreDNS's contract (Service, ports, probes, Corefile path) kept.
"""

from __future__ import annotations

import base64
import datetime
import functools
import os
import pathlib
import re
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from discovery import __version__
from discovery.config import Config, load_text
from discovery.corefile import parse
from webhook.admission import INJECT_KEY
from webhook.config import CertificateFiles

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
GUIDE = ROOT / "docs" / "operators-guide.md"
#: tests/unit/corefiles holds kubeadm's default Corefile, as kubeadm writes it.
KUBEADM_COREFILE = ROOT / "tests" / "unit" / "corefiles" / "kubeadm-cache-block.Corefile"
OVERLAYS = ("base", "dns-only", "webhook-only", "cert-manager")
WITH_DNS = ("base", "dns-only", "cert-manager")
WITH_WEBHOOK = ("base", "webhook-only", "cert-manager")
#: The oldest Kubernetes the guide supports, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
#: Kinds with no schema in Kubernetes' OpenAPI, and the only overlay allowed to use them.
CERT_MANAGER_GROUP = "cert-manager.io/"
NAMESPACE = "kube-system"
#: The selector of the kube-dns Service that kubeadm (and so CoreDNS) defines.
KUBE_DNS_SELECTOR = {"k8s-app": "kube-dns"}
#: What the rollback in the guide deletes by.
OWNER_LABEL = ("app.kubernetes.io/name", "wayfinder")
KUBECTL_TIMEOUT = 120


def kubectl_kustomize(path: pathlib.Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed: tests/run installs it (Debian package kubectl)"
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=KUBECTL_TIMEOUT
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@functools.cache
def rendered(overlay: str) -> list[dict]:
    """The objects of an overlay, rendered once per test session (tests only read them)."""
    return kubectl_kustomize(MANIFESTS / overlay)


def objects(overlay: str, kind: str) -> list[dict]:
    return [o for o in rendered(overlay) if o["kind"] == kind]


def the(overlay: str, kind: str, name: str | None = None) -> dict:
    found = [o for o in objects(overlay, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(overlay: str) -> dict:
    return the(overlay, "Deployment")["spec"]["template"]["spec"]


def pod_labels(overlay: str) -> dict:
    return the(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]


def container(overlay: str) -> dict:
    (only,) = pod_spec(overlay)["containers"]
    return only


def corefile_text(overlay: str) -> str:
    return the(overlay, "ConfigMap")["data"]["Corefile"]


def corefile_config(overlay: str) -> Config:
    return load_text(corefile_text(overlay), "Corefile", dns_port=53)


def plugin(overlay: str, name: str):
    """The config of a directive, from the one server block that has it."""
    found = [block.plugin(name) for block in corefile_config(overlay).servers if block.plugin(name) is not None]
    assert found, f"{overlay}: the Corefile has no {name} directive"
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    """A metav1.LabelSelector applied to labels, as the API defines it (every requirement holds)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or ():
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values") or []
        holds = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not holds:
            return False
    return True


def container_port(overlay: str, target, protocol: str = "TCP") -> dict:
    """The container port a Service's or probe's targetPort (number or name) refers to, for that protocol."""
    ports = container(overlay).get("ports", [])
    found = [
        p for p in ports
        if (p.get("name") == target or p["containerPort"] == target) and p.get("protocol", "TCP") == protocol
    ]
    assert found, f"{overlay}: no container port {target!r}/{protocol}"
    return found[0]


def volume_mounted_at(overlay: str, path: str) -> dict:
    """The Pod volume the container mounts at path."""
    mounts = [m for m in container(overlay)["volumeMounts"] if m["mountPath"] == path]
    assert mounts, f"{overlay}: nothing is mounted at {path}"
    (volume,) = [v for v in pod_spec(overlay)["volumes"] if v["name"] == mounts[0]["name"]]
    return volume


def namespace_labels(name: str, **extra: str) -> dict:
    # The API server sets kubernetes.io/metadata.name on every namespace.
    return {"kubernetes.io/metadata.name": name, **extra}


# --- rendering and schema ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_into_kube_system(overlay):
    """`kubectl kustomize manifests/<overlay>` renders, and every namespaced object lands in kube-system."""
    documents = rendered(overlay)
    assert documents
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
    for document in documents:
        if document["kind"] not in cluster_scoped:
            assert document["metadata"].get("namespace") == NAMESPACE, document["metadata"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(overlay, version):
    """Every rendered object is valid, with no unknown field, for the oldest and newest supported Kubernetes."""
    failures = []
    for document in rendered(overlay):
        if document["apiVersion"].startswith(CERT_MANAGER_GROUP):
            # cert-manager's kinds are not in Kubernetes' schema; see the cert-manager tests below.
            assert overlay == "cert-manager", f"{overlay} uses cert-manager's {document['kind']}"
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{document['kind']}/{document['metadata']['name']} at {list(error.path)}: {error.message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_but_kube_dns_carries_the_label_rollback_deletes_by(overlay):
    """The guide's rollback deletes by app.kubernetes.io/name=wayfinder: that reaches every Wayfinder object and spares kubeadm's kube-dns Service."""
    key, value = OWNER_LABEL
    for document in rendered(overlay):
        labels = document["metadata"].get("labels", {})
        if (document["kind"], document["metadata"]["name"]) == ("Service", "kube-dns"):
            assert key not in labels
        else:
            assert labels.get(key) == value, f"{document['kind']}/{document['metadata']['name']}"


def test_image_is_tagged_with_the_package_version():
    """The manifests run the image that `docker build -t wayfinder:<version>` makes of this source."""
    assert container("base")["image"] == f"wayfinder:{__version__}"


# --- RBAC -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cluster_role_only_reads(overlay):
    """The ClusterRole grants get, list and watch on named resources, nothing else."""
    for rule in the(overlay, "ClusterRole")["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule, rule


def granted(overlay: str) -> set[tuple[str, str]]:
    return {
        (group, resource)
        for rule in the(overlay, "ClusterRole")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_cluster_role_reads_what_the_cache_watches():
    """Services, EndpointSlices, Namespaces and Pods (for `pods verified`): list and watch, like CoreDNS's role."""
    assert granted("base") == {("", "services"), ("", "namespaces"), ("", "pods"), ("discovery.k8s.io", "endpointslices")}
    for rule in the("base", "ClusterRole")["rules"]:
        assert {"list", "watch"} <= set(rule["verbs"])


def test_webhook_only_role_reads_services_and_namespaces():
    """Without DNS, the webhook's cache lists Services and Namespaces only (its Corefile has noendpoints, no pods)."""
    assert granted("webhook-only") == {("", "services"), ("", "namespaces")}
    source = plugin("webhook-only", "kubernetes").source
    assert not source.watch_endpoints and not source.watch_pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_role_is_bound_to_the_pods_service_account(overlay):
    """The binding gives the ClusterRole to the ServiceAccount the Deployment's Pods run as."""
    binding = the(overlay, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": the(overlay, "ClusterRole")["metadata"]["name"],
    }
    account = the(overlay, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    assert pod_spec(overlay)["serviceAccountName"] == account["name"]


# --- the Deployment -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_container_is_privileged(overlay):
    """Non-root, read-only root filesystem, no escalation, every capability dropped but NET_BIND_SERVICE."""
    spec = pod_spec(overlay)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key), key
    pod_context = spec.get("securityContext", {})
    for each in spec["containers"] + spec.get("initContainers", []):
        context = each.get("securityContext", {})
        assert not context.get("privileged")
        assert context.get("allowPrivilegeEscalation") is False
        assert context.get("readOnlyRootFilesystem") is True
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
        assert context.get("runAsUser", pod_context.get("runAsUser", 0)) != 0
        assert context["capabilities"]["drop"] == ["ALL"]
        assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}


@pytest.mark.parametrize("overlay", WITH_DNS)
def test_dns_container_keeps_net_bind_service(overlay):
    """Port 53 needs NET_BIND_SERVICE in the container's capabilities (the image's file capability draws on it)."""
    assert container(overlay)["securityContext"]["capabilities"]["add"] == ["NET_BIND_SERVICE"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_two_replicas_spread_across_nodes(overlay):
    """Two replicas, at most one apart per node, system-cluster-critical, a new Pod ready before an old one goes."""
    deployment = the(overlay, "Deployment")["spec"]
    assert deployment["replicas"] == 2
    assert selects(deployment["selector"], pod_labels(overlay))
    spec = pod_spec(overlay)
    assert spec["priorityClassName"] == "system-cluster-critical"
    spreads = [c for c in spec["topologySpreadConstraints"] if c["topologyKey"] == "kubernetes.io/hostname"]
    assert spreads and spreads[0]["maxSkew"] == 1 and selects(spreads[0]["labelSelector"], pod_labels(overlay))
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_container_has_requests_and_a_memory_limit(overlay):
    """CPU and memory are requested; memory is limited (no CPU limit, as kubeadm's CoreDNS: throttling is latency)."""
    resources = container(overlay)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


@pytest.mark.parametrize("overlay", WITH_DNS)
def test_pods_resolve_through_the_node(overlay):
    """dnsPolicy Default: `forward . /etc/resolv.conf` reaches the node's resolvers, not cluster DNS itself."""
    assert pod_spec(overlay)["dnsPolicy"] == "Default"
    assert "/etc/resolv.conf" in corefile_text(overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_corefile_is_mounted_where_coredns_reads_it(overlay):
    """The container runs `-conf /etc/coredns/Corefile`, and that file is the ConfigMap's Corefile key."""
    assert container(overlay)["args"] == ["-conf", "/etc/coredns/Corefile"]
    volume = volume_mounted_at(overlay, "/etc/coredns")
    assert volume["configMap"]["name"] == the(overlay, "ConfigMap")["metadata"]["name"]
    assert {"key": "Corefile", "path": "Corefile"} in volume["configMap"]["items"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_corefiles_health_and_ready_endpoints(overlay):
    """Liveness GETs /health on the `health` port (8080), readiness /ready on the `ready` port (8181)."""
    probes = container(overlay)
    liveness, readiness = probes["livenessProbe"]["httpGet"], probes["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/health" and readiness["path"] == "/ready"
    assert container_port(overlay, liveness["port"])["containerPort"] == plugin(overlay, "health").address[1] == 8080
    assert container_port(overlay, readiness["port"])["containerPort"] == plugin(overlay, "ready").address[1] == 8181


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_keeps_a_replica(overlay):
    """The PodDisruptionBudget covers Wayfinder's Pods and lets voluntary evictions take one at a time."""
    budget = the(overlay, "PodDisruptionBudget")["spec"]
    assert selects(budget["selector"], pod_labels(overlay))
    assert budget["maxUnavailable"] == 1


# --- the Corefile -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_corefile_loads_with_the_real_parser(overlay):
    """The ConfigMap's Corefile loads with Wayfinder's own parser, every directive in it supported."""
    assert corefile_config(overlay).servers


def directive_lines(text: str) -> list[tuple]:
    """Each directive as (name, args, block) from a Corefile's only server block."""
    (block,) = parse(text, "Corefile", {})

    def shape(directive):
        return (directive.name, directive.args, tuple(shape(d) for d in directive.block))

    return [shape(d) for d in block.directives]


def test_dns_only_corefile_is_kubeadms_default():
    """The dns-only overlay runs the kubeadm default Corefile unchanged."""
    assert directive_lines(corefile_text("dns-only")) == directive_lines(KUBEADM_COREFILE.read_text())


@pytest.mark.parametrize("overlay", ["base", "cert-manager"])
def test_full_corefile_is_kubeadms_default_plus_the_webhook(overlay):
    """The base Corefile is kubeadm's default with a webhook block added, nothing else changed."""
    lines = directive_lines(corefile_text(overlay))
    assert [d for d in lines if d[0] != "webhook"] == directive_lines(KUBEADM_COREFILE.read_text())
    assert [d[0] for d in lines].count("webhook") == 1


@pytest.mark.parametrize("overlay", WITH_DNS)
def test_dns_is_served_on_port_53_for_the_cluster_domain(overlay):
    """The root zone on port 53, on every address, with the kubernetes plugin answering cluster.local."""
    (server,) = corefile_config(overlay).servers
    assert (server.zones, server.port, server.bind) == ((".",), 53, ())
    assert "cluster.local." in server.plugin("kubernetes").zones


def test_webhook_only_opens_no_dns_listener():
    """Every server block of the webhook-only Corefile is a webhook:// block, which listens for no DNS."""
    servers = corefile_config("webhook-only").servers
    assert servers and all(server.transport == "webhook" for server in servers)


# --- the kube-dns Service -------------------------------------------------------------------


@pytest.mark.parametrize("overlay", WITH_DNS)
def test_kube_dns_service_keeps_coredns_contract(overlay):
    """kube-dns keeps kubeadm's name, label and ports, so Pods' resolv.conf and dashboards stay as they are."""
    service = the(overlay, "Service", "kube-dns")
    assert service["metadata"]["labels"]["k8s-app"] == "kube-dns"
    ports = {(p["port"], p["protocol"]) for p in service["spec"]["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (9153, "TCP")}


@pytest.mark.parametrize("overlay", WITH_DNS)
def test_kube_dns_service_reaches_wayfinders_listeners(overlay):
    """The Service selects Wayfinder's Pods, and each port lands on a container port of the same protocol that the Corefile listens on."""
    service = the(overlay, "Service", "kube-dns")
    assert service["spec"]["selector"] == KUBE_DNS_SELECTOR
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(overlay))
    listening = {53: corefile_config(overlay).servers[0].port, 9153: plugin(overlay, "prometheus").address[1]}
    for port in service["spec"]["ports"]:
        target = container_port(overlay, port["targetPort"], port["protocol"])
        assert target["containerPort"] == listening[port["port"]]


@pytest.mark.parametrize("overlay", WITH_DNS)
def test_kube_dns_service_keeps_its_cluster_ip(overlay):
    """No clusterIP in the manifest: `kubectl apply` keeps the address the kubelets' clusterDNS names."""
    assert "clusterIP" not in the(overlay, "Service", "kube-dns")["spec"]


def test_webhook_only_serves_no_dns():
    """Without DNS: no kube-dns Service, no port 53, and Pods that CoreDNS's kube-dns Service does not select."""
    assert not [s for s in objects("webhook-only", "Service") if s["metadata"]["name"] == "kube-dns"]
    assert not [p for p in container("webhook-only")["ports"] if p["containerPort"] == 53]
    assert not selects({"matchLabels": KUBE_DNS_SELECTOR}, pod_labels("webhook-only"))


# --- the webhook ------------------------------------------------------------------------------


def webhook(overlay: str) -> dict:
    (only,) = the(overlay, "MutatingWebhookConfiguration")["webhooks"]
    return only


@pytest.mark.parametrize("overlay", WITH_WEBHOOK)
def test_webhook_registration_cannot_block_pods(overlay):
    """failurePolicy Ignore, no side effects, AdmissionReview v1, at most 5 seconds, reinvoked if needed."""
    hook = webhook(overlay)
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert 1 <= hook["timeoutSeconds"] <= 5
    assert hook["reinvocationPolicy"] == "IfNeeded"


@pytest.mark.parametrize("overlay", WITH_WEBHOOK)
def test_webhook_sees_only_pod_creation(overlay):
    """The API server calls the webhook for the CREATE of a Pod and nothing else."""
    (rule,) = webhook(overlay)["rules"]
    assert (rule["apiGroups"], rule["apiVersions"], rule["operations"], rule["resources"]) == ([""], ["v1"], ["CREATE"], ["pods"])


@pytest.mark.parametrize("overlay", WITH_WEBHOOK)
def test_webhook_skips_its_own_namespace(overlay):
    """Pods in the namespace Wayfinder runs in (kube-system) are never sent to the webhook: it cannot block its own Pods."""
    own = the(overlay, "Deployment")["metadata"]["namespace"]
    assert not selects(webhook(overlay)["namespaceSelector"], namespace_labels(own))


@pytest.mark.parametrize("overlay", WITH_WEBHOOK)
def test_webhook_skips_namespaces_that_opt_out(overlay):
    """A namespace labelled with the webhook's opt-out key set to "false" is skipped; others are sent."""
    selector = webhook(overlay)["namespaceSelector"]
    assert not selects(selector, namespace_labels("legacy", **{INJECT_KEY: "false"}))
    assert selects(selector, namespace_labels("default"))
    assert selects(selector, namespace_labels("team", **{INJECT_KEY: "true"}))


@pytest.mark.parametrize("overlay", WITH_WEBHOOK)
def test_webhook_service_reaches_the_corefiles_webhook(overlay):
    """clientConfig names a Service port 443 that lands on the port and path the Corefile's webhook serves."""
    reference = webhook(overlay)["clientConfig"]["service"]
    service = the(overlay, "Service", reference["name"])
    assert service["metadata"]["namespace"] == reference["namespace"]
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(overlay))
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == reference["port"]]
    assert port["port"] == 443
    config = plugin(overlay, "webhook")
    assert container_port(overlay, port["targetPort"])["containerPort"] == config.port == 8443
    assert reference["path"] == config.path


@pytest.mark.parametrize("overlay", WITH_WEBHOOK)
def test_webhook_certificate_comes_from_the_tls_secret(overlay):
    """The Corefile's `tls CERT KEY` files are the tls.crt and tls.key of the mounted Secret wayfinder-webhook-tls."""
    tls = plugin(overlay, "webhook").tls
    assert isinstance(tls, CertificateFiles)
    for path, key in ((tls.cert, "tls.crt"), (tls.key, "tls.key")):
        directory, name = os.path.split(path)
        assert name == key
        assert volume_mounted_at(overlay, directory)["secret"]["secretName"] == "wayfinder-webhook-tls"


@pytest.mark.parametrize("overlay", ("base", "cert-manager"))
def test_a_missing_webhook_secret_does_not_keep_dns_pods_from_starting(overlay):
    """The Secret volume is optional: without the Secret the Pod starts, DNS serves, and the webhook retries until it appears."""
    tls = plugin(overlay, "webhook").tls
    assert volume_mounted_at(overlay, os.path.dirname(tls.cert))["secret"]["optional"] is True


def test_dns_only_has_no_webhook():
    """dns-only registers no webhook, has no webhook Service, port, Corefile block or certificate to mount."""
    assert not objects("dns-only", "MutatingWebhookConfiguration")
    assert [s["metadata"]["name"] for s in objects("dns-only", "Service")] == ["kube-dns"]
    assert not [p for p in container("dns-only")["ports"] if p["containerPort"] == 8443]
    assert not [v for v in pod_spec("dns-only")["volumes"] if "secret" in v]
    servers = corefile_config("dns-only").servers
    assert servers and all(block.plugin("webhook") is None for block in servers)


# --- certificates ---------------------------------------------------------------------------


def webhook_dns_names(overlay: str) -> list[str]:
    """The names the API server may use for the webhook's Service: NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local."""
    service = webhook(overlay)["clientConfig"]["service"]
    name, namespace = service["name"], service["namespace"]
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]


def test_cert_manager_certificate_is_the_webhooks():
    """cert-manager issues the Secret the Pods mount, for the webhook Service's names, and injects its CA."""
    certificate = the("cert-manager", "Certificate")
    spec = certificate["spec"]
    assert spec["secretName"] == "wayfinder-webhook-tls"
    assert set(webhook_dns_names("cert-manager")) <= set(spec["dnsNames"])
    assert "server auth" in spec["usages"]
    issuer = the("cert-manager", spec["issuerRef"]["kind"], spec["issuerRef"]["name"])
    assert issuer["metadata"]["namespace"] == certificate["metadata"]["namespace"]
    annotations = the("cert-manager", "MutatingWebhookConfiguration")["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{certificate['metadata']['namespace']}/{certificate['metadata']['name']}"


def guide_block(marker: str) -> str:
    """The code block that follows `<!-- tested: marker -->` in the operator's guide."""
    match = re.search(rf"<!-- tested: {re.escape(marker)} -->\n```\w*\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert match, f"{GUIDE.name} has no block marked 'tested: {marker}'"
    return match.group(1)


def test_guides_overlay_without_cert_manager_registers_the_webhook(tmp_path):
    """The guide's commands (wayfinder certs, then its kustomization) render a TLS Secret and a caBundle that verifies it for the webhook Service."""
    # The guide's layout: the overlay directory next to a clone of this repository.
    (tmp_path / "wayfinder").symlink_to(ROOT, target_is_directory=True)
    overlay = tmp_path / "my-wayfinder"
    overlay.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "wayfinder"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m discovery "$@"\n')
    shim.chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", guide_block("certs-overlay")],
        cwd=overlay, env=environment, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr

    documents = kubectl_kustomize(overlay)
    for document in documents:
        if document["kind"] == "Secret":
            kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
    (secret,) = [d for d in documents if d["kind"] == "Secret"]
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"], secret["type"]) == (
        "wayfinder-webhook-tls", NAMESPACE, "kubernetes.io/tls")
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.example.com/wayfinder:{__version__}"

    (configuration,) = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    (hook,) = configuration["webhooks"]
    ca_pem = base64.b64decode(hook["clientConfig"]["caBundle"])
    assert ca_pem == (overlay / "tls" / "ca.crt").read_bytes()
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    service = hook["clientConfig"]["service"]
    verifier = (
        PolicyBuilder().store(Store(x509.load_pem_x509_certificates(ca_pem)))
        .time(datetime.datetime.now(datetime.timezone.utc))
        .build_server_verifier(x509.DNSName(f"{service['name']}.{service['namespace']}.svc"))
    )
    verifier.verify(leaf, [])


WEBHOOK_README = ROOT / "webhook" / "README.md"


def readme_registration() -> dict:
    """The MutatingWebhookConfiguration example of webhook/README.md (the YAML block after "its registration")."""
    text = WEBHOOK_README.read_text(encoding="utf-8")
    match = re.search(r"its registration.*?~~~ yaml\n(.*?)~~~", text, re.S)
    assert match, "webhook/README.md has no registration example"
    return yaml.safe_load(match.group(1))


def test_webhook_readme_registration_is_the_one_the_manifests_render():
    """webhook/README.md's registration example is the cert-manager overlay's, field for field (labels aside)."""
    example = readme_registration()
    rendered_one = the("cert-manager", "MutatingWebhookConfiguration")
    assert example["apiVersion"] == rendered_one["apiVersion"]
    assert example["metadata"]["name"] == rendered_one["metadata"]["name"]
    assert example["metadata"]["annotations"] == rendered_one["metadata"]["annotations"]
    assert example["webhooks"] == rendered_one["webhooks"]


# --- dns-autoscaler ---------------------------------------------------------------------------------

AUTOSCALER = "dns-autoscaler"
#: kube-up's and the Kubernetes documentation's dns-autoscaler for CoreDNS ("Autoscale the DNS Service in a Cluster").
COREDNS_AUTOSCALER_PARAMS = {
    "linear": {"coresPerReplica": 256, "nodesPerReplica": 16, "preventSinglePointFailure": True,
               "includeUnschedulableNodes": True},
}


def autoscaler_arguments() -> dict[str, str]:
    (autoscaler,) = the(AUTOSCALER, "Deployment", "wayfinder-autoscaler")["spec"]["template"]["spec"]["containers"]
    arguments = {}
    for argument in autoscaler["command"][1:]:
        key, _, value = argument.partition("=")
        arguments[key] = value
    return arguments


def test_autoscaler_overlay_renders_schema_valid_into_kube_system():
    """The dns-autoscaler overlay renders; every object is valid for the oldest and newest Kubernetes and lands in kube-system."""
    failures = []
    for document in rendered(AUTOSCALER):
        if document["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert document["metadata"]["namespace"] == NAMESPACE, document["metadata"]
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                failures.append(f"{version} {document['kind']}/{document['metadata']['name']}: {error.message}")
    assert not failures, "\n".join(failures)


def test_autoscaler_overlay_labels_everything_but_kube_dns():
    """The rollback's label reaches the autoscaler's objects too, and still spares kube-dns."""
    key, value = OWNER_LABEL
    for document in rendered(AUTOSCALER):
        labels = document["metadata"].get("labels", {})
        wanted = (document["kind"], document["metadata"]["name"]) != ("Service", "kube-dns")
        assert (labels.get(key) == value) == wanted, f"{document['kind']}/{document['metadata']['name']}"


def test_autoscaler_scales_wayfinder_with_corednss_linear_defaults():
    """--target is Deployment wayfinder in kube-system; --default-params are CoreDNS's dns-autoscaler's, linear mode."""
    arguments = autoscaler_arguments()
    assert arguments["--target"].lower() == "deployment/wayfinder"
    assert arguments["--namespace"] == NAMESPACE
    assert yaml.safe_load(arguments["--default-params"]) == COREDNS_AUTOSCALER_PARAMS
    the(AUTOSCALER, "Deployment", "wayfinder")


def test_applying_the_autoscaler_overlay_never_resets_the_replica_count():
    """Deployment wayfinder has no spec.replicas, so `kubectl apply -k` leaves the autoscaler's count alone; the rest is dns-only's."""
    deployment = the(AUTOSCALER, "Deployment", "wayfinder")
    assert "replicas" not in deployment["spec"]
    dns_only = the("dns-only", "Deployment")
    assert {k: v for k, v in dns_only["spec"].items() if k != "replicas"} == deployment["spec"]
    wayfinders = [d for d in rendered(AUTOSCALER) if d["metadata"]["name"] != "wayfinder-autoscaler"
                  and d["metadata"]["name"] != "system:wayfinder-autoscaler" and d["kind"] != "Deployment"]
    assert wayfinders == [d for d in rendered("dns-only") if d["kind"] != "Deployment"]


def test_autoscaler_may_scale_wayfinder_and_nothing_else():
    """Cluster-wide it only lists and watches nodes; in kube-system it gets and updates the scale of wayfinder, and its ConfigMap."""
    (cluster_rule,) = the(AUTOSCALER, "ClusterRole", "system:wayfinder-autoscaler")["rules"]
    assert (cluster_rule["apiGroups"], cluster_rule["resources"], sorted(cluster_rule["verbs"])) == (
        [""], ["nodes"], ["list", "watch"])
    scale, configmaps = the(AUTOSCALER, "Role", "wayfinder-autoscaler")["rules"]
    assert (scale["resources"], scale["resourceNames"], sorted(scale["verbs"])) == (
        ["deployments/scale"], ["wayfinder"], ["get", "update"])
    assert (configmaps["resources"], sorted(configmaps["verbs"])) == (["configmaps"], ["create", "get"])
    for kind, name in (("ClusterRoleBinding", "system:wayfinder-autoscaler"), ("RoleBinding", "wayfinder-autoscaler")):
        (subject,) = the(AUTOSCALER, kind, name)["subjects"]
        assert (subject["name"], subject["namespace"]) == ("wayfinder-autoscaler", NAMESPACE)


def test_autoscaler_container_is_unprivileged():
    """Non-root, no escalation, read-only root filesystem, every capability dropped."""
    spec = the(AUTOSCALER, "Deployment", "wayfinder-autoscaler")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    (autoscaler,) = spec["containers"]
    context = autoscaler["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_cert_manager_labels_the_secret_it_issues():
    """The Certificate's secretTemplate gives the issued Secret the label the rollback deletes by."""
    certificate = the("cert-manager", "Certificate")
    key, value = OWNER_LABEL
    assert certificate["spec"]["secretTemplate"]["labels"][key] == value
