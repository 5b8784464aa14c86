"""Models that fail or hang: the turn gives up, the user hears a short apology,
and the next turn works. The loop never waits for a stuck model thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Iterator

import numpy as np
import pytest

from tests.support.conversation import converse
from tests.support.fakes import EnergyVad, FakeChat, FakeSynth, FakeTranscriber, silence, tone
from voiceagent.transports.paced import PacedDuplex
from voiceagent.audio.speaker import Speaker
from voiceagent.audio.streams import ArrayInput, MemoryOutput
from voiceagent.clock import TimelineClock
from voiceagent.config import Config
from voiceagent.dialogue.conversation import Conversation
from voiceagent.dialogue.reply import APOLOGY
from voiceagent.errors import Stage, StageError
from voiceagent.events import EventBus
from voiceagent.stages.workers import ModelWorker, Workers


class FlakyChat(FakeChat):
    """Fails (or, with ``hang_s``, hangs that long) on its first ``bad`` calls only."""

    def __init__(self, bad: int = 1, hang_s: float = 0.0) -> None:
        super().__init__("Here you are. That is all.")
        self.bad = bad
        self.hang_s = hang_s
        self.calls = 0

    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        self.calls += 1
        if self.calls <= self.bad:
            if not self.hang_s:
                raise StageError(Stage.LLM, "the fake model failed")
            time.sleep(self.hang_s)
        yield from super().stream_chat(messages)


def ends(events):
    return [(e.turn, e.reason, e.reply) for e in events if e.type == "turn_end"]


def test_a_model_that_raises_is_answered_with_an_apology_and_the_next_turn_works():
    audio = np.concatenate([silence(0.3), tone(1.0), silence(3.0), tone(1.0), silence(3.0)])
    events, out, conv = converse(audio, chat=FlakyChat(bad=1))
    assert ends(events) == [(1, "error", APOLOGY), (2, "answered", "Here you are. That is all.")]
    assert [e.stage for e in events if e.type == "error"] == ["llm"]
    # the apology was heard, and is not part of what the model sees next time
    assert [e.turn for e in events if e.type == "playback_start"] == [1, 2]
    assert [ex.user for ex in conv.history.exchanges] == ["speech 10"]
    assert conv.history.exchanges[0].assistant == "Here you are. That is all."


def test_a_failing_synthesizer_is_reported_without_an_apology_it_cannot_say():
    class BrokenSynth(FakeSynth):
        def synthesize(self, text: str):
            raise StageError(Stage.TTS, "the fake voice failed")
            yield  # a generator, like piper's

    cfg = Config()
    bus = EventBus()
    events: list = []
    bus.subscribe(events.append)
    clock = TimelineClock()
    speaker = Speaker(16000)
    workers = Workers.make(cfg, ModelWorker)
    conv = Conversation(cfg, EnergyVad(), FakeTranscriber(), FakeChat(), BrokenSynth(), speaker, bus, clock, workers)

    async def go() -> None:
        conv.ask("hello")
        for _ in range(200):
            await asyncio.sleep(0.01)
            if any(e.type == "turn_end" for e in events):
                break
        await conv.aclose()

    asyncio.run(go())
    workers.shutdown()  # the process's, not the conversation's
    assert ends(events) == [(1, "error", "")]


def test_a_hanging_model_times_out_is_waited_out_and_the_next_turn_works():
    """Real threads and real time: the first reply's model sleeps 2.5 s against a
    0.5 s ``llm.timeout_s``. The user hears the apology about 0.5 s after the turn
    ends, the stuck thread finishes on its own meanwhile, and the second question,
    asked later, is answered. The loop kept its pace throughout."""
    cfg = Config(llm={"timeout_s": 0.5})
    bus = EventBus()
    events: list = []
    bus.subscribe(events.append)
    clock = TimelineClock()
    speaker = Speaker(16000)
    chat = FlakyChat(bad=1, hang_s=2.5)
    workers = Workers.make(cfg, ModelWorker)
    conv = Conversation(cfg, EnergyVad(), FakeTranscriber(), chat, FakeSynth(), speaker, bus, clock, workers)
    audio = np.concatenate([silence(0.3), tone(1.0), silence(3.5), tone(1.0), silence(2.5)])
    driver = PacedDuplex(ArrayInput(audio), MemoryOutput(), speaker, clock, 320, realtime=True)
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def go() -> None:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        try:
            await driver.run(conv)
        finally:
            stop.set()
            await tick
            await conv.aclose()
            workers.shutdown()

    asyncio.run(go())
    assert ends(events) == [(1, "error", APOLOGY), (2, "answered", "Here you are. That is all.")]
    error = next(e for e in events if e.type == "error")
    assert error.stage == "llm" and "did not answer within 0.5 s" in error.text
    end_of_turn = next(e.t for e in events if e.type == "end_of_turn" and e.turn == 1)
    apology = next(e.t for e in events if e.type == "playback_start" and e.turn == 1)
    assert apology - end_of_turn < 1.5, "the timeout is what the user waits, not the hang"
    assert max(gaps) < 0.25, f"the event loop stalled for {max(gaps):.2f} s"
    assert chat.calls == 2


def test_a_stuck_worker_refuses_new_jobs_at_once_until_it_returns():
    release = threading.Event()

    async def go() -> None:
        worker = ModelWorker("llm", Stage.LLM, timeout_s=0.2)
        t0 = time.monotonic()
        with pytest.raises(StageError, match="did not answer within 0.2 s"):
            await worker.call(release.wait, 10)
        assert 0.15 < time.monotonic() - t0 < 1.0
        assert worker.stuck and worker.stuck_s >= 0.15  # serve exits after STUCK_RESTART_S of this
        t0 = time.monotonic()
        with pytest.raises(StageError, match="still busy"):
            await worker.call(lambda: 1)
        with pytest.raises(StageError, match="still busy"):
            async for _ in worker.stream(lambda: iter([1])):
                pass
        assert time.monotonic() - t0 < 0.05, "refused at once, not after another timeout"
        release.set()
        for _ in range(100):
            if not worker.stuck:
                break
            await asyncio.sleep(0.01)
        assert worker.stuck_s == 0.0
        assert await worker.call(lambda: 42) == 42
        assert [x async for x in worker.stream(lambda: iter([1, 2]))] == [1, 2]
        worker.shutdown()

    asyncio.run(go())


def test_time_held_on_purpose_does_not_count_against_a_stream():
    """While the first clause is synthesized the LLM's stream is held (``resume``
    cleared) for longer than its timeout: that is not a hang."""
    resume = threading.Event()

    async def go() -> list[int]:
        worker = ModelWorker("llm", Stage.LLM, timeout_s=0.2)
        stream = worker.stream(lambda: iter([1, 2, 3]), resume)
        asyncio.get_running_loop().call_later(0.5, resume.set)
        try:
            return [x async for x in stream]
        finally:
            worker.shutdown()

    assert asyncio.run(go()) == [1, 2, 3]


def test_a_model_still_busy_after_the_shutdown_does_not_hold_the_exit():
    from voiceagent.host.serve import leave_stuck_models

    release = threading.Event()
    stuck = threading.Thread(target=release.wait, args=(30,), name="va-llm_0", daemon=True)
    stuck.start()
    exits: list[int] = []
    t0 = time.monotonic()
    leave_stuck_models(0.3, exit=exits.append)
    assert exits == [0] and time.monotonic() - t0 < 1.0
    release.set()
    stuck.join()
    exits.clear()
    leave_stuck_models(0.3, exit=exits.append)  # nothing busy: a normal return
    assert exits == []


def test_a_cut_turn_is_cancelled_even_when_its_next_token_arrives_at_that_moment():
    """The token and the cancellation (a barge-in) in the same loop iteration: the
    consumer must end cancelled, not take the token. Python 3.11's
    ``asyncio.wait_for`` returned the token instead; the cut turn then went on
    generating with its speaker gone and held the LLM thread for good (the
    200-turn soak, turn 10)."""

    async def go() -> None:
        worker = ModelWorker("llm", Stage.LLM, timeout_s=5.0)
        loop = asyncio.get_running_loop()
        for _ in range(20):
            queue: asyncio.Queue[object] = asyncio.Queue()
            task = asyncio.create_task(worker._next(queue, None, loop.create_future()))
            await asyncio.sleep(0)  # waiting for the token
            queue.put_nowait("token")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        worker.shutdown()

    asyncio.run(go())
