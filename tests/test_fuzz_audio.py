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
import struct
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from tests.support.fuzz import assert_one_line, case_reporter, fuzz_settings
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

SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW",
            "IMA_ADPCM", "MS_ADPCM", "GSM610"]
ODD_RATES = [1, 7, 999, 1000, 4000, 8000, 11025, 16000, 22050, 44100, 48000, 96000,
             192000, 384000, 768000, 1_000_000, 2**31 - 1]


def _samples(draw: st.DrawFn, frames: int, channels: int) -> np.ndarray:
    kind = draw(st.sampled_from(["zeros", "noise", "full scale", "over", "nan", "inf"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    audio = rng.uniform(-1, 1, (frames, channels))
    if kind == "zeros":
        audio[:] = 0
    elif kind == "full scale":
        audio = np.sign(audio)
    elif kind == "over":
        audio *= draw(st.sampled_from([1.5, 1e3, 1e30, 3.4e38]))
    elif kind in ("nan", "inf") and frames:
        audio[rng.integers(0, frames)] = np.nan if kind == "nan" else -np.inf
    return audio


@st.composite
def written_wavs(draw: st.DrawFn) -> bytes:
    """A WAV file libsndfile wrote, then perhaps cut short or scribbled over."""
    subtype = draw(st.sampled_from(SUBTYPES))
    channels = 1 if subtype == "GSM610" else draw(st.sampled_from([1, 2, 3, 6, 8, 32]))
    rate = 8000 if subtype == "GSM610" else draw(st.sampled_from(ODD_RATES[:-2]))
    frames = draw(st.integers(0, 3000))
    audio = _samples(draw, frames, channels)
    if subtype in ("ULAW", "ALAW"):  # libsndfile 1.2.2 segfaults encoding these from NaN or huge floats
        audio = np.clip(np.nan_to_num(audio), -1, 1)
    buf = io.BytesIO()
    try:
        with np.errstate(all="ignore"):
            soundfile.write(buf, audio.astype(np.float64 if subtype == "DOUBLE" else np.float32),
                            rate, subtype=subtype, format="WAV")
    except soundfile.LibsndfileError:  # a combination libsndfile does not write (ADPCM, 32 channels)
        reject()
    data = bytearray(buf.getvalue())
    damage = draw(st.sampled_from(["none", "truncate", "scribble", "header"]))
    if damage == "truncate" and data:
        del data[draw(st.integers(0, len(data) - 1)):]
    elif damage == "scribble" and data:
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif damage == "header" and len(data) >= 44:
        at = draw(st.integers(0, 40))
        data[at : at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 0xFFFFFFFF, 2**31])))
    return bytes(data)


HEADER_FIELDS = ("tag", "channels", "rate", "bits", "align", "byte_rate", "data_size", "riff_size")


@st.composite
def lying_wavs(draw: st.DrawFn) -> bytes:
    """A WAV header built field by field, up to four fields lying."""
    lies = draw(st.sets(st.sampled_from(HEADER_FIELDS), max_size=4))

    def field(name: str, honest: st.SearchStrategy[int], lie: st.SearchStrategy[int]) -> int:
        return draw(lie if name in lies else honest)

    floats = draw(st.booleans())
    tag = field("tag", st.sampled_from([3, 0xFFFE] if floats else [1, 0xFFFE]),
                st.sampled_from([0, 2, 6, 7, 0x11, 0x55]) | st.integers(0, 0xFFFF))
    channels = field("channels", st.integers(1, 8),
                     st.sampled_from([0, 255, 1024, 65535]) | st.integers(0, 0xFFFF))
    rate = field("rate", st.sampled_from(ODD_RATES[3:-2]),
                 st.sampled_from([0, 1, 7, 999, 2**31 - 1, 2**32 - 1]) | st.integers(0, 2**32 - 1))
    bits = field("bits", st.sampled_from([32, 64] if floats else [8, 16, 24, 32]),
                 st.sampled_from([0, 4, 12, 20, 48]) | st.integers(0, 0xFFFF))
    align = field("align", st.just((channels * bits // 8) & 0xFFFF), st.integers(0, 0xFFFF))
    byte_rate = field("byte_rate", st.just((rate * align) & 0xFFFFFFFF), st.integers(0, 2**32 - 1))
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits)
    if tag == 0xFFFE:
        sub = 3 if floats else 1
        guid = struct.pack("<H", sub) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, draw(st.integers(0, 2**32 - 1))) + guid
    if floats:  # with NaN, infinities, huge values
        values = draw(st.lists(st.floats(width=32), max_size=400))
        payload = np.array(values, "<f4" if bits != 64 else "<f8").tobytes()
    else:
        payload = draw(st.binary(max_size=3000))
    data_size = field("data_size", st.just(len(payload)),
                      st.sampled_from([0, 1, 0xFFFFFFFF, len(payload) * 7 + 3]) | st.integers(0, 2**32 - 1))
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if draw(st.booleans()):  # a chunk a reader must skip
        junk = draw(st.binary(max_size=40))
        chunks = b"LIST" + struct.pack("<I", len(junk)) + junk + b"\x00" * (len(junk) % 2) + chunks
    chunks += b"data" + struct.pack("<I", data_size) + payload
    riff_size = field("riff_size", st.just(len(chunks) + 4),
                      st.sampled_from([0, 0xFFFFFFFF]) | st.integers(0, 2**32 - 1))
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks


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
