"""Urgent work during a broadcast: does a big broadcast fill its line, and do replies and moderation still go at once?

    .venv/bin/python tests/bench/bench_urgent_lane.py [--runs 3] [--members 5000] [--rate 100]
        [--urgent-workers 1] [--workers 2] [--send-threads N] [--web-workers 2]
        [--texters 50] [--moderations 30] [--latency 200 --jitter 50 | --fast]
        [--status-callbacks sent,delivered] [--max-seconds S] [--redis-url redis://127.0.0.1:6379/8]

Not part of CI; prints its figures, exit status 0 when every run meets every target.

Set-up, per run (`--runs`, default 3, each from scratch): a fresh PostgreSQL database (_harness), a
group with a 100/s short-code line (sms_rate 100, unit messages, no quiet hours) and 5,000 opted-in
members; a daily meeting that started 5 minutes ago, live: its host and 10 members are in its
conference at the stand-in (added through the stand-in's REST API with telline's conference status
callback, so the stand-in tells `telline web` and the roster is what the callbacks said). The
processes are those `telline run` starts, but for cron: `telline web` (gunicorn, `--web-workers` 2)
for the webhooks, `--urgent-workers` (1) × `telline worker --simple --queues urgent` and `--workers`
(2) × `telline worker --simple` (every queue, urgent first); `--send-threads N` sets
TELLINE_SEND_THREADS for the workers (unset: the code's default). The Twilio stand-in runs as its own
process, answering each API request after 200 ± 50 ms (Twilio's REST latency; `--latency`/`--jitter`
in ms, `--fast` for 0) and moving each text through `--status-callbacks` (default sent,delivered:
signed callbacks to telline web, as Twilio sends them; "" for none). Redis db 8 is flushed around
each run.

Load: the bench starts a broadcast (start_broadcast + commit, in an app context) to the 5,000.
From 3 s after that commit and spread over the broadcast's ideal length (members / rate):
- `--texters` (50) other members each text the line once — alternately HELP (a keyword telline
  answers with its help text and the crisis line) and a free text (the inbox: telline answers that a
  coordinator will read it, and the crisis line) — as Twilio would: a POST /twilio/sms with Twilio's
  fields, signed over TELLINE_PUBLIC_URL + path (twilio's RequestValidator), to telline web. Both
  replies are urgent texts.
- `--moderations` (30) mute / unmute requests for the meeting's participants in turn
  (telline.voice.moderation.act_on_participant + commit, in the bench's app context: what a host's
  text or page does), each an urgent job.
The run ends when the broadcast is handed over and every reply and moderation request has been made,
or after `--max-seconds` (default 1.5 × members / rate + 15 s) — then what was sent is measured.

Figures, all from the stand-in's recorded receive times (what Twilio meters):
(1) hand-over: broadcast texts accepted / (last − first broadcast send), as a share of the line's
    rate (target ≥ 0.90); the most texts from the line's number in any closed 1-second window
    [t, t + 1], sliding over every send — broadcast, replies, all of it (target ≤ rate).
(2) reply latency: for each text in, the stand-in's receive time of the POST Messages.json to that
    member whose Body is not the broadcast's, minus the moment the webhook's answer was read
    (p50/p99/max; target p99 ≤ 2 s; a reply never made counts as a miss and fails the run).
    moderation latency: the receive time of the request that updates that participant
    (POST …/Participants/CA….json) minus the commit that enqueued it (target p99 ≤ 2 s).
(4) peak memory (VmHWM, read just before the processes stop) of every worker process, its children
    (RQ's scheduler), gunicorn's master and each of its workers; CPU seconds per component over the run.
The summary gives each figure per run and its spread (min–max, median).

Run as it is on main before issue 10's changes (one text at a time per worker), this shows the
problem: the broadcast goes at ~5 texts/s per bulk worker, far from 100/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import _harness as h
import requests
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

TELLINE = str(Path(h.PYTHON).with_name("telline"))
BODY = "Bench: tonight's meeting is at 7pm on the usual number, all welcome. Reply STOP to opt out."
TEXTS = ("HELP", "I'm having a really hard time tonight")  # a keyword, and the inbox
IN_MEETING = 10  # members in the meeting with its host: the moderation targets
FIRST_MEMBER = 2_000_000
START_AFTER = 3.0  # seconds into the broadcast when the urgent load starts
TARGET_HANDOVER = 0.90
TARGET_P99 = 2.0
DONE = ("pending", "submitting", "retrying", "deferred")  # statuses still on their way


# --- processes ---------------------------------------------------------------------------
class Web:
    """`telline web --bind 127.0.0.1:PORT --workers N` (gunicorn), as bench_meeting_surge starts it."""

    def __init__(self, env: dict, workers: int):
        self.port, self.workers = h_free_port(), workers
        self.public = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = tempfile.mkdtemp(prefix="urgent-lane-metrics-")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([TELLINE, "web", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)],
                                     cwd=h.ROOT, env=dict(env, TELLINE_PUBLIC_URL=self.public,
                                                          PROMETHEUS_MULTIPROC_DIR=self.metrics_dir),
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid, *h.descendants(self.proc.pid)]

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"telline web exited with {self.proc.returncode}:\n{self.output()}")
            try:
                answer = requests.get(f"{self.public}/healthz", timeout=5)
                if answer.status_code == 200 and len(h.descendants(self.proc.pid)) >= self.workers:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"telline web: /healthz not 200 after {timeout} s:\n{self.output()}")

    def output(self, tail: int = 4000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-tail:]

    def stop(self) -> None:
        h.stop_processes([self.proc], timeout=20)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def h_free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_now(procs: list[subprocess.Popen]) -> None:
    """SIGTERM twice (RQ: warm, then cold shutdown — a worker would otherwise finish a 250-text
    batch first), then SIGKILL what is left after 10 s. The database is dropped after anyway."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    h.stop_processes(procs, timeout=10)


