"""A corpus of real recordings: a folder in the format of ``shared/speech``.

The folder holds 16-bit WAV files (any rate; mono is expected) and tables that
say what is in them, tab-separated with a header row:

- ``requests.tsv``: ``name``, ``speech_start_s``, ``speech_end_s``, ``transcript``;
- ``paused.tsv``: the same plus ``pauses_s``, the pauses inside the speech as
  ``start-end`` pairs separated by commas (``2.42-2.72,3.08-3.62``).

``name`` is the WAV's file name without ``.wav``; times are seconds from the
start of the file; transcripts are lower case, numbers spelled out. Record your
own voice into such a folder and ``voiceagent bench --corpus DIR`` measures it.

Each recording is cut to its speech plus ``CONTEXT_S`` of its own room tone on
either side and laid on one timeline with ``gap_s`` after the true end of each.
The gaps hold faint pink noise (-60 dBFS). Not the recordings' own room tone:
most have under 0.2 s of it, some with a breath or a word of the source in it,
and repeated to fill 8 s it kept webrtcvad busy (93% of the frames voiced after
p_wizard); nor pink noise at the room's level, which webrtcvad takes for speech
at -45 dBFS. A long tail of room tone inside the gap would look like speech to
the VAD (measured: 0.26 s more of it on a LibriVox clip at -40 dBFS), hence the
short context; the pipeline's noise floor follows the last half second of the
room (``rules.noise_floor``), so the step from the gap to the room is learnt
within the context before the first word.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceagent.audio.streams import read_wav
from voiceagent.bench.corpus import LEAD_S, Corpus, Utterance, pink_noise
from voiceagent.errors import VoiceAgentError

logger = logging.getLogger(__name__)

TABLES = ("requests.tsv", "paused.tsv")
CONTEXT_S = 0.3
"""Seconds of each recording kept before its first and after its last word."""
FADE_S = 0.02
NOISE_DBFS = -60.0
"""RMS of the pink noise in the gaps."""


@dataclass(frozen=True)
class Recording:
    """One row of a table."""

    name: str
    path: Path
    start_s: float
    end_s: float
    pauses_s: tuple[tuple[float, float], ...]
    transcript: str
    table: str


def _pauses(text: str, where: str) -> tuple[tuple[float, float], ...]:
    pauses = []
    for pair in filter(None, (p.strip() for p in text.split(","))):
        a, sep, b = pair.partition("-")
        try:
            start, end = float(a), float(b)
        except ValueError:
            raise VoiceAgentError(f"{where}: pauses_s {pair!r} is not START-END in seconds") from None
        if not sep or end <= start:
            raise VoiceAgentError(f"{where}: pause {pair!r} must be START-END with END after START")
        pauses.append((start, end))
    return tuple(pauses)


def read_tables(folder: Path) -> list[Recording]:
    """Every row of the folder's tables, checked: one-line errors name the row."""
    if not folder.is_dir():
        raise VoiceAgentError(f"corpus folder not found: {folder}")
    found = [folder / t for t in TABLES if (folder / t).exists()]
    if not found:
        raise VoiceAgentError(
            f"{folder} has no {' or '.join(TABLES)}",
            "a corpus folder holds WAV files and tables of what they say (see voiceagent bench --help)",
        )
    rows: list[Recording] = []
    for table in found:
        with open(table, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            needed = {"name", "speech_start_s", "speech_end_s", "transcript"}
            if table.name == "paused.tsv":
                needed.add("pauses_s")
            lacking = needed - set(reader.fieldnames or ())
            if lacking:
                raise VoiceAgentError(f"{table}: no column {', '.join(sorted(lacking))}")
            for line, row in enumerate(reader, start=2):
                where = f"{table}:{line}"
                try:
                    start, end = float(row["speech_start_s"]), float(row["speech_end_s"])
                except (TypeError, ValueError):
                    raise VoiceAgentError(f"{where}: speech_start_s and speech_end_s must be seconds") from None
                if not 0 <= start < end:
                    raise VoiceAgentError(f"{where}: speech must end after it starts")
                pauses = _pauses(row.get("pauses_s") or "", where)
                if any(not start < a < b < end for a, b in pauses):
                    raise VoiceAgentError(f"{where}: every pause must lie inside the speech")
                path = folder / f"{row['name']}.wav"
                if not path.exists():
                    raise VoiceAgentError(f"{where}: no recording {path}")
                rows.append(Recording(row["name"], path, start, end, pauses, (row["transcript"] or "").strip(), table.name))
    if not rows:
        raise VoiceAgentError(f"{folder}: the tables list no recordings")
    return rows


def _cut(audio: np.ndarray, rec: Recording, rate: int) -> tuple[np.ndarray, int]:
    """The speech with its context, faded; and the sample (in the cut) where it starts."""
    a = max(0, int((rec.start_s - CONTEXT_S) * rate))
    b = min(audio.size, int((rec.end_s + CONTEXT_S) * rate))
    clip = audio[a:b].copy()
    fade = min(int(FADE_S * rate), clip.size // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        clip[:fade] *= ramp
        clip[-fade:] *= ramp[::-1]
    return clip, a


def load_recordings(folder: Path, rate: int = 16000, gap_s: float = 10.0, seed: int = 0) -> Corpus:
    """The folder's recordings on one timeline, in table order (requests, then pauses)."""
    rows = read_tables(folder)
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    pos = int(LEAD_S * rate)
    utterances = []
    for i, rec in enumerate(rows):
        audio = read_wav(rec.path, rate)
        if rec.end_s > audio.size / rate + 0.01:
            raise VoiceAgentError(f"{rec.table}: {rec.name} ends at {rec.end_s} s, after the recording")
        clip, cut_at = _cut(audio, rec, rate)
        if i == 0:
            parts.append(pink_noise(pos, NOISE_DBFS, rng))

        def on_timeline(t: float) -> int:
            return pos + int(round(t * rate)) - cut_at

        end = on_timeline(rec.end_s)
        utterances.append(Utterance(
            i, rec.transcript, rec.name, 0, 0.0, 0, on_timeline(rec.start_s), end,
            tuple((on_timeline(a), on_timeline(b)) for a, b in rec.pauses_s),
        ))
        tail = max(end + int(gap_s * rate) - (pos + clip.size), 0)
        parts += [clip, pink_noise(tail, NOISE_DBFS, rng) if tail else np.zeros(0, np.float32)]
        pos += clip.size + tail
    timeline = np.concatenate(parts)
    np.clip(timeline, -1.0, 1.0, out=timeline)
    logger.info("recordings: %d from %s, %.1f s", len(utterances), folder, timeline.size / rate)
    return Corpus(rate, seed, gap_s, NOISE_DBFS, tuple(utterances), timeline)
