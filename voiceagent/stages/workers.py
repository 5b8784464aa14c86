"""One dedicated thread per model, bridged to asyncio.

faster-whisper, llama.cpp and piper are synchronous and hand out lazy iterators.
Each model gets its own single-thread executor so two models never queue behind
each other, and ``stream`` pulls the iterator on that thread, pushing each item
into the event loop as soon as it exists. Cancelling (or closing) the async
iterator sets a flag that the thread checks between items, so a cancelled turn
stops at the next token or sentence; a thread cannot be killed mid-item, which is
why callers also drop late results by turn id.

A model that hangs must not hang the conversation: with a ``timeout_s`` a job
that has not produced its result (or its next item) in that time fails with a
``StageError``, and the turn apologises. The stuck thread cannot be stopped, and
llama.cpp must not run two calls at once on one model, so the worker is *waited
out*, not replaced: until the stuck job returns, each new job fails at once
("still busy"), which costs no thread and no queue, and the first job after it
works as before. Time a stream spends held on purpose (``resume`` cleared) does
not count.

``InlineWorker`` has the same interface and runs each job on the event loop
itself, in order, at no cost in clock time. With a ``ManualClock`` and the paced
driver in simulated time, a conversation with fake models is then a function
of its input alone: the same audio gives the same events at the same times, on
any machine however busy, so tests of the orchestration can assert exact times.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterable, Protocol, TypeVar

from voiceagent.errors import Stage, StageError
from voiceagent.stages.lane import Lane, Priority

if TYPE_CHECKING:
    from voiceagent.config import Config

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DONE = object()


class Worker(Protocol):
    """Where one model's blocking calls run (see the module docstring)."""

    @property
    def busy(self) -> bool:
        """True while a job is queued or running on this worker."""
        ...

    @property
    def stuck_s(self) -> float:
        """Seconds since a job that timed out began to hold the thread (0: none does)."""
        ...

    async def call(self, fn: Callable[..., T], *args: object, priority: Priority = Priority.NORMAL) -> T: ...

    def stream(
        self,
        make_iter: Callable[[], Iterable[T]],
        resume: threading.Event | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> AsyncIterator[T]: ...

    def shutdown(self) -> None: ...


WorkerFactory = Callable[[str, Stage, "float | None"], Worker]
"""Makes the worker for a model: its name, the stage it is (for the error a
timeout raises) and the seconds a job may take (None: no limit).
``ModelWorker`` or ``InlineWorker``."""


class ModelWorker:
    """A named single-thread executor for one model, its jobs served by priority
    (``stages.lane``): the thread only ever has the job it is running."""

    def __init__(self, name: str, stage: Stage = Stage.PIPELINE, timeout_s: float | None = None) -> None:
        self.name = name
        self.stage = stage
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"va-{name}")
        self._lane = Lane()
        self._busy = 0
        self._stuck: "asyncio.Future[object] | None" = None
        """The job that timed out, while its thread is still in it."""
        self._stuck_at = 0.0

    @property
    def busy(self) -> bool:
        """True while a job is queued or running on this worker."""
        return self._busy > 0

    @property
    def stuck(self) -> bool:
        """A job that timed out is still running on the thread."""
        return self._stuck is not None and not self._stuck.done()

    @property
    def stuck_s(self) -> float:
        return time.monotonic() - self._stuck_at if self.stuck else 0.0

    def _check_not_stuck(self) -> None:
        if self.stuck:
            raise StageError(
                self.stage,
                f"the {self.name} model is still busy with a request that took over {self.timeout_s:g} s",
            )

    def _timed_out(self, future: "asyncio.Future[object]", started: float) -> StageError:
        self._stuck, self._stuck_at = future, started
        future.add_done_callback(self._unstuck)
        logger.error(
            "the %s model has not answered in %.1f s (%s.timeout_s): giving the turn up; "
            "new requests are refused until it returns",
            self.name, time.monotonic() - started, self.stage.value,
        )
        return StageError(self.stage, f"the {self.name} model did not answer within {self.timeout_s:g} s")

    def _unstuck(self, future: "asyncio.Future[object]") -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.warning("the %s model's late job failed: %s", self.name, future.exception())
        if future is self._stuck:
            logger.warning("the %s model is answering again", self.name)

    async def _take_lane(self, priority: Priority) -> None:
        """Wait for the thread (counted in ``timeout_s``, as a queued job always was)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._lane.acquire(priority)
        except TimeoutError:
            raise StageError(
                self.stage, f"the {self.name} model was busy with other requests for over {self.timeout_s:g} s"
            ) from None
        if self.stuck:  # it got stuck while this job waited
            self._lane.release()
            self._check_not_stuck()

    def _run(self, fn: Callable[..., T], *args: object) -> "asyncio.Future[T]":
        """Start ``fn`` on the thread (the lane is held); the lane is released
        when the thread is done with it, not when its caller stops waiting."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        future.add_done_callback(lambda _f: self._lane.release())
        return future

    async def call(self, fn: Callable[..., T], *args: object, priority: Priority = Priority.NORMAL) -> T:
        """Run ``fn(*args)`` on this worker's thread and await its result."""
        self._check_not_stuck()
        self._busy += 1
        try:
            await self._take_lane(priority)
            started = time.monotonic()
            future = self._run(fn, *args)
            try:
                # shielded: a timeout must not cancel the future (the thread goes on
                # regardless), so that its end is seen and the worker is free again.
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that comes as the result arrives (see ``_next``).
                async with asyncio.timeout(self.timeout_s):
                    return await asyncio.shield(future)
            except TimeoutError:
                raise self._timed_out(future, started) from None
        finally:
            self._busy -= 1

    async def stream(
        self,
        make_iter: Callable[[], Iterable[T]],
        resume: threading.Event | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> AsyncIterator[T]:
        """Iterate ``make_iter()`` on the worker thread, yielding items on the loop.

        While ``resume`` is cleared the thread holds before pulling the next item,
        which lets a more urgent model (the first clause's TTS) have the CPU.
        """
        self._check_not_stuck()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            iterator = None
            try:
                if stop.is_set():
                    return  # cancelled while queued behind another job
                iterator = iter(make_iter())
                while True:
                    while resume is not None and not resume.wait(0.05):
                        if stop.is_set():
                            return
                    item = next(iterator, _DONE)
                    if item is _DONE or stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                    if stop.is_set():
                        break
            except BaseException as err:  # re-raised on the loop side
                loop.call_soon_threadsafe(queue.put_nowait, _Failure(err))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()  # let llama.cpp's generator clean up on this thread
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        self._busy += 1
        try:
            await self._take_lane(priority)
        except BaseException:
            self._busy -= 1
            raise
        future = self._run(produce)
        try:
            while True:
                item = await self._next(queue, resume, future)
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            self._busy -= 1
            # Do not wait for the thread to notice: it finishes its current item
            # on its own; the next job on this worker queues behind it anyway.
            future.add_done_callback(_log_unexpected)

    async def _next(
        self, queue: "asyncio.Queue[object]", resume: threading.Event | None, future: "asyncio.Future[object]"
    ) -> object:
        """The stream's next item, within ``timeout_s`` of the last (not counting holds)."""
        started = time.monotonic()
        while True:
            try:
                # Not asyncio.wait_for: on Python 3.11 a cancellation that comes
                # as the item arrives is swallowed there (the item is returned),
                # so a turn cut by a barge-in went on generating with its speaker
                # task gone, held the LLM thread for good, and every later reply
                # was refused (found by the 200-turn soak, at turn 10).
                async with asyncio.timeout(self.timeout_s):
                    return await queue.get()
            except TimeoutError:
                if resume is not None and not resume.is_set():
                    continue  # held on purpose (another model has the CPU)
                raise self._timed_out(future, started) from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class InlineWorker:
    """Runs each job on the event loop's own thread, for simulated time.

    Only for fast models (fakes): a job blocks the loop while it runs. A stream
    gives the loop one turn between items, as the threaded worker's items arrive
    between other work, so that a cancelled turn stops at the next item.
    """

    def __init__(self, name: str, stage: Stage = Stage.PIPELINE, timeout_s: float | None = None) -> None:
        self.name = name  # no timeout: a job blocks the loop, nothing could time it
        self._busy = 0

    @property
    def busy(self) -> bool:
        return self._busy > 0

    @property
    def stuck_s(self) -> float:
        return 0.0  # a job on the loop cannot be timed out

    async def call(self, fn: Callable[..., T], *args: object, priority: Priority = Priority.NORMAL) -> T:
        self._busy += 1
        try:
            await asyncio.sleep(0)  # like the threaded worker, a job never completes in place
            return fn(*args)
        finally:
            self._busy -= 1

    async def stream(
        self,
        make_iter: Callable[[], Iterable[T]],
        resume: threading.Event | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> AsyncIterator[T]:
        self._busy += 1
        iterator = None
        try:
            await asyncio.sleep(0)
            iterator = iter(make_iter())
            while True:
                while resume is not None and not resume.is_set():
                    await asyncio.sleep(0)  # set by another task on this loop
                item = next(iterator, _DONE)
                if item is _DONE:
                    break
                yield item  # type: ignore[misc]
                await asyncio.sleep(0)
        finally:
            self._busy -= 1
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def shutdown(self) -> None:
        pass


@dataclass(frozen=True)
class Workers:
    """One worker per model, made once by the process and shared by every session
    (llama.cpp must never run two calls at once on one model, and two threads on
    one model would only fight for the same two cores)."""

    asr: Worker
    asr_partial: Worker
    """Partial transcripts keep a lane of their own, so that a partial still
    running when the user stops never delays the final transcript."""
    turn_end: Worker
    llm: Worker
    tts: Worker
    wake: Worker

    @classmethod
    def make(cls, cfg: "Config", factory: WorkerFactory = ModelWorker) -> "Workers":
        return cls(
            asr=factory("asr", Stage.ASR, cfg.asr.timeout_s),
            asr_partial=factory("asr-partial", Stage.ASR, cfg.asr.timeout_s),
            turn_end=factory("turn-end", Stage.TURN, cfg.asr.timeout_s),
            llm=factory("llm", Stage.LLM, cfg.llm.timeout_s),
            tts=factory("tts", Stage.TTS, cfg.tts.timeout_s),
            wake=factory("wake", Stage.WAKE, None),
        )

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (getattr(self, f.name) for f in fields(self))

    def shutdown(self) -> None:
        for worker in self:
            worker.shutdown()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _log_unexpected(future: "asyncio.Future[None]") -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("worker thread failed", exc_info=future.exception())
