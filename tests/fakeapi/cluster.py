"""The fake API server's storage: objects, one resourceVersion, and history.

Pure data, no I/O: the HTTP side (server.py) turns requests into calls here
and changes into watch events. It keeps what the real API server guarantees
to a list+watch client:

- one cluster-wide resourceVersion, an increasing integer written as a
  string, stamped on every object at every write;
- lists in key order (namespace, name), paged with `limit` and `continue`,
  every page a consistent snapshot at the first page's resourceVersion;
- watches from a resourceVersion replay every later change, and are refused
  with 410 Expired once that resourceVersion has been compacted away;
- a watch with a selector sees an object that stops matching as DELETED and
  one that starts matching as ADDED (the watch cache's filtering).
"""

from __future__ import annotations

import base64
import bisect
import copy
import datetime
import ipaddress
import json
import uuid
from typing import Callable

import attrs

from .selectors import Matcher, SelectorError, parse_fields, parse_labels

__all__ = ["Cluster", "ApiError", "Change", "ResourceType", "RESOURCES", "watch_event", "status"]


@attrs.frozen
class ResourceType:
    plural: str
    kind: str
    api_version: str
    namespaced: bool
    #: Field selectors the API server accepts beyond metadata.name/namespace.
    fields: tuple[str, ...] = ()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


RESOURCES = {
    r.plural: r
    for r in (
        ResourceType("services", "Service", "v1", True, ("spec.clusterIP", "spec.type")),
        ResourceType("endpointslices", "EndpointSlice", "discovery.k8s.io/v1", True),
        ResourceType("namespaces", "Namespace", "v1", False, ("status.phase",)),
        ResourceType(
            "pods", "Pod", "v1", True,
            ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
        ),
    )
}
_PLURAL_OF_KIND = {r.kind: r.plural for r in RESOURCES.values()}


def status(code: int, reason: str, message: str) -> dict:
    """A metav1.Status as the API server sends it for a failure."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class ApiError(Exception):
    """A request the API server refuses; carries the Status to answer with."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def status(self) -> dict:
        return status(self.code, self.reason, self.message)


@attrs.frozen
class Change:
    resource_version: int
    plural: str
    #: ADDED, MODIFIED or DELETED.
    type: str
    key: tuple[str, str]
    #: The new state; for DELETED, the last state stamped with the deletion's version.
    object: dict
    previous: dict | None


Key = tuple[str, str]


def with_type(rtype: ResourceType, obj: dict) -> dict:
    """The object as watch events and single GETs carry it: kind and apiVersion first."""
    return {"kind": rtype.kind, "apiVersion": rtype.api_version, **obj}


def watch_event(
    change: Change,
    rtype: ResourceType,
    namespace: str | None,
    labels: Matcher,
    fields: Matcher,
) -> dict | None:
    """The event a watch with these filters sees for a change, or None."""
    if namespace is not None and change.key[0] != namespace:
        return None

    def matches(obj: dict | None) -> bool:
        return obj is not None and labels(obj) and fields(obj)

    if change.type == "DELETED":
        kind, obj = ("DELETED", change.object) if matches(change.object) else (None, None)
    else:
        now, before = matches(change.object), change.type == "MODIFIED" and matches(change.previous)
        if now:
            kind, obj = ("MODIFIED" if before else "ADDED"), change.object
        elif before:
            # The object left the watch's selection: the last state it was
            # seen in, at the version where it left.
            obj = copy.deepcopy(change.previous)
            obj["metadata"]["resourceVersion"] = str(change.resource_version)
            kind = "DELETED"
        else:
            kind, obj = None, None
    if kind is None:
        return None
    return {"type": kind, "object": with_type(rtype, obj)}


