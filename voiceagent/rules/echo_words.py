"""Is a transcript the reply's own words heard back, however garbled?

Echo that leaks through the canceller (while it re-converges after a stall, or
under double talk) reaches the recognizer half-suppressed, and Whisper writes
what it can make of it: "serious work." for the played "mysterious world", "the
tail of a night" for "the tale of the knight". Counting the heard words that
occur literally in the reply misses those, and a missed echo stops the reply.
So the heard words are *aligned* with the played ones:

- each heard word is paired with at most one played word, in the order both
  were said, and consecutive pairs at most ``MAX_SKIP`` played words apart (the
  recognizer drops a word or two, but echo is one stretch of the reply, not
  words picked from all over it); the letters of played words of
  ``NEW_WORD_LETTERS`` or more skipped inside the stretch count against it,
  beyond those of heard words left unpaired in their place (a recognizer drops
  "a", "the", "to", but a left-out "rode" or "face" means it is not the reply);
- a pair scores by how alike the two words are (``word_likeness``): 1 for the
  same word, ``PART_OF_WORD`` for a heard word that is a piece of the played
  one (a canceller that cut a word's onset or end: "serious" of "mysterious"),
  else difflib's ratio of their letters ("work"/"world" 0.67, "tail"/"tale"
  0.75), and 0 below ``MIN_LIKENESS`` (different words);
- each heard word weighs its length in letters, so that "a" for "the" costs
  little and a new name or verb costs much;
- the transcript is echo when the best alignment covers at least
  ``MIN_COVERAGE`` of its letters, and every heard word of ``NEW_WORD_LETTERS``
  or more is like some word of the reply.

What someone says over a reply brings words the reply never said ("what",
"tell", "instead", another name). Those align with nothing, which keeps the
coverage low; and since a garble keeps most of a word's letters, a longer word
like none of the reply's is new content on its own: "what is the capital of
Spain" over "The capital of France is..." covers 64% of its letters, but
"what" and "spain" are the user's.

One more rule keeps a stop from being taken for echo: a transcript that starts
with a stop phrase ("stop", "wait", "no", "hold on") is echo only if the reply
said exactly those words in a row. The user saying "wait" is far likelier than
the canceller leaking it, and the reply saying "No problem" and hearing it back
is still echo.

Pure: words in, a decision out.
"""

from __future__ import annotations

from difflib import SequenceMatcher

MIN_COVERAGE = 0.7
"""Share of the heard letters an alignment must cover for the words to be echo."""
MIN_LIKENESS = 0.65
"""Word likeness below which two words are different words: "work"/"world" 0.67
is a near-match, "spain"/"seine" 0.6 and "about"/"and" 0.25 are not."""
PART_OF_WORD = 0.9
"""Likeness of a heard word that is a piece of a played word, at least
``MIN_PART_LETTERS`` long ("night" of "knight")."""
MIN_PART_LETTERS = 4
"""Shorter pieces ("the" of "there", "out" of "about") say nothing: they are
scored by their letters like any other pair."""
NEW_WORD_LETTERS = 4
"""Heard words this long or longer must be like a word of the reply."""
MAX_SKIP = 2
"""Played words that may lie between two paired ones."""


def word_likeness(heard: str, played: str) -> float:
    """How alike a heard word is to a played one, 0..1 (see the module docstring)."""
    if heard == played:
        return 1.0
    if len(heard) >= MIN_PART_LETTERS and heard in played:
        return PART_OF_WORD
    matcher = SequenceMatcher(None, heard, played, autojunk=False)
    # The cheap upper bounds first: most pairs differ in length or letters.
    if matcher.real_quick_ratio() < MIN_LIKENESS or matcher.quick_ratio() < MIN_LIKENESS:
        return 0.0
    ratio = matcher.ratio()
    return ratio if ratio >= MIN_LIKENESS else 0.0


def coverage(heard: list[str], played: list[str]) -> float:
    """Share of ``heard``'s letters that the best in-order alignment with a
    stretch of ``played`` accounts for, less the longer played words it skips
    inside that stretch; 0..1."""
    total = sum(len(w) for w in heard)
    if not total or not played:
        return 0.0
    # best[i][j]: the best score of an alignment whose last pair is heard i with
    # played j. Unpaired heard words in between score nothing, which is their
    # cost; skipped played words cost their letters: what a user says may reuse
    # the reply's words ("what about the dragon" over "that rode out to face the
    # dragon"), but echo is the reply's stretch with little left out.
    best = [[0.0] * len(played) for _ in heard]
    top = 0.0
    for i, h in enumerate(heard):
        likeness = {p: word_likeness(h, p) for p in set(played)}  # a reply repeats its words
        for j, p in enumerate(played):
            like = likeness[p]
            if not like:
                continue
            before = 0.0
            for a in range(i):
                unpaired = sum(len(w) for w in heard[a + 1 : i])
                for b in range(max(0, j - 1 - MAX_SKIP), j):
                    if best[a][b]:
                        # A heard word in place of a played one ("a" for "the")
                        # costs only once: the played letters beyond the heard ones.
                        skipped = sum(len(w) for w in played[b + 1 : j] if len(w) >= NEW_WORD_LETTERS)
                        before = max(before, best[a][b] - max(0, skipped - unpaired))
            best[i][j] = before + len(h) * like
            top = max(top, best[i][j])
    return top / total


def is_echo(heard: list[str], played: list[str], stop_phrases: list[list[str]]) -> bool:
    """Are the ``heard`` words (``words_of`` a transcript) the reply's ``played``
    words coming back? ``stop_phrases`` are word lists ("hold on" -> ["hold", "on"])."""
    if len(heard) < 2:
        return False  # one word is too little to tell "Paris" the echo from "Paris?" the question
    if any(p and heard[: len(p)] == p for p in stop_phrases):
        return _contains_run(played, heard)
    if any(len(h) >= NEW_WORD_LETTERS and not _like_any(h, played) for h in heard):
        return False
    return coverage(heard, played) >= MIN_COVERAGE


def _like_any(word: str, words: list[str]) -> bool:
    return any(word_likeness(word, w) for w in words)


def _contains_run(words: list[str], run: list[str]) -> bool:
    return any(words[k : k + len(run)] == run for k in range(len(words) - len(run) + 1))
