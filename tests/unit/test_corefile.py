"""Specification of the Corefile grammar (CoreDNS's fork of the Caddyfile v1).

Rows are Corefile text and the tree it must become, or the file:line and the
complaint it must raise. What the keys and directives mean (zones, ports,
unknown or repeated directives, an empty Corefile) is assembly's business and
is specified in test_config.py.
"""

import os

import pytest

from discovery.corefile import CorefileError, Directive, parse, parse_duration, parse_file

FIXTURES = os.path.join(os.path.dirname(__file__), "corefiles")


def outline(blocks):
    """Server blocks as plain data: [(keys, directives)], a directive being
    (name, args) or, when it opened a block, (name, args, [sub-directives])."""
    return [(block.keys, _outline_directives(block.directives)) for block in blocks]


def _outline_directives(directives):
    return [
        (d.name, d.args, _outline_directives(d.block)) if d.has_block else (d.name, d.args)
        for d in directives
    ]


def parse_text(text, environ=None):
    return parse(text, file="Corefile", environ=environ or {})


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(".:53 {\n    errors\n}\n", [((".:53",), [("errors", ())])], id="one-key"),
        pytest.param(
            "example.org:53 example.com:1053 {\n whoami\n}\n",
            [(("example.org:53", "example.com:1053"), [("whoami", ())])],
            id="several-keys-and-ports",
        ),
        pytest.param("a.org, b.org,c.org {\n}\n", [(("a.org", "b.org", "c.org"), [])], id="comma-separated-keys"),
        pytest.param("a.org,\n  b.org, \n c.org {\n}\n", [(("a.org", "b.org", "c.org"), [])],
                     id="trailing-comma-continues-keys-on-next-line"),
        pytest.param("dns://.:53 {\n}\n", [(("dns://.:53",), [])], id="dns-scheme-kept-for-assembly"),
        pytest.param("10.0.0.0/8:53 {\n}\n", [(("10.0.0.0/8:53",), [])], id="cidr-key-kept-for-assembly"),
        pytest.param(
            "a.org {\n log\n}\nb.org:1053 {\n errors\n}\n",
            [(("a.org",), [("log", ())]), (("b.org:1053",), [("errors", ())])],
            id="several-server-blocks",
        ),
        pytest.param(
            ".:53 {\n forward . 8.8.8.8 9.9.9.9 {\n  max_fails 3\n  policy random\n }\n}\n",
            [((".:53",), [("forward", (".", "8.8.8.8", "9.9.9.9"), [("max_fails", ("3",)), ("policy", ("random",))])])],
            id="directive-with-block",
        ),
        pytest.param(
            ".:53 {\n a 1 {\n  b 2 {\n   c 3 {\n    d 4\n   }\n  }\n  e\n }\n f\n}\n",
            [((".:53",), [
                ("a", ("1",), [
                    ("b", ("2",), [("c", ("3",), [("d", ("4",))])]),
                    ("e", ()),
                ]),
                ("f", ()),
            ])],
            id="blocks-nested-three-deep",
        ),
        pytest.param(".:53 {\n health {\n }\n}\n", [((".:53",), [("health", (), [])])], id="empty-directive-block"),
        pytest.param(".:53 {\n}\n", [((".:53",), [])], id="empty-server-block"),
        pytest.param(".:53\n", [((".:53",), [])], id="keys-only"),
        pytest.param(
            ".:53\nerrors\nhealth {\n lameduck 5s\n}\nlog\n",
            [((".:53",), [("errors", ()), ("health", (), [("lameduck", ("5s",))]), ("log", ())])],
            id="single-block-without-braces",
        ),
        pytest.param("", [], id="empty"),
        pytest.param("# nothing here\n\n   # at all\n", [], id="only-comments"),
    ],
)
def test_structure(text, expected):
    """Keys, directives, arguments and nested blocks become the tree the text describes."""
    assert outline(parse_text(text)) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            "# head\n.:53 { # after the brace\n # own line\n errors # after a directive\n health { # nested\n"
            "  lameduck 5s # deep\n } # after a closing brace\n} # after the block\n# tail",
            [((".:53",), [("errors", ()), ("health", (), [("lameduck", ("5s",))])])],
            id="comments-anywhere",
        ),
        pytest.param(".:53 {\n log a#b\n}\n", [((".:53",), [("log", ("a",))])], id="hash-in-a-token-starts-a-comment"),
        pytest.param('.:53 {\n log "a#b"\n}\n', [((".:53",), [("log", ("a#b",))])], id="hash-in-quotes-is-text"),
        pytest.param('.:53 {\n log "a b  c"\n}\n', [((".:53",), [("log", ("a b  c",))])], id="quoted-spaces"),
        pytest.param('.:53 {\n log "say \\"hi\\""\n}\n', [((".:53",), [("log", ('say "hi"',))])],
                     id="escaped-quotes"),
        pytest.param('.:53 {\n log "a\\\\b\\\\" x\n}\n', [((".:53",), [("log", ("a\\\\b\\\\", "x"))])],
                     id="backslash-escapes-only-a-quote"),
        pytest.param('.:53 {\n log "" x\n}\n', [((".:53",), [("log", ("", "x"))])], id="empty-quoted-token"),
        pytest.param('.:53 {\n log "{"\n errors\n}\n', [((".:53",), [("log", ("{",)), ("errors", ())])],
                     id="quoted-open-brace-is-an-argument"),
        pytest.param('.:53 {\n log "}" "{" "}"\n}\n', [((".:53",), [("log", ("}", "{", "}"))])],
                     id="quoted-braces-mid-line"),
        pytest.param('.:53 {\n rewrite name regex (.*)\\.x {1}.y\n}\n',
                     [((".:53",), [("rewrite", ("name", "regex", "(.*)\\.x", "{1}.y"))])],
                     id="braces-inside-a-token-are-text"),
        pytest.param("\t.:53 {\r\n\terrors\r\n\tlog  \t x\r\n}\r\n", [((".:53",), [("errors", ()), ("log", ("x",))])],
                     id="tabs-and-crlf"),
        pytest.param("\ufeff.:53 {\n errors\n}\n", [((".:53",), [("errors", ())])], id="byte-order-mark"),
        pytest.param(".:53 {\n log import x\n}\n", [((".:53",), [("log", ("import", "x"))])],
                     id="import-not-at-line-start-is-an-argument"),
    ],
)
def test_lexing(text, expected):
    """Comments, quotes and white space are read as the Caddyfile lexer reads them."""
    assert outline(parse_text(text)) == expected


