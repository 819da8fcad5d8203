"""Shared plumbing for the pipeline benchmarks (not a benchmark itself).

- a fresh database (PostgreSQL: a new database on the server, dropped afterwards;
  SQLite: a new file in a temporary directory), migrated to head;
- a group, a line and N opted-in members, bulk inserted;
- the Twilio stand-in as its own process (own GIL), URL read from its first line;
- `telline worker` subprocesses, as production runs them;
- the plain twilio client as the baseline (N processes, create() in a loop);
- CPU accounting per component from /proc, to say who was busy.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
SECRET_KEY = "bench-secret-key-0123456789abcdef"  # PostgreSQL: telline refuses development secrets
LINE_NUMBER = "+15005550006"
WARM_UP = "+16190000000"  # the baseline's warm-up sends go here and are not counted
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TICKS = os.sysconf("SC_CLK_TCK")


# --- databases -------------------------------------------------------------------
@contextlib.contextmanager
def fresh_database(kind: str):
    """Yield a migrated, empty database URL; drop it afterwards."""
    from telline import migrate
    if kind == "postgres":
        import psycopg
        name = f"telline_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        try:
            migrate.upgrade(url)
            yield url
        finally:
            with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    elif kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="telline-bench-") as tmp:
            url = f"sqlite:///{tmp}/bench.sqlite3"
            migrate.upgrade(url)
            yield url
    else:
        raise ValueError(kind)


def seed(engine: sa.Engine, members: int, sms_rate: float, sms_rate_unit: str = "messages",
         first_member: int = 0) -> tuple[int, int]:
    """A group (no quiet hours), its line at `sms_rate`, `members` active and opted in.
    Returns (group_id, line_id)."""
    from telline.models import ConsentEvent, Group, Line, Member, Membership, utcnow
    now = utcnow()
    with engine.begin() as conn:
        group_id = conn.execute(sa.insert(Group).values(
            name=f"bench {uuid.uuid4().hex[:6]}", language="en", timezone="UTC", default_region="US",
            join_needs_confirmation=False, quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0),
            crisis_resource="", coordinator_contact="", created_at=now).returning(Group.id)).scalar_one()
        line_id = conn.execute(sa.insert(Line).values(
            group_id=group_id, phone_number=f"+1500555{group_id:04d}", label="bench", sms_rate=sms_rate,
            sms_rate_unit=sms_rate_unit, created_at=now).returning(Line.id)).scalar_one()
        phones = [f"+1617{first_member + i:07d}" for i in range(members)]
        conn.execute(sa.insert(Member), [dict(display_name=f"m{i}", phone=p, preferences={}, sms_status="ok",
                                              sms_status_detail="", created_at=now)
                                         for i, p in enumerate(phones)])
        ids = dict(conn.execute(sa.select(Member.phone, Member.id).where(Member.phone.in_(phones))).all())
        conn.execute(sa.insert(Membership), [dict(member_id=ids[p], group_id=group_id, status="active",
                                                  joined_at=now) for p in phones])
        conn.execute(sa.insert(ConsentEvent), [dict(phone=p, channel="sms", action="opt_in", source="import",
                                                    group_id=group_id, detail="", created_at=now)
                                               for p in phones])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return group_id, line_id


def app_for(database_url: str, redis_url: str, standin_url: str):
    from telline import create_app
    return create_app({"database_url": database_url, "redis_url": redis_url, "twilio_api_base_url": standin_url,
                       "twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN, "secret_key": SECRET_KEY,
                       "log_level": "WARNING", "log_format": "text"})


def parse_mode(mode: str) -> tuple[bool, dict]:
    """"fork" or "simple", plus diagnostic variants joined by "+" (lagprobe, guardNN: see
    _probe_worker.py). Returns (simple, extra_env for Workers)."""
    kind, *variants = mode.split("+")
    if kind not in ("fork", "simple"):
        raise ValueError(f"mode must start with fork or simple: {mode!r}")
    env = {}
    flags = []
    for v in variants:
        if v == "lagprobe" or v.startswith("guard"):
            flags.append(v)
        else:
            raise ValueError(f"unknown variant {v!r} in {mode!r}")
    if flags:
        env["BENCH_VARIANT"] = ",".join(flags)
    return kind == "simple", env


def add_latency_args(parser, latency_ms: float = 200, jitter_ms: float = 50) -> None:
    """--latency MS --jitter MS (Twilio's REST answers take 0.1-0.3 s) and --fast (0: the old mode)."""
    parser.add_argument("--latency", type=float, default=latency_ms, metavar="MS",
                        help=f"the stand-in answers each API request after this many ms (default {latency_ms:g})")
    parser.add_argument("--jitter", type=float, default=jitter_ms, metavar="MS",
                        help=f"± this many ms, uniformly (default {jitter_ms:g})")
    parser.add_argument("--fast", action="store_true",
                        help="the stand-in answers at once (latency and jitter 0): the benchmarks' old mode")


def latency_of(args) -> tuple[float, float]:
    """(latency, jitter) in seconds, from add_latency_args' options."""
    if args.fast:
        return 0.0, 0.0
    if not (0 <= args.latency <= 60_000 and 0 <= args.jitter <= 60_000):
        raise SystemExit("--latency and --jitter are milliseconds from 0 to 60000")
    return args.latency / 1000, args.jitter / 1000


def describe_latency(latency: float, jitter: float) -> str:
    return f"stand-in latency {latency * 1e3:.0f} ± {jitter * 1e3:.0f} ms" if latency or jitter \
        else "stand-in answering at once (--fast)"


def flush_redis(redis_url: str) -> redis.Redis:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    return conn


# --- processes ---------------------------------------------------------------------
class StandInProcess:
    """`python -m telline.twilio.standin --port 0 --auth-token X` in its own process.

    quiet=True runs the same serve() with logging at WARNING instead of INFO: the module's
    CLI logs one line per request to stderr, which is stand-in CPU that is not Twilio's.
    latency, jitter: seconds each API answer waits (Twilio's REST latency; see the stand-in);
    auto_status: statuses each message moves through, each a signed callback to telline.
    """

    def __init__(self, quiet: bool = True, latency: float = 0.0, jitter: float = 0.0,
                 auto_status: tuple[str, ...] = ()):
        self.latency, self.jitter = latency, jitter
        if quiet:
            code = ("import logging; logging.basicConfig(level=logging.WARNING); "
                    "from telline.twilio.standin import serve; "
                    f"serve('127.0.0.1', 0, {AUTH_TOKEN!r}, auto_status={tuple(auto_status)!r}, "
                    f"latency={latency!r}, jitter={jitter!r})")
            argv = [PYTHON, "-c", code]
        else:
            argv = [PYTHON, "-m", "telline.twilio.standin", "--port", "0", "--auth-token", AUTH_TOKEN,
                    "--latency", str(latency), "--jitter", str(jitter), "--auto-status", ",".join(auto_status)]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"http://\S+", line)
        if not match:
            self.stop()
            raise RuntimeError(f"stand-in did not start: {line!r}")
        self.url = match.group(0)
        from telline.twilio.standin import StandInControl
        self.control = StandInControl(self.url, timeout=60)

    def posts(self) -> list[tuple[float, str]]:
        """(time, To) of every message the stand-in accepted (201), in time order."""
        return sorted((r.time, r.get("To")) for r in self.control.requests(method="POST", path_suffix="Messages.json")
                      if r.status == 201)

    def post_times(self, exclude_to: str | None = None) -> list[float]:
        return [t for t, to in self.posts() if exclude_to is None or to != exclude_to]

    def stop(self):
        stop_processes([self.proc], timeout=10)


