"""parse_manifest: the bytes of one manifest file -> objects and problems with lines."""

from __future__ import annotations

import json
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.cache.config import SourceConfig
from discovery.cache.manifests import merge, parse_manifest
from discovery.cache.objects import Endpoint, EndpointSlice, Namespace, Pod, Service, ServicePort


def text(source: str) -> bytes:
    return textwrap.dedent(source).lstrip("\n").encode()


def lines_of(parsed) -> list[tuple[str, tuple[str, str], int]]:
    return [(entry.kind, entry.obj.key, entry.line) for entry in parsed.entries]


SERVICE_A = """
    apiVersion: v1
    kind: Service
    metadata:
      name: a
      namespace: shop
    spec:
      clusterIP: 10.96.5.1
      ports:
      - name: http
        port: 80
"""


def test_multi_document_yaml_yields_every_object_with_its_starting_line():
    """Each document of a multi-document file is read, located at the line its object starts."""
    parsed = parse_manifest("/m/all.yaml", text("""
        # leading comment
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: p
          namespace: shop
        status:
          podIP: 10.244.0.9
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: a-x
          namespace: shop
          labels:
            kubernetes.io/service-name: a
        addressType: IPv4
        endpoints:
        - addresses: [10.244.0.9]
    """))
    assert parsed.errors == ()
    assert lines_of(parsed) == [
        ("Namespace", ("", "shop"), 2),
        ("Pod", ("shop", "p"), 7),
        ("EndpointSlice", ("shop", "a-x"), 15),
    ]
    assert parsed.entries[1].obj == Pod("shop", "p", ips=("10.244.0.9",))


def test_a_service_keeps_the_fields_the_manifest_gives():
    """A Service document becomes the Service value the converter defines."""
    parsed = parse_manifest("/m/a.yaml", text(SERVICE_A))
    assert [entry.obj for entry in parsed.entries] == [
        Service("shop", "a", cluster_ips=("10.96.5.1",), ip_families=("IPv4",),
                ports=(ServicePort("http", "TCP", 80),))
    ]


