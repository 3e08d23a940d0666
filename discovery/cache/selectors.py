"""Kubernetes label selectors: parsed from the Corefile, sent to the API, matched locally.

The grammar of labels.Parse, as the API's labelSelector parameter takes it:
comma-separated requirements of the forms ``key``, ``!key``, ``key=value``,
``key==value``, ``key!=value``, ``key in (a,b)`` and ``key notin (a,b)``; a
value may be empty (``key=``, ``key in (a,)``). CoreDNS's `labels` and
`namespace_labels` options go through metav1.ParseToLabelSelector, which also
refuses ``!=``; Wayfinder accepts it, since the API and `matches` both can
apply it. The API applies the selector when Wayfinder watches a cluster; the
manifests source applies it here.
"""

from __future__ import annotations

import re

import attrs

from .objects import Labels

__all__ = ["LabelSelector", "SelectorError"]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?{_NAME}\Z")
_VALUE = re.compile(rf"({_NAME})?\Z")
_TOKEN = re.compile(r"\s*(==|!=|=|\(|\)|,|!|[^\s=!(),]+)")


class SelectorError(ValueError):
    pass


@attrs.frozen
class Requirement:
    key: str
    #: "in", "notin", "exists" or "!exists".
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values

    def to_text(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!exists":
            return "!" + self.key
        if len(self.values) == 1:
            return f"{self.key}{'=' if self.operator == 'in' else '!='}{self.values[0]}"
        return f"{self.key} {self.operator} ({','.join(self.values)})"


@attrs.frozen
class LabelSelector:
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str) -> "LabelSelector":
        """Parse selector text; raises SelectorError saying what was expected."""
        tokens = _tokenize(text)
        requirements = []
        pos = 0

        def expect(what: str) -> str:
            nonlocal pos
            if pos >= len(tokens):
                raise SelectorError(f"expected {what} at the end of {text!r}")
            token = tokens[pos]
            pos += 1
            return token

        while pos < len(tokens):
            negate = tokens[pos] == "!"
            if negate:
                pos += 1
            key = expect("a label key")
            if not _KEY.match(key):
                raise SelectorError(f"{key!r} is not a valid label key")
            operator = tokens[pos] if pos < len(tokens) else ","
            if negate:
                requirements.append(Requirement(key, "!exists"))
            elif operator == ",":
                requirements.append(Requirement(key, "exists"))
            elif operator in ("=", "==", "!="):
                pos += 1
                value = tokens[pos] if pos < len(tokens) and tokens[pos] != "," else ""
                if value:
                    pos += 1
                if not _VALUE.match(value):
                    raise SelectorError(f"{value!r} is not a valid label value")
                requirements.append(Requirement(key, "notin" if operator == "!=" else "in", (value,)))
            elif operator in ("in", "notin"):
                pos += 1
                if expect("'('") != "(":
                    raise SelectorError(f"expected '(' after {operator!r} in {text!r}")
                # Comma-separated, each item empty or one value: "()" and
                # "(a,,b)" hold the empty value, as labels.Parse reads them.
                items: list[list[str]] = [[]]
                while True:
                    value = expect("a value or ')'")
                    if value == ")":
                        break
                    if value == ",":
                        items.append([])
                        continue
                    if items[-1]:
                        raise SelectorError(
                            f"expected ',' or ')' after {items[-1][0]!r} in {text!r}, got {value!r}"
                        )
                    if not _VALUE.match(value):
                        raise SelectorError(f"{value!r} is not a valid label value")
                    items[-1].append(value)
                values = {item[0] if item else "" for item in items}
                requirements.append(Requirement(key, operator, tuple(sorted(values))))
            else:
                raise SelectorError(f"expected '=', '!=', 'in', 'notin' or ',' after {key!r}, got {operator!r}")
            if pos < len(tokens):
                if tokens[pos] != ",":
                    raise SelectorError(f"expected ',' between requirements in {text!r}, got {tokens[pos]!r}")
                pos += 1
                if pos >= len(tokens):
                    raise SelectorError(f"expected a requirement after the last ',' in {text!r}")
        if not requirements:
            raise SelectorError("the selector is empty")
        return cls(tuple(sorted(requirements, key=lambda r: (r.key, r.operator))))

    def matches(self, labels: Labels) -> bool:
        as_dict = dict(labels)
        return all(r.matches(as_dict) for r in self.requirements)

    def to_text(self) -> str:
        """The selector as the API's labelSelector query parameter takes it."""
        return ",".join(r.to_text() for r in self.requirements)


def _tokenize(text: str) -> list[str]:
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SelectorError(f"cannot read {text[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens
