"""Do the _surge_variants prototypes answer exactly as telline does? (TwiML compared per scenario.)

    .venv/bin/python tests/bench/check_surge_variants.py

Scenarios: right code, host PIN, wrong code then right, silence, three wrong codes, unknown line,
anonymous caller, unknown CallSid on /code. Call ids in participant labels are normalised.
Fresh PostgreSQL database (dropped after), Redis db 10 (flushed).
"""
import sys, re, redis
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parents[1]))
import profile_join_path as pj, bench_meeting_surge as surge
import sqlalchemy as sa
R = "redis://127.0.0.1:6379/10"
redis.Redis.from_url(R).flushdb()
def norm(b): return re.sub(rb"(member|host)-\d+", rb"\1-N", b)
with surge.fresh_database("postgresql://postgres@127.0.0.1:5432/test") as (db, url):
    code = surge.seed_meeting(url)
    eng = sa.create_engine(url)
    with eng.connect() as c:
        pin = c.execute(sa.text("select host_pin from meeting_series")).scalar()
    apps = {v: pj.telline_app(url, R, v) for v in ("", "lean", "lean2")}
    cl = {v: a.test_client() for v, a in apps.items()}
    def scenario(v, digits_list, frm=None, to=None):
        c = surge.Caller(pj.PUBLIC, code)
        out = []
        import urllib.parse
        form = dict(urllib.parse.parse_qsl(c.first[1].decode()))
        if frm: form["From"] = frm
        if to: form["To"] = to; form["Called"] = to
        req = surge._signed(pj.PUBLIC, "/twilio/voice", form)
        r = pj.post(cl[v], req); out.append((r.status_code, norm(r.data)))
        for d in digits_list:
            f2 = {"AccountSid": surge.ACCOUNT_SID, "CallSid": form["CallSid"]}
            if d is not None: f2["Digits"] = d
            r = pj.post(cl[v], surge._signed(pj.PUBLIC, "/twilio/voice/code", f2)); out.append((r.status_code, norm(r.data)))
        return out
    cases = {"code": [code], "host": [pin], "wrong,then code": ["123", code], "silence": [None], "3 wrong": ["1","2","3"],
             "unknown line": ([code], None, "+15005550099"), "anonymous": ([code], "anonymous", None)}
    for name, spec in cases.items():
        digits, frm, to = (spec if isinstance(spec, tuple) else (spec, None, None))
        res = {v: scenario(v, digits, frm, to) for v in apps}
        same = all(res[v] == res[""] for v in apps)
        print(f"{name:<18} {'same' if same else 'DIFFERENT'}  {[s for s,_ in res['']]}  {[b[:60] for _,b in res[''][-1:]]}")
        if not same:
            for v in apps: print("   ", v, res[v])
    # unknown call sid on /code
    for v in apps:
        r = pj.post(cl[v], surge._signed(pj.PUBLIC, "/twilio/voice/code", {"AccountSid": surge.ACCOUNT_SID, "CallSid": "CA"+"f"*32, "Digits": code}))
        print("unknown call", v or "telline", r.status_code, r.data[:90])
    eng.dispose()
redis.Redis.from_url(R).flushdb()
