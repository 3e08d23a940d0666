"""Specification of the API-JSON converters and the value objects they build.

Expected values come from the Kubernetes API (core/v1 Service, Pod, Namespace,
Endpoints; discovery.k8s.io/v1 EndpointSlice) and its validation rules: a
converter accepts what the API server would have stored and rejects, with an
`ObjectError` naming kind, namespace/name and field, what it would have refused.
"""

import attrs
import pytest

from discovery.cache.objects import (
    SERVICE_NAME_LABEL,
    TOLERATE_UNREADY_ANNOTATION,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    Namespace,
    ObjectError,
    Pod,
    Service,
    ServicePort,
    TargetRef,
    endpoint_slice_from_api,
    endpoints_to_slices,
    namespace_from_api,
    pod_from_api,
    service_from_api,
)


def service_json(spec=None, **metadata):
    metadata = {"name": "web", "namespace": "shop", **metadata}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec or {}}


def slice_json(address_type="IPv4", endpoints=None, ports=None, labels=None, **extra):
    metadata = {"name": "web-abc12", "namespace": "shop"}
    if labels is not None:
        metadata["labels"] = labels
    obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports,
    }
    obj.update(extra)
    return obj


def endpoints_json(subsets, **metadata):
    metadata = {"name": "web", "namespace": "shop", **metadata}
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata, "subsets": subsets}


def pod_json(status=None, **metadata):
    metadata = {"name": "web-0", "namespace": "shop", **metadata}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "status": status}


# --- Service -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, metadata, expected",
    [
        pytest.param(
            {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
            {},
            Service("shop", "web", cluster_ips=("10.96.0.10",), ip_families=("IPv4",),
                    ports=(ServicePort("dns", "UDP", 53),)),
            id="cluster-ip-with-one-port",
        ),
        pytest.param(
            {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"], "ipFamilies": ["IPv4", "IPv6"]},
            {},
            Service("shop", "web", cluster_ips=("10.0.0.1", "fd00::1"), ip_families=("IPv4", "IPv6")),
            id="dual-stack-primary-first",
        ),
        pytest.param(
            {"clusterIPs": ["fd00::1", "10.0.0.1"]},
            {},
            Service("shop", "web", cluster_ips=("fd00::1", "10.0.0.1"), ip_families=("IPv6", "IPv4")),
            id="cluster-ips-without-cluster-ip-families-inferred",
        ),
        pytest.param(
            {"clusterIP": "FD00:0:0::0A"},
            {},
            Service("shop", "web", cluster_ips=("fd00::a",), ip_families=("IPv6",),
                    cluster_ip_as_written="FD00:0:0::0A"),
            id="ipv6-cluster-ip-parsed-to-canonical-form-and-kept-as-written",
        ),
        pytest.param(
            {"clusterIP": "None", "ipFamilies": ["IPv6"]},
            {},
            Service("shop", "web", headless=True, ip_families=("IPv6",)),
            id="headless-by-cluster-ip",
        ),
        pytest.param(
            {"clusterIPs": ["None"]},
            {},
            Service("shop", "web", headless=True),
            id="headless-by-cluster-ips",
        ),
        pytest.param(
            {},
            {},
            Service("shop", "web"),
            id="not-yet-allocated",
        ),
        pytest.param(
            {"type": "NodePort", "clusterIP": "10.0.0.2", "ports": [{"port": 80}]},
            {},
            Service("shop", "web", type="NodePort", cluster_ips=("10.0.0.2",), ip_families=("IPv4",),
                    ports=(ServicePort("", "TCP", 80),)),
            id="node-port-and-tcp-default",
        ),
        pytest.param(
            {"type": "LoadBalancer", "clusterIP": "10.0.0.3"},
            {},
            Service("shop", "web", type="LoadBalancer", cluster_ips=("10.0.0.3",), ip_families=("IPv4",)),
            id="load-balancer",
        ),
        pytest.param(
            {"type": "ExternalName", "externalName": "My.Example.COM."},
            {},
            # CoreDNS's CNAME target is the object's spelling (handler_case_test.go).
            Service("shop", "web", type="ExternalName", external_name="My.Example.COM"),
            id="external-name-kept-as-written-without-root-dot",
        ),
        pytest.param(
            {"ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "appProtocol": "http"},
            ]},
            {},
            Service("shop", "web", ports=(
                ServicePort("dns", "UDP", 53),
                ServicePort("dns-tcp", "TCP", 53),
                ServicePort("metrics", "TCP", 9153, "http"),
            )),
            id="kube-dns-ports-same-number-two-protocols",
        ),
        pytest.param(
            {"ports": [{"name": "grpc-web-insecure", "port": 8081, "protocol": "SCTP"}]},
            {},
            Service("shop", "web", ports=(ServicePort("grpc-web-insecure", "SCTP", 8081),)),
            id="port-name-is-a-dns-label-longer-than-15",
        ),
        pytest.param(
            {"publishNotReadyAddresses": True},
            {},
            Service("shop", "web", publish_not_ready_addresses=True),
            id="publish-not-ready-addresses",
        ),
        pytest.param(
            {"selector": {"app": "web", "tier": "front"}},
            {"labels": {"z": "1", "a": "2"}},
            Service("shop", "web", selector=(("app", "web"), ("tier", "front")), labels=(("a", "2"), ("z", "1"))),
            id="selector-and-labels-as-sorted-pairs",
        ),
    ],
)
def test_service_fields(spec, metadata, expected):
    """Each Service field becomes its value-object field as the API defines it."""
    assert service_from_api(service_json(spec, **metadata)) == expected


