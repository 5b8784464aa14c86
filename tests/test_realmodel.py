"""The real default models on real speech, in real time.

The user's voice is a recording of a real person (``tests/data``); the
assistant's is piper. Each test runs the ``voiceagent`` command as a user would
and checks the aligned output audio and the event log.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.support.cli import load_events, voiceagent
from tests.support.speech import ROOT, conversation_wav, real, require_models, rms, word_error_rate

pytestmark = pytest.mark.realmodel

Q1 = real("req_go_somewhere")
"""'Go somewhere and do something.' (tiny.en: no word wrong)"""
Q2 = real("read_amiable_himself")
"""'He might even have been made amiable himself.' (tiny.en: no word wrong)"""


@pytest.fixture(autouse=True)
def _models():
    require_models()


def check_turns(events: list[dict], questions: list, spans, out: np.ndarray, rate: int) -> None:
    finals = [e for e in events if e["type"] == "turn_end" and e["reason"] == "answered"]
    assert [e["turn"] for e in finals] == list(range(1, len(questions) + 1)), events
    for question, (start, end), fin in zip(questions, spans, finals):
        turn = fin["turn"]
        first = {}
        for e in events:
            if e["turn"] == turn:
                first.setdefault(e["type"], e["t"])
        # All of the utterance reached the recognizer: tiny.en got every word of
        # these right on every run measured; one word in four is the margin.
        assert word_error_rate(question.text, fin["text"]) <= 0.25, (question.text, fin["text"])
        assert fin["reply"].strip(), fin
        # well-ordered, and on the input timeline
        assert start - 0.35 <= first["speech_start"] <= start + 0.2
        assert end - 0.1 <= first["speech_end"] <= end + 0.25
        assert first["speech_end"] <= first["end_of_turn"] <= first["playback_start"]
        assert first["asr_final"] <= first["llm_first_token"] <= first["llm_first_clause"]
        assert first["llm_first_clause"] <= first["tts_first_audio"]
        assert first["playback_start"] < first["playback_end"] <= first["turn_end"]
        # the reply is audible in the aligned output right where the events say
        s, e = int(first["playback_start"] * rate), int(first["playback_end"] * rate)
        assert rms(out[s : s + rate // 2]) > 0.02
        assert rms(out[max(s - rate // 5, 0) : s]) < 0.002  # and silent just before
        assert e - s > rate // 2


def test_run_two_questions_from_a_wav_file(tmp_path):
    wav = tmp_path / "in.wav"
    # 22.05 kHz stereo: resampled. 12.5 s after the first for the reply (two
    # sentences of the small model took up to 11 s), so that the second
    # question does not talk over it.
    spans = conversation_wav(wav, [0.5, Q1, 12.5, Q2, 7.0])
    out, ev = tmp_path / "out.wav", tmp_path / "events.jsonl"
    proc = voiceagent("run", "--input", str(wav), "--output", str(out), "--events", str(ev))
    assert proc.returncode == 0, proc.stderr.decode()
    audio, rate = soundfile.read(str(out), dtype="float32")
    in_info = soundfile.info(str(wav))
    assert audio.size / rate >= in_info.duration - 0.05  # the timeline covers the input
    events = load_events(ev)
    check_turns(events, [Q1, Q2], spans, audio, rate)
    # silent until the first reply
    first_play = next(e["t"] for e in events if e["type"] == "playback_start")
    assert rms(audio[: int(first_play * rate) - rate // 10]) < 0.002
    table = proc.stderr.decode()
    assert "voice-to-voice" in table and "median" in table


def test_run_through_stdin_and_stdout_pipes(tmp_path):
    wav = tmp_path / "in.wav"
    spans = conversation_wav(wav, [0.5, Q2, 6.0], rate=16000, channels=1)
    pcm, _ = soundfile.read(str(wav), dtype="int16")
    ev = tmp_path / "events.jsonl"
    proc = voiceagent("run", "-i", "-", "-o", "-", "-e", str(ev), input=pcm.tobytes())
    assert proc.returncode == 0, proc.stderr.decode()
    out = np.frombuffer(proc.stdout, dtype="<i2").astype(np.float32) / 32768
    assert out.size >= pcm.size
    check_turns(load_events(ev), [Q2], spans, out, 16000)


def test_bad_input_file_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    proc = voiceagent("run", "-i", str(bad), "-o", str(tmp_path / "o.wav"))
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1 and "cannot read" in err[0], err
    proc = voiceagent("run", "-i", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.wav"))
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and err == [f"voiceagent: error: input file not found: {tmp_path / 'missing.wav'}"]


def test_missing_model_names_the_file_and_the_fix(tmp_path):
    wav = tmp_path / "in.wav"
    conversation_wav(wav, [0.2, "hello", 0.2])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"asr:\n  model: {ROOT / 'models/whisper-tiny.en'}\n"
        f"tts:\n  model: {ROOT / 'models/piper-joe-medium/en_US-joe-medium.onnx'}\n"
        "llm:\n  model: nowhere/model.gguf\n"
    )
    proc = voiceagent("run", "-c", str(cfg), "-i", str(wav), "-o", str(tmp_path / "o.wav"))
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, err
    assert str(tmp_path / "nowhere/model.gguf") in err[0] and "voiceagent models pull" in err[0]
