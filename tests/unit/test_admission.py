"""The admission decision (webhook.admission): AdmissionReview in, JSON Patch out.

Patches are applied with a real JSON Patch library (jsonpatch) and the
resulting Pod is what the tests look at, as the API server would.
"""

from __future__ import annotations

import base64
import copy
import json

import jsonpatch
import pytest

from discovery.cache.objects import namespace_from_api, service_from_api
from discovery.cache.store import Store
from webhook.admission import (
    INJECT_KEY,
    MAX_PATCH_BYTES,
    SERVICES_KEY,
    Admission,
    AdmissionError,
    StoreEnvSource,
    admit,
    parse_review,
    review_response,
)

KUBERNETES = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def api_service(namespace, name, cluster_ips, ports, **spec):
    body = {"ports": ports, **spec}
    if cluster_ips is not None:
        body["clusterIPs"] = cluster_ips
    return {"metadata": {"name": name, "namespace": namespace}, "spec": body}


@pytest.fixture
def store() -> Store:
    store = Store()
    for obj in [
        api_service("default", "kubernetes", ["10.96.0.1"], [{"name": "https", "port": 443}]),
        api_service("shop", "frontend", ["10.96.10.1"], [{"name": "http", "port": 80}]),
        api_service("shop", "redis-master", ["fd00::10", "10.96.10.2"], [{"port": 6379}]),
        api_service("shop", "db", ["None"], [{"port": 5432}]),
        api_service("shop", "legacy", None, [], type="ExternalName", externalName="old.example.com"),
        api_service("shared", "postgres", ["10.96.20.1"], [{"name": "pg", "port": 5432}]),
        api_service("other", "frontend", ["10.96.30.1"], [{"port": 8080}]),
    ]:
        store.put(service_from_api(obj))
    store.put(namespace_from_api({"metadata": {"name": "shop"}}))
    store.put(namespace_from_api({"metadata": {"name": "quiet", "labels": {INJECT_KEY: "false"}}}))
    return store


@pytest.fixture
def source(store) -> StoreEnvSource:
    return StoreEnvSource(store)


def pod(containers=None, init_containers=None, annotations=None, namespace="shop", **spec) -> dict:
    metadata = {"name": "web-0", "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = annotations
    body = {"containers": containers if containers is not None else [{"name": "app", "image": "nginx"}], **spec}
    if init_containers is not None:
        body["initContainers"] = init_containers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def create(obj: dict, namespace="shop", operation="CREATE", uid="b6a1c9f2-0001") -> dict:
    """An AdmissionReview request for a Pod, as the API server sends it."""
    return {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }


def apply(obj: dict, admission: Admission) -> dict:
    if admission.patch is None:
        return obj
    return jsonpatch.apply_patch(obj, json.loads(admission.patch))


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def names_of(container: dict) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


# --- which requests are patched -------------------------------------------------------------


def test_pod_create_gets_the_namespace_services_and_the_master_service(source):
    """A container with no env gets env holding shop's Services and default/kubernetes."""
    result = apply(pod(), admit(create(pod()), source))
    env = env_of(result["spec"]["containers"][0])
    assert env["FRONTEND_SERVICE_HOST"] == "10.96.10.1"
    assert env["REDIS_MASTER_PORT"] == "tcp://[fd00::10]:6379"
    assert KUBERNETES.items() <= env.items()
    assert not any(name.startswith(("DB_", "LEGACY_", "POSTGRES_")) for name in env)


def test_answer_keeps_the_request_uid(source):
    """The admission carries the request's uid."""
    assert admit(create(pod(), uid="705ab4f5-6393-11e8"), source).uid == "705ab4f5-6393-11e8"


def test_request_that_is_not_a_pod_is_allowed_unchanged(source):
    """The Kubernetes docs' example (a Deployment's scale subresource) gets no patch."""
    request = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "subResource": "scale",
        "namespace": "shop",
        "operation": "UPDATE",
        "object": {"apiVersion": "autoscaling/v1", "kind": "Scale"},
    }
    assert admit(request, source).patch is None


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_pod_operation_other_than_create_is_allowed_unchanged(source, operation):
    """Only a new Pod is patched: its env cannot change after creation."""
    assert admit(create(pod(), operation=operation), source).patch is None


