"""The sections of the pipeline's config: audio, VAD, turn-taking, echo and
barge-in (the model stages, ASR, LLM and TTS, are in ``config.stages``). Shared
by every session (the models are the process's); a satellite overrides only its
audio devices (``config.rooms``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voiceagent.rules.bargein import BargeInSettings
from voiceagent.rules.continuation import ContinuationSettings
from voiceagent.rules.turn_end import TurnEndSettings


WYOMING_URI = r"^tcp://[^:/]+:\d{1,5}$"
"""A Wyoming address (``wyoming.uri``, a satellite's, ``asr.uri``/``tts.uri``), as
Home Assistant and the Wyoming servers write it."""


def split_wyoming_uri(uri: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` (the config has checked the form) as (host, port)."""
    host, _, port = uri.removeprefix("tcp://").rpartition(":")
    return host, int(port)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PcmFormat(_Section):
    """Format of raw PCM on stdin/stdout (``-`` as input or output)."""

    sample_rate: int = Field(16000, ge=8000, le=192000, description="hertz")
    channels: int = Field(1, ge=1, le=8)
    format: Literal["s16le", "f32le"] = "s16le"


class AudioConfig(_Section):
    sample_rate: int = Field(
        16000, description="hertz; the rate the whole pipeline runs at (VAD, ASR, AEC)"
    )
    input_device: str | int | None = Field(None, description="name (substring) or index")
    output_device: str | int | None = None
    pcm: PcmFormat = PcmFormat()
    output_gain_db: float = Field(0.0, ge=-60, le=12, description="decibels on the reply")

    @field_validator("sample_rate")
    @classmethod
    def _vad_rate(cls, v: int) -> int:
        if v not in (8000, 16000, 32000, 48000):
            raise ValueError("must be 8000, 16000, 32000 or 48000 (webrtcvad rates)")
        return v


class VadConfig(_Section):
    detector: Literal["silero", "webrtc"] = Field(
        "silero",
        description="what tells speech from silence: Silero v6 (ends 40-70 ms after the words, "
        "never fires on room tone or a bark) or webrtcvad (with end_margin_db)",
    )
    speech_on: float = Field(0.5, gt=0, le=1, description="silero: probability that starts speech")
    speech_off: float = Field(
        0.35, ge=0, le=1, description="silero: speech goes on until the probability drops below this"
    )
    aggressiveness: int = Field(2, ge=0, le=3, description="webrtc: webrtcvad mode 0..3")
    frame_ms: Literal[10, 20, 30] = Field(20, description="milliseconds per VAD frame")
    pre_roll_ms: int = Field(300, ge=0, le=2000, description="audio kept before onset")
    start_ms: int = Field(
        60, ge=10, le=1000, description="voiced milliseconds needed to open an utterance"
    )
    resume_ms: int = Field(
        60, ge=10, le=1000, description="voiced milliseconds that cancel a pause"
    )
    end_margin_db: float = Field(
        6.0,
        ge=0,
        le=40,
        description="webrtc: voiced frames within this many dB of the noise floor count as silence "
        "(cuts webrtcvad's ~100 ms hangover; 0 disables)",
    )
    speculate_ms: int = Field(
        20,
        ge=0,
        le=5000,
        description="silence after which the final transcript is started speculatively "
        "(20: the first silent frame Silero reports; webrtcvad's hangover needs 60)",
    )
    trailing_silence_ms: int = Field(
        1000, ge=50, le=10000, description="silence that ends the turn when no pause was judged"
    )
    max_utterance_s: float = Field(20.0, gt=1, le=120, description="seconds")
    voice_probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="an utterance on which Silero (when it runs: vad.detector or "
        "barge_in.second_stage silero) never reaches this probability has no voice in it (a click, "
        "a breath, a stream's room tone) and is never answered, whatever the recognizer made of "
        "it; 0: off",
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> "VadConfig":
        if self.speech_off > self.speech_on:
            raise ValueError("vad.speech_off must not be above vad.speech_on")
        return self


DEFAULT_STOP_PHRASES = (
    "wait, stop, no, nope, hold on, hang on, never mind, nevermind, cancel, quiet, shut up, "
    "enough, be quiet, sorry"
).split(", ")


class TurnConfig(_Section):
    """When the user's turn is over (see ``voiceagent.rules.turn_end``)."""

    speculative: bool = Field(
        True, description="start ASR, LLM and TTS at silence onset, before the endpoint"
    )
    end_model: Literal["smart-turn", "none"] = Field(
        "smart-turn", description="end-of-turn model judging each pause from the voice"
    )
    model: Path = Path("models/smart-turn-v3.2/smart-turn-v3.2-cpu.onnx")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(1, ge=1, le=64)
    threshold: float = Field(
        0.5, gt=0, lt=1, description="end-of-turn probability that counts as complete"
    )
    complete_silence_ms: int = Field(
        250, ge=0, le=10000, description="silence that ends a turn judged complete"
    )
    unsure_silence_ms: int = Field(
        400, ge=0, le=10000, description="words look complete, the voice does not"
    )
    unfinished_silence_ms: int = Field(
        1000, ge=0, le=10000, description="the words so far cannot end a sentence"
    )
    doubtful_silence_ms: int = Field(
        600, ge=0, le=10000,
        description="the LLM takes the words for a fragment (the word list does not)",
    )
    words_threshold: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="LLM probability of the message ending here below which the words "
        "are doubtful (doubtful_silence_ms; 0: do not ask the LLM)",
    )

    continuation_window_ms: int = Field(
        1500,
        ge=0,
        le=10000,
        description="speech that starts within this many milliseconds of the end of the "
        "last turn's words continues it: its reply is withdrawn and both parts are answered "
        "as one turn (0: never)",
    )
    continuation_max_heard_ms: int = Field(
        300,
        ge=0,
        le=10000,
        description="...while at most this much of its reply had been heard when the new words "
        "began (after that, speech over the reply is a barge-in: a person needs ~0.3 s to start "
        "speaking in reaction to a sound, so earlier words were not a reaction to the reply)",
    )
    stop_phrases: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STOP_PHRASES),
        description="words that, said soon after a turn, interrupt its reply instead of "
        "continuing the turn",
    )

    fragment_threshold: float = Field(
        0.001,
        ge=0,
        lt=1,
        description="LLM probability of the message ending below which the words are "
        "unfinished (a fragment for sure, not only doubtful)",
    )

    def continuation_settings(self, barge_in: "BargeInConfig") -> ContinuationSettings:
        return ContinuationSettings(
            window_ms=self.continuation_window_ms,
            max_heard_ms=self.continuation_max_heard_ms,
            min_speech_ms=barge_in.min_speech_ms,
            stop_phrases=tuple(self.stop_phrases),
            backchannels=tuple(barge_in.backchannels),
        )

    def end_settings(self) -> TurnEndSettings:
        return TurnEndSettings(
            complete_ms=self.complete_silence_ms,
            unsure_ms=self.unsure_silence_ms,
            unfinished_ms=self.unfinished_silence_ms,
            doubtful_ms=self.doubtful_silence_ms,
            threshold=self.threshold,
            words_threshold=self.words_threshold,
            fragment_threshold=self.fragment_threshold,
        )


