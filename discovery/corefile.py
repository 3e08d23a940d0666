"""The Corefile grammar, as CoreDNS reads it (its fork of the Caddyfile v1).

Text becomes a tree here, and nothing more: server blocks with their keys,
and directives, each a name, its arguments on the same line and an optional
block of sub-directives (nested to any depth). What a directive means is for
its own setup function (see `discovery.config`).

The grammar:

- tokens are separated by white space; ``"..."`` quotes a token (``\\"``
  inside it is a quote); ``#`` starts a comment that runs to the end of the
  line;
- ``{$NAME}`` and ``{%NAME%}`` in a token are replaced by that environment
  variable (empty when unset);
- a server block is one or more keys (separated by white space or commas)
  followed by ``{`` at the end of that line, its directives, and ``}`` alone
  on a line; a file holding a single server block may leave out the braces;
- a directive line that ends with ``{`` opens a block that a ``}`` line
  closes;
- ``(name) { ... }`` at the top level defines a snippet; ``import NAME``
  pastes a snippet defined before it, ``import PATTERN`` pastes a file, or
  the files a glob matches (relative to the importing file, sorted; a glob
  with one wildcard at most, which may match nothing), at the top level or
  at the start of any line inside a block. As in CoreDNS, a Corefile may
  expand at most 10,000 imports in all; a cycle is an error naming it.

Every error names the file and line and says what was expected; an error
in imported text also names the import lines that brought it in.
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
import re
from typing import Mapping

import attrs

__all__ = [
    "CorefileError",
    "Token",
    "Directive",
    "ServerBlockSource",
    "parse",
    "parse_file",
    "parse_duration",
    "positive_duration",
]

log = logging.getLogger("wayfinder.import")
#: Glob patterns (absolute) already reported as matching nothing, in this process.
_WARNED_GLOBS: set[str] = set()

_MAX_IMPORT_DEPTH = 32
#: CoreDNS's limit (its caddyfile's maxSnippetExpansions): imports expanded
#: in one Corefile, a glob counting once. It bounds what a few lines can
#: multiply into (a snippet importing another twice, and so on).
MAX_IMPORTS = 10000

#: Where imported text came from: the import lines, innermost first.
ImportChain = tuple[tuple[str, int], ...]


class CorefileError(Exception):
    """A Corefile that cannot be loaded, with the file and line at fault.

    `imported_from` lists the import lines (file, line) that brought that
    line in, innermost first.
    """

    def __init__(self, file: str, line: int, message: str, imported_from: ImportChain = ()):
        self.file = file
        self.line = line
        self.message = message
        self.imported_from = imported_from
        where = "".join(f" (imported at {f}:{n})" for f, n in imported_from)
        super().__init__(f"{file}:{line}: {message}{where}")


@attrs.frozen
class Token:
    text: str
    file: str
    line: int
    #: Quoted tokens are never braces.
    quoted: bool = False
    #: Which import expansion produced the token: two expansions of the same
    #: snippet line are two lines, not one.
    expansion: int = 0
    #: The import lines that pasted it, innermost first.
    imported_from: ImportChain = ()

    @property
    def line_id(self) -> tuple[str, int, int]:
        return (self.file, self.line, self.expansion)

    def is_brace(self, brace: str) -> bool:
        return self.text == brace and not self.quoted

    def error(self, message: str) -> CorefileError:
        return CorefileError(self.file, self.line, message, self.imported_from)


@attrs.frozen
class Directive:
    """One directive line and, when it ends with ``{``, its block."""

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple["Directive", ...] = ()
    has_block: bool = False
    #: The import lines that pasted it, innermost first; not part of its meaning.
    imported_from: ImportChain = attrs.field(default=(), eq=False)

    def error(self, message: str) -> CorefileError:
        return CorefileError(self.file, self.line, message, self.imported_from)

    def expect_args(self, minimum: int = 0, maximum: int | None = None, usage: str = "") -> None:
        """Raise a CorefileError unless the argument count is within bounds."""
        count = len(self.args)
        if count < minimum or (maximum is not None and count > maximum):
            if maximum == minimum:
                wanted = f"{minimum}"
            elif maximum is None:
                wanted = f"at least {minimum}"
            else:
                wanted = f"{minimum} to {maximum}"
            hint = f"; usage: {usage}" if usage else ""
            plural = "" if (maximum if maximum is not None else minimum) == 1 else "s"
            raise self.error(f"{self.name}: expected {wanted} argument{plural}, got {count}{hint}")

    def expect_no_block(self) -> None:
        if self.has_block:
            raise self.error(f"{self.name}: takes no block")

    def expect_no_properties(self) -> None:
        """CoreDNS's `if c.NextBlock() { unknown property }`: an empty block passes, any line in one does not."""
        for option in self.block:
            raise option.error(f"{self.name}: unknown property '{option.name}'")

    def duration(self, text: str, what: str) -> float:
        """A Go duration given to this directive, in seconds; a CorefileError naming `what` and the line if not."""
        try:
            return parse_duration(text)
        except ValueError as e:
            raise self.error(f"{what}: {e}") from None


@attrs.frozen
class ServerBlockSource:
    """A server block as written: its keys and its directives."""

    keys: tuple[str, ...]
    directives: tuple[Directive, ...]
    file: str
    line: int
    imported_from: ImportChain = attrs.field(default=(), eq=False)

    def error(self, message: str) -> CorefileError:
        return CorefileError(self.file, self.line, message, self.imported_from)


# --- lexer -----------------------------------------------------------------

_ENV_REFERENCE = re.compile(r"\{\$([^{}]+)\}|\{%([^{}%]+)%\}")


def _substitute_env(text: str, environ: Mapping[str, str]) -> str:
    if "{" not in text:
        return text
    return _ENV_REFERENCE.sub(lambda m: environ.get(m.group(1) or m.group(2), ""), text)


def _tokenize(text: str, file: str, environ: Mapping[str, str]) -> list[Token]:
    """Split Corefile text into tokens, as the Caddyfile v1 lexer does."""
    tokens: list[Token] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    line = 1
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch == '"':
            start_line = line
            value = []
            i += 1
            while True:
                if i >= n:
                    raise CorefileError(file, start_line, "unterminated quoted string")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    # As the Caddyfile lexer: a backslash escapes only a quote,
                    # and otherwise stays, with the character it precedes.
                    escaped = text[i + 1]
                    value.append('"' if escaped == '"' else ch + escaped)
                    if escaped == "\n":
                        line += 1
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                if ch == "\n":
                    line += 1
                value.append(ch)
                i += 1
            tokens.append(
                Token(_substitute_env("".join(value), environ), file, start_line, quoted=True)
            )
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] != "#":
                i += 1
            tokens.append(Token(_substitute_env(text[start:i], environ), file, line))
    return tokens


