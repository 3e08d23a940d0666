"""`wayfinder check`: would this Corefile start, and where would it answer otherwise than CoreDNS?

The Corefile is loaded by the code that loads it at start-up
(`discovery.config.assemble`), so what this reports is what start-up would
do; there is no second list of what is supported. To report every problem
rather than the first, a directive line that stops the load is set aside
and the load tried again without it, until the rest loads (a server block
whose key is at fault is set aside whole). The documented departures from
CoreDNS (`discovery.departures`) are reported beside the lines they apply to.

Input: a Corefile file, standard input (``-``), or a ConfigMap as kubectl
prints it (``kubectl get configmap coredns -o yaml``), whose ``Corefile``
key is read. coredns-custom files (AKS and k3s mount that ConfigMap at
``/etc/coredns/custom`` and the Corefile imports ``custom/*.override`` and
``custom/*.server``) may be given beside it, as files, a folder of them, or
the ConfigMap's YAML: an ``import`` is matched by file name against them.

Exit status: 0 when the Corefile would start (departures are reported, not
failed), 1 when it would not, 2 for a usage error. ``-format json`` prints
the same report as one JSON object.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from typing import Iterable, Mapping, TextIO

import attrs
import yaml

from .config import DEFAULT_DNS_PORT, assemble
from .corefile import CorefileError, Directive, ServerBlockSource, parse
from .departures import Departure, departures_for

__all__ = ["Line", "Report", "check_text", "read_custom", "corefile_from", "main"]

#: The exit statuses, for CI pipelines.
EXIT_LOADS, EXIT_FAILS, EXIT_USAGE = 0, 1, 2


@attrs.frozen
class Line:
    """One line of the Corefile that the report speaks of: a server block key or a directive line."""

    file: str
    line: int
    #: The line as parsed: the keys, or the directive's name and arguments.
    text: str
    #: 0 for a server block's keys, 1 for its directives, 2 and more for options.
    depth: int
    errors: tuple[str, ...] = ()
    departures: tuple[Departure, ...] = ()

    @property
    def status(self) -> str:
        return "error" if self.errors else ("differs" if self.departures else "ok")


@attrs.frozen
class Report:
    """What a Corefile does at start-up, line by line."""

    lines: tuple[Line, ...]
    #: Errors at no line of a server block (a Corefile that does not parse, an unreadable import).
    other_errors: tuple[str, ...] = ()

    @property
    def errors(self) -> int:
        return len(self.other_errors) + sum(len(line.errors) for line in self.lines)

    @property
    def loads(self) -> bool:
        return self.errors == 0

    @property
    def exit_status(self) -> int:
        return EXIT_LOADS if self.loads else EXIT_FAILS

    def to_json(self) -> dict:
        """The report as plain data (`-format json`), for pipelines that read it."""
        return {
            "loads": self.loads,
            "errors": self.errors,
            "other_errors": list(self.other_errors),
            "lines": [
                {
                    "file": line.file,
                    "line": line.line,
                    "text": line.text,
                    "depth": line.depth,
                    "status": line.status,
                    "errors": list(line.errors),
                    "departures": [
                        {"key": d.key, "text": d.text, "source": d.source} for d in line.departures
                    ],
                }
                for line in self.lines
            ],
        }

    def render(self) -> str:
        out = [f"error: {message}" for message in self.other_errors]
        for line in self.lines:
            where = f"{line.file}:{line.line}"
            indent = "  " * line.depth
            if line.depth == 0:
                out.append(f"{where}: {'error' if line.errors else 'block'}: {line.text}")
            else:
                out.append(f"{where}: {'error' if line.errors else 'ok'}: {indent}{line.text}")
            for message in line.errors:
                out.append(f"{where}:   stops start-up: {message}")
            for departure in line.departures:
                out.append(f"{where}:   differs from CoreDNS [{departure.key}]: {departure.text}")
        departures = sum(len(line.departures) for line in self.lines)
        if self.loads:
            out.append(f"the Corefile loads; {departures} documented difference(s) from CoreDNS apply")
        else:
            out.append(f"the Corefile would stop start-up: {self.errors} error(s); "
                       f"{departures} documented difference(s) from CoreDNS apply to the rest")
        return "\n".join(out) + "\n"


# --- loading, error by error ---------------------------------------------------------


def _lines_of(directive: Directive) -> set[tuple[str, int]]:
    found = {(directive.file, directive.line)}
    for child in directive.block:
        found |= _lines_of(child)
    return found


def _set_aside(blocks: list[ServerBlockSource], error: CorefileError) -> list[ServerBlockSource] | None:
    """blocks without the directive (or block) the error is at; None when it is at none of them."""
    where = (error.file, error.line)
    for index, block in enumerate(blocks):
        for directive in block.directives:
            if where in _lines_of(directive):
                kept = tuple(d for d in block.directives if d is not directive)
                return blocks[:index] + [attrs.evolve(block, directives=kept)] + blocks[index + 1:]
    for index, block in enumerate(blocks):
        if where == (block.file, block.line):
            return blocks[:index] + blocks[index + 1:]
    return None


def _start_up_errors(blocks: list[ServerBlockSource], file: str, dns_port: int) -> list[CorefileError]:
    """Every error the start-up load would raise, one after the other."""
    errors: list[CorefileError] = []
    seen = set()
    # Each round sets one line or block aside: the rounds are bounded.
    for _ in range(sum(len(block.directives) + 1 for block in blocks) + 1):
        try:
            assemble(blocks, file, dns_port)
            break
        except CorefileError as error:
            if (error.file, error.line, error.message) not in seen:
                seen.add((error.file, error.line, error.message))
                errors.append(error)
            remaining = _set_aside(blocks, error)
            if not remaining:
                # Nothing left to try, or the error is at no line we can set aside.
                break
            blocks = remaining
        except Exception as error:  # a bug in a setup function: reported, never a crash
            errors.append(CorefileError(file, 0, f"unexpected error while loading (a bug; please report it): {error!r}"))
            break
    return errors


def _walk(directive: Directive, depth: int, parent: str | None) -> Iterable[tuple[Directive, int, str | None]]:
    yield directive, depth, parent
    top = parent if parent is not None else directive.name
    for child in directive.block:
        yield from _walk(child, depth + 1, top)


def _text(directive: Directive) -> str:
    return " ".join((directive.name, *directive.args))


def _report(blocks: list[ServerBlockSource], errors: list[CorefileError]) -> Report:
    by_line: dict[tuple[str, int], list[str]] = {}
    for error in errors:
        by_line.setdefault((error.file, error.line), []).append(error.message)
    lines: list[Line] = []
    shown: set[tuple[str, int]] = set()

    def add(file: str, line: int, text: str, depth: int, departures=()) -> None:
        # A snippet imported twice is one line of its file: reported once.
        if (file, line) in shown:
            return
        shown.add((file, line))
        lines.append(Line(file, line, text, depth, tuple(by_line.get((file, line), ())), tuple(departures)))

    for block in blocks:
        add(block.file, block.line, " ".join(block.keys), 0)
        if (block.file, block.line) in by_line:
            # A block set aside whole: its directives were never read.
            continue
        for top in block.directives:
            if (top.file, top.line) in by_line:
                # A directive that does not load at all: its options were never read.
                add(top.file, top.line, _text(top), 1)
                continue
            for directive, depth, parent in _walk(top, 1, None):
                if depth == 1:
                    departures = departures_for(directive.name, None, directive.args)
                elif depth == 2:
                    departures = departures_for(parent, directive.name, directive.args)
                else:
                    departures = ()
                add(directive.file, directive.line, _text(directive), depth, departures)
    other = tuple(str(e) for e in errors if (e.file, e.line) not in shown)
    return Report(tuple(lines), other)


def check_text(
    text: str,
    file: str = "Corefile",
    custom: Mapping[str, str] | None = None,
    dns_port: int = DEFAULT_DNS_PORT,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Check Corefile text as start-up would load it; custom maps coredns-custom file names to their text."""
    custom = dict(custom or {})

    def read_file(path: str) -> str:
        if path in custom:
            return custom[path]
        with open(path, encoding="utf-8") as f:
            return f.read()

    def find_imports(pattern: str, full: str) -> list[str] | None:
        wanted = os.path.basename(full)
        matches = sorted(name for name in custom if fnmatch.fnmatchcase(os.path.basename(name), wanted))
        return matches or None

    try:
        blocks = parse(text, file, environ, read_file=read_file, find_imports=find_imports)
    except CorefileError as error:
        return Report((), (str(error),))
    return _report(blocks, _start_up_errors(blocks, file, dns_port))


