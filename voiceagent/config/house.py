"""The house's sections of the config: the wake word, MQTT, Home Assistant and
the daemon. ``wake``, ``homeassistant.area`` and ``serve.conversation_log`` are a
room's own (a satellite may override them: ``config.rooms``); the rest is the
process's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from voiceagent.config.sections import _Section
from voiceagent.errors import ConfigError
from voiceagent.home.urls import websocket_url
from voiceagent.rules.wake_gate import WakeGateSettings


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
            try:
                websocket_url(self.url)
            except ConfigError as err:
                raise ValueError(str(err)) from None
        return self


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,39}$"
"""A room's name: it becomes a session id, an MQTT node and a file name."""


class ServeConfig(_Section):
    """The ``voiceagent serve`` daemon."""

    name: str = Field(
        "default",
        pattern=NAME_PATTERN,
        description="the session name of the one satellite a config without satellites: has",
    )
    conversation_log: Path | None = Field(
        Path("conversations.jsonl"),
        description="every turn appended as a JSON line, flushed per turn; null: none",
    )
