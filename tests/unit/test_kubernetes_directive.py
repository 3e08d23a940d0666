"""Specification of the `kubernetes` directive.

The rows marked "coredns" restate CoreDNS's plugin/kubernetes/setup_test.go
(the same Corefile text, the same verdict); the others cover Wayfinder's
additions (`manifests`, `service_cidr`) and the rules around them.
"""

import os

import pytest

from discovery.cache.config import DEFAULT_SERVICE_CIDRS, SourceConfig
from discovery.dns.kubernetes_setup import KubernetesConfig
from discovery.cache.selectors import LabelSelector
from discovery.config import load, load_text
from discovery.corefile import CorefileError
from discovery.zones import Fallthrough


def kubernetes(body, keys=".:53", file="Corefile"):
    """The KubernetesConfig of `body` (directive lines) inside a server block with these keys."""
    config = load_text(f"{keys} {{\n{body}\n}}\n", file=file, environ={})
    return config.servers[0].plugin("kubernetes")


def kubernetes_error(body, keys=".:53"):
    with pytest.raises(CorefileError) as caught:
        kubernetes(body, keys)
    return caught.value


def summary(config):
    return {
        "zones": config.zones,
        "namespaces": config.namespaces,
        "labels": config.source.labels.to_text() if config.source.labels else None,
        "namespace_labels": config.source.namespace_labels.to_text() if config.source.namespace_labels else None,
        "pods": config.pods,
        "fallthrough": config.fallthrough,
        "startup_timeout": config.startup_timeout,
        "endpoint": config.source.endpoint,
        "kubeconfig": (config.source.kubeconfig, config.source.context),
    }


DEFAULTS = {
    "zones": ("coredns.local.",),
    "namespaces": (),
    "labels": None,
    "namespace_labels": None,
    "pods": "disabled",
    "fallthrough": Fallthrough(),
    "startup_timeout": 5.0,
    "endpoint": None,
    "kubeconfig": (None, None),
}


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param("kubernetes coredns.local", {}, id="coredns-one-zone"),
        pytest.param("kubernetes coredns.local test.local", {"zones": ("coredns.local.", "test.local.")},
                     id="coredns-two-zones"),
        pytest.param("kubernetes coredns.local {\n}", {}, id="coredns-empty-block"),
        pytest.param("kubernetes coredns.local {\n\tendpoint http://localhost:9090 http://localhost:9091\n}",
                     {"endpoint": "http://localhost:9090"}, id="coredns-several-endpoints-first-used"),
        pytest.param("kubernetes coredns.local {\n\tnamespaces demo\n}", {"namespaces": ("demo",)},
                     id="coredns-one-namespace"),
        pytest.param("kubernetes coredns.local {\n\tnamespaces demo test\n}", {"namespaces": ("demo", "test")},
                     id="coredns-two-namespaces"),
        pytest.param("kubernetes coredns.local {\n    labels environment=prod\n}", {"labels": "environment=prod"},
                     id="coredns-labels"),
        pytest.param(
            "kubernetes coredns.local {\n    labels environment in (production, staging, qa),application=nginx\n}",
            {"labels": "application=nginx,environment in (production,qa,staging)"},
            id="coredns-labels-set-based",
        ),
        pytest.param("kubernetes coredns.local {\n    namespace_labels istio-injection=enabled\n}",
                     {"namespace_labels": "istio-injection=enabled"}, id="coredns-namespace-labels"),
        pytest.param(
            "kubernetes coredns.local test.local {\n\tendpoint http://localhost:8080\n\tnamespaces demo test\n"
            "    labels environment in (production, staging, qa),application=nginx\n    fallthrough\n}",
            {
                "zones": ("coredns.local.", "test.local."),
                "endpoint": "http://localhost:8080",
                "namespaces": ("demo", "test"),
                "labels": "application=nginx,environment in (production,qa,staging)",
                "fallthrough": Fallthrough(True, ()),
            },
            id="coredns-combined",
        ),
        pytest.param("kubernetes coredns.local {\n\tpods disabled\n}", {"pods": "disabled"}, id="coredns-pods-disabled"),
        pytest.param("kubernetes coredns.local {\n\tpods insecure\n}", {"pods": "insecure"}, id="coredns-pods-insecure"),
        pytest.param("kubernetes coredns.local {\n\tpods verified\n}", {"pods": "verified"}, id="coredns-pods-verified"),
        pytest.param("kubernetes coredns.local {\n\tfallthrough ip6.arpa inaddr.arpa foo.com\n}",
                     {"fallthrough": Fallthrough(True, ("ip6.arpa.", "inaddr.arpa.", "foo.com."))},
                     id="coredns-fallthrough-with-zones"),
        pytest.param("kubernetes coredns.local {\n\tkubeconfig file\n}", {"kubeconfig": ("file", None)},
                     id="coredns-kubeconfig"),
        pytest.param("kubernetes coredns.local {\n\tkubeconfig file context\n}", {"kubeconfig": ("file", "context")},
                     id="coredns-kubeconfig-with-context"),
        pytest.param("kubernetes coredns.local {\n        kubeconfig file context\n        startup_timeout 1s\n}",
                     {"kubeconfig": ("file", "context"), "startup_timeout": 1.0}, id="coredns-startup-timeout"),
    ],
)
def test_valid_stanzas(body, expected):
    """Stanzas CoreDNS accepts give the same zones, namespaces, selectors, pod mode, fallthrough and timeout."""
    assert summary(kubernetes(body)) == {**DEFAULTS, **expected}


