"""The part of Go's text/template that CoreDNS `template` stanzas are written in.

Supported, with Go's meaning:

- text and actions ``{{ PIPELINE }}``, trim markers ``{{-`` and ``-}}``,
  comments ``{{/* ... */}}``;
- operands: fields and chains of them (``.Name``, ``.Group.b``,
  ``.Question.Name``), string literals ("..." with Go escapes, `raw`),
  integers, and parenthesised pipelines (``(index .Match 1)``);
- a method call ``.Meta "key"``;
- functions ``index``, ``len``, ``print``, ``printf`` (%s %d %v %x %X %o %q
  with flags and widths) and CoreDNS's ``parseInt``;
- pipes, ``X | f a`` being ``f a X``.

Everything else (``if``, ``range``, ``with``, ``define``, ``template``,
``block``, variables ``$x``, other functions, unknown fields) is refused when
the template is parsed, so that a Corefile using it fails at start-up rather
than at the first query. Execution errors (``index .Match 9`` when there are
fewer groups, ``parseInt "gg" 16 8``) raise `ExecError`, as Go's Execute does.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import attrs

__all__ = ["Template", "TemplateSyntaxError", "ExecError", "parse"]


class TemplateSyntaxError(ValueError):
    """A template that does not parse, or uses a construct outside the supported subset."""


class ExecError(ValueError):
    """A template that failed while executing (Go's "error calling ...")."""


_KEYWORDS = ("if", "else", "end", "range", "with", "define", "template", "block", "break", "continue", "nil")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<number>[-+]?\d+)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<var>\$[A-Za-z0-9_]*)
      | (?P<punct>[()|])
    )""",
    re.X,
)
_GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


@attrs.frozen
class Field:
    """.A.B: a chain of names; an empty chain is the dot itself."""

    names: tuple[str, ...]

    def __str__(self) -> str:
        return "." + ".".join(self.names) if self.names else "."


@attrs.frozen
class Literal:
    value: Any
    text: str

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class Call:
    """A function (`index .Match 1`) or method (`.Meta "key"`) with its arguments."""

    function: str | Field
    args: tuple

    def __str__(self) -> str:
        return " ".join([str(self.function), *map(str, self.args)])


@attrs.frozen
class Pipeline:
    commands: tuple  # of Call | Field | Literal | Chain
    #: Fields following a parenthesised pipeline: (index .Message.Question 0).Name
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        return " | ".join(map(str, self.commands))


@attrs.frozen
class Chain:
    """A parenthesised pipeline and the fields after it."""

    pipeline: Pipeline
    names: tuple[str, ...]

    def __str__(self) -> str:
        return f"({self.pipeline})" + "".join("." + name for name in self.names)


def _go_string(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _GO_ESCAPES.get(m.group(1), m.group(0)), body)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


class _Parser:
    def __init__(self, text: str, methods: frozenset, functions: Mapping):
        self.tokens = self._tokenize(text)
        self.i = 0
        self.methods = methods
        self.functions = functions

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, i = [], 0
        while i < len(text):
            if text[i:].strip() == "":
                break
            match = _TOKEN.match(text, i)
            if match is None or match.end() == i:
                raise TemplateSyntaxError(f"unexpected {text[i:].strip()[:10]!r} in action")
            kind = match.lastgroup
            tokens.append((kind, match.group(kind)))
            i = match.end()
        return tokens

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        self.i += 1
        return token

    def pipeline(self, closing: str | None) -> Pipeline:
        commands = [self.command()]
        while self.peek() == ("punct", "|"):
            self.take()
            command = self.command()
            if not isinstance(command, Call):
                raise TemplateSyntaxError(f"a pipe needs a function or method after it, not {command}")
            commands.append(command)
        if self.peek()[1] != closing and self.peek()[0] is not None:
            raise TemplateSyntaxError(f"unexpected {self.peek()[1]!r} in action")
        return Pipeline(tuple(commands))

    def operand(self):
        kind, value = self.take()
        if kind == "string":
            return Literal(_go_string(value), value)
        if kind == "raw":
            return Literal(value[1:-1], value)
        if kind == "number":
            return Literal(int(value), value)
        if kind == "field":
            return Field(tuple(value.split(".")[1:]) if value != "." else ())
        if kind == "punct" and value == "(":
            inner = self.pipeline(")")
            if self.take() != ("punct", ")"):
                raise TemplateSyntaxError("unclosed left paren")
            names: tuple[str, ...] = ()
            if self.peek()[0] == "field" and self.peek()[1] != ".":
                names = tuple(self.take()[1].split(".")[1:])
            return Chain(inner, names)
        if kind == "var":
            raise TemplateSyntaxError(f"template variables ({value}) are not supported")
        if kind == "ident":
            if value in _KEYWORDS:
                raise TemplateSyntaxError(f"{value!r} actions are not supported (only fields, index, parseInt, len, print, printf)")
            if value in ("true", "false"):
                return Literal(value == "true", value)
            raise TemplateSyntaxError(f"function {value!r} is not supported (only index, parseInt, len, print, printf)")
        raise TemplateSyntaxError(f"unexpected {value!r} in operand" if value else "missing value in action")

    def command(self):
        kind, value = self.peek()
        if kind == "ident" and value in self.functions:
            self.take()
            args = []
            while self.peek()[0] not in (None,) and self.peek() not in (("punct", "|"), ("punct", ")")):
                args.append(self.operand())
            return Call(value, tuple(args))
        first = self.operand()
        args = []
        while self.peek()[0] not in (None,) and self.peek() not in (("punct", "|"), ("punct", ")")):
            args.append(self.operand())
        if isinstance(first, Field) and (args or first.names in self.methods):
            if first.names not in self.methods:
                raise TemplateSyntaxError(f"{first} is not a method and takes no arguments")
            return Call(first, tuple(args))
        if args:
            raise TemplateSyntaxError(f"{first} is not a function and takes no arguments")
        return first


@attrs.frozen
class Template:
    """A parsed template: literal text and actions, in order."""

    parts: tuple  # of str | Pipeline
    source: str

    def __str__(self) -> str:
        """The parse tree as text, as Go's Tree.Root.String() (the label of CoreDNS's failure metrics)."""
        return "".join(part if isinstance(part, str) else "{{" + str(part) + "}}" for part in self.parts)

    def uses(self, name: str) -> bool:
        """Does any action read the top-level field `name`?"""
        return any(name in _top_fields(part) for part in self.parts if not isinstance(part, str))

    def execute(self, data: Any, functions: Mapping[str, Callable]) -> str:
        out = []
        for part in self.parts:
            out.append(part if isinstance(part, str) else _print(_run(part, data, functions)))
        return "".join(out)


def _top_fields(node) -> set[str]:
    if isinstance(node, Pipeline):
        return set().union(*(_top_fields(c) for c in node.commands))
    if isinstance(node, Field):
        return {node.names[0]} if node.names else {""}
    if isinstance(node, Call):
        found = set().union(*(_top_fields(a) for a in node.args)) if node.args else set()
        return found | (_top_fields(node.function) if isinstance(node.function, Field) else set())
    if isinstance(node, Chain):
        return _top_fields(node.pipeline)
    return set()


def parse(text: str, functions: Mapping[str, Callable], methods: frozenset = frozenset()) -> Template:
    """Parse a template; methods: the field chains that take arguments (("Meta",)). Raises TemplateSyntaxError.

    Fields are looked up when the template runs, as in Go: a field the data
    does not have is an execution error, not a parse error.
    """
    parts: list = []
    i = 0
    while True:
        start = text.find("{{", i)
        if start < 0:
            parts.append(text[i:])
            break
        literal = text[i:start]
        inner_start = start + 2
        if text.startswith("-", inner_start) and text[inner_start + 1 : inner_start + 2].isspace():
            literal = literal.rstrip()
            inner_start += 2
        end = text.find("}}", inner_start)
        if end < 0:
            raise TemplateSyntaxError("unclosed action")
        inner_end, after = end, end + 2
        if text[inner_end - 1 : inner_end] == "-" and text[inner_end - 2 : inner_end - 1].isspace():
            inner_end -= 1
            while after < len(text) and text[after].isspace():
                after += 1
        parts.append(literal)
        action = text[inner_start:inner_end].strip()
        if action.startswith("/*"):
            if not action.endswith("*/"):
                raise TemplateSyntaxError("unclosed comment")
        else:
            if not action:
                raise TemplateSyntaxError("missing value for command")
            parts.append(_Parser(action, methods, functions).pipeline(None))
        i = after
    return Template(tuple(part for part in parts if part != ""), text)


# --- execution ---------------------------------------------------------------------------


def _lookup(value: Any, name: str, path: str) -> Any:
    if isinstance(value, Mapping):
        # A missing key of a map of strings is the empty string (Go's zero value).
        return value.get(name, "")
    if name in getattr(type(value), "template_fields", ()):
        return getattr(value, name)
    raise ExecError(f"executing at <{path}>: can't evaluate field {name} in type {type(value).__name__}")


def _run(node, data: Any, functions: Mapping[str, Callable], piped: tuple = ()) -> Any:
    if isinstance(node, Pipeline):
        value: tuple = ()
        for command in node.commands:
            value = (_run(command, data, functions, value),)
        return value[0]
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Field):
        value = data
        for name in node.names:
            value = _lookup(value, name, str(node))
        return value
    if isinstance(node, Chain):
        value = _run(node.pipeline, data, functions)
        for name in node.names:
            value = _lookup(value, name, str(node))
        return value
    args = [_run(arg, data, functions) for arg in node.args] + list(piped)
    if isinstance(node.function, Field):
        method = _run(node.function, data, functions)
        call, label = method, str(node.function)
    else:
        call, label = functions[node.function], node.function
    try:
        return call(*args)
    except ExecError:
        raise
    except (TypeError, ValueError, IndexError, KeyError) as error:
        raise ExecError(f'executing at <{node}>: error calling {label}: {error}') from None


def _print(value: Any) -> str:
    """fmt.Sprint of a value: Go's forms of booleans, nil, slices and maps."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(map(_print, value)) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{key}:{_print(value[key])}" for key in sorted(value)) + "]"
    return str(value)


