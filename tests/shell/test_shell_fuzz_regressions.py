"""
Regressions found by the coverage-guided fuzzer of the shell's line
parser (fuzz/shell_line.py): each was a line that parsed but was written
back (as show running-config writes it) to one that did not.
"""
from __future__ import annotations

import pytest

from appliance.billing.rating import format_date, format_time, parse_date
from appliance.shell.commands import TREE
from appliance.shell.grammar import ANY


def _mode(name: str):
    return next(c.mode for c in TREE.commands if c.mode is not ANY
                and c.mode.name == name)


@pytest.mark.parametrize("day", ["0027-01-15", "0001-01-01", "0999-12-31",
                                 "2027-01-15"])
def test_dates_before_year_1000_round_trip(day):
    """A date of a year below 1000 is written with four digits (strftime
    wrote year 27 as '27', which the shell then refused)."""
    assert format_date(parse_date(day)) == day
    assert format_time(parse_date(day)).startswith(day + "T00:00:00.000")


def test_tariff_price_from_year_27_writes_back():
    """'prefix 964 0.5 from 0027-01-15' in a tariff parses, and the line
    running-config would write for it parses to the same values."""
    mode = _mode("config-tariff")
    match = TREE.parse(mode, "prefix 964 0.5 from 0027-01-15")
    written = match.command.format(match.values)
    assert written == "prefix 964 0.5 from 0027-01-15"
    again = TREE.parse(mode, written)
    assert again.command is match.command and again.values == match.values