# --- set-up --------------------------------------------------------------------------------
def live_meeting(app, group_id: int, line_id: int) -> tuple[int, str]:
    """A daily series whose meeting started 5 minutes ago, and that meeting's row. (id, conference name)."""
    from telline import db
    from telline.models import Group, Line, utcnow
    from telline.scheduling.series import create_series
    from telline.voice.meetings import joinable_start, occurrence
    with app.app_context():
        session = db.session()
        group, line = session.get_one(Group, group_id), session.get_one(Line, line_id)
        group.crisis_resource, group.coordinator_contact = "call 988 (Suicide & Crisis Lifeline)", "Sam, 555 0100"
        zone = ZoneInfo(group.timezone)
        now_local = utcnow().astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        series = create_series(session, group=group, line=line, title="Evening",
                               first_start_local=now_local - dt.timedelta(minutes=5), rrule="FREQ=DAILY",
                               duration_minutes=120)
        session.flush()
        start = joinable_start(series, zone, utcnow())
        if start is None:
            raise RuntimeError("the bench's meeting is not on now")
        row = occurrence(session, series, start)
        session.commit()
        return row.id, row.conference_name


def join_meeting(standin_url: str, conference_name: str, line_number: str, public: str,
                 phones: list[str]) -> list[str]:
    """Each phone dialled into the conference through the stand-in's REST API (the first starts it,
    as a host), with telline's conference status callback. Returns their call SIDs."""
    base = f"{standin_url}/2010-04-01/Accounts/{h.ACCOUNT_SID}/Conferences/{conference_name}/Participants.json"
    sids = []
    with requests.Session() as http:
        for k, number in enumerate(phones):
            answer = http.post(base, auth=(h.ACCOUNT_SID, h.AUTH_TOKEN), timeout=30, data={
                "From": line_number, "To": number, "Label": f"bench-{k}",
                "StartConferenceOnEnter": "true" if k == 0 else "false",
                "ConferenceStatusCallback": f"{public}/twilio/voice/conference",
                "ConferenceStatusCallbackEvent": ["start", "end", "join", "leave", "mute", "hold"]})
            answer.raise_for_status()
            sids.append(answer.json()["call_sid"])
    return sids


