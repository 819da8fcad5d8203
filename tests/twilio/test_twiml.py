"""TwiML builders are pure: parse what they return as Twilio would."""

import xml.etree.ElementTree as ET

from telline.twilio import twiml


def parse(xml):
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return list(root)


def test_say_then_hangup_speaks_in_the_given_language_then_ends():
    say, hangup = parse(twiml.say_then_hangup("Bonjour & bienvenue <3", "fr-FR"))
    assert (say.tag, say.get("language"), say.text) == ("Say", "fr-FR", "Bonjour & bienvenue <3")
    assert hangup.tag == "Hangup"


def test_no_reply_is_an_empty_response():
    assert parse(twiml.no_reply()) == []


def test_reply_is_one_message():
    [message] = parse(twiml.reply("Merci 🙏"))
    assert (message.tag, message.text) == ("Message", "Merci 🙏")
