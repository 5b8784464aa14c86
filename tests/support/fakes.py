"""Hand-written fakes of the model protocols, for fast orchestration tests.

Every test using them has a sibling in test_realmodel.py that runs the real model.
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from voiceagent.stages.protocols import Transcript


class EnergyVad:
    """Speech is any frame whose peak exceeds a threshold."""

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(np.abs(frame).max() > 0.1)


class FakeTranscriber:
    """Says how many tenths of a second of loud audio it heard, e.g. 'speech 12'."""

    sample_rate = 16000

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[float] = []
        self.delay_s = delay_s

    def transcribe(self, audio: np.ndarray) -> Transcript:
        time.sleep(self.delay_s)
        windows = audio[: audio.size // 160 * 160].reshape(-1, 160)
        loud = round(int((np.abs(windows).max(axis=1) > 0.1).sum()) / 10)
        self.calls.append(audio.size / 16000)
        return Transcript(text=f"speech {loud}" if loud else "", seconds=0.0)


class FakeChat:
    def __init__(self, reply: str = "Hello there, friend. How are you today? Fine.", fail: bool = False) -> None:
        self.reply = reply
        self.fail = fail
        self.seen: list[list[dict[str, str]]] = []

    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        from voiceagent.errors import StageError

        self.seen.append(messages)
        if self.fail:
            raise StageError("llm", "the fake model failed")
        for word in self.reply.split(" "):
            yield word + " "


    end_p = 0.5
    """What ``end_probability`` answers."""

    def end_probability(self, messages: list[dict[str, str]], user_text: str) -> float:
        return self.end_p

    def prefill(self, messages: list[dict[str, str]], user_text: str = "") -> None:
        self.prefilled = messages
        self.prefilled_user = user_text


class FakeSynth:
    sample_rate = 16000

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        # 50 ms of a constant signal per word
        yield np.full(800 * len(text.split()), 0.25, np.float32)


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.float32)
