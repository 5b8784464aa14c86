"""One session over one transport: ``run``, ``talk``, ``demo`` and ``bench``.

The same host as ``serve`` (one worker per model, the same session wiring), with
one room and no daemon parts: files end when their input has been answered,
sound devices when stopped (SIGINT/SIGTERM) or after ``duration`` seconds.
"""

from __future__ import annotations

import logging
from typing import Callable

from voiceagent.audio.echo import EchoSpec, RoomEcho
from voiceagent.audio.streams import BlockInput, BlockOutput
from voiceagent.config import Config, SatelliteConfig
from voiceagent.events import EventBus
from voiceagent.home.connection import HomeConnection
from voiceagent.home.protocol import Commands
from voiceagent.home.setup import connect_home
from voiceagent.host.host import Host, share
from voiceagent.session.build import build_session
from voiceagent.stages.loading import Models
from voiceagent.stages.workers import ModelWorker, WorkerFactory
from voiceagent.transports import Transport
from voiceagent.transports.paced import FileTransport

logger = logging.getLogger(__name__)


async def run_session(
    cfg: Config,
    models: Models,
    transport: Transport,
    bus: EventBus,
    *,
    house: bool = False,
    home: HomeConnection | None = None,
    signals: bool = False,
    duration: float | None = None,
    on_ready: Callable[[], None] | None = None,
    workers: WorkerFactory = ModelWorker,
    commands: Commands | None = None,
) -> float:
    """Run one conversation (named after ``bus.session``) until its input has ended
    and been answered, or until stopped. Returns seconds of audio run.

    ``house``: local intents, timers, and Home Assistant through ``home`` (or the
    connection the config describes, when ``home`` is None)."""
    if house and home is None:
        home = connect_home(cfg)
    host = Host(share(cfg, models, home if house else None, workers))
    room = SatelliteConfig(name=bus.session)
    session = build_session(cfg, room, host.shared, bus=bus, house=house, commands=commands)
    host.add(session, transport)
    if on_ready is not None:
        on_ready()
    try:
        await host.run(signals=signals, duration=duration)
    finally:
        host.close()
    return host.rooms[0].seconds


async def run_paced(
    cfg: Config,
    models: Models,
    source: BlockInput,
    sink: BlockOutput,
    bus: EventBus,
    realtime: bool = True,
    echo: EchoSpec | None = None,
    commands: Commands | None = None,
) -> float:
    """A conversation over a file/pipe input until it has ended and been answered.

    With ``echo``, the output is mixed back into the input through a simulated room;
    ``commands``: the house's commands (none by default: ``run`` answers with the LLM)."""
    room = RoomEcho(echo.delay_ms, echo.gain_db, cfg.audio.sample_rate) if echo else None
    transport = FileTransport(cfg, source, sink, endless=False, realtime=realtime, room=room)
    return await run_session(cfg, models, transport, bus, commands=commands)
