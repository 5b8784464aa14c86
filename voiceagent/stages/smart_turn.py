"""Smart Turn v3 (pipecat-ai, BSD-2): is the user's turn complete, from the voice.

A Whisper-tiny encoder with a classifier, trained on real speech: the
probability that the turn is complete from the last 8 s of audio, intonation
included. ~25-60 ms on 2 cores. How much the answer counts is decided in
``voiceagent.rules.turn_end``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from voiceagent.cpu import onnx_options
from voiceagent.errors import ModelLoadError, Stage, StageError
from voiceagent.gpu import cuda_available

logger = logging.getLogger(__name__)


class SmartTurn:
    """Smart Turn v3.x on onnxruntime (CUDA when available and ``device`` allows)."""

    SECONDS = 8
    """The model sees the last 8 s, zero-padded at the front."""
    sample_rate = 16000
    """Hertz (a Whisper encoder)."""

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
        n = self.SECONDS * self.sample_rate
        x = np.zeros(n, np.float32)
        tail = audio[-n:].astype(np.float32, copy=False)
        x[n - tail.size :] = tail
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)  # as do_normalize=True
        try:
            features = self._features(x, padding=0)[None, :, : self._frames]
            out = self._session.run(None, {"input_features": features})
        except Exception as err:
            raise StageError(Stage.TURN, str(err)) from err
        return float(np.ravel(out[0])[0])

    def warm_up(self) -> None:
        self.probability(np.zeros(16000, np.float32))
