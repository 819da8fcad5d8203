"""Time zones as people type them: an IANA name (Europe/Paris), checked once for every caller."""

from __future__ import annotations

from zoneinfo import ZoneInfo


class UnknownZone(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    """The zone named, or UnknownZone saying in one sentence what to give instead."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # zoneinfo's ZoneInfoNotFoundError is a KeyError
        raise UnknownZone(f"{name!r} is not a time zone: give an IANA name such as Europe/Paris") from None
