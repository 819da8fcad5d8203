"""What telline says and writes to members, per language. English is the fallback.

Keys are stable names; values are short (members are often on a basic phone,
sometimes in distress). Add a language by adding its column to every entry.
"""

from __future__ import annotations

import datetime as dt

TEXTS: dict[str, dict[str, str]] = {
    "voice.unknown_line": {
        "en": "Sorry, this number is not connected to a support group. Please check the number and call again. Goodbye.",
        "fr": "Désolé, ce numéro n'est relié à aucun groupe. Vérifiez le numéro et rappelez. Au revoir.",
    },
    "voice.unavailable": {
        "en": "Sorry, we cannot take your call just now. Please call again in a few minutes. Goodbye.",
        "fr": "Désolé, nous ne pouvons pas prendre votre appel pour le moment. Rappelez dans quelques minutes. Au revoir.",
    },
    "voice.ask_code": {
        "en": "Welcome to {group}. Please enter your meeting code, then press the hash key.",
        "fr": "Bienvenue dans le groupe {group}. Tapez le code de votre réunion, puis la touche dièse.",
    },
    "voice.caller_id_welcome": {
        "en": "Welcome to {group}. Press the hash key to join, or enter the host PIN.",
        "fr": "Bienvenue dans le groupe {group}. Appuyez sur la touche dièse pour entrer, ou tapez le code animateur.",
    },
    "voice.retry_code": {
        "en": "Sorry, that code did not work. Please enter your meeting code, then press the hash key.",
        "fr": "Désolé, ce code ne fonctionne pas. Tapez le code de votre réunion, puis la touche dièse.",
    },
    "voice.no_code": {
        "en": "We did not hear a code. Please enter your meeting code, then press the hash key.",
        "fr": "Nous n'avons pas reçu de code. Tapez le code de votre réunion, puis la touche dièse.",
    },
    "voice.wrong_code_goodbye": {
        "en": "Sorry, we could not find your meeting. Please check your code with your coordinator, or text HELP to this number. Goodbye.",
        "fr": "Désolé, nous n'avons pas trouvé votre réunion. Vérifiez le code auprès de votre coordinateur, ou envoyez AIDE par SMS à ce numéro. Au revoir.",
    },
    "voice.too_many_wrong_codes": {
        "en": "Sorry, that code did not work. Too many wrong codes have been entered, so for a quarter of an hour each call gets one try. Please check your code and call again, or text HELP to this number. Goodbye.",
        "fr": "Désolé, ce code ne fonctionne pas. Trop de codes erronés ont été saisis : pendant un quart d'heure, chaque appel n'a droit qu'à un essai. Vérifiez votre code et rappelez, ou envoyez AIDE par SMS à ce numéro. Au revoir.",
    },
    "voice.next_meeting": {
        "en": "There is no meeting right now. The next {group} meeting is on {when}.",
        "fr": "Il n'y a pas de réunion en ce moment. La prochaine réunion du groupe {group} aura lieu {when}.",
    },
    "voice.offer_reminder": {
        "en": "To get a text reminder before it, press 1.",
        "fr": "Pour recevoir un rappel par SMS avant la réunion, tapez 1.",
    },
    "voice.no_meeting_planned": {
        "en": "There is no meeting planned on this line right now. To reach a coordinator, text HELP to this number. Goodbye.",
        "fr": "Aucune réunion n'est prévue sur cette ligne pour l'instant. Pour joindre un coordinateur, envoyez AIDE par SMS à ce numéro. Au revoir.",
    },
    "voice.goodbye": {
        "en": "Thank you for calling. Goodbye.",
        "fr": "Merci de votre appel. Au revoir.",
    },
    "voice.reminder_set": {
        "en": "Thank you. We will text you before the meeting. Goodbye.",
        "fr": "Merci. Nous vous enverrons un SMS avant la réunion. Au revoir.",
    },
    "voice.reminder_texts_stopped": {
        "en": "You have stopped texts from this number, so we cannot text you a reminder. To get texts again, "
              "text START to this number: nothing will be sent until then. Goodbye.",
        "fr": "Vous avez arrêté les SMS de ce numéro : nous ne pouvons pas vous envoyer de rappel. Pour en recevoir "
              "de nouveau, envoyez START par SMS à ce numéro ; rien ne vous sera envoyé d'ici là. Au revoir.",
    },
    "voice.meeting_locked": {
        "en": "This meeting is closed to new callers right now. To reach a coordinator, text HELP to this number. Goodbye.",
        "fr": "Cette réunion est fermée aux nouveaux appels pour le moment. Pour joindre un coordinateur, envoyez AIDE par SMS à ce numéro. Au revoir.",
    },
    "voice.meeting_full": {
        "en": "Sorry, this meeting is full. To reach a coordinator, text HELP to this number. Goodbye.",
        "fr": "Désolé, cette réunion est complète. Pour joindre un coordinateur, envoyez AIDE par SMS à ce numéro. Au revoir.",
    },
    "voice.meeting_ended": {
        "en": "This meeting has ended. To reach a coordinator, text HELP to this number. Goodbye.",
        "fr": "Cette réunion est terminée. Pour joindre un coordinateur, envoyez AIDE par SMS à ce numéro. Au revoir.",
    },
    "voice.say_your_name": {
        "en": "After the tone, please say your first name, then press the hash key.",
        "fr": "Après le bip, dites votre prénom, puis appuyez sur la touche dièse.",
    },
    "voice.has_joined": {"en": "has joined.", "fr": "a rejoint la réunion."},
    "voice.recorded": {
        "en": "Please note: this meeting is recorded.",
        "fr": "Attention : cette réunion est enregistrée.",
    },
    "voice.after_meeting": {
        "en": "This call is over. Thank you for joining. If your meeting goes on, you can call again. Goodbye.",
        "fr": "Cet appel est terminé. Merci d'y avoir participé. Si votre réunion continue, vous pouvez rappeler. Au revoir.",
    },
    "sms.dialout_missed": {
        "en": "We tried to call you for the {group} meeting. To join, call {number} and enter code {code} then #.",
        "fr": "Nous avons essayé de vous appeler pour la réunion {group}. Pour la rejoindre, appelez le {number} et tapez le code {code} puis #.",
    },
    "voice.dialout_prompt": {
        "en": "Hello, this is your {group} meeting, starting now. To join, press 1.",
        "fr": "Bonjour, votre réunion {group} commence. Pour la rejoindre, tapez 1.",
    },
    "sms.control_mute": {"en": "You are muted. Text UNMUTE to speak.", "fr": "Votre micro est coupé. Envoyez PARLER pour parler."},
    "sms.control_unmute": {"en": "You can speak now. Text MUTE to mute yourself.", "fr": "Vous pouvez parler. Envoyez MUET pour couper votre micro."},
    "sms.control_hand_up": {"en": "Your hand is raised: the host has been told. Text HAND again to lower it.",
                            "fr": "Main levée : l'animateur est prévenu. Envoyez MAIN à nouveau pour la baisser."},
    "sms.control_hand": {"en": "Your hand is lowered.", "fr": "Main baissée."},
    "sms.control_mute_all": {"en": "Everyone but the hosts is being muted.", "fr": "Tous les micros sauf ceux des animateurs sont coupés."},
    "sms.control_lock": {"en": "The meeting is locked: new callers cannot join. Text UNLOCK to open it.",
                         "fr": "La réunion est verrouillée : personne d'autre ne peut entrer. Envoyez DEVERROUILLER pour l'ouvrir."},
    "sms.control_unlock": {"en": "The meeting is open to callers again.", "fr": "La réunion est de nouveau ouverte."},
    "sms.control_end_meeting": {"en": "Ending the meeting for everyone.", "fr": "Fin de la réunion pour tout le monde."},
    "sms.control_hosts_only": {"en": "Only a host can do that.", "fr": "Seul un animateur peut faire cela."},
    "sms.control_not_in_a_meeting": {"en": "{word} works only while you are in a phone meeting.",
                                     "fr": "{word} ne fonctionne que pendant une réunion téléphonique."},
    "sms.control_not_in_a_meeting_join": {
        "en": "{word} works only while you are in a phone meeting. To join one, call {number}. "
              "Text NEXT for the next meeting's time and code.",
        "fr": "{word} ne fonctionne que pendant une réunion téléphonique. Pour en rejoindre une, appelez le {number}. "
              "Envoyez PROCHAIN pour l'heure et le code de la prochaine.",
    },
    "sms.host_hand_up": {"en": "{who} raised their hand.", "fr": "{who} lève la main."},
    "sms.host_hand_down": {"en": "{who} lowered their hand.", "fr": "{who} a baissé la main."},
    "sms.call_me_on": {"en": "We'll call you when your meetings start: press 1 to join. Text NO CALL to stop.",
                       "fr": "Nous vous appellerons au début de vos réunions : tapez 1 pour entrer. Envoyez PAS D'APPEL pour arrêter."},
    "sms.call_me_off": {"en": "We won't call you for meetings any more. Text CALL ME to change that.",
                        "fr": "Nous ne vous appellerons plus pour les réunions. Envoyez APPELEZ-MOI pour changer d'avis."},
    "sms.reminder": {
        "en": "Reminder: {group} meets {when}. Call {number} and enter code {code} then #.",
        "fr": "Rappel : réunion {group} {when}. Appelez le {number} et tapez le code {code} puis #.",
    },
    "sms.series_reminder": {
        "en": "Reminder: {group} meets {when}. Call {number} and enter code {code} then #. Text STOP to stop texts.",
        "fr": "Rappel : réunion {group} {when}. Appelez le {number} et tapez le code {code} puis #. Envoyez STOP pour arrêter.",
    },
    "sms.reminder_set": {
        "en": "We'll text you before the {group} meeting on {when}. Text STOP to stop texts.",
        "fr": "Nous vous enverrons un SMS avant la réunion {group} du {when}. Envoyez STOP pour arrêter.",
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
    "sms.meeting_cancelled": {
        "en": "{group}: the meeting of {when} is cancelled. Text NEXT for the next one.",
        "fr": "{group} : la réunion du {when} est annulée. Envoyez PROCHAINE pour la suivante.",
    },
    "sms.meeting_moved": {
        "en": "{group}: the meeting of {when} moves to {new}. Same number and code.",
        "fr": "{group} : la réunion du {when} est déplacée au {new}. Même numéro et même code.",
    },
    "sms.meeting_restored": {
        "en": "{group}: the meeting of {when} is back at its usual time. Same number and code.",
        "fr": "{group} : la réunion du {when} revient à son heure habituelle. Même numéro et même code.",
    },
    "sms.next_none": {
        "en": "No {group} meeting is planned yet. We'll text you when one is.",
        "fr": "Aucune réunion {group} n'est prévue pour l'instant. Nous vous préviendrons par SMS.",
    },
    "sms.next_members_only": {
        "en": "Meeting details are for group members. Text JOIN and your group's code to join.",
        "fr": "Les détails des réunions sont réservés aux membres. Envoyez REJOINDRE et le code du groupe.",
    },
    "calendar.description": {
        "en": "To join, call {number} and enter the meeting code {code}, then press the hash key (#).",
        "fr": "Pour participer, appelez le {number} et tapez le code de la réunion {code}, puis la touche dièse (#).",
    },
    "calendar.location": {
        "en": "By phone: {number}",
        "fr": "Par téléphone : {number}",
    },
    "sms.inbox_ack": {
        "en": "Thank you, a coordinator will read your message.{crisis}",
        "fr": "Merci, un coordinateur lira votre message.{crisis}",
    },
}

# Voices Twilio's <Say> understands, by our language tag.
SAY_LANGUAGE = {"en": "en-GB", "fr": "fr-FR"}


def when(start: dt.datetime, zone: str, language: str | None) -> str:
    """A meeting's start as members read and hear it: 'Tuesday 1 December, 19:00' in their zone."""
    from zoneinfo import ZoneInfo

    from babel.dates import format_datetime
    return format_datetime(start, "EEEE d MMMM, HH:mm", tzinfo=ZoneInfo(zone), locale=(language or "en"))


def t(key: str, language: str | None, **values: object) -> str:
    entry = TEXTS[key]
    text = entry.get((language or "en").split("-")[0].lower()) or entry["en"]
    return text.format(**values) if values else text


def say_language(language: str | None) -> str:
    return SAY_LANGUAGE.get((language or "en").split("-")[0].lower(), "en-GB")
