"""The `telline` command. Every deployment unit (deploy/) runs one of these.

A click group of telline's own (not Flask's FlaskGroup: its --app, --env-file, --debug and
--version are Flask's, not an operator's). Commands that need the app get an app context
from flask.cli's AppGroup, built by create_app() from the environment on first need.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo

from telline import create_app

if TYPE_CHECKING:
    import datetime as dt

    from sqlalchemy.orm import Session

    from telline.models import MeetingSeries

Row = TypeVar("Row")


def _settings():
    return current_app.config["TELLINE"]


def _this_app() -> Flask:
    """The app itself, not the context-local proxy to it: a worker and cron keep it past this context."""
    # Flask types current_app as the Flask it stands for; the proxy's own method is untyped.
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _warn_if_not_production_ready(settings) -> None:
    from telline.config import production_warnings
    for warning in production_warnings(settings):
        click.echo(f"telline: warning: {warning}", err=True)


@click.group(cls=AppGroup, name="telline")
@click.version_option(package_name="telline", prog_name="telline", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """A phone and SMS line for peer support groups."""
    if ctx.obj is None:  # tests pass their own (FlaskCliRunner: the test's app)
        ctx.obj = ScriptInfo(create_app=create_app, set_debug_flag=False, load_dotenv_defaults=False)


@cli.command("run", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int)
def run_command(host, port, web_workers):
    """Web, worker and cron together, for one machine (a laptop).

    Applies the migrations and uses the Redis at TELLINE_REDIS_URL, or starts a private one."""
    from telline.supervisor import run_all
    settings = create_app().config["TELLINE"]  # validates the environment before anything starts
    sys.exit(run_all(settings, host, port, web_workers))


@cli.command("web", with_appcontext=False, context_settings={"ignore_unknown_options": True})
@click.option("--bind", default=lambda: f"0.0.0.0:{os.environ.get('PORT', '5000')}", show_default="0.0.0.0:$PORT")
@click.option("--workers", default=2, show_default=True, type=int)
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def web_command(bind, workers, gunicorn_args):
    """The web app under gunicorn.

    Extra arguments go to gunicorn."""
    # Fail here, with the settings error, not in every gunicorn worker.
    _warn_if_not_production_ready(create_app().config["TELLINE"])
    _fresh_metrics_dir(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    argv = ["gunicorn", "--bind", bind, "--workers", str(workers), "--access-logfile", "-",
            "--logger-class", "telline.access_log.AccessLogger",  # calendar tokens masked
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
@click.option("--queues", default="urgent,default,bulk", show_default=True, envvar="TELLINE_WORKER_QUEUES",
              help="Comma-separated, drained in this order; `--queues urgent`: the urgent lane "
                   "(also from TELLINE_WORKER_QUEUES).")
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
    """An RQ worker that sends texts, dials out and moderates.

    It runs RQ's scheduler for delayed jobs, and each job in a fresh app context."""
    from telline.twilio.gateway import not_configured
    from telline.worker import make_worker
    reason = not_configured(_settings())
    if reason:  # said once here, then each text's row and log line say it again, briefly
        click.echo(f"telline: warning: {reason}: no text or call goes out, and each text is marked refused "
                   "with this reason. Set them, or point TWILIO_API_BASE_URL at `telline standin`.",
                   err=True)
    try:
        worker = make_worker(_this_app(), [q.strip() for q in queues.split(",") if q.strip()],
                             simple=simple, worker_ttl=worker_ttl, maintenance_interval=maintenance_interval,
                             job_monitoring_interval=job_monitoring_interval)
    except ValueError as exc:  # an unknown queue (telline.job_queues says which): a typo, not a worker
        raise click.BadParameter(str(exc), param_hint="'--queues' / TELLINE_WORKER_QUEUES") from None
    sys.exit(worker.run(burst=burst, with_scheduler=True, logging_level=_settings().log_level))


@cli.command("cron")
@click.option("--sweep-every", type=int, default=None, metavar="SECONDS",
              help="Seconds between two sweeps for lost jobs (default 15; a divisor of 60).")
