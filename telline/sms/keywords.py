"""Which keyword, if any, an incoming text is.

Opt-out, opt-in, help and next match the WHOLE text, as Twilio matches its own
keywords: "stop it please I'm scared" is no opt-out, it may be a crisis and must
reach a person. Only case, accents, spacing and punctuation around the word are
forgiven. Anything else is None, for the router to pass on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Whole-text keywords: word → language it shows (None: used by English and French alike).
KEYWORDS: dict[str, dict[str, str | None]] = {
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
    "next": {"NEXT": "en", "PROCHAIN": "fr", "PROCHAINE": "fr"},
}
JOIN_WORDS: dict[str, str] = {"JOIN": "en", "REJOINDRE": "fr"}

# Other spellings of a keyword above. "OPT OUT" is how the FCC's TCPA revocation rule
# (in force April 2025) writes it. "STOP SMS", "STOP au 36180": French marketing texts must end with
# "STOP au <5-digit short code>" and people copy it back; no free text looks like that.
_SPELLINGS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"OPT[ -]OUT"), "OPTOUT"),
    (re.compile(r"STOP(?: SMS)?(?: (?:AU )?\d{5,6})?"), "STOP"),
]
_JOIN = re.compile(rf"(?P<word>{'|'.join(JOIN_WORDS)})(?: ?: ?| )(?P<code>\S+)")  # JOIN abc123, JOIN: abc-123
_CODE = re.compile(r"[A-Z0-9]{4,12}")  # Group.text_code: upper-case letters and digits
# Trimmed around the text. NFKD has already made "…" into "...", "！" into "!" and
# no-break spaces into spaces; curly quotes and « » have no such decomposition.
_EDGES = " .,!?;:'\"’‘“”«»¡¿"


@dataclass(frozen=True)
class Keyword:
    kind: str             # "opt_out" | "opt_in" | "help" | "join" | "next"
    word: str             # the canonical keyword matched, e.g. "STOP", "ARRET", "JOIN"
    language: str | None  # "en" / "fr" when the word shows the member's language, else None
    argument: str | None  # JOIN's code, normalised (upper-case, no hyphens), else None


def normalise(body: str | None) -> str:
    """Upper-case, accents and invisible format characters dropped, spaces collapsed, edges trimmed."""
    decomposed = unicodedata.normalize("NFKD", body or "")
    # Mn: the accents NFKD split off (ARRÊT → ARRET); Cf: zero-width spaces, joiners, BOM.
    kept = "".join(char for char in decomposed if unicodedata.category(char) not in ("Mn", "Cf"))
    return " ".join(kept.casefold().split()).strip(_EDGES).upper()


def parse(body: str | None) -> Keyword | None:
    text = normalise(body)
    for pattern, word in _SPELLINGS:
        if pattern.fullmatch(text):
            text = word
            break
    for kind, words in KEYWORDS.items():
        if text in words:
            return Keyword(kind, text, words[text], None)
    if text in JOIN_WORDS:  # no code: the app asks which group
        return Keyword("join", text, JOIN_WORDS[text], None)
    match = _JOIN.fullmatch(text)
    if match:
        # Hyphens (and other dashes) may group a code as printed; a space may not, or
        # "join us tonight" would be code USTONIGHT.
        code = "".join(char for char in match["code"] if unicodedata.category(char) != "Pd")
        if _CODE.fullmatch(code):
            return Keyword("join", match["word"], JOIN_WORDS[match["word"]], code)
    return None
