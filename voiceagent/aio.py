"""asyncio helpers: one way to race work against a stop, a deadline or other work.

Every place that waits for "this, or a stop event, or a timeout" used to write
its own ``asyncio.wait`` and its own clean-up, and each had to remember to
cancel *and await* the losers (a cancelled task that is not awaited can still be
running when its owner is gone). ``race`` does it once.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Coroutine


async def race(*work: Awaitable[Any], timeout: float | None = None) -> tuple[int, Any]:
    """Run ``work`` side by side until the first finishes; returns its index and result.

    The others are cancelled and awaited before this returns (or raises). If the
    first to finish raised, that exception is raised here; if ``timeout`` seconds
    pass first, ``TimeoutError``. Pass ``event.wait()`` to race against a stop
    event, and ``asyncio.shield(task)`` for work that must go on when it loses.
    """
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if not done:
        raise TimeoutError
    index = next(i for i, task in enumerate(tasks) if task in done)
    return index, tasks[index].result()


class TaskSet:
    """The tasks one owner started: each is awaited when it ends, so its failure is
    reported and never lost, and all of them are cancelled and awaited on close.

    ``CancelledError`` is not a failure: a task is cancelled when the turn it
    works for is cut.
    """

    def __init__(self, on_error: Callable[[BaseException, int], None]) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_error = on_error
        """Called with the error and the ``owner`` the task was spawned for."""

    def spawn(self, work: Coroutine[Any, Any, Any], owner: int = 0) -> asyncio.Task[Any]:
        """Start ``work``; ``owner`` (e.g. the turn it works for) is named if it fails."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, owner))
        return task

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def _done(self, task: asyncio.Task[Any], owner: int) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._on_error(task.exception(), owner)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