@click.option("--tick-every", type=int, default=None, metavar="SECONDS",
              help="Seconds between two reminder ticks (default 60; a divisor of 60).")
def cron_command(sweep_every, tick_every):
    """RQ's cron: enqueues the periodic jobs, each run once.

    A second one (a standby) adds nothing twice. The jobs are listed in telline.worker.PERIODIC."""
    from telline.worker import every_seconds, make_cron
    for seconds in (sweep_every, tick_every):
        if seconds is not None:
            try:
                every_seconds(seconds)
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
    make_cron(_this_app(), sweep_every=sweep_every, tick_every=tick_every).start()


@cli.command("standin")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8099, show_default=True, type=int, help="0: any free port (printed)")
@click.option("--auto-status", default="", metavar="STATUS,…",
              help="Move each new message through these statuses, e.g. sent,delivered.")
@click.option("--latency", default=0.0, show_default=True, type=click.FloatRange(0, 60), metavar="SECONDS",
              help="Answer each API request after this long (Twilio's own: 0.1-0.3 s).")
@click.option("--jitter", default=0.0, show_default=True, type=click.FloatRange(0, 60), metavar="SECONDS",
              help="Spread the latency uniformly by this much either way.")
def standin_command(host, port, auto_status, latency, jitter):
    """A local stand-in for Twilio's REST API, for tests and demos.

    Point TWILIO_API_BASE_URL at the URL it prints. It checks requests against, and signs
    callbacks with, this app's TWILIO_AUTH_TOKEN."""
    from telline.twilio.standin import serve
    settings = _settings()
    serve(host, port, settings.twilio_auth_token, settings.twilio_account_sid,
          [s for s in auto_status.split(",") if s], latency, jitter)


@cli.group("db")
def db_group():
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision):
    """Apply migrations up to REVISION (default: the latest)."""
    from telline import migrate
    before = migrate.upgrade(_settings().database_url, revision)
    after = migrate.current(_settings().database_url)
    click.echo(f"database at {after} ({'already' if before == after else 'was ' + (before or 'empty')})")


@db_group.command("current")
def db_current():
    """Print the revision the database is at."""
    from telline import migrate
    click.echo(migrate.current(_settings().database_url) or "empty (run `telline db upgrade`)")


@cli.group("group")
def group_group():
    """Support groups, their settings and their lines."""


@group_group.command("create")
@click.option("--name", required=True)
@click.option("--language", default="en", show_default=True)
@click.option("--timezone", "tz", default="UTC", show_default=True, help="IANA name, e.g. Europe/Paris")
@click.option("--region", default="US", show_default=True,
              help="Country for numbers written without +code (ISO 3166, e.g. GB, FR)")
def group_create(name, language, tz, region):
    """Create a support group; prints its id."""
    from telline import db, groups
    session = db.session()
    try:
        group = groups.create_group(session, name=name, language=language, timezone=tz, region=region)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"group {group.id} created")


@group_group.command("add-line")
@click.argument("group_id", type=int)
@click.argument("number")
def group_add_line(group_id, number):
    """Attach a Twilio number to a group.

    Point the number's webhooks at /twilio/voice and /twilio/sms."""
    from telline import db, groups
    session = db.session()
    try:
        line = groups.add_line(session, group_id, number)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"line {line.id} ({line.phone_number}) now answers for group {group_id}")


@group_group.command("configure")
@click.argument("group_id", type=int)
@click.option("--text-code", help="What members text after JOIN, e.g. CARE42.")
@click.option("--confirm-join/--no-confirm-join", default=None,
              help="Double opt-in: JOIN asks for YES (the default) or joins at once.")
@click.option("--quiet-hours", metavar="HH:MM-HH:MM", help="No ordinary texts then (local time); 'none' for none.")
@click.option("--crisis", help="Said in HELP and acknowledgements, e.g. 'call 116 123 (Samaritans)'.")
@click.option("--contact", help="How to reach a coordinator, said in HELP.")
@click.option("--retention-days", type=int, metavar="DAYS",
              help="Blank texts' bodies after this many days (1-3650; 180 unless set).")
