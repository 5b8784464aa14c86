"""Wake word detection with pyopen-wakeword (the pure rules, one detection per
wake word and the phrase trimmed from transcripts, are ``voiceagent.rules.wake_phrase``).

openWakeWord runs three small TFLite models on 16 kHz audio: a mel spectrogram
and a speech embedding shared by every wake word, and a per-word classifier that
sees the last 16 embeddings (1.28 s) and gives one probability per 80 ms chunk
(1280 samples). Measured on the 2-core build machine with 20 ms blocks: 3.2 ms
of CPU per chunk at 16 kHz, 3.4 ms at 48 kHz (resampling included), about 4% of
one core, on one thread (see ``_one_thread``); the models load in ~5 ms.

Two more things about pyopen-wakeword 1.1 shape this module:

- A fresh (or ``reset()``) feature extractor first runs its models over 8 s of
  zeros so that it can answer at once, which costs ~0.4 s of CPU on the first
  call. ``OpenWakeWordModel.warm_up`` pays that once and keeps the state it
  reaches (having heard silence); ``reset`` restores that state in ~0.5 ms
  instead of paying the 8 s again.
- Its streaming functions take any number of s16le samples but fail on an empty
  chunk and keep at most 10 s: blocks are split above 1 s (soxr's empty outputs
  give no pieces at all).
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import numpy as np

from voiceagent.audio.convert import StreamResampler, float_to_int16_bytes
from voiceagent.config import WAKE_MODELS
from voiceagent.errors import ModelLoadError
from voiceagent.rules.wake_phrase import WakeTrigger

logger = logging.getLogger(__name__)

MODEL_RATE = 16000
"""Hertz: the rate openWakeWord's models take."""
CHUNK_MS = 80
"""Milliseconds of audio per probability (1280 samples at 16 kHz)."""
_MAX_FEED = MODEL_RATE
"""Samples fed at once (1 s): the extractor's buffer holds 10 s."""


class WakeModel(Protocol):
    """The models behind ``WakeWordDetector`` (the real one or a test's fake)."""

    def probabilities(self, pcm: bytes) -> list[float]:
        """One probability (0..1) per 80 ms chunk completed by this 16 kHz s16le audio."""
        ...

    def warm_up(self) -> None:
        """Pay the first call's cost now; afterwards ``reset`` returns to this state."""
        ...

    def reset(self) -> None:
        """Forget the audio heard so far."""
        ...


class OpenWakeWordModel:
    """One built-in pyopen-wakeword model with its own feature extractor."""

    def __init__(self, name: str) -> None:
        if name not in WAKE_MODELS:
            raise ModelLoadError(
                f"unknown wake word model '{name}'",
                f"use one of {', '.join(WAKE_MODELS)}",
            )
        try:
            from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures
            from pyopen_wakeword.openwakeword import EMB_SHAPE, MEL_SHAPE
        except ImportError as err:
            raise ModelLoadError(
                f"wake word detection needs pyopen-wakeword: {err}",
                "pip install 'pyopen-wakeword>=1.1', or set wake.model: none",
            ) from err
        try:
            self._features = OpenWakeWordFeatures.from_builtin()
            self._model = OpenWakeWord.from_builtin(Model(name))
            _one_thread(self._features, "mel_", MEL_SHAPE)
            _one_thread(self._features, "emb_", EMB_SHAPE)
            _one_thread(self._model, "", None)
        except (OSError, ValueError, RuntimeError, AttributeError) as err:
            # ValueError: no bundled libtensorflowlite_c for this platform; OSError:
            # the library would not load; RuntimeError: a model file it rejected;
            # AttributeError: a pyopen-wakeword without the attributes used here.
            raise ModelLoadError(
                f"cannot load wake word model '{name}': {err}",
                "pyopen-wakeword bundles TensorFlow Lite for Linux amd64/arm64, Windows "
                "amd64 and macOS arm64 only; elsewhere set wake.model: none",
            ) from err
        self.name = name
        self._silence_state: list[tuple[object, str, object]] | None = None

    def probabilities(self, pcm: bytes) -> list[float]:
        out: list[float] = []
        for embedding in self._features.process_streaming(pcm):
            out.extend(self._model.process_streaming(embedding))
        return out

    def warm_up(self) -> None:
        self._features.reset()
        self._model.reset()
        self.probabilities(np.zeros(MODEL_RATE, np.int16).tobytes())
        self._silence_state = self._state()

    def reset(self) -> None:
        if self._silence_state is None:
            # Not warmed up: the library's own reset (the next call is slow).
            self._features.reset()
            self._model.reset()
            return
        for obj, attr, value in self._silence_state:
            setattr(obj, attr, value.copy() if isinstance(value, np.ndarray) else value)

    def _state(self) -> list[tuple[object, str, object]]:
        """The streaming state of pyopen-wakeword 1.1, copied: the public attributes
        its ``reset`` methods set (a version without them fails the real-model tests)."""
        state: list[tuple[object, str, object]] = []
        for obj, attrs in (
            (self._features, ("audio", "new_audio_samples", "mels", "new_mels")),
            (self._model, ("embeddings", "new_embeddings")),
        ):
            for attr in attrs:
                value = getattr(obj, attr)
                state.append((obj, attr, value.copy() if isinstance(value, np.ndarray) else value))
        return state


