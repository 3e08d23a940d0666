"""`wayfinder check` against real Corefiles: what loads, what stops start-up, what departs from CoreDNS.

Each tests/unit/corefiles/check/NAME.expected is the report written by hand
for NAME.Corefile (kept there, or beside kubeadm's in tests/unit/corefiles):
one row per line the report speaks of, ``LOCATION STATUS [DETAIL...]``, where
LOCATION is a line number of the Corefile or ``FILE:LINE`` of an imported
coredns-custom file, STATUS is ``block``, ``ok``, ``differs`` (DETAIL: the
departures' keys, all of them) or ``error`` (DETAIL: words of the message),
and a last row ``exit N``.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import re

import attrs
import pytest

from discovery import check
from discovery.check import check_text, read_custom, run
from discovery.departures import all_departures

ROOT = pathlib.Path(__file__).resolve().parents[2]
COREFILES = ROOT / "tests" / "unit" / "corefiles"
CASES = COREFILES / "check"
#: The coredns-custom ConfigMap a case's Corefile imports, when it has one.
CUSTOM = {"aks": "aks-custom.yaml"}


@attrs.frozen
class Row:
    location: str
    status: str
    detail: str


def expected_rows(name: str) -> tuple[list[Row], int]:
    rows, status = [], None
    for text in (CASES / f"{name}.expected").read_text().splitlines():
        if not text.strip() or text.startswith("#"):
            continue
        location, kind, *detail = text.split(maxsplit=2)
        if location == "exit":
            status = int(kind)
        else:
            rows.append(Row(location, kind, detail[0] if detail else ""))
    return rows, status


def corefile_of(name: str) -> pathlib.Path:
    here = CASES / f"{name}.Corefile"
    return here if here.exists() else COREFILES / f"{name}.Corefile"


def report_rows(report, corefile: str) -> list[Row]:
    rows = []
    for line in report.lines:
        location = str(line.line) if line.file == corefile else f"{line.file}:{line.line}"
        if line.errors:
            rows.append(Row(location, "error", " ".join(line.errors)))
        elif line.depth == 0:
            rows.append(Row(location, "block", ""))
        elif line.departures:
            rows.append(Row(location, "differs", " ".join(d.key for d in line.departures)))
        else:
            rows.append(Row(location, "ok", ""))
    return rows


def the_report(name: str, monkeypatch):
    # File names in the report are as given: relative to the cases' folder.
    monkeypatch.chdir(CASES)
    corefile = os.path.relpath(corefile_of(name), CASES)
    custom = read_custom([CUSTOM[name]]) if name in CUSTOM else {}
    return corefile, check_text(pathlib.Path(corefile).read_text(), corefile, custom)


@pytest.mark.parametrize("name", sorted(p.stem for p in CASES.glob("*.expected")))
def test_report_is_the_expected_one(name, monkeypatch):
    """Every line's status, departures and errors are the ones written down for that real Corefile, and so is the exit status."""
    rows, status = expected_rows(name)
    corefile, report = the_report(name, monkeypatch)
    got = report_rows(report, corefile)
    assert [(r.location, r.status) for r in got] == [(r.location, r.status) for r in rows]
    for want, have in zip(rows, got):
        if want.status == "differs":
            assert have.detail.split() == want.detail.split(), want.location
        elif want.status == "error":
            assert want.detail in have.detail, want.location
    assert report.exit_status == status
    assert not report.other_errors


def test_kubeadm_corefiles_load():
    """Both forms of kubeadm's default Corefile would start."""
    for name in ("kubeadm-bare-cache", "kubeadm-cache-block"):
        report = check_text((COREFILES / f"{name}.Corefile").read_text(), name)
        assert report.loads, report.render()


def test_a_corefile_that_does_not_parse_is_one_error():
    """A missing brace stops the parse: the report holds that error, with file and line, and exit status 1."""
    report = check_text(".:53 {\n    errors\n", "Corefile")
    assert report.lines == ()
    assert report.other_errors == ("Corefile:1: missing '}' to close this '{'",)
    assert report.exit_status == 1


def test_import_of_a_custom_file_that_is_missing_pastes_nothing():
    """An import glob that matches no coredns-custom file pastes nothing, as CoreDNS's does: the Corefile still loads."""
    report = check_text(".:1053 {\n    errors\n    import custom/*.override\n}\n", "Corefile", {"custom/a.server": ""})
    assert report.loads