def wait_roster(app, occurrence_id: int, call_sids: list[str], timeout: float = 60.0) -> dict[str, int]:
    """Until telline's roster (from the callbacks) has every call in the meeting, and the meeting is live.
    {call SID: participant id}."""
    from telline import db
    from telline.models import ConferenceParticipant, MeetingOccurrence, OccurrenceStatus
    deadline = time.monotonic() + timeout
    with app.app_context():
        session = db.session()
        while True:
            session.rollback()
            status = session.scalar(sa.select(MeetingOccurrence.status).where(MeetingOccurrence.id == occurrence_id))
            rows = dict(session.execute(sa.select(ConferenceParticipant.call_sid, ConferenceParticipant.id).where(
                ConferenceParticipant.occurrence_id == occurrence_id,
                ConferenceParticipant.joined_at.is_not(None))).all())
            session.rollback()
            if status == OccurrenceStatus.LIVE and set(call_sids) <= set(rows):
                return rows
            if time.monotonic() > deadline:
                raise RuntimeError(f"the roster has {len(rows)} of {len(call_sids)} callers (meeting {status}) "
                                   f"after {timeout} s: conference callbacks not reaching telline web?")
            time.sleep(0.1)


# --- load ------------------------------------------------------------------------------------
def text_in(public: str, port: int, line_number: str, member: str, body: str) -> tuple[float, int]:
    """One incoming text, as Twilio posts it. (time the answer was read, HTTP status)."""
    sid = "SM" + uuid.uuid4().hex
    form = {"ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
            "Body": body, "FromCountry": "US", "To": line_number, "NumSegments": "1", "MessageSid": sid,
            "AccountSid": h.ACCOUNT_SID, "From": member, "ApiVersion": "2010-04-01"}
    signature = RequestValidator(h.AUTH_TOKEN).compute_signature(f"{public}/twilio/sms", form)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)  # Twilio gives a webhook 15 s
    try:
        conn.request("POST", "/twilio/sms", body=urllib.parse.urlencode(form), headers={
            "Host": urllib.parse.urlsplit(public).netloc, "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1", "Accept": "*/*"})
        response = conn.getresponse()
        response.read()
        return time.time(), response.status
    except (OSError, http.client.HTTPException):
        return time.time(), 0
    finally:
        conn.close()


def schedule(n: int, span: float) -> list[float]:
    """n offsets (s after the broadcast's commit) from START_AFTER, evenly over `span` seconds."""
    if n <= 0:
        return []
    step = span / max(n - 1, 1)
    return [START_AFTER + k * step for k in range(n)]


def texters(t0: float, web: Web, line_number: str, phones: list[str], span: float,
            results: list) -> list[threading.Thread]:
    def one(k: int, at: float, phone: str) -> None:
        time.sleep(max(0.0, t0 + at - time.time()))
        answered, status = text_in(web.public, web.port, line_number, phone, TEXTS[k % len(TEXTS)])
        results[k] = (phone, answered, status)
    threads = [threading.Thread(target=one, args=(k, at, phone), daemon=True)
               for k, (at, phone) in enumerate(zip(schedule(len(phones), span), phones, strict=True))]
    for thread in threads:
        thread.start()
    return threads


def moderate(app, t0: float, participants: list[tuple[str, int]], n: int, span: float) -> list[tuple[str, float, bool]]:
    """n mute/unmute requests, the participants in turn, each a commit. [(call SID, commit time, muted)]."""
    from telline import db
    from telline.voice.moderation import ModerationError, act_on_participant
    done: list[tuple[str, float, bool]] = []
    muted = {sid: False for sid, _ in participants}
    with app.app_context():
        session = db.session()
        for k, at in enumerate(schedule(n, span)):
            call_sid, participant_id = participants[k % len(participants)]
            time.sleep(max(0.0, t0 + at + 0.37 - time.time()))  # between two texts, not with one
            try:
                act_on_participant(session, participant_id, "unmute" if muted[call_sid] else "mute")
                session.commit()
            except ModerationError as exc:
                session.rollback()
                print(f"   moderation refused: {exc}", flush=True)
                continue
            muted[call_sid] = not muted[call_sid]
            done.append((call_sid, time.time(), muted[call_sid]))
    return done


