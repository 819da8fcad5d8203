"""Classifying incoming texts: keywords match the whole text; anything else reaches a person."""

import pytest

from telline.sms.keywords import JOIN_WORDS, KEYWORDS, Keyword, normalise, parse

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
    ("opt out", "OPTOUT"), ("Opt-Out", "OPTOUT"), ("OPTOUT", "OPTOUT"),
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
])
def test_join(body, expected):
    assert parse(body) == expected


@pytest.mark.parametrize("body", [
    "JOIN abc",             # too short for a code
    "JOIN abcdefghijklm",   # 13: too long
    "JOIN abc 123",         # two words: could be any sentence
    "JOIN abc_123", "JOIN #abc123", "JOIN abc123!x", "JOIN 😀😀😀😀",
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
])
def test_normalise(body, normal):
    assert normalise(body) == normal


def test_no_word_has_two_meanings():
    words = [word for words in KEYWORDS.values() for word in words] + list(JOIN_WORDS)
    assert len(words) == len(set(words))
    assert all(word == normalise(word) for word in words)  # stored as matching sees them
