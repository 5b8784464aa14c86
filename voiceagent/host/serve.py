"""``voiceagent serve``: every room of the house in one process.

Start-up order: the config, each room's audio (a bad file or a missing device
fails at once), its conversation log, the models (loaded once, for every room),
then the event loop with the rooms, their MQTT devices and the connection to
Home Assistant side by side. A room's voice loop never waits for the broker:
while it is away the assistant goes on answering, and each room's device
publishes its latest states when it is back.

SIGTERM and SIGINT stop the replies that are playing, publish ``offline`` for
every room, close the devices and files, and return within a couple of seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TextIO

from voiceagent.config import Config, SatelliteConfig
from voiceagent.errors import ConfigError
from voiceagent.home.setup import connect_home
from voiceagent.host.host import Host, share
from voiceagent.session.build import build_session
from voiceagent.session.session import Session
from voiceagent.session.log import ConversationLog
from voiceagent.stages.loading import load_models
from voiceagent.transports import Transport, open_transport

if TYPE_CHECKING:
    from voiceagent.servers.web import Credentials, WebServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    input: str | None = None
    """A WAV file or ``-`` (raw PCM on stdin) for the one room; None: as configured."""
    output: str | None = None
    """A WAV file or ``-`` (raw PCM on stdout) for the one room."""
    events: str | None = None
    """Write every event of every room as a JSON line to this file."""


def _rooms(cfg: Config, opts: ServeOptions) -> list[SatelliteConfig]:
    if (opts.input is None) != (opts.output is None):
        raise ConfigError(
            "serve takes --input and --output together (files or pipes), or neither (sound devices)"
        )
    rooms = cfg.rooms()
    if opts.input is not None and len(rooms) != 1:
        raise ConfigError(
            f"serve --input/--output are the audio of the one room; this config has {len(rooms)} "
            "satellites: give each its input and output in satellites:"
        )
    return rooms


def run_serve(cfg: Config, opts: ServeOptions, out: TextIO = sys.stderr) -> int:
    """The daemon, until SIGTERM/SIGINT. Returns the exit status."""
    rooms = _rooms(cfg, opts)
    h = cfg.homeassistant
    if h.url:  # an unreadable token file fails now, not after the models have loaded
        cfg.secret(h.token, h.token_file, "homeassistant.token")
    several = cfg.satellites is not None
    transports: list[Transport] = []
    logs: list[ConversationLog | None] = []
    events_file = None
    try:
        for room in rooms:
            transports.append(open_transport(cfg, room, endless=True, input=opts.input, output=opts.output))
            rcfg = cfg.for_room(room)
            path = rcfg.serve.conversation_log
            logs.append(ConversationLog(rcfg.resolve(path), room.name if several else None) if path else None)
        events_file = open(opts.events, "w", encoding="utf-8") if opts.events else None
        credentials = _web_credentials(cfg)
        models = load_models(cfg)
        code = asyncio.run(_serve(cfg, rooms, transports, logs, models, events_file, out, credentials))
    finally:
        for log in logs:
            if log is not None:
                log.close()
        if events_file is not None:
            events_file.close()
        for transport in transports:
            transport.close()
    print("voiceagent serve: stopped", file=out)
    leave_stuck_models(code=code)
    return code


async def _serve(cfg, rooms, transports, logs, models, events_file, out, credentials) -> int:  # type: ignore[no-untyped-def]
    host = Host(share(cfg, models, connect_home(cfg)))
    several = cfg.satellites is not None
    try:
        for room, transport, log in zip(rooms, transports, logs):
            session = build_session(
                cfg, room, host.shared, display=out, events=events_file, daemon=True, several=several, log=log,
            )
            host.add(session, transport)
        wake = f"wake word {cfg.wake.model}" if cfg.wake.model != "none" else "no wake word (always listening)"
        mqtt = f"MQTT {cfg.mqtt.host}:{cfg.mqtt.port}" if cfg.mqtt.enabled else "MQTT off"
        ha = f"Home Assistant {cfg.homeassistant.url}" if cfg.homeassistant.url else "no Home Assistant"
        where = ", ".join(f"{r.session.name} ({r.transport.description})" for r in host.rooms) or "no room"
        if cfg.web.enabled:
            web = _web_server(cfg, host, out, events_file, credentials)
            host.services.append(web)
            asyncio.ensure_future(_announce(web, out))
        if cfg.wyoming.uri:
            from voiceagent.home.setup import build_home
            from voiceagent.home.timers import Timer, done_speech
            from voiceagent.servers.wyoming import WyomingService

            # Home Assistant's conversations: the house's intents (and timers) first, then the
            # LLM. A timer set through it rings in every room (Wyoming's handle has no speaker).
            def ring(timer: Timer) -> None:
                for room in host.rooms:
                    room.session.conv.say(done_speech(timer))

            commands = build_home(cfg, host.shared.home, ring)
            wyoming = WyomingService(cfg, cfg.wyoming.uri, host.shared, commands, can_ring=bool(host.rooms))
            host.services.append(wyoming)
            asyncio.ensure_future(_announce_wyoming(wyoming, out))
        if several:
            print(f"voiceagent serve: rooms: {where}", file=out)
        print(f"voiceagent serve: running ({wake}, {mqtt}, {ha}); SIGTERM or Ctrl+C to stop", file=out)
        return await host.run()
    finally:
        host.close()


def _web_credentials(cfg: Config) -> "Credentials | None":
    if not cfg.web.enabled:
        return None
    from voiceagent.servers.web import Credentials

    return Credentials.read(cfg)


def _web_server(cfg: Config, host: Host, out: TextIO, events_file: TextIO | None,
                credentials: "Credentials | None") -> "WebServer":
    """The page and the Realtime API: each connection a session named web-N."""
    from voiceagent.servers.web import WebServer

    def open_session(name: str) -> Session:
        return build_session(cfg, SatelliteConfig(name=name), host.shared, display=out, events=events_file,
                             several=True)

    return WebServer(cfg, open_session, forget=host.shared.models.forget, voice=cfg.resolve(cfg.tts.model).stem,
                     credentials=credentials)


async def _announce(web: "WebServer", out: TextIO) -> None:
    await web.listening.wait()
    ws = web.url.replace("http", "ws", 1)
    print(f"voiceagent serve: web page at {web.url} (OpenAI Realtime API at {ws}v1/realtime)", file=out, flush=True)


async def _announce_wyoming(service, out: TextIO) -> None:  # type: ignore[no-untyped-def]
    await service.listening.wait()
    print(f"voiceagent serve: Wyoming services at {service.uri}", file=out, flush=True)


STOP_WAIT_S = 3.0
"""Seconds, after the shutdown, that a model thread still in a call is waited for.
systemd kills the daemon after TimeoutStopSec (10 s in deploy/voiceagent.service);
Python's exit would otherwise wait for the thread however long it takes."""


def _exit_now(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def leave_stuck_models(
    wait_s: float = STOP_WAIT_S, exit: Callable[[int], object] = _exit_now, code: int = 0
) -> None:
    """Exit now if a model thread (``va-*``, see ``stages.workers``) is still busy
    after ``wait_s``: everything that matters (the logs, the WAV, ``offline``) is
    written and closed by then, and the call's result would be dropped anyway."""
    deadline = time.monotonic() + wait_s
    for thread in threading.enumerate():
        if thread.name.startswith("va-") and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t.name.startswith("va-") and t.is_alive()]
    if stuck:
        logger.warning("a model is still busy after %g s (%s): exiting without it", wait_s, ", ".join(stuck))
        exit(code)
