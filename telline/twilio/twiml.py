"""Pure TwiML builders: data in, XML string out, built with twilio's own classes.

No database, no request, no settings: the voice and SMS flows decide, these render.
"""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse


def say_then_hangup(text: str, language: str) -> str:
    response = VoiceResponse()
    response.say(text, language=language)
    response.hangup()
    return str(response)


def no_reply() -> str:
    """An empty <Response/>: Twilio sends nothing back to the texter."""
    return str(MessagingResponse())


def reply(text: str) -> str:
    response = MessagingResponse()
    response.message(text)
    return str(response)
