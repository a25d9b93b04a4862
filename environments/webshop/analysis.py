"""Text analysis that reproduces the Lucene 8 English analyzer used by the original WebShop index.

WebShop ranks products with a Pyserini (Anserini / Lucene 8) index whose ``contents`` field is
analysed by StandardTokenizer -> EnglishPossessiveFilter -> LowerCaseFilter -> StopFilter (33 English
stop words) -> PorterStemFilter. Search results are only comparable with published numbers if every
step matches, because BM25 depends on exact term identities *and* on document lengths (the number of
tokens that survive the stop filter). This module is an independent implementation of that chain:

* :func:`tokenize` follows the Unicode UAX#29 word-break rules the way Lucene's StandardTokenizer
  applies them (Unicode 9 word-break classes, Emoji 11 sequences, one token per Han / Hiragana
  character, runs of South-East-Asian script kept whole, tokens capped at 255 UTF-16 units).
* :func:`strip_possessive`, :func:`java_lower`, :data:`STOP_WORDS` and :func:`porter_stem` are the
  remaining filters.
* :class:`EnglishAnalyzer` chains them with a memo so that analysing a whole catalogue stays fast.

Tokenising uses the third-party ``regex`` module (a dependency of ``transformers``) because the
standard library cannot address Unicode Word_Break / Emoji properties.
"""

from __future__ import annotations

import functools
import re

import regex

__all__ = [
    "MAX_TOKEN_LENGTH",
    "STOP_WORDS",
    "EnglishAnalyzer",
    "analyze",
    "analyze_token",
    "java_lower",
    "porter_stem",
    "strip_possessive",
    "tokenize",
]

#: Lucene's StandardTokenizer scanner buffer (and default maxTokenLength); longer runs are cut into
#: pieces of at most this many UTF-16 code units, not dropped.
MAX_TOKEN_LENGTH = 255

#: EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (Lucene 8), the stop list of the original index.
STOP_WORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


# --------------------------------------------------------------------------------------------------
# StandardTokenizer
# --------------------------------------------------------------------------------------------------
# Emoji data as of Emoji 11.0 (unicode.org emoji-data.txt), the version Lucene 8's grammar was built
# from; later Unicode releases narrowed Extended_Pictographic (e.g. U+2605 BLACK STAR, U+2661 WHITE
# HEART SUIT), which would change token counts and hence BM25 document lengths.
# Emoji characters that can start an emoji token: Extended_Pictographic plus Emoji, minus regional
# indicators, keycap bases [0-9#*] and skin-tone modifiers (those only form multi-char sequences).
_EMOJI_CHAR = (
    "A9 AE 203C 2049 2122 2139 2194-2199 21A9-21AA 231A-231B 2328 2388 23CF 23E9-23F3 23F8-23FA 24C2 "
    "25AA-25AB 25B6 25C0 25FB-25FE 2600-2605 2607-2612 2614-2685 2690-2705 2708-2712 2714 2716 271D "
    "2721 2728 2733-2734 2744 2747 274C 274E 2753-2755 2757 2763-2767 2795-2797 27A1 27B0 27BF "
    "2934-2935 2B05-2B07 2B1B-2B1C 2B50 2B55 3030 303D 3297 3299 1F000-1F0FF 1F10D-1F10F 1F12F "
    "1F16C-1F171 1F17E-1F17F 1F18E 1F191-1F19A 1F1AD-1F1E5 1F201-1F20F 1F21A 1F22F 1F232-1F23A "
    "1F23C-1F23F 1F249-1F3FA 1F400-1F53D 1F546-1F64F 1F680-1F6FF 1F774-1F77F 1F7D5-1F7FF 1F80C-1F80F "
    "1F848-1F84F 1F85A-1F85F 1F888-1F88F 1F8AE-1F8FF 1F90C-1F93A 1F93C-1F945 1F947-1FFFD"
)
_EMOJI_MODIFIER = "1F3FB-1F3FF"
_EMOJI_MODIFIER_BASE = (
    "261D 26F9 270A-270D 1F385 1F3C2-1F3C4 1F3C7 1F3CA-1F3CC 1F442-1F443 1F446-1F450 1F466-1F469 "
    "1F46E 1F470-1F478 1F47C 1F481-1F483 1F485-1F487 1F4AA 1F574-1F575 1F57A 1F590 1F595-1F596 "
    "1F645-1F647 1F64B-1F64F 1F6A3 1F6B4-1F6B6 1F6C0 1F6CC 1F918-1F91C 1F91E-1F91F 1F926 1F930-1F939 "
    "1F93D-1F93E 1F9B5-1F9B6 1F9B8-1F9B9 1F9D1-1F9DD"
)


