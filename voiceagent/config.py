"""The one validated configuration model, loaded in one place.

It is also the one source of defaults: the pure rules' settings objects have
none of their own, and each is built here from its section
(``Config.endpointer_settings``, ``TurnConfig.end_settings``,
``BargeInConfig.settings``, ``WakeConfig.gate_settings``, ``TtsConfig.splitter``).

Every section forbids unknown keys, so a typo is an error that names the key
instead of a silently ignored setting. Model paths that are relative are resolved
against the directory of the config file (the repository root for the shipped
``config.yaml``), so ``voiceagent`` can be started from anywhere.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from voiceagent import yaml_bounded
from voiceagent.errors import ConfigError
from voiceagent.rules.bargein import BargeInSettings
from voiceagent.rules.continuation import ContinuationSettings
from voiceagent.rules.endpointer import EndpointerSettings
from voiceagent.rules.splitter import ClauseSplitter
from voiceagent.rules.turn_end import TurnEndSettings
from voiceagent.rules.wake_gate import WakeGateSettings

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_NAME = "config.yaml"
_WARNED_READABLE: set[Path] = set()
"""Secret files already warned about (the config reads a secret more than once)."""


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
    aggressiveness: int = Field(2, ge=0, le=3, description="webrtcvad mode 0..3")
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
        description="voiced frames within this many dB of the noise floor count as silence "
        "(cuts webrtcvad's ~100 ms hangover; 0 disables)",
    )
    speculate_ms: int = Field(
        60,
        ge=0,
        le=5000,
        description="silence after which the final transcript is started speculatively",
    )
    trailing_silence_ms: int = Field(
        1000, ge=50, le=10000, description="silence that ends the turn when no pause was judged"
    )
    max_utterance_s: float = Field(20.0, gt=1, le=120, description="seconds")


class AsrConfig(_Section):
    model: Path = Path("models/whisper-tiny.en")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "default"
    threads: int = Field(2, ge=1, le=64)
    beam_size: int = Field(1, ge=1, le=10)
    language: str | None = "en"
    partial_interval_ms: int = Field(
        1000, ge=0, le=10000, description="0 disables partial transcripts"
    )
    window: Literal["fit", "full"] = Field(
        "fit",
        description="fit: the encoder sees the utterance plus a margin (about 8x faster on "
        "short utterances); full: Whisper's usual 30-second window",
    )
    window_margin_s: float = Field(
        3.0, ge=0, le=30, description="seconds of padding after the audio with window: fit"
    )
    min_window_s: float = Field(
        8.0, ge=1, le=30, description="shortest encoder window in seconds with window: fit"
    )
    timeout_s: float = Field(
        15.0, gt=0, le=600, description="the longest one transcription may take before the turn is given up"
    )


class LlmConfig(_Section):
    backend: Literal["llama", "openai"] = Field(
        "llama",
        description="llama: a GGUF file in this process (llama.cpp); openai: an OpenAI-compatible "
        "server (llama.cpp's llama-server, Ollama, vLLM), e.g. a bigger model on another machine",
    )
    model: str = Field(
        "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="llama: the GGUF file; openai: the model's name on the server (left at "
        "the default file: the first model the server lists)",
    )
    base_url: str | None = Field(
        None, description="openai: the API's base URL, e.g. http://localhost:8080/v1"
    )
    api_key: str | None = Field(None, description="openai: the bearer token, if the server wants one")
    api_key_file: Path | None = Field(None, description="openai: read the key from this file")
    connect_timeout_s: float = Field(3.0, gt=0, le=120, description="openai: to connect")
    read_timeout_s: float = Field(
        30.0, gt=0, le=600, description="openai: the longest wait for the next piece of a reply"
    )
    timeout_s: float = Field(
        30.0, gt=0, le=600,
        description="the longest wait for the first or next token before the turn is given up (an apology)",
    )
    system_prompt: str = (
        "You are a helpful voice assistant. Give short, direct answers. "
        "You cannot control devices or do things in the house; never say that you did."
    )
    context_tokens: int = Field(2048, ge=256, le=131072)
    max_history_turns: int = Field(3, ge=0, le=100)
    max_tokens: int = Field(40, ge=1, le=4096)
    max_sentences: int = Field(2, ge=1, le=50, description="reply is cut after this many")
    temperature: float = Field(0.1, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(40, ge=0)
    repeat_penalty: float = Field(1.1, ge=1, le=2)
    seed: int | None = Field(
        None, ge=0, le=2**31 - 1,
        description="sampling seed of every reply, for repeatable runs (null: random; bench: its --seed)",
    )
    threads: int = Field(
        1, ge=1, le=64,
        description="CPU threads; on 2 cores 1 is faster in the pipeline, see voiceagent/cpu.py",
    )
    gpu_layers: int | Literal["auto"] = Field("auto", description="-1 = all, 0 = CPU")

    @model_validator(mode="after")
    def _openai_needs_a_server(self) -> "LlmConfig":
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend openai needs llm.base_url (e.g. http://localhost:8080/v1)")
        return self


class TtsConfig(_Section):
    model: Path = Path("models/piper-joe-medium/en_US-joe-medium.onnx")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(2, ge=1, le=64)
    prioritize_first_clause: bool = Field(
        True, description="hold the LLM while the first clause is synthesized"
    )
    length_scale: float = Field(1.0, gt=0.2, le=4, description="larger is slower speech")
    first_clause_min_words: int = Field(
        2, ge=1, le=50, description="a comma ends the first clause once it has this many"
    )
    first_clause_max_words: int = Field(
        4, ge=0, le=100, description="cut the first clause at a word after this many (0: never)"
    )
    clause_min_words: int = Field(6, ge=1, le=100)
    timeout_s: float = Field(
        15.0, gt=0, le=600, description="the longest one clause's synthesis may take before the turn is given up"
    )

    def splitter(self) -> ClauseSplitter:
        """A new splitter for one reply."""
        return ClauseSplitter(self.first_clause_min_words, self.clause_min_words, self.first_clause_max_words)


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
        500,
        ge=0,
        le=10000,
        description="...while at most this much of its reply has been heard (after that, "
        "speech over the reply is a barge-in)",
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


WAKE_MODELS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa", "hey_rhasspy")
"""pyopen-wakeword's built-in models."""