class Workers:
    """n `python -m telline worker [--simple] [--queues Q]` subprocesses (extra_env BENCH_VARIANT: see
    _probe_worker.py)."""

    def __init__(self, n: int, database_url: str, redis_url: str, standin_url: str, simple: bool = False,
                 extra_env: dict | None = None, queues: str | None = None):
        env = dict(os.environ, TELLINE_DATABASE_URL=database_url, TELLINE_REDIS_URL=redis_url,
                   TWILIO_API_BASE_URL=standin_url, TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                   TELLINE_SECRET_KEY=SECRET_KEY, TELLINE_LOG_LEVEL="WARNING", **(extra_env or {}))
        variant = (extra_env or {}).get("BENCH_VARIANT")
        # a variant runs the same CLI through tests/bench/_probe_worker.py, which swaps things in first
        argv = ([PYTHON, str(Path(__file__).with_name("_probe_worker.py"))] if variant
                else [PYTHON, "-m", "telline"]) + ["worker"] + (["--simple"] if simple else []) \
            + (["--queues", queues] if queues else [])
        self.redis_url = redis_url
        self.logs = [tempfile.TemporaryFile() for _ in range(n)]
        self.procs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                      for log in self.logs]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def wait_ready(self, timeout: float = 60.0) -> None:
        from rq import Worker
        conn = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = {w.pid for w in Worker.all(connection=conn)}
            if all(p.pid in alive for p in self.procs):
                return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"worker exited with {p.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise RuntimeError(f"workers not registered after {timeout} s:\n{self.output()}")

    def output(self, tail: int | None = 4000) -> str:
        out = []
        for log in self.logs:
            log.seek(0)
            text = log.read().decode(errors="replace")
            out.append(text[-tail:] if tail else text)
        return "\n---\n".join(out)

    def stop(self):
        stop_processes(self.procs, timeout=15)  # SIGTERM: RQ's warm shutdown