def test_directives_carry_file_and_line():
    """Every block and directive records the file and the line it starts on."""
    [block] = parse("\n\nexample.org {\n  errors\n\n  health {\n    lameduck 5s\n  }\n}\n", file="/etc/Corefile",
                    environ={})
    errors, health = block.directives
    assert (block.file, block.line) == ("/etc/Corefile", 3)
    assert (errors.file, errors.line) == ("/etc/Corefile", 4)
    assert (health.line, health.block[0].line) == (6, 7)


# --- environment ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, environ, expected",
    [
        pytest.param("{$ZONE}:{$PORT} {\n}\n", {"ZONE": "example.org", "PORT": "1053"},
                     [(("example.org:1053",), [])], id="unix-style-in-key"),
        pytest.param("{%ZONE%}:{$PORT} {\n}\n", {"ZONE": "example.org", "PORT": "1053"},
                     [(("example.org:1053",), [])], id="windows-style-in-key"),
        pytest.param(".:53 {\n forward . {$UPSTREAM}\n}\n", {"UPSTREAM": "10.0.0.2"},
                     [((".:53",), [("forward", (".", "10.0.0.2"))])], id="in-argument"),
        pytest.param(".:53 {\n log pre-{$A}-{%B%}-post\n}\n", {"A": "1", "B": "2"},
                     [((".:53",), [("log", ("pre-1-2-post",))])], id="several-in-one-token"),
        pytest.param('.:53 {\n log "Test {$A} test"\n}\n', {"A": "foobar"},
                     [((".:53",), [("log", ("Test foobar test",))])], id="in-quoted-token"),
        pytest.param(".:53 {\n log {$A}\n}\n", {"A": "two words"},
                     [((".:53",), [("log", ("two words",))])], id="value-with-spaces-stays-one-token"),
        pytest.param(".:53 {\n log x{$UNSET}y\n}\n", {}, [((".:53",), [("log", ("xy",))])], id="unset-is-empty"),
        pytest.param(".:53 {\n log {%A}\n}\n", {"A": "1"}, [((".:53",), [("log", ("{%A}",))])],
                     id="malformed-windows-style-left-alone"),
        pytest.param(".:53 {\n {$D} 1\n}\n", {"D": "errors"}, [((".:53",), [("errors", ("1",))])],
                     id="in-directive-name"),
    ],
)
def test_environment_substitution(text, environ, expected):
    """{$NAME} and {%NAME%} are replaced by the variable's value, anywhere in a token."""
    assert outline(parse_text(text, environ)) == expected


