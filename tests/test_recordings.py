"""A folder of real recordings as a benchmark corpus (``bench.recordings``), the
numbers in the word error rate, and ``bench --corpus`` on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from voiceagent.bench.numbers import spell_numbers
from voiceagent.bench.recordings import CONTEXT_S, load_recordings, read_tables
from voiceagent.bench.wer import normalize, wer
from voiceagent.errors import VoiceAgentError

RATE = 16000


def folder(tmp_path, requests: str, paused: str | None = None, wavs=("a", "b")):
    for name in wavs:
        audio = np.zeros(3 * RATE, np.float32)
        audio[RATE : 2 * RATE] = 0.3 * np.sin(np.arange(RATE) * 0.2)
        soundfile.write(str(tmp_path / f"{name}.wav"), audio, RATE, subtype="PCM_16")
    (tmp_path / "requests.tsv").write_text("name\tspeech_start_s\tspeech_end_s\ttranscript\n" + requests)
    if paused is not None:
        (tmp_path / "paused.tsv").write_text(
            "name\tspeech_start_s\tspeech_end_s\tpauses_s\ttranscript\n" + paused
        )
    return tmp_path


def test_a_folder_becomes_a_timeline_with_the_true_boundaries(tmp_path):
    d = folder(tmp_path, "a\t1.0\t2.0\tturn it on\n", "b\t1.0\t2.0\t1.2-1.5,1.6-1.7\tone two three\n")
    corpus = load_recordings(d, RATE, gap_s=4.0)
    a, b = corpus.utterances
    assert (a.text, a.voice, b.voice) == ("turn it on", "a", "b")
    assert a.end - a.start == RATE and not a.has_pause
    assert [(p1 - b.start, p2 - b.start) for p1, p2 in b.pauses] == [(0.2 * RATE, 0.5 * RATE), (0.6 * RATE, 0.7 * RATE)]
    # the speech lies where the tables say, with its context, then the gap
    assert np.abs(corpus.audio[a.start : a.end]).max() > 0.2
    assert b.start - a.end >= 4.0 * RATE
    assert np.abs(corpus.audio[a.end + int(CONTEXT_S * RATE) + 10 : b.start - int(CONTEXT_S * RATE) - 10]).max() < 0.01


@pytest.mark.parametrize(("requests", "message"), [
    ("a\tone\t2.0\tx\n", "requests.tsv:2: speech_start_s and speech_end_s must be seconds"),
    ("a\t2.0\t1.0\tx\n", "requests.tsv:2: speech must end after it starts"),
    ("nope\t1.0\t2.0\tx\n", "requests.tsv:2: no recording"),
])
def test_a_bad_row_is_named(tmp_path, requests, message):
    with pytest.raises(VoiceAgentError, match=message.replace(".", r"\.")):
        read_tables(folder(tmp_path, requests))


def test_a_pause_outside_the_speech_or_malformed_is_named(tmp_path):
    with pytest.raises(VoiceAgentError, match="paused.tsv:2: every pause must lie inside"):
        read_tables(folder(tmp_path, "", "b\t1.0\t2.0\t0.5-1.5\tx\n"))
    with pytest.raises(VoiceAgentError, match="paused.tsv:2: pauses_s 'soon' is not START-END"):
        read_tables(folder(tmp_path, "", "b\t1.0\t2.0\tsoon\tx\n"))


def test_no_tables_or_no_folder(tmp_path):
    with pytest.raises(VoiceAgentError, match="has no requests.tsv or paused.tsv"):
        read_tables(tmp_path)
    with pytest.raises(VoiceAgentError, match="corpus folder not found"):
        read_tables(tmp_path / "missing")


def test_bench_corpus_with_a_bad_folder_is_one_line(tmp_path, capsys):
    from voiceagent.cli import main

    assert main(["bench", "--corpus", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("voiceagent: error: corpus folder not found") and "Traceback" not in "".join(err)


@pytest.mark.parametrize(("digits", "words"), [
    ("Go forward 10 meters.", "go forward ten meters"),
    ("1.", "one"),
    ("a 4% tax", "a four percent tax"),
    ("the 3rd of 22", "the third of twenty two"),
    ("600,000", "six hundred thousand"),
    ("2.5", "two point five"),
    ("the 40th", "the fortieth"),
])
def test_numbers_are_words_in_the_word_error_rate(digits, words):
    assert normalize(digits) == words.split()
    assert wer(words, digits) == 0.0


def test_spell_numbers_leaves_words_alone():
    assert spell_numbers("ten of clubs").strip() == "ten of clubs"