def _char_class(ranges: str) -> str:
    """Regex character class for space-separated hex code points / ``lo-hi`` ranges."""
    parts = []
    for item in ranges.split():
        lo, _, hi = item.partition("-")
        parts.append(f"\\U{int(lo, 16):08X}" + (f"-\\U{int(hi, 16):08X}" if hi else ""))
    return "[" + "".join(parts) + "]"


def _build_token_pattern() -> regex.Pattern[str]:
    """Compile one pattern whose leftmost-greedy matches are Lucene's longest-match tokens.

    Each alternative is a token rule of the StandardTokenizer grammar; characters matched by none are
    skipped, exactly like the grammar's catch-all rule. Word-break classes come from the ``regex``
    module's (newer) Unicode tables; they differ from Unicode 9 only on rare characters, except for
    skin-tone modifiers, which became ``Extend`` in Unicode 11: they are excluded from the absorbed
    marks so that ``a🏻`` still splits as in Lucene 8.
    """
    modifier = _char_class(_EMOJI_MODIFIER)
    # WB4: a character absorbs following Extend / Format / ZWJ marks.
    x = rf"[[\p{{WB=Format}}\p{{WB=Extend}}\p{{WB=ZWJ}}]--{modifier}]*"
    ahletter = r"[\p{WB=ALetter}\p{WB=Hebrew_Letter}]" + x
    hebrew = r"\p{WB=Hebrew_Letter}" + x
    numeric = r"[\p{WB=Numeric}[\p{Block=Halfwidth_And_Fullwidth_Forms}&&\p{Nd}]]" + x
    katakana = r"\p{WB=Katakana}" + x
    mid_letter = r"[\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=Single_Quote}]" + x
    mid_num = r"[\p{WB=MidNum}\p{WB=MidNumLet}\p{WB=Single_Quote}]" + x
    ext_num_let = r"\p{WB=ExtendNumLet}" + x
    single_quote = r"\p{WB=Single_Quote}" + x
    double_quote = r"\p{WB=Double_Quote}" + x

    # WB5-WB13b: letters and digits join directly, through ExtendNumLet ('_'), and through a single
    # MidLetter (letters) or MidNum (digits) character that has the same class on both sides.
    # WB7a-c: a Hebrew letter also takes a following ' or "+Hebrew letter; the letters rule leaves
    # such a letter to that rule, which makes the leftmost-greedy match the longest one.
    hebrew_quoted = f"{hebrew}(?:{single_quote}|{double_quote}{hebrew})"
    plain_letter = f"(?!{hebrew_quoted}){ahletter}"
    letters = f"{plain_letter}(?:(?:{ext_num_let})*{plain_letter}|{mid_letter}{plain_letter})*"
    digits = f"{numeric}(?:(?:{ext_num_let})*{numeric}|{mid_num}{numeric})*"
    core = f"(?:{katakana}(?:(?:{ext_num_let})*{katakana})*|(?:{hebrew_quoted}|{digits}|{letters})+)"
    word = f"(?:{ext_num_let})*{core}(?:(?:{ext_num_let})+{core})*(?:{ext_num_let})*"

    # Emoji sequences (UTS #51 emoji_sequence) as the Lucene 8 grammar recognises them.
    emoji_char = _char_class(_EMOJI_CHAR)
    modifier_base = _char_class(_EMOJI_MODIFIER_BASE)
    emoji_start = f"[{emoji_char}{modifier_base}{modifier}]"
    # Marks after an emoji, minus the presentation selectors. A ZWJ followed by another emoji is the
    # joiner of a ZWJ sequence (the longest match), so it is left for the sequence rule.
    xs = (
        rf"(?:[[\p{{WB=Format}}\p{{WB=Extend}}]--[\uFE0E\uFE0F{modifier}]]"
        rf"|\u200D(?!\u200D*{emoji_start}))*"
    )
    # Modifier sequences first: they are the longer reading of a base followed by a skin tone.
    emoji_unit = (
        rf"(?:(?:\u200D*{modifier_base}{xs})?{modifier}{xs}"
        rf"|\u200D*{emoji_char}{xs}\uFE0F?)"
    )
    emoji = (
        rf"{emoji_unit}(?:[\U000E0020-\U000E007E]+\U000E007F|(?:\u200D{emoji_unit})*)"
        rf"|[0-9#*]{xs}\uFE0F?\u20E3{xs}"
        rf"|\p{{WB=Regional_Indicator}}{x}\p{{WB=Regional_Indicator}}{x}"
    )
    complex_context = r"(?:\p{Line_Break=Complex_Context}" + x + ")+"
    ideographic = r"\p{Script=Han}" + x
    hiragana = r"\p{Script=Hiragana}" + x
    return regex.compile(
        f"{word}|{emoji}|{complex_context}|{ideographic}|{hiragana}",
        regex.V1,
    )