def wait_done(app, broadcast_id: int, replies: int, deadline: float) -> dict:
    """Until the broadcast is handed over, `replies` urgent texts too and no moderation task is left —
    or the deadline. What was still waiting then."""
    from telline import db
    from telline.models import Message, Task
    with app.app_context():
        session = db.session()
        while True:
            session.rollback()
            left = session.scalar(sa.select(sa.func.count()).select_from(Message).where(
                Message.broadcast_id == broadcast_id, Message.status.in_(DONE)))
            total = session.scalar(sa.select(sa.func.count()).select_from(Message).where(
                Message.broadcast_id == broadcast_id))
            urgent = session.scalar(sa.select(sa.func.count()).select_from(Message).where(
                Message.direction == "outbound", Message.urgent.is_(True), Message.status.not_in(DONE)))
            moderation = session.scalar(sa.select(sa.func.count()).select_from(Task).where(
                Task.func.like("%participant_job")))
            session.rollback()
            state = dict(broadcast_left=left, broadcast_rows=total, replies_handed=urgent, moderation_left=moderation)
            if (total and not left and urgent >= replies and not moderation) or time.time() > deadline:
                return state
            time.sleep(0.5)


# --- figures ---------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """Nearest rank; inf when a value is missing (a reply never made)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, -(-len(ordered) * q // 100)) - 1]


def dist(values: list[float]) -> str:
    return (f"p50 {pct(values, 50):.2f} s, p99 {pct(values, 99):.2f} s, max {max(values, default=float('nan')):.2f} s"
            if values else "none")


def memory(pids: list[int]) -> str:
    parts = []
    for pid in pids:
        own, kids = h.peak_memory(pid), [(c, h.peak_memory(c)) for c in h.descendants(pid)]
        text = f"{pid}: {own / 1024:.0f} MB" if own else f"{pid}: gone"
        kids_text = " + ".join(f"{kb / 1024:.0f}" for _, kb in kids if kb)
        parts.append(text + (f" (+ children {kids_text} MB)" if kids_text else ""))
    return "; ".join(parts)


def memory_total(pids: list[int]) -> float:
    return sum((h.peak_memory(p) or 0) for pid in pids for p in [pid, *h.descendants(pid)]) / 1024


