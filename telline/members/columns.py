"""The members CSV: its columns and its cells, one definition for the export and the import, so a
file telline wrote reads back as it was written.

Cells are guarded against spreadsheet formula injection (OWASP's "CSV injection"): a cell starting
with = + - @, a tab or a carriage return would be run as a formula by Excel, LibreOffice or Google
Sheets (a name "=HYPERLINK(...)" typed by anyone who texts the line), so the export writes it after
a single quote, which spreadsheets show as text; the import takes that quote off again.
"""

from __future__ import annotations

from typing import Final

# In the order the export writes them.
COLUMNS: Final = ("phone", "name", "language", "timezone", "status", "consent", "consent_source", "consent_date",
                  "number_status", "member_since")
# Written by the export for the coordinator to read, not taken back on import: a number's flag comes
# from send errors, and membership dates from telline's own records.
INFORMATIONAL: Final = frozenset({"number_status", "member_since"})
# Other names people give these columns.
ALIASES: Final = {"number": "phone", "phone_number": "phone", "mobile": "phone", "telephone": "phone",
                  "display_name": "name", "first_name": "name", "lang": "language", "time_zone": "timezone",
                  "zone": "timezone"}

YES: Final = frozenset({"yes", "y", "true", "1", "oui"})
NO: Final = frozenset({"no", "n", "false", "0", "non"})

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def guarded(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def unguarded(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def column_name(header: str) -> str:
    """A header cell as a column name: "Phone Number" → "phone_number" → "phone"."""
    name = "_".join(unguarded(header).strip().lower().replace("-", " ").split())
    return ALIASES.get(name, name)
