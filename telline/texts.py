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
    # --- SMS replies: short, plain, one idea each -----------------------------------
    "sms.opted_out": {
        "en": "You won't get any more texts from this number. Text START to come back.",
        "fr": "Vous ne recevrez plus de SMS de ce numéro. Envoyez START pour revenir.",
    },
    "sms.opted_in": {
        "en": "Welcome back: you will get texts from this number again. Text STOP to stop.",
        "fr": "Re-bonjour : vous recevrez de nouveau nos SMS. Envoyez STOP pour arrêter.",
    },
    "sms.help": {
        "en": "This is the {group} support line. A coordinator: {contact}. Text STOP to stop texts.{crisis}",
        "fr": "Ici la ligne du groupe {group}. Un coordinateur : {contact}. Envoyez STOP pour ne plus recevoir de SMS.{crisis}",
    },
    "sms.help_no_contact": {
        "en": "a reply to this text reaches one",
        "fr": "répondez à ce SMS",
    },
    "sms.crisis": {
        "en": " In an emergency: {resource}.",
        "fr": " En cas d'urgence : {resource}.",
    },
    "sms.join_which": {
        "en": "To join a group, text JOIN and its code, for example JOIN ABC123. Your coordinator can give you the code.",
        "fr": "Pour rejoindre un groupe, envoyez REJOINDRE et son code, par exemple REJOINDRE ABC123. Votre coordinateur vous donnera le code.",
    },
    "sms.join_unknown": {
        "en": "We don't know the code {code}. Please check it with your coordinator and text JOIN and the code again.",
        "fr": "Le code {code} est inconnu. Vérifiez-le auprès de votre coordinateur et renvoyez REJOINDRE et le code.",
    },
    "sms.join_confirm": {
        "en": "Reply YES to join {group} and get its texts (meeting reminders, check-ins). Text STOP at any time to stop.",
        "fr": "Répondez OUI pour rejoindre {group} et recevoir ses SMS (rappels, nouvelles). Envoyez STOP à tout moment pour arrêter.",
    },
    "sms.join_welcome": {
        "en": "You're in {group}. Text NEXT for the next meeting, HELP for help, STOP to stop texts.",
        "fr": "Vous avez rejoint {group}. Envoyez PROCHAIN pour la prochaine réunion, AIDE pour de l'aide, STOP pour arrêter.",
    },
    "sms.join_already": {
        "en": "You're already in {group}. Text NEXT for the next meeting.",
        "fr": "Vous faites déjà partie de {group}. Envoyez PROCHAIN pour la prochaine réunion.",
    },
    "sms.next": {
        "en": "Next {group} meeting: {when}. Call {number} and enter code {code} then #.",
        "fr": "Prochaine réunion {group} : {when}. Appelez le {number} et tapez le code {code} puis #.",
    },
    "sms.next_none": {
        "en": "No {group} meeting is planned yet. We'll text you when one is.",
        "fr": "Aucune réunion {group} n'est prévue pour l'instant. Nous vous préviendrons par SMS.",
    },
    "sms.next_members_only": {
        "en": "Meeting details are for group members. Text JOIN and your group's code to join.",
        "fr": "Les détails des réunions sont réservés aux membres. Envoyez REJOINDRE et le code du groupe.",
    },
    "sms.inbox_ack": {
        "en": "Thank you, a coordinator will read your message.{crisis}",
        "fr": "Merci, un coordinateur lira votre message.{crisis}",
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