def run_once(args, standin: h.StandInProcess, run: int) -> dict:
    from telline import db
    latency, jitter = standin.latency, standin.jitter
    ideal = args.members / args.rate
    span = max(1.0, 0.85 * ideal - START_AFTER)  # the urgent load, over most of an ideal broadcast
    max_seconds = args.max_seconds or 1.5 * ideal + 15
    h.flush_redis(args.redis_url)
    standin.control.reset()
    with h.fresh_database("postgres") as url:
        app = h.app_for(url, args.redis_url, standin.url)
        with app.app_context():
            # numbers from +1 617 200-0000: telline takes no text from an invalid one (617-000-…)
            group_id, line_id = h.seed(db.database().engine, args.members, sms_rate=args.rate,
                                       sms_rate_unit="messages", first_member=FIRST_MEMBER)
        line_number = f"+1500555{group_id:04d}"  # as h.seed names them
        phones = [f"+1617{FIRST_MEMBER + i:07d}" for i in range(args.members)]
        occurrence_id, conference = live_meeting(app, group_id, line_id)

        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELLINE_", "TWILIO_"))}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(TELLINE_DATABASE_URL=url, TELLINE_REDIS_URL=args.redis_url, TWILIO_API_BASE_URL=standin.url,
                   TWILIO_ACCOUNT_SID=h.ACCOUNT_SID, TWILIO_AUTH_TOKEN=h.AUTH_TOKEN, TELLINE_SECRET_KEY=h.SECRET_KEY,
                   TELLINE_LOG_LEVEL="WARNING")
        worker_env = {"TELLINE_PUBLIC_URL": ""}
        if args.send_threads is not None:
            worker_env["TELLINE_SEND_THREADS"] = str(args.send_threads)
        web = Web(env, args.web_workers)
        urgent = workers = None
        try:
            web.wait_healthy()
            worker_env["TELLINE_PUBLIC_URL"] = web.public  # status callbacks, announcements
            urgent = h.Workers(args.urgent_workers, url, args.redis_url, standin.url, simple=True,
                               extra_env=worker_env, queues="urgent")
            workers = h.Workers(args.workers, url, args.redis_url, standin.url, simple=True, extra_env=worker_env)
            urgent.wait_ready()
            workers.wait_ready()

            in_meeting = phones[:IN_MEETING + 1]  # the first is the host
            call_sids = join_meeting(standin.url, conference, line_number, web.public, in_meeting)
            roster = wait_roster(app, occurrence_id, call_sids)
            targets = [(sid, roster[sid]) for sid in call_sids[1:]]
            # texters: members spread over the list, none in the meeting
            step = max(1, (args.members - IN_MEETING - 1) // max(args.texters, 1))
            texting = [phones[IN_MEETING + 1 + k * step] for k in range(args.texters)]
            time.sleep(1.0)  # the set-up's callbacks are through
            cutoff = time.time()  # the set-up's requests are not the run's (a reset would end the meeting)

            cpu = h.CpuMeter(standin=[standin.proc.pid], web=web.pids,
                             urgent_workers=[p for w in urgent.pids for p in (w, *h.descendants(w))],
                             workers=[p for w in workers.pids for p in (w, *h.descendants(w))])
            from telline.sms.broadcast import start_broadcast
            with app.app_context():
                session = db.session()
                broadcast_id = start_broadcast(session, group_id=group_id, body=BODY).id
                session.commit()
            t0 = time.time()
            answers: list = [None] * len(texting)
            threads = texters(t0, web, line_number, texting, span, answers)
            actions = moderate(app, t0, targets, args.moderations, span)
            for thread in threads:
                thread.join(timeout=max_seconds)
            state = wait_done(app, broadcast_id, len(texting), t0 + max_seconds)
            ended = time.time()
            time.sleep(0.5)
            usage = cpu.stop()
            mem = {"urgent workers": memory(urgent.pids), "workers": memory(workers.pids),
                   "web (gunicorn master)": memory([web.proc.pid])}
            mem_total = {"urgent": memory_total(urgent.pids), "workers": memory_total(workers.pids),
                         "web": memory_total([web.proc.pid])}
            # what the stand-in saw while the run lasted (workers stopping may send a little more)
            posts = [r for r in standin.control.requests(method="POST") if cutoff <= r.time <= ended]
            errors = sum(w.output(tail=None).count("Traceback") for w in (urgent, workers))
            web_errors = web.output(100_000).count("Traceback")
        finally:
            stop_now([p for w in (urgent, workers) if w for p in w.procs])
            web.stop()
            h.flush_redis(args.redis_url)

    texts = sorted((r for r in posts if r.path.endswith("/Messages.json") and r.get("From") == line_number),
                   key=lambda r: r.time)
    broadcast = [r.time for r in texts if r.get("Body") == BODY and r.status == 201]
    handover = len(broadcast) / (broadcast[-1] - broadcast[0]) if len(broadcast) > 1 else 0.0
    window_all = h.max_in_window([r.time for r in texts])
    window_broadcast = h.max_in_window(broadcast)

    reply_latency, missing_replies, bad_answers = [], 0, 0
    for entry in answers:
        if entry is None:
            missing_replies += 1
            continue
        phone, answered, status = entry
        bad_answers += status != 200
        reply = next((r for r in texts if r.get("To") == phone and r.get("Body") != BODY), None)
        if reply is None:
            missing_replies += 1
        else:
            reply_latency.append(reply.time - answered)
    mod_latency, missing_mods = [], 0
    for call_sid in {sid for sid, _, _ in actions}:
        asked = sorted((t, muted) for sid, t, muted in actions if sid == call_sid)
        made = sorted((r for r in posts if r.path.endswith(f"/Participants/{call_sid}.json")), key=lambda r: r.time)
        for k, (t, muted) in enumerate(asked):
            if k < len(made) and made[k].get("Muted") == str(muted).lower():
                mod_latency.append(made[k].time - t)
            else:
                missing_mods += 1
    missing_mods += args.moderations - len(actions)

    r = dict(run=run, latency=latency, jitter=jitter, handover=handover / args.rate, sent=len(broadcast),
             rows=state["broadcast_rows"], complete=not state["broadcast_left"], wall=ended - t0,
             send_wall=broadcast[-1] - broadcast[0] if len(broadcast) > 1 else 0.0,
             window_all=window_all, window_broadcast=window_broadcast, reply=reply_latency,
             reply_p99=pct(reply_latency + [float("inf")] * missing_replies, 99), missing_replies=missing_replies,
             bad_answers=bad_answers, moderation=mod_latency,
             mod_p99=pct(mod_latency + [float("inf")] * missing_mods, 99), missing_mods=missing_mods,
             mem=mem, mem_total=mem_total, cpu=usage, errors=errors, web_errors=web_errors, state=state)
    r["ok"] = (r["complete"] and r["handover"] >= TARGET_HANDOVER and window_all <= args.rate
               and r["reply_p99"] <= TARGET_P99 and r["mod_p99"] <= TARGET_P99 and not bad_answers)
    return r


def report(r: dict, args) -> None:
    print(f"\n-- run {r['run']}: {'PASS' if r['ok'] else 'FAIL'}")
    done = "all" if r["complete"] else f"INCOMPLETE after {r['wall']:.0f} s (--max-seconds):"
    print(f"   broadcast: {done} {r['sent']} of {r['rows']} texts handed over in {r['send_wall']:.1f} s")
    print(f"   (1) hand-over {r['handover'] * args.rate:.1f}/s = {r['handover']:.3f} of the line's {args.rate}/s "
          f"(target ≥ {TARGET_HANDOVER}); most in any 1-s window: {r['window_all']} from the line "
          f"(broadcast alone {r['window_broadcast']}; target ≤ {args.rate})")
    miss = f"; {r['missing_replies']} never answered" if r["missing_replies"] else ""
    bad = f"; {r['bad_answers']} webhooks not 200" if r["bad_answers"] else ""
    print(f"   (2) reply latency, {len(r['reply'])} texts in: {dist(r['reply'])}{miss}{bad} "
          f"(target p99 ≤ {TARGET_P99:g} s)")
    miss = f"; {r['missing_mods']} never made" if r["missing_mods"] else ""
    print(f"       moderation latency, {len(r['moderation'])} requests: {dist(r['moderation'])}{miss} "
          f"(target p99 ≤ {TARGET_P99:g} s)")
    print("   (4) peak memory (VmHWM): " + " | ".join(f"{k} {v}" for k, v in r["mem"].items()))
    print(f"       CPU: {h.format_cpu(r['cpu'])}")
    if r["errors"] or r["web_errors"]:
        print(f"   workers logged {r['errors']} tracebacks, telline web {r['web_errors']}")
    print(f"   at the end: {r['state']}", flush=True)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    finite = [v for v in values if v == v]
    if not finite:
        return "n/a"
    return (" / ".join(fmt.format(v) for v in values) + f"   (min {fmt.format(min(finite))}, median "
            f"{fmt.format(statistics.median(finite))}, max {fmt.format(max(finite))})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=100, help="the line's sms_rate, texts per second")
    parser.add_argument("--urgent-workers", type=int, default=1, help="`telline worker --simple --queues urgent`")
    parser.add_argument("--workers", type=int, default=2, help="`telline worker --simple` (all queues)")
    parser.add_argument("--send-threads", type=int, default=None, help="TELLINE_SEND_THREADS for the workers")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--texters", type=int, default=50)
    parser.add_argument("--moderations", type=int, default=30)
    parser.add_argument("--status-callbacks", default="sent,delivered", metavar="STATUS,...",
                        help="statuses the stand-in moves each text through, a signed callback each (\"\": none)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop a run this long after the broadcast starts (default 1.5 × members / rate + 15)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    h.add_latency_args(parser)
    args = parser.parse_args()
    if not (1 <= args.runs <= 10 and 100 <= args.members <= 50_000 and 1 <= args.rate <= 1000
            and 0 <= args.urgent_workers <= 8 and 1 <= args.workers <= 8 and 0 <= args.texters <= 500
            and 0 <= args.moderations <= 500 and args.texters + IN_MEETING + 1 <= args.members):
        parser.error("keep it bounded: runs 1–10, members 100–50,000, rate 1–1000, workers 1–8, urgent workers 0–8, "
                     "texters and moderations 0–500 (and fewer texters than members)")
    latency, jitter = h.latency_of(args)
    statuses = tuple(s for s in args.status_callbacks.split(",") if s.strip())
    standin = h.StandInProcess(latency=latency, jitter=jitter, auto_status=statuses)
    results = []
    try:
        print(f"urgent lane: {args.members} members, a {args.rate}/s line (messages); {args.urgent_workers} × "
              f"`telline worker --simple --queues urgent` + {args.workers} × `telline worker --simple`, "
              f"TELLINE_SEND_THREADS {args.send_threads if args.send_threads is not None else 'unset'}; "
              f"`telline web --workers {args.web_workers}`; {args.texters} texts in, {args.moderations} moderations")
        print(f"  {h.describe_latency(latency, jitter)}; status callbacks {','.join(statuses) or 'none'}; "
              f"{args.runs} runs; PostgreSQL; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
              flush=True)
        for run in range(1, args.runs + 1):
            r = run_once(args, standin, run)
            report(r, args)
            results.append(r)
    finally:
        standin.stop()

    print(f"\nsummary over {len(results)} runs (each run / spread):")
    print(f"  (1) hand-over, share of {args.rate}/s:  {spread([r['handover'] for r in results], '{:.3f}')}"
          f"  target ≥ {TARGET_HANDOVER}")
    print(f"      most in a 1-s window:     {spread([r['window_all'] for r in results], '{:.0f}')}"
          f"  target ≤ {args.rate}")
    print(f"      broadcast complete:       {' / '.join('yes' if r['complete'] else 'no' for r in results)}")
    print(f"  (2) reply p50 (s):            {spread([pct(r['reply'], 50) for r in results])}")
    print(f"      reply p99 (s):            {spread([r['reply_p99'] for r in results])}  target ≤ {TARGET_P99:g}")
    print(f"      reply max (s):            {spread([max(r['reply'], default=float('nan')) for r in results])}")
    print(f"      moderation p50 (s):       {spread([pct(r['moderation'], 50) for r in results])}")
    print(f"      moderation p99 (s):       {spread([r['mod_p99'] for r in results])}  target ≤ {TARGET_P99:g}")
    print(f"      moderation max (s):       {spread([max(r['moderation'], default=float('nan')) for r in results])}")
    for key in ("urgent", "workers", "web"):
        values = spread([r["mem_total"][key] for r in results], "{:.0f}")
        print(f"  (4) peak memory, {key + ' (all processes)':<24} {values} MB")
    for key in ("standin", "web", "urgent_workers", "workers", "postgres", "redis", "machine"):
        print(f"      CPU s, {key:<20} {spread([r['cpu'][key] for r in results], '{:.1f}')}")
    ok = all(r["ok"] for r in results)
    print(f"\n{'PASS' if ok else 'FAIL'}: {sum(r['ok'] for r in results)} of {len(results)} runs met every target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
