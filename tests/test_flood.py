"""Floods of Home Assistant commands at the daemon's control path, on a real broker.

``ask`` and ``say`` at 20 a second each, then random bytes at 20 a second on
every command topic, into the daemon's own pieces: the MQTT bridge, the
controls with their policy (``voiceagent.session.controls``: the latest question
wins, announcements queue and the oldest waiting are dropped), the state
publisher, and a conversation on fake models driven in real time by the paced
audio driver. What is measured: the sizes of every queue on the way, the number
of tasks, the resident memory, how late the audio blocks are handled (the voice
loop's latency), the log lines written, and that the assistant answers after.

The ``realmodel`` test does the same to a real ``voiceagent serve`` for half a minute
(a minute until the suite neared its 15 minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import threading
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.support.broker import Broker, Recorder
from tests.support.daemon import BASE, Daemon, serve_config
from tests.support.fakes import EnergyVad, FakeChat, FakeSynth, FakeTranscriber, silence
from tests.support.speech import require_models
from voiceagent.transports.paced import PacedDuplex
from voiceagent.audio.speaker import Speaker
from voiceagent.audio.streams import ArrayInput, EndlessInput, NullOutput
from voiceagent.clock import ManualClock
from voiceagent.config import config_from_dict
from voiceagent.session.controls import ASK_INTERVAL_S, MAX_WAITING_SAYS, DaemonControls
from voiceagent.session.listener import Listener
from voiceagent.session.publisher import StatePublisher
from voiceagent.session.state import StateReporter
from voiceagent.dialogue.conversation import Conversation
from voiceagent.events import EventBus, TextRequest, TurnEnd
from voiceagent.log_limit import LogLimiter
from voiceagent.mqtt import MqttBridge
from voiceagent.mqtt.bridge import MAX_PENDING_EVENTS, MAX_QUEUED_MESSAGES
from voiceagent.mqtt.discovery import COMMAND_ENTITIES, STATE_ENTITIES
from voiceagent.stages.workers import InlineWorker, Workers

NODE = "flood_node"
RATE_HZ = 20
"""Messages a second on each flooded topic."""
TEXT_FLOOD_S = 10.0
BYTES_FLOOD_S = 4.0
BLOCK = 320


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class LagMeter:
    """Wraps the listener: how late, in loop time, each audio block is handled
    compared with the earliest (the paced driver handles block k at k * 20 ms)."""

    def __init__(self, inner: Listener) -> None:
        self.inner = inner
        self.offsets: list[tuple[float, float]] = []
        """(loop time, loop time - block time) per block."""

    def on_block(self, block: np.ndarray, t: float) -> None:
        now = asyncio.get_running_loop().time()
        self.offsets.append((now, now - t))
        self.inner.on_block(block, t)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def lateness_ms(self, start: float, end: float) -> list[float]:
        base = min(o for _, o in self.offsets)
        return [(o - base) * 1000 for now, o in self.offsets if start <= now < end]


def pctl(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


class Flooder(threading.Thread):
    """Publishes ``make(i)`` for each (topic, make) at RATE_HZ until ``seconds`` pass."""

    def __init__(self, rec: Recorder, streams: list[tuple[str, object]], seconds: float) -> None:
        super().__init__(name="flooder", daemon=True)
        self.rec, self.streams, self.seconds = rec, streams, seconds
        self.sent: list[int] = [0] * len(streams)
        """Messages published, per stream."""
        self.last: list[object] = [None] * len(streams)
        """The last payload published, per stream."""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start = time.monotonic()
            i = 0
            while time.monotonic() - start < self.seconds:
                for n, (topic, make) in enumerate(self.streams):
                    self.last[n] = make(i)  # type: ignore[operator]
                    self.rec.publish(topic, self.last[n])  # type: ignore[arg-type]
                    self.sent[n] += 1
                i += 1
                time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
        except BaseException as err:  # noqa: BLE001  (reported by the test)
            self.error = err


def test_a_flood_of_commands_stays_bounded_and_the_voice_loop_on_time(
    tmp_path: Path, broker: Broker, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "voiceagent")
    cfg = config_from_dict(
        {"mqtt": broker.mqtt_config(node_id=NODE, reconnect_min_s=0.05), "wake": {"model": "none"}}, tmp_path
    )
    bus = EventBus()
    events: list = []
    bus.subscribe(events.append)
    clock = ManualClock()
    speaker = Speaker(16000)
    conv = Conversation(cfg, EnergyVad(), FakeTranscriber(), FakeChat(), FakeSynth(), speaker, bus, clock,
                        workers=Workers.make(cfg, InlineWorker), prompt_cache=None, end_of_message=None)
    listener = Listener(conv, bus, 16000)
    bridge = MqttBridge(cfg, None, "x")
    controls = DaemonControls(listener)
    bus.subscribe(controls.on_event)
    bridge.set_controls(controls)
    publisher = StatePublisher(bridge)
    bus.subscribe(publisher.on_event)
    bus.subscribe(StateReporter(lambda s: bridge.publish_state("state", s.value)))
    t = bridge.topics
    meter = LagMeter(listener)
    samples: list[dict[str, int]] = []
    rss: list[tuple[float, int]] = []
    rng = random.Random(14)

    def sample() -> None:
        client = bridge._client
        samples.append({
            "tasks": len(asyncio.all_tasks()),
            "pending": len(bridge._pending),
            "events": len(bridge._events),
            "incoming": client._queue.qsize() if client is not None else 0,
            "says": len(controls.says),
            "turns": len(conv.turns._turns),
        })
        rss.append((time.monotonic(), rss_bytes()))

    async def flood(streams: list[tuple[str, object]], seconds: float) -> Flooder:
        flooder = Flooder(recorder, streams, seconds)
        flooder.start()
        while flooder.is_alive():
            sample()
            await asyncio.sleep(0.25)
        assert flooder.error is None, flooder.error
        return flooder

    async def go() -> dict:
        stop = asyncio.Event()
        driver = PacedDuplex(EndlessInput(ArrayInput(silence(0.5))), NullOutput(), speaker, clock, BLOCK)
        side = [asyncio.ensure_future(bridge.run(stop)), asyncio.ensure_future(driver.run(meter, stop=stop))]
        try:
            await recorder.wait_for_async(t.availability, "online", timeout=10)
            while not bridge.connected:
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            await asyncio.sleep(2.0)  # the voice loop alone, for comparison
            sample()
            baseline = samples[-1]["tasks"]
            quiet = (loop.time() - 2.0, loop.time())
            # -- 1: ask and say at 20 a second each
            flood_start = loop.time()
            texts = await flood([
                (t.command("say"), lambda i: f"Announcement {i}."),
                (t.command("ask"), lambda i: f"question {i}?"),
            ], TEXT_FLOOD_S)
            phase1 = (flood_start, loop.time())
            await asyncio.sleep(ASK_INTERVAL_S + 0.5)  # the waiting question starts
            last_ask = texts.last[1]
            # -- 2: random bytes at every command topic
            mark = len(events)
            caplog_mark = len(caplog.records)
            await flood([
                (t.command(e), lambda i: rng.randbytes(rng.choice([0, 1, 3, 16, 200, 2000])))
                for e in COMMAND_ENTITIES
            ], BYTES_FLOOD_S)
            bytes_log = caplog.records[caplog_mark:]
            bytes_events = events[mark:]
            # -- after: it still answers
            await asyncio.sleep(1.0)
            mark = len(events)
            recorder.publish(t.command("mute"), "OFF")
            recorder.publish(t.command("say"), "The flood is over.")
            deadline = loop.time() + 10
            while not any(isinstance(e, TurnEnd) and e.reply.strip() == "The flood is over." for e in events[mark:]):
                assert loop.time() < deadline, [e for e in events[mark:] if isinstance(e, TurnEnd)]
                await asyncio.sleep(0.05)
            return {"baseline_tasks": baseline, "quiet": quiet, "phase1": phase1, "last_ask": last_ask,
                    "bytes_log": bytes_log, "bytes_events": bytes_events}
        finally:
            stop.set()
            controls.close()
            await asyncio.wait_for(asyncio.gather(*side, return_exceptions=True), 5)
            await listener.aclose()
            await conv.aclose()

    got = asyncio.run(go())

    # -- bounded: queues, tasks, memory
    peak = {key: max(s[key] for s in samples) for key in samples[0]}
    assert peak["pending"] <= len(STATE_ENTITIES) + 2, peak
    assert peak["events"] <= MAX_PENDING_EVENTS and peak["incoming"] <= MAX_QUEUED_MESSAGES, peak
    assert peak["says"] <= MAX_WAITING_SAYS and peak["turns"] <= 4, peak
    assert peak["tasks"] <= got["baseline_tasks"] + 8, (peak, got["baseline_tasks"])
    growth_mb = (rss[-1][1] - rss[len(rss) // 4][1]) / 2**20
    assert growth_mb < 20, f"resident memory grew {growth_mb:.1f} MB during the flood"

    # -- the voice loop kept its latency
    quiet = meter.lateness_ms(*got["quiet"])
    loud = meter.lateness_ms(*got["phase1"])
    assert len(loud) > TEXT_FLOOD_S * 40, "the audio blocks stopped"
    # p95, not p99: the flood's 40 messages a second, were their handling to hold
    # the loop up, would make far more than 5% of the blocks late; one hiccup of
    # the box (a fresh clone's full run once had the flooded p99 at 64 ms, against
    # 2-4 ms alone) makes three or four late in a row, which is p99 of 500 blocks.
    assert pctl(loud, 95) < pctl(quiet, 95) + 30, (pctl(quiet, 95), pctl(loud, 95))
    assert max(loud) < 250, max(loud)

    # -- the policy: the latest question wins, announcements queue and never cut each other
    requests = [e for e in events if isinstance(e, TextRequest)]
    asks = [e for e in requests if e.command == "ask" and e.text.startswith("question")]
    says = [e for e in requests if e.command == "say" and e.text.startswith("Announcement")]
    sent = int(TEXT_FLOOD_S * RATE_HZ)
    assert len(asks) <= TEXT_FLOOD_S / ASK_INTERVAL_S + 2, len(asks)
    assert asks[-1].text == got["last_ask"]
    assert 0 < len(says) < sent
    ends = {e.turn: e for e in events if isinstance(e, TurnEnd)}
    ask_times = [e.t for e in requests if e.command == "ask"]
    for say in says:
        end = ends.get(say.turn)
        if end is not None and end.reason == "stopped":  # cut: only by a question
            assert any(say.t <= a <= end.t for a in ask_times), (say, end)
    log = [r for r in caplog.records if r.name.startswith("voiceagent")]
    dropped = [r for r in log if "announcements come faster" in r.getMessage()]
    replaced = [r for r in log if "questions come faster" in r.getMessage()]
    assert len(dropped) == 1 and len(replaced) == 1, (len(dropped), len(replaced))

    # -- random bytes: logged (a line per topic and kind at most) and ignored
    warned = [r for r in got["bytes_log"] if r.levelno >= logging.WARNING]
    assert 0 < len(warned) <= len(COMMAND_ENTITIES) * 6, [r.getMessage() for r in warned]
    for e in got["bytes_events"]:
        if isinstance(e, TextRequest):
            assert e.text.strip() and not any(unicodedata.category(c) == "Cc" for c in e.text), e
    assert all("\n" not in r.getMessage() for r in log)
    print(
        f"\nflood: {sent} asks + {sent} says in {TEXT_FLOOD_S:.0f} s -> {len(asks)} asks and "
        f"{len(says)} says started; then {int(BYTES_FLOOD_S * RATE_HZ) * len(COMMAND_ENTITIES)} random "
        f"payloads -> {len(warned)} warnings; peaks {peak}; RSS growth {growth_mb:+.1f} MB; block "
        f"lateness p50/p99/max quiet {pctl(quiet, 50):.1f}/{pctl(quiet, 99):.1f}/{max(quiet):.1f} ms, "
        f"flooded {pctl(loud, 50):.1f}/{pctl(loud, 99):.1f}/{max(loud):.1f} ms; {len(log)} log lines"
    )


def test_lines_held_back_are_counted_in_the_next_one(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = LogLimiter(logging.getLogger("voiceagent.flood"), window_s=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "voiceagent.flood")
    for i in range(100):  # one a second, of two kinds
        limiter.log(logging.WARNING, "bad", "bad command %d", i)
        limiter.log(logging.INFO, "other", "other thing")
        now[0] += 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "bad command 0", "other thing",
        "bad command 60 (and 59 more like it in the last 60 s)",
        "other thing (and 59 more like it in the last 60 s)",
    ]
    assert limiter.held("bad") == 39


# -- the real daemon ------------------------------------------------------------------

REAL_FLOOD_S = 30.0


def daemon_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.realmodel
def test_half_a_minute_of_flood_leaves_the_real_daemon_up_and_answering(tmp_path: Path, broker: Broker) -> None:
    require_models()
    rec = broker.recorder()
    config = serve_config(tmp_path, broker, wake={"model": "none"})
    daemon = Daemon(tmp_path, config, [0.5])
    rng = random.Random(14)
    try:
        rec.wait_for(f"{BASE}/availability", "online", timeout=90)
        mark = rec.mark()
        rec.publish(f"{BASE}/ask/set", "What is the capital of France?")  # warm: the first turn
        rec.wait_for(f"{BASE}/reply/state", lambda m: bool(m.text.strip()), since=mark, timeout=60)
        rss = [daemon_rss(daemon.proc.pid)]
        streams = [
            (f"{BASE}/ask/set", lambda i: f"Question number {i}, what is {i} plus one?"),
            (f"{BASE}/say/set", lambda i: f"Announcement {i}."),
            *((f"{BASE}/{e}/set", lambda i: rng.randbytes(rng.choice([0, 1, 16, 2000])))
              for e in ("say", "ask", "mute")),
        ]
        flooder = Flooder(rec, streams, REAL_FLOOD_S)
        flooder.start()
        while flooder.is_alive():
            time.sleep(5)
            assert daemon.proc.poll() is None, daemon.log()[-3000:]
            rss.append(daemon_rss(daemon.proc.pid))
        assert flooder.error is None, flooder.error
        time.sleep(5)  # the waiting announcements play out
        mark = rec.mark()
        rec.publish(f"{BASE}/mute/set", "OFF")
        rec.publish(f"{BASE}/say/set", "The flood is over.")
        rec.wait_for(f"{BASE}/reply/state", "The flood is over.", since=mark, timeout=60)
        mark = rec.mark()
        rec.publish(f"{BASE}/ask/set", "What is the capital of Italy?")
        rec.wait_for(f"{BASE}/reply/state", lambda m: bool(m.text.strip()), since=mark, timeout=60)
        rss.append(daemon_rss(daemon.proc.pid))
        code, took = daemon.signal(signal.SIGTERM)
        assert code == 0 and took < 3.0, (code, took)
    finally:
        daemon.close()
        rec.close()
    log = daemon.log()
    assert "Traceback" not in log, log[-3000:]
    lines = log.splitlines()
    # The allocators' arenas fill during the first minute or so, then it is flat
    # (measured for three minutes: 530 MB at the start, 636 MB from 80 s to 180 s).
    growth_mb = (max(rss[2:]) - rss[2]) / 2**20
    print(f"\nreal flood: {flooder.sent[0]} asks, {flooder.sent[1]} says and {sum(flooder.sent[2:])} "
          f"random payloads in {REAL_FLOOD_S:.0f} s; RSS MB "
          f"{[round(r / 2**20) for r in rss]}; {len(lines)} lines on stderr, most common: "
          f"{Counter(' '.join(line.split()[3:5]) for line in lines).most_common(6)}")
    assert growth_mb < 100, [round(r / 2**20) for r in rss]
    dropped = [line for line in lines if "announcements come faster" in line]
    assert 1 <= len(dropped) <= 2, dropped
    assert sum("ignoring a malformed command" in line for line in lines) <= 3 * 6 * 2
