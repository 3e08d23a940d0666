"""`-dns.table MIB`: the bound of each DNS listener's table of rendered answers."""

from __future__ import annotations

import pytest

from discovery.cli import build_parser
from discovery.dns.table import DEFAULT_LIMIT


def test_the_table_bound_is_given_in_mebibytes():
    """-dns.table 8 bounds the table at 8 MiB."""
    assert build_parser().parse_args(["-dns.table", "8"]).dns_table == 8 << 20


def test_without_the_flag_the_table_has_its_default_bound():
    """The default is DEFAULT_LIMIT (40 MiB)."""
    assert build_parser().parse_args([]).dns_table == DEFAULT_LIMIT == 40 << 20


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_table_bound_that_is_not_a_positive_size_stops_start_up(value, capsys):
    """Zero, negative or non-numeric sizes are a usage error naming the value."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-dns.table", value])
    assert value in capsys.readouterr().err
