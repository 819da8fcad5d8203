"""Wrong codes: brute force gets one try a call, and the right code always works.

Counted in Redis, kept as rows keyed by an HMAC of the number (with the app's secret key): a guesser
slows themselves down, a swept line slows everyone's tries — but a member with the right code, and a
host with the PIN, get in at the first try whatever strangers did.
"""

import datetime as dt
import hashlib

import sqlalchemy as sa

from telline import jobs
from telline.models import CodeLockout, utcnow
from telline.voice.lockout import caller_key
from tests.conftest import SECRET_KEY
from tests.voice.conftest import call, conference, meeting, press, said

GUESSER = "+447911123456"
ONE_TRY = "each call gets one try"


def guess_wrong(client, sender, times):
    root = None
    for i in range(times):
        if i % 3 == 0:
            sid, _ = call(client, sender=sender)
        root = press(client, sid, "111111")
    return root


def test_a_guesser_gets_one_try_a_call_for_a_while_and_the_row_hides_the_number(client, session, group, line,
                                                                                redis_conn):
    series = meeting(session, group, line)
    assert ONE_TRY in said(guess_wrong(client, GUESSER, 6))
    lock = session.scalar(sa.select(CodeLockout))
    assert (lock.line_id, lock.caller_key) == (line.id, caller_key(SECRET_KEY, GUESSER))
    # An HMAC with the secret, not a bare hash of the number (reversed in seconds over all numbers).
    assert lock.caller_key != hashlib.sha256(GUESSER.encode()).hexdigest()[:20]
    assert caller_key("another secret", GUESSER) != lock.caller_key
    assert dt.timedelta(minutes=14) < lock.until - utcnow() <= dt.timedelta(minutes=15)
    assert not any(b"7911123456" in key for key in redis_conn.keys("*"))
    assert not any(hashlib.sha256(GUESSER.encode()).hexdigest()[:20].encode() in key for key in redis_conn.keys("*"))

    sid, _ = call(client, sender=GUESSER)
    root = press(client, sid, "222222")  # one try this call: a wrong code ends it
    assert ONE_TRY in said(root) and root[-1].tag == "Hangup"
    sid, _ = call(client, sender=GUESSER)
    assert conference(press(client, sid, series.access_code)) is not None  # the right code still works
    sid, _ = call(client, sender=GUESSER)
    assert conference(press(client, sid, series.host_pin)).get("startConferenceOnEnter") == "true"

    lock.until = utcnow() - dt.timedelta(seconds=1)  # …15 minutes later
    session.flush()
    sid, _ = call(client, sender=GUESSER)  # counted afresh: three tries again
    assert "that code did not work" in said(press(client, sid, "222222"))
    assert "that code did not work" in said(press(client, sid, "333333"))


def test_a_swept_line_gives_everyone_one_try_but_the_right_code_and_the_pin_still_work(client, session, group,
                                                                                       line):
    series = meeting(session, group, line)
    for n in range(20):  # 20 numbers × 3 tries: 60 wrong codes on the line
        guess_wrong(client, f"+4479111230{n:02d}", 3)
    assert [lock.caller_key for lock in session.scalars(sa.select(CodeLockout))] == [None]
    sid, _ = call(client, sender="+447911999999")
    assert conference(press(client, sid, series.access_code)) is not None  # a member, first try
    sid, _ = call(client, sender="+447911999998")
    assert conference(press(client, sid, series.host_pin)).get("startConferenceOnEnter") == "true"  # the host
    sid, _ = call(client, sender="+447911999997")
    root = press(client, sid, "12345678")  # someone who mistypes now: call again
    assert ONE_TRY in said(root) and root[-1].tag == "Hangup"
    sid, _ = call(client, sender="+447911999997")
    assert conference(press(client, sid, series.access_code)) is not None


def test_withheld_callers_share_no_bucket(client, session, group, line):
    """Before: every withheld caller was one "number", so a stranger hiding theirs locked out every
    member who hides theirs. Now withheld callers count only towards the line."""
    series = meeting(session, group, line)
    guess_wrong(client, "anonymous", 12)
    assert session.scalars(sa.select(CodeLockout)).all() == []
    sid, _ = call(client, sender="anonymous")
    assert "that code did not work" in said(press(client, sid, "222222"))  # three tries, as anyone
    assert conference(press(client, sid, series.access_code)) is not None


def test_slowdowns_are_kept_thirty_days_after_they_end(session, group, line):
    now = utcnow()
    for days_ago in (31, 29, -1):
        session.add(CodeLockout(line_id=line.id, caller_key=caller_key(SECRET_KEY, GUESSER),
                                until=now - dt.timedelta(days=days_ago)))
    session.flush()
    assert jobs.prune_code_lockouts() == 1
    assert sorted((now - lock.until).days for lock in session.scalars(sa.select(CodeLockout))) == [-1, 29]


def test_an_operator_lifts_a_callers_slowdown_or_every_one_on_the_line(runner, client, session, group, line):
    from telline.cli import cli
    meeting(session, group, line)
    guess_wrong(client, GUESSER, 6)
    guess_wrong(client, "+447911000777", 6)
    r = runner.invoke(cli, ["meeting", "unlock", "+1 500-555-0006", "--caller", "+44 7911 123456"])
    assert (r.exit_code, r.output) == (0, "1 slowdown(s) lifted\n")
    sid, _ = call(client, sender=GUESSER)
    assert "that code did not work" in said(press(client, sid, "222222"))  # three tries again
    sid, _ = call(client, sender="+447911000777")
    assert ONE_TRY in said(press(client, sid, "222222"))  # the other one still waits
    assert runner.invoke(cli, ["meeting", "unlock", "+15005550006"]).output == "1 slowdown(s) lifted\n"
    assert runner.invoke(cli, ["meeting", "unlock", "+15005550006"]).output == "no slowdown in force\n"
    assert len(session.scalars(sa.select(CodeLockout)).all()) == 2  # kept, as the record


def test_unlock_explains_a_bad_number_or_an_unknown_line(runner, session, group, line):
    from telline.cli import cli
    r = runner.invoke(cli, ["meeting", "unlock", "+15005550006", "--caller", "12ab"])
    assert r.exit_code == 2 and "not a phone number" in r.output
    r = runner.invoke(cli, ["meeting", "unlock", "+15005559999"])
    assert r.exit_code == 2 and "is not a telline line" in r.output