def test_environment_defaults_to_the_process_environment(monkeypatch):
    """Without an explicit environment, parse reads the process's variables."""
    monkeypatch.setenv("WAYFINDER_TEST_ZONE", "example.net")
    assert outline(parse("{$WAYFINDER_TEST_ZONE} {\n}\n")) == [(("example.net",), [])]


# --- import -----------------------------------------------------------------------------------------


def test_import_of_a_file_splices_its_server_blocks(tmp_path):
    """`import FILE` at the top level adds the file's server blocks in place."""
    write(tmp_path / "extra.conf", "b.org {\n log\n}\n")
    root = write(tmp_path / "Corefile", "a.org {\n errors\n}\nimport extra.conf\nc.org {\n}\n")
    assert outline(parse_file(str(root), environ={})) == [
        (("a.org",), [("errors", ())]),
        (("b.org",), [("log", ())]),
        (("c.org",), []),
    ]


def test_import_glob_is_sorted_and_relative_to_the_importing_file(tmp_path, monkeypatch):
    """A glob matches files next to the importing Corefile, whatever the working directory, in sorted order."""
    for name in ("30-c.server", "10-a.server", "20-b.server"):
        write(tmp_path / "etc" / "conf.d" / name, f"{name[3]}.org {{\n}}\n")
    write(tmp_path / "etc" / "conf.d" / "ignored.txt", "x.org {\n}\n")
    root = write(tmp_path / "etc" / "Corefile", "import conf.d/*.server\n")
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    assert [block.keys for block in parse_file(str(root), environ={})] == [("a.org",), ("b.org",), ("c.org",)]


def test_import_glob_matching_nothing_imports_nothing(tmp_path):
    """A glob without matches is not an error (a conf.d folder may be empty)."""
    root = write(tmp_path / "Corefile", "import conf.d/*.server\n.:53 {\n}\n")
    assert outline(parse_file(str(root), environ={})) == [((".:53",), [])]


def test_nested_import_is_relative_to_the_file_that_imports(tmp_path):
    """An imported file's own imports resolve next to that file, not next to the Corefile."""
    write(tmp_path / "sub" / "inner.conf", "log\n")
    write(tmp_path / "sub" / "outer.conf", ".:53 {\n import inner.conf\n}\n")
    root = write(tmp_path / "Corefile", "import sub/outer.conf\n")
    assert outline(parse_file(str(root), environ={})) == [((".:53",), [("log", ())])]


def test_import_inside_a_directive_block(tmp_path):
    """An import line inside a directive's block pastes sub-directives there, named by their own file and line."""
    props = write(tmp_path / "props", "prop1 1\nprop2 2\n")
    root = write(tmp_path / "Corefile", ".:53 {\n proxy {\n  import props\n  transparent\n }\n}\n")
    [block] = parse_file(str(root), environ={})
    assert outline([block]) == [
        ((".:53",), [("proxy", (), [("prop1", ("1",)), ("prop2", ("2",)), ("transparent", ())])])
    ]
    prop2 = block.directives[0].block[1]
    assert (prop2.file, prop2.line) == (str(props), 2)


def test_import_of_a_snippet():
    """`import NAME` pastes a snippet defined earlier with `(NAME) { ... }`."""
    text = "(common) {\n errors\n log stdout\n}\n.:53 {\n import common\n health\n}\n"
    assert outline(parse_text(text)) == [((".:53",), [("errors", ()), ("log", ("stdout",)), ("health", ())])]


