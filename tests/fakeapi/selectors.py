"""Label and field selectors, parsed and matched as the API server does.

Written from the API conventions (k8s.io/apimachinery labels.Parse and
fields.ParseSelector), independently of Wayfinder's own selector code, so
that the fake server checks the selectors the informer sends rather than
agreeing with them by construction.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

__all__ = ["SelectorError", "parse_labels", "parse_fields"]

Matcher = Callable[[dict], bool]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_TERM = re.compile(rf"({_KEY})\s+(in|notin)\s*\(\s*([^()]*?)\s*\)\Z")
_COMPARE_TERM = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})\Z")
_EXISTS_TERM = re.compile(rf"(!?)\s*({_KEY})\Z")


class SelectorError(ValueError):
    """A selector the API server would answer 400 Bad Request for."""


def _split_terms(text: str) -> Iterable[str]:
    # Commas separate requirements, except inside the parentheses of a set.
    depth, term = 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            yield "".join(term).strip()
            term = []
        else:
            term.append(char)
    yield "".join(term).strip()


def _label_requirement(term: str) -> Callable[[dict], bool]:
    if match := _SET_TERM.match(term):
        key, operator, values = match.groups()
        members = {v.strip() for v in values.split(",")}
        if not values or "" in members:
            raise SelectorError(f"{term!r}: a set needs one or more values")
        if operator == "in":
            return lambda labels: labels.get(key) in members
        return lambda labels: labels.get(key) not in members
    if match := _COMPARE_TERM.match(term):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if match := _EXISTS_TERM.match(term):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement {term!r}")


def parse_labels(text: str | None) -> Matcher:
    """A matcher of an object's metadata.labels; the empty selector matches everything."""
    if not text or not text.strip():
        return lambda obj: True
    requirements = [_label_requirement(term) for term in _split_terms(text)]

    def matches(obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def field_value(obj: dict, path: str) -> str:
    """A field as field selectors compare it: a string, "" when absent."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_fields(text: str | None, supported: Iterable[str]) -> Matcher:
    """A matcher for a field selector over the fields a resource supports."""
    if not text or not text.strip():
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace", *supported}
    requirements = []
    for term in text.split(","):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", term)
        if not match:
            raise SelectorError(f"invalid field selector term {term!r}")
        path, operator, value = match.groups()
        if path not in allowed:
            raise SelectorError(f'field label not supported: {path}')
        requirements.append((path, operator == "!=", value))

    def matches(obj: dict) -> bool:
        return all((field_value(obj, path) == value) != negate for path, negate, value in requirements)

    return matches