# --- the functions ------------------------------------------------------------------------


def go_index(item, *keys):
    """Go's index: slices by integer, maps by key."""
    for key in keys:
        if isinstance(item, Mapping):
            item = item.get(key, "")
        elif isinstance(key, int) and not isinstance(key, bool):
            if not 0 <= key < len(item):
                raise IndexError(f"index out of range: {key}")
            item = item[key]
        else:
            raise TypeError(f"cannot index slice/array with type {type(key).__name__}")
    return item


def go_len(item) -> int:
    return len(item)


def go_print(*args) -> str:
    # fmt.Sprint: spaces between operands when neither is a string.
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_print(arg))
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([sdvxXoq%])")


def go_printf(format: str, *args) -> str:
    values = list(args)

    def verb(match: re.Match) -> str:
        flags, width, precision, kind = match.groups()
        if kind == "%":
            return "%"
        if not values:
            return f"%!{kind}(MISSING)"
        value = values.pop(0)
        if kind in "sv":
            text = _print(value)
            if precision is not None and kind == "s":
                text = text[: int(precision)]
            spec = "s"
        elif kind == "q":
            text, spec = _go_quote(str(value)), "s"
        else:
            if not isinstance(value, int):
                return f"%!{kind}({type(value).__name__}={_print(value)})"
            text, spec = value, {"d": "d", "x": "x", "X": "X", "o": "o"}[kind]
        python_flags = flags.replace(" ", "")
        if "-" in flags:
            python_flags = "<" + python_flags.replace("-", "").replace("0", "")
        elif spec == "s":
            python_flags = ">" + python_flags.replace("0", "")
        return format_spec(text, python_flags, width, spec)

    return _VERB.sub(verb, format)