def test_pod_subresource_is_allowed_unchanged(source):
    """A request on a Pod subresource names kind Pod but is not the Pod's creation."""
    request = {**create(pod()), "subResource": "ephemeralcontainers"}
    assert admit(request, source).patch is None


def test_dry_run_is_answered_like_a_real_request(source):
    """dryRun: true changes nothing; there are no side effects to skip."""
    real = admit(create(pod()), source)
    dry = admit({**create(pod()), "dryRun": True}, source)
    assert dry.patch == real.patch


def test_generate_name_pod_takes_its_namespace_from_the_request(source):
    """A Pod with generateName and no namespace gets the Services of request.namespace."""
    obj = pod()
    obj["metadata"] = {"generateName": "web-7d4b9c-", "labels": {"app": "web"}}
    env = env_of(apply(obj, admit(create(obj, namespace="shop"), source))["spec"]["containers"][0])
    assert env["FRONTEND_SERVICE_HOST"] == "10.96.10.1"


def test_pod_metadata_namespace_selects_the_services(source):
    """The Pod's own metadata.namespace selects the Services when present."""
    obj = pod(namespace="other")
    env = env_of(apply(obj, admit(create(obj, namespace="other"), source))["spec"]["containers"][0])
    assert env["FRONTEND_SERVICE_HOST"] == "10.96.30.1"


def test_empty_cache_gives_no_patch():
    """Without Services there is nothing to add, so no patch at all."""
    assert admit(create(pod()), StoreEnvSource(Store())).patch is None


# --- what is written -----------------------------------------------------------------------------


def test_every_container_and_init_container_is_patched(source):
    """Init containers and all containers get the variables."""
    obj = pod(
        containers=[{"name": "app", "image": "a"}, {"name": "sidecar", "image": "b"}],
        init_containers=[{"name": "migrate", "image": "c"}],
    )
    result = apply(obj, admit(create(obj), source))
    for container in result["spec"]["initContainers"] + result["spec"]["containers"]:
        assert env_of(container)["FRONTEND_SERVICE_HOST"] == "10.96.10.1"