# --- baseline: the plain twilio client ------------------------------------------------
def _client_loop(url: str, count: int, offset: int, ready, results) -> None:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    class LocalHttpClient(TwilioHttpClient):
        def request(self, method, url_, *args, **kwargs):
            return super().request(method, re.sub(r"^https://[A-Za-z0-9.-]+\.twilio\.com", url, url_),
                                   *args, **kwargs)

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=LocalHttpClient(pool_connections=True, timeout=10))
    body = "Bench: the plain client alone."
    client.messages.create(from_=LINE_NUMBER, to=WARM_UP, body=body)  # warm the connection
    ready.wait()
    start = time.monotonic()
    for i in range(count):
        client.messages.create(from_=LINE_NUMBER, to=f"+1618{offset + i:07d}", body=body)
    results.put((time.monotonic() - start, _own_cpu()))


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def baseline(standin: StandInProcess, processes: int, total: int) -> dict:
    """`processes` processes share `total` creates; rate from the stand-in's own request times."""
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(processes + 1), ctx.Queue()
    per = total // processes
    procs = [ctx.Process(target=_client_loop, args=(standin.url, per, k * per, ready, results))
             for k in range(processes)]
    standin.control.reset()
    for p in procs:
        p.start()
    ready.wait()
    cpu = CpuMeter(standin=[standin.proc.pid])
    outs = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    usage = cpu.stop()
    times = standin.post_times(exclude_to=WARM_UP)
    standin.control.reset()
    return dict(n=len(times), rate=span_rate(times), client_cpu=sum(c for _, c in outs),
                cpu=usage, wall=times[-1] - times[0])


# --- figures ----------------------------------------------------------------------
def span_rate(times: list[float]) -> float:
    """Sends per second from the first to the last."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Highest count of times in any closed window [t, t + width]."""
    times = sorted(times)
    return max((bisect.bisect_right(times, t + width) - i for i, t in enumerate(times)), default=0)


def stop_processes(procs, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal every process still running, then wait for each; kill one that outlives `timeout`."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def proc_cpu(pid: int, children: bool = True) -> float:
    """CPU seconds of a process (and, by default, of its reaped children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + ((cutime + cstime) if children else 0)) / TICKS


def descendants(pid: int) -> list[int]:
    """The process's children, their children…, alive now."""
    out, todo = [], [pid]
    while todo:
        for task in _listdir(f"/proc/{todo.pop()}/task"):
            try:
                with open(f"{task}/children") as f:
                    kids = [int(c) for c in f.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _listdir(path: str) -> list[str]:
    try:
        return [f"{path}/{entry}" for entry in os.listdir(path)]
    except OSError:
        return []


def peak_memory(pid: int) -> int | None:
    """VmHWM (peak resident set) in kB, None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pids_named(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip().startswith(name):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def machine_cpu() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICKS, total / TICKS


class CpuMeter:
    """CPU seconds used per component between construction and stop().

    Named pids count with their reaped children (a forking worker's horses);
    postgres and redis-server are every process of that name (postgres backends
    exit into the postmaster's children time).
    """

    def __init__(self, **pids: list[int]):
        self.pids = dict(pids)
        # postgres: the postmaster's children time takes in the backends that exit meanwhile;
        # a process of that name started meanwhile is counted from 0.
        self.named = {"postgres": "postgres", "redis": "redis-server"}
        self.start_wall = time.monotonic()
        self.before = self._sample()

    def _sample(self) -> dict:
        s = {name: {p: proc_cpu(p) for p in pids} for name, pids in self.pids.items()}
        for key, comm in self.named.items():
            s[key] = {p: proc_cpu(p) for p in pids_named(comm)}
        s["bench"] = {0: _own_cpu()}
        busy, total = machine_cpu()
        s["machine"], s["machine_total"] = {0: busy}, {0: total}
        return s

    def stop(self) -> dict:
        after = self._sample()
        wall = time.monotonic() - self.start_wall
        usage = {}
        for key, values in after.items():
            # a process gone meanwhile (another redis-server…) is left out rather than counted negative
            usage[key] = sum(v - self.before[key].get(p, 0.0) for p, v in values.items()
                             if v >= self.before[key].get(p, 0.0) and (p in self.before[key] or key == "postgres"))
        usage["wall"] = wall
        return usage


def format_cpu(usage: dict, per: int | None = None) -> str:
    wall = usage["wall"]
    parts = []
    for key, value in usage.items():
        if key in ("wall", "machine_total"):
            continue
        share = f"{value / wall:.0%} of a core"
        extra = f", {value / per * 1e3:.2f} ms/msg" if per else ""
        parts.append(f"{key} {value:.2f}s ({share}{extra})")
    return "; ".join(parts) + f"  [wall {wall:.2f}s]"