@pytest.mark.parametrize(
    "value, published",
    [
        pytest.param("true", True, id="true"),
        pytest.param("True", True, id="True"),
        pytest.param("TRUE", True, id="TRUE"),
        pytest.param("1", True, id="one"),
        pytest.param("t", True, id="t"),
        pytest.param("false", False, id="false"),
        pytest.param("yes", False, id="yes-is-not-a-go-bool"),
        pytest.param("tRuE", False, id="mixed-case-is-not-a-go-bool"),
    ],
)
def test_tolerate_unready_annotation_reads_as_go_parse_bool(value, published):
    """The deprecated annotation publishes not-ready addresses when strconv.ParseBool reads true."""
    obj = service_json({}, annotations={TOLERATE_UNREADY_ANNOTATION: value})
    assert service_from_api(obj).publish_not_ready_addresses is published


def test_service_namespace_defaults_to_the_callers():
    """A manifest without metadata.namespace lands in the namespace the caller names."""
    obj = {"metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.1"}}
    assert service_from_api(obj, default_namespace="default").key == ("default", "web")


def test_service_own_namespace_wins_over_the_default():
    """metadata.namespace, when set, is kept whatever the default."""
    assert service_from_api(service_json(), default_namespace="default").namespace == "shop"


@pytest.mark.parametrize(
    "service, expected",
    [
        pytest.param(Service("a", "b", cluster_ips=("10.0.0.1", "fd00::1")), "10.0.0.1", id="primary"),
        pytest.param(Service("a", "b", headless=True), "", id="headless"),
        pytest.param(Service("a", "b"), "", id="unallocated"),
    ],
)
def test_service_cluster_ip_is_the_primary(service, expected):
    """cluster_ip is the first of clusterIPs, or "" when there is none (as the kubelet reads it)."""
    assert service.cluster_ip == expected


@pytest.mark.parametrize(
    "service, expected",
    [
        pytest.param(Service("a", "b"), True, id="unallocated"),
        pytest.param(Service("a", "b", cluster_ips=("10.0.0.1",)), False, id="allocated"),
        pytest.param(Service("a", "b", headless=True), False, id="headless"),
        pytest.param(Service("a", "b", type="ExternalName", external_name="x.org"), False, id="external-name"),
    ],
)
def test_service_needs_cluster_ip_only_when_the_api_would_allocate_one(service, expected):
    """needs_cluster_ip is true for a ClusterIP-like Service that holds no address yet."""
    assert service.needs_cluster_ip is expected


def test_service_name_may_start_with_a_digit():
    """A Service named "1kubernetes" converts, as RelaxedServiceNameValidation lets the API server store it.

    kubernetes/kubernetes test/e2e/network/dns.go, "should work with a service
    name that starts with a digit" (FeatureGate:RelaxedServiceNameValidation,
    KEP-5311): ValidateService uses NameIsDNSLabel instead of
    NameIsDNS1035Label, so the converter must not be stricter.
    """
    svc = service_from_api(service_json({"clusterIP": "10.0.0.9", "ports": [{"port": 443}]}, name="1kubernetes"))
    assert (svc.name, svc.cluster_ips) == ("1kubernetes", ("10.0.0.9",))


@pytest.mark.parametrize(
    "written, canonical",
    [
        pytest.param("2001:DB8::1", "2001:db8::1", id="ipv6-upper-case"),
        pytest.param("2001:db8:0:0:0:0:0:1", "2001:db8::1", id="ipv6-uncompressed"),
        pytest.param("010.000.000.001", "10.0.0.1", id="ipv4-leading-zeros"),
    ],
)
def test_service_keeps_spec_cluster_ip_as_written_beside_the_parsed_address(written, canonical):
    """spec.clusterIP is kept verbatim for the kubelet's variables; DNS reads the parsed address.

    The API server stores a non-canonical spelling with a warning only
    (pkg/apis/core/validation: IsValidIPForLegacyField; ParseIPSloppy reads
    leading zeros as decimal while StrictIPCIDRValidation is off).
    """
    svc = service_from_api(service_json({"clusterIP": written, "ports": [{"port": 80}]}))
    assert svc.cluster_ips == (canonical,)
    assert svc.spec_cluster_ip == written


def test_service_with_a_canonical_cluster_ip_stores_no_second_spelling():
    """The verbatim field stays None for the usual canonical address, so it costs no memory."""
    svc = service_from_api(service_json({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}))
    assert svc.cluster_ip_as_written is None
    assert svc.spec_cluster_ip == "10.0.0.1"


def test_fqdn_endpoint_may_end_with_a_dot():
    """An FQDN address with a trailing dot passes, as IsFullyQualifiedDomainName allows it."""
    converted = endpoint_slice_from_api(slice_json(address_type="FQDN", endpoints=[{"addresses": ["db.example.org."]}]))
    assert converted.endpoints[0].addresses == ("db.example.org.",)