@pytest.mark.parametrize(
    "body, line, message",
    [
        pytest.param("kubernetes coredns.local {\n    endpoint\n}", 3, "endpoint: expected at least 1 argument",
                     id="coredns-endpoint-without-url"),
        pytest.param("kubernetes coredns.local {\n\tnamespaces\n}", 3, "namespaces: expected at least 1 argument",
                     id="coredns-namespaces-without-names"),
        pytest.param("kubernetes coredns.local {\n    labels\n}", 3, "labels: expected at least 1 argument",
                     id="coredns-labels-without-expression"),
        pytest.param("kubernetes coredns.local {\n    labels environment in (production, qa\n}", 3, "labels:",
                     id="coredns-labels-unparsable"),
        pytest.param("kubernetes coredns.local {\n    namespace_labels a in (b\n}", 3, "namespace_labels:",
                     id="namespace-labels-unparsable"),
        pytest.param("kubernetes coredns.local {\n    namespaces foo bar\n    namespace_labels istio-injection=enabled\n}",
                     4, "namespaces and namespace_labels cannot both be set", id="coredns-namespaces-and-namespace-labels"),
        pytest.param("kubernetes coredns.local {\n\tpods giant_seed\n}", 3, "pods: 'giant_seed' must be one of",
                     id="coredns-pods-unknown-mode"),
        pytest.param("kubernetes coredns.local {\n\tpods\n}", 3, "pods: expected 1 argument", id="pods-without-mode"),
        pytest.param("kubernetes coredns.local {\n\tpods insecure verified\n}", 3, "pods: expected 1 argument",
                     id="pods-with-two-modes"),
        pytest.param("kubernetes coredns.local\nkubernetes cluster.local", 3,
                     "kubernetes: this directive can only appear once per server block", id="coredns-twice-in-a-block"),
        pytest.param("kubernetes coredns.local {\n\tkubeconfig\n}", 3, "kubeconfig: expected 1 to 2 arguments",
                     id="coredns-kubeconfig-without-file"),
        pytest.param("kubernetes coredns.local {\n\tkubeconfig file context extraarg\n}", 3,
                     "kubeconfig: expected 1 to 2 arguments", id="coredns-kubeconfig-extra-argument"),
        pytest.param("kubernetes coredns.local {\n\tendpoint_pod_names giant_seed\n}", 3,
                     "endpoint_pod_names: expected 0 arguments", id="coredns-endpoint-pod-names-with-argument"),
        pytest.param("kubernetes coredns.local {\n\tnoendpoints ixnay on the endpointsay\n}", 3,
                     "noendpoints: expected 0 arguments", id="coredns-noendpoints-with-arguments"),
        pytest.param("kubernetes coredns.local {\n\tignore ixnay on the endpointsay\n}", 3,
                     "ignore: 'ixnay' is not supported", id="coredns-ignore-unknown"),
        pytest.param("kubernetes coredns.local {\n\tignore\n}", 3, "ignore: expected at least 1 argument",
                     id="ignore-without-argument"),
        pytest.param("kubernetes coredns.local {\n\ttls cert key\n}", 3, "tls: expected 3 arguments",
                     id="tls-needs-cert-key-and-ca"),
        pytest.param("kubernetes coredns.local {\n\tttl\n}", 3, "ttl: expected 1 argument", id="ttl-without-value"),
        pytest.param("kubernetes coredns.local {\n\tttl abc\n}", 3, "ttl: 'abc' is not a number", id="ttl-not-a-number"),
        pytest.param("kubernetes coredns.local {\n\tttl -1\n}", 3, "ttl must be in range [0, 3600]: -1",
                     id="ttl-negative"),
        pytest.param("kubernetes coredns.local {\n\tttl 3601\n}", 3, "ttl must be in range [0, 3600]: 3601",
                     id="ttl-above-an-hour"),
        pytest.param("kubernetes coredns.local {\n\tstartup_timeout\n}", 3, "startup_timeout: expected 1 argument",
                     id="startup-timeout-without-value"),
        pytest.param("kubernetes coredns.local {\n\tstartup_timeout 5\n}", 3, "startup_timeout: invalid duration '5'",
                     id="startup-timeout-without-unit"),
        pytest.param("kubernetes coredns.local {\n\tstartup_timeout -1s\n}", 3, "startup_timeout must not be negative",
                     id="startup-timeout-negative"),
        pytest.param("kubernetes coredns.local {\n\tnosuch option\n}", 3, "kubernetes: unknown property 'nosuch'",
                     id="unknown-property"),
        pytest.param("kubernetes coredns.local {\n\tmulticluster clusterset.local\n}", 3,
                     "kubernetes: unknown property 'multicluster'", id="coredns-option-wayfinder-lacks"),
        pytest.param("kubernetes coredns.local {\n\tpods insecure {\n\t}\n}", 3, "pods: takes no block",
                     id="option-with-a-block"),
        pytest.param("kubernetes coredns.local {\n\tttl 30\n\tttl 60\n}", 4, "kubernetes: option 'ttl' is given twice",
                     id="option-given-twice"),
        pytest.param("kubernetes in-addr.arpa ip6.arpa", 2, "at least one zone must be a forward (non-reverse) zone",
                     id="coredns-only-reverse-zones"),
        pytest.param("kubernetes 10.0.0.0/24", 2, "at least one zone must be a forward (non-reverse) zone",
                     id="only-a-cidr"),
        pytest.param("kubernetes cluster.local 10.0.0.0/33", 2, "kubernetes: '10.0.0.0/33' is not a zone or a CIDR",
                     id="bad-cidr"),
        pytest.param("kubernetes cluster.local {\n\tfallthrough 10.0.0.0/99\n}", 3,
                     "fallthrough: '10.0.0.0/99' is not a zone or a CIDR", id="fallthrough-bad-cidr"),
    ],
)
def test_invalid_stanzas_fail_at_the_option(body, line, message):
    """A stanza CoreDNS refuses, or one that breaks Wayfinder's rules, fails at the offending line."""
    error = kubernetes_error(body)
    assert (error.file, error.line) == ("Corefile", line)
    assert message in error.message