# --- imports and snippets -----------------------------------------------------


class _Expander:
    """Splices ``import`` lines and collects snippets, before the tree is built."""

    def __init__(self, environ: Mapping[str, str], read_file, root: str, find_imports=None):
        self.environ = environ
        self.read_file = read_file
        #: (pattern, absolute pattern) -> the files an import pastes, or None
        #: to look on disk; `wayfinder check` resolves coredns-custom files so.
        self.find_imports = find_imports
        self.snippets: dict[str, list[Token]] = {}
        self.counter = itertools.count(1)
        self.imports = 0
        #: The files ("/abs/path") and snippets ("(name)") being expanded,
        #: outermost first: importing one of them again is a cycle.
        self.active: list[str] = [os.path.abspath(root)]

    def load(self, path: str, depth: int, origin: Token | None) -> list[Token]:
        if depth > _MAX_IMPORT_DEPTH:
            raise origin.error(f"imports nested deeper than {_MAX_IMPORT_DEPTH} levels")
        try:
            text = self.read_file(path)
        except OSError as e:
            if origin is None:
                raise CorefileError(path, 0, f"cannot read Corefile: {e.strerror or e}") from e
            raise origin.error(f"cannot import {path}: {e.strerror or e}") from e
        return _tokenize(text, path, self.environ)

    def expand(self, tokens: list[Token], depth: int, top_level: bool) -> list[Token]:
        out: list[Token] = []
        lines = _split_lines(tokens)
        # Braces opened and not yet closed: snippets are defined, and imported
        # files may define them, only outside every block.
        nesting = 0
        # Walk line by line: `import` only counts at the start of a line.
        index = 0
        while index < len(lines):
            line = lines[index]
            first = line[0]
            outside = top_level and nesting == 0
            if outside and _is_snippet_key(line):
                index = self._define_snippet(lines, index)
                continue
            if first.text == "import" and not first.quoted:
                pasted = self._import(line, depth, outside)
            else:
                pasted = line
            nesting += sum(t.is_brace("{") for t in pasted) - sum(t.is_brace("}") for t in pasted)
            out.extend(pasted)
            index += 1
        return out

    def _check_cycle(self, label: str, keyword: Token) -> None:
        if label in self.active:
            chain = " -> ".join(self.active[self.active.index(label):] + [label])
            raise keyword.error(f"import cycle: {chain}")

    def _paste(self, label: str, tokens: list[Token], keyword: Token, depth: int, top_level: bool) -> list[Token]:
        """Expand tokens brought in by the import line of keyword, as one expansion."""
        expansion = next(self.counter)
        chain = ((keyword.file, keyword.line), *keyword.imported_from)
        tokens = [attrs.evolve(t, expansion=expansion, imported_from=chain) for t in tokens]
        self.active.append(label)
        try:
            return self.expand(tokens, depth + 1, top_level)
        finally:
            self.active.pop()

    def _define_snippet(self, lines: list[list[Token]], index: int) -> int:
        line = lines[index]
        key = line[0]
        name = key.text[1:-1]
        if len(line) != 2 or not line[1].is_brace("{"):
            raise key.error(f"snippet {key.text}: expected '{{' after its name")
        if name in self.snippets:
            raise key.error(f"snippet {name!r} is defined twice")
        body: list[Token] = []
        depth = 1
        index += 1
        while index < len(lines):
            for token in lines[index]:
                if token.is_brace("{"):
                    depth += 1
                elif token.is_brace("}"):
                    depth -= 1
                    if depth == 0:
                        break
                body.append(token)
            index += 1
            if depth == 0:
                # Stored as written: an import of it pastes these tokens anew.
                self.snippets[name] = [attrs.evolve(t, expansion=0, imported_from=()) for t in body]
                return index
        raise key.error(f"snippet {key.text}: missing its closing '}}'")

    def _count_import(self, keyword: Token) -> None:
        self.imports += 1
        if self.imports > MAX_IMPORTS:
            raise keyword.error(f"more than {MAX_IMPORTS} imports expanded (CoreDNS's limit)")

    def _import(self, line: list[Token], depth: int, top_level: bool) -> list[Token]:
        keyword = line[0]
        if len(line) != 2:
            # CoreDNS's caddyfile takes no import arguments (Caddy v2's {args[n]} came later).
            raise keyword.error("import: expected exactly one argument (a snippet name or a file pattern)")
        pattern = line[1].text
        if not pattern:
            raise keyword.error("import: the pattern is empty")
        if depth > _MAX_IMPORT_DEPTH:
            raise keyword.error(f"imports nested deeper than {_MAX_IMPORT_DEPTH} levels")
        self._count_import(keyword)
        if pattern in self.snippets:
            self._check_cycle(f"({pattern})", keyword)
            return self._paste(f"({pattern})", self.snippets[pattern], keyword, depth, top_level)
        out: list[Token] = []
        for match in _import_matches(keyword, pattern, self.find_imports):
            label = os.path.abspath(match)
            self._check_cycle(label, keyword)
            tokens = self.load(match, depth + 1, keyword)
            out.extend(self._paste(label, tokens, keyword, depth, top_level))
        return out


