"""Speech synthesis: the ``Synthesizer`` protocol and its piper implementation."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from voiceagent.config import TtsConfig
from voiceagent.cpu import onnx_options
from voiceagent.errors import ModelLoadError, Stage, StageError
from voiceagent.gpu import cuda_available

logger = logging.getLogger(__name__)

WARM_UP_SENTENCE = (
    "A rainbow is the arc of colours you can see in the sky when the light of the sun "
    "shines through the many small drops of water that stay in the air after a rain "
    "shower, and it is always on the side opposite the sun."
)
"""Forty-five words: more than the 40 tokens a reply has by default (``llm.max_tokens``)."""

LEAD_SILENCE = 10 ** (-60 / 20)
"""Piper starts most clauses with 20-55 ms under -60 dBFS (its own noise floor is
near -80): inaudible, yet it is time between the end of the user's speech and
the first sound of the reply. Samples below this before the first one above it
are dropped."""
LEAD_KEEP_S = 0.005
"""Kept before the first sample above ``LEAD_SILENCE``, so the onset is not cut."""


def trim_lead(audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` without the silence it starts with (all of it silent: unchanged).

    The reply's only trim: applied here, to the first chunk of every clause,
    because the threshold is piper's (just above its noise floor, measured on
    its voices); the dialogue delivers what a synthesizer yields as it is.
    """
    loud = np.flatnonzero(np.abs(audio) > LEAD_SILENCE)
    if loud.size == 0:
        return audio
    return audio[max(0, int(loud[0]) - int(LEAD_KEEP_S * rate)):]


class PiperSynthesizer:
    def __init__(self, model_path: Path, cfg: TtsConfig) -> None:
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        config_path = Path(f"{model_path}.json")
        if not config_path.exists():
            raise ModelLoadError(
                f"piper voice config not found: {config_path}",
                "a piper voice is an .onnx file with its .onnx.json beside it",
            )
        use_cuda = cfg.device == "cuda" or (
            cfg.device == "auto" and cuda_available("onnxruntime")
        )
        # The session is built here rather than by PiperVoice.load so that the
        # thread budget holds: on 2 cores, piper must not take both from the LLM.
        options = onnx_options(cfg.threads)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else [
            "CPUExecutionProvider"
        ]
        try:
            with open(config_path, encoding="utf-8") as f:
                piper_config = PiperConfig.from_dict(json.load(f))
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=providers
            )
        except Exception as err:
            raise ModelLoadError(f"cannot load piper voice {model_path}: {err}") from err
        import piper.voice

        self._voice = PiperVoice(
            config=piper_config,
            session=session,
            espeak_data_dir=Path(piper.voice.ESPEAK_DATA_DIR),
        )
        self._syn_config = SynthesisConfig(length_scale=cfg.length_scale)
        self.sample_rate = piper_config.sample_rate
        logger.info("TTS: %s at %d Hz", model_path.name, self.sample_rate)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        try:
            first = True
            for chunk in self._voice.synthesize(text, syn_config=self._syn_config):
                audio = chunk.audio_float_array
                if first:
                    audio, first = trim_lead(audio, self.sample_rate), False
                yield audio
        except GeneratorExit:
            raise
        except Exception as err:
            raise StageError(Stage.TTS, str(err)) from err

    def warm_up(self) -> None:
        """Synthesize a word, then a sentence as long as a reply's longest.

        onnxruntime's memory arena grows to the largest input it has seen and
        keeps that (measured: +100 MB after one 24-word sentence, for good). In
        the soak that step came at turn 50, as a 14% rise of the daemon's memory;
        reaching it here makes the memory flat from the start, and spares the
        first long reply the allocation. Disabling the arena instead keeps the
        memory 150 MB lower but costs every clause 10-25 % more time.
        """
        for text in ("Hello.", WARM_UP_SENTENCE):
            for _ in self.synthesize(text):
                pass