WAKE_PHRASES = {
    "okay_nabu": "okay nabu",
    "hey_jarvis": "hey jarvis",
    "hey_mycroft": "hey mycroft",
    "alexa": "alexa",
    "hey_rhasspy": "hey rhasspy",
}


class WakeConfig(_Section):
    """Wake word gating for ``voiceagent serve`` (``talk`` and ``run`` always listen)."""

    model: Literal["none", "okay_nabu", "hey_jarvis", "hey_mycroft", "alexa", "hey_rhasspy"] = Field(
        "hey_jarvis", description="a pyopen-wakeword built-in model; none: always listening"
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="wake word probability that wakes it")
    phrase: str | None = Field(
        None, description="the words trimmed from the transcript (default: the model's phrase)"
    )
    listen_s: float = Field(
        8.0, gt=0, le=120, description="seconds after a wake word alone to start the request"
    )
    follow_up_s: float = Field(
        6.0,
        ge=0,
        le=120,
        description="seconds after a reply in which the user may go on without the wake word "
        "(0: every request needs it)",
    )

    def wake_phrase(self) -> str:
        return self.phrase if self.phrase is not None else WAKE_PHRASES.get(self.model, "")

    def gate_settings(self) -> WakeGateSettings:
        return WakeGateSettings(listen_s=self.listen_s, follow_up_s=self.follow_up_s, phrase=self.wake_phrase())


class MqttTlsConfig(_Section):
    enabled: bool = Field(False, description="connect over TLS (usually port 8883)")
    ca_file: Path | None = Field(None, description="CA certificate(s), PEM; None: the system's")
    cert_file: Path | None = Field(None, description="client certificate, PEM")
    key_file: Path | None = Field(None, description="client key, PEM")
    insecure: bool = Field(False, description="do not check the broker's host name")


