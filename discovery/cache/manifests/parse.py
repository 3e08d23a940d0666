"""One manifest file's bytes to objects and problems: `parse_manifest`, pure.

YAML (``.yaml``, ``.yml``) is multi-document; JSON (``.json``) is one
document; either may hold `List` and ``<Kind>List`` objects. The limits of
`ManifestLimits` apply before anything large is built: a file with more
objects than allowed, or a YAML document whose aliases would expand past
the bound (a "billion laughs"), is refused as a whole, its previous objects
serving on. Every value quoted in a problem is cut short.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import re
from typing import Any, Callable, Iterator, Mapping

import attrs
import yaml

from ..config import ManifestLimits
from ..objects import (
    ObjectError,
    Service,
    endpoint_slice_from_api,
    endpoints_to_slices,
    namespace_from_api,
    pod_from_api,
    quote,
    service_from_api,
)
from ..store import CacheObject

__all__ = [
    "Problem",
    "Entry",
    "ParsedFile",
    "parse_manifest",
    "unreadable",
    "alias_expansion",
    "BUILTIN_NAMESPACES",
    "IP_FAMILY_POLICIES",
    "MESSAGE_LIMIT",
]

#: The namespaces the API server creates in every cluster.
BUILTIN_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
#: Where `kubectl apply` puts an object that names no namespace.
DEFAULT_NAMESPACE = "default"
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
#: A problem's message is cut to this many characters (values in it are
#: already quoted short; this bounds the rest, such as a YAML error's context).
MESSAGE_LIMIT = 500

#: (Store kind, object key): what the Store and the merge are keyed by.
Key = tuple[str, tuple[str, str]]
#: (kind as written, namespace, name) of the document an object came from.
Origin = tuple[str, str, str]


def _bounded(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


# --- what one file holds ---------------------------------------------------


@attrs.frozen
class Problem:
    """Something wrong (or, for ignored documents, worth a debug line) at path:line."""

    path: str
    #: 1-based; 0 when the problem concerns the whole file.
    line: int
    message: str = attrs.field(converter=_bounded)

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
    #: Why an unreadable file was skipped, as the metric labels it:
    #: invalid, too_large, too_many_objects, alias_expansion, unreadable, not_regular.
    reason: str = ""


def unreadable(
    path: str, line: int, message: str, previous: ParsedFile | None, reason: str = "invalid"
) -> ParsedFile:
    """A file that cannot be read or parsed: it keeps what it held before."""
    kept = previous or ParsedFile(path)
    return ParsedFile(
        path, kept.entries, kept.namespaces, (Problem(path, line, message),), (), readable=False, reason=reason
    )


class LimitError(ValueError):
    """A file over one of the limits: refused whole, before it is built."""

    def __init__(self, reason: str, line: int, message: str):
        super().__init__(message)
        self.reason = reason
        self.line = line


def parse_manifest(
    path: str, data: bytes, previous: ParsedFile | None = None, limits: ManifestLimits = ManifestLimits()
) -> ParsedFile:
    """Read the objects of one manifest file (YAML, or JSON by its suffix).

    `previous` is the file's last parse: an object the converters reject
    keeps the version it had there, and a file that cannot be parsed at all,
    or is over `limits`, keeps all of it. Lines are those where each object
    starts. (The size limit is the reader's: `data` is parsed whatever its size.)
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return unreadable(path, line, f"not UTF-8 text ({error.reason})", previous)
    try:
        if path.endswith(".json"):
            documents, lines = _load_json(text, limits)
        else:
            documents, lines = _load_yaml(text, limits)
    except LimitError as error:
        return unreadable(path, error.line, str(error), previous, error.reason)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = error.problem or "invalid YAML"
        if error.context:
            message += f" ({quote(error.context)})"
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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value


def alias_expansion(root: yaml.Node) -> tuple[int, int]:
    """(distinct nodes, nodes once every alias is expanded) of a composed document.

    The composer shares an aliased node rather than copying it, so a
    document of a few hundred bytes can stand for 10^9 nodes; anything that
    walks the constructed data (a converter, an error message quoting a
    value) pays for the expansion. Counting it on the node graph costs one
    visit per distinct node.
    """
    sizes: dict[int, int] = {}
    # Nodes whose children are being counted: reaching one again is a
    # recursive structure (an anchor used inside itself), counted once.
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
            continue
        if key in sizes or key in open_nodes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    return len(sizes), sizes[id(root)]


def _objects_in(node: yaml.Node) -> int:
    """How many objects a document holds: a List's items, or one."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "items" and isinstance(value, yaml.SequenceNode):
                return len(value.value)
    return 1


def _too_many(count: int, limits: ManifestLimits, line: int) -> None:
    if count > limits.max_file_objects:
        raise LimitError(
            "too_many_objects", line,
            f"more than {limits.max_file_objects} objects (max_file_objects); the file is not read",
        )


def _load_yaml(text: str, limits: ManifestLimits) -> tuple[list[tuple[int, Any]], dict[int, int]]:
    loader = _LineLoader(text)
    try:
        documents = []
        objects = 0
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1
            # Both checks come before construction, so neither a huge List
            # nor an alias bomb is ever built.
            objects += _objects_in(node)
            _too_many(objects, limits, line)
            distinct, expanded = alias_expansion(node)
            if expanded - distinct > limits.max_alias_nodes:
                raise LimitError(
                    "alias_expansion", line,
                    f"YAML aliases expand this document by more than {limits.max_alias_nodes} nodes "
                    "(max_alias_nodes); the file is not read",
                )
            documents.append((line, loader.construct_document(node)))
        return documents, loader.lines
    finally:
        loader.dispose()


_NEWLINE = re.compile("\n")


def _load_json(text: str, limits: ManifestLimits) -> tuple[list[tuple[int, Any]], dict[int, int]]:
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
    line = lines.get(id(data), 1)
    items = data.get("items") if isinstance(data, dict) else None
    _too_many(len(items) if isinstance(items, list) else 1, limits, line)
    return [(line, data)], lines


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
            f"spec.ipFamilyPolicy: {quote(policy)} is not one of {', '.join(IP_FAMILY_POLICIES)}",
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
        # Each document is let go once read (and each List item, below):
        # freed all at once at the end, 100,000 Services are one cascade of
        # deallocations that holds the interpreter for a few tenths of a
        # second, and the reactor thread with it.
        for index, (line, document) in enumerate(documents):
            documents[index] = None
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
                shown = name if isinstance(name, str) else quote(name) if name else ""
                self.ignored.append(
                    Problem(self.path, line, f"{api_version} {kind} {shown}: not a kind the cache holds")
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
        for index, item in enumerate(items):
            items[index] = None
            self.visit(item, line, item_kind, item_version, in_list=True)

    def reject(self, kind: str, line: int, error: ObjectError) -> None:
        origin = (kind, "" if kind == "Namespace" else (error.namespace or ""), error.name or "")
        kept = self.previous.get(origin, ()) if error.name else ()
        message = str(error)
        if kept:
            message += "; its previous version keeps serving"
        self.errors.append(Problem(self.path, line, message))
        self.entries.extend(kept)