# --- input -----------------------------------------------------------------------------------


class InputError(Exception):
    """An input that is not a Corefile, a coredns-custom file or such a ConfigMap."""


def _configmap_data(text: str) -> dict[str, str] | None:
    """The data of a ConfigMap as kubectl prints it (YAML or JSON); None for anything else."""
    if "ConfigMap" not in text:
        return None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict) or document.get("kind") != "ConfigMap":
        return None
    data = document.get("data") or {}
    return {str(key): str(value) for key, value in data.items()}


def corefile_from(text: str, file: str) -> str:
    """The Corefile in text: the text itself, or a ConfigMap's `Corefile` key."""
    data = _configmap_data(text)
    if data is None:
        return text
    if "Corefile" not in data:
        raise InputError(f"{file}: a ConfigMap without a Corefile key (keys: {', '.join(sorted(data)) or 'none'})")
    return data["Corefile"]


#: No Corefile or ConfigMap is near this size (the API server stores at most 1.5 MiB per object).
MAX_INPUT_BYTES = 16 * 1024 * 1024


def _bounded_text(stream, name: str) -> str:
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{name}: larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; not a Corefile")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return _bounded_text(f, path)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None


def read_custom(paths: Iterable[str]) -> dict[str, str]:
    """coredns-custom files by the name an import sees: files, folders of them, or the ConfigMap's YAML."""
    custom: dict[str, str] = {}
    for path in paths:
        if os.path.isdir(path):
            # A mounted ConfigMap also holds ..data and timestamped folders: hidden, skipped.
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if not name.startswith(".") and os.path.isfile(full):
                    custom[full] = _read(full)
            continue
        text = _read(path)
        data = _configmap_data(text)
        if data is None:
            custom[path] = text
        else:
            # An import names files of the mounted ConfigMap: its keys.
            base = os.path.splitext(path)[0]
            for key, value in data.items():
                custom[f"{base}/{key}"] = value
    return custom