class MqttConfig(_Section):
    """Home Assistant integration of ``voiceagent serve`` (MQTT discovery)."""

    enabled: bool = Field(True, description="false: serve runs without MQTT")
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = Field(
        None, description="read the password from this file (e.g. a systemd credential)"
    )
    tls: MqttTlsConfig = MqttTlsConfig()
    client_id: str | None = Field(None, description="default: voiceagent-<node_id>")
    discovery_prefix: str = Field("homeassistant", min_length=1)
    base_topic: str = Field("voiceagent", min_length=1, description="state and command topics")
    device_name: str = Field("Voice Agent", min_length=1)
    node_id: str | None = Field(
        None,
        pattern=r"^[a-zA-Z0-9_-]+$",
        description="unique per device, in topics and unique_ids (default: device_name slug)",
    )
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(1.0, gt=0, le=60, description="first retry delay")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="retry delay cap (doubling)")
    max_payload_bytes: int = Field(
        1024, ge=16, le=65536, description="larger command payloads are logged and ignored"
    )

    def node(self) -> str:
        if self.node_id:
            return self.node_id
        slug = re.sub(r"[^a-z0-9]+", "_", self.device_name.lower()).strip("_")
        return slug or "voiceagent"


class HomeAssistantConfig(_Section):
    """Control of the house: Home Assistant's WebSocket API, and local intents."""

    url: str | None = Field(
        None, description="e.g. http://homeassistant.local:8123; null: no house (timers still work)"
    )
    token: str | None = Field(None, description="a long-lived access token (HA profile, Security)")
    token_file: Path | None = Field(None, description="read the token from this file")
    area: str | None = Field(
        None, description="the area this assistant stands in, by name or id: \"turn on the lights\" "
        "and \"in here\" mean it"
    )
    language: Literal["en"] = Field("en", description="the intents' language (English only so far)")
    exposed_only: bool = Field(True, description="control only entities exposed to Assist")
    intents: bool = Field(True, description="match device commands and timers locally, before the LLM")
    conversation_agent: str | None = Field(
        None, description="send what no intent matches to this HA conversation agent "
        "(homeassistant: HA's own before 2024.6, conversation.home_assistant after; or an LLM "
        "agent's id) instead of the local LLM"
    )
    bias_asr: bool = Field(True, description="give the recognizer the house's names as hotwords")
    timeout_s: float = Field(5.0, gt=0, le=60, description="the longest wait for one answer from HA")
    connect_timeout_s: float = Field(5.0, gt=0, le=60)
    reconnect_min_s: float = Field(1.0, gt=0, le=60, description="first retry delay")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="retry delay cap (doubling)")
    verify_tls: bool = Field(True, description="check an https:// server's certificate")

    @model_validator(mode="after")
    def _url_needs_a_token(self) -> "HomeAssistantConfig":
        if self.url and self.token is None and self.token_file is None:
            raise ValueError("homeassistant.url needs homeassistant.token or homeassistant.token_file")
        if self.url is not None:
            from voiceagent.home.client import websocket_url

            try:
                websocket_url(self.url)
            except ConfigError as err:
                raise ValueError(str(err)) from None
        return self


class ServeConfig(_Section):
    """The ``voiceagent serve`` daemon."""

    conversation_log: Path | None = Field(
        Path("conversations.jsonl"),
        description="every turn appended as a JSON line, flushed per turn; null: none",
    )


