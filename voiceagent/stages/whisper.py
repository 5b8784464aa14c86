"""Speech recognition with faster-whisper (a ``Transcriber``).

Whisper's encoder is trained on 30-second windows, and faster-whisper always
pads to one: with tiny.en on 2 cores that is ~260 ms of the ~350 ms a short
utterance costs, whatever its length. CTranslate2's encoder accepts shorter
inputs, so with ``asr.window: fit`` the window is cut to the utterance plus a
margin (``window_margin_s``): a 3-second question then costs ~30 ms of encoder
and the decoder's ~6 ms per token. The transcripts of the benchmark corpus are
the same (see the README's benchmark table for the word error rate). On a few
short real utterances the fitted window makes the decoder loop; those are
decoded again with the full window (``rules.repeats``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceagent.config import AsrConfig
from voiceagent.errors import ModelLoadError, Stage, StageError
from voiceagent.gpu import cuda_available
from voiceagent.rules.repeats import cut_loop, find_loop
from voiceagent.stages.protocols import Transcript

logger = logging.getLogger(__name__)

REPETITION_PENALTY = 1.3
"""For decoding a loop again: not by default, as it turned "5 5" into "5, five"."""


# Whisper invents these on silence and noise; a transcript that is only one of
# them is returned as "" (no speech). ("Thank you." is also a favourite, but
# users say it too, so it is left to the no-speech probability filter below.)
_HALLUCINATIONS = frozenset(
    {"", "you", "thanks for watching", "thank you for watching", "uh", "um", "hmm"}
)


def is_probably_noise(text: str) -> bool:
    return text.lower().strip(" .!?,") in _HALLUCINATIONS


def resolve_device(cfg: AsrConfig) -> tuple[str, str]:
    """The device and CTranslate2 compute type for ``auto``/``default``: CUDA and
    float16 when ctranslate2 sees a GPU, else CPU and int8."""
    device = cfg.device
    if device == "auto":
        device = "cuda" if cuda_available("ctranslate2") else "cpu"
    compute_type = cfg.compute_type
    if compute_type == "default":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


class WhisperTranscriber:
    """faster-whisper (CTranslate2) on CPU or CUDA."""

    sample_rate = 16000
    """Hertz: what Whisper models take, whatever the pipeline's rate."""

    def __init__(self, model_dir: Path, cfg: AsrConfig) -> None:
        from faster_whisper import WhisperModel

        device, compute_type = resolve_device(cfg)
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
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        self._tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task="transcribe",
            language=cfg.language if model.model.is_multilingual else None,
        )
        self._bias = Bias(None, [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps])
        # Without a language a multilingual model needs detection: the full path does it.
        self._prompt_known = not model.model.is_multilingual or cfg.language is not None
        self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]))
        logger.info("ASR: %s on %s (%s)", model_dir.name, device, compute_type)

    def set_hotwords(self, phrases: list[str]) -> None:
        """Bias recognition toward these words (the house's rooms and devices), the
        way faster-whisper's ``hotwords`` does: as "previous text" before the
        prompt, which the decoder attends to. Names Whisper would not guess
        ("Hue Go", a room called "snug") come out right more often; the cost is
        a longer prompt, measured by benchmarks/asr_bias.py on 2 cores: +3 to +6 ms
        a transcript for 7 names, +14 to +19 ms for 40. [] removes them.

        This sets the default for every caller; a session with names of its own
        passes its own per call (``transcribe(audio, bias)``, ``RoomTranscriber``)."""
        self._bias = self.bias(phrases)

    def for_session(self, session: str) -> "RoomTranscriber":
        """A session's view, biased toward the names of its own part of the house."""
        return RoomTranscriber(self)

    def bias(self, phrases: list[str]) -> "Bias":
        """The names as Whisper's "previous text" (tokenized once, when the house changes)."""
        hotwords = hotword_text(phrases)
        prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        if hotwords:
            # Half the decoder's context at most, as faster-whisper limits it.
            tokens = self._tokenizer.encode(" " + hotwords)[: self._model.max_length // 2 - 1]
            prompt = [self._tokenizer.sot_prev, *tokens, *prompt]
        return Bias(hotwords, prompt)

    def transcribe(self, audio: np.ndarray, bias: "Bias | None" = None) -> Transcript:
        """``bias``: this call's (a room's), instead of ``set_hotwords``'. Per call, not
        set on the model: one room's partials run on another thread beside another
        room's final transcript."""
        bias = bias if bias is not None else self._bias
        hotwords, prompt = bias.hotwords, bias.prompt
        audio = audio.astype(np.float32, copy=False)
        cfg = self._cfg
        window_s = max(cfg.min_window_s, audio.size / 16000 + cfg.window_margin_s)
        if cfg.window == "fit" and window_s <= 30.0 and self._prompt_known:
            result = self._transcribe_window(audio, window_s, prompt)
            # The fitted window loops on some short real utterances where
            # Whisper's own 30 s window does not (measured: "ten of clubs").
            # Decoded again with a repetition penalty first (~45 ms on 2 cores,
            # "10 of clubs."), then with the full window (~250 ms).
            for again in (lambda: self._transcribe_window(audio, window_s, prompt, REPETITION_PENALTY),
                          lambda: self._transcribe_full(audio, hotwords)):
                if find_loop(result.text) is None:
                    break
                logger.info("ASR: %r loops; decoding again", result.text)
                seconds = result.seconds
                result = again()
                result = Transcript(result.text, seconds + result.seconds, result.logprob)
        else:
            result = self._transcribe_full(audio, hotwords)
        if find_loop(result.text) is not None:
            logger.info("ASR: %r loops; keeping one copy of the repeated phrase", result.text)
            result = Transcript(cut_loop(result.text), result.seconds, result.logprob)
        if result.text and is_probably_noise(result.text):
            logger.debug("ASR: %r taken for a hallucination on noise", result.text)
            return Transcript("", result.seconds)
        return result

    def _transcribe_window(
        self, audio: np.ndarray, window_s: float, prompt: list[int], repetition_penalty: float = 1.0
    ) -> Transcript:
        """One greedy (or beam) decode over an encoder window of ``window_s`` seconds."""
        start = time.perf_counter()
        model = self._model
        # Pad the audio, not the features, so the log-mel range is computed as
        # in training (silence after the speech, then the window ends).
        samples = int(round(window_s * 10)) * 1600  # whole 100 ms, a multiple of the hop
        padded = np.zeros(samples, np.float32)
        padded[: audio.size] = audio[:samples]
        try:
            features = model.feature_extractor(padded, padding=0)[:, : samples // 160]
            encoded = model.encode(features)
            # Speech runs at about 4 tokens a second; a loop on noise must not run for long.
            max_length = len(prompt) + 10 + int(10 * audio.size / 16000)
            result = model.model.generate(
                encoded,
                [prompt],
                beam_size=self._cfg.beam_size,
                max_length=min(max_length, model.max_length),
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self._suppress,
                repetition_penalty=repetition_penalty,
            )[0]
        except Exception as err:  # ctranslate2 raises RuntimeError/ValueError
            raise StageError(Stage.ASR, str(err)) from err
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        # As faster-whisper: scores are length-normalised sums; avg over len + 1.
        logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = self._tokenizer.decode(tokens).strip()
        if result.no_speech_prob >= 0.8 and logprob <= -0.7:
            text = ""  # the same filter as the full path's segments
        return Transcript(
            text=text,
            seconds=time.perf_counter() - start,
            logprob=logprob if text else None,
        )

    def _transcribe_full(self, audio: np.ndarray, hotwords: str | None) -> Transcript:
        start = time.perf_counter()
        try:
            segments, _info = self._model.transcribe(
                audio,
                language=self._cfg.language,
                beam_size=self._cfg.beam_size,
                temperature=0.0,
                condition_on_previous_text=False,
                without_timestamps=True,
                hotwords=hotwords,
                vad_filter=False,
            )
            kept = [s for s in segments if s.no_speech_prob < 0.8 or s.avg_logprob > -0.7]
        except Exception as err:
            raise StageError(Stage.ASR, str(err)) from err
        text = " ".join(s.text.strip() for s in kept).strip()
        logprob = sum(s.avg_logprob for s in kept) / len(kept) if kept else None
        return Transcript(text=text, seconds=time.perf_counter() - start, logprob=logprob)

    def warm_up(self) -> None:
        """One call on silence so the first real turn does not pay for lazy init,
        then one on Whisper's whole 30 s window, so that the encoder's buffers
        have their largest size from the start (they grow to the longest audio
        encoded and stay)."""
        self.transcribe(np.zeros(16000, dtype=np.float32))
        self.transcribe(np.zeros(16000 * 30, dtype=np.float32))


def hotword_text(phrases: list[str]) -> str | None:
    """The house's names as Whisper's "previous text": as sentences, since joined
    with commas Whisper went on writing commas and ended "Turn on the office
    lights," (which reads as unfinished). None: no names."""
    text = ". ".join(p.strip().rstrip(".") for p in phrases if p.strip())
    return text or None


@dataclass(frozen=True)
class Bias:
    """Names to recognize: the text and the decoder prompt it makes."""

    hotwords: str | None
    prompt: list[int]


class RoomTranscriber:
    """One session's view of the shared recognizer: biased toward the names of its
    own part of the house (``homeassistant.bias_asr``), the model shared."""

    def __init__(self, shared: WhisperTranscriber) -> None:
        self.shared = shared
        self.sample_rate = shared.sample_rate
        self.bias: Bias | None = None
        """None: the shared recognizer's own (none unless ``set_hotwords``)."""

    def set_hotwords(self, phrases: list[str]) -> None:
        self.bias = self.shared.bias(phrases)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        return self.shared.transcribe(audio, self.bias)