def _one_thread(obj: object, prefix: str, shape: tuple[int, ...] | None) -> None:
    """Recreate ``obj``'s TFLite interpreter ``{prefix}interpreter`` with one thread
(``shape``: the input shape the library gave it, None: the model's own).

    pyopen-wakeword creates its interpreters with default options, and TFLite then
    starts a pool of 8 threads on the first call, even on 2 cores: measured here,
    5.5 ms of CPU (3.8-4.3 ms wall) per 80 ms chunk against 3.1 ms of CPU and
    3.1 ms wall on one thread, so the pool costs the LLM and ASR threads CPU for
    nothing. Done before the first call, so no pool is ever started.
    """
    import ctypes

    lib = obj.lib  # type: ignore[attr-defined]
    lib.TfLiteInterpreterOptionsCreate.argtypes = []
    lib.TfLiteInterpreterOptionsCreate.restype = ctypes.c_void_p
    lib.TfLiteInterpreterOptionsSetNumThreads.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.TfLiteInterpreterOptionsSetNumThreads.restype = None
    lib.TfLiteInterpreterOptionsDelete.argtypes = [ctypes.c_void_p]
    lib.TfLiteInterpreterOptionsDelete.restype = None

    model = getattr(obj, f"{prefix}model")
    options = lib.TfLiteInterpreterOptionsCreate()
    if not options:
        raise RuntimeError("TfLiteInterpreterOptionsCreate returned NULL")
    try:
        lib.TfLiteInterpreterOptionsSetNumThreads(options, 1)
        interpreter = lib.TfLiteInterpreterCreate(model, options)
    finally:
        lib.TfLiteInterpreterOptionsDelete(options)  # the interpreter keeps a copy
    if not interpreter:
        raise RuntimeError("TfLiteInterpreterCreate returned NULL")
    if shape is not None:
        dims = (ctypes.c_int32 * len(shape))(*shape)
        if lib.TfLiteInterpreterResizeInputTensor(interpreter, 0, dims, len(shape)) != 0:
            lib.TfLiteInterpreterDelete(interpreter)
            raise RuntimeError(f"cannot resize the {prefix}model's input to {shape}")
    if lib.TfLiteInterpreterAllocateTensors(interpreter) != 0:
        lib.TfLiteInterpreterDelete(interpreter)
        raise RuntimeError(f"cannot allocate the {prefix}model's tensors")
    lib.TfLiteInterpreterDelete(getattr(obj, f"{prefix}interpreter"))
    setattr(obj, f"{prefix}interpreter", interpreter)
    # The tensors belong to the interpreter: fetch the new one's.
    setattr(obj, f"{prefix}input_tensor", lib.TfLiteInterpreterGetInputTensor(interpreter, 0))
    setattr(obj, f"{prefix}output_tensor", lib.TfLiteInterpreterGetOutputTensor(interpreter, 0))


class WakeWordDetector:
    """pyopen-wakeword on the pipeline's (echo-cancelled) input.

    Not thread-safe: call every method from the one worker thread that owns it.
    Use either ``process`` (the raw probability) or ``detect`` (one True per
    spoken wake word) on a stream, not both: only ``detect`` moves the trigger.
    """

    def __init__(
        self,
        model: str,
        threshold: float,
        sample_rate: int,
        *,
        hold_ms: float = 1000.0,
        backend: WakeModel | None = None,
    ) -> None:
        """``model``: one of ``WAKE_MODELS``; ``threshold``: probability 0..1 that
        counts as the wake word; ``sample_rate``: hertz of the blocks given to
        ``process``; ``hold_ms``: see ``WakeTrigger``; ``backend``: the models
        (default: pyopen-wakeword's ``model``; tests pass a fake)."""
        self.model = model
        self.sample_rate = sample_rate
        self._trigger = WakeTrigger(threshold, hold_ms, CHUNK_MS)  # a bad threshold fails before loading
        self._backend: WakeModel = backend if backend is not None else OpenWakeWordModel(model)
        self._resampler = StreamResampler(sample_rate, MODEL_RATE)
        self.last_probability = 0.0
        """The highest probability of the chunks completed by the last block (0.0: none)."""

    @property
    def threshold(self) -> float:
        return self._trigger.threshold

    def warm_up(self) -> None:
        """Run 1 s of silence through the models so the first real block is not
        slow (~0.4 s of CPU, see the module notes), then reset."""
        start = time.perf_counter()
        self._backend.warm_up()
        self.reset()
        elapsed_ms = (time.perf_counter() - start) * 1000
        logger.debug("wake word %s warmed up in %.0f ms", self.model, elapsed_ms)

    def process(self, block: np.ndarray) -> float:
        """The highest probability (0..1) of the 80 ms chunks this block completes,
        0.0 if it completes none. ``block``: mono float32 at ``sample_rate``, any size."""
        probabilities = self._probabilities(block)
        self.last_probability = max(probabilities, default=0.0)
        return self.last_probability

    def detect(self, block: np.ndarray) -> bool:
        """True once per spoken wake word (see ``WakeTrigger``): on the block whose
        chunk first reaches the threshold. ``last_probability`` tells how high."""
        fired = False
        probabilities = self._probabilities(block)
        for p in probabilities:
            # Every chunk must reach the trigger, so no short-circuit here.
            fired = self._trigger.update(p) or fired
        self.last_probability = max(probabilities, default=0.0)
        if fired:
            logger.debug("wake word %s detected (p=%.3f)", self.model, self.last_probability)
        return fired

    def reset(self) -> None:
        """Forget the audio heard so far and re-arm the trigger (e.g. after a
        detection was used, so its audio cannot count again)."""
        self._backend.reset()
        self._resampler = StreamResampler(self.sample_rate, MODEL_RATE)
        self._trigger.reset()
        self.last_probability = 0.0

    def _probabilities(self, block: np.ndarray) -> list[float]:
        audio = self._resampler(block)
        out: list[float] = []
        for start in range(0, audio.size, _MAX_FEED):
            pcm = float_to_int16_bytes(audio[start : start + _MAX_FEED])
            out.extend(self._backend.probabilities(pcm))
        return out
