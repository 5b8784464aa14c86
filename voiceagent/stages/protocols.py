"""What the dialogue needs from each model, as small Protocols.

Every backend in ``voiceagent.stages`` implements one of these; the dialogue
imports only this module, never a backend, so a test can hand it fakes and a
user can swap a backend in the config. Capabilities only some backends have
are separate Protocols (``PromptCache``, ``EndOfMessage``), passed as None where
a backend lacks them (a remote LLM cannot prefill its cache or give the
next-token distribution), and the dialogue then does without.

All calls are blocking: the dialogue runs them on a worker (``stages.workers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np


@dataclass(frozen=True)
class Transcript:
    text: str
    """What was said; "" when nothing was (the backend drops its own hallucinations)."""
    seconds: float
    """Compute time of the call in seconds."""
    logprob: float | None = None
    """Mean log-probability per token (Whisper's ``avg_logprob``; 0 is certain,
    below about -0.8 is a guess), None when unknown or empty."""


class Transcriber(Protocol):
    sample_rate: int
    """Hertz of the audio it takes (Whisper: 16000)."""

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Transcribe mono float32 audio at ``sample_rate``."""
        ...


class ChatModel(Protocol):
    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Yield pieces of the reply as they are generated; closing the iterator
        stops the generation."""
        ...


class PromptCache(Protocol):
    """An LLM that keeps the evaluated prompt (llama.cpp's KV cache), so that
    evaluating the next turn's prefix early makes its first token cheap."""

    def prefill(self, messages: list[dict[str, str]], user_text: str = "") -> None:
        """Evaluate the prompt prefix of the next turn (system prompt and history),
        and the first words of the user's message if they are known."""
        ...


class EndOfMessage(Protocol):
    """An LLM that can say how likely the user's message is to end here."""

    def end_probability(self, messages: list[dict[str, str]], user_text: str) -> float:
        """Probability that the user's message ends after ``user_text`` (its final
        punctuation ignored), given the conversation so far in ``messages``."""
        ...


class Synthesizer(Protocol):
    sample_rate: int
    """Hertz of the audio it produces."""

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield mono float32 audio in [-1, 1], one chunk per sentence."""
        ...


class SpeechDetector(Protocol):
    def is_speech(self, frame: np.ndarray) -> bool:
        """True if this mono float32 frame contains speech."""
        ...


class SpeechProbability(Protocol):
    def probability(self, frame: np.ndarray) -> float:
        """Probability (0..1) that the latest audio, ending with this frame, is speech."""
        ...

    def reset(self) -> None: ...


class EndOfTurnModel(Protocol):
    sample_rate: int
    """Hertz of the audio it takes."""

    def probability(self, audio: np.ndarray) -> float:
        """Probability (0..1) that the turn is complete, from mono float32 audio at
        ``sample_rate`` ending now (speech and the silence after it)."""
        ...
