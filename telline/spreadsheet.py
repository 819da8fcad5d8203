"""CSV that is safe to open in a spreadsheet: one rule for every export, and its inverse for imports.

A cell starting with = + - @ (or a tab or carriage return) is a formula to Excel, LibreOffice and
Google Sheets; a member's chosen name is theirs to choose, so such a cell is prefixed with a quote
(OWASP's advice for CSV injection), which the spreadsheet shows as text. An import of a file telline
wrote takes that quote off again (as_written), so an export reads back as it was.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

# A formula's first character, or quotes before one: a value that itself starts "'=" is quoted too,
# so that reading a cell back (as_written) can tell it from a quoted "=".
_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if _NEEDS_QUOTE.match(text) else text


def as_written(cell: str) -> str:
    """safe_cell's inverse: the value a cell held before its quote was put in front of it."""
    return cell[1:] if cell.startswith("'") and _NEEDS_QUOTE.match(cell, 1) else cell


def csv_text(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(header)
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()