_TOKEN = _build_token_pattern()

# The same grammar restricted to ASCII, for the standard-library engine (several times faster than
# the property-aware pattern). In ASCII, ALetter = [A-Za-z], Numeric = [0-9], MidLetter = ':',
# MidNum = ',;', MidNumLet = '.', Single_Quote = "'", ExtendNumLet = '_'; nothing else joins.
_ASCII_LETTERS = r"[A-Za-z](?:_*[A-Za-z]|[:.'][A-Za-z])*"
_ASCII_DIGITS = r"[0-9](?:_*[0-9]|[,;.'][0-9])*"
_ASCII_CORE = f"(?:{_ASCII_DIGITS}|{_ASCII_LETTERS})+"
_ASCII_TOKEN = re.compile(f"_*{_ASCII_CORE}(?:_+{_ASCII_CORE})*_*")
# A run between ASCII whitespace that holds a non-ASCII character. No token crosses ASCII
# whitespace, so the text between such runs can go through the ASCII pattern. (The lookbehind makes
# the search start only at run starts, keeping it linear.)
_NON_ASCII_RUN = re.compile(r"(?<![^ \t\n\r\f\v])[^ \t\n\r\f\v]*[^\x00-\x7f][^ \t\n\r\f\v]*")


def _utf16_len(text: str) -> int:
    """Length in Java chars: the scanner buffer counts UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _split_long(text: str, start: int, end: int) -> list[str]:
    """Re-scan an over-long token the way Lucene's fixed 255-char scanner buffer cuts it."""
    pieces: list[str] = []
    pos = start
    while pos < end:
        window = text[pos : min(end, pos + MAX_TOKEN_LENGTH)]
        while _utf16_len(window) > MAX_TOKEN_LENGTH:
            window = window[:-1]
        match = _TOKEN.match(window)
        if match is None or match.end() == 0:
            pos += 1
            continue
        pieces.append(match.group())
        pos += match.end()
    return pieces


def tokenize(text: str) -> list[str]:
    """Split ``text`` into StandardTokenizer tokens (original case kept)."""
    if text.isascii():
        tokens: list[str] = _ASCII_TOKEN.findall(text)
    else:
        tokens = []
        pos = 0
        for run in _NON_ASCII_RUN.finditer(text):
            tokens += _ASCII_TOKEN.findall(text, pos, run.start())
            tokens += _TOKEN.findall(run.group())
            pos = run.end()
        tokens += _ASCII_TOKEN.findall(text, pos)
    # A token over the limit is rare; checking the char length first keeps the common case cheap.
    if max(map(len, tokens), default=0) > MAX_TOKEN_LENGTH // 2 and any(
        _utf16_len(tok) > MAX_TOKEN_LENGTH for tok in tokens
    ):
        tokens = []
        for match in _TOKEN.finditer(text):
            if _utf16_len(match.group()) > MAX_TOKEN_LENGTH:
                tokens.extend(_split_long(text, match.start(), match.end()))
            else:
                tokens.append(match.group())
    return tokens