def test_same_snippet_imported_twice_in_a_row_gives_two_directives():
    """Two imports of one snippet are two separate lines, not one line with doubled arguments."""
    text = "(one) {\n log x\n}\n.:53 {\n import one\n import one\n}\n"
    assert outline(parse_text(text)) == [((".:53",), [("log", ("x",)), ("log", ("x",))])]


def test_snippet_with_a_block_used_in_two_server_blocks():
    """A snippet holding a nested block pastes whole into every block that imports it."""
    text = "(k8s) {\n kubernetes cluster.local {\n  pods insecure\n }\n}\na.org {\n import k8s\n}\nb.org {\n import k8s\n}\n"
    pasted = [("kubernetes", ("cluster.local",), [("pods", ("insecure",))])]
    assert outline(parse_text(text)) == [(("a.org",), pasted), (("b.org",), pasted)]


def test_snippet_imported_inside_a_directive_block():
    """A snippet may supply a directive's sub-options."""
    text = "(opts) {\n pods insecure\n ttl 30\n}\n.:53 {\n kubernetes {\n  import opts\n }\n}\n"
    assert outline(parse_text(text)) == [((".:53",), [("kubernetes", (), [("pods", ("insecure",)), ("ttl", ("30",))])])]


def test_snippet_defined_in_an_imported_file(tmp_path):
    """Snippets defined in a file imported at the top level can be imported afterwards."""
    write(tmp_path / "snippets.conf", "(common) {\n log\n}\n")
    root = write(tmp_path / "Corefile", "import snippets.conf\n.:53 {\n import common\n}\n")
    assert outline(parse_file(str(root), environ={})) == [((".:53",), [("log", ())])]


def test_snippet_used_from_an_imported_file(tmp_path):
    """A file imported after a snippet's definition may import that snippet."""
    write(tmp_path / "site.conf", ".:53 {\n import common\n}\n")
    root = write(tmp_path / "Corefile", "(common) {\n log\n}\nimport site.conf\n")
    assert outline(parse_file(str(root), environ={})) == [((".:53",), [("log", ())])]


def test_the_same_file_imported_twice_is_not_a_cycle(tmp_path):
    """Importing one file in two places pastes it twice."""
    write(tmp_path / "common.conf", "log\n")
    root = write(tmp_path / "Corefile", "a.org {\n import common.conf\n}\nb.org {\n import common.conf\n}\n")
    assert outline(parse_file(str(root), environ={})) == [(("a.org",), [("log", ())]), (("b.org",), [("log", ())])]


def test_file_import_cycle_is_stopped_with_the_chain(tmp_path):
    """Files importing each other fail at the import that closes the cycle, naming the chain."""
    first = write(tmp_path / "a.conf", "import b.conf\n")
    second = write(tmp_path / "b.conf", "\nimport a.conf\n")
    root = write(tmp_path / "Corefile", "import a.conf\n")
    with pytest.raises(CorefileError) as caught:
        parse_file(str(root), environ={})
    assert (caught.value.file, caught.value.line) == (str(second), 2)
    assert caught.value.message == f"import cycle: {first} -> {second} -> {first}"


def test_corefile_importing_itself_is_a_cycle(tmp_path):
    """A Corefile whose glob matches itself fails instead of recursing."""
    root = write(tmp_path / "Corefile", ".:53 {\n}\nimport Core*\n")
    with pytest.raises(CorefileError, match=r"import cycle: .*Corefile -> .*Corefile"):
        parse_file(str(root), environ={})


@pytest.mark.parametrize(
    "text, line, message",
    [
        pytest.param("(loop) {\n import loop\n}\n.:53 {\n import loop\n}\n", 2, "import cycle: (loop) -> (loop)",
                     id="snippet-imports-itself"),
        pytest.param("(a) {\n import b\n}\n(b) {\n import a\n}\n.:53 {\n import a\n}\n", 5,
                     "import cycle: (a) -> (b) -> (a)", id="snippets-import-each-other"),
    ],
)
def test_snippet_import_cycle_is_stopped_with_the_chain(text, line, message):
    """Snippets that import themselves, directly or not, fail naming the chain."""
    with pytest.raises(CorefileError) as caught:
        parse_text(text)
    assert (caught.value.file, caught.value.line, caught.value.message) == ("Corefile", line, message)


