"""Which group a Twilio number belongs to."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.models import Line


def line_for(session: Session, e164: str | None) -> Line | None:
    if not e164:
        return None
    return session.scalar(sa.select(Line).where(Line.phone_number == e164))
