"""``aio.race``: the first to finish wins, the rest are cancelled and awaited."""

from __future__ import annotations

import asyncio

import pytest

from voiceagent.aio import race


def test_the_first_to_finish_wins_and_the_others_are_cancelled_and_awaited():
    cleaned = []

    async def slow():
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("slow")  # ran before race returned

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)
        return await race(slow(), stop.wait())

    assert asyncio.run(main()) == (1, True) and cleaned == ["slow"]


def test_the_winners_exception_is_raised_and_a_deadline_is_a_timeout():
    async def fails():
        raise ValueError("broken pipe")

    with pytest.raises(ValueError, match="broken pipe"):
        asyncio.run(race(fails(), asyncio.sleep(10)))
    with pytest.raises(TimeoutError):
        asyncio.run(race(asyncio.sleep(10), timeout=0.01))


def test_shielded_work_goes_on_when_it_loses():
    async def main():
        work = asyncio.ensure_future(asyncio.sleep(0.02, result="said offline"))
        which, _ = await race(asyncio.shield(work), asyncio.sleep(0))
        return which, await work

    assert asyncio.run(main()) == (1, "said offline")


def test_a_failed_task_is_reported_with_its_owner():
    from voiceagent.aio import TaskSet

    failures = []

    async def fails():
        raise ValueError("a bug")

    async def main():
        tasks = TaskSet(lambda err, owner: failures.append((str(err), owner)))
        tasks.spawn(fails(), owner=7)
        tasks.spawn(asyncio.sleep(10))
        await asyncio.sleep(0.01)
        await tasks.aclose()  # the sleeper is cancelled (not a failure) and awaited
        return bool(tasks)

    assert asyncio.run(main()) is False and failures == [("a bug", 7)]
