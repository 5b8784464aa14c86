"""The naive sequential baseline: endpoint, then transcribe, then reply, then speak, then play.

The same models on the same corpus audio, one stage after the other with no
overlap, which is what a voice assistant is before any latency work:

- end of turn: webrtcvad (``vad.aggressiveness``) and a fixed trailing silence
  of ``TRAILING_SILENCE_MS``, longer than the corpus's longest mid-sentence
  pause (700 ms) so that it does not cut them;
- the whole utterance transcribed by faster-whisper's standard
  ``WhisperModel.transcribe()`` (a model of its own, with the configured
  threads, compute type, beam size and language, library defaults otherwise);
- the whole reply from the LLM (system prompt and the transcript, no history),
  cut after ``llm.max_sentences`` sentences as the pipeline cuts it, so both
  speak replies of the same length;
- the whole reply synthesized by piper, then played.

Being sequential, its voice-to-voice is exactly the endpoint delay plus the
measured compute times, which are measured for real, one utterance after the
other, with nothing else running.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from voiceagent.stages.loading import Models
from voiceagent.bench.corpus import Corpus
from voiceagent.bench.wer import normalize, word_errors
from voiceagent.config import Config
from voiceagent.errors import ModelLoadError
from voiceagent.rules.splitter import ClauseSplitter
from voiceagent.stages.vad import WebRtcVad
from voiceagent.stages.whisper import is_probably_noise, resolve_device

logger = logging.getLogger(__name__)

TRAILING_SILENCE_MS = 800
"""Fixed silence that ends a turn in the baseline, milliseconds."""


@dataclass(frozen=True)
class Segment:
    """One utterance found by the endpointer, in frames."""

    onset: int
    """First voiced frame."""
    fire: int
    """Frame at whose end the trailing silence was complete: the endpoint decision."""


def endpoint_segments(
    voiced: Sequence[bool], start_frames: int, silence_frames: int
) -> list[Segment]:
    """Utterances in a sequence of per-frame speech flags.

    Speech opens after ``start_frames`` voiced frames in a row (dated from the
    first of them) and ends once ``silence_frames`` unvoiced frames in a row
    have passed. Speech still open at the end fires at the last frame.
    """
    segments, onset, run, silence = [], None, 0, 0
    for k, flag in enumerate(voiced):
        if onset is None:
            run = run + 1 if flag else 0
            if run >= start_frames:
                onset, silence = k - run + 1, 0
        else:
            silence = 0 if flag else silence + 1
            if silence >= silence_frames:
                segments.append(Segment(onset, k))
                onset, run = None, 0
    if onset is not None:
        segments.append(Segment(onset, len(voiced) - 1))
    return segments


@dataclass(frozen=True)
class BaselineTurn:
    """The naive pipeline's answer to one corpus utterance. Times in ms."""

    index: int
    endpoint_ms: float | None
    """Endpoint decision minus the true end of speech (None: never endpointed)."""
    asr_ms: float = 0.0
    llm_ms: float = 0.0
    tts_ms: float = 0.0
    transcript: str = ""
    reply: str = ""
    premature: bool = False
    """The endpointer fired before the true end of speech."""
    word_errors: int = 0
    ref_words: int = 0

    @property
    def v2v_ms(self) -> float | None:
        """Endpoint delay plus the compute of every stage; None if nothing was said back."""
        if self.endpoint_ms is None or not self.reply:
            return None
        return self.endpoint_ms + self.asr_ms + self.llm_ms + self.tts_ms

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["v2v_ms"] = self.v2v_ms
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in data.items()}