def test_error_in_an_imported_file_names_that_file(tmp_path):
    """A grammar error in an imported file is reported at that file's own line."""
    broken = write(tmp_path / "broken.conf", "log\nrewrite { name\n")
    root = write(tmp_path / "Corefile", ".:53 {\n errors\n}\nb.org {\n import broken.conf\n}\n")
    with pytest.raises(CorefileError) as caught:
        parse_file(str(root), environ={})
    assert (caught.value.file, caught.value.line) == (str(broken), 2)


def test_import_of_a_missing_file_names_the_import_line(tmp_path):
    """Importing a file that does not exist (no glob) fails at the import line, naming the pattern."""
    root = write(tmp_path / "Corefile", ".:53 {\n}\n\nimport nothere.conf\n")
    with pytest.raises(CorefileError) as caught:
        parse_file(str(root), environ={})
    assert (caught.value.file, caught.value.line) == (str(root), 4)
    assert "nothere.conf" in caught.value.message


def test_import_of_a_directory_is_an_error(tmp_path):
    """A pattern naming a folder is refused: only files hold Corefile text."""
    (tmp_path / "conf.d").mkdir()
    root = write(tmp_path / "Corefile", "import conf.d\n")
    with pytest.raises(CorefileError, match=r"Corefile:1: import: .*conf.d is a directory"):
        parse_file(str(root), environ={})



def test_error_in_an_imported_file_also_names_the_import_line(tmp_path):
    """The error in an imported file carries the import line that brought the file in."""
    write(tmp_path / "broken.conf", "log\nrewrite { name\n")
    root = write(tmp_path / "Corefile", ".:53 {\n errors\n}\nb.org {\n import broken.conf\n}\n")
    with pytest.raises(CorefileError) as caught:
        parse_file(str(root), environ={})
    assert caught.value.imported_from == ((str(root), 5),)
    assert str(caught.value).endswith(f"(imported at {root}:5)")


def test_a_directive_pasted_by_nested_imports_names_every_import_line(tmp_path):
    """A directive from a snippet that a file imports knows both import lines, innermost first."""
    inner = write(tmp_path / "inner.conf", "(common) {\n log\n}\n.:53 {\n import common\n}\n")
    root = write(tmp_path / "Corefile", "\nimport inner.conf\n")
    (block,) = parse_file(str(root), environ={})
    (log,) = block.directives
    assert (log.file, log.line) == (str(inner), 2)
    assert log.imported_from == ((str(inner), 5), (str(root), 2))
    assert str(log.error("log: bad")) == f"{inner}:2: log: bad (imported at {inner}:5) (imported at {root}:2)"



def test_a_server_block_from_an_imported_file_knows_the_import_line(tmp_path):
    """A server block pasted by `import custom/*.server` (AKS's hook) carries that import line for its errors."""
    write(tmp_path / "custom" / "puglife.server", "puglife.local:53 {\n errors\n}\n")
    root = write(tmp_path / "Corefile", ".:53 {\n errors\n}\nimport custom/*.server\n")
    _, imported = parse_file(str(root), environ={})
    assert imported.keys == ("puglife.local:53",) and imported.imported_from == ((str(root), 4),)
    assert str(imported.error("bad")).endswith(f"(imported at {root}:4)")


def test_an_import_pattern_may_come_from_the_environment(tmp_path):
    """`{$VAR}` in the pattern is replaced before the files are looked for, as in CoreDNS."""
    write(tmp_path / "extra" / "a.server", "a.org {\n}\n")
    root = write(tmp_path / "Corefile", "import {$CUSTOM}/*.server\n")
    blocks = parse_file(str(root), environ={"CUSTOM": str(tmp_path / "extra")})
    assert [block.keys for block in blocks] == [("a.org",)]

