"""Encoding and segment count of outbound bodies (what Twilio sends and bills)."""

import math
import random

import pytest

from telline.sms.segments import Segments, measure

EMOJI = "\U0001F600"  # 😀, outside the BMP: a surrogate pair, 2 UTF-16 units

# From the GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), one septet each.
GSM_BASIC = "éèùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉÄÖÑÜ§¿äöñüà¡£¥@$¤\n\r !\"#%&'()*+,-./:;<=>?09AZaz"
# From its extension table: ESC + one septet each.
GSM_EXTENSION = "€[]{}^~|\\\f"
# Not GSM: each one alone switches a body to UCS-2.
NOT_GSM = ["ê", "â", "î", "ô", "û", "ç", "ë", "ï", "œ", "«", "»", "’", "“", "”", "`", "À", "È",
           "\u00a0", "\u202f", EMOJI, "❤", "\x1b"]


def test_empty_body_is_one_gsm_segment():
    assert measure("") == Segments("GSM-7", 0, 1)


@pytest.mark.parametrize("char", GSM_BASIC)
def test_basic_gsm_characters_are_one_septet(char):
    assert measure(char) == Segments("GSM-7", 1, 1)


@pytest.mark.parametrize("char", GSM_EXTENSION)
def test_extension_characters_are_two_septets(char):
    assert measure(char) == Segments("GSM-7", 2, 1)


@pytest.mark.parametrize("char", NOT_GSM)
def test_one_non_gsm_character_switches_to_ucs2(char):
    assert measure("a" * 10 + char).encoding == "UCS-2"


@pytest.mark.parametrize(("length", "count"), [(160, 1), (161, 2), (306, 2), (307, 3), (1600, 11)])
def test_gsm_segment_boundaries(length, count):
    assert measure("a" * length) == Segments("GSM-7", length, count)


@pytest.mark.parametrize(("length", "count"), [(70, 1), (71, 2), (134, 2), (135, 3), (1600, 24)])
def test_ucs2_segment_boundaries(length, count):
    assert measure("ê" * length) == Segments("UCS-2", length, count)


def test_one_emoji_turns_a_100_character_text_into_two_ucs2_segments():
    assert measure("a" * 100) == Segments("GSM-7", 100, 1)
    assert measure("a" * 100 + EMOJI) == Segments("UCS-2", 102, 2)


def test_french_with_e_acute_e_grave_a_grave_stays_gsm():
    body = "Réunion à 19h à l'église, près de la gare. Ça commence à l'heure. Bonne soirée !"
    assert measure(body) == Segments("GSM-7", len(body), 1)


@pytest.mark.parametrize("body", ["Où êtes-vous ?", "Le garçon arrive.", "C’est demain."])
def test_french_with_e_circumflex_c_cedilla_or_curly_apostrophe_is_ucs2(body):
    assert measure(body) == Segments("UCS-2", len(body), 1)


def test_euro_sign_counts_two_septets():
    assert measure("€") == Segments("GSM-7", 2, 1)
    assert measure("€" * 80) == Segments("GSM-7", 160, 1)
    assert measure("€" * 81) == Segments("GSM-7", 162, 2)


def test_an_escape_pair_at_the_boundary_moves_whole_to_the_next_segment():
    # Septets 153 and 154 would be ESC and "e": the pair opens segment 2 (152 + 153 + 1).
    assert measure("a" * 152 + "€" + "a" * 152) == Segments("GSM-7", 306, 3)
    assert measure("a" * 153 + "€" + "a" * 151) == Segments("GSM-7", 306, 2)


def test_only_brackets_fit_76_per_segment():
    # Reported sent and billed by Twilio as 3 segments (message-segment-calculator issue #39).
    assert measure("]" * 153) == Segments("GSM-7", 306, 3)


def test_a_surrogate_pair_at_the_boundary_moves_whole_to_the_next_segment():
    assert measure("ê" * 66 + EMOJI + "ê" * 66) == Segments("UCS-2", 134, 3)
    assert measure("ê" * 67 + EMOJI + "ê" * 65) == Segments("UCS-2", 134, 2)


@pytest.mark.parametrize(("body", "expected"), [
    ("€" * 1600, Segments("GSM-7", 3200, 22)),      # 76 pairs per segment
    (EMOJI * 800, Segments("UCS-2", 1600, 25)),     # 33 emoji per segment
    (EMOJI * 1600, Segments("UCS-2", 3200, 49)),
])
def test_longest_bodies(body, expected):
    assert measure(body) == expected


def random_bodies(alphabet, count=300):
    rng = random.Random(0)  # seeded: the same bodies every run
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 1600))) for _ in range(count)]


def test_one_septet_characters_split_every_153():
    for body in random_bodies("abc é@\n"):
        n = len(body)
        assert measure(body) == Segments("GSM-7", n, 1 if n <= 160 else math.ceil(n / 153))


def test_escape_pairs_cost_at_most_one_lost_septet_per_segment():
    for body in random_bodies("ab€["):
        measured = measure(body)
        lowest = 1 if measured.units <= 160 else math.ceil(measured.units / 153)
        assert lowest <= measured.count <= max(1, math.ceil(measured.units / 152))
