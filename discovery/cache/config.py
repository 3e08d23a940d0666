"""The watch cache's source: where its objects come from and which of them it keeps.

A `SourceConfig` is made by the `kubernetes` directive's setup
(`discovery/dns/kubernetes_setup.py`) from its source options. Server blocks
whose `kubernetes` directives share a SourceConfig share one Store, so each
resource is listed and watched once per process.
"""

from __future__ import annotations

import attrs

from .selectors import LabelSelector

__all__ = ["SourceConfig", "ManifestLimits", "TLSFiles", "DEFAULT_SERVICE_CIDRS"]

#: kubeadm's default --service-cluster-ip-range.
DEFAULT_SERVICE_CIDRS = ("10.96.0.0/12",)


@attrs.frozen
class TLSFiles:
    cert: str
    key: str
    ca: str


@attrs.frozen
class ManifestLimits:
    """What one manifest file may hold, and how long the manifests source may fall behind.

    A file over a limit is skipped whole (its previous objects keep
    serving), with one log line naming it.
    """

    #: Bytes per file: 16 MiB holds about 60,000 Services as written by
    #: `kubectl get -o yaml`, while PyYAML needs about 6 bytes of memory per
    #: byte it parses.
    max_file_bytes: int = 16 << 20
    #: Objects per file (documents, and the items of Lists).
    max_file_objects: int = 20_000
    #: Nodes that YAML aliases may add to one document once expanded. The
    #: figure is go-yaml's, which Kubernetes' own YAML reader uses: it allows
    #: about 400,000 alias-driven decodes in a document.
    max_alias_nodes: int = 400_000
    #: /ready answers 503 once the source has not finished a pass over the
    #: folder (listed it, read what changed, applied it) for this long.
    stale_after: float = 60.0


@attrs.frozen
class SourceConfig:
    """Where the objects come from, and which of them are kept."""

    #: A folder of YAML manifests, instead of the API.
    manifests: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    #: The API server's URL; without it (and without kubeconfig), the
    #: in-cluster service account is used.
    endpoint: str | None = None
    tls: TLSFiles | None = None
    #: Only these namespaces are exposed (empty: all of them).
    namespaces: tuple[str, ...] = ()
    labels: LabelSelector | None = None
    namespace_labels: LabelSelector | None = None
    watch_pods: bool = False
    watch_endpoints: bool = True
    #: Where the manifests source allocates cluster IPs for Services that
    #: name none, as the API server would have.
    service_cidrs: tuple[str, ...] = DEFAULT_SERVICE_CIDRS
    manifest_limits: ManifestLimits = ManifestLimits()

    def describe(self) -> str:
        if self.manifests is not None:
            return f"manifests {self.manifests}"
        if self.kubeconfig is not None:
            return f"kubeconfig {self.kubeconfig}" + (f" context {self.context}" if self.context else "")
        if self.endpoint is not None:
            return f"API {self.endpoint}"
        return "in-cluster API"

