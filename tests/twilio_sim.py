"""Twilio's side of a phone meeting, for tests: people's phones and the voice engine.

The stand-in (telline.twilio.standin) keeps the calls and conferences, answers telline's
REST requests and numbers the conference status callbacks. This plays the rest of Twilio:

- a Phone calls the line: the signed incoming-call webhook is POSTed, and the TwiML telline
  answers is run verb by verb — <Say> is heard, <Gather> waits for the script to press keys
  (POSTed to its action) or to stay silent (the next verb runs: telline's <Redirect>),
  <Redirect> is followed, <Hangup> or the end of the document ends the call, and
  <Dial><Conference> puts the call into the stand-in's conference with the noun's attributes;
  when the conference ends (or the call is kicked), the verbs after <Dial> run, as on Twilio;
- a Phone texts the line: the signed incoming-SMS webhook; what the line sends to it are the
  stand-in's messages to that number;
- deliver(): the conference callbacks the stand-in holds go to telline, signed, in order.

Requests reach telline through `send(url, form, headers) -> (status, body)`: the Flask test
client (via_test_client) or real HTTP (via_http), at the absolute URLs telline gives — which
is what Twilio does.

    twilio = TwilioSim(standin, via_test_client(client), line=LINE, public_url="http://telline.test")
    ana = twilio.phone("+447911123456")
    call = ana.call()              # hears the welcome, a <Gather> waits
    call.press("123456#")          # in the conference (waiting for a host: hold music)
    ana.text("MUTE")
    twilio.deliver()               # the conference callbacks so far → telline
"""

from __future__ import annotations

import datetime as dt
import secrets
import xml.etree.ElementTree as ET
from urllib.parse import urljoin, urlsplit

import requests
from twilio.request_validator import RequestValidator

from tests.standin_plugin import ACCOUNT_SID, AUTH_TOKEN

API_VERSION = "2010-04-01"
HOLD_MUSIC = "(hold music)"


class TellineError(AssertionError):
    """telline answered a webhook with an error, or with something that is not TwiML (a caller
    would hear "an application error has occurred")."""


def via_test_client(client):
    """Send Twilio's requests through a Flask test client, to the absolute URL given."""
    def send(url: str, form: dict, headers: dict) -> tuple[int, str]:
        parts = urlsplit(url)
        answer = client.post(parts.path, query_string=parts.query, base_url=f"{parts.scheme}://{parts.netloc}",
                             data=form, headers=headers)
        return answer.status_code, answer.get_data(as_text=True)
    return send


def via_http(session: requests.Session | None = None):
    """Send Twilio's requests over HTTP (telline served for real)."""
    http = session or requests.Session()

    def send(url: str, form: dict, headers: dict) -> tuple[int, str]:
        answer = http.post(url, data=form, headers=headers, timeout=15)  # Twilio gives a webhook 15 s
        return answer.status_code, answer.text
    return send