def test_variables_go_before_the_containers_own_entries(source):
    """Injected entries come first so $(FRONTEND_SERVICE_HOST) in the container's own entries expands."""
    own = [
        {"name": "API_URL", "value": "http://$(FRONTEND_SERVICE_HOST):$(FRONTEND_SERVICE_PORT)/api"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    obj = pod(containers=[{"name": "app", "image": "a", "env": copy.deepcopy(own)}])
    env = apply(obj, admit(create(obj), source))["spec"]["containers"][0]["env"]
    assert env[-2:] == own
    assert names_of({"env": env}).index("FRONTEND_SERVICE_HOST") < names_of({"env": env}).index("API_URL")


def test_a_variable_the_container_sets_is_never_overridden(source):
    """The container's own FRONTEND_SERVICE_HOST stays, once, with its value."""
    obj = pod(containers=[{"name": "app", "image": "a", "env": [{"name": "FRONTEND_SERVICE_HOST", "value": "frontend.shop"}]}])
    container = apply(obj, admit(create(obj), source))["spec"]["containers"][0]
    assert names_of(container).count("FRONTEND_SERVICE_HOST") == 1
    assert env_of(container)["FRONTEND_SERVICE_HOST"] == "frontend.shop"
    assert env_of(container)["FRONTEND_SERVICE_PORT"] == "80"


def test_empty_env_list_is_filled(source):
    """env: [] is treated like a missing env."""
    obj = pod(containers=[{"name": "app", "image": "a", "env": []}])
    assert "FRONTEND_PORT" in env_of(apply(obj, admit(create(obj), source))["spec"]["containers"][0])


def test_same_cache_gives_the_same_patch(source):
    """The patch is stable: two admissions of the same Pod are byte-identical."""
    assert admit(create(pod()), source).patch == admit(create(pod()), source).patch


def test_admitting_the_patched_pod_again_adds_nothing(source):
    """Reinvocation: the patched Pod needs no further patch."""
    obj = pod(
        containers=[{"name": "app", "image": "a", "env": [{"name": "X", "value": "1"}]}],
        init_containers=[{"name": "init", "image": "b"}],
    )
    once = apply(obj, admit(create(obj), source))
    assert admit(create(once), source).patch is None


def test_patch_too_large_to_store_is_not_made_and_the_pod_is_told_why(store):
    """Three containers times 1,000 Services' variables exceed what etcd stores: no patch, a warning."""
    for i in range(1000):
        store.put(service_from_api(api_service("big", f"svc-{i:04d}", [f"10.97.{i // 250}.{i % 250 + 1}"], [{"name": "http", "port": 8080}])))
    obj = pod(namespace="big", containers=[{"name": f"c{i}", "image": "a"} for i in range(3)])
    admission = admit(create(obj, namespace="big"), StoreEnvSource(store))
    assert admission.patch is None
    assert "would make the Pod too large" in admission.warnings[0] and SERVICES_KEY in admission.warnings[0]
    one = admit(create(pod(namespace="big"), namespace="big"), StoreEnvSource(store))
    assert one.patch is not None and len(one.patch) <= MAX_PATCH_BYTES


# --- enableServiceLinks and the annotations ----------------------------------------------------


def test_service_links_false_injects_only_the_master_service(source):
    """enableServiceLinks: false leaves what the kubelet still adds: default/kubernetes."""
    obj = pod(enableServiceLinks=False)
    env = env_of(apply(obj, admit(create(obj), source))["spec"]["containers"][0])
    assert env and all(name.startswith("KUBERNETES_") for name in env)


def test_opt_out_annotation_gets_no_patch(source):
    """wayfinder.io/inject: "false" on the Pod turns injection off."""
    obj = pod(annotations={INJECT_KEY: "false"})
    assert admit(create(obj), source).patch is None


def test_unknown_opt_out_value_warns_and_injects_nothing(source):
    """A value other than true or false is reported back, and nothing is injected."""
    obj = pod(annotations={INJECT_KEY: "no"})
    admission = admit(create(obj), source)
    assert admission.patch is None
    assert INJECT_KEY in admission.warnings[0]


def test_namespace_label_opts_the_namespace_out(source):
    """A Namespace labelled wayfinder.io/inject=false gets no patches."""
    obj = pod(namespace="quiet")
    assert admit(create(obj, namespace="quiet"), source).patch is None


def test_namespace_missing_from_the_cache_is_not_opted_out(source):
    """A namespace the cache does not hold is treated as not labelled."""
    obj = pod(namespace="shared")
    assert admit(create(obj, namespace="shared"), source).patch is not None


def test_services_annotation_injects_only_the_listed_services_and_the_master(source):
    """wayfinder.io/services: "frontend" gives FRONTEND_* and KUBERNETES_*, not REDIS_MASTER_*."""
    obj = pod(annotations={SERVICES_KEY: "frontend"})
    env = env_of(apply(obj, admit(create(obj), source))["spec"]["containers"][0])
    assert {name.split("_")[0] for name in env} == {"FRONTEND", "KUBERNETES"}


def test_services_annotation_reaches_other_namespaces(source):
    """name.namespace names a Service outside the Pod's namespace."""
    obj = pod(annotations={SERVICES_KEY: "postgres.shared, frontend"})
    env = env_of(apply(obj, admit(create(obj), source))["spec"]["containers"][0])
    assert env["POSTGRES_SERVICE_PORT_PG"] == "5432"
    assert env["FRONTEND_SERVICE_HOST"] == "10.96.10.1"


def test_services_annotation_turns_service_links_off(source):
    """Listing Services sets enableServiceLinks: false, so the kubelet adds no others."""
    obj = pod(annotations={SERVICES_KEY: "frontend"})
    assert apply(obj, admit(create(obj), source))["spec"]["enableServiceLinks"] is False


def test_services_annotation_pod_admitted_again_adds_nothing(source):
    """Reinvocation with the annotation: links already off, variables already set."""
    obj = pod(annotations={SERVICES_KEY: "frontend postgres.shared"})
    once = apply(obj, admit(create(obj), source))
    assert admit(create(once), source).patch is None


def test_first_listed_service_keeps_a_name_two_listed_services_produce(source):
    """frontend.other before frontend: FRONTEND_SERVICE_HOST is frontend.other's address."""
    obj = pod(annotations={SERVICES_KEY: "frontend.other,frontend"})
    env = env_of(apply(obj, admit(create(obj), source))["spec"]["containers"][0])
    assert env["FRONTEND_SERVICE_HOST"] == "10.96.30.1"


@pytest.mark.parametrize(
    "ref, reason",
    [("missing", "no Service missing in namespace shop"), ("db", "has no cluster IP"), ("legacy", "has no cluster IP")],
)
def test_services_annotation_warns_about_services_it_cannot_use(source, ref, reason):
    """Unknown, headless and ExternalName Services are skipped with a warning."""
    obj = pod(annotations={SERVICES_KEY: f"{ref}, frontend"})
    admission = admit(create(obj), source)
    assert len(admission.warnings) == 1 and reason in admission.warnings[0]
    assert "FRONTEND_SERVICE_HOST" in env_of(apply(obj, admission)["spec"]["containers"][0])


# --- envFrom -----------------------------------------------------------------------------------------


def test_container_with_unprefixed_env_from_gets_nothing(source):
    """Any name could come from the ConfigMap, where the kubelet lets envFrom win; it is left to the kubelet."""
    obj = pod(containers=[{"name": "app", "image": "a", "envFrom": [{"configMapRef": {"name": "settings"}}]}])
    assert admit(create(obj), source).patch is None


def test_prefixed_env_from_blocks_only_names_with_its_prefix(source):
    """envFrom with prefix FRONTEND_ could shadow FRONTEND_* only; the rest are injected."""
    obj = pod(containers=[{"name": "app", "image": "a", "envFrom": [{"prefix": "FRONTEND_", "secretRef": {"name": "s"}}]}])
    env = env_of(apply(obj, admit(create(obj), source))["spec"]["containers"][0])
    assert "REDIS_MASTER_SERVICE_HOST" in env and "KUBERNETES_SERVICE_HOST" in env
    assert not any(name.startswith("FRONTEND_") for name in env)


def test_env_from_rule_applies_per_container(source):
    """A sibling container without envFrom is patched as usual."""
    obj = pod(
        containers=[
            {"name": "app", "image": "a", "envFrom": [{"configMapRef": {"name": "settings"}}]},
            {"name": "sidecar", "image": "b"},
        ]
    )
    result = apply(obj, admit(create(obj), source))
    assert "env" not in result["spec"]["containers"][0]
    assert "FRONTEND_PORT" in env_of(result["spec"]["containers"][1])


def test_services_annotation_opts_env_from_containers_in_for_the_listed_services(source):
    """Listed Services are injected even into an unprefixed envFrom container; the master is not."""
    obj = pod(
        annotations={SERVICES_KEY: "frontend"},
        containers=[{"name": "app", "image": "a", "envFrom": [{"configMapRef": {"name": "settings"}}]}],
    )
    env = env_of(apply(obj, admit(create(obj), source))["spec"]["containers"][0])
    assert env and all(name.startswith("FRONTEND_") for name in env)


# --- malformed requests --------------------------------------------------------------------------------


def review(request) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).encode()


def test_parse_review_returns_the_request():
    """A well-formed AdmissionReview v1 yields its request."""
    assert parse_review(review(create(pod())))["uid"] == "b6a1c9f2-0001"


@pytest.mark.parametrize(
    "body, field",
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[" * 100_000, "nests too deeply"),
        (b"[]", "the body"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}).encode(), "apiVersion"),
        (json.dumps({"kind": "AdmissionReview", "request": {"uid": "u"}}).encode(), "apiVersion"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {"uid": "u"}}).encode(), "kind"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request"),
        (review({"kind": {"kind": "Pod"}}), "request.uid"),
        (review({"uid": ""}), "request.uid"),
        (review({"uid": 7}), "request.uid"),
    ],
    ids=["broken", "not utf-8", "nested", "array", "v1beta1", "no apiVersion", "wrong kind", "no request", "no uid", "empty uid", "numeric uid"],
)
def test_malformed_review_is_an_error_naming_what_is_wrong(body, field):
    """Anything but an AdmissionReview v1 with a uid raises AdmissionError."""
    with pytest.raises(AdmissionError, match=field):
        parse_review(body)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("object"), "request.object"),
        (lambda r: r["object"].pop("spec"), "request.object.spec"),
        (lambda r: r["object"]["spec"].update(containers={"app": {}}), r"spec.containers"),
        (lambda r: r["object"]["spec"]["containers"][0].update(env=[{"value": "x"}]), r"containers\[0\].env\[0\].name"),
        (lambda r: r["object"]["spec"]["containers"][0].update(envFrom=[{"prefix": 3}]), r"envFrom\[0\].prefix"),
        (lambda r: r["object"]["spec"].update(enableServiceLinks="yes"), "enableServiceLinks"),
        (lambda r: (r.pop("namespace"), r["object"]["metadata"].pop("namespace")), "namespace"),
    ],
    ids=["no object", "no spec", "containers not a list", "env entry without name", "prefix not a string", "links not bool", "no namespace"],
)
def test_malformed_pod_is_an_error_naming_the_field(source, mutate, field):
    """A Pod that does not have a Pod's shape raises AdmissionError with the field's path."""
    request = create(pod())
    mutate(request)
    with pytest.raises(AdmissionError, match=field):
        admit(request, source)


# --- the response ------------------------------------------------------------------------------------------


def test_response_carries_the_patch_base64_encoded(source):
    """patchType JSONPatch, patch the base64 of a JSON Patch that applies; allowed true, same uid."""
    obj = pod(
        containers=[
            {"name": "plain", "image": "a"},
            {"name": "own-env", "image": "b", "env": [{"name": "MODE", "value": "ünïcode"}]},
            {"name": "plain-too", "image": "c"},
            {"name": "env-from", "image": "d", "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}]},
        ],
        init_containers=[{"name": "init", "image": "e"}],
    )
    response = json.loads(b"".join(review_response(admit(create(obj, uid="u-1"), source))))
    assert response["apiVersion"] == "admission.k8s.io/v1" and response["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == "u-1"
    assert response["response"]["allowed"] is True
    assert response["response"]["patchType"] == "JSONPatch"
    result = jsonpatch.apply_patch(obj, json.loads(base64.b64decode(response["response"]["patch"])))
    for container in result["spec"]["initContainers"] + result["spec"]["containers"]:
        assert env_of(container)["FRONTEND_SERVICE_HOST"] == "10.96.10.1"
    assert env_of(result["spec"]["containers"][1])["MODE"] == "ünïcode"


def test_response_without_a_patch_has_no_patch_fields():
    """Nothing to change: allowed, and neither patch nor patchType."""
    response = json.loads(b"".join(review_response(Admission("u-2"))))["response"]
    assert response == {"uid": "u-2", "allowed": True}


def test_response_carries_the_warnings():
    """Warnings go to the client (kubectl prints them)."""
    response = json.loads(b"".join(review_response(Admission("u-3", warnings=("look out",)))))["response"]
    assert response["warnings"] == ["look out"]
