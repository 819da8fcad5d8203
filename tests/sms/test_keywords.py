"""Classifying incoming texts: keywords match the whole text; anything else reaches a person."""

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telline.sms.keywords import KEYWORDS, Keyword, normalise, parse

ALL_WORDS = [(kind, word, language) for kind, words in KEYWORDS.items() for word, language in words.items()]


def variants(word):
    """How members actually type a word: any case, spaces, punctuation, typographic quotes."""
    return [word, word.lower(), word.capitalize(), f" {word.lower()}! ", f"{word.capitalize()}.",
            f"{word.lower()} ?", f"«\u00a0{word}\u00a0»", f"\u201c{word.lower()}\u201d", f"{word}!!!",
            f"\t{word.lower()}\n", f"{word.lower()}\u2026", f"\u2019{word}\u2019", f"{word}\u200b"]


@pytest.mark.parametrize(("kind", "word", "language"), ALL_WORDS)
def test_every_keyword_matches_however_it_is_typed(kind, word, language):
    for body in variants(word):
        assert parse(body) == Keyword(kind, word, language, None), body


@pytest.mark.parametrize(("body", "word"), [
    ("ARRÊT", "ARRET"), ("arrêt", "ARRET"), ("Arret", "ARRET"), ("Arrêter", "ARRETER"),
    ("DÉSABONNER", "DESABONNER"), ("désabonner", "DESABONNER"), ("Désinscrire", "DESINSCRIRE"),
    ("désinscription", "DESINSCRIPTION"), ("Désabonnement !", "DESABONNEMENT"),
    ("opt out", "OPTOUT"), ("Opt-Out", "OPTOUT"), ("OPTOUT", "OPTOUT"), ("opt\u2011out", "OPTOUT"),
    ("STOP SMS", "STOP"), ("Stop sms", "STOP"), ("STOP 36180", "STOP"), ("Stop au 36180", "STOP"),
    ("STOP SMS au 36180.", "STOP"), ("ＳＴＯＰ", "STOP"),  # full-width letters, from some keyboards
])
def test_opt_out_spellings(body, word):
    assert parse(body).kind == "opt_out"
    assert parse(body).word == word


@pytest.mark.parametrize("body", [
    "stop it please I'm scared", "Stop it", "please stop", "STOP STOP", "stop stop stop",
    "STOP au", "STOP 1", "stop 123456789", "can I stop?", "I want to unsubscribe", "the end",
    "arrête de m'écrire", "arrête", "Je veux me désabonner",
    "I need help now", "help me", "HELP!!! please", "aide moi", "Aidez-moi", "info?? where",
    "yes please", "oui oui", "oui, j'arrive", "reprendre", "commencer", "start again",
    "next week?", "prochain rendez-vous", "joining tonight?", "I want to join the group",
    "Join us tonight", "join me", "JOINABC123", "rejoindre le groupe",
    "", "   ", "?!", None, "🛑", "😀😀😀", "❤️", "a" * 1600, "stop " + "x" * 1595,
    "stop it please I'm scared 😢", "🛑 stop 🛑 it", "mute me 🙏", "call me maybe", "end meeting now",
])
def test_free_text_is_not_a_keyword(body):
    assert parse(body) is None


@pytest.mark.parametrize(("body", "expected"), [
    ("JOIN ABC123", Keyword("join", "JOIN", "en", "ABC123")),
    ("join abc123", Keyword("join", "JOIN", "en", "ABC123")),
    (" Join abc-123. ", Keyword("join", "JOIN", "en", "ABC123")),
    ("JOIN: abc-123", Keyword("join", "JOIN", "en", "ABC123")),
    ("join:AB12", Keyword("join", "JOIN", "en", "AB12")),
    ("JOIN : ab–12–cd", Keyword("join", "JOIN", "en", "AB12CD")),  # en dashes
    # A code-shaped word is taken as a code: the app answers that no group has it.
    ("join TONIGHT", Keyword("join", "JOIN", "en", "TONIGHT")),
    ("join 123456789012", Keyword("join", "JOIN", "en", "123456789012")),
    ("Rejoindre xyz9", Keyword("join", "REJOINDRE", "fr", "XYZ9")),
    ("REJOINDRE : Café42", Keyword("join", "REJOINDRE", "fr", "CAFE42")),
    ("JOIN", Keyword("join", "JOIN", "en", None)),
    ("join!", Keyword("join", "JOIN", "en", None)),
    ("Join:", Keyword("join", "JOIN", "en", None)),
    ("rejoindre", Keyword("join", "REJOINDRE", "fr", None)),
    ("JOIN 😀😀😀😀", Keyword("join", "JOIN", "en", None)),  # emoji are punctuation: "JOIN!!!!"
    ("🙂 join care-42 🙏🏽", Keyword("join", "JOIN", "en", "CARE42")),
])
def test_join(body, expected):
    assert parse(body) == expected


