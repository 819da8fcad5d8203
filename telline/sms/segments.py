"""How many segments Twilio sends (and bills) for an outbound body.

A body is GSM-7 when every character is in the GSM 03.38 default alphabet or its
extension table (3GPP TS 23.038 §6.2.1; the `gsm0338` codec carries both tables,
by Unicode name, straight from the spec), otherwise UCS-2 (in practice UTF-16).
One segment holds 160 septets or 70 UTF-16 units; a longer message is split and
each part loses room to the 6-octet concatenation header: 153 septets or 67 units.
The splitter never cuts an ESC+character pair (€ [ ] { } ^ ~ | \\ and form feed)
or a surrogate pair (emoji outside the BMP): it moves it whole to the next part,
so the count can exceed ceil(units / 153) — Twilio bills "]" * 153 as 3 segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import gsm0338  # noqa: F401  (importing it registers the "gsm03.38" codec)

GSM7, UCS2 = "GSM-7", "UCS-2"
_ALONE = {GSM7: 160, UCS2: 70}       # units in a message sent as one segment
_PER_PART = {GSM7: 153, UCS2: 67}    # units per segment once concatenated


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int     # septets (extension characters count 2) or UTF-16 code units (astral characters count 2)
    count: int


def measure(body: str) -> Segments:
    """Encoding, size and segment count of `body` (an empty body still goes out as one segment)."""
    encoding, widths = _widths(body)
    units = sum(widths)
    if units <= _ALONE[encoding]:
        return Segments(encoding, units, 1)
    room, count, used = _PER_PART[encoding], 1, 0
    for width in widths:  # fill each part; a 2-unit character that does not fit starts the next one
        if used + width > room:
            count, used = count + 1, 0
        used += width
    return Segments(encoding, units, count)


def _widths(body: str) -> tuple[str, list[int]]:
    """The encoding the whole body needs, and each character's size in it."""
    # The codec maps a raw ESC control character (U+001B) to the escape septet itself;
    # it is no character a phone can show, so it forces UCS-2, as in Twilio's own
    # segment calculator (TwilioDevEd/message-segment-calculator, UnicodeToGSM.ts).
    if "\x1b" not in body:
        try:
            return GSM7, [len(char.encode("gsm03.38")) for char in body]
        except UnicodeEncodeError:
            pass
    return UCS2, [2 if ord(char) > 0xFFFF else 1 for char in body]
