"""Voice webhooks: parse Twilio's form, call the domain, render TwiML. Nothing else.

  POST /twilio/voice                   an incoming call (configured on the number)
  POST /twilio/voice/code              the digits a caller typed (or none: the prompt timed out)
  POST /twilio/voice/remind            "press 1 for a text reminder"
  POST /twilio/voice/conference        conference status callbacks (the live roster)
  POST /twilio/voice/announcement/<id> what the room hears when a host announces something
  POST /twilio/voice/name              back from recording a caller's first name (option)
  POST /twilio/voice/name-announcement/<call id>  what the room hears when that caller joins
  POST /twilio/voice/dialout/answer    a member we dialled picked up ("press 1 to join")
  POST /twilio/voice/dialout/join      …and pressed a key
  POST /twilio/voice/dialout/status    …and the call ended (unreached: a text instead)

A fault behind any of them (the database, Redis, a bug) is answered, never a bare 500: a caller
hears a short apology in the line's language (_fault below).
"""

from __future__ import annotations

import logging
from typing import Literal, get_args

import redis
from flask import Blueprint, Response, abort, current_app, request
from werkzeug.exceptions import HTTPException

from telline import db, metrics, phone, request_redis
from telline.texts import say_language, t
from telline.twilio import form, twiml
from telline.twilio.form import INT32_MAX
from telline.voice import dialout, roster
from telline.voice.directory import directory
from telline.voice.incoming import (
    Answer,
    AnswerKind,
    dialled_answered,
    dialled_pressed,
    enter_code,
    name_recorded,
    receive_call,
)
from telline.voice.lockout import Lockout
from telline.voice.reminders import Outcome, request_reminder

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__)


def _twiml(xml: str) -> Response:
    return Response(xml, content_type="text/xml; charset=utf-8")


def _base_url() -> str:
    """Where Twilio reaches us: TELLINE_PUBLIC_URL, else the URL this request came to."""
    return current_app.config["TELLINE"].public_url or request.url_root.rstrip("/")


# What Twilio says a call is doing; anything else in CallStatus is read as absent.
CallStatus = Literal["queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"]
CALL_STATUSES: frozenset[CallStatus] = frozenset(get_args(CallStatus))


def _call_sid() -> str:
    return form.sid("CallSid", ("CA",), "voice")


def _call_status() -> CallStatus | None:
    return form.choice("CallStatus", CALL_STATUSES)


def _lockout() -> Lockout:
    return Lockout(request_redis.connection(), current_app.config["TELLINE"].secret_key)


@bp.post("/voice")
def incoming_call() -> Response:
    answer = receive_call(db.session(), call_sid=_call_sid(), from_raw=form.text("From"), to_raw=form.text("To"),
                          status=_call_status(), base_url=_base_url())
    return _render(answer)


@bp.post("/voice/code")
def code_entered() -> Response:
    answer = enter_code(db.session(), call_sid=_call_sid(), digits=form.text("Digits"), from_raw=form.text("From"),
                        to_raw=form.text("To"), status=_call_status(), base_url=_base_url(), lockout=_lockout())
    return _render(answer)


@bp.post("/voice/remind")
def reminder_requested() -> Response:
    language, outcome = request_reminder(db.session(), call_sid=_call_sid(), digits=form.text("Digits"))
    metrics.WEBHOOKS.labels(route="voice", outcome=f"reminder_{outcome}").inc()
    return _twiml(twiml.say_then_hangup(t(_REMINDER_SAYS[outcome], language), say_language(language)))


@bp.post("/voice/conference")
def conference_event() -> Response:
    sequence = form.whole_number("SequenceNumber")
    if sequence is None:
        form.refuse("conference", "SequenceNumber missing or not a number")
    event = roster.ConferenceEvent(
        conference_sid=form.sid("ConferenceSid", ("CF",), "conference"),
        friendly_name=(form.text("FriendlyName") or "").strip(),
        kind=(form.text("StatusCallbackEvent") or "").strip(),
        sequence=sequence, call_sid=form.optional_sid("CallSid", ("CA",), "conference"),
        muted=form.text("Muted"), hold=form.text("Hold"), timestamp=form.text("Timestamp"),
        reason=(form.text("ReasonConferenceEnded") or "").strip()[:64] or None)
    if not event.kind:
        form.refuse("conference", "StatusCallbackEvent missing")
    outcome = roster.apply(db.session(), event)
    metrics.WEBHOOKS.labels(route="conference", outcome=outcome).inc()
    return Response(status=204)


# Ids past the columns' range match no route (404) instead of reaching the database.
@bp.post(f"/voice/announcement/<int(max={INT32_MAX}):announcement_id>")
def announcement(announcement_id: int) -> Response:
    found = roster.announcement_text(db.session(), announcement_id)
    if found is None:
        abort(404)
    text, language = found
    return _twiml(twiml.say_sentence(text, say_language(language)))


@bp.post("/voice/name")
def name_done() -> Response:
    return _render(name_recorded(db.session(), call_sid=_call_sid(), recording_url=form.text("RecordingUrl"),
                                 base_url=_base_url()))


