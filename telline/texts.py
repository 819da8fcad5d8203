"""What telline says and writes to members, per language. English is the fallback.

Keys are stable names; values are short (members are often on a basic phone,
sometimes in distress). Add a language by adding its column to every entry.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "voice.unknown_line": {
        "en": "Sorry, this number is not connected to a support group. Please check the number and call again. Goodbye.",
        "fr": "Désolé, ce numéro n'est relié à aucun groupe. Vérifiez le numéro et rappelez. Au revoir.",
    },
    "voice.no_meeting": {
        "en": "Welcome. There is no meeting on this line right now. Please call back at your meeting time. Goodbye.",
        "fr": "Bienvenue. Il n'y a pas de réunion sur cette ligne en ce moment. Rappelez à l'heure de votre réunion. Au revoir.",
    },
}

# Voices Twilio's <Say> understands, by our language tag.
SAY_LANGUAGE = {"en": "en-GB", "fr": "fr-FR"}


def t(key: str, language: str | None, **values) -> str:
    entry = TEXTS[key]
    text = entry.get((language or "en").split("-")[0].lower()) or entry["en"]
    return text.format(**values) if values else text


def say_language(language: str | None) -> str:
    return SAY_LANGUAGE.get((language or "en").split("-")[0].lower(), "en-GB")
