"""Recognition loops: Whisper repeating a phrase it has already written.

A greedy decoder that has written a phrase once is drawn to write it again,
most of all on a short utterance in a mostly silent window: a real "ten of
clubs" came out as "10 of clubs 10 of clubs 10 of clubs 10 of", and "turn on
the office lights" three times and a half (the turn then ended in "the", and
waited for more words). People do repeat themselves ("no, no", "five five"),
so only a phrase of two or more words said back to back three times, or of
four or more words twice, counts as a loop.

Pure: the recognizer (``stages.whisper``) decides what to do about it (decode
again with Whisper's standard window, and cut what still repeats).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\S+")
_NORM = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _NORM.sub("", word.lower())


def _loop_at(words: list[str], i: int, n: int) -> int:
    """How many times the ``n`` words at ``i`` follow each other (counting a last,
    partial copy as one more when it has at least one word)."""
    phrase = words[i : i + n]
    count, j = 1, i + n
    while words[j : j + n] == phrase:
        count, j = count + 1, j + n
    rest = words[j : j + n]
    if count >= 2 and rest and phrase[: len(rest)] == rest:
        count += 1  # the copy the decoder was cut off in
    return count


def find_loop(text: str) -> tuple[int, int] | None:
    """(word index, phrase length) of the first loop in ``text``, or None."""
    words = [_norm(w) for w in _TOKEN.findall(text)]
    for n in range(2, len(words) // 2 + 1):
        needed = 2 if n >= 4 else 3
        for i in range(len(words) - 2 * n + 1):
            if _loop_at(words, i, n) >= needed:
                return i, n
    return None


def cut_loop(text: str) -> str:
    """``text`` with every loop cut to its first copy (the words as written)."""
    while (found := find_loop(text)) is not None:
        i, n = found
        tokens = _TOKEN.findall(text)
        words = [_norm(w) for w in tokens]
        j = i + n
        while words[j : j + n] == words[i : i + n]:
            j += n
        rest = words[j : j + n]
        if rest and words[i : i + len(rest)] == rest:
            j += len(rest)
        kept = tokens[: i + n] + tokens[j:]
        text = " ".join(kept)
    return text
