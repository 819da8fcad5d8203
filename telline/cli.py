"""The `telline` command. Every deployment unit (deploy/) runs one of these."""

from __future__ import annotations

import os
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup

from telline import create_app


def _settings():
    return current_app.config["TELLINE"]


def _warn_if_not_production_ready(settings) -> None:
    from telline.config import production_warnings
    for warning in production_warnings(settings):
        click.echo(f"telline: warning: {warning}", err=True)


@click.group(cls=FlaskGroup, create_app=create_app, load_dotenv=False, set_debug_flag=False)
def cli():
    """telline: a phone and SMS line for peer support groups."""


@cli.command("run", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int)
def run_command(host, port, web_workers):
    """Web + worker + cron together, migrations applied, Redis found or started."""
    from telline.supervisor import run_all
    settings = create_app().config["TELLINE"]  # validates the environment before anything starts
    sys.exit(run_all(settings, host, port, web_workers))


@cli.command("web", with_appcontext=False, context_settings={"ignore_unknown_options": True})
@click.option("--bind", default=lambda: f"0.0.0.0:{os.environ.get('PORT', '5000')}", show_default="0.0.0.0:$PORT")
@click.option("--workers", default=2, show_default=True, type=int)
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def web_command(bind, workers, gunicorn_args):
    """The web app under gunicorn (extra arguments go to gunicorn)."""
    # Fail here, with the settings error, not in every gunicorn worker.
    _warn_if_not_production_ready(create_app().config["TELLINE"])
    _fresh_metrics_dir(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    argv = ["gunicorn", "--bind", bind, "--workers", str(workers), "--access-logfile", "-",
            "--forwarded-allow-ips", os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
            *gunicorn_args, "telline:create_app()"]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def _fresh_metrics_dir(path: str | None) -> None:
    """prometheus_client's multiprocess mode needs the directory to exist and to start empty:
    files left by a previous run would be added to this run's counters."""
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


@cli.command("worker")
@click.option("--queues", default="urgent,default,bulk", show_default=True,
              help="Comma-separated, drained in this order.")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--simple", is_flag=True, help="Run jobs in-process instead of forking.")
@click.option("--worker-ttl", type=int, default=30, show_default=True,
              help="RQ's worker TTL. An idle worker also waits this less 15 s for a job before its "
                   "housekeeping comes round again. RQ's default is 420.")
@click.option("--maintenance-interval", type=int, default=10, show_default=True,
              help="Seconds between the worker's housekeeping (RQ's registry clean-ups, and starting a "
                   "scheduler where a dead one's lock was freed). RQ's default is 600.")
@click.option("--job-monitoring-interval", type=int, default=30, show_default=True,
              help="Seconds between a running job's heartbeats.")
def worker_command(queues, burst, simple, worker_ttl, maintenance_interval, job_monitoring_interval):
    """An RQ worker (with RQ's scheduler for delayed jobs), an app context per job."""
    from telline.worker import make_worker
    worker = make_worker(current_app._get_current_object(), [q.strip() for q in queues.split(",") if q.strip()],
                         simple=simple, worker_ttl=worker_ttl, maintenance_interval=maintenance_interval,
                         job_monitoring_interval=job_monitoring_interval)
    sys.exit(worker.run(burst=burst, with_scheduler=True, logging_level=_settings().log_level))


@cli.command("cron")
@click.option("--sweep-every", type=int, default=None, metavar="SECONDS",
              help="Seconds between two sweeps for lost jobs (default 15; a divisor of 60).")
def cron_command(sweep_every):
    """Enqueue the periodic jobs (telline.worker.PERIODIC) on their schedules."""
    from telline.worker import every_seconds, make_cron
    if sweep_every is not None:
        try:
            every_seconds(sweep_every)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    make_cron(current_app._get_current_object(), sweep_every=sweep_every).start()


@cli.command("standin")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8099, show_default=True, type=int, help="0: any free port (printed)")
@click.option("--auto-status", default="", metavar="STATUS,…",
              help="Move each new message through these statuses, e.g. sent,delivered.")
