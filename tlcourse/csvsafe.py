"""CSV that a spreadsheet shows as text and reads back row for row, whoever chose the names.

The course writes CSV that people open in Excel or LibreOffice (the class table of
``tlcourse progress --csv``, the predictions of ``tlcourse predict``), and some cells come from
files written by others: a learner's name, a bank name, a photo's file name, a model's class
names. Two things could go wrong with such a cell:

- A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or
  carriage return) as a formula, so a name such as ``=HYPERLINK("http://...","grade")`` would
  become a live link or worse. The OWASP rule for CSV injection is applied to every text cell:
  such a cell gets a leading single quote, which spreadsheets display as text. Numbers are
  written as numbers and left alone.
- With ``\\n`` line ends, Python's ``csv`` module quotes a cell holding ``\\n`` but not one
  holding a bare ``\\r``, which readers (Python's own included) take as the end of the row: a
  name with a carriage return would split its row in two. A row with such a cell is written
  with every text cell quoted.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    """:func:`safe_cell` applied to every cell of a CSV row."""
    return [safe_cell(v) for v in row]


class SafeWriter:
    """A ``csv.writer`` (``\\n`` line ends) whose rows go through :func:`safe_row`.

    Rows are written exactly as ``csv.writer`` writes them unless a text cell holds a ``\\r``;
    that row is written with its text cells quoted, so it stays one row.
    """

    def __init__(self, stream: TextIO) -> None:
        self._plain = csv.writer(stream, lineterminator="\n")
        self._quoted = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, row: Iterable[Any]) -> None:
        cells = safe_row(row)
        carriage_return = any(isinstance(c, str) and "\r" in c for c in cells)
        (self._quoted if carriage_return else self._plain).writerow(cells)
