"""Error classes, one per stage, each with a stable code and a hint for the user.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; no
traceback is shown for these. Foreign exceptions (PortAudioError, RuntimeError
from ctranslate2, ...) are wrapped at the stage boundary so that the message says
which stage failed and what to do.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where a failure happened (``StageError.stage``, the ``error`` event's ``stage``)."""

    ASR = "asr"
    LLM = "llm"
    TTS = "tts"
    TURN = "turn"
    """The end-of-turn model."""
    WAKE = "wake"
    AEC = "aec"
    """The echo canceller."""
    PIPELINE = "pipeline"
    """The orchestration itself (a bug): the event has turn 0."""


class VoiceAgentError(Exception):
    """Base class of every error voiceagent reports to the user."""

    code: str = "error"
    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(VoiceAgentError):
    """An invalid or unknown configuration key, or an unreadable config file."""

    code = "config"
    exit_code = 2


class ModelMissingError(VoiceAgentError):
    """A configured model file does not exist."""

    code = "model-missing"


class ModelLoadError(VoiceAgentError):
    """A model file exists but could not be loaded."""

    code = "model-load"


class AudioInputError(VoiceAgentError):
    """An input file or stream that cannot be read or decoded."""

    code = "audio-input"


class AudioOutputError(VoiceAgentError):
    """An output file or stream that cannot be written."""

    code = "audio-output"


class AudioDeviceError(VoiceAgentError):
    """An audio device that is absent, busy or vanished."""

    code = "audio-device"


class StageError(VoiceAgentError):
    """A model call failed while answering a turn (ASR, LLM or TTS)."""

    def __init__(self, stage: Stage, message: str, hint: str | None = None) -> None:
        super().__init__(f"{stage}: {message}", hint)
        self.stage = Stage(stage)
        self.code = f"{stage}-failed"
