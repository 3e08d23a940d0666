"""The `kubernetes` directive's setup: where the watch cache comes from and how the zone answers.

Syntax (CoreDNS's, plus `manifests` and `service_cidr`)::

    kubernetes [ZONES...] {
        endpoint URL
        tls CERT KEY CACERT
        kubeconfig KUBECONFIG [CONTEXT]
        manifests DIR {
            max_file_size BYTES
            max_file_objects COUNT
            max_alias_nodes COUNT
            stale_after DURATION
        }
        service_cidr CIDR [CIDR]
        namespaces NAMESPACE...
        labels EXPRESSION
        namespace_labels EXPRESSION
        pods disabled|insecure|verified
        endpoint_pod_names
        ttl TTL
        noendpoints
        fallthrough [ZONES...]
        ignore empty_service
        startup_timeout DURATION
    }

The source options (everything up to `namespace_labels`, plus whether Pods
and EndpointSlices are watched) form a `SourceConfig`. Server blocks whose
`kubernetes` directives share a SourceConfig share one watch cache (Store), so each
resource is listed and watched once per process.
"""

from __future__ import annotations

import ipaddress
import os
import re

import attrs

from ..cache.config import ManifestLimits, SourceConfig, TLSFiles
from ..cache.selectors import LabelSelector, SelectorError
from ..corefile import Directive, positive_duration
from ..zones import Fallthrough, is_reverse, zone_arguments

__all__ = ["KubernetesConfig", "setup_kubernetes", "POD_MODES"]

POD_MODES = ("disabled", "insecure", "verified")


@attrs.frozen
class KubernetesConfig:
    zones: tuple[str, ...]
    source: SourceConfig
    pods: str = "disabled"
    endpoint_pod_names: bool = False
    ttl: int = 5
    noendpoints: bool = False
    fallthrough: Fallthrough = Fallthrough()
    ignore_empty_service: bool = False
    startup_timeout: float = 5.0
    # Where the directive stands, for messages; not part of what it means, so
    # a reload that only moves the line keeps the running instance.
    file: str = attrs.field(default="", eq=False)
    line: int = attrs.field(default=0, eq=False)

    @property
    def primary_zone(self) -> str:
        """The first forward zone: PTR answers and NS names live in it."""
        return next(zone for zone in self.zones if not is_reverse(zone))

    @property
    def namespaces(self) -> tuple[str, ...]:
        return self.source.namespaces


def _only(option: Directive, count: int, usage: str) -> tuple[str, ...]:
    option.expect_args(count, count, usage)
    option.expect_no_block()
    return option.args


_SIZE_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 1000**2, "G": 1000**3}
_SIZE = re.compile(r"([0-9]+)(Ki|Mi|Gi|k|M|G)?\Z")


def _count(option: Directive, text: str, sizes: bool = False) -> int:
    match = _SIZE.match(text) if sizes else re.match(r"([0-9]+)()\Z", text)
    if not match:
        example = "a byte count like 16Mi or 1000000" if sizes else "a whole number"
        raise option.error(f"{option.name}: {text!r} is not {example}")
    value = int(match.group(1)) * _SIZE_UNITS[match.group(2) or ""]
    if value < 1:
        raise option.error(f"{option.name} must be at least 1")
    return value


def _manifest_limits(directive: Directive) -> ManifestLimits:
    """The block of `manifests DIR { ... }`: the source's limits."""
    limits: dict = {}
    seen: set[str] = set()
    for option in directive.block:
        name = option.name
        if name in seen:
            raise option.error(f"manifests: option {name!r} is given twice")
        seen.add(name)
        (text,) = _only(option, 1, f"{name} VALUE")
        if name == "max_file_size":
            limits["max_file_bytes"] = _count(option, text, sizes=True)
        elif name in ("max_file_objects", "max_alias_nodes"):
            limits[name] = _count(option, text)
        elif name == "stale_after":
            limits[name] = positive_duration(option, text, "stale_after")
        else:
            raise option.error(
                f"manifests: unknown property {name!r} "
                "(expected max_file_size, max_file_objects, max_alias_nodes or stale_after)"
            )
    return ManifestLimits(**limits)


