"""The one validated configuration model, loaded in one place.

It is also the one source of defaults: the pure rules' settings objects have
none of their own, and each is built here from its section
(``Config.endpointer_settings``, ``TurnConfig.end_settings``,
``BargeInConfig.settings``, ``WakeConfig.gate_settings``, ``TtsConfig.splitter``).

Every section forbids unknown keys, so a typo is an error that names the key
instead of a silently ignored setting. Model paths that are relative are resolved
against the directory of the config file (the repository root for the shipped
``config.yaml``), so ``voiceagent`` can be started from anywhere.

- ``sections``: the pipeline (audio, VAD, turns, echo, barge-in);
- ``stages``: the models (ASR, LLM, TTS), here or on a server;
- ``house``: wake word, MQTT, Home Assistant, the daemon;
- ``network``: endpoints others connect to (``web:``, ``wyoming:``);
- ``rooms``: the ``satellites:`` list;
- ``model``: ``Config`` and each room's view of it (``Config.for_room``);
- ``loading``: the file, and one-line errors naming the key.
"""

from voiceagent.config.house import (
    WAKE_MODELS, WAKE_PHRASES, HomeAssistantConfig, MqttConfig, MqttTlsConfig, ServeConfig, WakeConfig,
)
from voiceagent.config.loading import DEFAULT_CONFIG_NAME, config_from_dict, load_config
from voiceagent.config.model import Config
from voiceagent.config.network import WebConfig
from voiceagent.config.rooms import SatelliteConfig
from voiceagent.config.sections import (
    DEFAULT_BACKCHANNELS, DEFAULT_STOP_PHRASES, AudioConfig, BargeInConfig, EchoConfig, PcmFormat, TurnConfig,
    VadConfig,
)
from voiceagent.config.stages import AsrConfig, LlmConfig, TtsConfig

__all__ = [
    "DEFAULT_BACKCHANNELS", "DEFAULT_CONFIG_NAME", "DEFAULT_STOP_PHRASES", "WAKE_MODELS", "WAKE_PHRASES",
    "AsrConfig", "AudioConfig", "BargeInConfig", "Config", "EchoConfig", "HomeAssistantConfig", "LlmConfig",
    "MqttConfig", "MqttTlsConfig", "PcmFormat", "SatelliteConfig", "ServeConfig", "TtsConfig", "TurnConfig",
    "VadConfig", "WakeConfig", "WebConfig", "config_from_dict", "load_config",
]