@pytest.mark.parametrize("body", [
    "JOIN abc",             # too short for a code
    "JOIN abcdefghijklm",   # 13: too long
    "JOIN abc 123",         # two words: could be any sentence
    "JOIN abc_123", "JOIN #abc123", "JOIN abc123!x",
])
def test_join_with_something_that_is_not_a_code_is_not_a_keyword(body):
    assert parse(body) is None


@pytest.mark.parametrize(("body", "language"), [
    ("ARRÊT", "fr"), ("AIDE", "fr"), ("OUI", "fr"), ("REJOINDRE ABCD", "fr"), ("PROCHAIN", "fr"),
    ("UNSUBSCRIBE", "en"), ("HELP", "en"), ("YES", "en"), ("JOIN ABCD", "en"), ("NEXT", "en"),
    ("STOP", None), ("INFO", None), ("START", None), ("stop sms", None),
])
def test_language_shown_by_the_word(body, language):
    assert parse(body).language == language


@pytest.mark.parametrize(("body", "normal"), [
    (None, ""), ("", ""), ("  stop!  ", "STOP"), ("Stop.", "STOP"), ("ARRÊT", "ARRET"),
    ("arrêt…", "ARRET"), ("join   abc\t123", "JOIN ABC 123"), ("Ça va ?", "CA VA"),
    ("“Oui”", "OUI"), ("straße", "STRASSE"), ("de\u200bsabonner", "DESABONNER"),
    ("stop, please!", "STOP, PLEASE"),  # inner punctuation stays
    ("STOP 🛑", "STOP"), ("Arrêt 🙏", "ARRET"), ("👍🏽 aide 🙂", "AIDE"), ("INFO ℹ️", "INFO"), ("stop ™️", "STOP"),
    ("stop 🙂 it", "STOP IT"),  # an emoji inside a text separates words, as a space does
])
def test_normalise(body, normal):
    assert normalise(body) == normal


def test_no_word_has_two_meanings():
    words = [word for words in KEYWORDS.values() for word in words]
    assert len(words) == len(set(words))
    assert all(word == normalise(word) for word in words)  # stored as matching sees them


# --- the one table: every word telline answers is in it ------------------------------------
@pytest.mark.parametrize(("body", "kind"), [
    ("MUTE", "mute"), ("muet", "mute"), ("Unmute", "unmute"), ("parler", "unmute"), ("hand", "hand"),
    ("Main", "hand"), ("mute all", "mute_all"), ("MUTEALL", "mute_all"), ("lock", "lock"),
    ("Déverrouiller", "unlock"), ("End meeting", "end_meeting"), ("fin de réunion", "end_meeting"),
    ("Call me", "call_me"), ("Appelez-moi !", "call_me"), ("appelez moi", "call_me"), ("no call", "no_call"),
    ("pas d'appel", "no_call"), ("Pas d’appel", "no_call"), ("pas d' appel", "no_call"),
    ("pas dappel", "no_call"), ("Mute-all", "mute_all"),
    ("END", "opt_out"),  # a carrier opt-out word, never a meeting control
])
def test_meeting_controls_and_call_me_are_keywords_like_the_others(body, kind):
    assert parse(body).kind == kind


# --- emoji and symbols around a keyword are punctuation -------------------------------------
@pytest.mark.parametrize(("body", "kind", "word"), [
    ("STOP 🛑", "opt_out", "STOP"), ("Arrêt 🙏", "opt_out", "ARRET"), ("AIDE 🙂", "help", "AIDE"),
    ("🛑STOP🛑", "opt_out", "STOP"), ("stop 👍🏽", "opt_out", "STOP"), ("STOP ❤️", "opt_out", "STOP"),
    ("stop 👩‍❤️‍💋‍👨", "opt_out", "STOP"), ("STOP 🏳️‍🌈", "opt_out", "STOP"),
    ("STOP 1️⃣", "opt_out", "STOP"), ("#️⃣ STOP", "opt_out", "STOP"), ("STOP 🇫🇷", "opt_out", "STOP"),
    ("STOP 🏴󠁧󠁢󠁳󠁣󠁴󠁿", "opt_out", "STOP"),
    ("STOP ™️", "opt_out", "STOP"), ("INFO ℹ️", "help", "INFO"), ("stop ✋ ★ →", "opt_out", "STOP"),
    ("MUTE 🔇", "mute", "MUTE"), ("✋ hand", "hand", "HAND"), ("appelez-moi 📞", "call_me", "APPELEZ MOI"),
])
def test_emoji_and_symbols_around_a_keyword_are_punctuation(body, kind, word):
    assert (parse(body).kind, parse(body).word) == (kind, word)


