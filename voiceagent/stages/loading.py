"""Loading the models the config names, checked and warmed up, behind their Protocols.

The only place that picks a backend: the dialogue gets ``Models`` and never
knows which one it talks to. Capabilities only some backends have (the LLM's
prompt cache and end-of-message probability) are None where absent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from voiceagent.config import Config
from voiceagent.model_store import missing_model_error
from voiceagent.stages.protocols import (
    ChatModel,
    EndOfMessage,
    EndOfTurnModel,
    PromptCache,
    Synthesizer,
    Transcriber,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    transcriber: Transcriber
    chat: ChatModel
    synthesizer: Synthesizer
    end_model: EndOfTurnModel | None = None
    """Judges pauses from the voice (``turn.end_model``); None: the words alone."""
    prompt_cache: PromptCache | None = None
    """The LLM's cache, if the backend keeps one it can fill ahead of time."""
    end_of_message: EndOfMessage | None = None
    """The LLM's end-of-message probability, if the backend gives one."""

    def for_session(self, session: str) -> "Models":
        """The models as one session uses them: the same weights, with the state a
        session must not share (the LLM's KV cache, the recognizer's bias toward
        the room's names) its own, where the backend keeps such state."""
        views = {}
        for role in ("transcriber", "chat"):
            make_view = getattr(getattr(self, role), "for_session", None)
            if make_view is not None:
                views[role] = make_view(session)
        chat = views.get("chat")
        if chat is not None:  # the cache and the odds go through the same view
            if self.prompt_cache is self.chat:
                views["prompt_cache"] = chat
            if self.end_of_message is self.chat:
                views["end_of_message"] = chat
        return replace(self, **views) if views else self

    def forget(self, session: str) -> None:
        """``session`` ended for good (a browser closed): drop what the backends keep
        for it (the LLM's saved cache), so that clients coming and going leak nothing."""
        caches = getattr(self.chat, "caches", None)
        if caches is not None:
            caches.forget(session)


def check_model_paths(cfg: Config) -> dict[str, Path]:
    """Absolute model paths, or a one-line error naming the first missing one."""
    paths = {}
    if cfg.asr.backend == "whisper":
        paths["asr"] = cfg.resolve_model(cfg.asr.model)
    if cfg.tts.backend == "piper":
        paths["tts"] = cfg.resolve_model(cfg.tts.model)
    if cfg.llm.backend == "llama":
        paths["llm"] = cfg.resolve_model(Path(cfg.llm.model))
    if cfg.turn.end_model == "smart-turn":
        paths["turn"] = cfg.resolve_model(cfg.turn.model)
    for role, path in paths.items():
        if not path.exists():
            raise missing_model_error(path, role)
    return paths


def load_models(cfg: Config) -> Models:
    """Load and warm up the models (so the first turn is as fast as the rest)."""
    from voiceagent.stages.smart_turn import SmartTurn

    paths = check_model_paths(cfg)
    start = time.perf_counter()
    transcriber = load_transcriber(cfg, paths.get("asr"))
    chat, capabilities = load_chat(cfg, paths.get("llm"))
    synthesizer = load_synthesizer(cfg, paths.get("tts"))
    end_model = None
    if "turn" in paths:
        end_model = SmartTurn(paths["turn"], cfg.turn.threads, cfg.turn.device)
        end_model.warm_up()
    logger.info("models loaded and warmed up in %.1f s", time.perf_counter() - start)
    return Models(transcriber, chat, synthesizer, end_model, **capabilities)


def load_transcriber(cfg: Config, path: Path | None) -> Transcriber:
    """The configured ASR, warmed up: in this process, or a Wyoming server's."""
    if cfg.asr.backend == "wyoming":
        from voiceagent.stages.wyoming import WyomingTranscriber

        remote = WyomingTranscriber(cfg.asr)
        remote.warm_up()
        return remote
    from voiceagent.stages.whisper import WhisperTranscriber

    assert path is not None
    local = WhisperTranscriber(path, cfg.asr)
    local.warm_up()
    return local


def load_synthesizer(cfg: Config, path: Path | None) -> Synthesizer:
    """The configured TTS, warmed up: in this process, or a Wyoming server's."""
    if cfg.tts.backend == "wyoming":
        from voiceagent.stages.wyoming import WyomingSynthesizer

        remote = WyomingSynthesizer(cfg.tts)
        remote.warm_up()
        return remote
    from voiceagent.stages.piper import PiperSynthesizer

    assert path is not None
    local = PiperSynthesizer(path, cfg.tts)
    local.warm_up()
    return local


def load_chat(cfg: Config, path: Path | None) -> tuple[ChatModel, dict[str, object]]:
    """The configured LLM, warmed up, and the optional capabilities it has."""
    if cfg.llm.backend == "openai":
        from voiceagent.stages.openai_chat import OpenAIChatModel

        remote = OpenAIChatModel(cfg)
        remote.warm_up(cfg.llm.system_prompt)
        return remote, {}  # a server has neither a cache to fill nor next-token odds
    from voiceagent.stages.llama import LlamaChatModel

    assert path is not None
    local = LlamaChatModel(path, cfg.llm)
    local.warm_up(cfg.llm.system_prompt)
    return local, {"prompt_cache": local, "end_of_message": local}
