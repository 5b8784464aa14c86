"""One model, one job at a time, the most urgent first.

Every session of the house shares one worker per model (``stages.workers``), so
jobs of different rooms queue for the same thread. A thread pool runs its queue
in order; this lane keeps the queue on the event loop instead and hands the
thread to the most urgent job waiting: a reply the user is waiting for goes
before optional work (the LLM's prefill or its end-of-message odds) of any
session, whichever was asked first. A job that has begun is never preempted
(a thread cannot be), so optional work costs a waiting reply at most the one
call in progress.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from enum import IntEnum


class Priority(IntEnum):
    """Lower runs first."""

    REPLY = 0
    """Someone is waiting for it: a final transcript, the reply's tokens and audio."""
    NORMAL = 1
    OPTIONAL = 2
    """Only an optimisation or a refinement (prefill, end-of-message odds)."""


class Lane:
    """An asyncio lock of one holder whose waiters are served by priority, then
    in the order they came."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiting if not f.done())

    @property
    def held(self) -> bool:
        return self._held

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        if not self._held and not self.waiting:
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (int(priority), next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted as it was cancelled: pass it on
            raise

    def release(self) -> None:
        """Hand the lane to the next waiter (or free it)."""
        while self._waiting:
            *_, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return  # still held, by that waiter now
        self._held = False
