"""What Home Assistant's commands do to the daemon, and how a flood of them is bounded.

Anyone who can publish to the broker can send ``say`` and ``ask`` as fast as
they like; each would otherwise cut the reply that is playing and start a turn
(an LLM prompt, a line in the conversation log). The policy is what a person in
the room would expect of an assistant:

- ``ask``: the latest question wins. A new one replaces the one being answered,
  as a spoken question does. At most one starts per ``ASK_INTERVAL_S``; questions
  that come faster wait, each replacing the one waiting before it, so a burst
  gets its last question answered and starts one turn a second, not twenty.
- ``say``: announcements queue. One plays at a time, in order, each after the
  say or ask before it has ended; up to ``MAX_WAITING_SAYS`` wait, and beyond
  that the oldest waiting one is dropped (logged once per burst). A say still
  replaces the reply to a spoken request, as it always did.
- ``stop``: stops the reply, and drops the announcements and the question waiting.
- ``mute``: at once (it costs nothing; the bridge publishes the switch's state).

Nothing here grows with the number of commands: a deque of ``MAX_WAITING_SAYS``,
one waiting question, at most two timer handles, no task per command.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque

from voiceagent.session.listener import Listener
from voiceagent.events import AnyEvent, TurnEnd
from voiceagent.log_limit import LogLimiter

logger = logging.getLogger(__name__)

ASK_INTERVAL_S = 1.0
"""Seconds between the starts of two questions from Home Assistant, at least."""
MAX_WAITING_SAYS = 3
"""Announcements waiting behind the one playing, at most."""


class DaemonControls:
    """The ``mqtt.Controls`` of ``voiceagent serve``; subscribe :meth:`on_event`
    to the bus (it learns from ``TurnEnd`` when an announcement may follow)."""

    def __init__(self, listener: Listener, ask_interval_s: float = ASK_INTERVAL_S) -> None:
        self.listener = listener
        self.ask_interval_s = ask_interval_s
        self.says: deque[str] = deque()
        """Announcements waiting, oldest first (at most MAX_WAITING_SAYS)."""
        self.waiting_ask: str | None = None
        """The question waiting for ASK_INTERVAL_S to pass, if any."""
        self._current: int | None = None
        """The turn of the say or ask that plays or is being prepared."""
        self._last_ask = -math.inf
        """loop.time() when the last question started."""
        self._ask_timer: asyncio.TimerHandle | None = None
        self._next_say: asyncio.Handle | None = None
        self._limited = LogLimiter(logger)

    # -- the commands ---------------------------------------------------------------

    def say(self, text: str) -> None:
        if self._current is None and not self.says:  # replaces a spoken request's reply
            self._start_say(text)
            return
        if len(self.says) == MAX_WAITING_SAYS:
            dropped = self.says.popleft()
            self._limited.log(
                logging.WARNING, "say",
                "announcements come faster than they can be said: dropped %r (%d wait at most)",
                dropped, MAX_WAITING_SAYS,
            )
        self.says.append(text)
        self._schedule_next_say()

    def ask(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_ask + self.ask_interval_s - loop.time()
        if wait <= 0 and self._ask_timer is None:
            self._start_ask(text)
            return
        if self.waiting_ask is not None:
            self._limited.log(
                logging.INFO, "ask",
                "questions come faster than one per %g s: %r replaced by a newer one",
                self.ask_interval_s, self.waiting_ask,
            )
        self.waiting_ask = text
        if self._ask_timer is None:
            self._ask_timer = loop.call_later(max(wait, 0.0), self._ask_waiting)

    def stop(self) -> None:
        dropped = len(self.says) + (self.waiting_ask is not None)
        self.says.clear()
        self.waiting_ask = None
        self._cancel_timers()
        stopped = self.listener.conv.stop()
        if stopped or dropped:
            logger.info("stop: %d repl(ies) stopped, %d waiting command(s) dropped", stopped, dropped)
        else:
            logger.debug("stop: nothing to stop")

    def set_muted(self, muted: bool) -> None:
        if muted != self.listener.muted:
            logger.info("microphone %s", "muted" if muted else "on")
        self.listener.muted = muted  # the bridge reports the switch's new state

    # -- what follows what ----------------------------------------------------------

    def on_event(self, event: AnyEvent) -> None:
        """A bus listener: when a turn ends, the next announcement may start."""
        if not isinstance(event, TurnEnd):
            return
        if event.turn == self._current:
            self._current = None
        if self.says:
            self._schedule_next_say()

    def close(self) -> None:
        """Shutdown: nothing waiting starts any more."""
        self.says.clear()
        self.waiting_ask = None
        self._cancel_timers()

    def _schedule_next_say(self) -> None:
        # Not from inside the TurnEnd that made room: the bus's other listeners
        # (the state sensor, the conversation log) must see that turn end before
        # the next one starts.
        if self._next_say is None:
            self._next_say = asyncio.get_running_loop().call_soon(self._say_next)

    def _say_next(self) -> None:
        self._next_say = None
        if self._current is None and self.says and not self._busy():
            self._start_say(self.says.popleft())

    def _busy(self) -> bool:
        """A reply to a spoken request plays or is about to: a waiting
        announcement must not cut it (a new one does, as documented)."""
        return bool(self.listener.conv.turns.replying())

    def _ask_waiting(self) -> None:
        self._ask_timer = None
        text, self.waiting_ask = self.waiting_ask, None
        if text is not None:
            self._start_ask(text)

    def _start_say(self, text: str) -> None:
        logger.info("say: %r", text)
        self._current = self.listener.conv.say(text)

    def _start_ask(self, text: str) -> None:
        self._last_ask = asyncio.get_running_loop().time()
        logger.info("ask: %r", text)
        self._current = self.listener.conv.ask(text)

    def _cancel_timers(self) -> None:
        for handle in (self._ask_timer, self._next_say):
            if handle is not None:
                handle.cancel()
        self._ask_timer = self._next_say = None