# --- zones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, body, zones",
    [
        pytest.param("cluster.local:53", "kubernetes", ("cluster.local.",), id="from-the-block-key"),
        pytest.param("cluster.local in-addr.arpa ip6.arpa", "kubernetes",
                     ("cluster.local.", "in-addr.arpa.", "ip6.arpa."), id="from-several-keys"),
        pytest.param(".:53", "kubernetes cluster.local in-addr.arpa ip6.arpa",
                     ("cluster.local.", "in-addr.arpa.", "ip6.arpa."), id="kubeadm-arguments"),
        pytest.param("example.org", "kubernetes Cluster.LOCAL.", ("cluster.local.",), id="arguments-normalised"),
        pytest.param(".:53", "kubernetes cluster.local 10.0.0.0/24 fd00::/120",
                     # fd00::/120 is 30 nibbles: f, d and 28 zeros, reversed.
                     ("cluster.local.", "0.0.10.in-addr.arpa.", "0." * 28 + "d.f.ip6.arpa."),
                     id="cidr-arguments-are-reverse-zones"),
        pytest.param(".:53", "kubernetes cluster.local 10.0.0.0/23",
                     ("cluster.local.", "0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."), id="cidr-split-at-octet"),
        pytest.param("10.0.0.0/8 cluster.local", "kubernetes", ("10.in-addr.arpa.", "cluster.local."),
                     id="cidr-key"),
    ],
)
def test_zones_come_from_arguments_or_else_the_block(keys, body, zones):
    """Arguments name the zones; without them the block's keys do (plugin.OriginsFromArgsOrServerBlock)."""
    assert kubernetes(body, keys=keys).zones == zones


