"""Full duplex with the real models: barge-in, echo, and what must not interrupt.

The user's voice is espeak-ng, and a recording of a real person where the words
are scored; the assistant's is piper. Each test runs
``voiceagent run`` as a user would, with and without ``--echo 40:-6`` (the
assistant hears its own voice through a simulated room), and measures the
aligned output WAV.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.support.cli import load_events, voiceagent
from tests.support.speech import Clip, conversation_wav, real, require_models, rms, spliced, word_error_rate
from voiceagent.bench.measure import quiet_after, sound_s

pytestmark = pytest.mark.realmodel

ASK = "Can you tell me something interesting about the ocean?"
INTERRUPT = real("req_forever")
"""A real person over the reply: 'Feels like these days go on forever.'"""
QUIET = 0.01
"""Output peak (-40 dBFS) below which the speaker counts as silent."""


@pytest.fixture(autouse=True)
def _models():
    require_models()


def run(tmp_path, parts, *extra: str):
    wav = tmp_path / "in.wav"
    spans = conversation_wav(wav, parts, rate=16000, channels=1)
    out, ev = tmp_path / "out.wav", tmp_path / "events.jsonl"
    proc = voiceagent("run", "-i", str(wav), "-o", str(out), "-e", str(ev), *extra)
    assert proc.returncode == 0, proc.stderr.decode()
    audio, rate = soundfile.read(str(out), dtype="float32")
    return spans, audio, rate, load_events(ev), proc.stderr.decode()


def firsts(events, turn):
    out = {}
    for e in events:
        if e["turn"] == turn:
            out.setdefault(e["type"], e)
    return out


@pytest.mark.parametrize("echo", [[], ["--echo", "40:-6"]], ids=["no-echo", "echo"])
def test_talking_over_the_reply_stops_it_within_300ms_and_is_answered(tmp_path, echo):
    # The reply starts ~0.3 s after the question and lasts ~2.7 s: the token limit
    # cuts its second sentence, which is no longer spoken half. Interrupted 2 s after
    # the question, well inside it (at 2.8 s the reply had sometimes just ended).
    spans, audio, rate, events, err = run(tmp_path, [0.5, ASK, 2.0, INTERRUPT, 6.0], *echo)
    onset = spans[1][0]
    one = firsts(events, 1)
    assert one["playback_start"]["t"] < onset - 0.5, "the reply had not started: no barge-in to test"
    assert rms(audio[int((onset - 0.3) * rate) : int(onset * rate)]) > 0.02  # it was speaking
    assert one["barge_in"]["by_turn"] == 2 and one["turn_end"]["reason"] == "interrupted"
    stop = quiet_after(audio, onset, rate)
    assert stop <= 0.3, f"still audible {stop * 1000:.0f} ms after the interruption began"
    # and it stays silent until the answer to the interruption
    two = firsts(events, 2)
    s2 = two["playback_start"]["t"]
    assert np.abs(audio[int((onset + 0.3) * rate) : int(s2 * rate)]).max() < QUIET
    assert two["turn_end"]["reason"] == "answered" and two["turn_end"]["reply"].strip()
    # none of the interruption was lost while the reply was stopping
    heard_words = two["turn_end"]["text"].split()
    if not echo:
        assert word_error_rate(INTERRUPT.text, two["turn_end"]["text"]) <= 0.34, two["turn_end"]["text"]
    else:
        # Over its own echo, the first word is said during double talk, which AEC3's
        # suppressor dampens: measured (16 runs, with and without piper's lead trimmed
        # alike) "Feels", "It feels", "It looks", "He was", "Things", once "I think it's"
        # like these days go on forever. The words after it must all be there.
        rest = " ".join(INTERRUPT.text.split()[1:])
        assert word_error_rate(rest, " ".join(heard_words[-len(rest.split()):])) <= 0.17, two["turn_end"]["text"]
        assert len(heard_words) <= len(INTERRUPT.text.split()) + 2, two["turn_end"]["text"]
    # the history keeps what was heard: the interrupted turn's reply is a prefix of what was generated
    heard = one["barge_in"]["heard"]
    assert one["turn_end"]["reply"] == heard and 0 < one["barge_in"]["played_s"] < 5
    assert "interrupted by turn 2: quiet" in err


def test_own_voice_through_the_room_never_interrupts(tmp_path):
    q1, q2 = "What is the capital of France?", "How many legs does a spider have?"
    spans, audio, rate, events, _ = run(tmp_path, [0.5, q1, 7.0, q2, 7.0], "--echo", "40:-6")
    types = [e["type"] for e in events]
    assert "barge_in" not in types
    ends = [e for e in events if e["type"] == "turn_end"]
    assert [(e["turn"], e["reason"]) for e in ends] == [(1, "answered"), (2, "answered")], ends
    for turn in (1, 2):
        f = firsts(events, turn)
        assert f["playback_end"]["played_s"] > 1.0  # played to its natural end
        assert f["turn_end"]["reply"].strip()


def test_noise_burst_and_backchannel_do_not_stop_the_reply(tmp_path):
    # Without echo only: through --echo, AEC3's double-talk suppression can turn
    # a short "mm-hmm" into confident nonsense that reads as an interruption
    # (benchmarks/barge_in.py measures how often).
    echo: list[str] = []
    rng = np.random.default_rng(1)
    burst = (0.1 * rng.standard_normal(int(0.15 * 16000))).astype(np.float32)
    # The ocean reply runs ~7 s from ~0.8 s after the question.
    spans, audio, rate, events, _ = run(
        tmp_path, [0.5, ASK, 2.8, burst, 1.5, "Mm-hmm.", 6.0], *echo
    )
    types = [e["type"] for e in events]
    assert "barge_in" not in types, [e for e in events if e["type"].startswith("barge")]
    one = firsts(events, 1)
    assert one["playback_start"]["t"] < spans[1][0], "the reply had not started"
    assert one["turn_end"]["reason"] == "answered"
    assert one["playback_end"]["t"] > spans[2][1]  # still speaking after the backchannel
    # nothing answers the noise or the backchannel
    assert [e["turn"] for e in events if e["type"] == "turn_end" and e["reason"] == "answered"] == [1]


def test_going_on_after_a_pause_that_ended_the_turn_is_answered_as_one(tmp_path):
    # Real people: "Go forward ten meters." (a whole request), then "feels like
    # these days go on forever" 0.15 s after the labelled end of the first words
    # (webrtcvad hears that end 0.15 s early). The first part ends the turn
    # (Smart Turn hears a finished sentence, 0.96); the second comes as its reply
    # starts: taken back, answered as one. (Coming after a second of the reply,
    # it is a barge-in: the user answering the reply, as it should be.)
    said = spliced(real("req_go_forward"), real("req_forever"), gap_s=0.15)
    spans, audio, rate, events, _ = run(tmp_path, [0.5, said, 6.0])
    start, end = spans[0]
    ends = [e for e in events if e["type"] == "turn_end"]
    answered = [e for e in ends if e["reason"] in ("answered", "interrupted")]
    assert len(answered) == 1, ends  # one turn, not two
    assert word_error_rate(said.text, answered[0]["text"]) <= 0.25, answered[0]["text"]
    # at most a moment of the withdrawn reply was heard over the user
    assert sound_s(audio, int(start * rate), int(end * rate), rate) <= 0.3
    assert answered[0]["reply"].strip()


def test_a_quiet_voice_over_the_reply_stops_it_and_is_heard_from_its_first_word(tmp_path):
    # No echo path (a file): the echo margin must not apply to a user 30 dB
    # below the reply.
    quiet = Clip(INTERRUPT.name, INTERRUPT.audio * np.float32(0.02), INTERRUPT.start_s, INTERRUPT.end_s,
                 INTERRUPT.text)
    spans, audio, rate, events, _ = run(tmp_path, [0.5, ASK, 2.8, quiet, 6.0])
    onset, end = spans[1]
    # The reply's level as the barge-in rules see it (its loud 20 ms blocks) and
    # the user's over their words: 30 dB or more apart.
    before = audio[int((onset - 1.0) * rate) : int(onset * rate)]
    blocks = before[: before.size // 320 * 320].reshape(-1, 320)
    reply_db = float(np.percentile(20 * np.log10(np.sqrt(np.mean(blocks**2, axis=1)) + 1e-9), 90))
    user = quiet.audio[int(quiet.start_s * Clip.RATE) : int(quiet.end_s * Clip.RATE)]
    assert reply_db - 20 * np.log10(rms(user)) >= 30, "not quiet enough to test"
    one, two = firsts(events, 1), firsts(events, 2)
    assert one["playback_start"]["t"] < onset - 0.5, "the reply had not started"
    assert one["turn_end"]["reason"] == "interrupted"
    stop = quiet_after(audio, onset, rate)
    assert stop <= 0.3, f"still audible {stop * 1000:.0f} ms after the quiet voice began"
    assert two["turn_end"]["reason"] == "answered"
    assert word_error_rate(INTERRUPT.text, two["turn_end"]["text"]) <= 0.34, two["turn_end"]["text"]