def test_custom_files_from_a_folder_are_matched_by_name(tmp_path):
    """A folder of coredns-custom files (as mounted, with the kubelet's hidden ..data entries) resolves the imports by file name."""
    (tmp_path / "..data").mkdir()
    (tmp_path / "stub.server").write_text("stub.example:1053 {\n    etcd\n}\n")
    custom = read_custom([str(tmp_path)])
    assert list(custom) == [str(tmp_path / "stub.server")]
    report = check_text(".:1053 {\n    errors\n}\nimport custom/*.server\n", "Corefile", custom)
    assert [(line.file, line.line) for line in report.lines if line.errors] == [(str(tmp_path / "stub.server"), 2)]


def test_configmap_on_standard_input_is_read_for_its_corefile():
    """`kubectl get configmap coredns -o yaml | wayfinder check -conf -` checks the ConfigMap's Corefile key."""
    configmap = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: coredns\n  namespace: kube-system\ndata:\n"
        "  Corefile: |\n    .:1053 {\n        errors\n        dnssec\n    }\n"
    )
    out, err = io.StringIO(), io.StringIO()
    status = run("-", (), 53, io.StringIO(configmap), out, err)
    assert status == 1
    assert re.search(r"^stdin:3: error: +dnssec$", out.getvalue(), re.M), out.getvalue()


def test_configmap_without_a_corefile_is_a_usage_error():
    """A ConfigMap with no Corefile key is not something to check: exit status 2 and a message."""
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: b\n"
    err = io.StringIO()
    assert run("-", (), 53, io.StringIO(configmap), io.StringIO(), err) == 2
    assert "without a Corefile key" in err.getvalue()


def test_unreadable_custom_file_is_a_usage_error(tmp_path):
    """A coredns-custom path that cannot be read is exit status 2, naming it."""
    err = io.StringIO()
    missing = str(tmp_path / "nope.server")
    assert run("-", [missing], 53, io.StringIO(".:53 {\n}\n"), io.StringIO(), err) == 2
    assert missing in err.getvalue()


_HEADING = re.compile(r"^#+ +(.+?)\s*$", re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize("departure", all_departures(), ids=lambda d: d.key)
def test_every_departure_cites_a_readme_section_that_exists(departure):
    """The departures table restates the READMEs: each entry names a README heading that is there."""
    path, _, section = departure.source.partition("#")
    headings = {anchor(h) for h in _HEADING.findall((ROOT / path).read_text())}
    assert section in headings, f"{departure.source}: no such heading"


def test_departure_keys_are_unique():
    """A key names one departure, so that a report row can be grepped for."""
    keys = [d.key for d in all_departures()]
    assert len(keys) == len(set(keys))


def test_check_keeps_no_list_of_directives():
    """check.py reads what is supported from the start-up loader only: no directive names of its own."""
    source = pathlib.Path(check.__file__).read_text()
    for name in ("kubernetes", "forward", "hosts", "loadbalance"):
        assert f'"{name}"' not in source


def test_input_that_is_not_utf8_is_a_usage_error(tmp_path):
    """A binary file given as the Corefile is exit status 2 with a message, not a traceback."""
    corefile = tmp_path / "Corefile"
    corefile.write_bytes(b"\xff\xfe\x00binary")
    err = io.StringIO()
    assert run(str(corefile), (), 53, io.StringIO(), io.StringIO(), err) == 2
    assert "not UTF-8" in err.getvalue()


def test_oversized_input_is_refused_without_reading_it_all(tmp_path):
    """Standard input over the size limit is exit status 2: memory stays bounded."""
    huge = io.BytesIO(b"#" * (check.MAX_INPUT_BYTES + 10))
    stdin = io.TextIOWrapper(huge)
    err = io.StringIO()
    assert run("-", (), 53, stdin, io.StringIO(), err) == 2
    assert "larger than" in err.getvalue()


def test_a_bug_in_a_setup_function_is_reported_not_raised(monkeypatch):
    """An exception other than CorefileError while loading is one reported error (exit 1), never a crash."""
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(check, "assemble", broken)
    report = check_text(".:53 {\n    errors\n}\n", "Corefile")
    assert report.exit_status == 1
    assert any("ValueError('boom')" in message for message in report.other_errors)


def test_json_report_holds_every_line_with_its_status():
    """-format json: one object with loads, the error count, and each line's status, errors and departure keys."""
    out = io.StringIO()
    text = ".:1053 {\n    loadbalance\n    dnssec\n}\n"
    status = run("-", (), 53, io.StringIO(text), out, io.StringIO(), "json")
    assert status == 1
    report = json.loads(out.getvalue())
    assert (report["loads"], report["errors"]) == (False, 1)
    rows = [(line["line"], line["status"], [d["key"] for d in line["departures"]]) for line in report["lines"]]
    assert rows == [(1, "ok", []), (2, "differs", ["loadbalance/rotations"]), (3, "error", [])]
    assert "unknown directive 'dnssec'" in report["lines"][2]["errors"][0]