def test_primary_zone_is_the_first_forward_zone():
    """The primary zone, where PTR targets live, is the first zone that is not a reverse zone."""
    assert kubernetes("kubernetes in-addr.arpa cluster.local example.org").primary_zone == "cluster.local."


@pytest.mark.parametrize(
    "line, fallthrough",
    [
        pytest.param(None, Fallthrough(), id="absent-is-off"),
        pytest.param("fallthrough", Fallthrough(True, ()), id="bare-is-every-zone"),
        pytest.param("fallthrough in-addr.arpa ip6.arpa", Fallthrough(True, ("in-addr.arpa.", "ip6.arpa.")),
                     id="kubeadm-reverse-zones"),
        pytest.param("fallthrough 10.0.0.0/8", Fallthrough(True, ("10.in-addr.arpa.",)), id="cidr-is-a-reverse-zone"),
    ],
)
def test_fallthrough(line, fallthrough):
    """fallthrough is off unless given; bare, it covers every zone; with zones, only those."""
    body = "kubernetes cluster.local" + (f" {{\n {line}\n}}" if line else "")
    assert kubernetes(body).fallthrough == fallthrough


def test_fallthrough_may_be_repeated_and_the_last_wins():
    """As in CoreDNS, a later fallthrough line replaces an earlier one."""
    config = kubernetes("kubernetes cluster.local {\n fallthrough a.org\n fallthrough b.org\n}")
    assert config.fallthrough == Fallthrough(True, ("b.org.",))


# --- simple options ----------------------------------------------------------------------------------


def test_defaults():
    """A bare directive watches Services and EndpointSlices in-cluster, answers with TTL 5, no pods."""
    config = kubernetes("kubernetes cluster.local")
    assert (config.pods, config.ttl, config.endpoint_pod_names, config.noendpoints, config.ignore_empty_service) == (
        "disabled", 5, False, False, False)
    assert config.source == SourceConfig()
    assert (config.source.describe(), config.source.watch_endpoints, config.source.watch_pods) == (
        "in-cluster API", True, False)
    assert config.source.service_cidrs == DEFAULT_SERVICE_CIDRS == ("10.96.0.0/12",)


def test_endpoint_pod_names():
    """endpoint_pod_names turns on naming endpoints after their Pods (coredns setup_test)."""
    assert kubernetes("kubernetes coredns.local {\n\tendpoint_pod_names\n}").endpoint_pod_names is True


def test_noendpoints_stops_watching_endpoint_slices():
    """noendpoints means the EndpointSlice cache is never started (coredns setup_test: initEndpointsCache false)."""
    config = kubernetes("kubernetes coredns.local {\n\tnoendpoints\n}")
    assert (config.noendpoints, config.source.watch_endpoints) == (True, False)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("ignore empty_service", id="coredns-plain"),
        pytest.param("ignore empty_service ixnay on the endpointsay", id="coredns-extra-words-ignored"),
    ],
)
def test_ignore_empty_service(line):
    """ignore empty_service is read from the first argument, as CoreDNS reads it."""
    assert kubernetes(f"kubernetes coredns.local {{\n\t{line}\n}}").ignore_empty_service is True


