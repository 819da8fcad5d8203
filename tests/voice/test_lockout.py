"""Too many wrong codes: counted in Redis, the lock kept as a row (checked with the seat)."""

import datetime as dt

import sqlalchemy as sa

from telline import jobs
from telline.models import CodeLockout, utcnow
from telline.voice.lockout import caller_key
from tests.voice.conftest import call, conference, meeting, press, said

GUESSER = "+447911123456"


def guess_wrong(client, sender, times):
    root = None
    for i in range(times):
        if i % 3 == 0:
            sid, _ = call(client, sender=sender)
        root = press(client, sid, "111111")
    return root


def test_a_lock_is_a_row_keyed_by_a_hash_of_the_number_and_lasts_its_time(client, session, group, line,
                                                                          redis_conn):
    series = meeting(session, group, line)
    assert "Too many wrong codes" in said(guess_wrong(client, GUESSER, 6))
    lock = session.scalar(sa.select(CodeLockout))
    assert (lock.line_id, lock.caller_key) == (line.id, caller_key(GUESSER))
    assert "7911123456" not in lock.caller_key
    assert dt.timedelta(minutes=14) < lock.until - utcnow() <= dt.timedelta(minutes=15)
    assert not any(b"7911123456" in key for key in redis_conn.keys("*"))  # counters: hashed too

    sid, _ = call(client, sender=GUESSER)
    assert "Too many wrong codes" in said(press(client, sid, series.host_pin))  # the host PIN is a code too
    lock.until = utcnow() - dt.timedelta(seconds=1)  # …15 minutes later
    session.flush()
    sid, _ = call(client, sender=GUESSER)
    assert conference(press(client, sid, series.access_code)) is not None
    sid, _ = call(client, sender=GUESSER)  # counted afresh: one wrong code is not a lock
    assert "that code did not work" in said(press(client, sid, "222222"))


def test_a_line_swept_by_many_numbers_is_locked_for_everyone(client, session, group, line):
    series = meeting(session, group, line)
    for n in range(20):  # 20 numbers × 3 tries: 60 wrong codes on the line
        guess_wrong(client, f"+4479111230{n:02d}", 3)
    assert [lock.caller_key for lock in session.scalars(sa.select(CodeLockout))] == [None]
    sid, root = call(client, sender="+447911999999")
    assert "Too many wrong codes" in said(press(client, sid, series.access_code))


def test_locks_are_kept_thirty_days_after_they_end(session, group, line):
    now = utcnow()
    for days_ago in (31, 29, -1):
        session.add(CodeLockout(line_id=line.id, caller_key=caller_key(GUESSER), until=now - dt.timedelta(days=days_ago)))
    session.flush()
    assert jobs.prune_code_lockouts() == 1
    assert sorted((now - lock.until).days for lock in session.scalars(sa.select(CodeLockout))) == [-1, 29]


def test_an_operator_lifts_a_callers_lock_or_every_lock_on_the_line(runner, client, session, group, line):
    from telline.cli import cli
    series = meeting(session, group, line)
    guess_wrong(client, GUESSER, 6)
    guess_wrong(client, "+447911000777", 6)
    r = runner.invoke(cli, ["meeting", "unlock", "+1 500-555-0006", "--caller", "+44 7911 123456"])
    assert (r.exit_code, r.output) == (0, "1 lock(s) lifted\n")
    sid, _ = call(client, sender=GUESSER)
    assert conference(press(client, sid, series.access_code)) is not None
    sid, _ = call(client, sender="+447911000777")
    assert "Too many wrong codes" in said(press(client, sid, series.access_code))  # the other one still waits
    assert runner.invoke(cli, ["meeting", "unlock", "+15005550006"]).output == "1 lock(s) lifted\n"
    assert runner.invoke(cli, ["meeting", "unlock", "+15005550006"]).output == "no lock in force\n"
    assert len(session.scalars(sa.select(CodeLockout)).all()) == 2  # kept, as the record


def test_unlock_explains_a_bad_number_or_an_unknown_line(runner, session, group, line):
    from telline.cli import cli
    r = runner.invoke(cli, ["meeting", "unlock", "+15005550006", "--caller", "12ab"])
    assert r.exit_code == 2 and "not a phone number" in r.output
    r = runner.invoke(cli, ["meeting", "unlock", "+15005559999"])
    assert r.exit_code == 2 and "is not a telline line" in r.output