def setup_kubernetes(directive: Directive, ctx) -> KubernetesConfig:
    """Parse a `kubernetes` directive. Raises CorefileError naming file:line."""
    zones = zone_arguments(directive, directive.args) or ctx.zones
    if all(is_reverse(zone) for zone in zones):
        raise directive.error("kubernetes: at least one zone must be a forward (non-reverse) zone")
    base = os.path.dirname(os.path.abspath(directive.file)) if directive.file else os.getcwd()
    source: dict = {}
    options: dict = {}
    seen: dict[str, Directive] = {}
    for option in directive.block:
        name = option.name
        if name in seen and name != "fallthrough":
            raise option.error(f"kubernetes: option {name!r} is given twice")
        seen[name] = option
        if name == "endpoint":
            option.expect_args(1, usage="endpoint URL")
            option.expect_no_block()
            source["endpoint"] = option.args[0]
        elif name == "tls":
            source["tls"] = TLSFiles(*_only(option, 3, "tls CERT KEY CACERT"))
        elif name == "kubeconfig":
            option.expect_args(1, 2, "kubeconfig KUBECONFIG [CONTEXT]")
            option.expect_no_block()
            source["kubeconfig"] = option.args[0]
            source["context"] = option.args[1] if len(option.args) == 2 else None
        elif name == "manifests":
            option.expect_args(1, 1, "manifests DIR { max_file_size BYTES; max_file_objects COUNT; ... }")
            folder = option.args[0]
            source["manifests"] = folder if os.path.isabs(folder) else os.path.join(base, folder)
            source["manifest_limits"] = _manifest_limits(option)
        elif name == "service_cidr":
            option.expect_args(1, 2, "service_cidr CIDR [CIDR]")
            option.expect_no_block()
            cidrs = []
            for arg in option.args:
                try:
                    cidrs.append(str(ipaddress.ip_network(arg, strict=True)))
                except ValueError:
                    raise option.error(f"service_cidr: {arg!r} is not a CIDR like 10.96.0.0/12") from None
            if len({ipaddress.ip_network(c).version for c in cidrs}) != len(cidrs):
                raise option.error("service_cidr: give at most one IPv4 and one IPv6 range")
            source["service_cidrs"] = tuple(cidrs)
        elif name == "namespaces":
            option.expect_args(1, usage="namespaces NAMESPACE...")
            option.expect_no_block()
            source["namespaces"] = tuple(option.args)
        elif name in ("labels", "namespace_labels"):
            option.expect_args(1, usage=f"{name} EXPRESSION")
            option.expect_no_block()
            try:
                source[name] = LabelSelector.parse(" ".join(option.args))
            except SelectorError as e:
                raise option.error(f"{name}: {e}") from None
        elif name == "pods":
            (mode,) = _only(option, 1, "pods disabled|insecure|verified")
            if mode not in POD_MODES:
                raise option.error(f"pods: {mode!r} must be one of disabled, insecure, verified")
            options["pods"] = mode
        elif name == "endpoint_pod_names":
            _only(option, 0, "endpoint_pod_names")
            options["endpoint_pod_names"] = True
        elif name == "ttl":
            (text,) = _only(option, 1, "ttl SECONDS")
            try:
                ttl = int(text)
            except ValueError:
                raise option.error(f"ttl: {text!r} is not a number") from None
            if not 0 <= ttl <= 3600:
                raise option.error(f"ttl must be in range [0, 3600]: {ttl}")
            options["ttl"] = ttl
        elif name == "noendpoints":
            _only(option, 0, "noendpoints")
            options["noendpoints"] = True
            source["watch_endpoints"] = False
        elif name == "fallthrough":
            option.expect_no_block()
            options["fallthrough"] = Fallthrough.from_args(zone_arguments(option, option.args))
        elif name == "ignore":
            # CoreDNS reads the first argument only (setup_test.go accepts
            # "ignore empty_service" followed by more words).
            option.expect_args(1, usage="ignore empty_service")
            option.expect_no_block()
            what = option.args[0]
            if what != "empty_service":
                raise option.error(f"ignore: {what!r} is not supported (expected empty_service)")
            options["ignore_empty_service"] = True
        elif name == "startup_timeout":
            (text,) = _only(option, 1, "startup_timeout DURATION")
            timeout = option.duration(text, "startup_timeout")
            if timeout < 0:
                raise option.error("startup_timeout must not be negative")
            options["startup_timeout"] = timeout
        else:
            raise option.error(f"kubernetes: unknown property {name!r}")

    if "manifests" in source:
        for conflicting in ("endpoint", "kubeconfig", "tls"):
            if conflicting in source:
                raise seen[conflicting].error(f"kubernetes: {conflicting} cannot be used with manifests")
    elif "service_cidr" in seen:
        raise seen["service_cidr"].error("kubernetes: service_cidr only applies to manifests")
    if "endpoint" in source and "kubeconfig" in source:
        raise seen["kubeconfig"].error("kubernetes: use either endpoint or kubeconfig, not both")
    if "namespaces" in source and "namespace_labels" in source:
        raise seen["namespace_labels"].error("kubernetes: namespaces and namespace_labels cannot both be set")
    source["watch_pods"] = options.get("pods") == "verified"
    return KubernetesConfig(
        zones=zones,
        source=SourceConfig(**source),
        file=directive.file,
        line=directive.line,
        **options,
    )
