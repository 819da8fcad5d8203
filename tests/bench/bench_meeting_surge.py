"""Meeting-start surge: 250 callers complete the join path against gunicorn (2 workers) on PostgreSQL.

    .venv/bin/python tests/bench/bench_meeting_surge.py [--callers 250] [--concurrency 50] [--rounds 3]
        [--workers 2] [--timeout 10] [--pg-admin postgresql://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/10] [--series-age-days 0] [--with-callbacks]
        [--py-spy DIR]

What it measures
  One join path = what Twilio does for one caller: POST /twilio/voice (a unique CallSid and a
  unique, valid From; telline answers <Gather> for the code), then POST /twilio/voice/code with
  Digits=<access code> (telline answers <Dial><Conference>). Both requests are form posts with
  the fields Twilio sends, signed exactly as Twilio signs them (RequestValidator.compute_signature
  over TELLINE_PUBLIC_URL + path and the form), precomputed before the clock starts.

  telline: `telline web --bind 127.0.0.1:PORT --workers 2` (gunicorn, sync workers, access log
  on, PROMETHEUS_MULTIPROC_DIR set as deploy/ sets it) on a fresh PostgreSQL database migrated
  with telline.migrate.upgrade, holding one group, its line and a daily meeting series whose
  today's meeting started 5 minutes ago (create_series; max_participants 250 so all 250 fit),
  Redis db 10 (flushed before and after). TELLINE_LOG_LEVEL=WARNING.
  bare: tests/bench/bare_app.py under the same gunicorn settings (2 sync workers, access log,
  same forwarded-allow-ips): checks X-Twilio-Signature with RequestValidator and answers the
  same conference TwiML (telline.twilio.twiml.join_conference, one fixed seat) to both
  requests, without any database or Redis.

  Load: `--callers` join paths (default 250) per phase, at most `--concurrency` callers in
  flight at once (default 50: a meeting-start surge, 1/5 of the room dialling at the same
  moment), from threads with http.client in this process, one TCP connection per request
  (gunicorn's sync worker closes it anyway). Loopback only; every request has a `--timeout`
  (10 s) and a phase stops starting callers after 60 s. An error is any non-200, a first
  answer from telline without <Gather>, a final answer without <Conference>, or a
  timeout/connection failure. Latency is per join path (first request sent → second answer
  read, no think time) and per request.

  Each run warms every server up (20 join paths each, not counted), then runs `--rounds`
  rounds; a round is one phase per server back to back (the order rotates between rounds), so
  each ratio compares phases a few seconds apart on this noisy machine. CPU is accounted from
  /proc per phase: this client (the load generator's own overhead, printed in ms/request),
  the gunicorn master+workers, the server's PostgreSQL backends (told apart by
  application_name), redis-server, and the whole machine ("others" = everyone else's load).
  "CPU cost bare/telline" divides the CPU spent per join path (server + its PostgreSQL +
  Redis + client): a noise-robust estimate of the throughput ratio, which it equals when both
  are CPU-bound on an otherwise idle machine.

Targets (from the issue)
  - 250 join paths complete within 10 s (telline);                     total ≤ 10 s
  - errors                                                              0
  - telline throughput / bare throughput (join paths/s)                 ≥ 0.5
  - telline p99 / bare p99 (per join path)                              ≤ 3
  The summary takes the median over rounds for time and ratios and the sum for errors;
  exit status 1 when telline misses a target there.

--with-callbacks: each caller's path goes on with the conference status callbacks Twilio sends for
it once it is in (POST /twilio/voice/conference, the statusCallback telline's TwiML names, with
the fields Twilio sends, signed when sent since ParticipantLabel comes from telline's answer):
participant-join for every caller, and for the phase's first caller — who enters the host PIN —
conference-start after it. Each phase is a new conference (a new ConferenceSid under the meeting's
FriendlyName), numbered in the callers' order and ended after the phase (conference-end, not
timed), as a meeting that empties and starts again. The bare app checks their signature and
answers 204 as telline does. After the run the roster is checked in telline's database: every
timed caller joined and left once, the first is the host, each conference started and ended.
Throughput is still in join paths/s (each now 3 or 4 requests).
The peak memory (VmHWM) of each gunicorn worker is printed at the end of every run.

--series-age-days N: the series' first meeting N days ago instead of today: a group that has
met daily for years (dateutil walks a rule from its first occurrence; telline remembers the
last answer, so the surge should cost the same at 0 and at 3650).
--py-spy DIR: record each telline worker with py-spy during the telline phases (speedscope
files and a flat top-functions table; adds sampling overhead, so do not read ratios from
such a run).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import email.utils
import http.client
import itertools
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing
import urllib.parse
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine_cpu, pids_named, proc_cpu, stop_processes  # noqa: E402 — /proc accounting, shared

PYTHON = sys.executable
TELLINE = str(Path(sys.executable).with_name("telline"))
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "bench-surge-auth-token-0123456789"
LINE_NUMBER = "+15005550006"
CONFERENCE_CALLBACK = "/twilio/voice/conference"  # the statusCallback telline's TwiML names
WARM_UP_CALLERS = 20
PHASE_DEADLINE = 60.0

TARGET_SECONDS = 10.0
TARGET_THROUGHPUT_RATIO = 0.5
TARGET_P99_RATIO = 3.0


# --- setup -------------------------------------------------------------------------------
@contextlib.contextmanager
def fresh_database(admin_dsn: str):
    """A new PostgreSQL database, migrated to head; dropped afterwards. Yields (name, url)."""
    from telline import migrate
    admin = admin_dsn.replace("postgresql+psycopg://", "postgresql://")
    name = f"telline_surge_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(admin_dsn)
    url = urllib.parse.urlunsplit(("postgresql+psycopg", parts.netloc, f"/{name}", "", ""))
    try:
        migrate.upgrade(url)
        yield name, url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def seed_meeting(url: str, age_days: int = 0) -> Meeting:
    """A group, its line and a daily meeting that started 5 minutes ago, first held `age_days` days
    ago (0: today's is the first), and today's occurrence row (its first caller would make it: the
    warm-up's does otherwise), whose FriendlyName the conference callbacks carry."""
    from telline.models import Group, Line, utcnow
    from telline.scheduling.series import create_series
    from telline.voice import meetings
    engine = sa.create_engine(url)
    try:
        with Session(engine) as session:
            group = Group(name="Surge", language="en", timezone="Europe/London", quiet_start=dt.time(0),
                          quiet_end=dt.time(0))
            session.add(group)
            session.flush()
            line = Line(group_id=group.id, phone_number=LINE_NUMBER, sms_rate=100)
            session.add(line)
            session.flush()
            zone = ZoneInfo(group.timezone)
            now_local = utcnow().astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
            series = create_series(session, group=group, line=line, title="Daily",
                                   first_start_local=now_local - dt.timedelta(days=age_days, minutes=5),
                                   rrule="FREQ=DAILY",
                                   duration_minutes=60)
            series.max_participants = 250  # the whole surge fits (the default is 40)
            session.flush()
            start = meetings.joinable_start(series, zone, utcnow())
            assert start is not None
            occurrence = meetings.occurrence(session, series, start)
            session.commit()
            found = Meeting(series.access_code, series.host_pin, occurrence.conference_name)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        return found
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- CPU accounting from /proc -------------------------------------------------------------
def children(pid: int) -> list[int]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    return out


class Gunicorn:
    """A gunicorn master (started by us) and its workers; stdout (the access log) to /dev/null."""

    def __init__(self, name: str, argv: list[str], env: dict, port: int):
        self.name, self.port = name, port
        self.log = tempfile.NamedTemporaryFile(prefix=f"surge-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    @property
    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid, children=False) + sum(proc_cpu(p, children=False) for p in self.worker_pids)

    def wait_healthy(self, workers: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
                if status == 200 and len(self.worker_pids) >= workers:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: /healthz not 200 after {timeout} s:\n{self.output()}")

    def output(self, tail: int = 4000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        stop_processes([self.proc], timeout=20)  # SIGTERM: gunicorn stops its workers gracefully
        self.log.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.log.name)


# --- callers -------------------------------------------------------------------------------
_from_numbers = itertools.count(1)


class Meeting(typing.NamedTuple):
    access_code: str
    host_pin: str
    conference_name: str  # the FriendlyName of every conference of today's meeting


class ConferenceRun:
    """One conference of the meeting as Twilio runs it for one phase (--with-callbacks): a new
    ConferenceSid under the meeting's FriendlyName, its callbacks numbered in the order Twilio
    would number them (the callers' order), posted to the status callback telline's TwiML names."""

    def __init__(self, public_url: str, meeting: Meeting):
        self.public_url, self.friendly_name = public_url, meeting.conference_name
        self.sid = "CF" + uuid.uuid4().hex
        self._sequence = itertools.count(1)

    def event(self, kind: str, **fields: str) -> dict:
        """The form of one conference status callback, as Twilio's has it (twilio-facts.md)."""
        return {"AccountSid": ACCOUNT_SID, "ConferenceSid": self.sid, "FriendlyName": self.friendly_name,
                "StatusCallbackEvent": kind, "SequenceNumber": str(next(self._sequence)),
                "Timestamp": email.utils.format_datetime(dt.datetime.now(dt.UTC).replace(microsecond=0)), **fields}

    def participant_join(self, call_sid: str, host: bool) -> dict:
        return self.event("participant-join", CallSid=call_sid, Muted="false", Hold="false", Coaching="false",
                          EndConferenceOnExit="false", StartConferenceOnEnter="true" if host else "false")

    def end(self) -> tuple[str, bytes, dict]:
        return _signed(self.public_url, CONFERENCE_CALLBACK,
                       self.event("conference-end", ReasonConferenceEnded="conference-ended-via-api"))


class Caller:
    """One caller's two signed requests, computed before the clock starts; with a ConferenceRun,
    the forms of the callbacks Twilio sends once the caller is in: participant-join, and for the
    meeting's first host (who starts the conference) conference-start. Those are signed when sent,
    once the caller's ParticipantLabel is known (telline names it in its TwiML, from the call's id)."""

    __slots__ = ("call_sid", "first", "second", "conference", "callbacks")

    def __init__(self, public_url: str, code: str, conference: ConferenceRun | None = None, host: bool = False):
        self.call_sid = "CA" + uuid.uuid4().hex
        caller = f"+16172{next(_from_numbers):06d}"  # real-looking US numbers (checked in phase())
        call = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": self.call_sid,
                "CallStatus": "ringing", "Called": LINE_NUMBER, "Caller": caller, "Direction": "inbound",
                "From": caller, "To": LINE_NUMBER, "FromCountry": "US", "ToCountry": "US"}
        gathered = dict(call, CallStatus="in-progress", Digits=code, FinishedOnKey="#", msg="Gather End")
        self.first = _signed(public_url, "/twilio/voice", call)
        self.second = _signed(public_url, "/twilio/voice/code", gathered)
        self.conference = conference
        self.callbacks: list[dict] = []  # forms, signed when sent
        if conference is not None:
            self.callbacks.append(conference.participant_join(self.call_sid, host))
            if host:  # Twilio: participant-join, then the conference starts (the stand-in's order)
                self.callbacks.append(conference.event("conference-start"))


def callers_for(public_url: str, meeting: Meeting, n: int, with_callbacks: bool) -> list[Caller]:
    """n callers of one phase: members with the access code; with callbacks, a new conference whose
    first caller is the host (the host PIN) and starts it."""
    if not with_callbacks:
        return [Caller(public_url, meeting.access_code) for _ in range(n)]
    conference = ConferenceRun(public_url, meeting)
    return [Caller(public_url, meeting.host_pin if i == 0 else meeting.access_code, conference, host=i == 0)
            for i in range(n)]


def assert_valid_numbers(callers: list[Caller]) -> None:
    """telline keeps a From it cannot parse as None (no member lookup, one shared lockout key):
    every simulated caller must have a number telline accepts."""
    from telline.phone import from_twilio
    for c in callers:
        form = urllib.parse.parse_qs(c.first[1].decode())
        if from_twilio(form["From"][0]) is None:
            raise RuntimeError(f"simulated caller number {form['From'][0]} is not one telline accepts")


def _signed(public_url: str, path: str, form: dict) -> tuple[str, bytes, dict]:
    body = urllib.parse.urlencode(form).encode()
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public_url + path, form)
    host = urllib.parse.urlsplit(public_url).netloc
    return path, body, {"Host": host, "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1",
                        "Accept": "*/*", "Connection": "close"}


def _post(port: int, request: tuple[str, bytes, dict], timeout: float) -> tuple[int, bytes]:
    path, body, headers = request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


_LABEL = re.compile(rb'participantLabel="([^"]+)"')


def join_path(port: int, caller: Caller, timeout: float, expect_gather: bool):
    """(start, after first answer, after the code's answer, end, error or None); end: after the
    last callback's answer (the code's answer without callbacks)."""
    start = mid = code = time.perf_counter()
    try:
        status, body = _post(port, caller.first, timeout)
        mid = code = time.perf_counter()
        if status != 200:
            return start, mid, mid, mid, f"first: HTTP {status}"
        if expect_gather and b"<Gather" not in body:
            return start, mid, mid, mid, "first: no <Gather>"
        status, body = _post(port, caller.second, timeout)
        code = time.perf_counter()
        if status != 200:
            return start, mid, code, code, f"code: HTTP {status}"
        if b"<Conference" not in body:
            return start, mid, code, code, "code: no <Conference>"
        label = _LABEL.search(body)
        for form in caller.callbacks:
            if "CallSid" in form and label:
                form = dict(form, ParticipantLabel=label.group(1).decode())
            assert caller.conference is not None
            status, _ = _post(port, _signed(caller.conference.public_url, CONFERENCE_CALLBACK, form), timeout)
            if not 200 <= status < 300:
                return start, mid, code, time.perf_counter(), f"{form['StatusCallbackEvent']}: HTTP {status}"
        return start, mid, code, time.perf_counter(), None
    except TimeoutError:
        return start, mid, code, time.perf_counter(), "timeout"
    except (OSError, http.client.HTTPException) as exc:
        return start, mid, code, time.perf_counter(), f"{type(exc).__name__}"


def run_phase(port: int, callers: list[Caller], concurrency: int, timeout: float, expect_gather: bool):
    """All callers through `concurrency` threads released together. Returns (t0, t_end, results)."""
    results: list = [None] * len(callers)
    next_index = itertools.count()  # next() on a count is atomic under the GIL
    concurrency = min(concurrency, len(callers))
    barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def loop():
        barrier.wait()
        while (i := next(next_index)) < len(callers):
            if time.perf_counter() > deadline[0]:
                now = time.perf_counter()
                results[i] = (now, now, now, now, "not started (phase deadline)")
                continue
            results[i] = join_path(port, callers[i], timeout, expect_gather)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    for th in threads:
        th.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + PHASE_DEADLINE
    barrier.wait()
    for th in threads:
        th.join()
    return t0, max(r[3] for r in results), results


def cost_per_path(p: dict) -> float:
    """CPU seconds the machine spent per completed join path on this server's behalf: gunicorn,
    its PostgreSQL backends, redis-server, and the load generator (the same client for both)."""
    cpu = p["cpu"]
    return (cpu["server"] + cpu["postgres"] + cpu["redis"] + cpu["client"]) / max(1, p["ok"])


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Accounting:
    """CPU seconds per component over one phase."""

    def __init__(self, server: Gunicorn, pg_pids: list[int], redis_pids: list[int]):
        self.server, self.pg_pids, self.redis_pids = server, pg_pids, redis_pids

    def sample(self) -> dict:
        busy, total = machine_cpu()
        return {"client": own_cpu(), "server": self.server.cpu(),
                "postgres": sum(proc_cpu(p, children=False) for p in self.pg_pids),
                "redis": {p: proc_cpu(p, children=False) for p in self.redis_pids}, "busy": busy, "total": total}

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        out = {k: after[k] - before[k] for k in after if k != "redis"}
        # a redis-server of someone else's may come and go: only processes alive at both ends count
        out["redis"] = sum(after["redis"][p] - before["redis"][p] for p in after["redis"]
                           if p in before["redis"] and after["redis"][p] >= before["redis"][p])
        return out


def phase(name: str, server: Gunicorn, accounting: Accounting, public_url: str, meeting: Meeting, args,
          expect_gather: bool) -> dict:
    callers = callers_for(public_url, meeting, args.callers, args.with_callbacks)
    assert_valid_numbers(callers)
    before = accounting.sample()
    t0, t_end, results = run_phase(server.port, callers, args.concurrency, args.timeout, expect_gather)
    after = accounting.sample()
    end_conference(server, callers, args.timeout)
    ok = [r for r in results if r[4] is None]
    errors = collections.Counter(r[4] for r in results if r[4] is not None)
    wall = t_end - t0
    cpu = Accounting.delta(before, after)
    ours = cpu["client"] + cpu["server"] + cpu["postgres"] + cpu["redis"]
    requests = sum(2 + len(c.callbacks) for c, r in zip(callers, results, strict=True) if r[4] is None)
    return {
        "name": name, "wall": wall, "ok": len(ok), "errors": sum(errors.values()), "error_kinds": dict(errors),
        "paths_per_s": len(ok) / wall if wall > 0 else 0.0,
        "requests": requests, "requests_per_s": requests / wall if wall > 0 else 0.0,
        "path": [r[3] - r[0] for r in ok], "first": [r[1] - r[0] for r in ok], "second": [r[2] - r[1] for r in ok],
        "callbacks": [r[3] - r[2] for r in ok],
        "conference_sid": callers[0].conference.sid if callers and callers[0].conference else None,
        "call_sids": [c.call_sid for c, r in zip(callers, results, strict=True) if r[4] is None],
        "cpu": cpu, "machine_cores_busy": cpu["busy"] / wall if wall > 0 else 0.0,
        "others_cpu": max(0.0, cpu["busy"] - ours),
    }


def end_conference(server: Gunicorn, callers: list[Caller], timeout: float) -> None:
    """After a phase with callbacks (not timed): its conference ends, as when the meeting is over, so
    the next phase's callers find the meeting with nobody on (it holds 250) and start a new one."""
    run = callers[0].conference if callers else None
    if run is None:
        return
    status, _ = _post(server.port, run.end(), timeout)
    if not 200 <= status < 300:
        raise RuntimeError(f"{server.name}: conference-end answered HTTP {status}:\n{server.output()}")


def check_rosters(db_url: str, phases: list[dict]) -> list[str]:
    """What telline's roster says of each timed conference, against what its callbacks said: every
    caller joined once and left at its end, the first caller is its host, the conference started and
    ended, and the meeting is between conferences again."""
    problems = []
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            for p in phases:
                sid = p["conference_sid"]
                rows = conn.execute(sa.text(
                    "SELECT call_sid, role, joined_at IS NOT NULL, left_at IS NOT NULL, last_sequence, occurrence_id "
                    "FROM conference_participants WHERE conference_sid = :sid"), {"sid": sid}).all()
                by_call = {r[0]: r for r in rows}
                if len(rows) != len(by_call) or set(by_call) != set(p["call_sids"]):
                    problems.append(f"{sid}: {len(rows)} participant rows for {len(p['call_sids'])} callers")
                if [r[0] for r in rows if r[1] == "host"] != p["call_sids"][:1]:
                    problems.append(f"{sid}: hosts {[r[0] for r in rows if r[1] == 'host']}, expected the first caller")
                if not all(r[2] and r[3] and r[4] > 0 and r[5] is not None for r in rows):
                    problems.append(f"{sid}: a participant not joined, not left, unnumbered or in no meeting")
                conference = conn.execute(sa.text(
                    "SELECT started_at IS NOT NULL, ended_at IS NOT NULL FROM conferences WHERE sid = :sid"),
                    {"sid": sid}).first()
                if conference is None or not all(conference):
                    problems.append(f"{sid}: conference row {conference} (want started and ended)")
            status, running = conn.execute(sa.text("SELECT status, conference_sid FROM meeting_occurrences")).one()
            if (status, running) != ("scheduled", None):
                problems.append(f"the meeting is {status} with conference {running} (want scheduled, none)")
    finally:
        engine.dispose()
    return problems


def warm_up(server: Gunicorn, public_url: str, meeting: Meeting, expect_gather: bool, timeout: float,
            with_callbacks: bool) -> None:
    callers = callers_for(public_url, meeting, WARM_UP_CALLERS, with_callbacks)
    _, _, results = run_phase(server.port, callers, 10, timeout, expect_gather)
    end_conference(server, callers, timeout)
    failed = [r for r in results if r[4] is not None]
    if failed:
        raise RuntimeError(f"{server.name} warm-up: {len(failed)} of {len(callers)} join paths failed "
                           f"({collections.Counter(r[4] for r in failed)}); server log:\n{server.output()}")


def peak_memory_kib(pid: int) -> int | None:
    """VmHWM: the most resident memory the process has had (kB, as /proc says)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


# --- py-spy (optional) ----------------------------------------------------------------------
class PySpy:
    def __init__(self, directory: Path, pids: list[int], label: str):
        directory.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or "py-spy"
        self.procs = []
        for pid in pids:
            for fmt, suffix in (("speedscope", "json"), ("raw", "txt")):
                out = directory / f"{label}-worker{pid}.{suffix}"
                self.procs.append(subprocess.Popen(
                    [exe, "record", "--pid", str(pid), "--rate", "200", "--format", fmt, "--output", str(out),
                     "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # attach

    def stop(self) -> None:
        stop_processes(self.procs, signal.SIGINT, timeout=30)  # py-spy writes its file on SIGINT


def top_functions(directory: Path, limit: int = 25) -> str:
    """Self and inclusive sample shares from py-spy's raw (collapsed) output."""
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for path in directory.glob("*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    if not total:
        return "  (no py-spy samples)"
    lines = [f"  {total} samples; inclusive share of the hottest frames:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(limit)]
    lines += ["  self share:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(limit)]
    return "\n".join(lines)


# --- report --------------------------------------------------------------------------------
def ms(x: float) -> str:
    return f"{1000 * x:7.1f}"


def describe(p: dict, concurrency: int) -> str:
    cpu, wall = p["cpu"], p["wall"]
    errors = f"{p['errors']}" + (f" {p['error_kinds']}" if p["errors"] else "")
    return (f"  {p['name']:<8} {p['ok'] + p['errors']} paths in {wall:6.2f} s  errors {errors}\n"
            f"           {p['paths_per_s']:7.1f} join paths/s ({p['requests_per_s']:.1f} requests/s) "
            f"at {concurrency} in flight\n"
            f"           per path    p50 {ms(percentile(p['path'], 50))} ms  p99 {ms(percentile(p['path'], 99))} ms"
            f"  max {ms(max(p['path'], default=float('nan')))} ms\n"
            f"           /voice      p50 {ms(percentile(p['first'], 50))} ms  p99 {ms(percentile(p['first'], 99))} ms\n"
            f"           /voice/code p50 {ms(percentile(p['second'], 50))} ms  "
            f"p99 {ms(percentile(p['second'], 99))} ms\n"
            + (f"           callbacks   p50 {ms(percentile(p['callbacks'], 50))} ms  "
               f"p99 {ms(percentile(p['callbacks'], 99))} ms  (a caller's, one after the other)\n"
               if p["requests"] > 2 * p["ok"] else "") +
            f"           CPU s: gunicorn {cpu['server']:.2f}  postgres {cpu['postgres']:.2f}  "
            f"redis {cpu['redis']:.2f}  client {cpu['client']:.2f} "
            f"({1000 * cpu['client'] / max(1, p['requests']):.2f} ms/request)  "
            f"others {p['others_cpu']:.2f}  | machine {p['machine_cores_busy']:.2f} of "
            f"{os.cpu_count()} cores busy\n"
            f"           gunicorn CPU per join path {1000 * cpu['server'] / max(1, p['ok']):.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callers", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--series-age-days", type=int, default=0,
                        help="the daily series was first held this many days ago (default 0: today, as "
                             "the issue sets it up; meetings that have run for a year cost more, see the report)")
    parser.add_argument("--with-callbacks", action="store_true",
                        help="each caller's path adds the conference callbacks Twilio sends for it "
                             "(participant-join; conference-start for the first host)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR")
    args = parser.parse_args()
    if not (0 < args.callers <= 5000 and 0 < args.concurrency <= 200 and 0 < args.rounds <= 10):
        parser.error("keep it bounded: callers ≤ 5000, concurrency ≤ 200, rounds ≤ 10")

    rconn = redis.Redis.from_url(args.redis_url)
    rconn.flushdb()
    roster_ok = True
    servers: dict[str, tuple[Gunicorn, str, bool]] = {}  # name → (server, public URL, telline?)
    temp_dirs: list[str] = []
    try:
        with fresh_database(args.pg_admin) as (db_name, db_url):
            meeting = seed_meeting(db_url, args.series_age_days)
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TELLINE_", "TWILIO_"))}
            base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)

            def telline_env(name: str, public: str) -> dict:
                metrics_dir = tempfile.mkdtemp(prefix="surge-metrics-")
                temp_dirs.append(metrics_dir)
                # application_name tells this server's PostgreSQL backends apart (CPU accounting)
                return dict(base_env, TELLINE_DATABASE_URL=f"{db_url}?application_name=surge-{name}",
                            TELLINE_REDIS_URL=args.redis_url, TELLINE_PUBLIC_URL=public,
                            TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                            TELLINE_LOG_LEVEL="WARNING", TELLINE_SECRET_KEY="bench-surge-secret-0123456789abcdef",
                            PROMETHEUS_MULTIPROC_DIR=metrics_dir)

            gunicorn_args = ["--workers", str(args.workers), "--access-logfile", "-",
                             "--forwarded-allow-ips", "127.0.0.1"]  # what `telline web` passes
            port = free_port()
            public = f"http://127.0.0.1:{port}"
            servers["telline"] = (Gunicorn("telline", [TELLINE, "web", "--bind", f"127.0.0.1:{port}",
                                                       "--workers", str(args.workers)],
                                           telline_env("telline", public), port), public, True)
            port = free_port()
            public = f"http://127.0.0.1:{port}"
            servers["bare"] = (Gunicorn("bare", [PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                                 *gunicorn_args, "tests.bench.bare_app:app"],
                                        dict(base_env, BENCH_BARE_AUTH_TOKEN=AUTH_TOKEN,
                                             BENCH_BARE_PUBLIC_URL=public), port), public, False)
            for server, _, _ in servers.values():
                server.wait_healthy(args.workers)
            for server, public, is_telline in servers.values():
                warm_up(server, public, meeting, is_telline, args.timeout, args.with_callbacks)

            pg_pids: dict[str, list[int]] = collections.defaultdict(list)
            with psycopg.connect(args.pg_admin.replace("+psycopg", ""), autocommit=True) as conn:
                for pid, app_name in conn.execute(
                        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s", (db_name,)):
                    pg_pids[app_name].append(pid)
            app_names = {"telline": "surge-telline"}
            redis_pids = pids_named("redis-server")
            path = ("2 requests + participant-join (+ conference-start for the first host)" if args.with_callbacks
                    else "2 requests")
            print(f"meeting surge: {args.callers} callers × {path}, {args.concurrency} in flight, "
                  f"gunicorn --workers {args.workers} (sync), {args.rounds} rounds, {os.cpu_count()} CPUs, "
                  f"load average {os.getloadavg()[0]:.2f}")
            print(f"  daily series first held {args.series_age_days} days ago; "
                  f"telline (`telline web`) on PostgreSQL {db_name}, Redis {args.redis_url}; "
                  f"bare = tests/bench/bare_app.py")

            rounds = []
            names = list(servers)
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]  # rotates: each goes first in turn
                done = {}
                for name in order:
                    server, public, is_telline = servers[name]
                    spy = None
                    if args.py_spy and name == "telline":
                        spy = PySpy(args.py_spy, server.worker_pids, f"round{r + 1}")
                    try:
                        accounting = Accounting(server, pg_pids.get(app_names.get(name, ""), []), redis_pids)
                        done[name] = phase(name, server, accounting, public, meeting, args, is_telline)
                    finally:
                        if spy:
                            spy.stop()
                b = done["bare"]
                ratios = {}
                for name in names:
                    if name == "bare":
                        continue
                    t = done[name]
                    ratios[name] = (t["paths_per_s"] / b["paths_per_s"] if b["paths_per_s"] else float("nan"),
                                    percentile(t["path"], 99) / percentile(b["path"], 99),
                                    cost_per_path(b) / cost_per_path(t))
                rounds.append((done, ratios))
                print(f"\nround {r + 1} ({' then '.join(order)}):")
                for name in names:
                    print(describe(done[name], args.concurrency))
                for name, (thr, p99, cost) in ratios.items():
                    print(f"  ratios   {name:<8} throughput /bare {thr:.3f} (target ≥ {TARGET_THROUGHPUT_RATIO})"
                          f"   p99 /bare {p99:.2f} (target ≤ {TARGET_P99_RATIO:g})"
                          f"   CPU cost bare/{name} {cost:.3f}")

            memory = {name: [peak_memory_kib(pid) for pid in server.worker_pids]
                      for name, (server, _, _) in servers.items()}
            print("\npeak memory (VmHWM) of each gunicorn worker: " + "; ".join(
                f"{name} " + ", ".join(f"{kib / 1024:.1f} MiB" if kib else "?" for kib in kibs)
                for name, kibs in memory.items()))
            if args.with_callbacks:
                problems = check_rosters(db_url, [done["telline"] for done, _ in rounds])
                print("roster check (telline's database, every timed conference): "
                      + ("OK" if not problems else "FAILED\n  " + "\n  ".join(problems[:10])))
                roster_ok = not problems
            for name, (server, _, _is_telline) in servers.items():
                noisy = [ln for ln in server.output(50000).splitlines()
                         if '"level": "error"' in ln or "Traceback" in ln or " ERROR " in ln]
                if noisy:
                    print(f"\n{name} logged {len(noisy)} error lines, e.g.:\n  " + "\n  ".join(noisy[:5]))
    finally:
        for server, _, _ in servers.values():
            server.stop()
        rconn.flushdb()
        for d in temp_dirs:
            shutil.rmtree(d, ignore_errors=True)

    all_ok = roster_ok
    for name in [n for n in names if n != "bare"]:
        wall = statistics.median(done[name]["wall"] for done, _ in rounds)
        errors = sum(done[name]["errors"] for done, _ in rounds)
        thr = statistics.median(ratios[name][0] for _, ratios in rounds)
        p99 = statistics.median(ratios[name][1] for _, ratios in rounds)
        cost = statistics.median(ratios[name][2] for _, ratios in rounds)
        checks = [(f"{args.callers} join paths in ≤ {TARGET_SECONDS:g} s (median {wall:.2f} s)",
                   wall <= TARGET_SECONDS),
                  (f"errors 0 (got {errors})", errors == 0),
                  (f"throughput ratio ≥ {TARGET_THROUGHPUT_RATIO} (median {thr:.3f})",
                   thr >= TARGET_THROUGHPUT_RATIO),
                  (f"p99 ratio ≤ {TARGET_P99_RATIO:g} (median {p99:.2f})", p99 <= TARGET_P99_RATIO)]
        print(f"\nsummary over {len(rounds)} rounds, {name}:")
        for text, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {text}")
        print(f"  (CPU cost per join path, bare/{name}: median {cost:.3f} — what the throughput ratio tends to "
              "when both are CPU-bound on an otherwise idle machine)")
        all_ok = all_ok and all(ok for _, ok in checks)
    if args.py_spy:
        print(f"\npy-spy profiles in {args.py_spy} (ratios of this run include sampling overhead):")
        print(top_functions(args.py_spy))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
