"""The kubelet's Service environment variables (webhook.envvars).

Expected values come from the kubelet's own tests: TestFromServices in
pkg/kubelet/envvars/envvars_test.go and TestMakeEnvironmentVariables in
pkg/kubelet/kubelet_pods_test.go (kubernetes/kubernetes master, v1.35 era).
Services are written as the API server returns them and converted by the
cache's own converter, as in production.
"""

from __future__ import annotations

import pytest

from discovery.cache.objects import Service, ServicePort, service_from_api
from webhook.envvars import (
    EnvVar,
    env_prefix,
    pod_service_env,
    select_services,
    service_variables,
    variables_for,
)


def service(name: str, namespace: str = "test", cluster_ip="10.0.0.1", ports=({"port": 80},), **spec) -> Service:
    """A Service from API JSON; cluster_ip may be a list (spec.clusterIPs) or "None"."""
    body = {"ports": list(ports), **spec}
    if isinstance(cluster_ip, list):
        body["clusterIPs"] = cluster_ip
    else:
        body["clusterIP"] = cluster_ip
    return service_from_api({"metadata": {"name": name, "namespace": namespace}, "spec": body})


def as_pairs(variables) -> list[tuple[str, str]]:
    return [(v.name, v.value) for v in variables]


# --- FromServices --------------------------------------------------------------------------