def test_an_object_without_a_namespace_goes_to_default():
    """As kubectl apply does, an object that names no namespace lives in default."""
    parsed = parse_manifest("/m/a.yaml", text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: plain
    """))
    assert lines_of(parsed) == [("Service", ("default", "plain"), 1)]


def test_empty_documents_and_comment_only_files_hold_nothing():
    """Stray separators and comments are no objects and no errors."""
    assert parse_manifest("/m/empty.yaml", b"").entries == ()
    parsed = parse_manifest("/m/c.yaml", text("""
        # nothing here yet
        ---
        ---
    """))
    assert (parsed.entries, parsed.errors, parsed.readable) == ((), (), True)


def test_a_v1_list_yields_its_items_at_their_own_lines():
    """A `kind: List` (kubectl get -o yaml) holds objects that name their own kind."""
    parsed = parse_manifest("/m/list.yaml", text("""
        apiVersion: v1
        kind: List
        metadata:
          resourceVersion: ""
        items:
        - apiVersion: v1
          kind: Namespace
          metadata:
            name: prod
        - apiVersion: v1
          kind: Service
          metadata:
            name: s
            namespace: prod
    """))
    assert parsed.errors == ()
    assert lines_of(parsed) == [("Namespace", ("", "prod"), 6), ("Service", ("prod", "s"), 10)]


def test_the_items_of_a_typed_list_take_the_kind_of_the_list():
    """A ServiceList as the API returns it has items without kind or apiVersion."""
    parsed = parse_manifest("/m/services.yaml", text("""
        apiVersion: v1
        kind: ServiceList
        items:
        - metadata:
            name: one
        - metadata:
            name: two
    """))
    assert parsed.errors == ()
    assert lines_of(parsed) == [("Service", ("default", "one"), 4), ("Service", ("default", "two"), 6)]


def test_a_json_file_is_read_as_json_with_lines():
    """A .json file (kubectl get -o json) is read, and its objects are located by line."""
    document = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j", "namespace": "n"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
        ],
    }
    data = json.dumps(document, indent=4).encode()
    expected_lines = [
        i + 1 for i, line in enumerate(data.decode().splitlines()) if line == "        {"
    ]
    parsed = parse_manifest("/m/objects.json", data)
    assert parsed.errors == ()
    assert lines_of(parsed) == [
        ("Service", ("n", "j"), expected_lines[0]),
        ("Namespace", ("", "n"), expected_lines[1]),
    ]


def test_a_json_syntax_error_names_its_line():
    """Broken JSON is reported at the line json finds the fault, and the file is unreadable."""
    parsed = parse_manifest("/m/bad.json", b'{\n  "apiVersion": "v1",\n  "kind" "Service"\n}\n')
    assert not parsed.readable
    assert [(p.line, p.message.startswith("invalid JSON")) for p in parsed.errors] == [(3, True)]
    assert str(parsed.errors[0]).startswith("/m/bad.json:3: ")


def test_legacy_endpoints_become_slices_of_their_service():
    """A v1 Endpoints is accepted and converted into EndpointSlices, ready and not ready."""
    parsed = parse_manifest("/m/ep.yaml", text("""
        apiVersion: v1
        kind: Endpoints
        metadata:
          name: redis
          namespace: cache
        subsets:
        - addresses:
          - ip: 192.0.2.1
          notReadyAddresses:
          - ip: 192.0.2.2
          ports:
          - name: redis
            port: 6379
    """))
    assert parsed.errors == ()
    (entry,) = parsed.entries
    assert entry.kind == "EndpointSlice"
    assert entry.origin == ("Endpoints", "cache", "redis")
    slice_ = entry.obj
    assert isinstance(slice_, EndpointSlice)
    assert (slice_.namespace, slice_.service_name, slice_.address_type) == ("cache", "redis", "IPv4")
    assert [(e.addresses, e.ready) for e in slice_.endpoints] == [(("192.0.2.1",), True), (("192.0.2.2",), False)]


def test_kinds_the_cache_does_not_hold_are_ignored_without_error():
    """Deployments, ConfigMaps and a Knative Service are noted as ignored, not as errors."""
    parsed = parse_manifest("/m/app.yaml", text("""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: app
          namespace: apps
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings
        ---
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          name: hello
    """))
    assert (parsed.entries, parsed.errors) == ((), ())
    assert [problem.line for problem in parsed.ignored] == [1, 7, 12]


def test_every_namespace_named_in_the_file_is_collected():
    """Objects of any kind, ignored ones too, show which namespaces exist."""
    parsed = parse_manifest("/m/app.yaml", text("""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: app
          namespace: apps
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: s
          namespace: shop
    """))
    assert parsed.namespaces == {"apps", "shop"}


def test_a_v1beta1_endpoint_slice_is_an_error():
    """discovery.k8s.io/v1beta1 is no longer served, so such a slice is reported, not ignored."""
    parsed = parse_manifest("/m/old.yaml", text("""
        apiVersion: discovery.k8s.io/v1beta1
        kind: EndpointSlice
        metadata:
          name: old
        addressType: IPv4
    """))
    assert parsed.entries == ()
    assert [(p.line, "discovery.k8s.io/v1" in p.message) for p in parsed.errors] == [(1, True)]


def test_documents_that_are_not_objects_are_reported_at_their_line():
    """A scalar document or an object without kind or apiVersion is an error naming its line."""
    parsed = parse_manifest("/m/junk.yaml", text("""
        just a string
        ---
        apiVersion: v1
        metadata:
          name: x
        ---
        kind: Service
        metadata:
          name: y
    """))
    assert parsed.entries == ()
    assert [p.line for p in parsed.errors] == [1, 3, 7]


def test_a_yaml_syntax_error_names_its_line_and_keeps_the_previous_objects():
    """Unparsable YAML makes the file unreadable, and it keeps what its previous parse held."""
    previous = parse_manifest("/m/a.yaml", text(SERVICE_A))
    broken = text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: a
         namespace: shop
    """)
    parsed = parse_manifest("/m/a.yaml", broken, previous)
    assert not parsed.readable
    assert [p.line for p in parsed.errors] == [5]
    assert str(parsed.errors[0]).startswith("/m/a.yaml:5: ")
    assert parsed.entries == previous.entries


def test_a_yaml_syntax_error_without_a_previous_parse_holds_nothing():
    """A file broken from the start contributes no objects."""
    parsed = parse_manifest("/m/a.yaml", b"key: [unclosed\n")
    assert (parsed.entries, parsed.readable, len(parsed.errors)) == ((), False, 1)


def test_text_that_is_not_utf8_is_reported_at_its_line():
    """Bytes that are no UTF-8 make the file unreadable, naming the line they are on."""
    parsed = parse_manifest("/m/latin1.yaml", b"apiVersion: v1\nkind: Service\n# caf\xe9\n")
    assert not parsed.readable
    assert [p.line for p in parsed.errors] == [3]