def group_configure(group_id, text_code, confirm_join, quiet_hours, crisis, contact, retention_days):
    """Change a group's SMS settings."""
    from telline import db, groups
    session = db.session()
    try:
        group = groups.configure_group(session, group_id, text_code=text_code, join_needs_confirmation=confirm_join,
                                       quiet_hours=quiet_hours, crisis_resource=crisis, coordinator_contact=contact,
                                       retention_days=retention_days)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"group {group.id}: code {group.text_code or '-'}, quiet hours "
               f"{group.quiet_start:%H:%M}-{group.quiet_end:%H:%M}, "
               f"{'double' if group.join_needs_confirmation else 'single'} opt-in, "
               f"texts' bodies kept {group.message_retention_days} days")


@group_group.command("line-rate")
@click.argument("number")
@click.argument("per_second", type=float)
@click.option("--unit", type=click.Choice(["segments", "messages"]), default="segments", show_default=True)
def group_line_rate(number, per_second, unit):
    """Set a line's SMS throughput, as Twilio allows it.

    Long code 1, toll-free 3, short code 100 per second; 10DLC by campaign."""
    from telline import db, groups
    session = db.session()
    try:
        line = groups.set_line_rate(session, number, per_second, unit)
    except groups.InvalidGroup as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
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
    from telline.models import Group
    from telline.sms.reports import failures
    session = db.session()
    if group_id is not None and session.get(Group, group_id) is None:
        raise click.UsageError(f"there is no group {group_id}")
    found = failures(session, group_id)
    if not found:
        click.echo("no member's texts are failing" if group_id is None
                   else f"no member of group {group_id} has texts failing")
    for row in found:
        click.echo(f"member {row.member_id:>5}  {row.number:<16} {row.problem:<12} {row.detail}")


@cli.group("meeting")
def meeting_group():
    """Phone meetings: schedule, tune, cancel, list, follow."""


@meeting_group.command("create")
@click.argument("group_id", type=int)
@click.option("--line", "number", required=True, help="The dial-in number (one of the group's lines).")
@click.option("--first", "first", required=True, metavar="'YYYY-MM-DD HH:MM'",
              help="The first meeting, in the series' local time (--timezone, else the group's).")
@click.option("--rrule", default="FREQ=WEEKLY", show_default=True,
              help="How it repeats (RFC 5545), e.g. 'FREQ=WEEKLY;BYDAY=TU' or 'FREQ=MONTHLY;BYDAY=1MO'.")
@click.option("--duration", default=60, show_default=True, type=int, help="Minutes.")
@click.option("--title", default="", help="For coordinators; callers hear the group's name.")
@click.option("--timezone", default=None, help="IANA zone of --first and the rule (default: the group's).")
def meeting_create(group_id, number, first, rrule, duration, title, timezone):
    """Schedule a recurring phone meeting.

    Prints its access code and host PIN."""
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
                               first_start_local=start, rrule=rrule, duration_minutes=duration,
                               timezone=timezone)
    except (InvalidSeries, groups.InvalidGroup) as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"meeting series {series.id}: access code {series.access_code}, host PIN {series.host_pin}")
    _warn_about_overlaps(session, series)


def _warn_about_overlaps(session: Session, series: MeetingSeries) -> None:
    from zoneinfo import ZoneInfo

    from telline.models import utcnow
    from telline.scheduling.series import overlapping
    zone = ZoneInfo(series.timezone)
    for other, when in overlapping(session, series, utcnow()):
        click.echo(f"telline: warning: meeting series {other.id} meets on this line at the same time "
                   f"(first: {when.astimezone(zone):%a %Y-%m-%d %H:%M %Z}); callers reach the right meeting "
                   "by its code", err=True)