# --------------------------------------------------------------------------------------------------
# Token filters
# --------------------------------------------------------------------------------------------------
_APOSTROPHES = frozenset("'\u2019\uff07")


def strip_possessive(token: str) -> str:
    """EnglishPossessiveFilter: drop a trailing 's / ’s / ＇s (either case of s; runs before lowercasing)."""
    if len(token) >= 2 and token[-1] in "sS" and token[-2] in _APOSTROPHES:
        return token[:-2]
    return token


def java_lower(token: str) -> str:
    """LowerCaseFilter: Java's per-code-point ``Character.toLowerCase``.

    Python's ``str.lower`` applies context rules (final sigma) and one multi-character mapping
    (U+0130); Java maps every code point on its own to a single code point.
    """
    if token.isascii():
        return token.lower()
    return "".join("i" if ch == "\u0130" else ch.lower() for ch in token)


# --------------------------------------------------------------------------------------------------
# Porter stemmer (Martin Porter's 1980 algorithm with the departures of his reference C version that
# Lucene's PorterStemmer keeps: -bli -> -ble, -logi -> -log, and no stemming of words of <= 2 chars).
# --------------------------------------------------------------------------------------------------
class _Porter:
    """One stemming run over a mutable buffer; indices follow Porter's description (k = last char)."""

    __slots__ = ("b", "j", "k")

    def __init__(self, word: str) -> None:
        self.b = list(word)
        self.k = len(word) - 1
        self.j = 0

    def cons(self, i: int) -> bool:
        ch = self.b[i]
        if ch in "aeiou":
            return False
        if ch == "y":
            return True if i == 0 else not self.cons(i - 1)
        return True

    def m(self) -> int:
        """Number of vowel-consonant sequences in b[0..j]."""
        n = 0
        i = 0
        j = self.j
        while True:
            if i > j:
                return n
            if not self.cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if self.cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not self.cons(i):
                    break
                i += 1
            i += 1

    def vowel_in_stem(self) -> bool:
        return any(not self.cons(i) for i in range(self.j + 1))

    def double_c(self, i: int) -> bool:
        return i >= 1 and self.b[i] == self.b[i - 1] and self.cons(i)

    def cvc(self, i: int) -> bool:
        if i < 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in "wxy"

    def ends(self, s: str) -> bool:
        n = len(s)
        start = self.k - n + 1
        if start < 0 or "".join(self.b[start : self.k + 1]) != s:
            return False
        self.j = self.k - n
        return True

    def set_to(self, s: str) -> None:
        del self.b[self.j + 1 :]
        self.b.extend(s)
        self.k = self.j + len(s)

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.set_to(s)

    def step1ab(self) -> None:
        """Plurals and -ed / -ing."""
        b = self.b
        if b[self.k] == "s":
            if self.ends("sses"):
                self.k -= 2
            elif self.ends("ies"):
                self.set_to("i")
            elif b[self.k - 1] != "s":
                self.k -= 1
        if self.ends("eed"):
            if self.m() > 0:
                self.k -= 1
        elif (self.ends("ed") or self.ends("ing")) and self.vowel_in_stem():
            self.k = self.j
            if self.ends("at"):
                self.set_to("ate")
            elif self.ends("bl"):
                self.set_to("ble")
            elif self.ends("iz"):
                self.set_to("ize")
            elif self.double_c(self.k):
                if self.b[self.k] not in "lsz":
                    self.k -= 1
            elif self.m() == 1 and self.cvc(self.k):
                self.set_to("e")

    def step1c(self) -> None:
        """Terminal y -> i when the stem has a vowel."""
        if self.ends("y") and self.vowel_in_stem():
            self.b[self.k] = "i"

    _STEP2 = {
        "a": (("ational", "ate"), ("tional", "tion")),
        "c": (("enci", "ence"), ("anci", "ance")),
        "e": (("izer", "ize"),),
        "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
        "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
        "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
        "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
        "g": (("logi", "log"),),
    }
    _STEP3 = {
        "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
        "i": (("iciti", "ic"),),
        "l": (("ical", "ic"), ("ful", "")),
        "s": (("ness", ""),),
    }
    _STEP4 = {
        "a": ("al",),
        "c": ("ance", "ence"),
        "e": ("er",),
        "i": ("ic",),
        "l": ("able", "ible"),
        "n": ("ant", "ement", "ment", "ent"),
        "o": ("ion", "ou"),
        "s": ("ism",),
        "t": ("ate", "iti"),
        "u": ("ous",),
        "v": ("ive",),
        "z": ("ize",),
    }

    def step2(self) -> None:
        """Double suffixes to single ones (-ization -> -ize ...); first matching suffix decides."""
        if self.k == 0:
            return
        for suffix, repl in self._STEP2.get(self.b[self.k - 1], ()):
            if self.ends(suffix):
                self.r(repl)
                return

    def step3(self) -> None:
        """-ic-, -full, -ness etc."""
        for suffix, repl in self._STEP3.get(self.b[self.k], ()):
            if self.ends(suffix):
                self.r(repl)
                return

    def step4(self) -> None:
        """Drop -ant, -ence etc. in context <c>vcvc<v>."""
        if self.k == 0:
            return
        for suffix in self._STEP4.get(self.b[self.k - 1], ()):
            if self.ends(suffix):
                if suffix == "ion" and not (self.j >= 0 and self.b[self.j] in "st"):
                    continue
                break
        else:
            return
        if self.m() > 1:
            self.k = self.j

    def step5(self) -> None:
        """Final -e and -ll."""
        self.j = self.k
        if self.b[self.k] == "e":
            a = self.m()
            if a > 1 or (a == 1 and not self.cvc(self.k - 1)):
                self.k -= 1
        if self.b[self.k] == "l" and self.double_c(self.k) and self.m() > 1:
            self.k -= 1

    def run(self) -> str:
        if self.k > 1:
            self.step1ab()
            self.step1c()
            self.step2()
            self.step3()
            self.step4()
            self.step5()
        return "".join(self.b[: self.k + 1])


