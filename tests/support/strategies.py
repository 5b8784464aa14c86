"""Hypothesis strategies for bad input that more than one fuzz test draws from:
WAV files (written by libsndfile then damaged, or built header field by field
with lies in it) and config files (the shipped one with wrong values, typos and
deleted keys, or with text YAML chokes on)."""

from __future__ import annotations

import io
import json
import math
import struct
from typing import Any

import numpy as np
import soundfile
import yaml
from hypothesis import reject
from hypothesis import strategies as st

from tests.support.speech import ROOT

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


# -- config files ----------------------------------------------------------------

SHIPPED: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text())


def key_paths(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the config, sections and the values in them."""
    paths = []
    for key, value in tree.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths.extend(key_paths(value, (*prefix, key)))
    return paths


KEYS = key_paths(SHIPPED)

wrong_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "auto", "none", "yes", "1e400", "-0", "0x10", "a" * 5000, "x\ny"]),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers() | st.none(), max_size=3),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, -(10**9), 2**31, 2**63, 2**64, 10**100]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
)


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(tree.get(key), dict):
            tree[key] = {}
        tree = tree[key]
    tree[path[-1]] = value


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[str, tuple[str, ...] | None]:
    """(YAML text, the key made wrong when it was only one)."""
    tree = json.loads(json.dumps(SHIPPED))  # a deep copy
    count = draw(st.integers(1, 3))
    changed = []
    for _ in range(count):
        path = draw(st.sampled_from(KEYS))
        what = draw(st.sampled_from(["value", "value", "value", "typo", "delete"]))
        if what == "value":
            _set(tree, path, draw(wrong_values))
        elif what == "typo":
            _set(tree, (*path[:-1], path[-1] + draw(st.sampled_from(["s", "_x", "E"]))), 1)
        else:
            parent = tree
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent.get(key), dict) else {}
            parent.pop(path[-1], None)
        changed.append((path, what))
    only = changed[0][0] if count == 1 and changed[0][1] != "delete" else None
    return yaml.safe_dump(tree, allow_unicode=True), only


BREAKERS = [":", "[", "{", "]", "*nope", "&a", "!!python/object/apply:os.system ['true']",
            "\t", "'unclosed", "\"bad \\q\"", "%YAML 9.9", "---\n---", "? [a]: 1", "@", "`",
            "- a\nb: c", "a: b: c", "!!binary zz", "!!float abc", "&a [*a]", "...",
            "\x00", "\ufeff", "\u2028"]


@st.composite
def broken_texts(draw: st.DrawFn) -> bytes:
    """The shipped file with a line or a value replaced by something YAML chokes on."""
    lines = (ROOT / "config.yaml").read_text().splitlines()
    at = draw(st.integers(0, len(lines) - 1))
    junk = draw(st.sampled_from(BREAKERS) | st.text(max_size=20))
    how = draw(st.sampled_from(["replace line", "after colon", "insert"]))
    if how == "replace line":
        lines[at] = junk
    elif how == "after colon" and ":" in lines[at]:
        lines[at] = lines[at].split(":", 1)[0] + ": " + junk
    else:
        lines.insert(at, junk)
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # a stray byte that is not UTF-8
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80"])) + data[pos:]
    return data