def test_a_rejected_object_is_named_with_its_line_and_skipped():
    """An object the converter rejects is reported as path:line: Kind ns/name: reason."""
    parsed = parse_manifest("/m/two.yaml", text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: good
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: bad
          namespace: shop
        spec:
          clusterIP: 10.96.0.300
    """))
    assert [entry.obj.name for entry in parsed.entries] == ["good"]
    (problem,) = parsed.errors
    assert str(problem).startswith("/m/two.yaml:6: Service shop/bad: ")
    assert "10.96.0.300" in problem.message
    assert parsed.readable


def test_a_rejected_object_keeps_its_previous_version():
    """When an object that was good turns bad, its version from the previous parse stays."""
    previous = parse_manifest("/m/a.yaml", text(SERVICE_A))
    parsed = parse_manifest("/m/a.yaml", text(SERVICE_A.replace("10.96.5.1", "not-an-ip")), previous)
    assert [entry.obj for entry in parsed.entries] == [entry.obj for entry in previous.entries]
    assert "previous version" in parsed.errors[0].message


def test_an_object_without_a_name_is_rejected():
    """metadata.name is required; the object is skipped with a reason naming it."""
    parsed = parse_manifest("/m/a.yaml", text("""
        apiVersion: v1
        kind: Pod
        metadata:
          namespace: x
    """))
    assert parsed.entries == ()
    assert "metadata.name" in parsed.errors[0].message


def test_an_unknown_address_type_is_rejected():
    """An EndpointSlice whose addressType the API does not know is skipped."""
    parsed = parse_manifest("/m/a.yaml", text("""
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: s
        addressType: IPv5
    """))
    assert parsed.entries == ()
    assert str(parsed.errors[0]).startswith("/m/a.yaml:1: EndpointSlice default/s: addressType")


def test_an_unknown_ip_family_policy_is_rejected():
    """spec.ipFamilyPolicy must be one the API server knows."""
    parsed = parse_manifest("/m/a.yaml", text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: s
        spec:
          ipFamilyPolicy: BothPlease
    """))
    assert parsed.entries == ()
    assert "ipFamilyPolicy" in parsed.errors[0].message


def test_a_service_records_its_ip_family_policy():
    """The policy decides how many cluster IPs are allocated, so it travels with the Service."""
    parsed = parse_manifest("/m/a.yaml", text("""
        apiVersion: v1
        kind: Service
        metadata:
          name: s
        spec:
          ipFamilyPolicy: PreferDualStack
    """))
    assert [entry.ip_family_policy for entry in parsed.entries] == ["PreferDualStack"]


def test_a_namespace_keeps_its_labels():
    """A Namespace document keeps its labels (namespace_labels filters on them)."""
    parsed = parse_manifest("/m/ns.yaml", text("""
        apiVersion: v1
        kind: Namespace
        metadata:
          name: prod
          labels:
            team: a
    """))
    assert [entry.obj for entry in parsed.entries] == [Namespace("prod", (("team", "a"),))]


def test_endpoint_conditions_follow_the_discovery_api():
    """A slice endpoint without conditions is ready, as discovery.k8s.io/v1 says."""
    parsed = parse_manifest("/m/s.yaml", text("""
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: s-1
        addressType: IPv6
        endpoints:
        - addresses: ["fd00::1"]
    """))
    assert parsed.entries[0].obj.endpoints == (Endpoint(("fd00::1",)),)


def test_a_list_inside_a_list_is_an_error():
    """List items are objects, as kubectl reads them; a nested List is reported, even one made by an alias."""
    nested = parse_manifest("/m/nested.yaml", text("""
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: List
          items: []
    """))
    assert [p.line for p in nested.errors] == [4]
    looped = parse_manifest("/m/loop.yaml", b"&list {apiVersion: v1, kind: List, items: [*list]}\n")
    assert (looped.entries, len(looped.errors)) == ((), 1)


def test_absurdly_deep_nesting_is_an_error_not_a_crash():
    """A document nested thousands deep makes the file unreadable instead of raising."""
    for path in ("/m/deep.json", "/m/deep.yaml"):
        parsed = parse_manifest(path, b"[" * 5000 + b"]" * 5000)
        assert (parsed.entries, parsed.readable, len(parsed.errors)) == ((), False, 1)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1, 70000) | st.sampled_from(["", "a", "10.0.0.1", "None", "TCP", "IPv4"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "namespace", "labels", "ports", "port", "clusterIP", "clusterIPs",
                         "addresses", "ip", "type", "ipFamilyPolicy", "ipFamilies", "podIP", "items"]),
        children, max_size=4,
    ),
    max_leaves=12,
)
_KINDS = [("v1", "Service"), ("discovery.k8s.io/v1", "EndpointSlice"), ("v1", "Endpoints"),
          ("v1", "Pod"), ("v1", "Namespace"), ("v1", "List"), ("v1", "ServiceList")]


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(_KINDS),
    body=st.dictionaries(
        st.sampled_from(["metadata", "spec", "status", "subsets", "endpoints", "addressType", "ports", "items"]),
        _JSON_VALUES, max_size=5,
    ),
)
def test_any_object_is_read_or_reported_never_raised(kind, body):
    """Whatever a well-formed document holds, parsing and merging yield objects or problems, never an exception."""
    document = {"apiVersion": kind[0], "kind": kind[1], **body}
    parsed = parse_manifest("/m/any.json", json.dumps(document).encode())
    assert parsed.readable
    dual_stack = SourceConfig(manifests="/m", watch_pods=True, service_cidrs=("10.0.0.0/29", "fd00::/125"))
    merge([parsed], dual_stack)