def standin_command(host, port, auto_status):
    """A local stand-in for Twilio's REST API (set TWILIO_API_BASE_URL to its URL).

    It checks requests against, and signs callbacks with, this app's TWILIO_AUTH_TOKEN."""
    from telline.twilio.standin import serve
    settings = _settings()
    serve(host, port, settings.twilio_auth_token, settings.twilio_account_sid,
          [s for s in auto_status.split(",") if s])


@cli.group("db")
def db_group():
    """Database migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision):
    """Apply migrations up to REVISION (default: the latest)."""
    from telline import migrate
    migrate.upgrade(_settings().database_url, revision)
    click.echo(f"database at {migrate.current(_settings().database_url)}")


@db_group.command("current")
def db_current():
    from telline import migrate
    click.echo(migrate.current(_settings().database_url) or "empty (run `telline db upgrade`)")


@cli.group("group")
def group_group():
    """Support groups and the Twilio numbers they answer on."""


@group_group.command("create")
@click.option("--name", required=True)
@click.option("--language", default="en", show_default=True)
@click.option("--timezone", "tz", default="UTC", show_default=True, help="IANA name, e.g. Europe/Paris")
@click.option("--region", default="US", show_default=True,
              help="Country for numbers written without +code (ISO 3166, e.g. GB, FR)")
def group_create(name, language, tz, region):
    from telline import groups
    try:
        group = groups.create_group(name=name, language=language, timezone=tz, region=region)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"group {group.id} created")


@group_group.command("add-line")
@click.argument("group_id", type=int)
@click.argument("number")
def group_add_line(group_id, number):
    """Attach a Twilio number to a group (point its webhooks at /twilio/voice and /twilio/sms)."""
    from telline import groups
    try:
        line = groups.add_line(group_id, number)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"line {line.id} ({line.phone_number}) now answers for group {group_id}")


@group_group.command("configure")
@click.argument("group_id", type=int)
@click.option("--text-code", help="What members text after JOIN, e.g. CARE42.")
@click.option("--confirm-join/--no-confirm-join", default=None,
              help="Double opt-in: JOIN asks for YES (the default) or joins at once.")
@click.option("--quiet-hours", metavar="HH:MM-HH:MM", help="No ordinary texts then (local time); 'none' for none.")
@click.option("--crisis", help="Said in HELP and acknowledgements, e.g. 'call 116 123 (Samaritans)'.")
@click.option("--contact", help="How to reach a coordinator, said in HELP.")
def group_configure(group_id, text_code, confirm_join, quiet_hours, crisis, contact):
    """Change a group's SMS settings."""
    from telline import groups
    try:
        group = groups.configure_group(group_id, text_code=text_code, join_needs_confirmation=confirm_join,
                                       quiet_hours=quiet_hours, crisis_resource=crisis, coordinator_contact=contact)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"group {group.id}: code {group.text_code or '-'}, quiet hours "
               f"{group.quiet_start:%H:%M}-{group.quiet_end:%H:%M}, "
               f"{'double' if group.join_needs_confirmation else 'single'} opt-in")


@group_group.command("line-rate")
@click.argument("number")
@click.argument("per_second", type=float)
@click.option("--unit", type=click.Choice(["segments", "messages"]), default="segments", show_default=True)
def group_line_rate(number, per_second, unit):
    """Set a line's SMS throughput (Twilio's: long code 1, toll-free 3, short code 100 per second)."""
    from telline import groups
    try:
        line = groups.set_line_rate(number, per_second, unit)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"line {line.id}: at most {line.sms_rate:g} {line.sms_rate_unit} per second")


@cli.group("sms")
def sms_group():
    """Texts: broadcasts and delivery problems."""