class Clock:
    """What time Twilio says it is (conference callbacks' Timestamp): moved by the script only."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, now: dt.datetime) -> None:
        self.now = now


class TwilioSim:
    """Twilio for one account: its phones' calls and texts to `line`, and the conference callbacks."""

    def __init__(self, standin, send, *, line: str, public_url: str, account_sid: str = ACCOUNT_SID,
                 auth_token: str = AUTH_TOKEN, clock: Clock | None = None, hold_callbacks: bool = True,
                 before_acting=None):
        """line: the Twilio number whose Voice and SMS webhooks are public_url + /twilio/voice, /twilio/sms.
        hold_callbacks: conference callbacks wait for deliver(), which sends them from the test's thread
        with `send`; False: the stand-in POSTs them over HTTP from its own thread as they happen, and
        deliver() waits for them.
        before_acting: called before each request to telline and before waiting for callbacks (a test
        that reads telline's database ends its transaction there: an onlooker holds no lock)."""
        self.standin, self.send, self.line = standin, send, line
        self.voice_url, self.sms_url = f"{public_url}/twilio/voice", f"{public_url}/twilio/sms"
        self.account_sid, self._validator = account_sid, RequestValidator(auth_token)
        self.calls: list[Call] = []
        if clock is not None:
            standin.clock = clock
        standin.hold_callbacks = self.holds_callbacks = hold_callbacks
        self._events_seen = self._sent_seen = 0
        self._before_acting = before_acting or (lambda: None)

    def phone(self, number: str) -> Phone:
        return Phone(self, number)

    def post(self, url: str, form: dict) -> str:
        """POST a signed webhook as Twilio does; the answer's body (telline must answer 2xx)."""
        headers = {"X-Twilio-Signature": self._validator.compute_signature(url, form),
                   "User-Agent": "TwilioProxy/1.1"}
        self._before_acting()
        status, body = self.send(url, form, headers)
        if not 200 <= status < 300:
            raise TellineError(f"POST {url} answered {status}: {body[:500]}")
        return body

    def deliver(self) -> int:
        """The conference callbacks so far reach telline (sent now, in order, when held; else waited
        for); then the calls whose conference is over (or who were kicked) go on with the verbs after
        their <Dial>. Returns how many conference events and such calls there were since last time."""
        self._before_acting()
        if self.holds_callbacks:
            self.standin.deliver_callbacks(lambda url, form, headers: self.send(url, form, headers)[0])
        elif not self.standin.wait_callbacks(timeout=20):
            raise TellineError("the stand-in's callbacks were not all answered in 20 s")
        sent = self.standin.callbacks_sent()
        refused = [(c["params"].get("StatusCallbackEvent"), c["status"]) for c in sent[self._sent_seen:]
                   if not 200 <= (c["status"] or 0) < 300]
        self._sent_seen = len(sent)
        if refused:
            raise TellineError(f"callbacks refused or unanswered: {refused}")
        events, self._events_seen = len(self.standin.conference_events()) - self._events_seen, \
            len(self.standin.conference_events())
        done = [call for call in self.calls if call.state == "in-conference"
                and self.standin.participant(call.sid) is None]
        for call in done:
            call._dial_over()
        return events + len(done)


class Phone:
    def __init__(self, twilio: TwilioSim, number: str):
        self.twilio, self.number = twilio, number

    def call(self, to: str | None = None) -> Call:
        call = Call(self.twilio, self.number, to or self.twilio.line)
        self.twilio.calls.append(call)
        call._ring()
        return call

    def text(self, body: str, to: str | None = None) -> None:
        self.twilio.post(self.twilio.sms_url, {
            "MessageSid": (sid := f"SM{secrets.token_hex(16)}"), "SmsSid": sid, "AccountSid": self.twilio.account_sid,
            "From": self.number, "To": to or self.twilio.line, "Body": body, "NumMedia": "0",
            "NumSegments": "1", "SmsStatus": "received", "ApiVersion": API_VERSION})

    def texts(self) -> list[str]:
        """What was sent to this phone (the stand-in's messages), oldest first."""
        return [m["body"] for m in self.twilio.standin.messages_sent() if m["to"] == self.number]