@meeting_group.command("configure")
@click.argument("series_id", type=int)
@click.option("--join-early", type=int, help="Minutes before the start callers may join (0-120).")
@click.option("--max-participants", type=int, help="At most this many callers (2-250).")
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
    from telline.scheduling.series import InvalidSeries, configure_series
    chosen = {"join_early_minutes": join_early, "max_participants": max_participants,
              "caller_id_joins": caller_id_joins, "host_leaving_ends": host_leaving_ends,
              "announce_entries": entry_tones, "record": record, "wait_url": wait_url}
    session = db.session()
    try:
        series = configure_series(session, series_id, **{k: v for k, v in chosen.items() if v is not None})
    except InvalidSeries as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"meeting series {series.id} updated")


@meeting_group.command("cancel")
@click.argument("series_id", type=int)
@click.argument("date", metavar="YYYY-MM-DD")
def meeting_cancel(series_id, date):
    """Cancel one meeting of a series.

    Callers are then told when the next one is; members who opted in get a text."""
    from telline import db
    from telline.scheduling.occurrences import cancel
    from telline.scheduling.series import InvalidSeries
    session = db.session()
    try:
        cancel(session, series_id, _meeting_on(session, series_id, date))
    except InvalidSeries as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"meeting of {date} cancelled")


@meeting_group.command("move")
@click.argument("series_id", type=int)
@click.argument("date", metavar="YYYY-MM-DD")
@click.argument("to", metavar="'YYYY-MM-DD HH:MM'")
@click.option("--duration", type=int, help="Minutes (5-1440); the series' by default.")
def meeting_move(series_id, date, to, duration):
    """Move one meeting of a series to another time.

    DATE is the meeting's usual date, TO its new start in the series' local time.

    Members who opted in get a text; moving it back to its usual time restores it."""
    import datetime as dt

    from telline import db
    from telline.scheduling.occurrences import move
    from telline.scheduling.series import InvalidSeries
    session = db.session()
    try:
        original = _meeting_on(session, series_id, date)
        try:
            new = dt.datetime.strptime(to.strip(), "%Y-%m-%d %H:%M")
        except ValueError:
            raise InvalidSeries("the new time looks like '2026-12-01 19:00' (the series' local time)") from None
        row = move(session, series_id, original, new, duration)
    except InvalidSeries as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"meeting of {date} now at {to} (occurrence {row.id})")


def _meeting_on(session: Session, series_id: int, date: str) -> dt.datetime:
    """The rule's start of the series' meeting on DATE (its local date), or InvalidSeries."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from telline.models import MeetingSeries
    from telline.scheduling.series import InvalidSeries, next_start
    series = session.get(MeetingSeries, series_id)
    if series is None:
        raise InvalidSeries(f"there is no meeting series {series_id}")
    zone = ZoneInfo(series.timezone)
    try:
        day = dt.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=zone)
    except ValueError:
        raise InvalidSeries("the date looks like 2026-12-24") from None
    start = next_start(series, zone, day)
    if start is None or start.astimezone(zone).date() != day.date():
        raise InvalidSeries(f"series {series_id} has no meeting on {date}")
    return start


@cli.group("calendar")
def calendar_group():
    """Groups' private calendar (.ics) URLs."""


@calendar_group.command("url")
@click.argument("group_id", type=int)
def calendar_url(group_id):
    """Make a group a new private calendar URL (printed once).

    Only a hash of its token is kept: the URL cannot be shown again."""
    from telline import db
    from telline.scheduling.calendar_feeds import InvalidFeed, create_feed, path
    public = _settings().public_url
    if not public:
        raise click.UsageError("set TELLINE_PUBLIC_URL (the address members reach this server at) first")
    session = db.session()
    try:
        feed, token = create_feed(session, group_id)
    except InvalidFeed as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"calendar feed {feed.id}: {public}{path(token)}")


@calendar_group.command("list")
@click.argument("group_id", type=int)
def calendar_list(group_id):
    """A group's calendar feeds that still answer.

    Their ids and dates only: the URLs are not kept."""
    from telline import db
    from telline.scheduling.calendar_feeds import current_feeds
    feeds = current_feeds(db.session(), group_id)
    if not feeds:
        click.echo(f"group {group_id} has no calendar feed")
    for feed in feeds:
        click.echo(f"calendar feed {feed.id}, made {feed.created_at:%Y-%m-%d %H:%M} UTC")


