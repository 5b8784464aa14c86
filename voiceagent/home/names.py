"""A misheard name taken for the name of the house it is close to: Whisper tiny
writes "the kitchen like" and "the leaving room lamp" for names it has never
seen, and Home Assistant's sentences match a name only as written.

Pure text, no model: the words of a transcript most like one of the house's
names (entities, aliases, areas, floors) are replaced by that name, so the
command can be matched once more.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

NEAR = 0.8
"""How alike (difflib's ratio) misheard words must be to a name to be taken for it."""

EDGE = 0.75
"""How alike the first and the last word of a span of another length than the
name must be to the name's (or start with its letter), so that a span with an
extra word ("kitchen light on") is not taken for the name and the word lost."""

MAX_WORDS = 12
"""A longer transcript is a sentence, not a command: no name is looked for."""

SHARED = 0.3
"""The share of a name's letter triples a transcript must have for its spans to
be compared with the name at all: a cheap bound that keeps a house of hundreds
of names well under a millisecond (difflib on every span took ~60 ms for 300)."""

_WORD = re.compile(r"[\w'%-]+")


def closest_name(text: str, names: Iterable[str]) -> str | None:
    """``text`` with the words most like one of ``names`` replaced by that name.

    None when no span of words is close enough to a name (``NEAR``). Words that
    are names exactly are never replaced as they stand ("kitchen light" is not
    made "kitchen lights"); with a misheard word beside them they may be.
    """
    words = _WORD.findall(text.casefold())
    if not words or len(words) > MAX_WORDS:
        return None
    keys = {name: name.casefold().split() for name in dict.fromkeys(names) if name.split()}
    said = _said_as_written(words, keys.values())
    text_triples = _triples(" ".join(words))
    best: tuple[float, int, int, str] | None = None
    for name, key_words in keys.items():
        key = " ".join(key_words)
        triples = _triples(key)
        if len(triples & text_triples) < SHARED * len(triples):
            continue
        n = len(key_words)
        for size in sorted({max(1, n - 1), n, n + 1}):
            for start in range(len(words) - size + 1):
                if said.issuperset(range(start, start + size)):
                    continue  # said as written: right, and never to be made another name
                span = words[start:start + size]
                joined = " ".join(span)
                m = difflib.SequenceMatcher(None, joined, key)
                if m.real_quick_ratio() < NEAR or m.quick_ratio() < NEAR:
                    continue
                score = m.ratio()
                if score < NEAR or (best is not None and score <= best[0]):
                    continue
                if size == n or (_alike(span[0], key_words[0]) and _alike(span[-1], key_words[-1])):
                    best = (score, start, size, name)
    if best is None:
        return None
    _, start, size, name = best
    return " ".join([*words[:start], name, *words[start + size:]])


def _triples(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(max(1, len(text) - 2))}


def _said_as_written(words: list[str], keys: Iterable[list[str]]) -> set[int]:
    """The positions of the words that are a name exactly."""
    said: set[int] = set()
    for key in keys:
        for start in range(len(words) - len(key) + 1):
            if words[start:start + len(key)] == key:
                said.update(range(start, start + len(key)))
    return said


def _alike(word: str, name_word: str) -> bool:
    return word[:1] == name_word[:1] or difflib.SequenceMatcher(None, word, name_word).ratio() >= EDGE
