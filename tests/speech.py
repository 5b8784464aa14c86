"""Real speech test material: espeak-ng, a voice unlike the assistant's piper voice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[1]


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


def conversation_wav(
    path: Path, parts: list[str | float | np.ndarray], rate: int = 22050, channels: int = 2
) -> list[tuple[float, float]]:
    """Write speech, silences (seconds) and raw audio (at ``rate``) to ``path``.

    Returns each speech and raw part's (start, end) in seconds.
    """
    chunks, spans, t = [], [], 0.0
    for part in parts:
        if isinstance(part, (str, np.ndarray)):
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
    norm = lambda s: "".join(c for c in s.lower() if c.isalnum() or c.isspace()).split()  # noqa: E731
    r, h = norm(ref), norm(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
    return d[len(h)] / max(len(r), 1)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0
