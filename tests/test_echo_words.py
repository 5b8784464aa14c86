"""Garbled echo of the reply against speech over it, judged on words alone."""

import pytest

from voiceagent.config import DEFAULT_STOP_PHRASES
from voiceagent.rules.bargein import words_of
from voiceagent.rules.echo_words import coverage, is_echo, word_likeness

OCEAN = ("The ocean is a vast and mysterious world, full of wonders that have captivated "
         "humanity for centuries.")
KNIGHT = ("This is the tale of the knight who rode out to face the dragon. The story begins "
          "in a small village by the sea.")
PARIS = ("Paris is the capital of France. It sits on the river Seine, and about two million "
         "people live in the city itself.")
NO_PROBLEM = "No problem. Here is a short story about a dragon."
STOPS = [words_of(p) for p in DEFAULT_STOP_PHRASES]


def _echo(heard: str, played: str) -> bool:
    return is_echo(words_of(heard), words_of(played), STOPS)


@pytest.mark.parametrize("heard, played", [
    ("serious work.", OCEAN),  # a stall's echo, heard at 150 ms: the false barge-in of issue 14
    ("mysterious world", OCEAN),
    ("the tail of a night", KNIGHT),
    ("The night road out to face the dragon.", KNIGHT),
    ("full of wanders that have", OCEAN),
    ("wonders that have", OCEAN),
    ("on the river sane, and about two million", PARIS),
    ("The story begins in a small village.", KNIGHT),
    ("No problem.", NO_PROBLEM),  # a stop word, but the reply said these very words
])
def test_garbled_echo_of_the_reply_is_echo(heard, played):
    assert _echo(heard, played)


@pytest.mark.parametrize("heard, played", [
    ("Stop the story.", KNIGHT),
    ("Wait, what about the dragon?", KNIGHT),
    ("No, tell me about Paris.", PARIS),
    ("Hold on, the knight.", KNIGHT),
    ("Never mind the dragon.", KNIGHT),
    ("No, a short story.", NO_PROBLEM),  # "no" and the rest are the reply's, not in a row
    ("What about the dragon?", KNIGHT),  # no stop word: "what" is new
    # every word like one of the reply's, in order, but "rode" and "face" left out
    ("What about the dragon?", "The knight that rode out to face the dragon."),
    ("What is the capital of Spain?", PARIS),
    ("Tell me about the village instead.", KNIGHT),
    ("How big is the ocean?", OCEAN),
    ("A city in Spain.", PARIS),
    ("I see a dog.", PARIS),
    ("Paris", PARIS),  # one word is too little to tell
])
def test_speech_over_the_reply_is_not_echo(heard, played):
    assert not _echo(heard, played)


def test_a_word_is_like_its_garbles_and_unlike_other_words():
    assert word_likeness("world", "world") == 1.0
    assert word_likeness("serious", "mysterious") > 0.8  # its onset cut off
    assert word_likeness("night", "knight") > 0.8
    assert 0.6 < word_likeness("work", "world") < 0.8
    assert 0.6 < word_likeness("tail", "tale") < 0.8
    assert word_likeness("out", "about") < 0.8  # too short a piece to say anything
    assert word_likeness("spain", "seine") == 0.0
    assert word_likeness("a", "the") == 0.0


def test_coverage_is_of_the_heard_letters_in_one_stretch_in_order():
    played = words_of(KNIGHT)
    assert coverage(words_of("the tale of the knight"), played) == 1.0
    # the same words, but in another order: only part of them lines up
    assert coverage(words_of("the knight of the tale"), played) < 0.7
    # words from all over the reply are not one stretch of it
    assert coverage(words_of("tale dragon village"), played) < 0.5
    assert coverage([], played) == 0.0
    assert coverage(words_of("the tale"), []) == 0.0
