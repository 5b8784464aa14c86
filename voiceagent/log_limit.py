"""Log lines that a flood cannot multiply.

A daemon logs what it ignores (a malformed MQTT command, a dropped announcement),
and anyone who can publish to the broker decides how often that happens: twenty
bad messages a second would be twenty log lines a second, for days, into the
journal. The first line of each kind goes out; the rest are held back for a
while and counted, and the next line of that kind says how many there were, so
nothing goes unreported, only unrepeated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

WINDOW_S = 60.0
"""Seconds during which further lines of a kind are held back after one went out."""
MAX_KINDS = 256
"""Kinds remembered at most (callers use a few fixed ones; this only bounds a mistake)."""


class _Quota:
    """One line per kind per window; counts the ones held back."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        """Kind -> when its last line went out."""
        self._held: dict[Hashable, int] = {}
        """Kind -> lines held back since then."""

    def admit(self, kind: Hashable) -> str | None:
        """None to hold this line back; else what to add to it ("" or the count held back)."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.window_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        held = self._held.pop(kind, 0)
        if kind not in self._last and len(self._last) >= MAX_KINDS:
            self._last.clear()
            self._held.clear()
        self._last[kind] = now
        if held and last is not None:
            return f" (and {held} more like it in the last {now - last:.0f} s)"
        return ""

    def held(self, kind: Hashable) -> int:
        return self._held.get(kind, 0)


class LogLimiter:
    """At most one line per kind and ``window_s`` on ``logger``."""

    def __init__(
        self,
        logger: logging.Logger,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self._quota = _Quota(window_s, clock)

    def log(self, level: int, kind: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``msg % args`` unless a line of ``kind`` went out less than the
        window ago; returns whether it went out."""
        if not self.logger.isEnabledFor(level):
            return False
        suffix = self._quota.admit(kind)
        if suffix is None:
            return False
        self.logger.log(level, msg + suffix, *args, exc_info=exc_info)
        return True

    def held(self, kind: Hashable) -> int:
        """Lines of ``kind`` held back since its last one went out."""
        return self._quota.held(kind)


class LimitFilter(logging.Filter):
    """The same for a logger that is not ours (aiomqtt warns once per message it
    drops from a full queue): warnings and worse with the same text are limited."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._quota = _Quota(window_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        suffix = self._quota.admit((record.levelno, str(record.msg)))
        if suffix is None:
            return False
        if suffix:
            record.msg = f"{record.msg}{suffix}"
        return True