SERVICE_REJECTIONS = [
    pytest.param({"metadata": {"namespace": "shop"}, "spec": {}}, "metadata.name", id="missing-name"),
    pytest.param({"metadata": {"name": 5, "namespace": "shop"}}, "metadata.name", id="name-not-a-string"),
    pytest.param(service_json(name="Web"), "metadata.name", id="name-upper-case"),
    pytest.param(service_json(name="-web"), "metadata.name", id="name-starts-with-a-dash"),
    pytest.param(service_json(name="a" * 64), "metadata.name", id="name-longer-than-63"),
    pytest.param(service_json(namespace="Shop"), "metadata.namespace", id="bad-namespace"),
    pytest.param({"metadata": {"name": "web"}}, "metadata.namespace", id="no-namespace-and-no-default"),
    pytest.param({"metadata": {"name": "web", "namespace": ["shop"]}}, "metadata.namespace", id="namespace-not-a-string"),
    pytest.param({"metadata": ["web"]}, "metadata", id="metadata-not-an-object"),
    pytest.param({"metadata": {"name": "web", "namespace": "shop"}, "spec": []}, "spec", id="spec-not-an-object"),
    pytest.param(service_json({"clusterIP": "10.0.0.256"}), "clusterIP", id="bad-cluster-ip"),
    pytest.param(service_json({"clusterIP": 167772161}), "clusterIP", id="cluster-ip-not-a-string"),
    pytest.param(service_json({"clusterIP": "fe80::1%eth0"}), "clusterIP", id="cluster-ip-with-zone-index"),
    pytest.param(service_json({"clusterIPs": "10.0.0.1"}), "spec.clusterIPs", id="cluster-ips-not-a-list"),
    pytest.param(service_json({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"]}), "spec.clusterIPs[0]",
                 id="cluster-ips-disagree-with-cluster-ip"),
    pytest.param(service_json({"clusterIPs": ["10.0.0.1", "10.0.0.2"]}), "spec.clusterIPs",
                 id="two-ips-of-one-family"),
    pytest.param(service_json({"clusterIPs": ["None", "10.0.0.2"]}), "spec.clusterIPs", id="none-with-another-ip"),
    pytest.param(service_json({"ipFamilies": ["IPv5"]}), "spec.ipFamilies[0]", id="unknown-ip-family"),
    pytest.param(service_json({"ipFamilies": [["IPv4"]]}), "spec.ipFamilies[0]", id="ip-family-not-a-string"),
    pytest.param(service_json({"clusterIP": "10.0.0.1", "ipFamilies": ["IPv6"]}), "spec.ipFamilies",
                 id="ip-family-of-the-wrong-family"),
    pytest.param(service_json({"type": "Internal"}), "spec.type", id="unknown-type"),
    pytest.param(service_json({"type": "ExternalName"}), "spec.externalName", id="external-name-missing"),
    pytest.param(service_json({"type": "ExternalName", "externalName": "a_b.example"}), "spec.externalName",
                 id="external-name-not-a-dns-name"),
    pytest.param(service_json({"ports": {"port": 80}}), "spec.ports", id="ports-not-a-list"),
    pytest.param(service_json({"ports": [80]}), "spec.ports[0]", id="port-entry-not-an-object"),
    pytest.param(service_json({"ports": [{"name": "http"}]}), "spec.ports[0].port", id="port-missing"),
    pytest.param(service_json({"ports": [{"port": 0}]}), "spec.ports[0].port", id="port-zero"),
    pytest.param(service_json({"ports": [{"port": 65536}]}), "spec.ports[0].port", id="port-above-65535"),
    pytest.param(service_json({"ports": [{"port": "80"}]}), "spec.ports[0].port", id="port-as-string"),
    pytest.param(service_json({"ports": [{"port": True}]}), "spec.ports[0].port", id="port-as-boolean"),
    pytest.param(service_json({"ports": [{"port": 80, "protocol": "HTTP"}]}), "spec.ports[0].protocol",
                 id="unknown-protocol"),
    pytest.param(service_json({"ports": [{"port": 80, "protocol": "tcp"}]}), "spec.ports[0].protocol",
                 id="protocol-is-case-sensitive"),
    pytest.param(service_json({"ports": [{"port": 80, "name": "Http"}]}), "spec.ports[0].name",
                 id="port-name-upper-case"),
    pytest.param(service_json({"ports": [{"port": 80, "name": "a" * 64}]}), "spec.ports[0].name",
                 id="port-name-longer-than-63"),
    pytest.param(service_json({"ports": [{"port": 80, "name": "http"}, {"port": 81}]}), "spec.ports[1].name",
                 id="port-name-required-with-several-ports"),
    pytest.param(service_json({"ports": [{"port": 80, "name": "http"}, {"port": 81, "name": "http"}]}),
                 "spec.ports[1].name", id="duplicate-port-name"),
    pytest.param(service_json({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}),
                 "spec.ports[1]", id="duplicate-port-and-protocol"),
    pytest.param(service_json({"ports": [{"port": 80, "appProtocol": 7}]}), "spec.ports[0].appProtocol",
                 id="app-protocol-not-a-string"),
    pytest.param(service_json({"publishNotReadyAddresses": "true"}), "spec.publishNotReadyAddresses",
                 id="publish-not-ready-as-string"),
    pytest.param(service_json({"selector": {"app": 1}}), "spec.selector", id="selector-value-not-a-string"),
    pytest.param(service_json(labels=["a"]), "metadata.labels", id="labels-not-an-object"),
    pytest.param(service_json(annotations="x"), "metadata.annotations", id="annotations-not-an-object"),
]


@pytest.mark.parametrize("obj, field", SERVICE_REJECTIONS)
def test_service_rejection_names_the_object_and_field(obj, field):
    """What the API would refuse raises ObjectError naming kind, namespace/name and the field."""
    with pytest.raises(ObjectError) as caught:
        service_from_api(obj)
    error = caught.value
    assert error.kind == "Service"
    assert str(error).startswith(f"{error.ref}: ")
    assert field in error.reason


def test_object_error_names_kind_namespace_and_name():
    """The error text starts with "Kind namespace/name" so one log line locates the object."""
    with pytest.raises(ObjectError) as caught:
        service_from_api(service_json({"ports": [{"port": 0}]}))
    assert (caught.value.kind, caught.value.namespace, caught.value.name) == ("Service", "shop", "web")
    assert str(caught.value).startswith("Service shop/web: spec.ports[0].port")


def test_object_error_for_an_unnamed_object_says_so():
    """An object without a name is reported as <unnamed> rather than as an empty string."""
    with pytest.raises(ObjectError, match=r"^Service shop/<unnamed>: metadata.name is missing"):
        service_from_api({"metadata": {"namespace": "shop"}})


@pytest.mark.parametrize(
    "obj, type_name",
    [
        pytest.param(None, "NoneType", id="null"),
        pytest.param([], "list", id="list"),
        pytest.param("kind: Service", "str", id="string"),
        pytest.param(42, "int", id="number"),
    ],
)
@pytest.mark.parametrize(
    "convert, kind",
    [
        pytest.param(service_from_api, "Service", id="Service"),
        pytest.param(endpoint_slice_from_api, "EndpointSlice", id="EndpointSlice"),
        pytest.param(endpoints_to_slices, "Endpoints", id="Endpoints"),
        pytest.param(pod_from_api, "Pod", id="Pod"),
        pytest.param(namespace_from_api, "Namespace", id="Namespace"),
    ],
)
def test_non_object_input_is_rejected(convert, kind, obj, type_name):
    """Every converter turns input that is not a JSON object into ObjectError, never a crash."""
    with pytest.raises(ObjectError, match=f"^{kind} .*expected an object, got {type_name}"):
        convert(obj)


def test_repeated_strings_are_interned():
    """Namespaces and protocols read from separate documents share one string object."""
    first = service_from_api(service_json({"ports": [{"port": 80, "protocol": "".join(["T", "CP"])}]},
                                          namespace="".join(["sh", "op"])))
    second = service_from_api(service_json({"ports": [{"port": 81, "protocol": "".join(["TC", "P"])}]},
                                           namespace="".join(["s", "hop"])))
    assert first.namespace is second.namespace
    assert first.ports[0].protocol is second.ports[0].protocol


# --- EndpointSlice -----------------------------------------------------------------


def test_endpoint_slice_fields():
    """Every EndpointSlice field is read as discovery.k8s.io/v1 defines it."""
    obj = slice_json(
        endpoints=[
            {
                "addresses": ["10.1.0.5"],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "hostname": "web-0",
                "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "u1"},
                "nodeName": "node-a",
                "zone": "eu-west-1a",
            }
        ],
        ports=[{"name": "http", "protocol": "TCP", "port": 8080, "appProtocol": "http"}],
        labels={SERVICE_NAME_LABEL: "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
    )
    assert endpoint_slice_from_api(obj) == EndpointSlice(
        namespace="shop",
        name="web-abc12",
        service_name="web",
        address_type="IPv4",
        endpoints=(
            Endpoint(
                addresses=("10.1.0.5",),
                ready=True,
                serving=True,
                terminating=False,
                hostname="web-0",
                target_ref=TargetRef("Pod", "shop", "web-0"),
                node_name="node-a",
                zone="eu-west-1a",
            ),
        ),
        ports=(EndpointPort("http", "TCP", 8080, "http"),),
        labels=(
            ("endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"),
            (SERVICE_NAME_LABEL, "web"),
        ),
    )


def test_endpoint_slice_keys():
    """A slice is keyed by its own name and points at its Service by the service-name label."""
    converted = endpoint_slice_from_api(slice_json(labels={SERVICE_NAME_LABEL: "web"}))
    assert converted.key == ("shop", "web-abc12")
    assert converted.service_key == ("shop", "web")


def test_endpoint_slice_without_service_label_belongs_to_no_service():
    """A slice without the kubernetes.io/service-name label has an empty service name."""
    assert endpoint_slice_from_api(slice_json()).service_name == ""


def test_endpoint_slice_with_null_endpoints_is_empty():
    """A Service scaled to zero has "endpoints": null, which is a slice with no endpoints."""
    assert endpoint_slice_from_api(slice_json(endpoints=None, ports=None)).endpoints == ()


@pytest.mark.parametrize(
    "conditions, expected",
    [
        pytest.param(None, (True, True, False), id="absent-means-ready-serving-not-terminating"),
        pytest.param({}, (True, True, False), id="empty"),
        pytest.param({"ready": False}, (False, False, False), id="serving-defers-to-ready"),
        pytest.param({"ready": True, "serving": None}, (True, True, False), id="null-serving-defers-to-ready"),
        pytest.param({"ready": False, "serving": True, "terminating": True}, (False, True, True),
                     id="terminating-but-serving"),
        pytest.param({"ready": None, "terminating": None}, (True, True, False), id="nulls"),
    ],
)
def test_endpoint_conditions_defaults(conditions, expected):
    """Missing conditions read as the API documents: ready unless false, serving as ready, not terminating."""
    endpoint = {"addresses": ["10.1.0.5"]}
    if conditions is not None:
        endpoint["conditions"] = conditions
    converted = endpoint_slice_from_api(slice_json(endpoints=[endpoint])).endpoints[0]
    assert (converted.ready, converted.serving, converted.terminating) == expected


@pytest.mark.parametrize(
    "address_type, addresses, expected",
    [
        pytest.param("IPv4", ["10.1.0.5", "10.1.0.6"], ("10.1.0.5", "10.1.0.6"), id="ipv4"),
        pytest.param("IPv6", ["FD00::0:5"], ("fd00::5",), id="ipv6-canonical"),
        pytest.param("FQDN", ["db.example.org"], ("db.example.org",), id="fqdn"),
    ],
)
def test_endpoint_addresses_by_address_type(address_type, addresses, expected):
    """Addresses are read according to the slice's addressType, IPs in canonical form."""
    obj = slice_json(address_type=address_type, endpoints=[{"addresses": addresses}])
    assert endpoint_slice_from_api(obj).endpoints[0].addresses == expected


def test_endpoint_optional_fields_absent():
    """Without hostname, targetRef, nodeName and zone, those fields are None."""
    converted = endpoint_slice_from_api(slice_json(endpoints=[{"addresses": ["10.1.0.5"], "zone": ""}]))
    endpoint = converted.endpoints[0]
    assert (endpoint.hostname, endpoint.target_ref, endpoint.node_name, endpoint.zone) == (None, None, None, None)


def test_target_ref_namespace_defaults_to_the_slices():
    """A targetRef without a namespace refers to an object in the slice's namespace."""
    obj = slice_json(endpoints=[{"addresses": ["10.1.0.5"], "targetRef": {"kind": "Pod", "name": "web-0"}}])
    assert endpoint_slice_from_api(obj).endpoints[0].target_ref == TargetRef("Pod", "shop", "web-0")


@pytest.mark.parametrize(
    "port, expected",
    [
        pytest.param({}, EndpointPort("", "TCP", None), id="all-ports-unnamed-tcp"),
        pytest.param({"port": None, "name": "", "protocol": None}, EndpointPort("", "TCP", None), id="nulls"),
        pytest.param({"name": "dns", "protocol": "UDP", "port": 53}, EndpointPort("dns", "UDP", 53), id="named"),
        pytest.param({"port": 443, "appProtocol": "kubernetes.io/h2c"}, EndpointPort("", "TCP", 443, "kubernetes.io/h2c"),
                     id="app-protocol"),
    ],
)
def test_endpoint_slice_ports(port, expected):
    """A slice port defaults to TCP; a null port number means every port."""
    assert endpoint_slice_from_api(slice_json(ports=[port])).ports == (expected,)


SLICE_REJECTIONS = [
    pytest.param(slice_json(address_type="IPvX"), "addressType", id="unknown-address-type"),
    pytest.param(slice_json(address_type=None), "addressType", id="address-type-missing"),
    pytest.param(slice_json(address_type=4), "addressType", id="address-type-not-a-string"),
    pytest.param(slice_json(endpoints={"addresses": []}), "endpoints", id="endpoints-not-a-list"),
    pytest.param(slice_json(endpoints=[{"addresses": []}]), "endpoints[0].addresses", id="no-address"),
    pytest.param(slice_json(endpoints=[{}]), "endpoints[0].addresses", id="addresses-missing"),
    pytest.param(slice_json(endpoints=[{"addresses": ["10.1.0.300"]}]), "endpoints[0].addresses[0]", id="bad-ip"),
    pytest.param(slice_json(endpoints=[{"addresses": ["10.1.0.5", "fd00::5"]}]), "endpoints[0].addresses[1]",
                 id="ipv6-in-an-ipv4-slice"),
    pytest.param(slice_json(address_type="IPv6", endpoints=[{"addresses": ["10.1.0.5"]}]),
                 "endpoints[0].addresses[0]", id="ipv4-in-an-ipv6-slice"),
    pytest.param(slice_json(address_type="FQDN", endpoints=[{"addresses": ["not a name"]}]),
                 "endpoints[0].addresses[0]", id="bad-fqdn"),
    pytest.param(slice_json(endpoints=[{"addresses": ["10.1.0.5"], "conditions": {"ready": "true"}}]),
                 "endpoints[0].conditions.ready", id="ready-as-string"),
    pytest.param(slice_json(endpoints=[{"addresses": ["10.1.0.5"], "conditions": {"terminating": 1}}]),
                 "endpoints[0].conditions.terminating", id="terminating-as-number"),
    pytest.param(slice_json(endpoints=[{"addresses": ["10.1.0.5"], "hostname": "Web_0"}]),
                 "endpoints[0].hostname", id="bad-hostname"),
    pytest.param(slice_json(endpoints=[{"addresses": ["10.1.0.5"], "targetRef": "web-0"}]),
                 "endpoints[0].targetRef", id="target-ref-not-an-object"),
    pytest.param(slice_json(endpoints=[{"addresses": ["10.1.0.5"], "nodeName": 3}]),
                 "endpoints[0].nodeName", id="node-name-not-a-string"),
    pytest.param(slice_json(ports=[{"port": 0}]), "ports[0].port", id="port-zero"),
    pytest.param(slice_json(ports=[{"port": 70000}]), "ports[0].port", id="port-too-big"),
    pytest.param(slice_json(ports=[{"port": 53, "protocol": "ICMP"}]), "ports[0].protocol", id="unknown-protocol"),
    pytest.param(slice_json(ports=[{"port": 53, "name": "DNS"}]), "ports[0].name", id="bad-port-name"),
    pytest.param(slice_json(labels={SERVICE_NAME_LABEL: None}), "metadata.labels", id="label-value-null"),
    pytest.param({"metadata": {"name": "web-abc12"}, "addressType": "IPv4"}, "metadata.namespace",
                 id="namespace-missing"),
    pytest.param({"metadata": {"name": "Web", "namespace": "shop"}, "addressType": "IPv4"}, "metadata.name",
                 id="bad-name"),
]


@pytest.mark.parametrize("obj, field", SLICE_REJECTIONS)
def test_endpoint_slice_rejection_names_the_object_and_field(obj, field):
    """What the API would refuse in an EndpointSlice raises ObjectError naming the field."""
    with pytest.raises(ObjectError) as caught:
        endpoint_slice_from_api(obj)
    assert caught.value.kind == "EndpointSlice"
    assert str(caught.value).startswith(f"{caught.value.ref}: ")
    assert field in caught.value.reason


# --- legacy Endpoints -----------------------------------------------------------------


def test_endpoints_subset_becomes_one_slice_with_ready_and_not_ready_endpoints():
    """addresses are ready, notReadyAddresses are not, and the slice belongs to the same-named Service."""
    obj = endpoints_json(
        [
            {
                "addresses": [
                    {"ip": "10.1.0.5", "hostname": "web-0", "nodeName": "node-a",
                     "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-0"}},
                ],
                "notReadyAddresses": [{"ip": "10.1.0.6"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        ],
        labels={"app": "web"},
    )
    assert endpoints_to_slices(obj) == (
        EndpointSlice(
            namespace="shop",
            name="web-0",
            service_name="web",
            address_type="IPv4",
            endpoints=(
                Endpoint(("10.1.0.5",), ready=True, serving=True, hostname="web-0",
                         target_ref=TargetRef("Pod", "shop", "web-0"), node_name="node-a"),
                Endpoint(("10.1.0.6",), ready=False, serving=False),
            ),
            ports=(EndpointPort("http", "TCP", 8080),),
            labels=(("app", "web"), (SERVICE_NAME_LABEL, "web")),
        ),
    )


def test_endpoints_split_by_address_family_and_subset():
    """Like the mirroring controller: one slice per subset and family, IPv4 first, numbered in order."""
    obj = endpoints_json(
        [
            {"addresses": [{"ip": "fd00::5"}, {"ip": "10.1.0.5"}], "ports": [{"port": 80}]},
            {"addresses": [{"ip": "10.1.0.7"}], "ports": [{"port": 81}]},
        ]
    )
    slices = endpoints_to_slices(obj)
    assert [(s.name, s.address_type, [e.addresses for e in s.endpoints], [p.port for p in s.ports]) for s in slices] == [
        ("web-0", "IPv4", [("10.1.0.5",)], [80]),
        ("web-1", "IPv6", [("fd00::5",)], [80]),
        ("web-2", "IPv4", [("10.1.0.7",)], [81]),
    ]


def test_endpoints_conversion_is_deterministic():
    """Converting the same Endpoints twice yields the same slice keys, so a reload changes nothing."""
    obj = endpoints_json([{"addresses": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}]}])
    assert endpoints_to_slices(obj) == endpoints_to_slices(obj)


@pytest.mark.parametrize(
    "subsets",
    [
        pytest.param(None, id="null"),
        pytest.param([], id="empty"),
        pytest.param([{"ports": [{"port": 80}]}], id="subset-without-addresses"),
    ],
)
def test_endpoints_without_addresses_give_no_slices(subsets):
    """An Endpoints object without addresses stands for no slices."""
    assert endpoints_to_slices(endpoints_json(subsets)) == ()


@pytest.mark.parametrize(
    "subsets, field",
    [
        pytest.param([{"addresses": [{"ip": "10.1.0.5"}], "ports": [{"name": "http"}]}], "subsets[0].ports[0].port",
                     id="port-missing"),
        pytest.param([{"addresses": [{"ip": "10.1.0.x"}]}], "subsets[0].addresses[0].ip", id="bad-ip"),
        pytest.param([{"notReadyAddresses": [{"hostname": "a"}]}], "subsets[0].notReadyAddresses[0].ip",
                     id="ip-missing"),
        pytest.param([{"addresses": [{"ip": "10.1.0.5", "hostname": "A_B"}]}], "subsets[0].addresses[0].hostname",
                     id="bad-hostname"),
        pytest.param({"addresses": []}, "subsets", id="subsets-not-a-list"),
    ],
)
def test_endpoints_rejection_names_the_object_and_field(subsets, field):
    """What the API would refuse in an Endpoints object raises ObjectError naming the field."""
    with pytest.raises(ObjectError) as caught:
        endpoints_to_slices(endpoints_json(subsets))
    assert str(caught.value).startswith("Endpoints shop/web: ")
    assert field in caught.value.reason


# --- Pod and Namespace ------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, metadata, expected",
    [
        pytest.param({"podIP": "10.1.0.5", "phase": "Running"}, {},
                     Pod("shop", "web-0", ips=("10.1.0.5",), phase="Running"), id="pod-ip-only"),
        pytest.param({"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}], "phase": "Running"}, {},
                     Pod("shop", "web-0", ips=("10.1.0.5", "fd00::5"), phase="Running"), id="dual-stack"),
        pytest.param({"podIPs": [{"ip": "FD00::0005"}]}, {},
                     Pod("shop", "web-0", ips=("fd00::5",)), id="pod-ips-only-canonical"),
        pytest.param({"phase": "Pending"}, {}, Pod("shop", "web-0", phase="Pending"), id="no-ip-yet"),
        pytest.param(None, {}, Pod("shop", "web-0"), id="no-status"),
        pytest.param({"podIP": "10.1.0.5", "phase": "Running"}, {"deletionTimestamp": "2024-05-01T10:00:00Z"},
                     Pod("shop", "web-0", ips=("10.1.0.5",), phase="Running", deleting=True), id="being-deleted"),
        pytest.param({}, {"labels": {"app": "web"}}, Pod("shop", "web-0", labels=(("app", "web"),)), id="labels"),
    ],
)
def test_pod_fields(status, metadata, expected):
    """A Pod keeps its IPs (podIPs, else podIP), phase, deletion mark and labels."""
    assert pod_from_api(pod_json(status, **metadata)) == expected


@pytest.mark.parametrize(
    "status, field",
    [
        pytest.param({"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.6"}]}, "status.podIP", id="pod-ip-disagrees"),
        pytest.param({"podIP": "not-an-ip"}, "status.podIP", id="bad-pod-ip"),
        pytest.param({"podIPs": ["10.1.0.5"]}, "status.podIPs[0]", id="pod-ips-entry-not-an-object"),
        pytest.param({"podIPs": [{"ip": "10.1.0.500"}]}, "status.podIPs[0].ip", id="bad-pod-ips-entry"),
        pytest.param({"phase": 1}, "status.phase", id="phase-not-a-string"),
        pytest.param([], "status", id="status-not-an-object"),
    ],
)
def test_pod_rejection_names_the_object_and_field(status, field):
    """What the API would refuse in a Pod raises ObjectError naming the field."""
    with pytest.raises(ObjectError) as caught:
        pod_from_api(pod_json(status))
    assert str(caught.value).startswith("Pod shop/web-0: ")
    assert field in caught.value.reason


def test_namespace_fields():
    """A Namespace keeps its name and labels and is keyed as a cluster-scoped object."""
    converted = namespace_from_api({"metadata": {"name": "shop", "labels": {"team": "a"}}})
    assert converted == Namespace("shop", (("team", "a"),))
    assert converted.key == ("", "shop")


@pytest.mark.parametrize(
    "obj, field",
    [
        pytest.param({"metadata": {"name": "Shop"}}, "metadata.name", id="upper-case"),
        pytest.param({"metadata": {"name": "shop.eu"}}, "metadata.name", id="dots-are-not-a-label"),
        pytest.param({"metadata": {}}, "metadata.name", id="missing"),
        pytest.param({"metadata": {"name": "shop", "labels": {"a": 1}}}, "metadata.labels", id="bad-label"),
    ],
)
def test_namespace_rejection_names_the_field(obj, field):
    """A Namespace name must be a DNS-1123 label; errors name the field."""
    with pytest.raises(ObjectError) as caught:
        namespace_from_api(obj)
    assert caught.value.kind == "Namespace"
    assert field in caught.value.reason


# --- the value objects themselves ---------------------------------------------------------


VALUE_OBJECTS = [
    pytest.param(ServicePort("http", "TCP", 80), id="ServicePort"),
    pytest.param(Service("shop", "web"), id="Service"),
    pytest.param(TargetRef("Pod", "shop", "web-0"), id="TargetRef"),
    pytest.param(Endpoint(("10.1.0.5",)), id="Endpoint"),
    pytest.param(EndpointPort(), id="EndpointPort"),
    pytest.param(EndpointSlice("shop", "web-abc12", "web", "IPv4"), id="EndpointSlice"),
    pytest.param(Pod("shop", "web-0"), id="Pod"),
    pytest.param(Namespace("shop"), id="Namespace"),
]


@pytest.mark.parametrize("value", VALUE_OBJECTS)
def test_value_objects_are_frozen(value):
    """No field of a cached object can be reassigned: readers share them."""
    field = attrs.fields(type(value))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, field, getattr(value, field))


