"""The one clock every event is stamped with: seconds on the input timeline.

The audio driver advances it once per block (sample-accurate); between blocks,
``now()`` adds the monotonic time elapsed since the last block, so events from
worker threads (first token, first audio) land between the blocks they occurred
in. Tests use ``ManualClock``, which only moves when told.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the first input sample."""
        ...

    def advance(self, t: float) -> None:
        """The driver has delivered input up to ``t`` seconds."""
        ...


class TimelineClock:
    def __init__(self) -> None:
        self._t = 0.0
        self._mono: float | None = None
        self._last = 0.0

    def advance(self, t: float) -> None:
        self._t = t
        self._mono = time.monotonic()

    def now(self) -> float:
        if self._mono is None:
            return 0.0
        # Never go backwards, even if the driver is late by a block.
        self._last = max(self._last, self._t + (time.monotonic() - self._mono))
        return self._last


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def advance(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t
