"""Digits as spoken words, so that a recognizer writing "10 meters" is scored
like the reference's "ten meters" (Whisper writes numbers either way).

Integers up to the billions, thousands separators, decimals ("2.5" is "two
point five"), ordinals ("3rd" is "third") and percentages ("4%" is "four percent"). Years are read as numbers
("1984" is "one thousand nine hundred eighty four"), which is what the
reference tables spell out; a mismatch there costs a few words, not a crash.
"""

from __future__ import annotations

import re

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINALS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_NUMBER = re.compile(r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:st|nd|rd|th)?)%?", re.IGNORECASE)


def integer_words(n: int) -> str:
    """``n`` (>= 0) in words: 21 -> "twenty one", 105 -> "one hundred five"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return f"{integer_words(high)} {name}" + (f" {integer_words(rest)}" if rest else "")
    raise AssertionError(n)  # unreachable: every n >= 100 has a scale


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spoken(match: re.Match[str]) -> str:
    token = match.group(0).replace(",", "")
    if token.endswith("%"):
        return _spoken_text(token[:-1]) + "percent "
    return _spoken_text(token)


def _spoken_text(token: str) -> str:
    suffix = token[-2:].lower() if token[-2:].isalpha() else ""
    digits = token[:-2] if suffix else token
    whole, _, fraction = digits.partition(".")
    words = integer_words(int(whole))
    if suffix:
        return f" {_ordinal(words)} "
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return f" {words} "


def spell_numbers(text: str) -> str:
    """``text`` with each number written out in words."""
    return _NUMBER.sub(_spoken, text)