class EchoConfig(_Section):
    """Acoustic echo cancellation of the assistant's own voice in the microphone."""

    canceller: Literal["webrtc", "none"] = Field(
        "webrtc", description="WebRTC AEC3; 'none' when using headphones"
    )
    delay_ms: int | Literal["auto"] = Field(
        "auto",
        description="milliseconds from playing a sample to its echo in the input, beyond "
        "what the driver knows; auto: the sound card's reported latency (0 for files)",
    )

    only_when_echo: bool = Field(
        True,
        description="pass the input through uncancelled while no echo of the reply is "
        "found in it (AEC3 otherwise suppresses the user's voice over a reply)",
    )

    @field_validator("delay_ms")
    @classmethod
    def _delay_range(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= 1000:
            raise ValueError("must be 0..1000 milliseconds or 'auto'")
        return v


DEFAULT_BACKCHANNELS = (
    "mm, mhm, mmhm, mm-hmm, hmm, hm, uh-huh, uh, huh, um, ah, aha, oh, yeah, yes, yep, yup, "
    "right, okay, ok, sure, alright, i see, got it, cool, nice, wow, true, exactly, i know"
).split(", ")


class BargeInConfig(_Section):
    """Interrupting the assistant by talking over it."""

    enabled: bool = Field(True, description="false: speech during a reply waits its turn")
    on_onset: Literal["pause", "duck", "none"] = Field(
        "pause",
        description="what the reply does at the onset of suspected user speech, until the "
        "interruption is confirmed (then it stops) or rejected (then it goes on)",
    )
    duck_db: float = Field(-20.0, ge=-60, le=0, description="decibels, for on_onset: duck")
    min_speech_ms: int = Field(
        200, ge=0, le=2000, description="suspected speech shorter than this is noise"
    )
    end_silence_ms: int = Field(
        600,
        ge=0,
        le=10000,
        description="least silence that ends an utterance said over a reply: 'Wait, what...' "
        "must not become 'Wait.' and a second utterance",
    )
    confirm_ms: int = Field(
        1000,
        ge=100,
        le=5000,
        description="voiced milliseconds that confirm an interruption before any words "
        "are recognized (shorter ones are judged by their transcript)",
    )
    second_stage: Literal["silero", "none"] = Field(
        "silero", description="a second VAD that must agree before speech over a reply counts "
        "towards min_speech_ms and confirm_ms"
    )
    speech_threshold: float = Field(0.5, ge=0, le=1, description="Silero probability")
    echo_margin_db: float = Field(
        -25.0,
        ge=-80,
        le=20,
        description="input quieter than the reply's own level plus this is taken as echo, "
        "until the echo the canceller leaves has been measured (then the measured margin, "
        "if lower: a quiet user is heard where there is little or no echo)",
    )
    backchannels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BACKCHANNELS),
        description="words and phrases that, alone or repeated, acknowledge rather than "
        "interrupt",
    )

    def settings(self) -> BargeInSettings:
        return BargeInSettings(
            min_speech_ms=self.min_speech_ms,
            confirm_ms=self.confirm_ms,
            speech_threshold=self.speech_threshold,
            echo_margin_db=self.echo_margin_db,
            backchannels=tuple(self.backchannels),
        )
