"""The operator's guide documents exactly what the parser accepts, and every metric the code defines.

docs/operators-guide.md has a "Corefile reference" section: one `### name`
heading per directive, and under it a table whose rows are the directive's
forms and options, each with an example line, plus a "Not supported:" line
naming CoreDNS options Wayfinder refuses. These tests hold that reference
and the parser together:

- the documented directives are the declared ones (`discovery.plugin`);
- every documented example loads with the real parser;
- every name the parser treats as an option (found among the string
  constants of the directive's setup module, then probed) is documented;
- an unknown option, and every "Not supported" one, is refused.

The "Metrics" section is held to the metric names defined in the code.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import re

import attrs
import pytest

from discovery.config import load_text
from discovery.plugin import names as supported_directives, spec as declared
from discovery.corefile import CorefileError

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operators-guide.md"
#: No directive has an option of this name.
UNKNOWN_OPTION = "wayfinder_no_such_option"
_CODE_SPAN = re.compile(r"`([^`]+)`")
_UNESCAPED_BAR = re.compile(r"(?<!\\)\|")
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*\Z")
_METRIC = re.compile(r"(coredns|wayfinder)_[a-z0-9_]+\Z")


@attrs.frozen
class Row:
    """One table row: a form of the directive line, an option, or a line of entries."""

    syntax: str
    #: Lines of the example: for the directive's own form, the directive line
    #: then any lines its block needs; for an option, lines of the block.
    example: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.syntax.split()[0]

    @property
    def is_entry(self) -> bool:
        """A line of data rather than an option (hosts' inline entries): its syntax starts with a placeholder."""
        return not _IDENTIFIER.match(self.name)


@attrs.frozen
class DirectiveReference:
    name: str
    rows: tuple[Row, ...]
    refused: tuple[str, ...]

    @property
    def forms(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.name == self.name)

    @property
    def options(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.name != self.name)

    @property
    def option_names(self) -> set[str]:
        return {row.name for row in self.options if not row.is_entry}

    @property
    def takes_entries(self) -> bool:
        return any(row.is_entry for row in self.options)


def section(text: str, title: str) -> str:
    """The body of the `## title` section of a Markdown document."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{GUIDE.name} has no '## {title}' section"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of each Markdown table row whose first cell holds code (header and rule rows have none)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in _UNESCAPED_BAR.split(line.strip().strip("|"))]
        if cells and _CODE_SPAN.match(cells[0]):
            rows.append(cells)
    return rows


def parse_reference(text: str) -> dict[str, DirectiveReference]:
    reference = {}
    body = section(text, "Corefile reference")
    for match in re.finditer(r"^### `?([a-z][a-z0-9_]*)`?\n(.*?)(?=^### |\Z)", body, re.M | re.S):
        name, block = match.group(1), match.group(2)
        rows = tuple(
            Row(_CODE_SPAN.match(cells[0]).group(1), tuple(_CODE_SPAN.findall(cells[1])))
            for cells in table_rows(block)
        )
        refused_line = re.search(r"^Not supported: (.*)$", block, re.M)
        refused = tuple(_CODE_SPAN.findall(refused_line.group(1))) if refused_line else ()
        reference[name] = DirectiveReference(name, rows, refused)
    return reference


REFERENCE = parse_reference(GUIDE.read_text(encoding="utf-8"))


#: Directives that load only beside another in their block, and that one's line.
NEEDS = {"webhook": "kubernetes cluster.local"}


def corefile(head: str, block: list[str]) -> str:
    """A one-block Corefile holding the directive line and, when given, its block (and what it needs, after it)."""
    needed = NEEDS.get(head.split()[0])
    after = f"    {needed}\n" if needed else ""
    if not block:
        return f".:53 {{\n    {head}\n{after}}}\n"
    lines = "".join(f"        {line}\n" for line in block)
    return f".:53 {{\n    {head} {{\n{lines}    }}\n{after}}}\n"


def with_option(reference: DirectiveReference, option_lines: list[str]) -> str:
    """The directive's first documented form with option_lines added to the block it needs."""
    head, *needed = reference.forms[0].example
    given = {line.split()[0] for line in option_lines}
    return corefile(head, [line for line in needed if line.split()[0] not in given] + option_lines)


def outcome(text: str) -> str | None:
    """None when the text loads, else the parser's error message."""
    try:
        load_text(text, "Corefile")
    except CorefileError as error:
        return str(error)
    return None


def string_constants(module_name: str) -> set[str]:
    """Every identifier-like string literal in a module's source: the option names its parser compares with, among others."""
    tree = ast.parse(pathlib.Path(importlib.import_module(module_name).__file__).read_text(encoding="utf-8"))
    return {
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _IDENTIFIER.match(node.value)
    }


def documented(name: str) -> DirectiveReference:
    assert name in REFERENCE, f"{name} has no '### {name}' section in {GUIDE.name}"
    return REFERENCE[name]


# --- the directives ---------------------------------------------------------------------


def test_reference_documents_exactly_the_supported_directives():
    """The reference has a section for every directive the parser supports, and for no other."""
    supported, listed = set(supported_directives()), set(REFERENCE)
    assert not supported - listed, f"supported but not documented: {sorted(supported - listed)}"
    assert not listed - supported, f"documented but not supported: {sorted(listed - supported)}"


def test_reference_follows_the_chain_order():
    """The sections come in the order a query passes the directives, as `wayfinder -plugins` lists them."""
    assert list(REFERENCE) == supported_directives()


@pytest.mark.parametrize("name", supported_directives())
def test_each_directive_documents_its_own_line(name):
    """Each directive's table opens with the form of the directive line itself, with an example."""
    reference = documented(name)
    assert reference.forms, f"{name}: no row for the '{name} ...' line itself"
    for row in reference.rows:
        assert row.example, f"{name}: the row for {row.syntax!r} has no example"


def documented_examples():
    for reference in REFERENCE.values():
        for row in reference.forms:
            yield pytest.param(reference, row, id=f"{reference.name}:{row.example[0]}")
        for row in reference.options:
            yield pytest.param(reference, row, id=f"{reference.name}:{row.syntax}")


@pytest.mark.parametrize("reference, row", list(documented_examples()))
def test_documented_example_loads(reference, row):
    """Every documented form and option, written as its example shows, loads with the real parser."""
    if row in reference.forms:
        text = corefile(row.example[0], list(row.example[1:]))
    else:
        text = with_option(reference, list(row.example))
    assert outcome(text) is None, f"{row.syntax!r} documented with example {row.example}:\n{text}"


@pytest.mark.parametrize("name", supported_directives())
def test_parser_accepts_no_undocumented_option(name):
    """A name the parser treats differently from an unknown option is a documented option or a refused one."""
    reference = documented(name)
    known = reference.option_names | set(reference.refused)
    unknown = outcome(with_option(reference, [UNKNOWN_OPTION]))
    undocumented = []
    for candidate in sorted(string_constants(declared(name).setup.__module__) - known):
        as_unknown = None if unknown is None else unknown.replace(UNKNOWN_OPTION, candidate)
        if outcome(with_option(reference, [candidate])) != as_unknown:
            undocumented.append(candidate)
    assert not undocumented, f"{name}: the parser knows options the reference does not list: {undocumented}"


@pytest.mark.parametrize("name", [name for name, reference in REFERENCE.items() if not reference.takes_entries])
def test_unknown_option_is_refused(name):
    """A line in the directive's block that is no documented option stops the Corefile from loading."""
    assert outcome(with_option(REFERENCE[name], [UNKNOWN_OPTION])) is not None


def refused_options():
    for reference in REFERENCE.values():
        for option in reference.refused:
            yield pytest.param(reference, option, id=f"{reference.name}:{option}")


@pytest.mark.parametrize("reference, option", list(refused_options()))
def test_not_supported_option_is_refused(reference, option):
    """A CoreDNS option the reference lists as not supported stops the Corefile from loading, naming it."""
    message = outcome(with_option(reference, [f"{option} x"]))
    assert message is not None and option in message


# --- the metrics ------------------------------------------------------------------------


def defined_metric_names() -> set[str]:
    """Metric names in the source of the discovery and webhook packages, as defined (a counter without _total)."""
    names = set()
    for package in ("discovery", "webhook"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and _METRIC.match(node.value):
                    names.add(node.value)
    return names


def base_name(name: str) -> str:
    """prometheus_client exposes a counter defined as X as X_total."""
    return name.removesuffix("_total")


def test_metric_reference_lists_every_metric():
    """The Metrics section lists every metric the code defines, and no other."""
    documented_names = {
        _CODE_SPAN.match(cells[0]).group(1).split("{")[0]
        for cells in table_rows(section(GUIDE.read_text(encoding="utf-8"), "Metrics"))
    }
    defined = {base_name(name) for name in defined_metric_names()}
    listed = {base_name(name) for name in documented_names}
    assert defined, "no metric definitions found in the source"
    assert not defined - listed, f"defined but not documented: {sorted(defined - listed)}"
    assert not listed - defined, f"documented but not defined: {sorted(listed - defined)}"
