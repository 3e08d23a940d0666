"""merge: every file's objects -> what the Store holds (duplicates, namespaces, IPs, filters)."""

from __future__ import annotations

import ipaddress
import textwrap

from discovery.cache.config import SourceConfig
from discovery.cache.manifests import BUILTIN_NAMESPACES, merge, parse_manifest
from discovery.cache.objects import Namespace
from discovery.cache.selectors import LabelSelector

CONFIG = SourceConfig(manifests="/m", watch_pods=True)


def parsed(path: str, *documents: str):
    """Parse the documents (each indented as it likes) as one multi-document file."""
    text = "---\n".join(textwrap.dedent(document).lstrip("\n") for document in documents)
    return parse_manifest(path, text.encode())


def keys(merged, kind: str) -> set[tuple[str, str]]:
    return {key for (k, key) in merged.objects if k == kind}


def service(name: str, namespace: str = "default", extra: str = "") -> str:
    return f"""
        apiVersion: v1
        kind: Service
        metadata:
          name: {name}
          namespace: {namespace}
          labels:
            app: {name}
        spec:
          clusterIP: None
        {extra}
    """


MIXED = parsed("/m/mixed.yaml", service("web", "shop"), """
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-1
      namespace: shop
      labels:
        app: web
        kubernetes.io/service-name: web
    addressType: IPv4
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: web-0
      namespace: shop
      labels:
        app: web
    status:
      phase: Running
      podIP: 10.244.0.5
    ---
    apiVersion: v1
    kind: Service
    metadata:
      name: other
      namespace: tools
    spec:
      clusterIP: None
    ---
    apiVersion: v1
    kind: Namespace
    metadata:
      name: shop
      labels:
        team: a
""")


def test_the_first_definition_in_path_order_wins():
    """The same object in two files: the one in the file that sorts first is used."""
    first = parsed("/m/a.yaml", service("dup", extra="  ports: [{port: 80}]"))
    second = parsed("/m/b.yaml", service("dup", extra="  ports: [{port: 81}]"))
    for files in ([first, second], [second, first]):
        merged = merge(files, CONFIG)
        assert merged.objects[("Service", ("default", "dup"))].ports[0].port == 80


def test_a_duplicate_is_reported_naming_both_files():
    """The problem stands at the ignored definition and names the one that is used."""
    first = parsed("/m/a.yaml", service("dup"))
    second = parsed("/m/b.yaml", service("dup"))
    (problem,) = merge([second, first], CONFIG).duplicates
    assert str(problem).startswith("/m/b.yaml:1: Service default/dup: ")
    assert "/m/a.yaml:1" in problem.message


def test_paths_sort_folder_by_folder():
    """Paths compare component by component: /m/a/z.yaml comes before /m/a.yaml, since "a" sorts before "a.yaml"."""
    nested = parsed("/m/a/z.yaml", service("dup", extra="  ports: [{port: 80}]"))
    top = parsed("/m/a.yaml", service("dup", extra="  ports: [{port: 81}]"))
    merged = merge([top, nested], CONFIG)
    assert merged.objects[("Service", ("default", "dup"))].ports[0].port == 80


def test_builtin_namespaces_always_exist():
    """default, kube-system, kube-public and kube-node-lease exist in an empty folder."""
    merged = merge([], CONFIG)
    assert keys(merged, "Namespace") == {("", name) for name in BUILTIN_NAMESPACES}


def test_namespaces_objects_live_in_exist():
    """A namespace that an object lives in exists even without a Namespace manifest."""
    merged = merge([MIXED], CONFIG)
    assert ("", "tools") in keys(merged, "Namespace")


def test_namespaces_carry_the_labels_of_their_manifest_and_their_name_label():
    """A declared Namespace keeps its labels; every Namespace has kubernetes.io/metadata.name, as the API sets it."""
    merged = merge([MIXED], CONFIG)
    assert merged.objects[("Namespace", ("", "shop"))] == Namespace(
        "shop", (("kubernetes.io/metadata.name", "shop"), ("team", "a"))
    )
    assert merged.objects[("Namespace", ("", "tools"))] == Namespace(
        "tools", (("kubernetes.io/metadata.name", "tools"),)
    )


def test_labels_filter_services_slices_and_pods_but_not_namespaces():
    """`labels` keeps the Services, EndpointSlices and Pods it matches; Namespaces are not filtered by it."""
    config = SourceConfig(manifests="/m", watch_pods=True, labels=LabelSelector.parse("app=web"))
    merged = merge([MIXED], config)
    assert keys(merged, "Service") == {("shop", "web")}
    assert keys(merged, "EndpointSlice") == {("shop", "web-1")}
    assert keys(merged, "Pod") == {("shop", "web-0")}
    assert ("", "tools") in keys(merged, "Namespace")


def test_namespace_labels_filter_namespaces_and_implied_ones_have_only_their_name_label():
    """`namespace_labels` keeps the Namespaces it matches; an implied Namespace has no other label."""
    config = SourceConfig(manifests="/m", namespace_labels=LabelSelector.parse("team"))
    merged = merge([MIXED], config)
    assert keys(merged, "Namespace") == {("", "shop")}
    assert keys(merged, "Service") == {("shop", "web"), ("tools", "other")}


def test_namespaces_restrict_namespaced_objects():
    """`namespaces` keeps Services, EndpointSlices and Pods of those namespaces only."""
    config = SourceConfig(manifests="/m", watch_pods=True, namespaces=("tools",))
    merged = merge([MIXED], config)
    assert keys(merged, "Service") == {("tools", "other")}
    assert keys(merged, "EndpointSlice") == set()
    assert keys(merged, "Pod") == set()


