"""Building the house's side of the assistant from the config."""

from __future__ import annotations

from typing import Callable

from voiceagent.config import Config
from voiceagent.home.client import ClientSettings
from voiceagent.home.connection import HomeConnection
from voiceagent.home.control import HomeControl
from voiceagent.home.intents import IntentMatcher
from voiceagent.home.timers import Timer, Timers


def connect_home(cfg: Config) -> HomeConnection | None:
    """The connection to Home Assistant if ``homeassistant.url`` is set (not yet
    connected: run it), one per process, shared by every room. Raises
    ConfigError for an unreadable token file."""
    h = cfg.homeassistant
    if not h.url or not h.intents:
        return None
    token = cfg.secret(h.token, h.token_file, "homeassistant.token") or ""
    return HomeConnection(ClientSettings(
        url=h.url, token=token, timeout_s=h.timeout_s, connect_timeout_s=h.connect_timeout_s,
        reconnect_min_s=h.reconnect_min_s, reconnect_max_s=h.reconnect_max_s, verify_tls=h.verify_tls,
    ))


def build_home(
    cfg: Config,
    connection: HomeConnection | None,
    on_timer_finished: Callable[[Timer], None] | None = None,
    on_timers_changed: Callable[[list[Timer]], None] | None = None,
) -> HomeControl | None:
    """One room's side of the house: local intents in its area (``cfg`` is the
    room's view), its own timers and Home Assistant conversation, over the
    process's ``connection`` (None: no Home Assistant). None with
    ``homeassistant.intents: false``."""
    h = cfg.homeassistant
    if not h.intents:
        return None
    timers = Timers(on_timer_finished, on_timers_changed)
    return HomeControl(
        IntentMatcher(h.language, h.area), timers, connection, h.exposed_only, h.conversation_agent
    )