def test_from_services_matches_the_kubelets_table():
    """The kubelet's TestFromServices table, Service by Service in the same order."""
    services = [
        service("foo-bar", cluster_ip="1.2.3.4", ports=[{"port": 8080, "protocol": "TCP"}]),
        service(
            "abc-123",
            cluster_ip="5.6.7.8",
            ports=[
                {"name": "u-d-p", "port": 8081, "protocol": "UDP"},
                {"name": "t-c-p", "port": 8081, "protocol": "TCP"},
            ],
        ),
        # The API server now requires every port of a multi-port Service to
        # be named, so the converter refuses this one; the kubelet's case is
        # built directly.
        Service(
            "test",
            "q-u-u-x",
            cluster_ips=("9.8.7.6",),
            ports=(ServicePort("", "TCP", 8082), ServicePort("8083", "TCP", 8083)),
        ),
        service("svrc-clusterip-none", cluster_ip="None", ports=[{"port": 8082, "protocol": "TCP"}]),
        service("svrc-clusterip-empty", cluster_ip="", ports=[{"port": 8082, "protocol": "TCP"}]),
        # Upstream writes "2001:DB8::" and expects it verbatim in every
        # variable: the kubelet copies spec.clusterIP as the API stored it.
        service(
            "super-ipv6",
            cluster_ip="2001:DB8::",
            ports=[
                {"name": "u-d-p", "port": 8084, "protocol": "UDP"},
                {"name": "t-c-p", "port": 8084, "protocol": "TCP"},
            ],
        ),
        service("sctp-1", cluster_ip="1.2.3.4", ports=[{"port": 777, "protocol": "SCTP"}]),
    ]
    expected = [
        ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
        ("FOO_BAR_SERVICE_PORT", "8080"),
        ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
        ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"),
        ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
        ("FOO_BAR_PORT_8080_TCP_PORT", "8080"),
        ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
        ("ABC_123_SERVICE_HOST", "5.6.7.8"),
        ("ABC_123_SERVICE_PORT", "8081"),
        ("ABC_123_SERVICE_PORT_U_D_P", "8081"),
        ("ABC_123_SERVICE_PORT_T_C_P", "8081"),
        ("ABC_123_PORT", "udp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_UDP", "udp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_UDP_PROTO", "udp"),
        ("ABC_123_PORT_8081_UDP_PORT", "8081"),
        ("ABC_123_PORT_8081_UDP_ADDR", "5.6.7.8"),
        ("ABC_123_PORT_8081_TCP", "tcp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_TCP_PROTO", "tcp"),
        ("ABC_123_PORT_8081_TCP_PORT", "8081"),
        ("ABC_123_PORT_8081_TCP_ADDR", "5.6.7.8"),
        ("Q_U_U_X_SERVICE_HOST", "9.8.7.6"),
        ("Q_U_U_X_SERVICE_PORT", "8082"),
        ("Q_U_U_X_SERVICE_PORT_8083", "8083"),
        ("Q_U_U_X_PORT", "tcp://9.8.7.6:8082"),
        ("Q_U_U_X_PORT_8082_TCP", "tcp://9.8.7.6:8082"),
        ("Q_U_U_X_PORT_8082_TCP_PROTO", "tcp"),
        ("Q_U_U_X_PORT_8082_TCP_PORT", "8082"),
        ("Q_U_U_X_PORT_8082_TCP_ADDR", "9.8.7.6"),
        ("Q_U_U_X_PORT_8083_TCP", "tcp://9.8.7.6:8083"),
        ("Q_U_U_X_PORT_8083_TCP_PROTO", "tcp"),
        ("Q_U_U_X_PORT_8083_TCP_PORT", "8083"),
        ("Q_U_U_X_PORT_8083_TCP_ADDR", "9.8.7.6"),
        ("SUPER_IPV6_SERVICE_HOST", "2001:DB8::"),
        ("SUPER_IPV6_SERVICE_PORT", "8084"),
        ("SUPER_IPV6_SERVICE_PORT_U_D_P", "8084"),
        ("SUPER_IPV6_SERVICE_PORT_T_C_P", "8084"),
        ("SUPER_IPV6_PORT", "udp://[2001:DB8::]:8084"),
        ("SUPER_IPV6_PORT_8084_UDP", "udp://[2001:DB8::]:8084"),
        ("SUPER_IPV6_PORT_8084_UDP_PROTO", "udp"),
        ("SUPER_IPV6_PORT_8084_UDP_PORT", "8084"),
        ("SUPER_IPV6_PORT_8084_UDP_ADDR", "2001:DB8::"),
        ("SUPER_IPV6_PORT_8084_TCP", "tcp://[2001:DB8::]:8084"),
        ("SUPER_IPV6_PORT_8084_TCP_PROTO", "tcp"),
        ("SUPER_IPV6_PORT_8084_TCP_PORT", "8084"),
        ("SUPER_IPV6_PORT_8084_TCP_ADDR", "2001:DB8::"),
        ("SCTP_1_SERVICE_HOST", "1.2.3.4"),
        ("SCTP_1_SERVICE_PORT", "777"),
        ("SCTP_1_PORT", "sctp://1.2.3.4:777"),
        ("SCTP_1_PORT_777_SCTP", "sctp://1.2.3.4:777"),
        ("SCTP_1_PORT_777_SCTP_PROTO", "sctp"),
        ("SCTP_1_PORT_777_SCTP_PORT", "777"),
        ("SCTP_1_PORT_777_SCTP_ADDR", "1.2.3.4"),
    ]
    assert as_pairs(variables_for(services)) == expected


def test_name_is_upper_cased_with_dashes_as_underscores():
    """makeEnvVariableName: "my-svc-2" becomes "MY_SVC_2"."""
    assert env_prefix("my-svc-2") == "MY_SVC_2"


def test_protocol_defaults_to_tcp_when_unset():
    """A port without a protocol is TCP, as the kubelet reads an empty Protocol."""
    svc = Service("test", "plain", cluster_ips=("10.0.0.9",), ports=(ServicePort("", "", 80),))
    assert ("PLAIN_PORT", "tcp://10.0.0.9:80") in as_pairs(service_variables(svc))
    assert ("PLAIN_PORT_80_TCP_PROTO", "tcp") in as_pairs(service_variables(svc))


def test_service_port_and_port_describe_the_first_port():
    """{NAME}_SERVICE_PORT and {NAME}_PORT use the first port listed, whatever its name."""
    svc = service("web", ports=[{"name": "metrics", "port": 9090}, {"name": "http", "port": 80}])
    pairs = dict(as_pairs(service_variables(svc)))
    assert pairs["WEB_SERVICE_PORT"] == "9090"
    assert pairs["WEB_PORT"] == "tcp://10.0.0.1:9090"


