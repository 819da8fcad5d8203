"""The baseline for bench_meeting_surge.py: a bare Flask app, no database, no Redis.

    gunicorn --workers 2 ... tests.bench.bare_app:app      (from the repository root)

Both join-path URLs (POST /twilio/voice and POST /twilio/voice/code) check
X-Twilio-Signature with twilio's RequestValidator over BENCH_BARE_PUBLIC_URL + path
(as telline does with TELLINE_PUBLIC_URL) and answer the same <Dial><Conference>
TwiML telline renders for a member joining (telline.twilio.twiml.join_conference,
one fixed seat). POST /twilio/voice/conference (the conference status callbacks of
bench_meeting_surge.py --with-callbacks) checks the signature the same way and answers 204, no
body, as telline does. GET /healthz answers 200 so the benchmark can wait for it.
Not a test module (tests/bench/ is not collected by pytest).
"""

from __future__ import annotations

import os

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator

from telline.texts import say_language, t
from telline.twilio.twiml import ConferenceSeat, join_conference

AUTH_TOKEN = os.environ["BENCH_BARE_AUTH_TOKEN"]
PUBLIC_URL = os.environ["BENCH_BARE_PUBLIC_URL"].rstrip("/")

# What telline's _admit() builds for a member of an English group with the series defaults
# (no recording, entry tones on, no wait URL), max_participants 250 as in the benchmark.
SEAT = ConferenceSeat(name="tl-0123456789abcdef01234567", host=False, end_on_exit=False, max_participants=250,
                      beep=True, wait_url=None, status_callback=f"{PUBLIC_URL}/twilio/voice/conference",
                      record=False, label="member-1", before=(), after=t("voice.after_meeting", "en"))
VOICE = say_language("en")

app = Flask(__name__)


def _signed() -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    query = request.query_string.decode("latin-1")
    url = PUBLIC_URL + request.path + (f"?{query}" if query else "")
    return bool(signature) and RequestValidator(AUTH_TOKEN).validate(url, request.form, signature)


@app.post("/twilio/voice")
@app.post("/twilio/voice/code")
def join():
    if not _signed():
        abort(403)
    return Response(join_conference(SEAT, VOICE), content_type="text/xml; charset=utf-8")


@app.post("/twilio/voice/conference")
def conference_event():
    if not _signed():
        abort(403)
    return Response(status=204)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