def test_namespaces_are_listed_cluster_wide_as_the_api_source_does():
    """With `namespaces`, every Namespace is still known, so a missing one stays distinguishable."""
    config = SourceConfig(manifests="/m", namespaces=("tools",))
    assert {("", "shop"), ("", "tools")} <= keys(merge([MIXED], config), "Namespace")


def test_pods_only_when_watched():
    """Without `pods verified`, no Pod is kept."""
    merged = merge([MIXED], SourceConfig(manifests="/m", watch_pods=False))
    assert keys(merged, "Pod") == set()


def test_ended_and_deleting_pods_are_left_out():
    """As the API source's field selector: Succeeded, Failed and Unknown Pods, and Pods being deleted, are not kept."""
    pods = "".join(
        f"""
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: {name}
          {extra}
        status:
          phase: {phase}
        """
        for name, phase, extra in [
            ("running", "Running", ""),
            ("done", "Succeeded", ""),
            ("failed", "Failed", ""),
            ("lost", "Unknown", ""),
            ("going", "Running", "deletionTimestamp: 2024-05-01T10:00:00Z"),
        ]
    )
    merged = merge([parsed("/m/pods.yaml", pods)], CONFIG)
    assert keys(merged, "Pod") == {("default", "running")}


def test_endpoint_slices_only_when_watched():
    """With `noendpoints`, no EndpointSlice is kept."""
    merged = merge([MIXED], SourceConfig(manifests="/m", watch_endpoints=False))
    assert keys(merged, "EndpointSlice") == set()
    assert ("shop", "web") in keys(merged, "Service")


def test_a_service_without_cluster_ip_is_allocated_one_and_reported():
    """A ClusterIP Service naming no IP gets one from service_cidrs, and the allocation is reported with its place."""
    files = [parsed("/m/a.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: api
          namespace: shop
    """)]
    merged = merge(files, SourceConfig(manifests="/m", service_cidrs=("10.100.0.0/16",)))
    svc = merged.objects[("Service", ("shop", "api"))]
    assert ipaddress.ip_address(svc.cluster_ip) in ipaddress.ip_network("10.100.0.0/16")
    assert svc.ip_families == ("IPv4",)
    (allocation,) = merged.allocations
    assert str(allocation).startswith("/m/a.yaml:1: Service shop/api: ")
    assert svc.cluster_ip in str(allocation)
    assert merged.allocated == {("shop", "api"): svc.cluster_ips}


def test_a_kept_allocation_is_not_reported_again():
    """Reloading the same folder keeps the address and reports no new allocation."""
    files = [parsed("/m/a.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: api
    """)]
    first = merge(files, CONFIG)
    second = merge(files, CONFIG, first.allocated)
    assert second.objects == first.objects
    assert second.allocations == ()


def test_headless_external_name_and_explicit_services_get_no_allocation():
    """Only Services the API server would allocate for are given an address."""
    files = [parsed("/m/a.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: headless
        spec:
          clusterIP: None
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: external
        spec:
          type: ExternalName
          externalName: db.example.com
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: fixed
        spec:
          clusterIP: 10.96.0.50
    """)]
    merged = merge(files, CONFIG)
    assert merged.allocations == ()
    assert merged.objects[("Service", ("default", "fixed"))].cluster_ips == ("10.96.0.50",)
    assert merged.objects[("Service", ("default", "headless"))].cluster_ips == ()


def test_an_explicit_address_is_not_allocated_to_another_service():
    """An IP a Service chose in one file is never given to a Service of another file."""
    files = [
        parsed("/m/a.yaml", "".join(f"""
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: auto-{i}
            """ for i in range(5))),
        parsed("/m/b.yaml", "".join(f"""
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: fixed-{i}
            spec:
              clusterIP: 10.0.0.{i}
            """ for i in range(2, 5))),
    ]
    merged = merge(files, SourceConfig(manifests="/m", service_cidrs=("10.0.0.0/29",)))
    allocated = {svc.cluster_ip for svc in (a.service for a in merged.allocations)}
    assert allocated == {"10.0.0.5", "10.0.0.6"}
    assert len(merged.rejected) == 3
    assert all("no free cluster IP" in p.message for p in merged.rejected)


def test_a_service_that_cannot_be_allocated_is_left_out_and_reported():
    """RequireDualStack on an IPv4-only range: the Service is skipped with a problem at its line."""
    files = [parsed("/m/a.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: dual
        spec:
          ipFamilyPolicy: RequireDualStack
    """)]
    merged = merge(files, CONFIG)
    assert ("default", "dual") not in keys(merged, "Service")
    (problem,) = merged.rejected
    assert str(problem).startswith("/m/a.yaml:1: Service default/dual: ")


def test_a_dual_stack_service_is_allocated_both_families():
    """PreferDualStack with an IPv4 and an IPv6 range gets an address of each."""
    files = [parsed("/m/a.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: dual
        spec:
          ipFamilyPolicy: PreferDualStack
    """)]
    merged = merge(files, SourceConfig(manifests="/m", service_cidrs=("10.96.0.0/12", "fd00:10:96::/112")))
    svc = merged.objects[("Service", ("default", "dual"))]
    assert svc.ip_families == ("IPv4", "IPv6")
    assert [ipaddress.ip_address(ip).version for ip in svc.cluster_ips] == [4, 6]


def test_allocation_does_not_depend_on_file_order():
    """The same Services spread over files in another order get the same addresses."""
    texts = ["".join(f"""
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: {prefix}-{i}
        """ for i in range(10)) for prefix in ("alpha", "beta")]
    one = merge([parsed("/m/1.yaml", texts[0]), parsed("/m/2.yaml", texts[1])], CONFIG)
    two = merge([parsed("/m/1.yaml", texts[1]), parsed("/m/2.yaml", texts[0])], CONFIG)
    assert one.objects == two.objects
