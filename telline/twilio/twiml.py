"""Pure TwiML builders: data in, XML string out, built with twilio's own classes.

No database, no request, no settings: the voice and SMS flows decide, these render.
"""

from __future__ import annotations

import dataclasses

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Dial, VoiceResponse


def say_then_hangup(text: str, language: str) -> str:
    response = VoiceResponse()
    response.say(text, language=language)
    response.hangup()
    return str(response)


def no_reply() -> str:
    """An empty <Response/>: Twilio sends nothing back to a texter, and says nothing to a room."""
    return str(MessagingResponse())


def reply(text: str) -> str:
    response = MessagingResponse()
    response.message(text)
    return str(response)


def ask_digits(prompt: str, language: str, action: str, *, on_silence: str, num_digits: int | None = None,
               timeout: int = 8) -> str:
    """<Gather> DTMF ending with #, then — when the caller presses nothing — a <Redirect>
    to `on_silence` (never a dead end: Twilio would otherwise hang up)."""
    response = VoiceResponse()
    options = {"input": "dtmf", "action": action, "method": "POST", "finish_on_key": "#", "timeout": timeout}
    if num_digits:
        options["num_digits"] = num_digits
    gather = response.gather(**options)
    gather.say(prompt, language=language)
    response.redirect(on_silence, method="POST")
    return str(response)


@dataclasses.dataclass(frozen=True)
class ConferenceSeat:
    """How one caller enters one conference (telline.voice.incoming decides, this renders)."""

    name: str  # opaque
    host: bool
    end_on_exit: bool
    max_participants: int
    beep: bool
    wait_url: str | None
    status_callback: str
    record: bool
    label: str
    before: tuple[str, ...] = ()  # sentences said before joining (e.g. "this meeting is recorded")
    after: str = ""  # said when the conference ends and the call comes back


def join_conference(seat: ConferenceSeat, language: str) -> str:
    response = VoiceResponse()
    for sentence in seat.before:
        response.say(sentence, language=language)
    dial = Dial()
    options = {
        "start_conference_on_enter": seat.host,  # the meeting starts when a host arrives
        "end_conference_on_exit": seat.end_on_exit,
        "beep": "true" if seat.beep else "false",
        "max_participants": seat.max_participants,
        "status_callback": seat.status_callback,
        "status_callback_method": "POST",
        # twilio-python does not join lists: one space-separated string.
        "status_callback_event": "start end join leave mute hold",
        "participant_label": seat.label,
        "record": "record-from-start" if seat.record else "do-not-record",
    }
    if seat.wait_url:
        options["wait_url"] = seat.wait_url
        options["wait_method"] = "GET"  # lets Twilio cache the hold music
    dial.conference(seat.name, **options)
    response.append(dial)
    if seat.after:
        response.say(seat.after, language=language)
    response.hangup()
    return str(response)


def say_sentence(text: str, language: str) -> str:
    """For announce_url: what the whole room hears."""
    response = VoiceResponse()
    response.say(text, language=language)
    return str(response)


def record_name(prompt: str, language: str, action: str) -> str:
    """A few seconds of the caller's first name, then on to `action` (with or without one)."""
    response = VoiceResponse()
    response.say(prompt, language=language)
    response.record(max_length=4, finish_on_key="#", play_beep=True, trim="trim-silence", action=action,
                    method="POST")
    response.redirect(action, method="POST")
    return str(response)


def play_name(recording_url: str, joined_text: str, language: str) -> str:
    response = VoiceResponse()
    response.play(recording_url)
    response.say(joined_text, language=language)
    return str(response)