def test_a_glob_star_matches_names_that_start_with_a_dot(tmp_path):
    """As Go's filepath.Glob (and unlike the shell), `*` matches dot files too."""
    write(tmp_path / "conf.d" / ".hidden.server", "hidden.org {\n}\n")
    write(tmp_path / "conf.d" / "plain.server", "plain.org {\n}\n")
    root = write(tmp_path / "Corefile", "import conf.d/*.server\n")
    assert [block.keys for block in parse_file(str(root), environ={})] == [("hidden.org",), ("plain.org",)]


def test_a_glob_matching_nothing_is_logged_once_in_coredns_words(tmp_path, caplog):
    """One warning with CoreDNS's words and the pattern as written, not one more at each reload's parse."""
    root = write(tmp_path / "Corefile", ".:53 {\n import custom/*.override\n}\n")
    for _ in range(3):
        parse_file(str(root), environ={})
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("wayfinder.import", "WARNING", "No files matching import glob pattern: custom/*.override")
    ]


def test_a_glob_under_a_missing_folder_imports_nothing(tmp_path):
    """k3s's `import /etc/coredns/custom/*.override` loads when that folder does not even exist."""
    root = write(tmp_path / "Corefile", f".:53 {{\n import {tmp_path}/custom/*.override\n errors\n}}\n")
    assert outline(parse_file(str(root), environ={})) == [((".:53",), [("errors", ())])]


@pytest.mark.parametrize("pattern", ["*.d/*.server", "conf?.d/a?.server", "conf.d/[ab].server"])
def test_a_glob_with_more_than_one_wildcard_is_refused(tmp_path, pattern):
    """Caddy's guard: at most one `*`, at most one `?`, and no `[...]` class in an import pattern."""
    root = write(tmp_path / "Corefile", f".:53 {{\n}}\nimport {pattern}\n")
    with pytest.raises(CorefileError) as caught:
        parse_file(str(root), environ={})
    assert caught.value.line == 3 and "may only contain one wildcard" in caught.value.message


def test_imports_multiplying_past_the_limit_are_refused():
    """Snippets that each import the previous one twice would expand 2**14 times: past 10,000 imports, an error."""
    lines = ["(s0) {\n log\n}\n"]
    lines += [f"(s{i}) {{\n import s{i - 1}\n import s{i - 1}\n}}\n" for i in range(1, 15)]
    text = "".join(lines) + ".:53 {\n import s14\n}\n"
    with pytest.raises(CorefileError) as caught:
        parse_text(text)
    assert "more than 10000 imports expanded" in caught.value.message


def test_imports_below_the_limit_all_expand():
    """Snippets doubling ten times paste 1,024 directives, well within the limit."""
    lines = ["(s0) {\n log\n}\n"]
    lines += [f"(s{i}) {{\n import s{i - 1}\n import s{i - 1}\n}}\n" for i in range(1, 11)]
    (block,) = parse_text("".join(lines) + ".:53 {\n import s10\n}\n")
    assert len(block.directives) == 1024

# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, message",
    [
        pytest.param(".:53 {\n errors\n", 1, "missing '}' to close this '{'", id="missing-closing-brace"),
        pytest.param(".:53 {\n health {\n  lameduck 5s\n errors\n}\n", 1, "missing '}'",
                     id="missing-closing-brace-of-a-nested-block"),
        pytest.param(".:53 {\n}\n}\n", 3, "unexpected '}' without a matching '{'", id="stray-closing-brace"),
        pytest.param(".:53\nerrors\n}\n", 3, "unexpected '}' without a matching '{'",
                     id="stray-closing-brace-in-a-braceless-block"),
        pytest.param(".:53 {\n foo { bar\n }\n}\n", 2, "'{' must end a line", id="open-brace-mid-line"),
        pytest.param(".:53 {\n foo { }\n}\n", 2, "'{' must end a line", id="block-on-one-line"),
        pytest.param(".:53 {\n foo bar }\n}\n", 2, "'}' must stand on a line of its own",
                     id="closing-brace-after-arguments"),
        pytest.param(".:53 {\n foo {\n } bar\n}\n", 3, "unexpected 'bar' after '}'", id="text-after-closing-brace"),
        pytest.param(".:53 {\n {\n }\n}\n", 2, "unexpected '{' (expected a directive name)",
                     id="open-brace-without-a-directive"),
        pytest.param("a.org { b.org {\n}\n", 1, "unexpected '{' among server block keys", id="open-brace-among-keys"),
        pytest.param("a.org, {\n}\n", 1, "expected another server block key after ','",
                     id="trailing-comma-before-the-brace"),
        pytest.param("a.org, b.org,\n", 1, "expected another server block key after ','",
                     id="trailing-comma-at-the-end"),
        pytest.param(".:53 {\n}\nexample.org\n log\n", 3, "expected '{' after the server block keys example.org",
                     id="second-block-without-braces"),
        pytest.param('.:53 {\n log "open\n}\n', 2, "unterminated quoted string", id="unterminated-quote"),
        pytest.param('"" {\n}\n', 1, "expected a server block key", id="empty-key"),
        pytest.param("(s) {\n errors\n", 1, "snippet (s): missing its closing '}'", id="snippet-missing-brace"),
        pytest.param("(s)\nerrors\n", 1, "snippet (s): expected '{' after its name", id="snippet-without-brace"),
        pytest.param("(s) {\n}\n(s) {\n}\n", 3, "snippet 's' is defined twice", id="snippet-defined-twice"),
        pytest.param(".:53 {\n import\n}\n", 2, "import: expected exactly one argument", id="import-without-argument"),
        pytest.param(".:53 {\n import a b\n}\n", 2, "import: expected exactly one argument",
                     id="import-with-two-arguments"),
        pytest.param('.:53 {\n import ""\n}\n', 2, "import: the pattern is empty", id="import-of-empty-pattern"),
        pytest.param(".:53 {\n import nosuchsnippet\n}\n", 2, "no snippet or file named 'nosuchsnippet'",
                     id="import-of-unknown-snippet"),
    ],
)
def test_grammar_errors_name_file_line_and_expectation(text, line, message):
    """Text that breaks the grammar raises CorefileError at the line at fault, saying what was expected."""
    with pytest.raises(CorefileError) as caught:
        parse_text(text)
    error = caught.value
    assert (error.file, error.line) == ("Corefile", line)
    assert message in error.message
    assert str(error) == f"Corefile:{line}: {error.message}"


def test_parse_file_names_tokens_by_path(tmp_path):
    """parse_file reads from disk and records the path as each directive's file."""
    root = write(tmp_path / "Corefile", ".:53 {\n errors\n}\n")
    [block] = parse_file(str(root), environ={})
    assert (block.file, block.directives[0].file) == (str(root), str(root))


def test_parse_file_of_a_missing_corefile_names_the_path(tmp_path):
    """A Corefile that cannot be read is a CorefileError naming its path."""
    missing = str(tmp_path / "Corefile")
    with pytest.raises(CorefileError) as caught:
        parse_file(missing, environ={})
    assert caught.value.file == missing
    assert "cannot read Corefile" in caught.value.message


# --- the directive helpers ------------------------------------------------------------------------------


def directive(*args, has_block=False):
    return Directive("opt", tuple(args), "Corefile", 7, has_block=has_block)


@pytest.mark.parametrize(
    "args, minimum, maximum, message",
    [
        pytest.param((), 1, 1, "opt: expected 1 argument, got 0; usage: opt X", id="exactly-one"),
        pytest.param(("a", "b"), 1, 1, "opt: expected 1 argument, got 2; usage: opt X", id="exactly-one-got-two"),
        pytest.param((), 1, None, "opt: expected at least 1 argument, got 0; usage: opt X", id="at-least-one"),
        pytest.param(("a",), 2, None, "opt: expected at least 2 arguments, got 1; usage: opt X", id="at-least-two"),
        pytest.param(("a", "b", "c"), 1, 2, "opt: expected 1 to 2 arguments, got 3; usage: opt X", id="range"),
        pytest.param(("a",), 0, 0, "opt: expected 0 arguments, got 1; usage: opt X", id="none"),
    ],
)
def test_expect_args_says_how_many_were_expected(args, minimum, maximum, message):
    """expect_args raises a CorefileError at the directive's line stating the allowed count and usage."""
    with pytest.raises(CorefileError) as caught:
        directive(*args).expect_args(minimum, maximum, usage="opt X")
    assert (caught.value.line, caught.value.message) == (7, message)