@sms_group.command("broadcast")
@click.argument("group_id", type=int)
@click.argument("body")
@click.option("--key", help="Idempotency key: the same key never sends twice.")
def sms_broadcast(group_id, body, key):
    """Text every opted-in member of a group (sent by the workers)."""
    from telline import db
    from telline.sms.broadcast import start_broadcast
    from telline.sms.outbound import InvalidText
    session = db.session()
    try:
        broadcast = start_broadcast(session, group_id=group_id, body=body, idempotency_key=key)
    except InvalidText as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"broadcast {broadcast.id} queued")


@sms_group.command("failures")
@click.option("--group", "group_id", type=int, help="Only this group's members.")
def sms_failures(group_id):
    """Members whose texts fail, and why (numbers masked)."""
    from telline import db
    from telline.sms.reports import failures
    for row in failures(db.session(), group_id):
        click.echo(f"member {row.member_id:>5}  {row.number:<16} {row.problem:<12} {row.detail}")


@cli.group("meeting")
def meeting_group():
    """Phone meetings: schedule, settings, cancel, roster, attendance, unlock."""


@meeting_group.command("create")
@click.argument("group_id", type=int)
@click.option("--line", "number", required=True, help="The dial-in number (one of the group's lines).")
@click.option("--first", "first", required=True, metavar="'YYYY-MM-DD HH:MM'",
              help="The first meeting, in the group's local time.")
@click.option("--rrule", default="FREQ=WEEKLY", show_default=True,
              help="How it repeats (RFC 5545), e.g. 'FREQ=WEEKLY;BYDAY=TU' or 'FREQ=MONTHLY;BYDAY=1MO'.")
@click.option("--duration", default=60, show_default=True, type=int, help="Minutes.")
@click.option("--title", default="", help="For coordinators; callers hear the group's name.")
def meeting_create(group_id, number, first, rrule, duration, title):
    """Schedule a recurring phone meeting; prints its access code and host PIN."""
    import datetime as dt
    from telline import db, groups
    from telline.models import Group
    from telline.scheduling.series import InvalidSeries, create_series
    session = db.session()
    group = session.get(Group, group_id)
    try:
        if group is None:
            raise InvalidSeries(f"there is no group {group_id}")
        line = next((ln for ln in group.lines if ln.phone_number == groups.any_e164(number)), None)
        if line is None:
            raise InvalidSeries(f"{number} is not one of this group's lines")
        try:
            start = dt.datetime.strptime(first.strip(), "%Y-%m-%d %H:%M")
        except ValueError:
            raise InvalidSeries("--first looks like '2026-12-01 19:00' (the group's local time)") from None
        series = create_series(session, group=group, line=line, title=title or group.name,
                               first_start_local=start, rrule=rrule, duration_minutes=duration)
    except (InvalidSeries, groups.InvalidGroup) as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"meeting series {series.id}: access code {series.access_code}, host PIN {series.host_pin}")


@meeting_group.command("configure")
@click.argument("series_id", type=int)
@click.option("--join-early", type=int, help="Minutes before the start callers may join.")
@click.option("--max-participants", type=click.IntRange(2, 250))
@click.option("--caller-id-joins/--no-caller-id-joins", default=None,
              help="Known members' numbers skip the code (caller ID can be spoofed: off by default).")
@click.option("--host-leaving-ends/--host-leaving-does-not-end", default=None)
@click.option("--entry-tones/--no-entry-tones", default=None, help="A tone when someone joins or leaves.")
@click.option("--record/--no-record", default=None, help="Record (every joiner is told first).")
@click.option("--wait-url", help="Hold music or a message while waiting for the host (an http(s) URL).")
def meeting_configure(series_id, join_early, max_participants, caller_id_joins, host_leaving_ends, entry_tones,
                      record, wait_url):
    """Change how a meeting's bridge behaves."""
    from telline import db
    from telline.models import MeetingSeries
    session = db.session()
    series = session.get(MeetingSeries, series_id)
    if series is None:
        raise click.UsageError(f"there is no meeting series {series_id}")
    if join_early is not None:
        if not 0 <= join_early <= 120:
            raise click.UsageError("--join-early is between 0 and 120 minutes")
        series.join_early_minutes = join_early
    if wait_url is not None:
        if wait_url and not wait_url.startswith(("https://", "http://")):
            raise click.UsageError("--wait-url must be an http(s) URL (or '' for Twilio's hold music)")
        series.wait_url = wait_url or None
    for field, value in (("max_participants", max_participants), ("caller_id_joins", caller_id_joins),
                         ("host_leaving_ends", host_leaving_ends), ("announce_entries", entry_tones),
                         ("record", record)):
        if value is not None:
            setattr(series, field, value)
    session.commit()
    click.echo(f"meeting series {series.id} updated")