def format_spec(value, flags: str, width: str, spec: str) -> str:
    align = flags[:1] if flags[:1] in "<>" else ""
    rest = flags[1:] if align else flags
    zero = "0" if "0" in rest and not align else ""
    sign = "+" if "+" in rest else ""
    alt = "#" if "#" in rest and spec in "xXo" else ""
    return format(value, f"{align}{sign}{alt}{zero}{width}{spec}")


def parse_uint(text: str, base: int, bits: int) -> int:
    """strconv.ParseUint, as CoreDNS's parseInt calls it."""
    if not isinstance(text, str):
        raise TypeError(f"wrong type for value; expected string; got {type(text).__name__}")
    original = text
    digits = text.replace("_", "") if base == 0 else text
    try:
        if base == 0:
            value = int(digits, 0) if not (len(digits) > 1 and digits[0] == "0" and digits[1].isdigit()) else int(digits, 8)
        elif 2 <= base <= 36:
            if not text or not text.isalnum():
                raise ValueError
            value = int(text, base)
        else:
            raise ValueError(f"strconv.ParseUint: parsing {_go_quote(original)}: invalid base {base}")
    except ValueError as error:
        if str(error).startswith("strconv"):
            raise
        raise ValueError(f"strconv.ParseUint: parsing {_go_quote(original)}: invalid syntax") from None
    if value < 0:
        raise ValueError(f"strconv.ParseUint: parsing {_go_quote(original)}: invalid syntax")
    if bits == 0:
        bits = 64
    if value >= 1 << bits:
        raise ValueError(f"strconv.ParseUint: parsing {_go_quote(original)}: value out of range")
    return value


FUNCTIONS: dict[str, Callable] = {
    "index": go_index,
    "len": go_len,
    "print": go_print,
    "printf": go_printf,
    "parseInt": parse_uint,
}
