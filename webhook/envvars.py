"""The kubelet's Service environment variables, as a pure function of the cache.

Modelled on kubernetes/kubernetes master as of v1.35: `pkg/kubelet/envvars/
envvars.go` (FromServices) for the variables of one Service, and
`getServiceEnvVarMap` in `pkg/kubelet/kubelet_pods.go` for which Services a
Pod sees:

- only Services whose primary cluster IP is set (not headless, not
  ExternalName, not waiting for an address);
- every such Service of the Pod's namespace when ``enableServiceLinks`` is
  true (the default);
- the ``kubernetes`` Service of ``default`` always, even with
  ``enableServiceLinks: false``; a ``kubernetes`` Service in the Pod's own
  namespace takes its place when service links are enabled.

Values come from the primary cluster IP only, ``spec.clusterIP`` copied
verbatim as the kubelet does (a non-canonical spelling such as
``2001:DB8::1``, which the API server stores with a warning, stays as
written; DNS answers use the parsed address); the ``proto://host:port``
forms bracket an IPv6 address, as Go's ``net.JoinHostPort`` does. The kubelet builds a map from Services held in a
map, so the order of its variables, and which of two Services wins a name
both produce, change from run to run. Here the order is fixed: Services by
name, each Service's variables in the kubelet's order, and where two
Services produce the same name the first one keeps it.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import attrs

from discovery.cache.objects import Service
from discovery.net import join_host_port

__all__ = [
    "EnvVar",
    "MASTER_NAMESPACE",
    "MASTER_SERVICE",
    "env_prefix",
    "has_cluster_ip",
    "service_variables",
    "select_services",
    "variables_for",
    "pod_service_env",
]

#: metav1.NamespaceDefault and the kubelet's masterServices set.
MASTER_NAMESPACE = "default"
MASTER_SERVICE = "kubernetes"


@attrs.frozen
class EnvVar:
    name: str
    value: str


def env_prefix(name: str) -> str:
    """A Service or port name as the kubelet spells it in a variable: FOO-BAR -> FOO_BAR."""
    # makeEnvVariableName: upper case, "-" -> "_"; nothing else (Service
    # names are DNS-1123 labels, so "1kubernetes" gives 1KUBERNETES_...,
    # as the kubelet makes it; port names are IANA service names).
    return name.upper().replace("-", "_")


def has_cluster_ip(service: Service) -> bool:
    """v1helper.IsServiceIPSet, plus a guard the API server makes for us.

    The API server never stores a Service with a cluster IP and no ports (the
    kubelet would index ``Ports[0]`` of it); a manifests folder might, and
    such a Service has nothing to describe.
    """
    return bool(service.cluster_ips) and bool(service.ports)


def service_variables(service: Service) -> tuple[EnvVar, ...]:
    """FromServices for one Service: its variables in the kubelet's order.

    Empty for a Service without a cluster IP.
    """
    if not has_cluster_ip(service):
        return ()
    prefix = env_prefix(service.name)
    ip = service.spec_cluster_ip
    result = [
        EnvVar(f"{prefix}_SERVICE_HOST", ip),
        # The first port keeps the backwards-compatible name.
        EnvVar(f"{prefix}_SERVICE_PORT", str(service.ports[0].port)),
    ]
    for port in service.ports:
        if port.name:
            result.append(EnvVar(f"{prefix}_SERVICE_PORT_{env_prefix(port.name)}", str(port.port)))
    # The Docker link variables; Docker special-cases the first port.
    for index, port in enumerate(service.ports):
        protocol = port.protocol or "TCP"
        url = f"{protocol.lower()}://{join_host_port(ip, port.port)}"
        if index == 0:
            result.append(EnvVar(f"{prefix}_PORT", url))
        port_prefix = f"{prefix}_PORT_{port.port}_{protocol.upper()}"
        result.extend(
            (
                EnvVar(port_prefix, url),
                EnvVar(f"{port_prefix}_PROTO", protocol.lower()),
                EnvVar(f"{port_prefix}_PORT", str(port.port)),
                EnvVar(f"{port_prefix}_ADDR", ip),
            )
        )
    return tuple(result)


def select_services(
    services_in_namespace: Mapping[str, Service],
    master: Service | None,
    enable_service_links: bool,
) -> list[Service]:
    """The Services a Pod sees, by name (getServiceEnvVarMap).

    ``services_in_namespace`` are those of the Pod's namespace; ``master`` is
    the ``kubernetes`` Service of ``default`` (None when the cache has none).
    """
    chosen: dict[str, Service] = {}
    if master is not None and has_cluster_ip(master):
        chosen[master.name] = master
    if enable_service_links:
        for name, service in services_in_namespace.items():
            # A same-namespace Service replaces the master one of the same
            # name; in `default` it is the master one.
            if has_cluster_ip(service):
                chosen[name] = service
    return [chosen[name] for name in sorted(chosen)]


def variables_for(
    services: Iterable[Service],
    variables_of: Callable[[Service], tuple[EnvVar, ...]] = service_variables,
) -> tuple[EnvVar, ...]:
    """The variables of these Services, in order; the first Service to produce a name keeps it.

    ``variables_of`` is service_variables, or a memo of it.
    """
    seen: set[str] = set()
    result = []
    for service in services:
        for variable in variables_of(service):
            if variable.name not in seen:
                seen.add(variable.name)
                result.append(variable)
    return tuple(result)


def pod_service_env(
    services_in_namespace: Mapping[str, Service],
    master: Service | None,
    enable_service_links: bool,
    variables_of: Callable[[Service], tuple[EnvVar, ...]] = service_variables,
) -> tuple[EnvVar, ...]:
    """Every Service variable the kubelet would give a Pod (arguments as for select_services)."""
    return variables_for(select_services(services_in_namespace, master, enable_service_links), variables_of)