@pytest.mark.parametrize("minimum, maximum", [(0, 0), (1, 1), (1, 3), (2, None)])
def test_expect_args_accepts_exactly_the_counts_within_bounds(minimum, maximum):
    """Counts from minimum to maximum pass; one fewer or one more raises."""
    top = maximum if maximum is not None else minimum + 5
    for count in range(minimum, top + 1):
        directive(*["a"] * count).expect_args(minimum, maximum)
    outside = [minimum - 1] if minimum else []
    if maximum is not None:
        outside.append(maximum + 1)
    for count in outside:
        with pytest.raises(CorefileError):
            directive(*["a"] * count).expect_args(minimum, maximum)


def test_expect_no_block_refuses_a_block():
    """expect_no_block raises for a directive that opened a block and passes otherwise."""
    directive().expect_no_block()
    with pytest.raises(CorefileError, match=r"^Corefile:7: opt: takes no block$"):
        directive(has_block=True).expect_no_block()


# --- durations -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("5s", 5.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("2h45m0.5s", 9900.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("0", 0.0),
        ("+0", 0.0),
        ("-0", 0.0),
        ("0s", 0.0),
        ("-1.5s", -1.5),
        ("+2m", 120.0),
        ("100ns", 1e-7),
        ("3us", 3e-6),
        ("3\u00b5s", 3e-6),
        ("3\u03bcs", 3e-6),
        ("1h1h", 7200.0),
    ],
)
def test_parse_duration_reads_go_durations(text, seconds):
    """Durations read as Go's time.ParseDuration reads them, in seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "5", "00", "s", ".s", "5 s", " 5s", "5s ", "5S", "5sec", "1d", "--5s", "+", "-", "1e3s", "0x10s", "5s5"],
)
def test_parse_duration_rejects_what_go_rejects(text):
    """Text Go's time.ParseDuration refuses raises ValueError naming the text."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


# --- the kubeadm default Corefile ----------------------------------------------------------------------------

KUBEADM_COMMON_HEAD = [
    ("errors", ()),
    ("health", (), [("lameduck", ("5s",))]),
    ("ready", ()),
    ("kubernetes", ("cluster.local", "in-addr.arpa", "ip6.arpa"), [
        ("pods", ("insecure",)),
        ("fallthrough", ("in-addr.arpa", "ip6.arpa")),
        ("ttl", ("30",)),
    ]),
    ("prometheus", (":9153",)),
    ("forward", (".", "/etc/resolv.conf"), [("max_concurrent", ("1000",))]),
]
KUBEADM_COMMON_TAIL = [("loop", ()), ("reload", ()), ("loadbalance", ())]


@pytest.mark.parametrize(
    "fixture, cache",
    [
        pytest.param("kubeadm-bare-cache.Corefile", ("cache", ("30",)), id="older-bare-cache"),
        pytest.param(
            "kubeadm-cache-block.Corefile",
            ("cache", ("30",), [("disable", ("success", "cluster.local")), ("disable", ("denial", "cluster.local"))]),
            id="current-cache-block",
        ),
    ],
)
def test_kubeadm_default_corefile_parses(fixture, cache):
    """Both forms of kubeadm's default Corefile parse into the directives CoreDNS would see."""
    blocks = parse_file(os.path.join(FIXTURES, fixture), environ={})
    assert outline(blocks) == [((".:53",), KUBEADM_COMMON_HEAD + [cache] + KUBEADM_COMMON_TAIL)]


def test_kubeadm_corefile_directive_lines():
    """The kubeadm Corefile's directives carry the lines they stand on."""
    [block] = parse_file(os.path.join(FIXTURES, "kubeadm-cache-block.Corefile"), environ={})
    lines = {d.name: d.line for d in block.directives}
    assert (lines["errors"], lines["kubernetes"], lines["cache"], lines["loadbalance"]) == (2, 7, 16, 22)
    assert [d.line for d in block.directives[-4].block] == [17, 18]
