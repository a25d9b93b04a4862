"""Pins the WebShop analyzer to Lucene 8's EnglishAnalyzer behaviour.

Search rankings depend on exact terms and on token counts (BM25 document length), so each filter is
checked on the cases where a naive tokenizer or stemmer differs from Lucene's.
"""

from __future__ import annotations

import random

import pytest
import regex

from environments.webshop import analysis
from environments.webshop.analysis import (
    MAX_TOKEN_LENGTH,
    STOP_WORDS,
    EnglishAnalyzer,
    analyze,
    java_lower,
    porter_stem,
    strip_possessive,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("6.76 fl oz", ["6.76", "fl", "oz"]),
        ("l'eau d'issey", ["l'eau", "d'issey"]),
        ("material:solid", ["material:solid"]),
        ("3.4oz bottle", ["3.4oz", "bottle"]),
        ("e-mail", ["e", "mail"]),
        ("u.s.a.", ["u.s.a"]),
        ('1,000.50 and 5\'11" 12"', ["1,000.50", "and", "5'11", "12"]),
        ("a_b __x__ ___ x.1 1.x a..b", ["a_b", "__x__", "x", "1", "1", "x", "a", "b"]),
        ("ab1.2cd", ["ab1.2cd"]),
        ("wi-fi/bluetooth (2-pack)", ["wi", "fi", "bluetooth", "2", "pack"]),
        ("Material：Cotton，soft·touch", ["Material：Cotton", "soft·touch"]),  # fullwidth MidLetter
        ("children’s", ["children’s"]),
        ("café naïve", ["café", "naïve"]),
        ("cafe\u0301", ["cafe\u0301"]),  # combining mark stays with its letter (WB4)
        ("soft\u00adware", ["soft\u00adware"]),  # soft hyphen is Format
        ("a\u202fb", ["a\u202fb"]),  # narrow no-break space is ExtendNumLet
    ],
)
def test_standard_tokenizer_words_and_numbers(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("❤️ love", ["❤️", "love"]),
        ("🌸🌸", ["🌸", "🌸"]),
        ("👨\u200d👩\u200d👧 family", ["👨\u200d👩\u200d👧", "family"]),  # ZWJ sequence
        ("👍🏽", ["👍🏽"]),  # modifier sequence
        ("1️⃣ #⃣", ["1️⃣", "#⃣"]),  # keycaps
        ("🇺🇸", ["🇺🇸"]),  # flag
        ("★ ☞ ♡ ✔", ["★", "☞", "♡", "✔"]),  # Extended_Pictographic as of Emoji 11
        ("©2020 ™", ["©", "2020", "™"]),
        ("◆ ● → ※", []),  # symbols that are not emoji are skipped
        ("食品 ひらがな", ["食", "品", "ひ", "ら", "が", "な"]),  # one token per ideograph / hiragana
        ("カタカナ", ["カタカナ"]),
        ("ภาษาไทย", ["ภาษาไทย"]),  # South-East-Asian run kept whole
    ],
)
def test_standard_tokenizer_emoji_and_cjk(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_long_tokens_are_chopped_not_dropped() -> None:
    # Lucene's scanner buffer holds MAX_TOKEN_LENGTH chars: longer tokens come out in pieces.
    long_word = "b" * (2 * MAX_TOKEN_LENGTH + 1)
    assert tokenize(f"x {long_word} y") == ["x", "b" * MAX_TOKEN_LENGTH, "b" * MAX_TOKEN_LENGTH, "b", "y"]
    assert tokenize("a" * MAX_TOKEN_LENGTH) == ["a" * MAX_TOKEN_LENGTH]


def test_greedy_pattern_gives_the_longest_match() -> None:
    # JFlex takes the longest match; the pattern is written so that leftmost-greedy agrees. Check
    # against the regex module's POSIX (leftmost-longest) mode on random strings of tricky classes.
    posix = regex.compile("(?p)" + analysis._TOKEN.pattern, regex.V1)
    alphabet = list("aZ09_.,:;'\" -é\u0301\u00ad\u200d\ufe0f\u20e3#*❤★👍🏽👨🇺ア食ひא’\u202fไ")
    rng = random.Random(7)
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        assert analysis._TOKEN.findall(text) == posix.findall(text), repr(text)


def test_ascii_fast_path_matches_unicode_pattern() -> None:
    alphabet = list("aZ09_.,:;'\" -\t\n#*/()é’")
    rng = random.Random(11)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        assert tokenize(text) == analysis._TOKEN.findall(text), repr(text)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("John's", "John"),
        ("JOHN'S", "JOHN"),
        ("john’s", "john"),
        ("john＇s", "john"),
        ("johns", "johns"),
        ("valentine‘s", "valentine‘s"),  # U+2018 is not an apostrophe for the filter
        ("'s", ""),
    ],
)
def test_possessive_filter(token: str, expected: str) -> None:
    assert strip_possessive(token) == expected


def test_lowercase_is_per_code_point() -> None:
    assert java_lower("ΟΔΟΣ") == "οδοσ"  # no final-sigma context rule
    assert java_lower("İSTANBUL") == "istanbul"  # single code point, unlike str.lower()
    assert java_lower("MiXeD") == "mixed"


def test_stop_words_are_lucenes_33() -> None:
    assert len(STOP_WORDS) == 33
    assert {"a", "the", "is", "as", "with", "will", "such"} <= STOP_WORDS
    assert not {"i", "you", "he", "from", "can", "its"} & STOP_WORDS
    assert analyze("The Shoes Are For Men") == ("shoe", "men")


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("caresses", "caress"),
        ("ponies", "poni"),
        ("ties", "ti"),
        ("cats", "cat"),
        ("feed", "feed"),
        ("agreed", "agre"),
        ("plastered", "plaster"),
        ("motoring", "motor"),
        ("hopping", "hop"),
        ("falling", "fall"),
        ("filing", "file"),
        ("happy", "happi"),
        ("sky", "sky"),
        ("relational", "relat"),
        ("conditional", "condit"),
        ("generalizations", "gener"),
        ("oscillators", "oscil"),
        ("hopefulness", "hope"),
        ("sensibiliti", "sensibl"),
        ("conformabli", "conform"),  # departure: -bli -> -ble
        ("analogi", "analog"),  # departure: -logi -> -log
        ("adjustment", "adjust"),
        ("adoption", "adopt"),
        ("electrical", "electr"),
        ("controll", "control"),
        ("running", "run"),
        ("shoes", "shoe"),
        ("women", "women"),
        ("is", "is"),  # <= 2 chars: untouched
        ("as", "as"),
        ("us", "us"),
        ("100s", "100"),
        ("3.4oz", "3.4oz"),
    ],
)
def test_porter_stemmer(word: str, stem: str) -> None:
    assert porter_stem(word) == stem


def test_analyzer_chain_order() -> None:
    # Possessive removal before lowercasing, stop words before stemming ("was" is a stop word but
    # "wa" / "thi" never appear), and stemming last.
    assert analyze("Women's Running SHOES, this was it's") == ("women", "run", "shoe")
    assert EnglishAnalyzer().analyze("L'Eau D'Issey 6.76 FL OZ") == ["l'eau", "d'issei", "6.76", "fl", "oz"]