@bp.post(f"/voice/name-announcement/<int(max={INT32_MAX}):call_id>")
def name_announcement(call_id: int) -> Response:
    found = roster.name_recording(db.session(), call_id)
    if found is None:
        abort(404)
    url, language = found
    return _twiml(twiml.play_name(url, t("voice.has_joined", language), say_language(language)))


@bp.post("/voice/dialout/answer")
def dialout_answered() -> Response:
    return _render(dialled_answered(db.session(), call_sid=_call_sid()))


@bp.post("/voice/dialout/join")
def dialout_pressed() -> Response:
    return _render(dialled_pressed(db.session(), call_sid=_call_sid(), digits=form.text("Digits"),
                                   base_url=_base_url()))


@bp.post("/voice/dialout/status")
def dialout_status() -> Response:
    texted = dialout.call_ended(db.session(), call_sid=_call_sid(), status=_call_status() or "completed")
    metrics.WEBHOOKS.labels(route="dialout", outcome="texted" if texted else "reached").inc()
    return Response(status=204)


# What a caller hears after "press 1 for a reminder".
_REMINDER_SAYS: dict[Outcome, str] = {"set": "voice.reminder_set", "not_set": "voice.goodbye",
                                      "texts_stopped": "voice.reminder_texts_stopped"}


# Callbacks nobody hears, and what a whole room hears: on a fault, no apology there.
_CALLBACKS = {"conference_event", "dialout_status"}
_ROOM_HEARS = {"announcement", "name_announcement"}


@bp.errorhandler(Exception)
def _fault(error: Exception) -> Response | HTTPException:
    """The database or Redis did not answer, or a bug: Twilio would play "an application error has
    occurred" on a 5xx, to a caller who may be in distress. They hear a short apology in the line's
    language instead (as this process last knew it: no database needed), and can call again."""
    if isinstance(error, HTTPException):
        return error
    endpoint = (request.endpoint or "").rpartition(".")[2]
    dependency = isinstance(error, (*db.UNAVAILABLE, redis.RedisError))
    log.error("voice webhook failed: answered with an apology", exc_info=None if dependency else error,
              extra={"endpoint": endpoint, "call_sid": request.form.get("CallSid"), "error": db.error_name(error)})
    metrics.WEBHOOKS.labels(route="voice", outcome="fault").inc()
    if endpoint in _CALLBACKS:
        return Response(status=204)
    if endpoint in _ROOM_HEARS:
        return _twiml(twiml.no_reply())
    lines = directory()
    language = (lines.language_of(phone.from_twilio(request.form.get("To")))
                or lines.language_of(phone.from_twilio(request.form.get("From"))) or "en")  # From: a dial-out
    return _twiml(twiml.say_then_hangup(t("voice.unavailable", language), say_language(language)))


# What each Answer sounds like. Every branch ends in a meeting, a retry, or words and a goodbye.
_SAY_THEN_HANG_UP: dict[AnswerKind, str] = {
    "unknown_line": "voice.unknown_line", "too_many_wrong_codes": "voice.too_many_wrong_codes",
    "wrong_code_goodbye": "voice.wrong_code_goodbye", "no_meeting_planned": "voice.no_meeting_planned",
    "meeting_locked": "voice.meeting_locked", "meeting_full": "voice.meeting_full",
    "meeting_ended": "voice.meeting_ended", "goodbye": "voice.goodbye"}
_ASK_CODE: dict[AnswerKind, str] = {"ask_code": "voice.ask_code", "retry_code": "voice.retry_code",
                                    "no_code": "voice.no_code", "caller_id_welcome": "voice.caller_id_welcome"}


def _render(answer: Answer) -> Response:
    metrics.WEBHOOKS.labels(route="voice", outcome=answer.kind).inc()
    voice = say_language(answer.language)
    base = _base_url()
    if answer.seat is not None:  # "join", the one kind with a seat
        return _twiml(twiml.join_conference(answer.seat, voice))
    if answer.kind in _ASK_CODE:
        return _twiml(twiml.ask_digits(t(_ASK_CODE[answer.kind], answer.language, group=answer.group), voice,
                                       f"{base}/twilio/voice/code", on_silence=f"{base}/twilio/voice/code"))
    if answer.kind == "record_name":
        return _twiml(twiml.record_name(t("voice.say_your_name", answer.language), voice, f"{base}/twilio/voice/name"))
    if answer.kind == "dialout_prompt":
        return _twiml(twiml.ask_digits(t("voice.dialout_prompt", answer.language, group=answer.group), voice,
                                       f"{base}/twilio/voice/dialout/join", num_digits=1, timeout=10,
                                       on_silence=f"{base}/twilio/voice/dialout/join"))
    if answer.kind == "next_meeting":
        said = t("voice.next_meeting", answer.language, group=answer.group, when=answer.next_when)
        if not answer.can_remind:
            return _twiml(twiml.say_then_hangup(f"{said} {t('voice.goodbye', answer.language)}", voice))
        return _twiml(twiml.ask_digits(f"{said} {t('voice.offer_reminder', answer.language)}", voice,
                                       f"{base}/twilio/voice/remind", on_silence=f"{base}/twilio/voice/remind",
                                       num_digits=1, timeout=6))
    return _twiml(twiml.say_then_hangup(t(_SAY_THEN_HANG_UP[answer.kind], answer.language), voice))
