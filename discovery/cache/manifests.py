"""The manifests source: a folder of Kubernetes manifests feeding a Store.

The folder holds what `kubectl apply -f DIR -R` would accept: multi-document
YAML (``.yaml``, ``.yml``) and JSON (``.json``) files, in sub-folders too,
with `List` and ``<Kind>List`` objects holding items. Hidden files and
folders (a leading ``.``) are skipped, which also skips the ``..data``
machinery of a mounted ConfigMap while its visible symbolic links are read.

The pure part turns the bytes of one file into objects and problems
(`parse_manifest`), and all files into what the Store should hold (`merge`,
`allocate_cluster_ips`): the objects the API server would serve, with the
filters the API source would ask the API for. The I/O part (`ManifestSource`)
polls the folder with the reactor's clock, re-reads only files whose status
changed, and writes only the difference to the Store.

Bad data never stops the source: a file that cannot be parsed keeps the
objects it held before, and an object the converters reject keeps its
previous version, if it had one. Each problem is logged once, as
``path:line: message``, when the file that causes it changes.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import json
import json.decoder
import json.scanner
import logging
import os
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import attrs
import yaml
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from .config import SourceConfig
from .objects import (
    Namespace,
    ObjectError,
    Service,
    endpoint_slice_from_api,
    endpoints_to_slices,
    family_of,
    namespace_from_api,
    pod_from_api,
    service_from_api,
)
from .store import KINDS, CacheObject, Store

__all__ = [
    "ManifestSource",
    "Problem",
    "Entry",
    "ParsedFile",
    "Merged",
    "Allocation",
    "AllocationResult",
    "ServiceRange",
    "parse_manifest",
    "unreadable",
    "merge",
    "allocate_cluster_ips",
    "list_folder",
    "SUFFIXES",
    "BUILTIN_NAMESPACES",
    "IP_FAMILY_POLICIES",
    "NAMESPACE_NAME_LABEL",
]

log = logging.getLogger("wayfinder.cache.manifests")

SUFFIXES = (".yaml", ".yml", ".json")
#: The namespaces the API server creates in every cluster.
BUILTIN_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
#: The label the API server sets on every Namespace to its name (Kubernetes 1.21+).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: Where `kubectl apply` puts an object that names no namespace.
DEFAULT_NAMESPACE = "default"
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
#: The API source lists Pods with a field selector that leaves these out
#: (CoreDNS's podListFunc); the manifests source drops them the same way.
ENDED_POD_PHASES = frozenset({"Succeeded", "Failed", "Unknown"})
#: A file modified this recently before it was read may change again within
#: the same file-system timestamp tick without its status showing it (git's
#: "racy clean" problem), so it is read again on every poll until it is older.
RACY_SECONDS = 2.0

#: (Store kind, object key): what the Store and the merge are keyed by.
Key = tuple[str, tuple[str, str]]
#: (kind as written, namespace, name) of the document an object came from.
Origin = tuple[str, str, str]


# --- what one file holds ---------------------------------------------------


@attrs.frozen
class Problem:
    """Something wrong (or, for ignored documents, worth a debug line) at path:line."""

    path: str
    #: 1-based; 0 when the problem concerns the whole file.
    line: int
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}: {self.message}"
        return f"{self.path}: {self.message}"


@attrs.frozen
class Entry:
    """One object a file holds, and where it stands."""

    kind: str
    obj: CacheObject
    path: str
    line: int
    origin: Origin
    #: spec.ipFamilyPolicy of a Service ("" when not given).
    ip_family_policy: str = ""

    @property
    def key(self) -> Key:
        return (self.kind, self.obj.key)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@attrs.frozen
class ParsedFile:
    """What one file holds, and what is wrong with it."""

    path: str
    entries: tuple[Entry, ...] = ()
    #: Every namespace an object of the file lives in, of any kind.
    namespaces: frozenset[str] = frozenset()
    errors: tuple[Problem, ...] = ()
    #: Documents of kinds the cache does not hold (Deployments, ConfigMaps...).
    ignored: tuple[Problem, ...] = ()
    #: False when the file could not be read or parsed at all; its entries
    #: and namespaces are then those of its previous parse.
    readable: bool = True


def unreadable(path: str, line: int, message: str, previous: ParsedFile | None) -> ParsedFile:
    """A file that cannot be read or parsed: it keeps what it held before."""
    kept = previous or ParsedFile(path)
    return ParsedFile(
        path, kept.entries, kept.namespaces, (Problem(path, line, message),), (), readable=False
    )


def parse_manifest(path: str, data: bytes, previous: ParsedFile | None = None) -> ParsedFile:
    """Read the objects of one manifest file (YAML, or JSON by its suffix).

    `previous` is the file's last parse: an object the converters reject
    keeps the version it had there, and a file that cannot be parsed at all
    keeps all of it. Lines are those where each object starts.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return unreadable(path, line, f"not UTF-8 text ({error.reason})", previous)
    try:
        if path.endswith(".json"):
            documents, lines = _load_json(text)
        else:
            documents, lines = _load_yaml(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = error.problem or "invalid YAML"
        if error.context:
            message += f" ({error.context})"
        return unreadable(path, mark.line + 1 if mark else 0, message, previous)
    except yaml.YAMLError as error:
        return unreadable(path, 0, f"invalid YAML: {error}", previous)
    except json.JSONDecodeError as error:
        return unreadable(path, error.lineno, f"invalid JSON: {error.msg}", previous)
    except RecursionError:
        # libyaml stops at its own depth limit; json and the constructor recurse.
        return unreadable(path, 0, "nested too deeply", previous)
    return _FileReader(path, lines, previous).read(documents)


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe YAML that remembers the line where each mapping starts."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.lines: dict[int, int] = {}

    def construct_line_map(self, node: yaml.MappingNode) -> Iterator[dict]:
        # SafeConstructor.construct_yaml_map, plus the line: the mapping is
        # yielded first so that recursive structures resolve.
        data: dict = {}
        self.lines[id(data)] = node.start_mark.line + 1
        yield data
        data.update(self.construct_mapping(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_line_map)


def _load_yaml(text: str) -> tuple[list[tuple[int, Any]], dict[int, int]]:
    loader = _LineLoader(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            documents.append((node.start_mark.line + 1, loader.construct_document(node)))
        return documents, loader.lines
    finally:
        loader.dispose()


_NEWLINE = re.compile("\n")


def _load_json(text: str) -> tuple[list[tuple[int, Any]], dict[int, int]]:
    # The json module reports no positions; the pure-Python scanner lets the
    # object parser be wrapped to record where each object's "{" stands.
    newlines = [match.start() for match in _NEWLINE.finditer(text)]
    lines: dict[int, int] = {}

    def parse_object(s_and_end, *args):
        obj, end = json.decoder.JSONObject(s_and_end, *args)
        lines[id(obj)] = bisect.bisect_left(newlines, s_and_end[1] - 1) + 1
        return obj, end

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    data = decoder.decode(text)
    return [(lines.get(id(data), 1), data)], lines


#: (apiVersion, kind) -> (Store kind, converter returning one object or a tuple).
_CONVERTERS: Mapping[tuple[str, str], tuple[str, Callable[[Any, str], Any]]] = {
    ("v1", "Service"): ("Service", service_from_api),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("EndpointSlice", endpoint_slice_from_api),
    ("v1", "Endpoints"): ("EndpointSlice", endpoints_to_slices),
    ("v1", "Pod"): ("Pod", pod_from_api),
    ("v1", "Namespace"): ("Namespace", namespace_from_api),
}


def _namespace_named(value: Any) -> str | None:
    """The namespace a metadata.namespace names, if it could exist."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return namespace_from_api({"metadata": {"name": value}}).name
    except ObjectError:
        return None


def _ip_family_policy(obj: dict, service: Service) -> str:
    spec = obj.get("spec") or {}
    policy = spec.get("ipFamilyPolicy")
    if policy is None or service.headless or service.is_external_name:
        return ""
    if policy not in IP_FAMILY_POLICIES:
        raise ObjectError(
            "Service", service.namespace, service.name,
            f"spec.ipFamilyPolicy: {policy!r} is not one of {', '.join(IP_FAMILY_POLICIES)}",
        )
    if policy == "SingleStack" and (len(service.ip_families) > 1 or len(service.cluster_ips) > 1):
        raise ObjectError(
            "Service", service.namespace, service.name,
            "spec.ipFamilyPolicy SingleStack allows one IP family only",
        )
    return policy


class _FileReader:
    """Walks the documents of one parsed file, collecting entries and problems."""

    def __init__(self, path: str, lines: Mapping[int, int], previous: ParsedFile | None):
        self.path = path
        self.lines = lines
        self.entries: list[Entry] = []
        self.errors: list[Problem] = []
        self.ignored: list[Problem] = []
        self.namespaces: set[str] = set()
        self.previous: dict[Origin, list[Entry]] = {}
        for entry in previous.entries if previous is not None else ():
            self.previous.setdefault(entry.origin, []).append(entry)

    def read(self, documents: list[tuple[int, Any]]) -> ParsedFile:
        for line, document in documents:
            self.visit(document, line, None, None, in_list=False)
        return ParsedFile(
            self.path,
            tuple(self.entries),
            frozenset(self.namespaces),
            tuple(self.errors),
            tuple(self.ignored),
        )

    def visit(self, obj: Any, line: int, kind: str | None, api_version: str | None, in_list: bool) -> None:
        if obj is None:
            return
        if not isinstance(obj, dict):
            self.errors.append(
                Problem(self.path, line, f"expected a Kubernetes object, got {type(obj).__name__}")
            )
            return
        line = self.lines.get(id(obj), line)
        kind = obj.get("kind", kind)
        api_version = obj.get("apiVersion", api_version)
        if not isinstance(kind, str) or not kind:
            self.errors.append(Problem(self.path, line, "the object has no kind"))
            return
        if not isinstance(api_version, str) or not api_version:
            self.errors.append(Problem(self.path, line, f"the {kind} has no apiVersion"))
            return
        if kind.endswith("List") and "items" in obj:
            if in_list:
                # As kubectl: a List's items are objects. (This also stops a
                # YAML alias from making a List its own item.)
                self.errors.append(Problem(self.path, line, f"a {kind} inside a List is not supported"))
            else:
                self.visit_list(obj, line, kind, api_version)
            return
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            namespace = _namespace_named(metadata.get("namespace"))
            if namespace is not None:
                self.namespaces.add(namespace)
        converter = _CONVERTERS.get((api_version, kind))
        if converter is None:
            if kind == "EndpointSlice" and api_version.startswith("discovery.k8s.io/"):
                # discovery.k8s.io/v1beta1 is no longer served since Kubernetes 1.25.
                self.errors.append(Problem(
                    self.path, line,
                    f"EndpointSlice: apiVersion {api_version} is not served; use discovery.k8s.io/v1",
                ))
            else:
                name = metadata.get("name") if isinstance(metadata, dict) else None
                self.ignored.append(
                    Problem(self.path, line, f"{api_version} {kind} {name or ''}: not a kind the cache holds")
                )
            return
        store_kind, convert = converter
        try:
            converted = convert(obj, DEFAULT_NAMESPACE)
            policy = _ip_family_policy(obj, converted) if store_kind == "Service" else ""
        except ObjectError as error:
            self.reject(kind, line, error)
            return
        name = metadata["name"]
        namespace = "" if store_kind == "Namespace" else (metadata.get("namespace") or DEFAULT_NAMESPACE)
        origin = (kind, namespace, name)
        for item in converted if isinstance(converted, tuple) else (converted,):
            self.entries.append(Entry(store_kind, item, self.path, line, origin, policy))

    def visit_list(self, obj: dict, line: int, kind: str, api_version: str) -> None:
        items = obj["items"]
        if items is None:
            return
        if not isinstance(items, list):
            self.errors.append(Problem(self.path, line, f"{kind}: items: expected a list"))
            return
        # The items of a typed list (ServiceList, as the API returns it)
        # carry no kind; those of a v1 List name their own.
        item_kind = kind[: -len("List")] or None
        item_version = api_version if item_kind else None
        for item in items:
            self.visit(item, line, item_kind, item_version, in_list=True)

    def reject(self, kind: str, line: int, error: ObjectError) -> None:
        origin = (kind, "" if kind == "Namespace" else (error.namespace or ""), error.name or "")
        kept = self.previous.get(origin, ()) if error.name else ()
        message = str(error)
        if kept:
            message += "; its previous version keeps serving"
        self.errors.append(Problem(self.path, line, message))
        self.entries.extend(kept)


# --- cluster IPs -----------------------------------------------------------------


@attrs.frozen
class ServiceRange:
    """One service CIDR, as the API server's allocator uses it (ipallocator/bitmap.go)."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    @classmethod
    def parse(cls, cidr: str) -> "ServiceRange":
        return cls(ipaddress.ip_network(cidr))

    @property
    def family(self) -> str:
        return "IPv4" if self.network.version == 4 else "IPv6"

    @property
    def last(self) -> int:
        """The highest usable offset from the network address."""
        size = self.network.num_addresses
        if self.network.version == 4:
            # The broadcast address is never handed out.
            return max(size - 2, 0)
        # The allocator's bitmap covers at most 65536 addresses of an IPv6 range.
        return min(size, 65536) - 1

    @property
    def static_band(self) -> int:
        """Offsets 1..band are left to Services that choose their IP (KEP-3070)."""
        size = self.network.num_addresses
        if size <= 16:
            return 0
        return min(max(16, size // 16), 256)

    def address(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def candidates(self, seed: int) -> Iterator[int]:
        """Offsets to try, in order: the dynamic band from a seeded start, then the static band.

        Offset 0 (the network address) and 1 (kubeadm's `kubernetes`
        Service, 10.96.0.1) are never offered.
        """
        first, last, band = 2, self.last, self.static_band
        dynamic_first = max(band + 1, first)
        if dynamic_first <= last:
            start = dynamic_first + seed % (last - dynamic_first + 1)
            yield from range(start, last + 1)
            yield from range(dynamic_first, start)
        yield from range(first, min(band, last) + 1)


@attrs.frozen
class AllocationResult:
    #: Service key -> (cluster IPs, their families), for each Service given IPs.
    assigned: Mapping[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]]
    #: Service key -> why it cannot have cluster IPs.
    rejected: Mapping[tuple[str, str], str]


def _seed(service: Service) -> int:
    digest = hashlib.sha256(f"{service.namespace}/{service.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _families_wanted(service: Service, policy: str, configured: Sequence[str]) -> tuple[str, ...]:
    """The families a Service gets IPs of, as the API server decides; raises ValueError.

    As the API server defaults it, a Service without ipFamilyPolicy is
    RequireDualStack when it lists two families, SingleStack otherwise; the
    primary family is the first listed, or the cluster's first range's.
    """
    requested = service.ip_families
    if not policy:
        policy = "RequireDualStack" if len(requested) > 1 else "SingleStack"
    primary = requested[0] if requested else configured[0]
    if primary not in configured:
        raise ValueError(f"spec.ipFamilies: no service_cidr of family {primary} is configured")
    if policy == "SingleStack":
        return (primary,)
    secondary = "IPv6" if primary == "IPv4" else "IPv4"
    if secondary in configured:
        return (primary, secondary)
    if policy == "RequireDualStack":
        raise ValueError(f"{policy} needs both an IPv4 and an IPv6 service_cidr")
    return (primary,)


def allocate_cluster_ips(
    requests: Sequence[tuple[Service, str]],
    used: Iterable[str],
    cidrs: Sequence[str],
    previous: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> AllocationResult:
    """Give each (Service, ipFamilyPolicy) that needs them cluster IPs from `cidrs`.

    Deterministic: a Service first tries the address its namespace/name
    hashes to in the range's dynamic band, then the next free ones, so the
    same Services get the same IPs whatever the order of files. An address
    in `used` (the IPs Services chose themselves) or already given is never
    given again. A Service keeps the IPs of `previous` (the last allocation)
    while they are free and in range, so reloads do not move it.
    """
    ranges = {}
    for cidr in cidrs:
        service_range = ServiceRange.parse(cidr)
        ranges.setdefault(service_range.family, service_range)
    configured = tuple(ranges)
    taken = {ipaddress.ip_address(ip) for ip in used}
    assigned: dict = {}
    rejected: dict = {}
    wanted = {}
    for service, policy in sorted(requests, key=lambda request: request[0].key):
        try:
            wanted[service.key] = (service, _families_wanted(service, policy, configured))
        except ValueError as error:
            rejected[service.key] = str(error)

    # Kept allocations first, so that a new Service never takes a kept IP.
    for key, (service, families) in wanted.items():
        ips = previous.get(key, ()) if previous else ()
        addresses = [ipaddress.ip_address(ip) for ip in ips]
        if (
            tuple(family_of(ip) for ip in ips) == families
            and all(address in ranges[family].network for address, family in zip(addresses, families))
            and not any(address in taken for address in addresses)
        ):
            taken.update(addresses)
            assigned[key] = (tuple(ips), families)

    for key, (service, families) in wanted.items():
        if key in assigned:
            continue
        ips = []
        for family in families:
            service_range = ranges[family]
            for offset in service_range.candidates(_seed(service)):
                address = service_range.network.network_address + offset
                if address not in taken:
                    taken.add(address)
                    ips.append(str(address))
                    break
            else:
                rejected[key] = f"no free cluster IP left in service_cidr {service_range.network}"
                break
        if key not in rejected:
            assigned[key] = (tuple(ips), families)
    return AllocationResult(assigned, rejected)


# --- all files together ------------------------------------------------------------


@attrs.frozen
class Allocation:
    """A cluster IP given to a Service that named none, as the API server would have."""

    service: Service
    path: str
    line: int

    def __str__(self) -> str:
        s = self.service
        ips = ", ".join(s.cluster_ips)
        return f"{self.path}:{self.line}: Service {s.namespace}/{s.name}: allocated cluster IP {ips}"


@attrs.frozen
class Merged:
    """What the Store should hold, with the problems found across files."""

    objects: Mapping[Key, CacheObject] = attrs.field(factory=dict)
    #: Objects defined again after their first definition (which is used).
    duplicates: tuple[Problem, ...] = ()
    #: Services left out because they cannot have the cluster IPs they need.
    rejected: tuple[Problem, ...] = ()
    #: Allocations made by this merge (kept ones are not repeated).
    allocations: tuple[Allocation, ...] = ()
    #: Every allocated Service's cluster IPs, for the next merge to keep.
    allocated: Mapping[tuple[str, str], tuple[str, ...]] = attrs.field(factory=dict)


def _ref(entry: Entry) -> str:
    kind, namespace, name = entry.origin
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _path_order(parsed: ParsedFile) -> list[str]:
    return parsed.path.split(os.sep)


def _with_name_label(namespace: Namespace) -> Namespace:
    # The API server sets this label on every Namespace, whatever the manifest says.
    labels = dict(namespace.labels)
    labels[NAMESPACE_NAME_LABEL] = namespace.name
    return attrs.evolve(namespace, labels=tuple(sorted(labels.items())))


def _visible(kind: str, obj: CacheObject, config: SourceConfig) -> bool:
    """Whether the API source, with the same configuration, would have it."""
    if kind == "Namespace":
        # Namespaces are listed cluster-wide whatever `namespaces` says (the
        # API source does the same: a missing namespace is NXDOMAIN).
        return config.namespace_labels is None or config.namespace_labels.matches(obj.labels)
    if kind == "EndpointSlice" and not config.watch_endpoints:
        return False
    if kind == "Pod" and (not config.watch_pods or obj.phase in ENDED_POD_PHASES or obj.deleting):
        return False
    if config.namespaces and obj.namespace not in config.namespaces:
        return False
    return config.labels is None or config.labels.matches(obj.labels)


def merge(
    files: Iterable[ParsedFile],
    config: SourceConfig,
    previous_allocations: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> Merged:
    """Everything the files hold, as the Store should hold it.

    The first definition of an object in path order wins; Services get the
    cluster IPs the API server would have allocated; namespaces that every
    cluster has, or that objects live in, exist; the filters of `config`
    apply.
    """
    winners: dict[Key, Entry] = {}
    duplicates: list[Problem] = []
    namespaces = set(BUILTIN_NAMESPACES)
    for parsed in sorted(files, key=_path_order):
        namespaces.update(parsed.namespaces)
        for entry in parsed.entries:
            first = winners.setdefault(entry.key, entry)
            if first is not entry:
                message = f"{_ref(entry)}: already defined at {first.where}, which is used"
                duplicates.append(Problem(entry.path, entry.line, message))

    used = [ip for (kind, _), entry in winners.items() if kind == "Service" for ip in entry.obj.cluster_ips]
    requests = [
        (entry.obj, entry.ip_family_policy)
        for (kind, _), entry in winners.items()
        if kind == "Service" and entry.obj.needs_cluster_ip
    ]
    previous_allocations = previous_allocations or {}
    result = allocate_cluster_ips(requests, used, config.service_cidrs, previous_allocations)

    objects: dict[Key, CacheObject] = {}
    allocations = []
    rejected = []
    for key, entry in winners.items():
        obj = entry.obj
        if key[0] == "Namespace":
            obj = _with_name_label(obj)
        elif key[0] == "Service" and obj.needs_cluster_ip:
            if obj.key in result.rejected:
                rejected.append(Problem(entry.path, entry.line, f"{_ref(entry)}: {result.rejected[obj.key]}"))
                continue
            ips, families = result.assigned[obj.key]
            obj = attrs.evolve(obj, cluster_ips=ips, ip_families=families)
            if previous_allocations.get(obj.key) != ips:
                allocations.append(Allocation(obj, entry.path, entry.line))
        if _visible(key[0], obj, config):
            objects[key] = obj
    for name in namespaces:
        key = ("Namespace", ("", name))
        if key not in winners:
            implied = _with_name_label(Namespace(name))
            if _visible("Namespace", implied, config):
                objects[key] = implied
    return Merged(
        objects,
        # The slices of one Endpoints object share its place: one line is enough.
        tuple(dict.fromkeys(duplicates)),
        tuple(rejected),
        tuple(allocations),
        {key: ips for key, (ips, _) in result.assigned.items()},
    )


# --- the folder ----------------------------------------------------------------------


def list_folder(folder: str) -> dict[str, os.stat_result]:
    """The manifest files under `folder`, with their status. Raises OSError.

    A folder that cannot be read fails the whole listing, so that its files
    are not taken for deleted.
    """
    def fail(error: OSError):
        raise error

    found = {}
    for root, dirs, files in os.walk(folder, onerror=fail):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            path = os.path.join(root, name)
            try:
                found[path] = os.stat(path)
            except FileNotFoundError:
                # A dangling symbolic link, or a file deleted meanwhile.
                continue
    return found


def _signature(status: os.stat_result) -> tuple[int, int, int, int]:
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


@attrs.frozen
class _Seen:
    """A file as last read."""

    signature: tuple[int, int, int, int]
    digest: bytes
    #: Read long enough after its last modification for the signature to tell any later change.
    settled: bool
    parsed: ParsedFile


#: Namespaces before what lives in them, Services before their slices.
_KIND_ORDER = {kind: i for i, kind in enumerate(("Namespace", "Service", "EndpointSlice", "Pod"))}


class ManifestSource:
    """Feeds a Store from a folder of manifests, polled for changes.

    `start()` loads the folder and then polls it every `poll_interval`
    seconds; `synced` fires once the first load is in the Store; `stop()`
    ends the polling. The Store keeps its data.
    """

    def __init__(self, config: SourceConfig, store: Store, reactor, *, poll_interval: float = 0.25):
        if config.manifests is None:
            raise ValueError("ManifestSource reads a manifests folder; this configuration names none")
        self.config = config
        self.store = store
        self.folder = config.manifests
        self._reactor = reactor
        self._poll_interval = poll_interval
        self._seen: dict[str, _Seen] = {}
        self._merged = Merged()
        self._applied: dict[Key, CacheObject] = {}
        self._waiters: list[defer.Deferred] = []
        self._has_synced = False
        self._folder_error: str | None = None
        #: A poll failed before the Store matched the folder: the next one merges again.
        self._unapplied = False
        self._last_sync = 0.0
        self._loop = LoopingCall(self.poll)
        self._loop.clock = reactor

    # -- public ------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._has_synced

    @property
    def synced(self) -> defer.Deferred:
        """Fires once the first load of the folder is in the Store (a new Deferred each time)."""
        if self._has_synced:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def synced_for(self, kind: str) -> defer.Deferred:
        """As `synced`: every kind is loaded at once."""
        if kind not in KINDS:
            raise ValueError(f"{kind} is not a kind the cache holds; kinds: {', '.join(KINDS)}")
        return self.synced

    @property
    def last_sync(self) -> float:
        """Wall-clock time of the latest poll that read every file (0 before any).

        It stops advancing while the folder, or a file in it, cannot be read
        or parsed.
        """
        return self._last_sync

    def start(self) -> None:
        if self._loop.running:
            raise RuntimeError("ManifestSource.start() was called twice")
        log.info("reading manifests from %s every %.2f seconds", self.folder, self._poll_interval)
        self._loop.start(self._poll_interval, now=True)

    def stop(self) -> defer.Deferred:
        """Stop polling; fires at once (a poll never spans reactor turns)."""
        if self._loop.running:
            self._loop.stop()
        return defer.succeed(None)

    def poll(self) -> None:
        """Read what changed in the folder and apply it: one iteration of the loop."""
        try:
            self._poll()
        except Exception:
            self._unapplied = True
            # A bug must not end the polling: the last good objects keep serving.
            log.exception("manifests %s: reload failed; the last good objects keep serving", self.folder)

    # -- one poll ------------------------------------------------------------------

    def _poll(self) -> None:
        started = self._reactor.seconds()
        try:
            listing = list_folder(self.folder)
        except OSError as error:
            message = f"{error.strerror or error}: {error.filename or self.folder}"
            if message != self._folder_error:
                log.error("manifests %s: cannot read the folder (%s); the last good objects keep serving",
                          self.folder, message)
                self._folder_error = message
            return
        if self._folder_error is not None:
            log.info("manifests %s: the folder is readable again", self.folder)
            self._folder_error = None

        changed = [path for path in self._seen if path not in listing]
        for path in changed:
            del self._seen[path]
        for path, status in listing.items():
            if self._refresh(path, status, started):
                changed.append(path)

        if changed or self._unapplied or not self._has_synced:
            merged = merge(
                (seen.parsed for seen in self._seen.values()), self.config, self._merged.allocated
            )
            for problem in merged.duplicates:
                if problem not in self._merged.duplicates:
                    log.warning("%s", problem)
            for problem in merged.rejected:
                if problem not in self._merged.rejected:
                    log.error("%s", problem)
            for allocation in merged.allocations:
                log.info("%s", allocation)
            self._merged = merged
            self._unapplied = True
            puts, deletes = self._apply(merged.objects)
            self._unapplied = False
            log.info(
                "manifests %s: %d files (%d changed), %d objects: %d put, %d deleted in %.3f seconds",
                self.folder, len(self._seen), len(changed), len(merged.objects), puts, deletes,
                self._reactor.seconds() - started,
            )
        if all(seen.parsed.readable for seen in self._seen.values()):
            self._last_sync = self._reactor.seconds()
        if not self._has_synced:
            self._has_synced = True
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def _refresh(self, path: str, status: os.stat_result, now: float) -> bool:
        """Re-read the file if it may have changed; True if its content did."""
        seen = self._seen.get(path)
        signature = _signature(status)
        if seen is not None and seen.settled and seen.signature == signature:
            return False
        settled = now - status.st_mtime >= RACY_SECONDS
        previous = seen.parsed if seen is not None else None
        try:
            with open(path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            # Deleted since the listing; the next poll forgets it.
            return False
        except OSError as error:
            parsed = unreadable(path, 0, f"cannot read: {error.strerror or error}", previous)
            # Read again only once its status changes (chmod, a new version).
            self._seen[path] = _Seen(signature, b"", True, parsed)
            self._report(parsed)
            return True
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if seen is not None and seen.digest == digest:
            self._seen[path] = attrs.evolve(seen, signature=signature, settled=settled)
            return False
        parsed = parse_manifest(path, data, previous)
        self._seen[path] = _Seen(signature, digest, settled, parsed)
        self._report(parsed)
        return True

    @staticmethod
    def _report(parsed: ParsedFile) -> None:
        for problem in parsed.errors:
            if not parsed.readable and parsed.entries:
                log.error("%s; the %d objects it held before keep serving", problem, len(parsed.entries))
            else:
                log.error("%s", problem)
        for problem in parsed.ignored:
            log.debug("%s", problem)

    def _apply(self, desired: Mapping[Key, CacheObject]) -> tuple[int, int]:
        """Write the difference between what was applied and `desired`; returns (puts, deletes)."""
        puts = [(key, obj) for key, obj in desired.items() if self._applied.get(key) != obj]
        deletes = [key for key in self._applied if key not in desired]
        puts.sort(key=lambda put: _KIND_ORDER[put[0][0]])
        deletes.sort(key=lambda key: -_KIND_ORDER[key[0]])
        # _applied follows each write, so that a reader failing in the middle
        # leaves it true to what the Store holds.
        for key, obj in puts:
            self._applied[key] = obj
            self.store.put(obj)
        for key in deletes:
            del self._applied[key]
            self.store.delete(*key)
        return len(puts), len(deletes)