def _import_matches(keyword: Token, pattern: str, find_imports=None) -> list[str]:
    """The files `import PATTERN` names, as CoreDNS's caddyfile finds them.

    find_imports(pattern, absolute pattern), when given, may answer instead
    of the file system (None: look on disk).
    """
    base = os.path.dirname(os.path.abspath(keyword.file))
    full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
    if full.count("*") > 1 or full.count("?") > 1 or ("[" in full and "]" in full):
        # Caddy's guard against patterns that take too long to match.
        raise keyword.error(f"import: a glob pattern may only contain one wildcard (*), but has others: {full}")
    found = find_imports(pattern, full) if find_imports is not None else None
    if found is not None:
        return found
    if any(c in full for c in "*?[]"):
        # Go's filepath.Glob: sorted, and '*' matches names starting with '.'
        # too. Matching nothing is not an error: k3s imports
        # /etc/coredns/custom/*.override whether or not any exist.
        matches = sorted(glob.glob(full, include_hidden=True))
        if not matches and full not in _WARNED_GLOBS:
            # CoreDNS's words, but once per pattern: CoreDNS repeats it at
            # every reload check, noise operators work around with dummy
            # files (gardener/gardener#1788, k3s-io/k3s#4919).
            _WARNED_GLOBS.add(full)
            log.warning("No files matching import glob pattern: %s", pattern)
    elif os.path.lexists(full):
        matches = [full]
    else:
        raise keyword.error(f"import: no snippet or file named {pattern!r}")
    for match in matches:
        if os.path.isdir(match):
            raise keyword.error(f"import: {match} is a directory")
    return matches


def _split_lines(tokens: list[Token]) -> list[list[Token]]:
    lines: list[list[Token]] = []
    for token in tokens:
        if lines and lines[-1][-1].line_id == token.line_id:
            lines[-1].append(token)
        else:
            lines.append([token])
    return lines


def _is_snippet_key(line: list[Token]) -> bool:
    text = line[0].text
    return not line[0].quoted and len(text) > 2 and text.startswith("(") and text.endswith(")")