def test_only_named_ports_get_a_service_port_name_variable():
    """An unnamed port gets no {NAME}_SERVICE_PORT_{PORTNAME}."""
    svc = service("web", ports=[{"port": 80}])
    names = {v.name for v in service_variables(svc)}
    assert {"WEB_SERVICE_HOST", "WEB_SERVICE_PORT", "WEB_PORT_80_TCP"} <= names
    assert not any(name.startswith("WEB_SERVICE_PORT_") for name in names)


def test_every_port_gets_docker_link_variables():
    """Each port, not only the first, has its _PORT_{N}_{PROTO} group."""
    svc = service("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}])
    pairs = dict(as_pairs(service_variables(svc)))
    assert pairs["DNS_PORT_53_UDP"] == "udp://10.0.0.1:53"
    assert pairs["DNS_PORT_53_TCP"] == "tcp://10.0.0.1:53"
    assert pairs["DNS_SERVICE_PORT_DNS_TCP"] == "53"


def test_dual_stack_service_uses_its_primary_ipv4_address_only():
    """spec.clusterIP (the first of clusterIPs) is the only address the kubelet uses."""
    svc = service("both", cluster_ip=["10.0.0.7", "fd00::7"], ipFamilies=["IPv4", "IPv6"])
    values = {v.value for v in service_variables(svc)}
    assert "10.0.0.7" in values
    assert not any("fd00" in value for value in values)


def test_dual_stack_service_with_ipv6_primary_brackets_it_in_urls():
    """An IPv6 primary address is bare in _HOST and _ADDR and bracketed in the URLs (JoinHostPort)."""
    svc = service("both", cluster_ip=["fd00::7", "10.0.0.7"], ipFamilies=["IPv6", "IPv4"])
    pairs = dict(as_pairs(service_variables(svc)))
    assert pairs["BOTH_SERVICE_HOST"] == "fd00::7"
    assert pairs["BOTH_PORT"] == "tcp://[fd00::7]:80"
    assert pairs["BOTH_PORT_80_TCP"] == "tcp://[fd00::7]:80"
    assert pairs["BOTH_PORT_80_TCP_ADDR"] == "fd00::7"


@pytest.mark.parametrize(
    "svc",
    [
        service("headless", cluster_ip="None"),
        service("unallocated", cluster_ip=""),
        service("external", cluster_ip="", ports=[], type="ExternalName", externalName="db.example.com"),
    ],
    ids=["headless", "no address yet", "ExternalName"],
)
def test_service_without_a_cluster_ip_has_no_variables(svc):
    """IsServiceIPSet: headless, ExternalName and unallocated Services are skipped."""
    assert service_variables(svc) == ()


def test_service_with_an_address_and_no_ports_has_no_variables():
    """A Service the API server would reject (an IP, no ports) is skipped, not an IndexError."""
    assert service_variables(service("portless", ports=[])) == ()


# --- getServiceEnvVarMap -------------------------------------------------------------------

# The Services of TestMakeEnvironmentVariables, by namespace (duplicates with
# "None" and "" cluster IPs are headless/unallocated and never listed).
KUBELET_MASTER = service("kubernetes", "default", "1.2.3.1", [{"port": 8081, "protocol": "TCP"}])
KUBELET_NAMESPACES = {
    "default": {
        "kubernetes": KUBELET_MASTER,
        "not-special": service("not-special", "default", "1.2.3.8", [{"port": 8088, "protocol": "TCP"}]),
    },
    "test1": {"test": service("test", "test1", "1.2.3.3", [{"port": 8083, "protocol": "TCP"}])},
    "test2": {
        "kubernetes": service("kubernetes", "test2", "1.2.3.4", [{"port": 8084, "protocol": "TCP"}]),
        "test": service("test", "test2", "1.2.3.5", [{"port": 8085, "protocol": "TCP"}]),
    },
}


def kubelet_group(prefix: str, ip: str, port: int) -> dict[str, str]:
    """The seven variables of a one-port TCP Service, as the kubelet's tests list them."""
    url = f"tcp://{ip}:{port}"
    return {
        f"{prefix}_SERVICE_HOST": ip,
        f"{prefix}_SERVICE_PORT": str(port),
        f"{prefix}_PORT": url,
        f"{prefix}_PORT_{port}_TCP": url,
        f"{prefix}_PORT_{port}_TCP_PROTO": "tcp",
        f"{prefix}_PORT_{port}_TCP_PORT": str(port),
        f"{prefix}_PORT_{port}_TCP_ADDR": ip,
    }


@pytest.mark.parametrize(
    "namespace, links, expected",
    [
        ("test1", False, kubelet_group("KUBERNETES", "1.2.3.1", 8081)),
        (
            "test1",
            True,
            {**kubelet_group("TEST", "1.2.3.3", 8083), **kubelet_group("KUBERNETES", "1.2.3.1", 8081)},
        ),
        ("test2", False, kubelet_group("KUBERNETES", "1.2.3.1", 8081)),
        (
            "test2",
            True,
            {**kubelet_group("TEST", "1.2.3.5", 8085), **kubelet_group("KUBERNETES", "1.2.3.4", 8084)},
        ),
        ("default", False, kubelet_group("KUBERNETES", "1.2.3.1", 8081)),
        (
            "default",
            True,
            {**kubelet_group("NOT_SPECIAL", "1.2.3.8", 8088), **kubelet_group("KUBERNETES", "1.2.3.1", 8081)},
        ),
    ],
    ids=[
        "api server = N; kubelet = Y",
        "api server = N; kubelet = Y; service env vars",
        "master service in pod ns",
        "master service in pod ns, service env vars",
        "pod in master service ns",
        "pod in master service ns, service env vars",
    ],
)
def test_pod_sees_what_the_kubelets_make_environment_variables_cases_expect(namespace, links, expected):
    """The Service rows of TestMakeEnvironmentVariables, as sets (the kubelet's order is random)."""
    variables = pod_service_env(KUBELET_NAMESPACES[namespace], KUBELET_MASTER, links)
    assert dict(as_pairs(variables)) == expected
    assert len(variables) == len(expected)


def test_no_master_service_in_the_cache_means_no_kubernetes_variables():
    """Without default/kubernetes in the cache, only the namespace's Services count."""
    variables = pod_service_env(KUBELET_NAMESPACES["test1"], None, True)
    assert {v.name for v in variables} == set(kubelet_group("TEST", "1.2.3.3", 8083))


def test_headless_kubernetes_service_in_the_pod_namespace_leaves_the_master_in_place():
    """A same-named Service replaces the master one only if it has a cluster IP."""
    namespace = {"kubernetes": service("kubernetes", "test3", "None")}
    assert [s.namespace for s in select_services(namespace, KUBELET_MASTER, True)] == ["default"]


def test_services_come_in_name_order_whatever_the_cache_order():
    """The same Services always give the same list, so the same cache gives the same patch."""
    a, b, c = service("alpha", cluster_ip="10.0.0.1"), service("beta", cluster_ip="10.0.0.2"), service("gamma", cluster_ip="10.0.0.3")
    forward = pod_service_env({"alpha": a, "beta": b, "gamma": c}, None, True)
    backward = pod_service_env({"gamma": c, "beta": b, "alpha": a}, None, True)
    assert forward == backward
    assert [v.name for v in forward if v.name.endswith("_SERVICE_HOST")] == [
        "ALPHA_SERVICE_HOST",
        "BETA_SERVICE_HOST",
        "GAMMA_SERVICE_HOST",
    ]


def test_first_service_by_name_keeps_a_name_two_services_produce():
    """"x" and "x-service" both make X_SERVICE_PORT; "x" (first by name) keeps its port number."""
    x = service("x", cluster_ip="10.0.0.1", ports=[{"port": 80}])
    x_service = service("x-service", cluster_ip="10.0.0.2", ports=[{"port": 81}])
    variables = pod_service_env({"x-service": x_service, "x": x}, None, True)
    assert [v for v in variables if v.name == "X_SERVICE_PORT"] == [EnvVar("X_SERVICE_PORT", "80")]
