"""Has the user finished their turn? How much silence to wait for before answering.

A fixed silence threshold is a bad trade: people pause for 300-800 ms in the
middle of a sentence, so a threshold that never cuts them off (~1 s) makes every
answer late, and one that answers fast (~300 ms) cuts them off. So the silence
needed is decided per pause, from two cues available a few hundred milliseconds
into it (the final transcript is started at the pause anyway):

- **the words**: a transcript that ends in a word a sentence cannot end on
  ("the", "to", "and", "about", "um", ...), or in a comma or an ellipsis, is
  unfinished whatever the voice does. This is robust and costs nothing.
- **the language model**: the chat LLM's probability that the user's message
  ends after these words (``ChatModel.end_probability``): below ~1% they are a
  fragment ("What is the capital on" when Whisper mishears "of"), which the
  word list cannot know. Nearly free: the reply needs those tokens evaluated.
- **the voice**: Smart Turn v3.2 (pipecat-ai, BSD-2), a Whisper-tiny encoder
  with a classifier trained on real speech, gives the probability that the turn
  is complete from the last 8 s of audio, intonation included. ~25-60 ms on
  2 cores. It is trained on human voices: on espeak-ng's synthetic prosody it is
  close to a coin toss, which is why it only ever shortens the wait when the
  words agree, and lengthens it only to ``unsure_ms``.

``silence_needed_ms`` is the pure decision; ``SmartTurn`` is the model.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from voiceagent.cpu import onnx_options
from voiceagent.errors import ModelLoadError, StageError
from voiceagent.gpu import cuda_available

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnEndSettings:
    complete_ms: int = 250
    """Silence that ends a turn both cues call complete (milliseconds)."""
    unsure_ms: int = 450
    """Silence that ends a turn whose words look complete but whose voice does not."""
    unfinished_ms: int = 1000
    """Silence that ends a turn whose words are unfinished (the longest wait)."""
    threshold: float = 0.5
    """Smart Turn probability at or above which the voice says complete."""
    words_threshold: float = 0.01
    """Language-model probability of the message ending below which it is unfinished."""


# Words an English sentence (a request to an assistant) does not end on: articles,
# prepositions, conjunctions, auxiliaries, possessives and fillers. A pause after
# one of them is a hesitation before the next content word. Words that often
# do end one are deliberately absent: "is" (where the station is), "do" (what
# should I do), "like" (what is it like), "from", "so", "that", "on" (turn the
# lights on), question words and auxiliaries.
UNFINISHED_WORDS = frozenset(
    """
    a an the my your his her our their some any every each
    to of for with about into onto than as in at and or but nor
    because if although though whether whose
    i'm i'd i'll we're you're they're
    um uh er erm uhm
    """.split()
)
_TRAILING = re.compile(r"(,|\.\.\.|…|-|—|;|:)\s*$")
_WORD = re.compile(r"[a-z']+")


def looks_unfinished(text: str) -> bool:
    """True if the words so far cannot be a complete turn."""
    stripped = text.strip()
    if not stripped:
        return False
    if _TRAILING.search(stripped):
        return True
    words = _WORD.findall(stripped.lower())
    return bool(words) and words[-1] in UNFINISHED_WORDS


def words_unfinished(text: str, words_probability: float | None, s: TurnEndSettings) -> bool:
    """The words alone say "wait": by the word list, or by the language model."""
    if looks_unfinished(text):
        return True
    return words_probability is not None and words_probability < s.words_threshold


def silence_needed_ms(
    text: str, probability: float | None, s: TurnEndSettings, words_probability: float | None = None
) -> int:
    """The silence after which this pause ends the turn.

    ``probability`` is the end-of-turn model's (None when there is no model or
    it failed): without it, looking complete by the words is only ``unsure``.
    ``words_probability`` is the language model's that the message ends here
    (None: not asked).
    """
    if words_unfinished(text, words_probability, s):
        return s.unfinished_ms
    if probability is not None and probability >= s.threshold:
        return s.complete_ms
    return s.unsure_ms


class EndOfTurnModel(Protocol):
    def probability(self, audio: np.ndarray) -> float:
        """Probability (0..1) that the turn is complete, from mono float32 16 kHz audio
        ending now (speech and the silence after it). Blocking; call on a worker."""
        ...


class SmartTurn:
    """Smart Turn v3.x on onnxruntime (CUDA when available and ``device`` allows)."""

    SECONDS = 8
    """The model sees the last 8 s, zero-padded at the front."""

    def __init__(self, model_path: Path, threads: int = 1, device: str = "auto") -> None:
        import onnxruntime
        from faster_whisper.feature_extractor import FeatureExtractor

        options = onnx_options(threads)
        use_cuda = device == "cuda" or (device == "auto" and cuda_available("onnxruntime"))
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else [
            "CPUExecutionProvider"
        ]
        try:
            self._session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=providers
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelLoadError(
                f"cannot load end-of-turn model {model_path}: {err}",
                "turn.model must be a Smart Turn v3 ONNX file, or set turn.end_model: none",
            ) from err
        # faster-whisper's extractor gives the same log-mel features as the
        # transformers WhisperFeatureExtractor the model was trained with (max
        # difference 7e-6 measured), so no transformers dependency is needed.
        self._features = FeatureExtractor(feature_size=80, chunk_length=self.SECONDS)
        self._frames = self.SECONDS * 100
        logger.info("end of turn: %s (%s)", model_path.name, providers[0])

    def probability(self, audio: np.ndarray) -> float:
        n = self.SECONDS * 16000
        x = np.zeros(n, np.float32)
        tail = audio[-n:].astype(np.float32, copy=False)
        x[n - tail.size :] = tail
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)  # as do_normalize=True
        try:
            features = self._features(x, padding=0)[None, :, : self._frames]
            out = self._session.run(None, {"input_features": features})
        except Exception as err:
            raise StageError("turn", str(err)) from err
        return float(np.ravel(out[0])[0])

    def warm_up(self) -> None:
        self.probability(np.zeros(16000, np.float32))
