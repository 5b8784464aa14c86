"""Speech recognition: the ``Transcriber`` protocol and its faster-whisper model."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from voiceagent.config import AsrConfig
from voiceagent.errors import ModelLoadError, StageError
from voiceagent.gpu import cuda_available

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float
    """Compute time of the call in seconds."""
    logprob: float | None = None
    """Mean log-probability per token (Whisper's ``avg_logprob``; 0 is certain,
    below about -0.8 is a guess), None when unknown or empty."""


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Transcribe mono float32 audio at 16 kHz. Blocking; call on a worker."""
        ...


# Whisper invents these on silence and noise; an utterance that is only one of
# them is treated as no speech. ("Thank you." is also a favourite, but users say
# it too, so it is left to the no-speech probability filter below.)
_HALLUCINATIONS = frozenset(
    {"", "you", "thanks for watching", "thank you for watching", "uh", "um", "hmm"}
)


def is_probably_noise(text: str) -> bool:
    return text.lower().strip(" .!?,") in _HALLUCINATIONS


class WhisperTranscriber:
    """faster-whisper (CTranslate2) on CPU or CUDA."""

    def __init__(self, model_dir: Path, cfg: AsrConfig) -> None:
        from faster_whisper import WhisperModel

        device = cfg.device
        if device == "auto":
            device = "cuda" if cuda_available("ctranslate2") else "cpu"
        compute_type = cfg.compute_type
        if compute_type == "default":
            compute_type = "float16" if device == "cuda" else "int8"
        try:
            self._model = WhisperModel(
                str(model_dir),
                device=device,
                compute_type=compute_type,
                cpu_threads=cfg.threads,
                num_workers=1,
            )
        except Exception as err:  # ctranslate2 raises RuntimeError/ValueError
            raise ModelLoadError(
                f"cannot load ASR model {model_dir}: {err}",
                "asr.model must be a CTranslate2 Whisper directory (model.bin, config.json)",
            ) from err
        self._cfg = cfg
        self.device = device
        logger.info("ASR: %s on %s (%s)", model_dir.name, device, compute_type)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        start = time.perf_counter()
        try:
            segments, _info = self._model.transcribe(
                audio.astype(np.float32, copy=False),
                language=self._cfg.language,
                beam_size=self._cfg.beam_size,
                temperature=0.0,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
            )
            kept = [s for s in segments if s.no_speech_prob < 0.8 or s.avg_logprob > -0.7]
        except Exception as err:
            raise StageError("asr", str(err)) from err
        text = " ".join(s.text.strip() for s in kept).strip()
        logprob = sum(s.avg_logprob for s in kept) / len(kept) if kept else None
        return Transcript(text=text, seconds=time.perf_counter() - start, logprob=logprob)

    def warm_up(self) -> None:
        """One call on silence so the first real turn does not pay for lazy init."""
        self.transcribe(np.zeros(16000, dtype=np.float32))