# --- tree ------------------------------------------------------------------------


def _directives(lines: list[list[Token]], index: int, closing: Token | None) -> tuple[tuple[Directive, ...], int]:
    """Parse directive lines from index until a '}' line (or EOF when closing is None)."""
    directives: list[Directive] = []
    while index < len(lines):
        line = lines[index]
        first = line[0]
        if first.is_brace("}"):
            if closing is None:
                raise first.error("unexpected '}' without a matching '{'")
            if len(line) > 1:
                raise first.error(f"unexpected {line[1].text!r} after '}}' (expected a new line)")
            return tuple(directives), index + 1
        if first.is_brace("{"):
            raise first.error("unexpected '{' (expected a directive name)")
        for token in line[1:-1]:
            if token.is_brace("{") or token.is_brace("}"):
                raise token.error(
                    f"unexpected {token.text!r} inside a line ('{{' must end a line, '}}' must stand alone)"
                )
        opens = len(line) > 1 and line[-1].is_brace("{")
        if len(line) > 1 and line[-1].is_brace("}"):
            raise line[-1].error("'}' must stand on a line of its own")
        args = tuple(t.text for t in (line[1:-1] if opens else line[1:]))
        if opens:
            block, index = _directives(lines, index + 1, line[-1])
        else:
            block, index = (), index + 1
        directives.append(
            Directive(first.text, args, first.file, first.line, block=block, has_block=opens,
                      imported_from=first.imported_from)
        )
    if closing is not None:
        raise closing.error("missing '}' to close this '{'")
    return tuple(directives), index


def _server_blocks(tokens: list[Token]) -> list[ServerBlockSource]:
    lines = _split_lines(tokens)
    blocks: list[ServerBlockSource] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        first = line[0]
        keys: list[str] = []
        # Keys run over several lines while a line ends with a comma.
        while True:
            opens = line[-1].is_brace("{")
            key_tokens = line[:-1] if opens else line
            for token in key_tokens:
                if token.is_brace("}"):
                    raise token.error("unexpected '}' without a matching '{'")
                if token.is_brace("{"):
                    raise token.error(
                        "unexpected '{' among server block keys ('{' must end the line)"
                    )
                keys.extend(part for part in token.text.split(",") if part)
            if opens and key_tokens and key_tokens[-1].text.endswith(","):
                raise line[-1].error(
                    "expected another server block key after ',', found '{'"
                )
            if opens or not key_tokens[-1].text.endswith(","):
                break
            index += 1
            if index >= len(lines):
                raise first.error("expected another server block key after ','")
            line = lines[index]
        if not keys:
            raise first.error("expected a server block key (a zone, like '.:53')")
        if opens:
            directives, index = _directives(lines, index + 1, line[-1])
        elif blocks:
            raise first.error(f"expected '{{' after the server block keys {' '.join(keys)}")
        else:
            # A single server block may leave out its braces.
            directives, index = _directives(lines, index + 1, None)
        blocks.append(ServerBlockSource(tuple(keys), directives, first.file, first.line, first.imported_from))
    return blocks


def parse(
    text: str,
    file: str = "Corefile",
    environ: Mapping[str, str] | None = None,
    read_file=None,
    find_imports=None,
) -> list[ServerBlockSource]:
    """Parse Corefile text into server blocks. Raises CorefileError.

    read_file(path) and find_imports(pattern, absolute_pattern) stand in for
    the file system when given (find_imports returns None to fall back to it).
    """
    environ = os.environ if environ is None else environ
    expander = _Expander(environ, read_file or _read_text, file, find_imports)
    tokens = expander.expand(_tokenize(text, file, environ), 0, top_level=True)
    return _server_blocks(tokens)


def parse_file(path: str, environ: Mapping[str, str] | None = None) -> list[ServerBlockSource]:
    """Read and parse a Corefile from disk. Raises CorefileError."""
    environ = os.environ if environ is None else environ
    expander = _Expander(environ, _read_text, path)
    tokens = expander.expand(expander.load(path, 0, None), 0, top_level=True)
    return _server_blocks(tokens)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


# --- shared argument parsing -------------------------------------------------------

# Go's unitMap: "µs" is U+00B5 (micro sign), "μs" U+03BC (Greek mu); both count.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Parse a Go duration ("5s", "1m30s", "250ms") into seconds. Raises ValueError."""
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    body = text
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    pos = 0
    total = 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r} (expected a number and a unit, like 5s or 250ms)")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def positive_duration(option: Directive, text: str, what: str) -> float:
    """A duration above zero for an option, or a CorefileError naming `what` and the option's line."""
    seconds = option.duration(text, what)
    if seconds <= 0:
        raise option.error(f"{what} must be positive")
    return seconds
