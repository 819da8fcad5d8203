"""Which keyword, if any, an incoming text is: every word telline answers, in one table.

Keywords match the WHOLE text, as Twilio matches its own: "stop it please I'm scared" is
no opt-out, it may be a crisis and must reach a person. Only case, accents, spacing, and
the punctuation, symbols and emoji around the word are forgiven ("STOP 🛑", "Arrêt 🙏").
Anything else is None, for the router to pass on. Handlers live with their features and
switch on the parsed kind.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import emoji

Kind = Literal["opt_out", "opt_in", "help", "join", "next",  # the SMS line (telline.sms.handlers)
               "mute", "unmute", "hand",                      # a member on a meeting call (telline.voice.sms_controls)
               "mute_all", "lock", "unlock", "end_meeting",   # a host on a meeting call (same)
               "call_me", "no_call"]                          # dialled at meeting time (telline.voice.call_me)
Language = Literal["en", "fr"]

# Every word, as matching sees it (see normalise(); a dash or an apostrophe between two words
# counts as a space), → the language it shows (None: used by English and French speakers alike).
KEYWORDS: dict[Kind, dict[str, Language | None]] = {
    # Twilio's default opt-out words (shared/twilio-facts.md, "Messaging"), then French ones:
    # Twilio does not know these, so only telline's ledger records them.
    "opt_out": {"STOP": None, "STOPALL": "en", "UNSUBSCRIBE": "en", "CANCEL": "en", "END": "en",
                "QUIT": "en", "REVOKE": "en", "OPTOUT": "en",
                "ARRET": "fr", "ARRETER": "fr", "DESABONNER": "fr", "DESABONNEMENT": "fr",
                "DESINSCRIRE": "fr", "DESINSCRIPTION": "fr"},
    # Twilio's opt-in words and OUI. No REPRENDRE or COMMENCER: a wrong opt-in sends texts to
    # someone who said stop, so only words our own texts advertise count; others reach a person.
    "opt_in": {"START": None, "YES": "en", "UNSTOP": "en", "OUI": "fr"},
    "help": {"HELP": "en", "INFO": None, "AIDE": "fr"},  # Twilio's HELP and INFO, then French
    "join": {"JOIN": "en", "REJOINDRE": "fr"},  # alone, or followed by a group's code
    "next": {"NEXT": "en", "PROCHAIN": "fr", "PROCHAINE": "fr"},
    "mute": {"MUTE": "en", "MUET": "fr", "SILENCE": None},
    "unmute": {"UNMUTE": "en", "PARLER": "fr", "MICRO": "fr"},
    "hand": {"HAND": "en", "MAIN": "fr"},  # raises a hand, or lowers it
    "mute_all": {"MUTEALL": "en", "MUTE ALL": "en", "MUETS": "fr", "SILENCE TOUS": "fr"},
    "lock": {"LOCK": "en", "VERROUILLER": "fr"},
    "unlock": {"UNLOCK": "en", "DEVERROUILLER": "fr"},
    # Never plain END, a carrier opt-out word: Twilio would unsubscribe the host.
    "end_meeting": {"END MEETING": "en", "ENDMEETING": "en", "FIN REUNION": "fr", "FIN DE REUNION": "fr"},
    "call_me": {"CALL ME": "en", "APPELEZ MOI": "fr", "APPELEZMOI": "fr"},
    "no_call": {"NO CALL": "en", "PAS D APPEL": "fr", "PAS DAPPEL": "fr"},
}
_BY_WORD: dict[str, tuple[Kind, Language | None]] = {
    word: (kind, language) for kind, words in KEYWORDS.items() for word, language in words.items()}

# Other spellings of a keyword above. "OPT OUT" is how the FCC's TCPA revocation rule
# (in force April 2025) writes it. "STOP SMS", "STOP au 36180": French marketing texts must end with
# "STOP au <5-digit short code>" and people copy it back; no free text looks like that.
_SPELLINGS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"OPT OUT"), "OPTOUT"),
    (re.compile(r"STOP(?: SMS)?(?: (?:AU )?\d{5,6})?"), "STOP"),
]
_JOIN = re.compile(rf"(?P<word>{'|'.join(KEYWORDS['join'])})(?: ?: ?| )(?P<code>\S+)")  # JOIN abc123, JOIN: abc-123
_CODE = re.compile(r"[A-Z0-9]{4,12}")  # Group.text_code: upper-case letters and digits
# What surrounds a text's words: anything but letters and digits (\W, and _ which \w counts).
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
# A dash or an apostrophe between two words is a space: APPELEZ-MOI, PAS D'APPEL, PAS D’ APPEL and
# OPT-OUT are the table's APPELEZ MOI, PAS D APPEL and the spelling OPT OUT.
_WORD_JOINER = re.compile(r"(?<=[^\W_]) *[-\u2010-\u2015'\u2018\u2019\u02bc] *(?=[^\W_])")


@dataclass(frozen=True)
class Keyword:
    kind: Kind
    word: str                     # the canonical keyword matched, e.g. "STOP", "ARRET", "JOIN"
    language: Language | None     # the language the word shows, else None
    argument: str | None          # JOIN's code, normalised (upper-case, no hyphens), else None


def normalise(body: str | None) -> str:
    """Upper-case, without accents, emoji or invisible format characters, spaces collapsed, and
    without the punctuation and symbols around it (inner punctuation stays: "STOP, PLEASE")."""
    # Emoji first, whole sequences (keycaps, ZWJ sequences, skin tones, flags), before NFKD would
    # make ™ "TM" and ℹ "i"; an emoji inside a text separates words, as a space does.
    decomposed = unicodedata.normalize("NFKD", emoji.replace_emoji(body or "", " "))
    # Mn: the accents NFKD split off (ARRÊT → ARRET), variation selectors; Cf: zero-width spaces,
    # joiners, tags, BOM. NFKD has made full-width letters plain (ＳＴＯＰ) and no-break spaces spaces.
    kept = "".join(char for char in decomposed if unicodedata.category(char) not in ("Mn", "Cf"))
    return _EDGES.sub("", " ".join(kept.casefold().split())).upper()


def parse(body: str | None) -> Keyword | None:
    text = normalise(body)
    words = _WORD_JOINER.sub(" ", text)
    for pattern, spelling in _SPELLINGS:
        if pattern.fullmatch(words):
            words = spelling
            break
    if words in _BY_WORD:  # JOIN alone included: the app asks which group
        kind, language = _BY_WORD[words]
        return Keyword(kind, words, language, None)
    match = _JOIN.fullmatch(text)
    if match:
        # Hyphens (and other dashes) may group a code as printed; a space may not, or
        # "join us tonight" would be code USTONIGHT.
        code = "".join(char for char in match["code"] if unicodedata.category(char) != "Pd")
        if _CODE.fullmatch(code):
            word = match["word"]
            return Keyword("join", word, KEYWORDS["join"][word], code)
    return None