class Config(_Section):
    audio: AudioConfig = AudioConfig()
    vad: VadConfig = VadConfig()
    asr: AsrConfig = AsrConfig()
    llm: LlmConfig = LlmConfig()
    tts: TtsConfig = TtsConfig()
    turn: TurnConfig = TurnConfig()
    echo: EchoConfig = EchoConfig()
    barge_in: BargeInConfig = BargeInConfig()
    wake: WakeConfig = WakeConfig()
    mqtt: MqttConfig = MqttConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    serve: ServeConfig = ServeConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    base_dir: Path = Field(Path("."), exclude=True, description="set by the loader")

    def resolve(self, path: Path | str) -> Path:
        """An absolute path for a (possibly relative) path from the config."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def secret(self, value: str | None, file: Path | None, key: str) -> str | None:
        """A password or key given in the config (``key``) or in a file (``key_file``,
        e.g. a systemd credential), stripped; a one-line error if both or unreadable."""
        if value is not None and file is not None:
            raise ConfigError(f"set {key} or {key}_file, not both")
        if file is None:
            return value
        path = self.resolve(file)
        try:
            text = path.read_text(encoding="utf-8").strip()
            mode = path.stat().st_mode
        except OSError as err:
            raise ConfigError(f"cannot read {key}_file {path}: {err.strerror}") from None
        except UnicodeDecodeError:  # the secret itself stays out of the message
            raise ConfigError(f"{key}_file {path} is not UTF-8 text") from None
        if mode & 0o004 and path not in _WARNED_READABLE:
            # Readable by every user of the machine. Group-readable is how the
            # systemd recipe shares it with the service (0640), so that is fine;
            # and even this is not an error, but the user should know.
            _WARNED_READABLE.add(path)
            logger.warning(
                "%s_file %s can be read by every user (mode %o): chmod 600 (or 640) it", key, path, mode & 0o777
            )
        return text

    def endpointer_settings(self) -> EndpointerSettings:
        """Without speculation the pause is the end of the turn (nothing starts earlier)."""
        vad = self.vad
        return EndpointerSettings(
            frame_ms=vad.frame_ms,
            start_ms=vad.start_ms,
            resume_ms=vad.resume_ms,
            speculate_ms=vad.speculate_ms if self.turn.speculative else vad.trailing_silence_ms,
            trailing_silence_ms=vad.trailing_silence_ms,
            max_utterance_ms=int(vad.max_utterance_s * 1000),
        )


MAX_SHOWN_CHARS = 60
"""How much of a rejected value an error message shows (a pasted essay stays out)."""
MAX_INT = 2**63 - 1
"""Integers beyond this cannot reach the models (C libraries take 64 bits at most)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _key_path(loc: tuple[int | str, ...]) -> str:
    """The config key of an error location: the fields and list indexes only.

    pydantic adds the member of a union it tried (``audio.input_device.str``),
    which is no key the user could look for."""
    parts: list[str] = []
    model: Any = Config
    for part in loc:
        if isinstance(part, int):  # an item of a list (turn.stop_phrases.3)
            parts.append(str(part))
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            break  # below a value: the name of a union member
        parts.append(part)  # a field, or an unknown key as it was written
        info = fields.get(part)
        annotation = info.annotation if info is not None else None
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_section else None
    return ".".join(parts) or "(top level)"


def _format_validation_error(err: ValidationError, source: str) -> str:
    errors = err.errors()
    keys = [_key_path(e["loc"]) for e in errors]
    key = keys[0]
    same = [e for e, k in zip(errors, keys) if k == key]  # a union: what each member wanted
    first = same[0]
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    else:
        reason = "; or ".join(dict.fromkeys(e["msg"] for e in same))
        if "input" in first and not isinstance(first["input"], (dict, list)):
            reason += f" (got {_shown(first['input'])})"
    others = len(set(keys)) - 1
    more = f" (+{others} more)" if others else ""
    return _one_line(f"{source}: invalid config key '{key}': {reason}{more}")


def _check_int_sizes(value: Any, key: str, source: str) -> None:
    """Raise ConfigError for an integer that no model library could take.

    pydantic accepts any integer where a field has no upper bound (``llm.top_k``),
    and 10**100 would then fail inside llama.cpp with a traceback."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _check_int_sizes(getattr(value, name), f"{key}.{name}" if key else name, source)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_int_sizes(item, f"{key}.{i}", source)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ConfigError(
            f"{source}: invalid config key '{key}': {_shown(value)} is too large a number"
        )


def config_from_dict(data: dict[str, Any], base_dir: Path, source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        cfg = Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
    _check_int_sizes(cfg, "", source)
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a config file.

    With no path, ``./config.yaml`` is used if it exists, else the built-in
    defaults with paths relative to the current directory.
    """
    if path is None:
        default = Path.cwd() / DEFAULT_CONFIG_NAME
        if not default.exists():
            logger.info("no %s here; using built-in defaults", DEFAULT_CONFIG_NAME)
            return config_from_dict({}, Path.cwd())
        path = default
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start} is {err.object[err.start]:#04x})") from None
    try:
        data = yaml_bounded.load(text) or {}
    except yaml_bounded.TooLarge as err:
        raise ConfigError(f"{path}: {err}, too much to be a config") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None)
        why = f": {_one_line(problem)}" if problem else ""
        raise ConfigError(f"{path}:{where} is not valid YAML{why}") from None
    return config_from_dict(data, path.resolve().parent, source=str(path))
