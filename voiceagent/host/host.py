"""The process: what every session shares, and how long things live.

The host loads nothing itself (``stages.loading`` does) but owns what the
models need to be shared: one worker per model (``stages.workers.Workers``),
used by every session, so that llama.cpp never runs two calls at once and a
reply waiting for the LLM goes before any session's optional work. It also owns
the connection to Home Assistant, the signals, the watchdog of stuck models,
memory trimming, and the sessions' lifetimes: every room runs in one TaskGroup,
a room that fails is logged and the others go on, and a stop (SIGTERM, SIGINT)
ends them all within the shutdown deadline.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Protocol

from voiceagent import __version__
from voiceagent.config import Config
from voiceagent.home.connection import HomeConnection
from voiceagent.host.memory import MemoryTrimmer
from voiceagent.session.build import Shared
from voiceagent.session.session import Session
from voiceagent.stages.loading import Models
from voiceagent.stages.workers import ModelWorker, WorkerFactory, Workers
from voiceagent.transports.base import Transport

logger = logging.getLogger(__name__)

WATCH_S = 0.5
"""Seconds between the watchdog's looks at the models and the rooms."""
STUCK_RESTART_S = 300.0
"""Seconds a model may stay stuck in a call that timed out (each request
meanwhile answered with an apology) before the daemon exits with status 1, for
systemd to restart it (``Restart=on-failure``) with the model fresh."""


def share(cfg: Config, models: Models, home: HomeConnection | None = None,
          workers: WorkerFactory = ModelWorker, version: str = __version__) -> Shared:
    """The models with one worker each, and the connection to Home Assistant."""
    return Shared(models, Workers.make(cfg, workers), home, version)


@dataclass(eq=False)
class Room:
    session: Session
    transport: Transport
    seconds: float = 0.0
    """Seconds of audio it ran."""


class Service(Protocol):
    """Something the process serves beside its rooms (the web endpoint), with
    sessions of its own that come and go."""

    async def run(self, stop: asyncio.Event) -> None: ...

    @property
    def idle(self) -> bool: ...


@dataclass(eq=False)
class Host:
    shared: Shared
    rooms: list[Room] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    code: int = 0
    """The exit status: 1 when the watchdog found a model stuck for good."""
    stuck_restart_s: float = STUCK_RESTART_S

    def add(self, session: Session, transport: Transport) -> None:
        self.rooms.append(Room(session, transport))

    async def run(self, *, signals: bool = True, duration: float | None = None) -> int:
        """Run every room until SIGTERM/SIGINT (``signals``), ``duration`` seconds,
        or (rooms on finite inputs only) until every room is done. Returns the
        exit status."""
        loop = asyncio.get_running_loop()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop.set)
        timer = loop.call_later(duration, self.stop.set) if duration else None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch())
                if self.shared.home is not None:
                    tg.create_task(self.shared.home.run(self.stop))
                for service in self.services:
                    tg.create_task(service.run(self.stop))
                rooms = [tg.create_task(self._run_room(room)) for room in self.rooms]
                if rooms:
                    await asyncio.wait(rooms)
                else:  # no room of its own (network clients only): until stopped
                    await self.stop.wait()
                self.stop.set()  # every room is done (finite inputs): the rest ends too
        except BaseExceptionGroup as group:  # one room's error, as a one-line error to the CLI
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        return self.code

    async def _run_room(self, room: Room) -> None:
        name = room.session.name
        try:
            room.seconds = await room.session.run(room.transport, self.stop)
        except Exception:  # a bug in one room must not end the others
            if not room.session.keep_alive:
                raise
            logger.exception("room %s failed; the other rooms go on", name)
        finally:
            room.transport.close()

    async def _watch(self) -> None:
        """Exit for a restart when a model is stuck for good; trim memory when idle."""
        trimmer = MemoryTrimmer()
        while not self.stop.is_set():
            await asyncio.sleep(WATCH_S)
            stuck = [w for w in self.shared.workers if w.stuck_s > self.stuck_restart_s]
            if stuck:
                logger.error(
                    "the %s model has been stuck for over %g s: exiting, for systemd to restart it",
                    getattr(stuck[0], "name", "?"), self.stuck_restart_s,
                )
                self.code = 1
                self.stop.set()
            if all(room.session.idle for room in self.rooms) and all(s.idle for s in self.services):
                trimmer.idle()
            else:
                trimmer.busy()

    def close(self) -> None:
        caches = getattr(self.shared.models.chat, "caches", None)
        summary = caches.summary() if caches is not None else None
        if summary is not None:
            logger.info("%s", summary)
        self.shared.workers.shutdown()
