"""Timers, kept here rather than in Home Assistant: "set a timer for five minutes"
works with Home Assistant down or not configured, and a timer survives a
restart of Home Assistant (not of voiceagent: they live in this process).

When one ends, ``on_finished`` is called (the daemon says so, and publishes it
over MQTT); every change calls ``on_change`` (the MQTT ``timers`` sensor).
``describe`` gives each timer the shape Home Assistant's ``HassTimerStatus``
response template expects.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any, Callable

logger = logging.getLogger(__name__)

MAX_TIMERS = 20
MAX_SECONDS = 24 * 3600


@dataclass
class Timer:
    id: int
    seconds: int
    """Its length, as asked."""
    name: str | None
    area: str | None
    ends_at: float
    """``loop.time()`` when it rings."""
    handle: asyncio.TimerHandle | None = None

    def left_s(self, now: float) -> float:
        return max(0.0, self.ends_at - now)


def done_speech(timer: "Timer") -> str:
    """What is said when ``timer`` ends."""
    what = f"The {timer.name} timer" if timer.name else f"Your timer for {spoken_length(timer.seconds)}"
    return f"{what} is done."


def spoken_length(seconds: int) -> str:
    """"5 minutes", "1 hour and 30 minutes", "45 seconds"."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    parts = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in ((h, "hour"), (m, "minute"), (s, "second")) if n]
    if not parts:
        return "0 seconds"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class Timers:
    def __init__(
        self,
        on_finished: Callable[[Timer], None] | None = None,
        on_change: Callable[[list[Timer]], None] | None = None,
    ) -> None:
        self.on_finished = on_finished
        self.on_change = on_change
        self._timers: dict[int, Timer] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._timers)

    @property
    def active(self) -> list[Timer]:
        return sorted(self._timers.values(), key=lambda t: t.ends_at)

    def start(self, seconds: int, name: str | None = None, area: str | None = None) -> Timer:
        """Raises ValueError for a length of nothing, over a day, or too many timers."""
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"a timer from 1 second to 24 hours, not {seconds} s")
        if len(self._timers) >= MAX_TIMERS:
            raise ValueError(f"at most {MAX_TIMERS} timers")
        loop = asyncio.get_running_loop()
        timer = Timer(next(self._ids), int(seconds), name, area, loop.time() + seconds)
        timer.handle = loop.call_at(timer.ends_at, self._ring, timer.id)
        self._timers[timer.id] = timer
        logger.info("timer %d: %s%s", timer.id, spoken_length(seconds), f" ({name})" if name else "")
        self._changed()
        return timer

    def cancel(self, name: str | None = None, area: str | None = None) -> Timer | None:
        """The timer cancelled: the one named, else the one in ``area`` or the only one,
        else the one that would ring first. None: no such timer."""
        timer = self.find(name, area)
        if timer is not None:
            self._remove(timer)
            logger.info("timer %d cancelled", timer.id)
        return timer

    def cancel_all(self) -> int:
        count = len(self._timers)
        for timer in list(self._timers.values()):
            self._remove(timer)
        return count

    def find(self, name: str | None = None, area: str | None = None) -> Timer | None:
        timers = self.active
        if name:
            key = name.casefold().strip()
            timers = [t for t in timers if (t.name or "").casefold().strip() == key]
        elif area and len(timers) > 1:
            timers = [t for t in timers if t.area == area] or timers
        return timers[0] if timers else None

    def describe(self) -> list[dict[str, Any]]:
        """Each timer as Home Assistant's timer status template reads it."""
        now = asyncio.get_running_loop().time()
        out = []
        for t in self.active:
            left = round(t.left_s(now))
            sh, srest = divmod(t.seconds, 3600)
            out.append({
                "id": t.id, "name": t.name or "", "area": t.area or "", "is_active": True,
                "total_seconds_left": left,
                "rounded_hours_left": left // 3600,
                "rounded_minutes_left": (left % 3600) // 60,
                "rounded_seconds_left": left % 60,
                "start_hours": sh, "start_minutes": srest // 60, "start_seconds": srest % 60,
            })
        return out

    def close(self) -> None:
        for timer in self._timers.values():
            if timer.handle is not None:
                timer.handle.cancel()
        self._timers.clear()

    def _ring(self, timer_id: int) -> None:
        timer = self._timers.pop(timer_id, None)
        if timer is None:
            return
        logger.info("timer %d (%s) is done", timer.id, spoken_length(timer.seconds))
        self._changed()
        if self.on_finished is not None:
            self.on_finished(timer)

    def _remove(self, timer: Timer) -> None:
        if timer.handle is not None:
            timer.handle.cancel()
        self._timers.pop(timer.id, None)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.active)
