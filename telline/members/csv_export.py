"""A group's members as CSV (columns in telline.members.columns), which the import reads back.

Numbers are written in full (E.164: the file is for the coordinator's own records or another
import), so each export is in the audit log. consent is yes (the number's latest event is an
opt-in), no (an opt-out) or empty (never asked); for a yes, consent_source and consent_date say
how and when, from that event. An event another group recorded says only its kind (keyword, web…),
not that group's detail. Dates are the group's.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from telline import zones
from telline.accounts import access, audit
from telline.members.columns import COLUMNS
from telline.models import ConsentEvent, Member, Membership, User
from telline.sms import consent
from telline.spreadsheet import csv_text


def export_csv(session: Session, user: User, group_id: int) -> str:
    group = access.require_group(session, user, group_id)
    zone = zones.zone(group.timezone)
    visible = set(access.group_ids(session, user))
    earlier = aliased(ConsentEvent)  # the subquery's own, apart from the joined latest event
    latest_id = (sa.select(earlier.id).where(earlier.phone == Member.phone, earlier.channel == "sms")
                 .order_by(earlier.id.desc()).limit(1).correlate(Member).scalar_subquery())
    # Columns, not rows as objects: building 20,000 ORM objects a time would be most of the export's cost.
    query = (sa.select(Member.phone, Member.display_name, Member.language, Member.timezone, Member.sms_status,
                       Membership.status, Membership.joined_at, ConsentEvent.action, ConsentEvent.source,
                       ConsentEvent.detail, ConsentEvent.group_id, ConsentEvent.given_on, ConsentEvent.created_at)
             .join(Membership, (Membership.member_id == Member.id) & (Membership.group_id == group.id))
             .outerjoin(ConsentEvent, ConsentEvent.id == latest_id)
             .order_by(Member.id))
    rows = [_cells(row, zone, visible) for row in session.execute(query)]
    audit.record(session, user, "members.export", group_id=group.id, detail={"rows": len(rows)})
    return csv_text(list(COLUMNS), rows)


def _cells(row: sa.Row[*tuple[Any, ...]], zone: ZoneInfo, visible: set[int]) -> list[str]:
    how, on = "", ""
    given = {None: "", consent.OPT_IN: "yes", consent.OPT_OUT: "no"}[row.action]
    if row.action == consent.OPT_IN:
        mine = row.group_id is None or row.group_id in visible
        if row.source in ("import", "web") and mine and row.detail:
            how = row.detail
        else:
            how = f"{row.source}: {row.detail}" if mine and row.detail else row.source
        on = (row.given_on or row.created_at.astimezone(zone).date()).isoformat()
    return [row.phone, row.display_name, row.language or "", row.timezone or "", row.status, given, how, on,
            row.sms_status, row.joined_at.astimezone(zone).date().isoformat()]
