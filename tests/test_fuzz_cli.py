"""A few fuzzed cases end to end, through the ``voiceagent`` command as a user runs
it: bad WAV files and bad configs drawn from the same strategies as the
function-level fuzzing, each giving one line on stderr and an exit code of 1 or
2, never a traceback. No model loads: the configs name a missing model, so an
input that reads fine ends in "model missing", also one line.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile
import yaml
from hypothesis import given, settings

from tests.support.cli import one_line_error, voiceagent
from tests.support.fuzz import case_reporter, fuzz_settings
from tests.support.strategies import broken_texts, lying_wavs, mutated_configs, written_wavs

E2E = fuzz_settings(10)
CASES: Counter[str] = Counter()
_report_cases = case_reporter(CASES)


def no_models_config(directory: Path) -> Path:
    """A valid config whose ASR model is missing: the command stops before any loads."""
    path = directory / "no-models.yaml"
    path.write_text(yaml.safe_dump({"asr": {"model": str(directory / "no-such-model")}}))
    return path


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ WARNING voiceagent[.\w]*: ")
"""A warning logged on the way (a float WAV clipped at full scale), not an error."""


def check(proc) -> str:  # type: ignore[no-untyped-def]
    """The one error line; before it, at most warnings that were logged."""
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert all(LOG_LINE.match(line) for line in lines[:-1]), lines
    proc.stderr = lines[-1].encode() if lines else b""
    return one_line_error(proc)


@settings(E2E)
@given(data=lying_wavs() | written_wavs())
def test_bad_wav_files_through_the_command(tmp_path: Path, data: bytes) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(data)
    line = check(voiceagent("run", "-c", str(no_models_config(tmp_path)),
                            "-i", str(wav), "-o", str(tmp_path / "out.wav")))
    assert str(wav) in line or "model" in line, line
    CASES["wav"] += 1


@settings(E2E)
@given(case=mutated_configs())
def test_mutated_configs_through_the_command(tmp_path: Path, case) -> None:  # type: ignore[no-untyped-def]
    text, _ = case
    config = tmp_path / "config.yaml"
    config.write_text(text)
    line = check(voiceagent("run", "-c", str(config), "-i", str(tmp_path / "missing.wav"),
                            "-o", str(tmp_path / "out.wav")))
    assert str(config) in line or "missing.wav" in line or "model" in line, line
    CASES["config"] += 1


@settings(E2E, max_examples=5)
@given(data=broken_texts())
def test_broken_config_text_through_serve(tmp_path: Path, data: bytes) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(data)
    line = check(voiceagent("serve", "-c", str(config), "-i", str(tmp_path / "missing.wav"),
                            "-o", str(tmp_path / "out.wav")))
    assert str(config) in line or "missing.wav" in line or "model" in line, line
    CASES["serve config"] += 1


def test_a_float_wav_beyond_full_scale_is_clipped_with_one_warning(tmp_path: Path) -> None:
    wav = tmp_path / "hot.wav"
    soundfile.write(str(wav), np.full(16000, 3e38, np.float32), 16000, subtype="FLOAT")
    proc = voiceagent("run", "-c", str(no_models_config(tmp_path)), "-i", str(wav), "-o", str(tmp_path / "o.wav"))
    warnings = proc.stderr.decode().strip().splitlines()[:-1]
    assert "model not found" in check(proc)  # read fine: it got as far as the models
    assert len(warnings) == 1 and "beyond full scale (peak 3e+38), clipped" in warnings[0], warnings
    CASES["clipping wav"] += 1