def _text_free(char: str) -> bool:
    """Punctuation or a symbol as matching sees it: nothing that compatibility normalisation makes a
    letter or a digit (℡ is TEL and ① is 1 once normalised: those are text, not decoration)."""
    return not any(c.isalnum() for c in unicodedata.normalize("NFKD", char))


SPACE = st.characters(categories=["Z"]) | st.sampled_from("\t\n\r\u200b\u2060\ufeff")
PUNCTUATION = st.characters(categories=["P", "S"]).filter(_text_free)
PICTOGRAPH = (st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF, categories=["So"])
              | st.sampled_from("☀☎☺♥⚠✅✔❤⭐✋"))
SKIN_TONE = st.characters(min_codepoint=0x1F3FB, max_codepoint=0x1F3FF)
VARIATION = st.sampled_from(["", "\ufe0f", "\ufe0e"])
EMOJI = st.one_of(
    st.tuples(PICTOGRAPH, VARIATION).map("".join),                                 # variation selectors
    st.tuples(PICTOGRAPH, SKIN_TONE).map("".join),                                 # skin tones
    st.lists(st.tuples(PICTOGRAPH, VARIATION | SKIN_TONE).map("".join), min_size=2, max_size=4)
    .map("\u200d".join),                                                            # ZWJ sequences
    st.tuples(st.sampled_from("0123456789#*"), st.sampled_from(["", "\ufe0f"])).map(lambda k: f"{k[0]}{k[1]}\u20e3"),
    st.text(st.characters(min_codepoint=0x1F1E6, max_codepoint=0x1F1FF), min_size=2, max_size=2),  # flags
    st.text(st.characters(min_codepoint=0xE0061, max_codepoint=0xE007A), min_size=2, max_size=5)
    .map(lambda tags: f"\U0001F3F4{tags}\U000E007F"),                              # 🏴 subdivision flags
    # Real ones, among them emoji that compatibility normalisation alone would make letters (™ TM, ℹ i)
    st.sampled_from(["🛑", "🙏", "🙂", "👍🏽", "❤️", "👩\u200d❤️\u200d💋\u200d👨", "🏳️\u200d🌈", "1️⃣", "#️⃣",
                     "🇫🇷", "™️", "™", "ℹ️", "Ⓜ️", "🅰️", "🈁", "©", "\u200d", "\ufe0f"]),
)
WRAPPING = st.lists(SPACE | PUNCTUATION | EMOJI, max_size=6).map("".join)
AS_TYPED = st.sampled_from([str, str.lower, str.capitalize, str.title])
# Words that are no keyword and no JOIN code (JOIN TONIGHT is a code nobody has: the app says so)
OTHER_WORDS = st.sampled_from(["it", "me", "now", "please help", "I'm scared", "s'il vous plaît", "moi aussi",
                               "ça va", "ok", "x"])
BETWEEN = st.tuples(WRAPPING, st.sampled_from([" ", "\u00a0", "\n", "  "]), WRAPPING).map("".join)


@pytest.mark.parametrize(("kind", "word", "language"), ALL_WORDS)
@settings(max_examples=25, deadline=None)
@given(before=WRAPPING, after=WRAPPING, typed=AS_TYPED)
def test_any_keyword_wrapped_in_spaces_punctuation_and_emoji_is_that_keyword(kind, word, language, before, after,
                                                                             typed):
    assert parse(before + typed(word) + after) == Keyword(kind, word, language, None)


@settings(max_examples=150, deadline=None)
@given(join=st.sampled_from(sorted(KEYWORDS["join"].items())),
       code=st.from_regex(r"[A-Z0-9]{4,12}", fullmatch=True), before=WRAPPING, after=WRAPPING, typed=AS_TYPED)
def test_join_and_its_code_wrapped_in_emoji_is_still_that_join(join, code, before, after, typed):
    word, language = join
    assert parse(before + typed(f"{word} {code}") + after) == Keyword("join", word, language, code)


@settings(max_examples=300, deadline=None)
@given(keyword=st.sampled_from(ALL_WORDS), other=OTHER_WORDS, other_first=st.booleans(), before=WRAPPING,
       between=BETWEEN, after=WRAPPING, typed=AS_TYPED)
def test_a_keyword_with_other_words_is_not_a_keyword(keyword, other, other_first, before, between, after, typed):
    _, word, _ = keyword
    words = (other, typed(word)) if other_first else (typed(word), other)
    assert parse(before + between.join(words) + after) is None