@pytest.mark.parametrize("value, ttl", [("0", 0), ("30", 30), ("3600", 3600)])
def test_ttl_range(value, ttl):
    """ttl takes whole seconds from 0 to 3600."""
    assert kubernetes(f"kubernetes cluster.local {{\n ttl {value}\n}}").ttl == ttl


@pytest.mark.parametrize("value, seconds", [("1s", 1.0), ("1m30s", 90.0), ("500ms", 0.5), ("0", 0.0)])
def test_startup_timeout_is_a_go_duration(value, seconds):
    """startup_timeout reads a Go duration into seconds."""
    assert kubernetes(f"kubernetes cluster.local {{\n startup_timeout {value}\n}}").startup_timeout == seconds


def test_tls_files():
    """tls names the client certificate, key and CA, in that order."""
    tls = kubernetes("kubernetes cluster.local {\n endpoint https://10.0.0.1:6443\n tls c.pem k.pem ca.pem\n}").source.tls
    assert (tls.cert, tls.key, tls.ca) == ("c.pem", "k.pem", "ca.pem")


@pytest.mark.parametrize(
    "pods, watch_pods",
    [
        pytest.param(None, False, id="absent"),
        pytest.param("disabled", False, id="disabled"),
        pytest.param("insecure", False, id="insecure-answers-without-pods"),
        pytest.param("verified", True, id="verified-needs-the-pod-cache"),
    ],
)
def test_pods_are_watched_only_when_verified(pods, watch_pods):
    """Only `pods verified` checks Pods, so only it makes the source watch them."""
    body = "kubernetes cluster.local" + (f" {{\n pods {pods}\n}}" if pods else "")
    assert kubernetes(body).source.watch_pods is watch_pods


def test_label_selectors_are_parsed():
    """labels and namespace_labels hold parsed selectors that match as the API would."""
    source = kubernetes("kubernetes cluster.local {\n labels app in (web, api)\n namespace_labels team=a\n}").source
    assert source.labels == LabelSelector.parse("app in (api,web)")
    assert source.labels.matches((("app", "web"),)) and not source.labels.matches((("app", "db"),))
    assert source.namespace_labels.matches((("team", "a"),))


# --- source modes, manifests and their conflicts ----------------------------------------------------------


@pytest.mark.parametrize(
    "options, source",
    [
        pytest.param("", "in-cluster API", id="in-cluster-by-default"),
        pytest.param("endpoint https://10.0.0.1:6443", "API https://10.0.0.1:6443", id="endpoint"),
        pytest.param("kubeconfig /root/.kube/config", "kubeconfig /root/.kube/config", id="kubeconfig"),
        pytest.param("manifests /srv/manifests", "manifests /srv/manifests", id="manifests"),
    ],
)
def test_source_is_the_in_cluster_api_unless_another_is_named(options, source):
    """The source is the in-cluster API unless endpoint, kubeconfig or manifests says otherwise."""
    assert kubernetes(f"kubernetes cluster.local {{\n {options}\n}}").source.describe() == source


def test_manifests_path_is_relative_to_the_corefile(tmp_path, monkeypatch):
    """A relative manifests folder is found next to the Corefile, whatever the working directory."""
    corefile = tmp_path / "etc" / "Corefile"
    corefile.parent.mkdir()
    corefile.write_text(".:53 {\n kubernetes cluster.local {\n  manifests examples\n }\n}\n")
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    source = load(str(corefile), environ={}).servers[0].plugin("kubernetes").source
    assert os.path.normpath(source.manifests) == str(tmp_path / "etc" / "examples")


