"""Real people at long pauses, early interruptions and a stream that opens.

The cases testers found on other people's recordings, rebuilt from the real
recordings in ``tests/data`` (the splices ``benchmarks/splice_corpus.py`` makes
from ``../shared/speech`` for the benchmark), each run through ``voiceagent
run`` as a user would:

- a pause of 0.75 s after a whole sentence, then the rest of it: one turn, all
  the words (the reply that started in the pause is taken back);
- a new sentence 0.45-0.8 s into the first reply of a session: quiet within
  ~0.2 s of its first word, and transcribed from that word;
- digital silence, then the room tone of a stream that opened (-47 dBFS), then
  a request 0.56 s later: only the request is answered.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.support.cli import load_events, voiceagent
from tests.support.speech import Clip, conversation_wav, real, require_models, speech_of, spliced, word_error_rate
from voiceagent.bench.corpus import pink_noise
from voiceagent.bench.measure import quiet_after

pytestmark = pytest.mark.realmodel
RATE = 16000


@pytest.fixture(autouse=True)
def _models():
    require_models()


def run(tmp_path, parts):
    wav = tmp_path / "in.wav"
    spans = conversation_wav(wav, parts, rate=RATE, channels=1)
    out, ev = tmp_path / "out.wav", tmp_path / "events.jsonl"
    proc = voiceagent("run", "-i", str(wav), "-o", str(out), "-e", str(ev))
    assert proc.returncode == 0, proc.stderr.decode()
    audio, rate = soundfile.read(str(out), dtype="float32")
    return spans, audio, load_events(ev)


def answered(events):
    return [e for e in events if e["type"] == "turn_end" and e["reason"] in ("answered", "interrupted")]


def test_a_long_pause_after_a_whole_sentence_loses_no_words(tmp_path):
    # One reader, two sentences, 0.75 s apart: the first ends the turn (Smart
    # Turn hears a finished sentence), and its reply starts in the pause.
    said = spliced(real("read_amiable_woman"), real("read_amiable_himself"), gap_s=0.75)
    spans, audio, events = run(tmp_path, [0.5, said, 6.0])
    turns = answered(events)
    assert len(turns) == 1, [(e["turn"], e["reason"], e["text"]) for e in events if e["type"] == "turn_end"]
    assert turns[0]["reason"] == "answered"
    assert word_error_rate(said.text, turns[0]["text"]) <= 0.2, turns[0]["text"]


def test_an_interruption_early_in_the_first_reply_is_quiet_at_once_and_heard_in_full(tmp_path):
    # The first reply of the session starts ~0.5-0.7 s after the question;
    # another person speaks 1.2 s after it, so 0.45-0.8 s into that reply.
    ask, other = real("req_go_somewhere"), real("read_amiable_himself")
    spans, audio, events = run(tmp_path, [0.5, ask, 1.2, other, 6.0])
    onset = spans[1][0]
    first = next(e for e in events if e["type"] == "playback_start")
    into = onset - first["t"]
    assert 0.3 <= into <= 1.0, f"the interruption came {into:.2f} s into the first reply"
    stop = quiet_after(audio, onset, RATE)
    assert stop <= 0.25, f"still audible {stop * 1000:.0f} ms after the interruption began"
    later = [e for e in answered(events) if e["turn"] != first["turn"]]
    assert later and word_error_rate(other.text, later[0]["text"]) <= 0.3, later


def test_the_room_tone_of_a_stream_that_opens_is_not_a_question(tmp_path):
    # Digital silence, then the room tone starts (-47 dBFS, as when a
    # microphone or a network stream opens), and a request 0.56 s later.
    request = speech_of(real("req_go_somewhere"))
    rng = np.random.default_rng(0)
    tone_s = 0.56 + request.audio.size / RATE + 6.0
    room = pink_noise(int(tone_s * RATE), -47.0, rng)
    at = int(0.56 * RATE)
    room[at : at + request.audio.size] += request.audio
    spans, audio, events = run(tmp_path, [1.0, room])
    turns = answered(events)
    assert len(turns) == 1, [(e["turn"], e["reason"], e["text"]) for e in events if e["type"] == "turn_end"]
    assert word_error_rate(request.text, turns[0]["text"]) <= 0.2, turns[0]["text"]
    # nothing was said before the request had ended
    words_end = 1.0 + 0.56 + (request.end_s - request.start_s) + 0.05
    assert np.abs(audio[: int(words_end * RATE)]).max() < 0.01