class _Encoded:
    """A text stream read as bytes (for a stdin without a binary buffer, as in tests)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def read(self, size: int) -> bytes:
        return self._stream.read(size).encode("utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wayfinder check",
        description=(
            "Report, line by line, whether a Corefile would load in Wayfinder, what would stop start-up, "
            "and where Wayfinder's answers differ from CoreDNS's. Exit status 0: it would start; "
            "1: it would not; 2: usage error."
        ),
        allow_abbrev=False,
    )
    parser.add_argument(
        "-conf", default="Corefile", metavar="FILE",
        help="the Corefile, '-' for standard input, or the coredns ConfigMap's YAML (default: ./Corefile)",
    )
    parser.add_argument(
        "custom", nargs="*", metavar="CUSTOM",
        help="coredns-custom files its imports read: files, a folder, or the coredns-custom ConfigMap's YAML",
    )
    parser.add_argument("-custom", dest="custom_option", action="append", default=[], metavar="PATH",
                        help="the same as a CUSTOM argument; may be repeated")
    parser.add_argument(
        "-dns.port", dest="dns_port", type=int, default=DEFAULT_DNS_PORT, metavar="N",
        help="default port for server blocks that name none (default: 53)",
    )
    parser.add_argument("-format", choices=("text", "json"), default="text",
                        help="the report as text lines (default) or one JSON object")
    return parser


def run(
    conf: str,
    custom_paths: Iterable[str],
    dns_port: int,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    output: str = "text",
) -> int:
    """Check one Corefile and print the report; the exit status."""
    try:
        if conf == "-":
            file, text = "stdin", _bounded_text(getattr(stdin, "buffer", None) or _Encoded(stdin), "stdin")
        else:
            file, text = conf, _read(conf)
        corefile = corefile_from(text, file)
        custom = read_custom(custom_paths)
    except InputError as e:
        print(f"wayfinder check: {e}", file=stderr)
        return EXIT_USAGE
    report = check_text(corefile, file, custom, dns_port)
    if output == "json":
        stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        stdout.write(report.render())
    return report.exit_status


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run(
        args.conf, [*args.custom, *args.custom_option], args.dns_port, sys.stdin, sys.stdout, sys.stderr, args.format
    )
