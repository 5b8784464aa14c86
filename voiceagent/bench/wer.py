"""Word error rate: word-level Levenshtein distance after normalisation.

Small enough to write here rather than add a dependency. Both sides are
lower-cased and stripped of punctuation ("Tea?" == "tea", "it's" == "its",
"mm-hmm" == "mm hmm"), and numbers are spelled out ("10" == "ten"), so that only
the words count.
"""

from __future__ import annotations

import re

from voiceagent.bench.numbers import spell_numbers

_APOSTROPHES = re.compile(r"['\u2019]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers in words."""
    return _NOT_WORD.sub(" ", _APOSTROPHES.sub("", spell_numbers(text).lower())).split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions, deletions and insertions turning the reference into the hypothesis."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word errors per reference word (can exceed 1 with many insertions)."""
    return word_errors(reference, hypothesis) / max(len(normalize(reference)), 1)
