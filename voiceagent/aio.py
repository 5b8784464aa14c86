"""asyncio helpers: one way to race work against a stop, a deadline or other work.

Every place that waits for "this, or a stop event, or a timeout" used to write
its own ``asyncio.wait`` and its own clean-up, and each had to remember to
cancel *and await* the losers (a cancelled task that is not awaited can still be
running when its owner is gone). ``race`` does it once.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable


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