def bookmark_event(rtype: ResourceType, resource_version: int) -> dict:
    return {
        "type": "BOOKMARK",
        "object": {
            "kind": rtype.kind,
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(resource_version)},
        },
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    """Objects by resource and key, a cluster-wide resourceVersion, and history."""

    def __init__(self, resource_version: int = 1000, service_cidr: str = "10.96.0.0/12"):
        self.resource_version = resource_version
        #: Watches from an older resourceVersion get 410 Expired.
        self.oldest = resource_version
        self.objects: dict[str, dict[Key, dict]] = {plural: {} for plural in RESOURCES}
        self.history: list[Change] = []
        self._listeners: list[Callable[[Change], None]] = []
        self._free_ips = ipaddress.ip_network(service_cidr).hosts()
        next(self._free_ips)  # the first address belongs to the `kubernetes` Service
        self._free_node_ports = iter(range(30000, 32768))

    # -- writing ----------------------------------------------------------------

    def create(self, obj: dict, plural: str | None = None, namespace: str | None = None) -> dict:
        """Store a new object (a manifest: kind names the resource unless plural does)."""
        rtype, key, stored = self._incoming(obj, plural, namespace)
        if key in self.objects[rtype.plural]:
            raise ApiError(409, "AlreadyExists", f'{rtype.plural} "{key[1]}" already exists')
        metadata = stored["metadata"]
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = _now()
        self._default(rtype, stored, None)
        return self._commit(rtype, key, "ADDED", stored, None)

    def update(self, obj: dict, plural: str | None = None, namespace: str | None = None) -> dict:
        """Replace an object; a resourceVersion in it must be the current one."""
        rtype, key, stored = self._incoming(obj, plural, namespace)
        previous = self.objects[rtype.plural].get(key)
        if previous is None:
            raise ApiError(404, "NotFound", f'{rtype.plural} "{key[1]}" not found')
        expected = stored["metadata"].get("resourceVersion")
        if expected and expected != previous["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {rtype.plural} "{key[1]}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
        for field in ("uid", "creationTimestamp"):
            stored["metadata"][field] = previous["metadata"][field]
        self._default(rtype, stored, previous)
        return self._commit(rtype, key, "MODIFIED", stored, previous)

    def delete(self, plural: str, namespace: str | None, name: str) -> dict:
        rtype = self._type(plural)
        key = (namespace or "" if rtype.namespaced else "", name)
        previous = self.objects[plural].get(key)
        if previous is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        last = copy.deepcopy(previous)
        return self._commit(rtype, key, "DELETED", last, previous)

    def compact(self) -> None:
        """Forget history: watches from before now get 410 Expired."""
        self.oldest = self.resource_version
        self.history.clear()

    def subscribe(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _type(self, plural: str) -> ResourceType:
        try:
            return RESOURCES[plural]
        except KeyError:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural})") from None

    def _incoming(self, obj: dict, plural: str | None, namespace: str | None) -> tuple[ResourceType, Key, dict]:
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the request body is not a JSON object")
        if plural is None:
            plural = _PLURAL_OF_KIND.get(obj.get("kind"))
            if plural is None:
                raise ApiError(400, "BadRequest", f"unknown kind {obj.get('kind')!r}")
        rtype = self._type(plural)
        if obj.get("kind") not in (None, rtype.kind):
            raise ApiError(400, "BadRequest", f"kind {obj['kind']!r} does not belong at {plural}")
        stored = copy.deepcopy({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
        metadata = stored.setdefault("metadata", {})
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "Invalid", f"{rtype.kind}: metadata.name: Required value")
        if rtype.namespaced:
            given = metadata.get("namespace")
            if namespace is not None and given not in (None, namespace):
                raise ApiError(
                    400, "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            metadata["namespace"] = namespace or given or "default"
            key = (metadata["namespace"], name)
        else:
            metadata.pop("namespace", None)
            key = ("", name)
        return rtype, key, stored

    def _default(self, rtype: ResourceType, obj: dict, previous: dict | None) -> None:
        # What the API server's defaulting and allocation add.
        if rtype.plural == "namespaces":
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("status", {"phase": "Active"})
        elif rtype.plural == "services":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                old = (previous or {}).get("spec", {}).get("clusterIP")
                spec["clusterIP"] = old or str(next(self._free_ips))
            if spec["type"] in ("NodePort", "LoadBalancer"):
                # Node ports from 30000-32767, kept across updates; and the
                # policy the API defaults for types that reach the nodes.
                spec.setdefault("externalTrafficPolicy", "Cluster")
                old_ports = {
                    (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                    for p in (previous or {}).get("spec", {}).get("ports", [])
                }
                for port in spec.get("ports", []):
                    if not port.get("nodePort"):
                        port["nodePort"] = old_ports.get((port.get("port"), port.get("protocol", "TCP"))) or next(
                            self._free_node_ports
                        )
                obj.setdefault("status", {"loadBalancer": {}})
            if spec["type"] != "ExternalName":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
                if spec["clusterIP"] != "None":
                    spec.setdefault("ipFamilies", ["IPv6" if ":" in spec["clusterIP"] else "IPv4"])
                    spec.setdefault("ipFamilyPolicy", "SingleStack")

    def _commit(self, rtype: ResourceType, key: Key, kind: str, obj: dict, previous: dict | None) -> dict:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        if kind == "DELETED":
            del self.objects[rtype.plural][key]
        else:
            self.objects[rtype.plural][key] = obj
        change = Change(self.resource_version, rtype.plural, kind, key, obj, previous)
        self.history.append(change)
        for listener in list(self._listeners):
            listener(change)
        return obj

    # -- reading ----------------------------------------------------------------

    def get(self, plural: str, namespace: str | None, name: str) -> dict:
        rtype = self._type(plural)
        obj = self.objects[plural].get((namespace or "" if rtype.namespaced else "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        return obj

    def list(
        self,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> dict:
        """A List body as the API server answers a list request."""
        rtype = self._type(plural)
        labels, fields = self.matchers(rtype, label_selector, field_selector)
        if continue_token:
            snapshot, start = _decode_continue(continue_token)
            if snapshot < self.oldest:
                raise ApiError(
                    410, "Expired",
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter.",
                )
        else:
            snapshot, start = self.resource_version, None
        objects = self._state_at(plural, snapshot)
        keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
        if start is not None:
            keys = keys[bisect.bisect_right(keys, start):]
        items, last, position = [], None, 0
        for position, key in enumerate(keys, 1):
            obj = objects[key]
            if labels(obj) and fields(obj):
                items.append(obj)
                last = key
                if limit and len(items) == limit:
                    break
        else:
            position = len(keys)
        metadata: dict = {"resourceVersion": str(snapshot)}
        if position < len(keys):
            metadata["continue"] = _encode_continue(snapshot, last)
            if not label_selector and not field_selector:
                metadata["remainingItemCount"] = len(keys) - position
        return {"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": metadata, "items": items}

    def matchers(self, rtype: ResourceType, label_selector, field_selector) -> tuple[Matcher, Matcher]:
        try:
            return parse_labels(label_selector), parse_fields(field_selector, rtype.fields)
        except SelectorError as error:
            raise ApiError(400, "BadRequest", str(error)) from None

    def changes_since(self, resource_version: int) -> list[Change]:
        """The changes after a resourceVersion; 410 Expired if they are forgotten."""
        if resource_version < self.oldest:
            raise ApiError(
                410, "Expired", f"too old resource version: {resource_version} ({self.oldest})"
            )
        versions = [change.resource_version for change in self.history]
        return self.history[bisect.bisect_right(versions, resource_version):]

    def _state_at(self, plural: str, snapshot: int) -> dict[Key, dict]:
        current = self.objects[plural]
        if snapshot >= self.resource_version:
            return current
        state = dict(current)
        for change in reversed(self.history):
            if change.resource_version <= snapshot:
                break
            if change.plural != plural:
                continue
            if change.previous is None:
                del state[change.key]
            else:
                state[change.key] = change.previous
        return state


def _encode_continue(resource_version: int, key: Key) -> str:
    # The shape of the real token: base64 of {"v", "rv", "start"}.
    start = f"{key[0]}/{key[1]}\x00" if key[0] else f"{key[1]}\x00"
    text = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": start})
    return base64.urlsafe_b64encode(text.encode()).decode()


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        start = data["start"].rstrip("\x00")
        namespace, _, name = start.rpartition("/")
        return int(data["rv"]), (namespace, name)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ApiError(400, "BadRequest", "continue key is not valid") from None
