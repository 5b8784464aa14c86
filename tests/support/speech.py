"""Speech test material: recordings of real people (``tests/data``, see its
SOURCES.md) and espeak-ng, a voice unlike the assistant's piper voice.

Tests that score what the recognizer heard use the real recordings: espeak-ng's
output is recognized differently by each release of the ASR stack ("What is the
capital of France?" became "What is the capital and friends?"), so a word error
bound on it passes or fails by luck. espeak-ng is for what needs no words
judged: timing, echo, noise, the wake word's absence.
"""

from __future__ import annotations

import csv
import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


@dataclass(frozen=True)
class Clip:
    """A recording of a real person saying one thing."""

    name: str
    audio: np.ndarray
    """Mono float32 at ``RATE``, the whole file (with its own silence around the speech)."""
    start_s: float
    """Seconds from the start of the file to the first word."""
    end_s: float
    """Seconds from the start of the file to the end of the last word."""
    text: str
    """What is said: lower case, no punctuation, numbers spelled out."""

    RATE = 16000

    def at(self, rate: int) -> np.ndarray:
        from voiceagent.audio.convert import resample

        return resample(self.audio, self.RATE, rate)


@functools.cache
def _table(name: str) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    with open(DATA / name, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            rows.setdefault(row["name"], []).append(row)
    return rows


def real(name: str) -> Clip:
    """A request from ``tests/data/requests.tsv``, or a wake word from ``wake.tsv``
    (``text`` is the wake word; its first occurrence)."""
    audio, rate = soundfile.read(str(DATA / f"{name}.wav"), dtype="float32")
    assert rate == Clip.RATE and audio.ndim == 1, name
    if name in _table("requests.tsv"):
        row = _table("requests.tsv")[name][0]
        return Clip(name, audio, float(row["speech_start_s"]), float(row["speech_end_s"]), row["transcript"])
    row = _table("wake.tsv")[name][0]
    return Clip(name, audio, float(row["start_s"]), float(row["end_s"]), row["wake_word"])


def speech_of(clip: Clip, before_s: float = 0.05, after_s: float = 0.1) -> Clip:
    """The clip cut to its speech, with ``before_s``/``after_s`` of its own room tone."""
    a = max(0, int((clip.start_s - before_s) * Clip.RATE))
    b = min(clip.audio.size, int((clip.end_s + after_s) * Clip.RATE))
    return Clip(clip.name, clip.audio[a:b], clip.start_s - a / Clip.RATE, clip.end_s - a / Clip.RATE, clip.text)


def require_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    return exe


def require_models() -> None:
    from voiceagent.model_store import status

    missing = [r.spec.name for r in status(ROOT / "models", verify=False)
               if r.state != "installed" and r.spec.role in ("asr", "llm", "tts", "turn")]
    if missing:
        pytest.skip(f"models missing: {missing} (run 'voiceagent models pull')")


def say(text: str, rate: int = 22050) -> np.ndarray:
    from voiceagent.demo import espeak

    require_espeak()
    return 0.7 * espeak(text, rate, voice="en-us+m3", wpm=160)


def spliced(first: Clip, then: Clip, gap_s: float) -> Clip:
    """Two real clips said as one utterance, ``gap_s`` of silence between their words
    (e.g. a wake word, a comma pause, a request by another person)."""
    a, b = speech_of(first, after_s=0.0), speech_of(then, before_s=0.0)
    gap = np.zeros(int(gap_s * Clip.RATE), np.float32)
    audio = np.concatenate([a.audio, gap, b.audio])
    offset = (a.audio.size + gap.size) / Clip.RATE
    return Clip(f"{first.name}+{then.name}", audio, a.start_s, offset + b.end_s, f"{first.text} {then.text}")


def conversation_wav(
    path: Path, parts: list[str | float | np.ndarray | Clip], rate: int = 22050, channels: int = 2
) -> list[tuple[float, float]]:
    """Write speech (espeak text or real ``Clip``), silences (seconds) and raw
    audio (at ``rate``) to ``path``.

    Returns each speech and raw part's (start, end) in seconds; a clip's are
    where its words are.
    """
    chunks, spans, t = [], [], 0.0
    for part in parts:
        if isinstance(part, Clip):
            # Only the words and a breath of room tone around them: the rest of
            # a recording's room tone (-40 dBFS in the LibriVox ones) stands out
            # of the digital silence around it like speech and would move the
            # end of speech by up to its length.
            part = speech_of(part)
            audio = part.at(rate).copy()  # the clip's own samples stay as they are
            fade = np.linspace(0.0, 1.0, int(0.01 * rate), dtype=np.float32)
            audio[: fade.size] *= fade
            audio[-fade.size :] *= fade[::-1]
            spans.append((t + part.start_s, t + part.end_s))
        elif isinstance(part, (str, np.ndarray)):
            audio = say(part, rate) if isinstance(part, str) else part.astype(np.float32)
            # espeak's own leading/trailing silence does not count as speech
            loud = np.flatnonzero(np.abs(audio) > 0.02)
            spans.append((t + loud[0] / rate, t + (loud[-1] + 1) / rate))
        else:
            audio = np.zeros(int(part * rate), np.float32)
        chunks.append(audio)
        t += audio.size / rate
    mono = np.concatenate(chunks)
    soundfile.write(str(path), np.repeat(mono[:, None], channels, axis=1), rate, subtype="PCM_16")
    return spans


def word_error_rate(ref: str, hyp: str) -> float:
    from voiceagent.bench.wer import wer

    return wer(ref, hyp)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0
