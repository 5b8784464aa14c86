"""Bad input to ``voiceagent run`` gets one line on stderr and a non-zero exit,
never a traceback, and loses nothing: what was produced is written.

The first group fails before any model loads (so it needs none, and is fast);
the second runs the real models on input in which nothing can be answered.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile

from tests.support.cli import one_line_error, voiceagent
from tests.support.config import write_config
from tests.support.speech import ROOT, require_models


@pytest.fixture
def speech_wav(tmp_path):
    path = tmp_path / "in.wav"
    soundfile.write(str(path), np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    return path


# -- before the models load ----------------------------------------------------


@pytest.mark.parametrize("output", ["/dev/null", "out.raw", "out"])
def test_an_output_that_is_not_a_wav_file_is_refused_at_once(tmp_path, speech_wav, output):
    start = time.monotonic()
    proc = voiceagent("run", "-i", str(speech_wav), "-o", output)
    line = one_line_error(proc)
    assert "not a .wav file" in line and "'-'" in line, line
    assert time.monotonic() - start < 5, "the models were loaded first"
    assert not (ROOT / output).exists() or output == "/dev/null"


@pytest.mark.parametrize("where", ["missing/out.wav", "folder"])
def test_an_unwritable_output_is_refused_before_the_models_load(tmp_path, speech_wav, where):
    (tmp_path / "folder.wav").mkdir()
    target = tmp_path / ("missing/out.wav" if where == "missing/out.wav" else "folder.wav")
    start = time.monotonic()
    proc = voiceagent("run", "-i", str(speech_wav), "-o", str(target))
    line = one_line_error(proc)
    assert str(target) in line, line
    assert time.monotonic() - start < 5, "the models were loaded first"
    assert not (tmp_path / "missing").exists()


def test_an_existing_output_is_left_alone_when_the_input_is_bad(tmp_path):
    out = tmp_path / "out.wav"
    out.write_bytes(b"the user's earlier recording")
    proc = voiceagent("run", "-i", str(tmp_path / "missing.wav"), "-o", str(out))
    assert "input file not found" in one_line_error(proc)
    assert out.read_bytes() == b"the user's earlier recording"


def test_a_wav_file_with_nan_samples_is_refused_before_the_models_load(tmp_path):
    audio = np.zeros(16000, np.float32)
    audio[8000:8100] = np.nan
    wav = tmp_path / "nan.wav"
    soundfile.write(str(wav), audio, 16000, subtype="FLOAT")
    proc = voiceagent("run", "-i", str(wav), "-o", str(tmp_path / "out.wav"))
    line = one_line_error(proc)
    assert "100 samples are NaN or infinite, the first at 0.50 s" in line, line


# -- with the real models: nothing to answer -----------------------------------


@pytest.mark.realmodel
def test_a_second_of_silence_is_one_line_and_the_output_is_written(tmp_path, speech_wav):
    require_models()
    out = tmp_path / "out.wav"
    proc = voiceagent("run", "-i", str(speech_wav), "-o", str(out), "-e", str(tmp_path / "ev.jsonl"))
    line = one_line_error(proc)
    assert proc.returncode == 1 and "no turn was answered in 1.0 s of input: no speech was heard" in line
    audio, rate = soundfile.read(str(out), dtype="float32")
    assert rate == 16000 and audio.size >= 16000 and np.abs(audio).max() == 0


@pytest.mark.realmodel
def test_a_truncated_wav_file_is_one_line(tmp_path):
    require_models()
    wav = tmp_path / "cut.wav"
    soundfile.write(str(wav), np.zeros(32000, np.float32), 16000, subtype="PCM_16")
    data = wav.read_bytes()
    wav.write_bytes(data[: 44 + 3001])  # the header still says 2 s; half a sample at the end
    proc = voiceagent("run", "-i", str(wav), "-o", str(tmp_path / "out.wav"))
    line = one_line_error(proc)
    assert "no turn was answered" in line or "cannot read" in line, line


@pytest.mark.realmodel
def test_nan_float_pcm_on_stdin_is_one_line_and_keeps_the_output(tmp_path):
    require_models()
    config = write_config(tmp_path, audio={"pcm": {"format": "f32le"}})
    pcm = np.zeros(16000, "<f4")
    pcm[4000:] = np.nan
    proc = voiceagent("run", "-c", str(config), "-i", "-", "-o", "-", input=pcm.tobytes())
    line = one_line_error(proc)
    assert proc.returncode == 1 and "stdin: " in line and "NaN or infinite, the first at 0.25 s" in line, line
    out = np.frombuffer(proc.stdout, "<i2")
    assert out.size >= 3200 and not np.isnan(out).any()  # what ran before is kept