def porter_stem(word: str) -> str:
    """Stem a lowercased word as Lucene's PorterStemFilter does (words of <= 2 chars unchanged)."""
    if len(word) <= 2:
        return word
    return _Porter(word).run()


# --------------------------------------------------------------------------------------------------
# The analyzer chain
# --------------------------------------------------------------------------------------------------
def analyze_token(token: str) -> str | None:
    """Possessive -> lowercase -> stop -> stem for one token; None when the stop filter drops it."""
    term = java_lower(strip_possessive(token))
    if term in STOP_WORDS:
        return None
    return porter_stem(term)


class EnglishAnalyzer:
    """Lucene EnglishAnalyzer equivalent with a bounded memo of token -> term.

    Product text repeats a small vocabulary, so memoising per raw token makes the filter chain
    nearly free; the memo is cleared when it reaches ``memo_size`` to bound memory.
    """

    def __init__(self, memo_size: int = 500_000) -> None:
        self._memo: dict[str, str | None] = {}
        self._memo_size = memo_size

    def analyze(self, text: str) -> list[str]:
        """Indexed terms of ``text`` in order; their count is Lucene's field length."""
        memo = self._memo
        if len(memo) > self._memo_size:
            memo.clear()
        terms: list[str] = []
        append = terms.append
        for token in tokenize(text):
            try:
                term = memo[token]
            except KeyError:
                term = memo[token] = analyze_token(token)
            if term is not None:
                append(term)
        return terms


_DEFAULT_ANALYZER = EnglishAnalyzer(memo_size=100_000)


@functools.lru_cache(maxsize=4096)
def analyze(text: str) -> tuple[str, ...]:
    """Analyse a short text such as a search query; results are LRU-cached (agents repeat queries)."""
    return tuple(_DEFAULT_ANALYZER.analyze(text))
