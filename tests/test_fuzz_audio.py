"""Fuzzed audio input: WAV files with broken, truncated or lying headers, odd rates,
channel counts and sample formats; raw PCM with NaN, infinities and clipping.

Each case goes through what ``voiceagent run`` and ``serve`` use to read their
input (``open_input``) and must either give mono float32 audio at the pipeline
rate, finite and within full scale, or raise ``AudioInputError`` with a message
of one line. Anything else (another exception, a traceback, a hang, audio that
would poison the models) is a bug in ``voiceagent.audio.streams``.

The cases are reproducible (``derandomize``); how many ran is printed at the end
of the module (``fuzz: ...``), and ``pytest --hypothesis-show-statistics`` gives
the details.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fuzz import assert_one_line, case_reporter, fuzz_settings
from tests.support.strategies import lying_wavs, written_wavs
from voiceagent.audio.streams import PcmInput, open_input
from voiceagent.config import PcmFormat
from voiceagent.errors import AudioInputError

RATE = 16000
SLOW_S = 5.0
"""A case that takes longer than this is a hang, not slow input."""

FUZZ = fuzz_settings(250)
CASES: Counter[str] = Counter()
_report_cases = case_reporter(CASES)


# -- WAV files -------------------------------------------------------------------

not_wavs = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.just(b"RIFF"),
    st.just(b"RIFF\x24\x00\x00\x00WAVE"),
    st.text(max_size=100).map(lambda s: s.encode("utf-8")),
)


def check_wav(path: Path) -> str:
    """Read ``path`` as the CLI does: good audio, or one line of AudioInputError."""
    start = time.monotonic()
    try:
        source = open_input(str(path), RATE, PcmFormat())
    except AudioInputError as err:
        outcome = "refused"
        assert_one_line(err)
        assert str(path) in str(err), f"the error does not name the file: {err}"
    else:
        outcome = "read"
        audio = source.audio
        assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
        assert np.isfinite(audio).all(), "non-finite samples got through"
        assert np.abs(audio).max() <= 1.0, "samples beyond full scale got through"
        block = asyncio.run(source.read(320))
        assert block is not None and block.shape == (320,)
    assert time.monotonic() - start < SLOW_S, f"{path} took {time.monotonic() - start:.1f} s"
    return outcome


@FUZZ
@given(data=written_wavs())
def test_written_wavs_read_or_fail_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(data)
    CASES[f"written wav {check_wav(path)}"] += 1


@FUZZ
@given(data=lying_wavs())
def test_lying_wav_headers_read_or_fail_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(data)
    CASES[f"lying wav {check_wav(path)}"] += 1


@settings(FUZZ, max_examples=60)
@given(data=not_wavs)
def test_files_that_are_not_wavs_fail_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(data)
    CASES[f"not a wav {check_wav(path)}"] += 1


def test_a_directory_or_an_unreadable_file_fails_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    locked = tmp_path / "locked.wav"
    soundfile.write(str(locked), np.zeros(100, np.float32), RATE)
    locked.chmod(0)
    paths = [folder, tmp_path / "missing.wav"]
    if os.geteuid() != 0:  # root reads it all the same
        paths.append(locked)
    for path in paths:
        with pytest.raises(AudioInputError) as info:
            open_input(str(path), RATE, PcmFormat())
        assert str(path) in assert_one_line(info.value)
        CASES["special file refused"] += 1


# -- raw PCM ---------------------------------------------------------------------


@st.composite
def pcm_streams(draw: st.DrawFn) -> tuple[PcmFormat, bytes]:
    fmt = PcmFormat(
        sample_rate=draw(st.sampled_from([8000, 11025, 16000, 44100, 48000, 192000])),
        channels=draw(st.integers(1, 8)),
        format=draw(st.sampled_from(["s16le", "f32le"])),
    )
    kind = draw(st.sampled_from(["bytes", "floats", "clipping"]))
    if kind == "bytes":
        data = draw(st.binary(max_size=6000))
    elif kind == "floats":
        values = draw(st.lists(st.floats(width=32), max_size=1500))
        data = np.array(values, "<f4").tobytes()
    else:  # hard clipping: full scale and beyond, in the stream's own format
        frames = draw(st.integers(1, 2000)) * fmt.channels
        peak = draw(st.sampled_from([1.0, 1.01, 2.0, 1e6, 3.4e38]))
        square = np.where(np.arange(frames) % 40 < 20, peak, -peak)
        if fmt.format == "s16le":
            data = np.clip(square * 32768, -32768, 32767).astype("<i2").tobytes()
        else:
            data = square.astype("<f4").tobytes()
    return fmt, data


async def _read_all(source: PcmInput) -> list[np.ndarray]:
    blocks = []
    while (block := await source.read(320)) is not None:
        blocks.append(block)
    return blocks


@FUZZ
@given(case=pcm_streams())
def test_raw_pcm_reads_or_fails_in_one_line(case: tuple[PcmFormat, bytes]) -> None:
    fmt, data = case
    start = time.monotonic()
    try:
        blocks = asyncio.run(_read_all(PcmInput(io.BytesIO(data), fmt, RATE)))
    except AudioInputError as err:
        assert "stdin" in assert_one_line(err)
        CASES["pcm refused"] += 1
    else:
        for block in blocks:
            assert block.dtype == np.float32 and block.shape == (320,)
            assert np.isfinite(block).all() and np.abs(block).max() <= 1.0
        CASES["pcm read"] += 1
    assert time.monotonic() - start < SLOW_S