@pytest.mark.parametrize("value", VALUE_OBJECTS)
def test_value_objects_are_slotted(value):
    """Cached objects carry no per-instance __dict__, because there may be 100,000 of them."""
    assert "__slots__" in type(value).__dict__
    assert not hasattr(value, "__dict__")


@pytest.mark.parametrize("value", VALUE_OBJECTS)
def test_value_objects_are_hashable_and_equal_by_value(value):
    """Equal field values make equal, equally hashed objects: the Store compares by value."""
    twin = attrs.evolve(value)
    assert twin == value and hash(twin) == hash(value)


# --- Services reachable from outside (k8s_external) --------------------------------


def test_load_balancer_fields_are_kept():
    """type, externalIPs, loadBalancerIP, node ports, externalTrafficPolicy and the ingress status become fields."""
    obj = service_json({
        "type": "LoadBalancer", "clusterIP": "10.0.0.3", "externalIPs": ["192.0.2.7"],
        "loadBalancerIP": "198.51.100.1", "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}],
    })
    obj["status"] = {"loadBalancer": {"ingress": [
        {"ip": "198.51.100.1", "ipMode": "Proxy"}, {"hostname": "LB.Example.COM."},
    ]}}
    assert service_from_api(obj) == Service(
        "shop", "web", type="LoadBalancer", cluster_ips=("10.0.0.3",), ip_families=("IPv4",),
        ports=(ServicePort("http", "TCP", 80, node_port=30080),),
        external_ips=("192.0.2.7",), load_balancer_ip="198.51.100.1", external_traffic_policy="Local",
        ingress=(LoadBalancerIngress(ip="198.51.100.1", ip_mode="Proxy"), LoadBalancerIngress(hostname="lb.example.com")),
    )


