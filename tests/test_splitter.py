from voiceagent.rules.splitter import ClauseSplitter, clean_for_speech


def feed(text: str, splitter: ClauseSplitter | None = None, step: int = 3) -> list[str]:
    s = splitter or ClauseSplitter(first_min_words=3, min_words=6, first_max_words=0)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += s.push(text[i : i + step])
    return out + s.flush()


def test_sentences_are_split_as_they_complete():
    s = ClauseSplitter(first_min_words=3, min_words=6, first_max_words=0)
    assert s.push("The capital of France is Paris.") == []  # no space yet: maybe "Paris.5"
    assert s.push(" It is") == ["The capital of France is Paris."]
    assert s.flush() == ["It is"]
    assert s.sentences == 2


def test_first_clause_is_cut_early_at_a_comma_later_ones_prefer_sentences():
    text = "Well, the ocean is deep, and it covers most of the planet, as you know. Fish live there."
    assert feed(text) == [
        "Well, the ocean is deep,",
        "and it covers most of the planet,",
        "as you know.",
        "Fish live there.",
    ]


def test_after_the_first_sentence_only_whole_sentences_so_a_cut_reply_ends_whole():
    # The 40-token cap used to end a reply on a clause already spoken.
    s = ClauseSplitter(first_min_words=2, min_words=6, first_max_words=4)
    spoken = s.push("I'm here to help. Let me know if you have a question, or need help with something else, ")
    assert spoken == ["I'm here to help."]
    assert s.flush(keep_unfinished=False) == []


def test_abbreviations_and_decimals_do_not_end_sentences():
    assert feed("Dr. Smith measured 3.5 liters, e.g. in a jar. Done.") == [
        "Dr. Smith measured 3.5 liters,",
        "e.g. in a jar.",
        "Done.",
    ]


def test_markup_and_emojis_are_removed():
    assert clean_for_speech("**Sure!** Here's a `tip` 😀  #1") == "Sure! Here's a tip 1"
    assert feed("* one\n* two\n") == ["one", "two"]


def test_unfinished_tail_dropped_only_after_a_full_sentence():
    s = ClauseSplitter(first_min_words=3, min_words=6, first_max_words=0)
    s.push("It is sunny today. And then I")
    assert s.flush(keep_unfinished=False) == []
    s = ClauseSplitter(first_min_words=3, min_words=6, first_max_words=0)
    s.push("Sunny and warm")
    assert s.flush(keep_unfinished=False) == ["Sunny and warm"]


def test_sentence_count_drives_the_max_sentences_cut():
    s = ClauseSplitter(first_min_words=3, min_words=6, first_max_words=0)
    s.push("One. Two! Three? ")
    assert s.sentences == 3


def test_a_long_first_sentence_is_cut_after_max_words():
    s = ClauseSplitter(first_min_words=3, min_words=6, first_max_words=5)
    assert s.push("The best breakfast for you depends on your") == ["The best breakfast for you"]
    assert s.push(" preferences. ") == ["depends on your preferences."]
    assert s.sentences == 1