class Call:
    """One call, as Twilio runs it. state: ringing, gathering, in-conference, completed."""

    def __init__(self, twilio: TwilioSim, from_: str, to: str):
        self.twilio, self.from_, self.to = twilio, from_, to
        self.sid = twilio.standin.incoming_call(from_, to, account_sid=twilio.account_sid)
        self.state, self.heard = "ringing", []
        self.conference: str | None = None  # the name of the conference it went into last
        self._url, self._verbs, self._gather, self._dial_action = twilio.voice_url, [], None, None

    # --- what the script does ---------------------------------------------------------
    def press(self, keys: str) -> None:
        """Type keys while a <Gather> listens. Keys after finishOnKey are not heard; no keys at all
        is silence."""
        gather = self._listening()
        finish = gather.get("finishOnKey", "#")
        digits, finished_on = (keys.split(finish, 1)[0], finish) if finish and finish in keys else (keys, "")
        if gather.get("numDigits"):
            digits = digits[:int(gather.get("numDigits"))]
        if not digits:
            self.stay_silent()
            return
        self._gather = None
        self._fetch(urljoin(self._url, gather.get("action") or self._url), gather.get("method", "POST"),
                    Digits=digits, FinishedOnKey=finished_on)

    def stay_silent(self) -> None:
        """The <Gather> times out: Twilio goes on with the next verb (no request, no Digits)."""
        self._listening()
        self._gather = None
        self._run()

    def hang_up(self) -> None:
        if self.state != "completed":
            self.twilio.standin.hang_up(self.sid)
            self.state = "completed"

    @property
    def waiting(self) -> bool:
        """In a conference that has not started: hearing hold music."""
        conference = self.twilio.standin.conference_named(self.conference) if self.conference else None
        return self.state == "in-conference" and conference is not None and conference["status"] == "init"

    def said(self) -> str:
        return " ".join(self.heard)

    # --- Twilio's engine --------------------------------------------------------------
    def _ring(self) -> None:
        self._fetch(self.twilio.voice_url, "POST", first=True)

    def _params(self, first: bool = False) -> dict:
        return {"CallSid": self.sid, "AccountSid": self.twilio.account_sid, "From": self.from_, "To": self.to,
                "Caller": self.from_, "Called": self.to, "CallStatus": "ringing" if first else "in-progress",
                "Direction": "inbound", "ApiVersion": API_VERSION}

    def _fetch(self, url: str, method: str, first: bool = False, **extra) -> None:
        if method.upper() != "POST":
            raise NotImplementedError(f"{method} TwiML fetches are not simulated")
        body = self.twilio.post(url, {**self._params(first), **extra})
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise TellineError(f"{url} answered something that is not XML: {body[:300]}") from exc
        if root.tag != "Response":
            raise TellineError(f"{url} answered <{root.tag}>, not <Response>")
        self._url, self._verbs = url, list(root)
        self.state = "in-progress" if self.state == "ringing" else self.state
        self._run()

    def _run(self) -> None:
        """Run verbs until one waits (a <Gather>, a conference) or the call ends."""
        while self._verbs:
            verb = self._verbs.pop(0)
            if verb.tag == "Say":
                self.heard.append((verb.text or "").strip())
            elif verb.tag in ("Play", "Pause"):
                continue
            elif verb.tag == "Gather":
                self.heard.extend((say.text or "").strip() for say in verb.iter("Say"))
                self._gather, self.state = verb, "gathering"
                return
            elif verb.tag == "Redirect":
                self._fetch(urljoin(self._url, (verb.text or "").strip()), verb.get("method", "POST"))
                return
            elif verb.tag == "Hangup":
                break
            elif verb.tag == "Dial":
                if self._dial(verb):
                    return
            else:
                raise NotImplementedError(f"<{verb.tag}> is not simulated")
        self.hang_up()  # <Hangup>, or nothing left to do: Twilio ends the call

    def _dial(self, dial: ET.Element) -> bool:
        """<Dial><Conference>: True when the call is now in the conference."""
        noun = dial.find("Conference")
        if noun is None:
            raise NotImplementedError("only <Dial><Conference> is simulated")
        self.conference = (noun.text or "").strip()
        participant = self.twilio.standin.enter_conference(
            self.sid, self.conference, muted=_true(noun.get("muted"), False),
            start_conference_on_enter=_true(noun.get("startConferenceOnEnter"), True),
            end_conference_on_exit=_true(noun.get("endConferenceOnExit"), False),
            max_participants=int(noun.get("maxParticipants", 250)), status_callback=noun.get("statusCallback"),
            status_callback_event=noun.get("statusCallbackEvent", ""), label=noun.get("participantLabel"))
        if participant is None:  # full: the <Dial> ends at once
            return False
        self.state, self._dial_action = "in-conference", dial.get("action")
        if self.waiting:
            self.heard.append(HOLD_MUSIC)  # waitUrl; none given: Twilio's own music
        return True

    def _dial_over(self) -> None:
        self.state = "in-progress"
        if self._dial_action:
            self._fetch(urljoin(self._url, self._dial_action), "POST", DialCallStatus="completed")
        else:
            self._run()

    def _listening(self) -> ET.Element:
        if self.state != "gathering" or self._gather is None:
            raise AssertionError(f"nobody is listening for keys on this call ({self.state}): {self.said()!r}")
        return self._gather


def _true(value: str | None, default: bool) -> bool:
    return default if value is None else value.lower() == "true"
