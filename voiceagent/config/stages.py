"""The model stages' sections of the config: ASR, LLM and TTS, each in this
process or on a server (``backend``), shared by every session."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from voiceagent.config.sections import WYOMING_URI, _Section
from voiceagent.rules.splitter import ClauseSplitter


class AsrConfig(_Section):
    backend: Literal["whisper", "wyoming"] = Field(
        "whisper",
        description="whisper: faster-whisper in this process (asr.model); wyoming: a Wyoming "
        "speech-to-text server at asr.uri (wyoming-faster-whisper, e.g. on a GPU box)",
    )
    uri: str | None = Field(
        None, pattern=WYOMING_URI, description="wyoming: the server, e.g. tcp://gpu-box:10300"
    )
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

    @model_validator(mode="after")
    def _wyoming_needs_a_server(self) -> "AsrConfig":
        if self.backend == "wyoming" and not self.uri:
            raise ValueError("backend wyoming needs asr.uri (e.g. tcp://gpu-box:10300)")
        return self


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
    backend: Literal["piper", "wyoming"] = Field(
        "piper",
        description="piper: piper in this process (tts.model); wyoming: a Wyoming text-to-speech "
        "server at tts.uri (wyoming-piper, e.g. on a GPU box)",
    )
    uri: str | None = Field(
        None, pattern=WYOMING_URI, description="wyoming: the server, e.g. tcp://gpu-box:10200"
    )
    voice: str | None = Field(
        None, max_length=200, description="wyoming: the voice's name on the server; null: its default"
    )
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
        3, ge=0, le=100, description="cut the first clause at a word after this many (0: never)"
    )
    clause_min_words: int = Field(6, ge=1, le=100)
    timeout_s: float = Field(
        15.0, gt=0, le=600, description="the longest one clause's synthesis may take before the turn is given up"
    )

    @model_validator(mode="after")
    def _wyoming_needs_a_server(self) -> "TtsConfig":
        if self.backend == "wyoming" and not self.uri:
            raise ValueError("backend wyoming needs tts.uri (e.g. tcp://gpu-box:10200)")
        return self

    def splitter(self) -> ClauseSplitter:
        """A new splitter for one reply."""
        return ClauseSplitter(self.first_clause_min_words, self.clause_min_words, self.first_clause_max_words)