def test_external_addresses_are_external_ips_then_ingress_ips_or_hostnames():
    """CoreDNS's object/service.go order: spec.externalIPs, then each ingress's IP, else its hostname."""
    service = Service("a", "b", external_ips=("192.0.2.1",),
                      ingress=(LoadBalancerIngress(hostname="lb.example.com"), LoadBalancerIngress(ip="2001:db8::1")))
    assert service.external_addresses == ("192.0.2.1", "lb.example.com", "2001:db8::1")


def test_cluster_ip_service_keeps_no_node_port():
    """A ClusterIP Service has no node ports, whatever a manifest writes."""
    obj = service_json({"clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 30080}]})
    assert service_from_api(obj).ports == (ServicePort("", "TCP", 80),)


def test_external_ips_are_normalised():
    """External IPs are kept in their compressed form, as cluster IPs are."""
    obj = service_json({"clusterIP": "10.0.0.1", "externalIPs": ["2001:DB8:0::1"]})
    assert service_from_api(obj).external_ips == ("2001:db8::1",)


@pytest.mark.parametrize(
    "obj, field",
    [
        pytest.param(service_json({"externalIPs": ["not-an-ip"]}), "spec.externalIPs[0]", id="external-ip"),
        pytest.param(service_json({"externalIPs": "192.0.2.1"}), "spec.externalIPs", id="external-ips-not-a-list"),
        pytest.param(service_json({"loadBalancerIP": "x"}), "spec.loadBalancerIP", id="load-balancer-ip"),
        pytest.param(service_json({"externalTrafficPolicy": "Nearest"}), "spec.externalTrafficPolicy", id="policy"),
        pytest.param(service_json({"type": "NodePort", "ports": [{"port": 80, "nodePort": 0}]}),
                     "spec.ports[0].nodePort", id="node-port-zero"),
        pytest.param({**service_json(), "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3"}]}}},
                     "status.loadBalancer.ingress[0].ip", id="ingress-ip"),
        pytest.param({**service_json(), "status": {"loadBalancer": {"ingress": [{"hostname": "a_b"}]}}},
                     "status.loadBalancer.ingress[0].hostname", id="ingress-hostname"),
        pytest.param({**service_json(), "status": {"loadBalancer": {"ingress": [{"hostname": "1.2.3.4"}]}}},
                     "status.loadBalancer.ingress[0].hostname", id="ingress-hostname-is-an-ip"),
        pytest.param({**service_json(), "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "X"}]}}},
                     "status.loadBalancer.ingress[0].ipMode", id="ingress-ip-mode"),
        pytest.param({**service_json(), "status": {"loadBalancer": {"ingress": [{"hostname": "a.b", "ipMode": "VIP"}]}}},
                     "status.loadBalancer.ingress[0].ipMode", id="ip-mode-without-ip"),
        pytest.param({**service_json(), "status": {"loadBalancer": {"ingress": {}}}},
                     "status.loadBalancer.ingress", id="ingress-not-a-list"),
    ],
)
def test_external_fields_rejected_as_the_api_would(obj, field):
    """Bad external addresses and ingress entries are refused, naming the field."""
    with pytest.raises(ObjectError) as raised:
        service_from_api(obj)
    assert field in str(raised.value)
