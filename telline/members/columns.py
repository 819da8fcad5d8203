"""The members CSV's columns, one definition for the export and the import, so a file telline wrote
reads back as it was written. Its cells are guarded against formula injection by telline.spreadsheet
(a name "=HYPERLINK(...)" can be typed by anyone who texts the line), and read back through it.
"""

from __future__ import annotations

from typing import Final

from telline.spreadsheet import as_written

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


def column_name(header: str) -> str:
    """A header cell as a column name: "Phone Number" → "phone_number" → "phone"."""
    name = "_".join(as_written(header).strip().lower().replace("-", " ").split())
    return ALIASES.get(name, name)
