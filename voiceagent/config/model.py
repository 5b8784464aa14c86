"""``Config``: the whole validated configuration, and each room's view of it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from voiceagent.config.house import HomeAssistantConfig, MqttConfig, ServeConfig, WakeConfig
from voiceagent.config.network import WebConfig, WyomingConfig
from voiceagent.config.rooms import SatelliteConfig, check_unique, slug
from voiceagent.config.sections import AudioConfig, BargeInConfig, EchoConfig, TurnConfig, VadConfig, _Section
from voiceagent.config.stages import AsrConfig, LlmConfig, TtsConfig
from voiceagent.errors import ConfigError
from voiceagent.rules.endpointer import EndpointerSettings

logger = logging.getLogger(__name__)

_WARNED_READABLE: set[Path] = set()
"""Secret files already warned about (the config reads a secret more than once)."""

DEFAULT_SATELLITE = "default"
PROJECT_DIR = Path(__file__).resolve().parents[2]
"""The repository (or installation) the package runs from: where ``make`` pulls ``models/``."""


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
    web: WebConfig = WebConfig()
    wyoming: WyomingConfig = WyomingConfig()
    satellites: list[SatelliteConfig] | None = Field(
        None,
        description="rooms, each a conversation of its own on the shared models; absent: one "
        "satellite from the top-level keys; []: none (network clients only)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    base_dir: Path = Field(Path("."), exclude=True, description="set by the loader")

    @field_validator("satellites")
    @classmethod
    def _unique_rooms(cls, satellites: list[SatelliteConfig] | None) -> list[SatelliteConfig] | None:
        if satellites:
            check_unique(satellites)
        return satellites

    def rooms(self) -> list[SatelliteConfig]:
        """The satellites to run: the configured ones, or the one the top-level
        keys describe (sound devices; ``serve --input/--output`` give it files)."""
        if self.satellites is not None:
            return list(self.satellites)
        return [SatelliteConfig(name=self.serve.name)]

    def for_room(self, sat: SatelliteConfig) -> "Config":
        """This config as one room sees it: its devices, area, wake word settings,
        conversation log and (for a listed satellite) an MQTT device of its own."""
        update: dict[str, object] = {}
        audio = {}
        if sat.input_device is not None:
            audio["input_device"] = sat.input_device
        if sat.output_device is not None:
            audio["output_device"] = sat.output_device
        if audio:
            update["audio"] = self.audio.model_copy(update=audio)
        if sat.wake is not None:
            update["wake"] = sat.wake
        if sat.area is not None:
            update["homeassistant"] = self.homeassistant.model_copy(update={"area": sat.area})
        if self.satellites is not None:  # listed: each its own log and device
            log = self.serve.conversation_log
            if "conversation_log" in sat.model_fields_set:
                log = sat.conversation_log
            elif log is not None:
                log = log.with_name(f"{log.stem}-{slug(sat.name)}{log.suffix or '.jsonl'}")
            update["serve"] = self.serve.model_copy(update={"conversation_log": log})
            m = self.mqtt
            update["mqtt"] = m.model_copy(update={
                "node_id": f"{m.node()}_{slug(sat.name)}",
                "device_name": f"{m.device_name} {sat.name}",
                "client_id": f"{m.client_id}-{slug(sat.name)}" if m.client_id else None,
            })
        return self.model_copy(update=update) if update else self

    def resolve(self, path: Path | str) -> Path:
        """An absolute path for a (possibly relative) path from the config."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def resolve_model(self, path: Path) -> Path:
        """A model's path: relative to the config file, or, where it is not there, to
        the project's own folder (``models/`` of the repository), so that a config
        written elsewhere (``/etc/voiceagent``, a test's temporary folder) finds the
        models that ``make`` pulled without naming them."""
        found = self.resolve(path)
        if found.exists() or Path(path).expanduser().is_absolute():
            return found
        installed = (PROJECT_DIR / path).resolve()
        if installed.exists():
            logger.info("%s is not beside the config: using %s", path, installed)
            return installed
        return found

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