class NaivePipeline:
    """The stages of the baseline, each consumed to the end before the next."""

    def __init__(self, cfg: Config, models: Models) -> None:
        from faster_whisper import WhisperModel

        device, compute_type = resolve_device(cfg.asr)
        path = cfg.resolve(cfg.asr.model)
        try:
            self._whisper = WhisperModel(
                str(path), device=device, compute_type=compute_type,
                cpu_threads=cfg.asr.threads, num_workers=1,
            )
        except Exception as err:  # ctranslate2 raises RuntimeError/ValueError
            raise ModelLoadError(f"cannot load ASR model {path} for the baseline: {err}") from err
        self._cfg = cfg
        self._models = models
        self._transcribe(np.zeros(cfg.audio.sample_rate, np.float32))  # lazy init off the clock

    def _transcribe(self, audio: np.ndarray) -> str:
        segments, _info = self._whisper.transcribe(
            audio, language=self._cfg.asr.language, beam_size=self._cfg.asr.beam_size
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def _reply(self, text: str) -> str:
        cfg = self._cfg
        messages = [
            {"role": "system", "content": cfg.llm.system_prompt},
            {"role": "user", "content": text},
        ]
        # The whole reply is synthesized at once here: no first-clause cut.
        splitter = ClauseSplitter(cfg.tts.first_clause_min_words, cfg.tts.clause_min_words, first_max_words=0)
        clauses: list[str] = []
        stream = self._models.chat.stream_chat(messages)
        try:
            for piece in stream:
                clauses += splitter.push(piece)
                if splitter.sentences >= cfg.llm.max_sentences:
                    break
            else:
                clauses += splitter.flush(keep_unfinished=False)
        finally:
            stream.close()  # type: ignore[attr-defined]
        return " ".join(clauses)

    def _speak(self, text: str) -> None:
        for _chunk in self._models.synthesizer.synthesize(text):
            pass

    def answer(self, audio: np.ndarray) -> tuple[str, str, float, float, float]:
        """(transcript, reply, ASR s, LLM s, TTS s) for one utterance."""
        t0 = time.perf_counter()
        transcript = self._transcribe(audio)
        t1 = time.perf_counter()
        if is_probably_noise(transcript):
            return transcript, "", t1 - t0, 0.0, 0.0
        reply = self._reply(transcript)
        t2 = time.perf_counter()
        if reply:
            self._speak(reply)
        return transcript, reply, t1 - t0, t2 - t1, time.perf_counter() - t2


def run_baseline(cfg: Config, models: Models, corpus: Corpus) -> list[BaselineTurn]:
    """The baseline's turn for every corpus utterance, computed one after another."""
    rate, frame_ms = corpus.rate, cfg.vad.frame_ms
    n = rate * frame_ms // 1000
    vad = WebRtcVad(cfg.vad.aggressiveness, rate, frame_ms)
    voiced = [vad.is_speech(corpus.audio[k : k + n]) for k in range(0, corpus.audio.size - n + 1, n)]
    segments = endpoint_segments(
        voiced, max(cfg.vad.start_ms // frame_ms, 1), TRAILING_SILENCE_MS // frame_ms
    )
    pipeline = NaivePipeline(cfg, models)
    pre_roll = cfg.vad.pre_roll_ms * rate // 1000
    turns = []
    for u in corpus.utterances:
        # The segments open while this utterance was being said.
        mine = [s for s in segments if s.onset * n < u.end and (s.fire + 1) * n > u.start]
        heard = [s for s in mine if (s.fire + 1) * n >= u.end]
        premature = len(heard) < len(mine)
        ref_words = len(normalize(u.text))
        if not heard:
            turns.append(BaselineTurn(u.index, None, premature=premature, ref_words=ref_words))
            continue
        fire = (heard[0].fire + 1) * n
        start = max(mine[0].onset * n - pre_roll, 0)
        # Everything since the first segment: a premature cut is answered with
        # the whole utterance, which flatters the baseline's WER, not its latency.
        transcript, reply, asr_s, llm_s, tts_s = pipeline.answer(corpus.audio[start:fire])
        turns.append(BaselineTurn(
            u.index, (fire - u.end) / rate * 1000, asr_s * 1000, llm_s * 1000, tts_s * 1000,
            transcript, reply, premature=premature,
            word_errors=word_errors(u.text, transcript), ref_words=ref_words,
        ))
        logger.info("baseline %d: %r -> %r", u.index, transcript, reply)
    return turns
