"""Rooms: the ``satellites:`` list, one conversation each on the shared models.

A satellite has a name (the session id in every event, its MQTT device, its
conversation log), its audio (a file or pipe, or sound devices) and, where they
differ from the top-level keys, its Home Assistant area, wake word settings and
conversation log. A config without ``satellites:`` is one satellite built from
the top-level keys, so every config written before rooms existed loads and runs
as it did.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from voiceagent.config.house import NAME_PATTERN, WakeConfig
from voiceagent.config.sections import WYOMING_URI, _Section


def slug(name: str) -> str:
    """A satellite's name as it goes into topics, ids and file names."""
    return re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_") or "room"


class SatelliteConfig(_Section):
    """One room or user: a conversation of its own over its own audio."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="unique: the session in every event, the MQTT device, the conversation log's name",
    )
    input: str | None = Field(
        None, description="a WAV file or - (raw PCM on stdin), paced in real time; given with output"
    )
    output: str | None = Field(None, description="a WAV file or - (raw PCM on stdout)")
    input_device: str | int | None = Field(
        None, description="sound device, name (substring) or index (default: audio.input_device)"
    )
    output_device: str | int | None = Field(None, description="default: audio.output_device")
    wyoming: str | None = Field(
        None, pattern=WYOMING_URI,
        description="a Wyoming satellite (wyoming-satellite) to connect to, e.g. tcp://den-pi:10700: "
        "its microphone and speaker are this room's",
    )
    area: str | None = Field(None, description="its Home Assistant area (default: homeassistant.area)")
    wake: WakeConfig | None = Field(
        None, description="its wake word settings, over the top-level wake: (only the keys that differ)"
    )
    conversation_log: Path | None = Field(
        None,
        description="default: serve.conversation_log with the satellite's name before the suffix; "
        "null: none",
    )

    @model_validator(mode="after")
    def _one_audio_path(self) -> "SatelliteConfig":
        if (self.input is None) != (self.output is None):
            raise ValueError(f"satellite {self.name!r}: give input and output together (files or pipes)")
        if self.input is not None and (self.input_device is not None or self.output_device is not None):
            raise ValueError(f"satellite {self.name!r}: input/output or input_device/output_device, not both")
        if self.wyoming is not None and (self.input is not None or self.input_device is not None
                                         or self.output_device is not None):
            raise ValueError(f"satellite {self.name!r}: wyoming is its audio: no input/output or devices")
        return self

    @property
    def uses_files(self) -> bool:
        return self.input is not None


def merge_satellite_overrides(data: dict[str, Any]) -> dict[str, Any]:
    """Before validation: each satellite's ``wake:`` over the top-level one, so that
    a room names only what differs (``wake: {model: alexa}``)."""
    sats = data.get("satellites")
    top_wake = data.get("wake")
    if not isinstance(sats, list) or not isinstance(top_wake, dict):
        return data
    merged = []
    for sat in sats:
        if isinstance(sat, dict) and isinstance(sat.get("wake"), dict):
            sat = {**sat, "wake": {**top_wake, **sat["wake"]}}
        merged.append(sat)
    return {**data, "satellites": merged}


def check_unique(satellites: list[SatelliteConfig]) -> None:
    seen: dict[str, str] = {}
    for sat in satellites:
        key = slug(sat.name)
        if key in seen:
            raise ValueError(f"satellites: {sat.name!r} and {seen[key]!r} are the same name")
        seen[key] = sat.name
    pipes = [s.name for s in satellites if "-" in (s.input, s.output)]
    if len(pipes) > 1:
        raise ValueError(f"satellites: only one can use stdin/stdout (-), not {', '.join(pipes)}")
