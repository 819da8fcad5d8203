"""A local stand-in for Twilio's 2010 REST API: messages, calls, conferences, participants.

Tests and the demo point the gateway at it (TWILIO_API_BASE_URL). It keeps everything in
memory, answers in Twilio's JSON shapes and error codes, records every API request, can be
told to misbehave (refuse, answer slowly, act and then drop the connection) and sends
signed message status callbacks.

Latency: every REST API request (not the /_standin/ control API) can be answered only after
a delay drawn uniformly from [latency - jitter, latency + jitter] (never below 0), as
Twilio's real API takes 0.1-0.3 s. The request is recorded, and acted on, when it arrives
(its `time` is what Twilio would meter); the delay comes after, without holding the lock,
so concurrent requests overlap rather than queue (the server runs a thread per
connection). An injected fault's delay adds to it. Default 0: tests stay fast. Set it with
StandIn(..., latency=0.2, jitter=0.05), serve(..., latency=, jitter=), `--latency 0.2
--jitter 0.05` on the command line, or at run time with set_latency() (StandInControl too:
POST /_standin/config {"latency": 0.2, "jitter": 0.05}); reset() restores the one it started with.

Conferences behave as Twilio's do, whoever changes them — a call's TwiML (incoming_call,
enter_conference, hang_up: what a call simulator drives) or the REST API (mute, kick, end):
a conference waits ("init") until a participant with startConferenceOnEnter arrives, ends
when an endConferenceOnExit participant or the last one leaves, and every change is a
signed conference status callback (SequenceNumber, Timestamp from `clock`) to the
statusCallback its first participant asked for, for the events it asked for. Callbacks go
out from a thread as they happen, or, with hold_callbacks, wait for deliver_callbacks().

In a thread:   with StandIn("token") as standin: ... standin.url ...
As a process:  python -m telline.twilio.standin --port 8099 --auth-token X [--latency 0.2 --jitter 0.05]
               then steered from elsewhere through /_standin/... (StandInControl).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import email.utils
import functools
import json
import logging
import math
import queue
import random
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
_ACCOUNT = f"/{API_VERSION}/Accounts/<account>"
_URLS = Map([Rule(f"{_ACCOUNT}/{path}.json", endpoint=name) for name, path in [
    ("messages", "Messages"), ("message", "Messages/<sid>"), ("calls", "Calls"), ("call", "Calls/<sid>"),
    ("conferences", "Conferences"), ("conference", "Conferences/<sid>"),
    ("participants", "Conferences/<conference>/Participants"),
    ("participant", "Conferences/<conference>/Participants/<sid>")]]
    + [Rule(f"/_standin/{path}", endpoint=f"ctl_{name}") for name, path in [
        ("requests", "requests"), ("faults", "faults"), ("reset", "reset"), ("messages", "messages"),
        ("status", "messages/<sid>/status"), ("config", "config")]])

# Every field of the spec's resources, so that clients find nulls rather than missing keys.
_FIELDS = {kind: fields.split() for kind, fields in {
    "message": "account_sid api_version body date_created date_sent date_updated direction error_code "
               "error_message from messaging_service_sid num_media num_segments price price_unit sid status "
               "subresource_uris to uri",
    "call": "account_sid answered_by api_version caller_name date_created date_updated direction duration "
            "end_time forwarded_from from from_formatted group_sid parent_call_sid phone_number_sid price "
            "price_unit queue_time sid start_time status subresource_uris to to_formatted trunk_sid uri",
    "conference": "account_sid api_version call_sid_ending_conference date_created date_updated friendly_name "
                  "reason_conference_ended region sid status subresource_uris uri",
    "participant": "account_sid call_sid call_sid_to_coach coaching conference_sid date_created date_updated "
                   "end_conference_on_exit hold label muted queue_time start_conference_on_enter status uri",
}.items()}
_PARTICIPANT_FLAGS = {"Muted": "muted", "Hold": "hold", "Coaching": "coaching",
                      "EndConferenceOnExit": "end_conference_on_exit"}
# statusCallbackEvent word -> the conference callbacks it asks for
_EVENT_SUBSCRIPTION = {"conference-start": "start", "conference-end": "end", "participant-join": "join",
                       "participant-leave": "leave", "participant-mute": "mute", "participant-unmute": "mute",
                       "participant-hold": "hold", "participant-unhold": "hold"}
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_GSM7 = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
         "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXTENSION = "\f^{}\\[~]|€"  # two septets each
_RECORDED_HEADERS = ("Content-Type", "User-Agent", "Accept", "X-Twilio-Client")
MAX_LATENCY = 60.0  # seconds; more is a mistake (a client's read timeout fires long before)


def check_latency(latency: Any, jitter: Any = 0.0) -> tuple[float, float]:
    """(latency, jitter) as floats, or ValueError saying what is wrong: each a number of seconds,
    0 to MAX_LATENCY. A jitter above the latency is allowed (the draw is clamped at 0)."""
    checked = []
    for name, value in (("latency", latency), ("jitter", jitter)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 <= value <= MAX_LATENCY:
            raise ValueError(f"{name} must be a number of seconds from 0 to {MAX_LATENCY:g}, not {value!r}")
        checked.append(float(value))
    return checked[0], checked[1]


@dataclasses.dataclass
class Fault:
    """Misbehave on the next `times` API requests (None: until cleared) matching method and path_suffix.

    status: refuse with this HTTP status and Twilio `code` instead of acting (nothing is created);
    delay:  wait this long before answering (long enough, and the client's read timeout fires);
    drop:   act, then close the connection without an answer: the client cannot know what happened.
    """
    status: int | None = None
    code: int | None = None
    message: str | None = None
    delay: float = 0.0
    drop: bool = False
    times: int | None = 1
    method: str | None = None
    path_suffix: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.path_suffix is None or path.endswith(self.path_suffix)))


@dataclasses.dataclass
class RecordedRequest:
    method: str
    path: str
    query: list  # (name, value) pairs, repeated names kept
    form: list
    headers: dict
    user: str | None  # the HTTP Basic user name: the account SID
    time: float
    status: int | None = None  # the status answered; None while pending or when dropped

    def __post_init__(self):  # pairs come back from JSON as lists
        self.query, self.form = [tuple(p) for p in self.query], [tuple(p) for p in self.form]

    def get(self, name: str, default=None):
        return next((value for key, value in self.form if key == name), default)

    def getlist(self, name: str) -> list:
        return [value for key, value in self.form if key == name]


class _ApiError(Exception):
    def __init__(self, status: int, code: int | None, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        return _json({"code": self.code, "message": self.message, "status": self.status,
                      "more_info": f"https://www.twilio.com/docs/errors/{self.code}"}, self.status)


class _FaultMethods:
    """fail / delay / drop over the subclass's add_fault(**fields): alike in-process and over HTTP.
    `match`: times=1, method=None, path_suffix=None (None matches anything)."""

    def add_fault(self, **fields: Any) -> Fault:
        raise NotImplementedError

    def fail(self, status: int, code: int | None = None, message: str | None = None, **match) -> Fault:
        return self.add_fault(status=status, code=code, message=message, **match)

    def delay(self, seconds: float, **match) -> Fault:
        return self.add_fault(delay=seconds, **match)

    def drop(self, **match) -> Fault:
        return self.add_fault(drop=True, **match)


class StandIn(_FaultMethods):
    """Twilio's REST API in memory: a WSGI app, which start() serves from a thread.

    account_sid None accepts any account whose SID is the Basic user name.
    auto_status: statuses each new message moves through, with callbacks, e.g. ("sent", "delivered").
    clock: what time it is for conference callbacks' Timestamp (a zone-aware datetime; default: now).
    latency, jitter: seconds each API answer waits, drawn from [latency - jitter, latency + jitter]
    (clamped at 0), after the request is recorded and acted on (see the module's docstring).
    """

    def __init__(self, auth_token: str, *, account_sid: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, auto_status=(), clock=None, latency: float = 0.0, jitter: float = 0.0):
        self.auth_token, self.account_sid, self.host, self.port = auth_token, account_sid, host, port
        self._initial_auto_status = tuple(auto_status)
        self._initial_latency = check_latency(latency, jitter)
        self._initial_clock = clock or _utcnow
        self._lock = threading.Lock()  # guards all the state; nothing slow runs under it
        self._wake = threading.Event()  # injected delays sleep on it: set, it cuts them short
        self._outbox: queue.Queue = queue.Queue()  # automatic callbacks (callables), in order
        self._server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self.reset()

    # --- running ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        self._server = make_server(self.host, self.port, self, threaded=True, request_handler=_Handler)
        self.port = self._server.port  # the one the OS chose for port 0; a restart reuses it
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}),
                         threading.Thread(target=self._deliver_outbox)]
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._cut_delays()
            self._outbox.put(None)
            for thread in self._threads:
                thread.join(timeout=5)

    def __enter__(self) -> StandIn:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every resource, request, fault and held callback; restore auto_status, clock,
        hold_callbacks and latency; cut pending delays (latency too) short."""
        with self._lock:
            self._requests: list[RecordedRequest] = []
            self._faults: list[Fault] = []
            # by SID
            self._messages: dict[str, dict[str, Any]] = {}
            self._calls: dict[str, dict[str, Any]] = {}
            self._conferences: dict[str, dict[str, Any]] = {}
            self._participants: dict[str, dict] = {}  # by call SID: a call is in one conference at most
            self._status_callbacks: dict[str, str] = {}  # message SID -> its StatusCallback URL
            # By conference SID, what is not a resource field: callback URL and events, sequence, size.
            self._conference_state: dict[str, dict] = {}
            self._twiml_calls: set[str] = set()  # in a conference by their TwiML: their call goes on after it
            self._conference_events: list[dict] = []  # every conference event, subscribed or not
            self._held: list[tuple[str, dict]] = []  # callbacks waiting for deliver_callbacks()
            self._sent: list[dict] = []  # callbacks POSTed, and the answer
            self.auto_status = self._initial_auto_status
            self.latency, self.jitter = self._initial_latency
            self.clock = self._initial_clock
            self.hold_callbacks = False
            self._cut_delays()

    def _cut_delays(self) -> None:
        self._wake.set()
        self._wake = threading.Event()  # for the delays still to come

    # --- what tests look at and steer ---------------------------------------------
    def requests(self, method: str | None = None, path_suffix: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if (method is None or r.method == method.upper())
                    and (path_suffix is None or r.path.endswith(path_suffix))]

    def messages_sent(self) -> list[dict]:
        """Every message created, oldest first, as the API shows it — those whose answer was dropped too."""
        with self._lock:
            return [dict(message) for message in self._messages.values()]

    def add_fault(self, **fields) -> Fault:
        fault = Fault(**fields)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_auto_status(self, *statuses: str) -> None:
        self.auto_status = statuses

    def set_latency(self, latency: float, jitter: float = 0.0) -> None:
        """From the next request on, answer after [latency - jitter, latency + jitter] seconds (≥ 0)."""
        latency, jitter = check_latency(latency, jitter)
        with self._lock:
            self.latency, self.jitter = latency, jitter

    def config(self) -> dict:
        with self._lock:
            return {"auto_status": list(self.auto_status), "latency": self.latency, "jitter": self.jitter}

    def _draw_latency(self) -> float:
        # under the lock: latency and jitter change together
        if not self.jitter:
            return self.latency
        return max(0.0, random.uniform(self.latency - self.jitter, self.latency + self.jitter))

    def send_status(self, sid: str, status: str, error_code: int | None = None) -> int | None:
        """Move a message to `status` and POST the signed status callback Twilio would, if one was asked.
        Returns the receiver's HTTP status (None: no StatusCallback)."""
        with self._lock:
            message, now = self._messages[sid], _rfc2822()
            message.update(status=status, error_code=error_code, date_updated=now)
            if status in ("sent", "delivered", "undelivered", "read") and not message["date_sent"]:
                message["date_sent"] = now
            url = self._status_callbacks.get(sid)
            params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                      "AccountSid": message["account_sid"], "From": message["from"], "To": message["to"],
                      "ApiVersion": API_VERSION}
        if url is None:
            return None
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self._post_signed(url, params)

    def wait_callbacks(self, timeout: float = 5.0) -> bool:
        """Wait until the automatic callbacks (message statuses, conference events unless held) are
        all delivered; False on timeout."""
        with self._outbox.all_tasks_done:
            return self._outbox.all_tasks_done.wait_for(lambda: not self._outbox.unfinished_tasks, timeout)

    def deliver_callbacks(self, post=None) -> list[int]:
        """Deliver the held conference callbacks, oldest first, from the calling thread (those that
        a delivery causes too). post(url, params, headers) -> HTTP status sends each one; default:
        over HTTP. Returns the receiver's statuses."""
        statuses: list[int] = []
        while True:
            with self._lock:
                if not self._held:
                    return statuses
                url, params = self._held.pop(0)
            statuses.append(self._post_signed(url, params, post))

    def callbacks_sent(self) -> list[dict]:
        """Every callback POSTed so far (message statuses, conference events), oldest first:
        url, params, and status — the receiver's HTTP status, None when it could not be reached."""
        with self._lock:
            return [dict(sent) for sent in self._sent]

    def _post_signed(self, url: str, params: dict, post=None) -> int:
        status = None
        try:
            status = (post or _http_post)(url, params, self._signed_headers(url, params))
        finally:
            with self._lock:
                self._sent.append({"url": url, "params": params, "status": status})
        return status

    def _signed_headers(self, url: str, params: dict) -> dict:
        return {"X-Twilio-Signature": RequestValidator(self.auth_token).compute_signature(url, params),
                "User-Agent": "TwilioProxy/1.1"}

    def _deliver_outbox(self) -> None:
        # One thread for all, so that callbacks keep their order.
        while (item := self._outbox.get()) is not None:
            try:
                item()
            except (requests.RequestException, KeyError) as exc:  # KeyError: reset() forgot the message
                log.warning("callback %s not delivered: %s", item, exc)
            finally:
                self._outbox.task_done()
        self._outbox.task_done()

    # --- the voice side: what Twilio's engine does as it runs a call's TwiML ------------
    def incoming_call(self, from_: str, to: str, *, account_sid: str | None = None) -> str:
        """A phone calls one of the account's numbers: a new inbound call, ringing. Returns its SID."""
        account = account_sid or self.account_sid
        if account is None:
            raise ValueError("this stand-in accepts any account: say which one is called")
        with self._lock:
            return self._new_call(account, from_, to, "ringing", direction="inbound")["sid"]

    def enter_conference(self, call_sid: str, name: str, *, muted: bool = False,
                         start_conference_on_enter: bool = True, end_conference_on_exit: bool = False,
                         max_participants: int = 250, status_callback: str | None = None,
                         status_callback_event: str = "", label: str | None = None) -> dict | None:
        """<Dial><Conference>: the call enters the conference of that name (waiting or in progress),
        or a new one. Returns the participant, or None when the conference is full (the <Dial> ends)."""
        with self._lock:
            call = self._calls[call_sid]
            if call_sid in self._participants or call["status"] in ("completed", "canceled"):
                raise ValueError(f"call {call_sid} is already in a conference, or over")
            conference = self._conference_named(call["account_sid"], name)
            state = self._conference_state[conference["sid"]]
            # The first participant's settings hold for the conference (unverified: all of telline's agree).
            if state["callback"] is None and status_callback:
                state.update(callback=status_callback, events=frozenset(status_callback_event.split()))
            state["max"] = state["max"] or max_participants
            if sum(p["conference_sid"] == conference["sid"] for p in self._participants.values()) >= state["max"]:
                return None
            call.update(status="in-progress", date_updated=_rfc2822())
            self._twiml_calls.add(call_sid)
            return dict(self._join(conference, call, muted=muted, start=start_conference_on_enter,
                                   end=end_conference_on_exit, label=label))

    def hang_up(self, call_sid: str) -> None:
        """The caller hangs up (or the TwiML ran out): out of its conference, if in one; the call ends."""
        with self._lock:
            if call_sid in self._participants:
                self._leave(call_sid, "left")
            self._twiml_calls.discard(call_sid)
            call = self._calls[call_sid]
            if call["status"] not in ("completed", "canceled"):
                call.update(status="completed", end_time=_rfc2822(), date_updated=_rfc2822())

    def call(self, sid: str) -> dict:
        with self._lock:
            return dict(self._calls[sid])

    def participant(self, call_sid: str) -> dict | None:
        """The call's participant while it is in a conference, else None."""
        with self._lock:
            found = self._participants.get(call_sid)
            return dict(found) if found else None

    def conference_named(self, name: str) -> dict | None:
        """The newest conference of that friendly name, in any status."""
        with self._lock:
            found = [c for c in self._conferences.values() if c["friendly_name"] == name]
            return dict(found[-1]) if found else None

    def participants_in(self, conference_sid: str) -> list[dict]:
        with self._lock:
            return [dict(p) for p in self._participants.values() if p["conference_sid"] == conference_sid]

    def conference_events(self, conference_sid: str | None = None) -> list[dict]:
        """Every conference status callback's parameters, in order — those nobody subscribed to too."""
        with self._lock:
            return [dict(e) for e in self._conference_events
                    if conference_sid is None or e["ConferenceSid"] == conference_sid]

    # --- WSGI ---------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            endpoint, args = _URLS.bind_to_environ(environ).match()
        except NotFound:
            response = _not_found(request.path).response()
        else:
            handler = getattr(self, f"_{endpoint}_{request.method.lower()}", None)
            if endpoint.startswith("ctl_"):
                response = handler(request, **args) if handler else _json({"error": "method not allowed"}, 405)
            else:
                response = self._api(handler, request, args)
        return response(environ, start_response)

    def _api(self, handler, request: Request, args: Mapping[str, Any]) -> Response:
        auth = request.authorization
        record = RecordedRequest(request.method, request.path, list(request.args.items(multi=True)),
                                 list(request.form.items(multi=True)),
                                 {k: request.headers[k] for k in _RECORDED_HEADERS if k in request.headers},
                                 auth.username if auth else None,
                                 request.environ.get("standin.received_at") or time.time())
        fault = None
        with self._lock:
            self._requests.append(record)
            try:
                if (auth is None or auth.type != "basic" or auth.username != args["account"]
                        or auth.password != self.auth_token or self.account_sid not in (None, args["account"])):
                    raise _ApiError(401, 20003, "Authenticate")
                fault = self._take_fault(request.method, request.path)
                if fault and fault.status:
                    raise _ApiError(fault.status, fault.code, fault.message or "Fault injected by the stand-in")
                if handler is None:
                    raise _ApiError(405, 20004, "Method not allowed")
                response = handler(request, **args)
            except _ApiError as exc:
                response = exc.response()
            wake = self._wake
            delay = self._draw_latency() + (fault.delay if fault else 0.0)
        if delay > 0:  # Twilio's own latency, and an injected delay on top; reset() and stop() cut it short
            wake.wait(delay)
        if fault and fault.drop:  # Werkzeug's write then fails on the closed socket, and it gives up quietly
            request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        else:
            record.status = response.status_code
        return response

    def _take_fault(self, method: str, path: str) -> Fault | None:
        fault = next((f for f in self._faults if f.matches(method, path)), None)
        if fault and fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
        return fault

    # --- messages -----------------------------------------------------------------
    def _messages_post(self, request, account):
        form = request.form
        to, from_, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body, media = form.get("Body", ""), form.getlist("MediaUrl")
        if not to:
            raise _ApiError(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            raise _ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not (from_ or service):
            raise _ApiError(400, 21603, "A 'From' phone number is required.")
        if not (body or media):
            raise _ApiError(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise _ApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        message = self._create(
            self._messages, "message", "MM" if media else "SM", account, "Messages", ["Media", "Feedback"],
            body=body, direction="outbound-api", to=to, messaging_service_sid=service,
            num_media=str(len(media)), num_segments=str(_segments(body)), price_unit="USD",
            status="queued" if from_ else "accepted", **{"from": from_})
        if form.get("StatusCallback"):
            self._status_callbacks[message["sid"]] = form["StatusCallback"]
        for status in self.auto_status:
            self._outbox.put(functools.partial(self.send_status, message["sid"], status))
        return _json(message, 201)

    def _messages_get(self, request, account):
        found = _matching(self._messages, account, request.args, To="to", From="from")
        return _page(request, "messages", [m for m in found if _sent_within(m, request.args)])

    def _message_get(self, request, account, sid):
        return _json(_find(self._messages, sid, account, request.path))

    # --- calls --------------------------------------------------------------------
    def _calls_post(self, request, account):
        form = _require_endpoints(request.form)
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            raise _ApiError(400, 21205, "Url parameter is required.")
        return _json(self._new_call(account, form["From"], form["To"], "queued"), 201)

    def _calls_get(self, request, account):
        found = _matching(self._calls, account, request.args, To="to", From="from", Status="status")
        return _page(request, "calls", found)

    def _call_get(self, request, account, sid):
        return _json(_find(self._calls, sid, account, request.path))

    def _call_post(self, request, account, sid):
        call = _find(self._calls, sid, account, request.path)
        call["date_updated"] = _rfc2822()
        if request.form.get("Status") in ("completed", "canceled"):
            if sid in self._participants:
                self._leave(sid, "left")
            call.update(status=request.form["Status"], end_time=_rfc2822())
        return _json(call)  # a new Url or Twiml is taken as is: no TwiML runs here

    def _new_call(self, account, from_, to, status, direction="outbound-api"):
        return self._create(self._calls, "call", "CA", account, "Calls", ["Recordings"], direction=direction,
                            from_formatted=from_, to=to, to_formatted=to, status=status, price_unit="USD",
                            queue_time="0", **{"from": from_})

    # --- conferences and participants ---------------------------------------------
    def _conferences_get(self, request, account):
        found = _matching(self._conferences, account, request.args, FriendlyName="friendly_name", Status="status")
        return _page(request, "conferences", found)

    def _conference_get(self, request, account, sid):
        return _json(_find(self._conferences, sid, account, request.path))

    def _conference_post(self, request, account, sid):
        conference = _find(self._conferences, sid, account, request.path)
        conference["date_updated"] = _rfc2822()
        if request.form.get("Status") == "completed" and conference["status"] != "completed":
            self._end(conference, "conference-ended-via-api")
        return _json(conference)  # an AnnounceUrl is taken: nobody listens here

    def _participants_post(self, request, account, conference):
        form = _require_endpoints(request.form)
        conference = self._conference_for(account, conference, request.path)
        state = self._conference_state[conference["sid"]]
        if state["callback"] is None and form.get("ConferenceStatusCallback"):
            events = " ".join(form.getlist("ConferenceStatusCallbackEvent")).split()
            state.update(callback=form["ConferenceStatusCallback"], events=frozenset(events))
        call = self._new_call(account, form["From"], form["To"], "in-progress")
        participant = self._join(conference, call, muted=_bool(form.get("Muted")),
                                 start=_bool(form.get("StartConferenceOnEnter"), True),
                                 end=_bool(form.get("EndConferenceOnExit")), label=form.get("Label"),
                                 coaching=_bool(form.get("Coaching")))
        # No phone rings here: the callee is connected at once, though the answer says "queued" as Twilio's does.
        return _json({**participant, "status": "queued"}, 201)

    def _participants_get(self, request, account, conference):
        sid = _find(self._conferences, conference, account, request.path)["sid"]
        found = _matching(self._participants, account, request.args, Muted="muted", Hold="hold")
        return _page(request, "participants", [p for p in found if p["conference_sid"] == sid])

    def _participant_get(self, request, account, conference, sid):
        return _json(self._participant(account, conference, sid, request.path))

    def _participant_post(self, request, account, conference, sid):
        participant = self._participant(account, conference, sid, request.path)
        before = dict(participant)
        participant.update({field: _bool(request.form[key]) for key, field in _PARTICIPANT_FLAGS.items()
                            if key in request.form}, date_updated=_rfc2822())
        for field, (on, off) in (("muted", ("participant-mute", "participant-unmute")),
                                 ("hold", ("participant-hold", "participant-unhold"))):
            if participant[field] != before[field]:  # a change is an event; asking again is not
                self._emit(self._conferences[participant["conference_sid"]], on if participant[field] else off,
                           participant)
        return _json(participant)  # HoldUrl, AnnounceUrl... are taken, and nothing plays

    def _participant_delete(self, request, account, conference, sid):
        self._participant(account, conference, sid, request.path)
        self._leave(sid, "kicked")
        return Response(status=204)

    def _conference_for(self, account, ref, path):
        """By SID; or by friendly name, as Twilio allows here: the one waiting or in progress, or a new one."""
        if re.fullmatch(r"CF[0-9a-fA-F]{32}", ref):
            return _find(self._conferences, ref, account, path)
        return self._conference_named(account, ref)

    def _conference_named(self, account, name):
        running = [c for c in self._conferences.values() if (c["account_sid"], c["friendly_name"]) == (account, name)
                   and c["status"] in ("init", "in-progress")]
        if running:
            return running[0]
        conference = self._create(self._conferences, "conference", "CF", account, "Conferences",
                                  ["Participants", "Recordings"], friendly_name=name, region="us1", status="init")
        self._conference_state[conference["sid"]] = {"callback": None, "events": frozenset(), "sequence": 0,
                                                     "max": None}
        return conference

    def _join(self, conference, call, *, muted, start, end, label, coaching=False):
        """The call is in: participant-join; a conference waiting for a participant like this one starts."""
        participant = self._participants[call["sid"]] = _resource(
            "participant", account_sid=call["account_sid"], call_sid=call["sid"], conference_sid=conference["sid"],
            date_created=_rfc2822(), date_updated=_rfc2822(), label=label, muted=muted, hold=False,
            coaching=coaching, start_conference_on_enter=start, end_conference_on_exit=end, queue_time="0",
            status="connected", uri=conference["uri"].replace(".json", f"/Participants/{call['sid']}.json"))
        # participant-join at once, even into a conference still waiting (unverified: Twilio may hold it
        # back until conference-start; telline's roster then counts attendance from a later time).
        self._emit(conference, "participant-join", participant)
        if start and conference["status"] == "init":  # those who waited (hold music) now hear each other
            conference.update(status="in-progress", date_updated=_rfc2822())
            self._emit(conference, "conference-start")
        return participant

    def _participant(self, account, conference_sid, call_sid, path):
        participant = self._participants.get(call_sid)
        if not participant or (participant["conference_sid"], participant["account_sid"]) != (conference_sid, account):
            raise _not_found(path)
        return participant

    def _leave(self, call_sid, how):
        """A participant leaves (how: left, kicked), and the conference ends as Twilio's would. Its call
        ends — unless it was kicked and its TwiML goes on after the <Dial>."""
        participant = self._participants.pop(call_sid)
        conference = self._conferences[participant["conference_sid"]]
        self._out_of_conference(conference, participant, "participant_hung_up" if how == "left"
                                else "participant_kicked", call_over=how == "left")
        if participant["end_conference_on_exit"]:
            self._end(conference, f"participant-with-end-conference-on-exit-{how}", call_sid)
        elif not any(p["conference_sid"] == conference["sid"] for p in self._participants.values()):
            self._end(conference, f"last-participant-{how}", call_sid)

    def _end(self, conference, reason, ending_call_sid=None):
        """Everyone still in leaves (participant-leave each), then conference-end."""
        for call_sid, participant in list(self._participants.items()):
            if participant["conference_sid"] == conference["sid"]:
                del self._participants[call_sid]
                self._out_of_conference(conference, participant, reason.replace("-", "_"), call_over=False)
        conference.update(status="completed", reason_conference_ended=reason,
                          call_sid_ending_conference=ending_call_sid, date_updated=_rfc2822())
        self._emit(conference, "conference-end", ReasonConferenceEnded=reason,
                   CallSidEndingConference=ending_call_sid)

    def _out_of_conference(self, conference, participant, reason, *, call_over):
        call = self._calls[participant["call_sid"]]
        if call_over or participant["call_sid"] not in self._twiml_calls:  # nothing more for it to do
            call.update(status="completed", end_time=_rfc2822(), date_updated=_rfc2822())
        # Values as Twilio's docs list them (unverified); telline does not read them.
        self._emit(conference, "participant-leave", participant, ReasonParticipantLeft=reason,
                   ParticipantCallStatus=call["status"])

    def _emit(self, conference, event, participant=None, **extra):
        """One conference status callback: numbered, stamped, recorded; sent if its event was asked for."""
        state = self._conference_state[conference["sid"]]
        state["sequence"] += 1
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        params = {"AccountSid": conference["account_sid"], "ConferenceSid": conference["sid"],
                  "FriendlyName": conference["friendly_name"], "StatusCallbackEvent": event,
                  "SequenceNumber": str(state["sequence"]), "Timestamp": email.utils.format_datetime(now)}
        if participant is not None:
            params.update({key: str(participant[field]).lower() for key, field in _PARTICIPANT_FLAGS.items()},
                          CallSid=participant["call_sid"],
                          StartConferenceOnEnter=str(participant["start_conference_on_enter"]).lower())
            if participant["label"]:
                params["ParticipantLabel"] = participant["label"]
        params.update({key: value for key, value in extra.items() if value is not None})
        self._conference_events.append(params)
        url = state["callback"]
        if url is None or _EVENT_SUBSCRIPTION[event] not in state["events"]:
            return
        if self.hold_callbacks:
            self._held.append((url, params))
        else:
            self._outbox.put(functools.partial(self._post_signed, url, params))

    def _create(self, store, kind, prefix, account, collection, subresources, **values) -> dict:
        sid, now = prefix + secrets.token_hex(16), _rfc2822()
        uri = f"/{API_VERSION}/Accounts/{account}/{collection}/{sid}.json"
        links = {name.lower(): uri.replace(".json", f"/{name}.json") for name in subresources}
        store[sid] = _resource(kind, sid=sid, account_sid=account, api_version=API_VERSION, date_created=now,
                               date_updated=now, uri=uri, subresource_uris=links, **values)
        return store[sid]

    # --- control API --------------------------------------------------------------
    def _ctl_requests_get(self, request):
        found = self.requests(request.args.get("method"), request.args.get("path_suffix"))
        return _json({"requests": [dataclasses.asdict(r) for r in found]})

    def _ctl_faults_post(self, request):
        return _json({"fault": dataclasses.asdict(self.add_fault(**request.get_json()))}, 201)

    def _ctl_faults_delete(self, request):
        self.clear_faults()
        return Response(status=204)

    def _ctl_reset_post(self, request):
        self.reset()
        return Response(status=204)

    def _ctl_messages_get(self, request):
        return _json({"messages": self.messages_sent()})

    def _ctl_status_post(self, request, sid):
        if sid not in self._messages:
            return _json({"error": f"no message {sid}"}, 404)
        asked = request.get_json()
        try:
            return _json({"callback_status": self.send_status(sid, asked["status"], asked.get("error_code"))})
        except requests.RequestException as exc:
            return _json({"error": f"status callback not delivered: {exc}"}, 502)

    def _ctl_config_get(self, request):
        return _json(self.config())

    def _ctl_config_post(self, request):
        """Any of auto_status (a list of statuses), latency and jitter (seconds); what is left out stays."""
        asked = request.get_json(silent=True)
        if not isinstance(asked, dict):
            return _json({"error": "expected a JSON object with auto_status, latency or jitter"}, 400)
        unknown = set(asked) - {"auto_status", "latency", "jitter"}
        if unknown:
            return _json({"error": f"unknown settings {sorted(unknown)}: auto_status, latency, jitter"}, 400)
        statuses = asked.get("auto_status", self.auto_status)
        if not isinstance(statuses, (list, tuple)) or not all(isinstance(x, str) for x in statuses):
            return _json({"error": f"auto_status must be a list of statuses, not {statuses!r}"}, 400)
        try:
            latency, jitter = check_latency(asked.get("latency", self.latency), asked.get("jitter", self.jitter))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        self.set_auto_status(*statuses)
        self.set_latency(latency, jitter)
        return Response(status=204)


class StandInControl(_FaultMethods):
    """Steer a stand-in running elsewhere (another process) through its control API."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def _call(self, method: str, path: str, **kwargs):
        answer = requests.request(method, f"{self.base_url}/_standin/{path}", timeout=self.timeout, **kwargs)
        if answer.status_code == 400:  # a setting the stand-in refused: its sentence, as in-process
            raise ValueError(answer.json().get("error", answer.text))
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def requests(self, method: str | None = None, path_suffix: str | None = None) -> list[RecordedRequest]:
        found = self._call("GET", "requests", params={"method": method, "path_suffix": path_suffix})
        return [RecordedRequest(**r) for r in found["requests"]]

    def messages_sent(self) -> list[dict]:
        return self._call("GET", "messages")["messages"]

    def add_fault(self, **fields) -> Fault:
        return Fault(**self._call("POST", "faults", json=fields)["fault"])

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def reset(self) -> None:
        self._call("POST", "reset")

    def set_auto_status(self, *statuses: str) -> None:
        self._call("POST", "config", json={"auto_status": statuses})

    def set_latency(self, latency: float, jitter: float = 0.0) -> None:
        self._call("POST", "config", json={"latency": latency, "jitter": jitter})

    def config(self) -> dict:
        return self._call("GET", "config")

    def send_status(self, sid: str, status: str, error_code: int | None = None) -> int | None:
        body = {"status": status, "error_code": error_code}
        return self._call("POST", f"messages/{sid}/status", json=body)["callback_status"]


class _Handler(WSGIRequestHandler):
    # Keep-alive, as Twilio's API has: a client sends one request after another on one connection, and
    # a send is not a new connection (and a new thread here) each time.
    protocol_version = "HTTP/1.1"

    def parse_request(self) -> bool:
        # The moment the request line came in, before headers and form are parsed: when Twilio would
        # meter it (a busy stand-in may take a few ms more to get to _api).
        self.received_at = time.time()
        return bool(super().parse_request())

    def make_environ(self) -> dict:
        environ = super().make_environ()
        environ["standin.received_at"] = getattr(self, "received_at", None)
        return environ

    def log(self, type: str, message: str, *args) -> None:  # through logging, not straight to stderr
        log.log(logging.INFO if type == "info" else logging.WARNING, message, *args)


# --- helpers --------------------------------------------------------------------------
def _json(data, status: int = 200) -> Response:
    return Response(json.dumps(data), status, mimetype="application/json")


def _not_found(path: str) -> _ApiError:
    return _ApiError(404, 20404, f"The requested resource {path} was not found")


def _find(store: dict, sid: str, account: str, path: str) -> dict:
    resource = store.get(sid)
    if resource is None or resource["account_sid"] != account:
        raise _not_found(path)
    return resource


def _matching(store: dict, account: str, args, **filters) -> list[dict]:
    """The account's resources, newest first, equal to the query on each filter (parameter=field)."""
    def text(value):
        return str(value).lower() if isinstance(value, bool) else value
    return [r for r in reversed(store.values()) if r["account_sid"] == account
            and all(param not in args or text(r[field]) == args[param] for param, field in filters.items())]


def _page(request: Request, key: str, items: list) -> Response:
    """Twilio's list shape; clients follow next_page_uri."""
    size, page = int(request.args.get("PageSize", 50)), int(request.args.get("Page", 0))
    query = [(k, v) for k, v in request.args.items(multi=True) if k not in ("Page", "PageSize", "PageToken")]

    def uri(number):
        return f"{request.path}?{urlencode(query + [('PageSize', size), ('Page', number)])}"
    chunk = items[page * size:(page + 1) * size]
    return _json({key: chunk, "page": page, "page_size": size, "start": page * size,
                  "end": page * size + max(len(chunk) - 1, 0), "uri": uri(page), "first_page_uri": uri(0),
                  "next_page_uri": uri(page + 1) if (page + 1) * size < len(items) else None,
                  "previous_page_uri": uri(page - 1) if page else None})


def _require_endpoints(form):
    if not form.get("To"):
        raise _ApiError(400, 21201, "No 'To' number is specified")
    if not form.get("From"):
        raise _ApiError(400, 21213, "No 'From' number is specified")
    return form


def _resource(kind: str, **values) -> dict:
    return dict.fromkeys(_FIELDS[kind]) | values


def _rfc2822() -> str:
    return email.utils.format_datetime(datetime.now(UTC).replace(microsecond=0))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _http_post(url: str, params: dict, headers: dict) -> int:
    return requests.post(url, data=params, timeout=10, headers=headers).status_code


def _bool(value: str | None, default: bool = False) -> bool:
    return default if value is None else value.lower() == "true"


def _segments(body: str) -> int:
    if all(c in _GSM7 or c in _GSM7_EXTENSION for c in body):
        units, single, part = sum(2 if c in _GSM7_EXTENSION else 1 for c in body), 160, 153
    else:  # one character outside GSM-7 makes the whole message UCS-2, counted in UTF-16 units
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


def _sent_within(message: dict, args) -> bool:
    """DateSent (equal), DateSent> (on or after), DateSent< (on or before): a whole UTC day or a moment.
    A message not sent yet counts from its creation (lenient: what Twilio does there is unverified)."""
    sent = email.utils.parsedate_to_datetime(message["date_sent"] or message["date_created"])
    for key, keep in (("DateSent", lambda a, b: a == b), ("DateSent>", lambda a, b: a >= b),
                      ("DateSent<", lambda a, b: a <= b)):
        value = args.get(key)
        if value is None:
            continue
        if len(value) == 10:
            kept = keep(sent.date(), date.fromisoformat(value))
        else:
            bound = datetime.fromisoformat(value)
            kept = keep(sent, bound if bound.tzinfo else bound.replace(tzinfo=UTC))
        if not kept:
            return False
    return True


# --- as a process ---------------------------------------------------------------------
def serve(host: str = "127.0.0.1", port: int = 8099, auth_token: str = "", account_sid: str | None = None,
          auto_status=(), latency: float = 0.0, jitter: float = 0.0) -> None:
    """Serve a stand-in until Ctrl-C or SIGTERM. Prints its URL first, for whoever started it."""
    check_latency(latency, jitter)  # before the signal handler and the socket: a bad value is one sentence
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly, as on Ctrl-C
    with StandIn(auth_token, account_sid=account_sid, host=host, port=port, auto_status=auto_status,
                 latency=latency, jitter=jitter) as standin:
        print(f"Twilio stand-in listening on {standin.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m telline.twilio.standin",
                                     description="A local stand-in for Twilio's REST API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0: any free port (printed at start)")
    parser.add_argument("--auth-token", required=True, help="checked on requests, signs callbacks")
    parser.add_argument("--account-sid", help="accept only this account (default: any)")
    parser.add_argument("--auto-status", default="", metavar="STATUS,...",
                        help="move each new message through these statuses, e.g. sent,delivered")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="answer each API request after this long (Twilio's: 0.1-0.3 s; default 0)")
    parser.add_argument("--jitter", type=float, default=0.0, metavar="SECONDS",
                        help="spread the latency uniformly by this much either way (default 0)")
    args = parser.parse_args(argv)
    try:
        check_latency(args.latency, args.jitter)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.host, args.port, args.auth_token, args.account_sid, [s for s in args.auto_status.split(",") if s],
          args.latency, args.jitter)


if __name__ == "__main__":
    main()