@meeting_group.command("cancel")
@click.argument("series_id", type=int)
@click.argument("date", metavar="YYYY-MM-DD")
def meeting_cancel(series_id, date):
    """Cancel one meeting of a series (callers are told the next one)."""
    import datetime as dt
    from zoneinfo import ZoneInfo
    from telline import db
    from telline.models import Group, MeetingSeries
    from telline.scheduling.series import next_start
    from telline.voice.meetings import cancel
    session = db.session()
    series = session.get(MeetingSeries, series_id)
    if series is None:
        raise click.UsageError(f"there is no meeting series {series_id}")
    zone = ZoneInfo(session.get(Group, series.group_id).timezone)
    try:
        day = dt.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=zone)
    except ValueError:
        raise click.UsageError("the date looks like 2026-12-24") from None
    start = next_start(series, zone, day)
    if start is None or start.astimezone(zone).date() != day.date():
        raise click.UsageError(f"series {series_id} has no meeting on {date}")
    cancel(session, series, start)
    session.commit()
    click.echo(f"meeting of {date} cancelled")


@meeting_group.command("unlock")
@click.argument("number", metavar="LINE")
@click.option("--caller", help="Only this caller's number; without it, every slowdown on the line.")
def meeting_unlock(number, caller):
    """Give callers slowed down for wrong codes their three tries a call again, now."""
    import sqlalchemy as sa
    from telline import db, groups
    from telline.models import Line, utcnow
    from telline.queue import queues
    from telline.voice.lockout import Lockout
    session = db.session()
    try:
        line = session.scalar(sa.select(Line).where(Line.phone_number == groups.any_e164(number)))
        caller_number = groups.any_e164(caller) if caller is not None else None
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    if line is None:
        raise click.UsageError(f"{number} is not a telline line")
    lifted = Lockout(queues().connection, _settings().secret_key).lift(session, line.id, caller_number, utcnow())
    session.commit()
    click.echo(f"{lifted} slowdown(s) lifted" if lifted else "no slowdown in force")


@meeting_group.command("roster")
@click.argument("occurrence_id", type=int)
def meeting_roster(occurrence_id):
    """Who is on the call now (names as members chose them; numbers never shown)."""
    from telline import db
    from telline.voice.roster import roster
    for line in roster(db.session(), occurrence_id):
        flags = " ".join(f for f, on in (("muted", line.muted), ("on-hold", line.on_hold),
                                          ("hand", line.hand_raised), ("left", not line.present)) if on)
        click.echo(f"{line.participant_id:>6}  {line.shown_as:<24} {line.role:<7} {flags}")


@meeting_group.command("attendance")
@click.argument("occurrence_id", type=int)
def meeting_attendance(occurrence_id):
    """Who attended a meeting and for how long."""
    from telline import db
    from telline.voice.roster import attendance
    for row in attendance(db.session(), occurrence_id):
        click.echo(f"{row.shown_as:<24} {row.role:<7} {row.minutes:>6.1f} min")


def main():
    from telline.config import ConfigError
    try:
        cli(prog_name="telline")
    except ConfigError as exc:  # a settings mistake is the operator's to fix: say which, no traceback
        click.echo(f"telline: configuration error: {exc}", err=True)
        sys.exit(2)
