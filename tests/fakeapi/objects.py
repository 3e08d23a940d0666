"""Manifests shaped as the API server returns them, and a seeded cluster for benchmarks.

Each builder returns what a user would POST (kind, apiVersion, metadata,
spec) with the fields the controllers would have filled in, so that the
informer converts exactly what it meets in a real cluster.
"""

from __future__ import annotations

import hashlib
import ipaddress

from .cluster import Cluster

__all__ = ["namespace", "service", "endpoint_slice", "pod", "seed"]


def _labels(labels: dict | None) -> dict:
    return dict(labels or {})


def namespace(name: str, labels: dict | None = None) -> dict:
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name, "labels": _labels(labels)}}


def service(
    name: str,
    namespace: str = "default",
    *,
    headless: bool = False,
    ports: tuple[tuple[str, int], ...] = (("http", 80),),
    labels: dict | None = None,
    selector: dict | None = None,
    external_name: str | None = None,
    type: str | None = None,
    external_ips: tuple[str, ...] = (),
    ingress: tuple[dict, ...] | None = None,
) -> dict:
    """A Service; `type` NodePort or LoadBalancer gets node ports from the cluster,
    `ingress` (status.loadBalancer.ingress entries) is what a load balancer controller writes."""
    spec: dict = {
        "ports": [{"name": n, "protocol": "TCP", "port": p, "targetPort": p} for n, p in ports],
        "selector": selector if selector is not None else {"app": name},
        "sessionAffinity": "None",
    }
    if external_name is not None:
        spec = {"type": "ExternalName", "externalName": external_name}
    elif headless:
        spec["clusterIP"] = "None"
    if type is not None and external_name is None:
        spec["type"] = type
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    obj = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(labels)},
        "spec": spec,
    }
    if ingress is not None:
        obj["status"] = {"loadBalancer": {"ingress": [dict(entry) for entry in ingress]}}
    return obj


def _suffix(text: str) -> str:
    # The EndpointSlice controller names slices <service>-<5 random characters>.
    return hashlib.sha1(text.encode()).hexdigest()[:5]


def endpoint_slice(
    service_name: str,
    namespace: str = "default",
    *,
    addresses: tuple[str, ...] = ("10.1.0.1",),
    ready: bool = True,
    port: tuple[str, int] = ("http", 80),
    labels: dict | None = None,
    annotations: dict | None = None,
    name: str | None = None,
) -> dict:
    """An EndpointSlice as the controller writes it; no addresses gives `"endpoints": null`."""
    all_labels = {
        "kubernetes.io/service-name": service_name,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        **_labels(labels),
    }
    endpoints = [
        {
            "addresses": [address],
            "conditions": {"ready": ready, "serving": ready, "terminating": False},
            "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": f"{service_name}-{i}"},
        }
        for i, address in enumerate(addresses)
    ]
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": name or f"{service_name}-{_suffix(namespace + '/' + service_name)}",
            "namespace": namespace,
            "labels": all_labels,
            "annotations": dict(annotations or {}),
        },
        "addressType": "IPv4",
        # The controller writes null, not [], for a Service scaled to zero.
        "endpoints": endpoints or None,
        "ports": [{"name": port[0], "protocol": "TCP", "port": port[1]}],
    }


def pod(
    name: str,
    namespace: str = "default",
    *,
    ip: str = "10.1.0.1",
    phase: str = "Running",
    labels: dict | None = None,
    deleting: bool = False,
) -> dict:
    metadata: dict = {"name": name, "namespace": namespace, "labels": _labels(labels)}
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        metadata["deletionGracePeriodSeconds"] = 30
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "example"}]},
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def seed(cluster: Cluster, *, services: int, endpoints: int = 5, namespaces: int = 10, pods: int = 0) -> None:
    """Fill a cluster: namespaces ns-0.., and per Service one EndpointSlice with `endpoints` endpoints;
    then `pods` Pods behind those endpoints (a Deployment's names and labels, the endpoints' addresses)."""
    names = [f"ns-{i}" for i in range(namespaces)]
    for name in ("default", "kube-system", *names):
        cluster.create(namespace(name))
    first = ipaddress.ip_address("10.128.0.0")
    for i in range(services):
        ns = names[i % len(names)] if names else "default"
        name = f"svc-{i}"
        cluster.create(service(name, ns))
        addresses = tuple(str(first + i * endpoints + j) for j in range(endpoints))
        cluster.create(endpoint_slice(name, ns, addresses=addresses))
    for i in range(pods):
        owner = i // max(1, endpoints) % max(1, services)
        ns = names[owner % len(names)] if names else "default"
        template = _suffix(f"svc-{owner}")[:5] + "d9f8b"
        cluster.create(pod(f"svc-{owner}-{template}-{_suffix(str(i))}", ns, ip=str(first + i),
                           labels={"app": f"svc-{owner}", "pod-template-hash": template}))
