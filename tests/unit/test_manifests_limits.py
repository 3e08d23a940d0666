"""The manifests source's limits: alias bombs, object counts, file sizes, bounded messages, odd folder entries."""

from __future__ import annotations

import os
import pathlib
import textwrap

import pytest
import yaml

from discovery.cache.config import ManifestLimits
from discovery.cache.manifests import alias_expansion, list_folder, parse_manifest, read_regular_file
from discovery.cache.manifests.folder import FileSkipped
from discovery.cache.manifests.parse import MESSAGE_LIMIT
from discovery.cache.objects import QUOTE_LIMIT, quote
from discovery.config import load_text
from discovery.corefile import CorefileError


def laughs(levels: int, width: int = 10, name_alias: bool = True) -> bytes:
    """A billion-laughs Service: each level's list holds `width` aliases of the level below."""
    lines = ["apiVersion: v1", "kind: Service", "x0: &l0 [lol]"]
    for level in range(1, levels + 1):
        lines.append(f"x{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    lines.append(f"metadata: {{name: *l{levels}}}" if name_alias else "metadata: {name: ok}")
    return ("\n".join(lines) + "\n").encode()


def services(count: int) -> bytes:
    return "".join(
        f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{clusterIP: None}}\n"
        for i in range(count)
    ).encode()


# --- alias expansion ------------------------------------------------------------------------


def test_alias_expansion_counts_each_alias_as_the_nodes_it_stands_for():
    """Three aliases of a three-node list stand for nine nodes: 7 distinct nodes expand to 16."""
    node = yaml.compose("a: &x [1, 2]\nb: [*x, *x, *x]\n")
    distinct, expanded = alias_expansion(node)
    # The mapping, keys a and b, list x and its two items, list b.
    assert distinct == 7
    # The mapping, a, x (3 nodes), b, and list b with three copies of x: 1 + 1 + 3 + 1 + 10.
    assert expanded == 16


def test_a_recursive_anchor_counts_once_and_does_not_hang():
    """An anchor used inside itself is a cycle: the alias back to it counts one node, not forever."""
    node = yaml.compose("&a {self: *a}\n")
    # The mapping and its key are distinct; the value is the mapping again.
    assert alias_expansion(node) == (2, 3)


def test_a_billion_laughs_document_is_refused_before_it_is_built():
    """A 10^9-node alias bomb (about 500 bytes) is refused as alias_expansion, naming the bound, in milliseconds."""
    parsed = parse_manifest("/m/bomb.yaml", laughs(9))
    assert not parsed.readable
    assert parsed.reason == "alias_expansion"
    assert "max_alias_nodes" in str(parsed.errors[0])
    assert parsed.errors[0].line == 1


def test_aliases_within_the_bound_are_read():
    """A few aliases (far below the bound) are read as the values they stand for."""
    parsed = parse_manifest("/m/ok.yaml", laughs(2, width=3, name_alias=False))
    assert parsed.readable and [e.obj.name for e in parsed.entries] == ["ok"]


def test_the_alias_bound_is_configurable():
    """max_alias_nodes 10 refuses a document whose aliases add 12 nodes."""
    text = laughs(2, width=3, name_alias=False)
    assert parse_manifest("/m/a.yaml", text, limits=ManifestLimits(max_alias_nodes=10)).reason == "alias_expansion"


def test_a_refused_file_keeps_its_previous_objects():
    """A file turned into an alias bomb keeps serving what it held."""
    before = parse_manifest("/m/a.yaml", services(2))
    after = parse_manifest("/m/a.yaml", laughs(9), before)
    assert [e.obj.name for e in after.entries] == ["s0", "s1"]


def test_an_error_quoting_an_aliased_value_stays_short():
    """A metadata.name that is a 10^4-node alias graph (within the bound) is quoted in under QUOTE_LIMIT characters."""
    parsed = parse_manifest("/m/name.yaml", laughs(4))
    (error,) = parsed.errors
    assert "metadata.name" in error.message
    assert len(error.message) < QUOTE_LIMIT + 100


# --- objects per file, and messages -------------------------------------------------------------------


def test_a_file_with_more_objects_than_allowed_is_refused():
    """11 documents with max_file_objects 10: refused as too_many_objects, nothing read from it."""
    parsed = parse_manifest("/m/many.yaml", services(11), limits=ManifestLimits(max_file_objects=10))
    assert (parsed.readable, parsed.reason, parsed.entries) == (False, "too_many_objects", ())
    assert "max_file_objects" in parsed.errors[0].message


def test_list_items_count_as_objects():
    """A List of 3 items counts 3 objects, in YAML and in JSON alike."""
    items = ", ".join(f'{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "s{i}"}}}}' for i in range(3))
    document = f'{{"apiVersion": "v1", "kind": "List", "items": [{items}]}}'.encode()
    limits = ManifestLimits(max_file_objects=2)
    assert parse_manifest("/m/l.yaml", document, limits=limits).reason == "too_many_objects"
    assert parse_manifest("/m/l.json", document, limits=limits).reason == "too_many_objects"
    assert parse_manifest("/m/l.json", document).readable


def test_quote_cuts_long_and_deep_values():
    """quote() of a megabyte string or a deep list is at most QUOTE_LIMIT characters."""
    deep: list = ["x"]
    for _ in range(50):
        deep = [deep] * 10
    assert len(quote("x" * 1_000_000)) <= QUOTE_LIMIT
    assert len(quote(deep)) <= QUOTE_LIMIT
    assert quote("web") == "'web'"