def test_manifests_path_from_a_relative_corefile_name(tmp_path, monkeypatch):
    """A Corefile loaded by a relative name resolves manifests against the Corefile's folder."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "Corefile").write_text(".:53 {\n kubernetes cluster.local {\n  manifests ../manifests\n }\n}\n")
    monkeypatch.chdir(tmp_path)
    source = load(os.path.join("conf", "Corefile"), environ={}).servers[0].plugin("kubernetes").source
    assert os.path.normpath(source.manifests) == str(tmp_path / "manifests")


def test_absolute_manifests_path_is_kept():
    """An absolute manifests folder is used as written."""
    assert kubernetes("kubernetes cluster.local {\n manifests /srv/manifests\n}").source.manifests == "/srv/manifests"


@pytest.mark.parametrize(
    "options, line, message",
    [
        pytest.param("manifests /srv/m\n endpoint https://10.0.0.1", 4, "endpoint cannot be used with manifests",
                     id="manifests-and-endpoint"),
        pytest.param("kubeconfig /k\n manifests /srv/m", 3, "kubeconfig cannot be used with manifests",
                     id="manifests-and-kubeconfig"),
        pytest.param("manifests /srv/m\n tls c k ca", 4, "tls cannot be used with manifests", id="manifests-and-tls"),
        pytest.param("endpoint https://10.0.0.1\n kubeconfig /k", 4, "use either endpoint or kubeconfig",
                     id="endpoint-and-kubeconfig"),
        pytest.param("service_cidr 10.96.0.0/12", 3, "service_cidr only applies to manifests",
                     id="service-cidr-without-manifests"),
        pytest.param("namespace_labels a=b\n namespaces x", 3, "namespaces and namespace_labels cannot both be set",
                     id="namespace-labels-line-named-whatever-the-order"),
    ],
)
def test_conflicting_options_fail_at_the_conflicting_line(options, line, message):
    """Options that cannot work together fail, naming the line of the one that conflicts."""
    error = kubernetes_error(f"kubernetes cluster.local {{\n {options}\n}}")
    assert error.line == line
    assert message in error.message


@pytest.mark.parametrize(
    "cidrs, expected",
    [
        pytest.param("10.96.0.0/12", ("10.96.0.0/12",), id="ipv4"),
        pytest.param("10.96.0.0/12 fd00:10:96::/112", ("10.96.0.0/12", "fd00:10:96::/112"), id="dual-stack"),
        pytest.param("FD00:10:96::/112", ("fd00:10:96::/112",), id="canonical-form"),
    ],
)
def test_service_cidr_with_manifests(cidrs, expected):
    """service_cidr sets where the manifests source allocates cluster IPs."""
    config = kubernetes(f"kubernetes cluster.local {{\n manifests /srv/m\n service_cidr {cidrs}\n}}")
    assert config.source.service_cidrs == expected


@pytest.mark.parametrize(
    "cidrs, message",
    [
        pytest.param("", "service_cidr: expected 1 to 2 arguments", id="none"),
        pytest.param("10.96.0.0/12 fd00::/112 10.0.0.0/8", "service_cidr: expected 1 to 2 arguments", id="three"),
        pytest.param("10.96.0.1/12", "service_cidr: '10.96.0.1/12' is not a CIDR", id="host-bits-set"),
        pytest.param("cluster", "service_cidr: 'cluster' is not a CIDR", id="not-a-cidr"),
        pytest.param("10.96.0.0/12 10.0.0.0/8", "at most one IPv4 and one IPv6 range", id="two-ipv4-ranges"),
    ],
)
def test_service_cidr_errors(cidrs, message):
    """service_cidr takes one range per address family, written as a network."""
    error = kubernetes_error(f"kubernetes cluster.local {{\n manifests /srv/m\n service_cidr {cidrs}\n}}")
    assert error.line == 4
    assert message in error.message


def test_identical_sources_compare_equal():
    """Two blocks with the same source options hold equal, equally hashed SourceConfigs (one shared Store)."""
    text = (
        "a.org {\n kubernetes {\n  namespaces x\n  pods verified\n }\n}\n"
        "b.org {\n kubernetes {\n  pods verified\n  namespaces x\n  ttl 60\n }\n}\n"
    )
    first, second = (server.plugin("kubernetes") for server in load_text(text).servers)
    assert first.source == second.source and hash(first.source) == hash(second.source)
    assert first != second


def test_config_records_where_the_directive_stands():
    """The config keeps the directive's file and line for log lines."""
    config = kubernetes("\nkubernetes cluster.local", file="/etc/coredns/Corefile")
    assert isinstance(config, KubernetesConfig)
    assert (config.file, config.line) == ("/etc/coredns/Corefile", 3)