@calendar_group.command("revoke")
@click.argument("feed_id", type=int)
def calendar_revoke(feed_id):
    """Stop a calendar URL answering, for good."""
    from telline import db
    from telline.scheduling.calendar_feeds import InvalidFeed, revoke_feed
    session = db.session()
    try:
        revoke_feed(session, feed_id)
    except InvalidFeed as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"calendar feed {feed_id} revoked")


@cli.group("user")
def user_group():
    """Admins and coordinators: their accounts and API tokens."""


def _password(from_stdin: bool) -> str:
    """From a hidden prompt (typed twice), or the first line of stdin: never an argument, which
    would land in the shell's history and in `ps` for everyone on the machine."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "coordinator"]), required=True)
@click.option("--group", "group_ids", type=int, multiple=True, metavar="ID", help="A group a coordinator runs.")
@click.option("--name", default="", help="Shown to other coordinators (default: the e-mail's name).")
@click.option("--language", default="en", show_default=True)
@click.option("--timezone", "tz", default="UTC", show_default=True, help="IANA name, e.g. Europe/Paris")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(email, role, group_ids, name, language, tz, password_stdin):
    """Add a user (password from a prompt or stdin)."""
    from telline import db
    from telline.accounts.users import InvalidUser, create_user
    session = db.session()
    try:
        user = create_user(session, email=email, display_name=name or email.split("@")[0], role=role,
                           group_ids=group_ids, language=language, timezone=tz, password=_password(password_stdin))
    except InvalidUser as exc:
        raise click.UsageError(str(exc)) from None
    session.commit()
    click.echo(f"user {user.id} ({user.email}, {user.role}) added")


@user_group.command("token")
@click.argument("email")
@click.option("--name", default="", help="What the token is for, to tell tokens apart.")
def user_token(email, name):
    """Make an API token for a user (printed once).

    Only a hash of it is kept."""
    from telline import db
    from telline.accounts import tokens, users
    session = db.session()
    user = users.by_email(session, email)
    if user is None or not user.active:
        raise click.UsageError(f"there is no active user {email}")
    token, raw = tokens.issue_token(session, user, name)
    session.commit()
    click.echo(f"token {token.id} for {user.email} (shown once, keep it secret):\n{raw}")


@user_group.command("list")
def user_list():
    """Every user, their groups and tokens."""
    from telline import db
    from telline.accounts import access, tokens, users
    session = db.session()
    for user in users.list_users(session):
        ids = access.group_ids(session, user)
        groups = "all groups" if access.is_admin(user) else ("groups " + ",".join(map(str, ids)) if ids else "no group")
        state = "active" if user.active else "deactivated"
        live = [t for t in tokens.tokens_of(session, user.id) if t.revoked_at is None]
        click.echo(f"{user.id}\t{user.email}\t{user.role}\t{groups}\t{state}\t"
                   f"tokens: {', '.join(f'{t.id} ({t.prefix}…)' for t in live) or 'none'}")


@user_group.command("revoke-token")
@click.argument("token_id", type=int)
def user_revoke_token(token_id):
    """Stop an API token working, for good."""
    from telline import db
    from telline.accounts import tokens
    session = db.session()
    if tokens.revoke_token(session, token_id) is None:
        raise click.UsageError(f"there is no token {token_id}")
    session.commit()
    click.echo(f"token {token_id} revoked")


@user_group.command("deactivate")
@click.argument("email")
def user_deactivate(email):
    """Stop a user signing in or using their tokens.

    Their past actions stay in the audit log."""
    from telline import db
    from telline.accounts import users
    session = db.session()
    user = users.by_email(session, email)
    if user is None:
        raise click.UsageError(f"there is no user {email}")
    users.deactivate(session, user)
    session.commit()
    click.echo(f"user {user.email} deactivated")


@meeting_group.command("unlock")
@click.argument("number", metavar="LINE")
@click.option("--caller", help="Only this caller's number; without it, every slowdown on the line.")
def meeting_unlock(number, caller):
    """Give callers slowed for wrong codes their three tries again.

    Now, and a call at a time, as before they were slowed."""
    import sqlalchemy as sa

    from telline import db, groups
    from telline.job_queues import queues
    from telline.models import Line, utcnow
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
@click.argument("occurrence_id", type=int, metavar="MEETING_ID")
def meeting_roster(occurrence_id: int) -> None:
    """Who is on a meeting now.

    Members by the name they chose; numbers are never shown."""
    from telline.voice.roster import roster
    for line in _meeting_report(occurrence_id, roster, f"nobody has joined meeting {occurrence_id}"):
        flags = " ".join(f for f, on in (("muted", line.muted), ("on-hold", line.on_hold),
                                          ("hand", line.hand_raised), ("left", not line.present)) if on)
        click.echo(f"{line.participant_id:>6}  {line.shown_as:<24} {line.role:<7} {flags}")


@meeting_group.command("attendance")
@click.argument("occurrence_id", type=int, metavar="MEETING_ID")
def meeting_attendance(occurrence_id: int) -> None:
    """Who attended a meeting and for how long."""
    from telline.voice.roster import attendance
    for row in _meeting_report(occurrence_id, attendance, f"nobody attended meeting {occurrence_id}"):
        click.echo(f"{row.shown_as:<24} {row.role:<7} {row.minutes:>6.1f} min")


def _meeting_report(occurrence_id: int, report: Callable[[Session, int], list[Row]], nobody: str) -> list[Row]:
    """A report's rows on an existing meeting; an unknown id is an error, no rows are said so."""
    from telline import db
    from telline.models import MeetingOccurrence
    session = db.session()
    if session.get(MeetingOccurrence, occurrence_id) is None:
        raise click.UsageError(f"there is no meeting {occurrence_id} (`telline meeting list` shows their ids)")
    rows = report(session, occurrence_id)
    if not rows:
        click.echo(nobody)
    return rows