def test_a_problem_message_is_cut_to_the_limit():
    """A 2 MB kind is named in a message of at most MESSAGE_LIMIT characters."""
    document = f"apiVersion: v1\nkind: {'K' * 2_000_000}List\nitems: [{{kind: XList, items: []}}]\n".encode()
    parsed = parse_manifest("/m/k.yaml", document)
    assert parsed.errors and all(len(p.message) <= MESSAGE_LIMIT for p in parsed.errors)


# --- the folder -----------------------------------------------------------------------------------------


def test_a_named_pipe_is_listed_as_skipped_not_as_a_file(tmp_path: pathlib.Path):
    """pipe.yaml (a FIFO) is a not_regular skip; the regular file beside it is listed."""
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "svc.yaml").write_bytes(services(1))
    listing = list_folder(str(tmp_path))
    assert list(listing.files) == [str(tmp_path / "svc.yaml")]
    assert [(s.path, s.reason) for s in listing.skipped] == [(str(tmp_path / "pipe.yaml"), "not_regular")]
    assert "named pipe" in listing.skipped[0].message


def test_a_symlink_loop_is_one_skipped_entry_and_the_rest_is_listed(tmp_path: pathlib.Path):
    """loop.yaml pointing at itself is an unreadable skip naming the loop; the folder is still listed."""
    os.symlink("loop.yaml", tmp_path / "loop.yaml")
    (tmp_path / "svc.yaml").write_bytes(services(1))
    listing = list_folder(str(tmp_path))
    assert list(listing.files) == [str(tmp_path / "svc.yaml")]
    (skip,) = listing.skipped
    assert (skip.reason, "symbolic link loop" in skip.message) == ("unreadable", True)


def test_a_file_over_the_size_limit_is_not_read(tmp_path: pathlib.Path):
    """read_regular_file refuses a file over max_bytes as too_large, and reads one at the limit."""
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 101)
    with pytest.raises(FileSkipped) as raised:
        read_regular_file(str(path), 100)
    assert raised.value.skip.reason == "too_large"
    assert read_regular_file(str(path), 101) == b"#" * 101


def test_reading_a_pipe_does_not_block(tmp_path: pathlib.Path):
    """A pipe met at read time (swapped in after the listing) is refused at once, not waited on."""
    os.mkfifo(tmp_path / "p.yaml")
    with pytest.raises(FileSkipped) as raised:
        read_regular_file(str(tmp_path / "p.yaml"), 100)
    assert raised.value.skip.reason == "not_regular"


# --- the Corefile -----------------------------------------------------------------------------------------


def kubernetes_with(block: str) -> str:
    return textwrap.dedent("""\
        cluster.local {
            kubernetes {
                manifests /srv/m {
        %s
                }
            }
        }
    """) % block


def test_manifests_limits_are_read_from_the_manifests_block():
    """Every limit in the block reaches the SourceConfig; sizes take binary suffixes."""
    text = kubernetes_with("max_file_size 4Mi\nmax_file_objects 500\nmax_alias_nodes 1000\nstale_after 2m")
    config = load_text(text).servers[0].plugin("kubernetes")
    assert config.source.manifest_limits == ManifestLimits(4 << 20, 500, 1000, 120.0)


def test_manifests_without_a_block_has_the_default_limits():
    """`manifests DIR` alone keeps the documented defaults."""
    text = "cluster.local {\n    kubernetes {\n        manifests /srv/m\n    }\n}\n"
    assert load_text(text).servers[0].plugin("kubernetes").source.manifest_limits == ManifestLimits()


@pytest.mark.parametrize(
    "line, message",
    [
        ("max_file_size lots", "is not a byte count"),
        ("max_file_objects 0", "at least 1"),
        ("stale_after -1s", "must be positive"),
        ("max_size 10", "unknown property"),
    ],
)
def test_a_bad_manifests_limit_names_the_file_and_line(line, message):
    """Each bad limit is a start-up error naming the option's line."""
    with pytest.raises(CorefileError) as raised:
        load_text(kubernetes_with(line))
    assert message in str(raised.value) and ":4:" in str(raised.value)


def test_a_sub_folder_that_cannot_be_listed_keeps_what_it_held(tmp_path: pathlib.Path, monkeypatch):
    """A sub-folder whose listing fails is one unreadable entry; its files stay in the pass's state, the rest is read."""
    from discovery.cache.config import SourceConfig
    from discovery.cache.manifests import scan
    from discovery.cache.manifests.merge import Merged

    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.yaml").write_bytes(services(1))
    (tmp_path / "b.yaml").write_bytes(service_named("b"))
    config = SourceConfig(manifests=str(tmp_path))
    first = scan(str(tmp_path), config, {}, Merged(), {}, 0.0, force=True)
    assert {key[1][1] for key, _ in first.puts if key[0] == "Service"} == {"s0", "b"}

    real_scandir = os.scandir

    def failing_scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", failing_scandir)
    applied = dict(first.puts)
    second = scan(str(tmp_path), config, first.seen, first.merged, applied, 0.0)
    assert str(tmp_path / "locked" / "a.yaml") in second.seen
    assert second.skipped[str(tmp_path / "locked")].reason == "unreadable"
    assert not second.deletes


def service_named(name: str) -> bytes:
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{clusterIP: None}}\n".encode()
