"""The manifests source: a folder of Kubernetes manifests feeding a Store.

The folder holds what `kubectl apply -f DIR -R` would accept: multi-document
YAML (``.yaml``, ``.yml``) and JSON (``.json``) files, in sub-folders too,
with `List` and ``<Kind>List`` objects holding items. Hidden files and
folders (a leading ``.``) are skipped, which also skips the ``..data``
machinery of a mounted ConfigMap while its visible symbolic links are read.

By concern:

- `parse`: one file's bytes to objects and problems (`parse_manifest`),
  within the limits of `ManifestLimits` (pure);
- `merge`: all files to what the Store should hold, with the cluster IPs
  the API server would have allocated (`merge`, `allocate_cluster_ips`; pure);
- `folder`: listing, reading only regular files, and one pass over the
  folder (`scan`), run in a worker thread;
- `source`: `ManifestSource`, which polls with the reactor's clock and
  writes the difference to the Store on the reactor thread.
"""

from .folder import SUFFIXES, Listing, Skip, list_folder, read_regular_file, scan
from .merge import (
    NAMESPACE_NAME_LABEL,
    Allocation,
    AllocationResult,
    Merged,
    ServiceRange,
    allocate_cluster_ips,
    merge,
)
from .parse import (
    BUILTIN_NAMESPACES,
    IP_FAMILY_POLICIES,
    Entry,
    ParsedFile,
    Problem,
    alias_expansion,
    parse_manifest,
    unreadable,
)
from .source import ManifestSource

__all__ = [
    "ManifestSource",
    "Problem",
    "Entry",
    "ParsedFile",
    "Merged",
    "Allocation",
    "AllocationResult",
    "ServiceRange",
    "Listing",
    "Skip",
    "parse_manifest",
    "unreadable",
    "alias_expansion",
    "merge",
    "allocate_cluster_ips",
    "list_folder",
    "read_regular_file",
    "scan",
    "SUFFIXES",
    "BUILTIN_NAMESPACES",
    "IP_FAMILY_POLICIES",
    "NAMESPACE_NAME_LABEL",
]