@meeting_group.command("list")
@click.option("--group", "group_id", type=int, help="Only this group's meetings.")
@click.option("--series", "series_id", type=int, help="Only this series' meetings.")
@click.option("--upcoming", type=click.IntRange(0, 500), default=5, show_default=True,
              help="How many meetings to come (one on now included).")
@click.option("--past", type=click.IntRange(0, 500), default=5, show_default=True, help="How many past meetings.")
def meeting_list(group_id: int | None, series_id: int | None, upcoming: int, past: int) -> None:
    """Past and upcoming meetings, with the ids other commands take.

    MEETING is what roster and attendance take; SERIES and the date are what cancel takes.
    Times are the group's. A meeting has an id once someone called or it was cancelled."""
    from telline import db
    from telline.models import utcnow
    from telline.scheduling.agenda import agenda
    from telline.scheduling.series import InvalidSeries
    try:
        found = agenda(db.session(), utcnow(), group_id=group_id, series_id=series_id, upcoming=upcoming,
                       past=past)
    except InvalidSeries as exc:
        raise click.UsageError(str(exc)) from None
    if not found.upcoming and not found.past:
        click.echo("no meetings (`telline meeting create` schedules a series)")
        return
    row = "{:>8}  {:>6}  {:<28} {:<11} {:>8}".format
    for title, entries in (("upcoming", found.upcoming), ("past", found.past)):
        if title == "past":
            click.echo("")
        if not entries:
            click.echo(f"{title}: none")
            continue
        click.echo(title)
        click.echo(row("meeting", "series", "when (the group's time)", "status", "attended"))
        for e in entries:
            status = e.status or ("scheduled" if e.attended is None else "no callers")
            click.echo(row(e.occurrence_id or "-", e.series_id, f"{e.local_start:%a %Y-%m-%d %H:%M %Z}", status,
                           "-" if e.attended is None else e.attended))


def main() -> None:
    from telline.config import ConfigError
    try:
        cli(prog_name="telline")
    except ConfigError as exc:  # a settings mistake is the operator's to fix: say which, no traceback
        click.echo(f"telline: configuration error: {exc}", err=True)
        sys.exit(2)
