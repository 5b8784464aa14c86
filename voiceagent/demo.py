"""``voiceagent demo``: a spoken conversation with no microphone.

The user's side is synthesized with espeak-ng, a voice unlike the assistant's
piper voice, and fed through the real pipeline in real time exactly as
``voiceagent run`` feeds a file. The conversation (both voices, as heard in the
room) is written to a WAV file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from voiceagent.host.run import run_paced
from voiceagent.session.display import event_sinks
from voiceagent.stages.loading import Models, load_models
from voiceagent.audio.streams import ArrayInput, MemoryOutput, read_wav
from voiceagent.config import Config
from voiceagent.errors import VoiceAgentError
from voiceagent.metrics import format_table

ESPEAK_ENV = {"PULSE_SERVER": "unix:/nonexistent/voiceagent-espeak-writes-files-only"}
"""Keeps espeak-ng away from PulseAudio. It opens an audio device even when it
writes a file, and libpulse, setting up a new client (a fresh machine or home
directory), seeds the C library's ``rand()``, from which espeak-ng's voice
variants draw their breath noise: the same text then gave different audio on
the first call of a fresh machine than on every later one."""

QUESTIONS = (
    "What is the capital of France?",
    "Can you tell me something interesting about the ocean?",
    "Thank you. What should I cook for dinner tonight?",
)
GAP_S = 12.0
"""Silence after each question, in seconds: room for the reply to play out (two
sentences of the small default model ran up to 11 s; with 7 s the next
question talked over the reply)."""


def espeak(
    text: str, rate: int, voice: str = "en-us+f3", wpm: int = 165, ssml: bool = False
) -> np.ndarray:
    """Speech from espeak-ng as mono float32 at ``rate`` hertz (``ssml``: ``text`` is
    SSML markup, e.g. with ``<break time="500ms"/>``)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise VoiceAgentError(
            "espeak-ng is not installed (it speaks the user's side of the demo and bench)",
            "run 'make demo', or 'sudo apt-get install espeak-ng'",
        )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "user.wav"
        markup = ["-m"] if ssml else []
        subprocess.run(
            [exe, *markup, "-v", voice, "-s", str(wpm), "-w", str(wav), text],
            check=True, capture_output=True, env={**os.environ, **ESPEAK_ENV},
        )
        return read_wav(wav, rate)


def user_side(rate: int, questions: tuple[str, ...] = QUESTIONS) -> np.ndarray:
    parts = [np.zeros(int(0.8 * rate), np.float32)]
    for question in questions:
        parts.append(0.6 * espeak(question, rate))
        parts.append(np.zeros(int(GAP_S * rate), np.float32))
    return np.concatenate(parts)


def run_demo(cfg: Config, output: Path, events_path: str | None) -> int:
    import soundfile

    rate = cfg.audio.sample_rate
    print("voiceagent demo: loading models ...", file=sys.stderr)
    models: Models = load_models(cfg)
    user = user_side(rate)
    print(
        f"the user (espeak-ng) asks {len(QUESTIONS)} questions over {user.size / rate:.0f} s "
        "of audio, played in real time:",
        file=sys.stderr,
    )
    recorder = MemoryOutput()
    with event_sinks(events_path) as (bus, tracker):
        asyncio.run(run_paced(cfg, models, ArrayInput(user), recorder, bus))
    reply = recorder.audio
    mix = np.zeros(max(reply.size, user.size), np.float32)
    mix[: user.size] += user
    mix[: reply.size] += reply
    soundfile.write(str(output), np.clip(mix, -1, 1), rate, subtype="PCM_16")
    print("", file=sys.stderr)
    for rec in sorted(tracker.turns.values(), key=lambda r: r.turn):
        print(f"turn {rec.turn}: you said: {rec.text!r}", file=sys.stderr)
        print(f"        assistant:  {rec.reply!r}", file=sys.stderr)
    print("", file=sys.stderr)
    print(format_table(tracker.answered()), file=sys.stderr)
    print(f"\nconversation written to {output}", file=sys.stderr)
    return 0 if tracker.answered() else 1
