"""A group's members as CSV (columns in telline.members.columns), which the import reads back.

Numbers are written in full (E.164: the file is for the coordinator's own records or another
import), so each export is in the audit log. consent is yes (the number's latest event is an
opt-in), no (an opt-out) or empty (never asked); for a yes, consent_source and consent_date say
how and when, from that event. An event another group recorded says only its kind (keyword, web…),
not that group's detail. Dates are the group's.
"""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from telline import zones
from telline.accounts import access, audit
from telline.members.columns import COLUMNS, guarded
from telline.models import ConsentEvent, Member, Membership, User
from telline.sms import consent


def export_csv(session: Session, user: User, group_id: int) -> str:
    group = access.require_group(session, user, group_id)
    zone = zones.zone(group.timezone)
    visible = set(access.group_ids(session, user))
    earlier = aliased(ConsentEvent)  # the subquery's own, apart from the joined latest event
    latest_id = (sa.select(earlier.id).where(earlier.phone == Member.phone, earlier.channel == "sms")
                 .order_by(earlier.id.desc()).limit(1).correlate(Member).scalar_subquery())
    query = (sa.select(Member, Membership, ConsentEvent)
             .join(Membership, (Membership.member_id == Member.id) & (Membership.group_id == group.id))
             .outerjoin(ConsentEvent, ConsentEvent.id == latest_id)
             .order_by(Member.id))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180's line ends, as spreadsheets write them
    writer.writerow(COLUMNS)
    count = 0
    for member, membership, event in session.execute(query):
        given, how, on = "", "", ""
        if event is not None:
            given = "yes" if event.action == consent.OPT_IN else "no"
        if event is not None and event.action == consent.OPT_IN:
            mine = event.group_id is None or event.group_id in visible
            if event.source in ("import", "web") and mine and event.detail:
                how = event.detail
            else:
                how = f"{event.source}: {event.detail}" if mine and event.detail else event.source
            on = (event.given_on or event.created_at.astimezone(zone).date()).isoformat()
        cells = [member.phone, member.display_name, member.language or "", member.timezone or "", membership.status,
                 given, how, on, member.sms_status, membership.joined_at.astimezone(zone).date().isoformat()]
        writer.writerow([guarded(c) for c in cells])
        count += 1
    audit.record(session, user, "members.export", group_id=group.id, detail={"rows": count})
    return out.getvalue()
