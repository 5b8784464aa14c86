"""Soak: does the assistant stay the same over thousands of turns?

Two modes.

``fake``: the conversation itself (``Conversation`` with the fake models of
``tests/fakes.py``, the paced driver in simulated time on a manual clock, a wake
word gate) for thousands of turns that mix answered questions, barge-ins,
continuations after a pause, ``say``, ``ask`` then ``stop``, and speech without the
wake word. Every ``--every`` turns it samples what could leak: asyncio tasks,
threads, open files, the history, the turns in flight, the speaker's queue, the
conversation's task set, Python's allocated blocks and the resident memory. Runs
at ~1000x real time; ``tests/test_soak.py`` runs a short one in ``make test``.

``real``: ``voiceagent serve`` in real time with the real default models, a real
mosquitto, raw PCM on its standard input (real people's requests from
``tests/data`` and espeak questions, some talked over), ``ask``/``say``/``stop``
over MQTT, and the broker restarted every ``--broker-restart-s``. It samples the
daemon's resident memory and CPU every few seconds and takes each turn's
latency from the conversation log.

Both write a JSON file and a plot:

    .venv/bin/python benchmarks/soak.py fake --turns 10000 --json docs/soak-fake.json --plot docs/soak-fake.png
    .venv/bin/python benchmarks/soak.py real --turns 200 --json docs/soak-real-2core.json --plot docs/soak-real-2core.png
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fakes import EnergyVad, FakeChat, FakeSynth, FakeTranscriber, silence, tone  # noqa: E402
from voiceagent.transports.paced import PacedDuplex  # noqa: E402
from voiceagent.audio.speaker import Speaker  # noqa: E402
from voiceagent.clock import ManualClock  # noqa: E402
from voiceagent.config import Config  # noqa: E402
from voiceagent.dialogue.conversation import Conversation  # noqa: E402
from voiceagent.events import EventBus, TurnEnd  # noqa: E402
from voiceagent.rules.wake_gate import WakeGate, WakeGateSettings  # noqa: E402
from voiceagent.stages.workers import InlineWorker, Workers  # noqa: E402

RATE = 16000
BLOCK = 320
REPLY = " ".join(f"w{i}" for i in range(1, 13)) + ". " + " ".join(f"v{i}" for i in range(1, 13)) + "."
"""Two sentences of 12 words: 1.2 s of the fake voice, long enough to talk over."""


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# ---------------------------------------------------------------- fake mode


@dataclass
class Scenario:
    """One stretch of input and what is done at given times within it."""

    kind: str
    audio: np.ndarray
    actions: list[tuple[float, Callable[["Soak"], None]]] = field(default_factory=list)


def scenarios(rng: random.Random) -> Callable[[], Scenario]:
    """An endless mix; each call makes the next stretch."""

    def answer() -> Scenario:
        return Scenario("answer", np.concatenate([tone(rng.uniform(0.6, 1.2)), silence(3.2)]),
                        [(0.0, Soak.wake)])

    def barge_in() -> Scenario:
        # The reply starts ~0.8 s after the question ends; the user talks over it.
        question = rng.uniform(0.6, 1.0)
        over = rng.uniform(1.0, 1.4)
        return Scenario("barge_in", np.concatenate([
            tone(question), silence(over), tone(1.2), silence(3.2),
        ]), [(0.0, Soak.wake)])

    def continuation() -> Scenario:
        return Scenario("continuation", np.concatenate([
            tone(0.8), silence(rng.uniform(0.5, 1.1)), tone(0.6), silence(3.2),
        ]), [(0.0, Soak.wake)])

    def say() -> Scenario:
        return Scenario("say", silence(2.5), [(0.1, lambda s: s.conv.say("The washing is done."))])

    def ask_stop() -> Scenario:
        return Scenario("ask_stop", silence(2.5), [
            (0.1, lambda s: s.conv.ask("Tell me a story.")),
            (rng.uniform(0.4, 1.2), lambda s: s.conv.stop()),
        ])

    def not_addressed() -> Scenario:
        return Scenario("not_addressed", np.concatenate([tone(0.8), silence(2.0)]))

    kinds = [answer, answer, barge_in, continuation, say, ask_stop, not_addressed]
    return lambda: rng.choice(kinds)()


class ScenarioInput:
    """Endless input made of scenarios, made as it is read (nothing kept)."""

    def __init__(self, soak: "Soak", make: Callable[[], Scenario], limit_s: float) -> None:
        self.soak = soak
        self.make = make
        self.limit_s = limit_s
        self._buffer = np.zeros(0, np.float32)
        self._t = 0.0
        """Input time where the buffer starts."""

    async def read(self, n: int) -> np.ndarray | None:
        if self.soak.done or self._t > self.limit_s:
            return None
        while self._buffer.size < n:
            start = self._t + self._buffer.size / RATE
            scene = self.make()
            self.soak.kinds[scene.kind] = self.soak.kinds.get(scene.kind, 0) + 1
            for offset, action in scene.actions:
                self.soak.actions.append((start + offset, action))
            self._buffer = np.concatenate([self._buffer, scene.audio])
        block, self._buffer = self._buffer[:n], self._buffer[n:]
        self._t += n / RATE
        return block

    def close(self) -> None:
        pass


class NullOutput:
    """Counts what was played and keeps none of it."""

    def __init__(self) -> None:
        self.samples = 0
        self.loud = 0

    def write(self, block: np.ndarray) -> None:
        self.samples += block.size
        self.loud += int(np.abs(block).max() > 0.01) if block.size else 0

    def close(self) -> None:
        pass


class Soak:
    def __init__(self, turns: int, every: int, seed: int) -> None:
        self.target = turns
        self.every = every
        cfg = Config()
        self.bus = EventBus()
        self.clock = ManualClock()
        self.speaker = Speaker(RATE)
        self.gate = WakeGate(WakeGateSettings(listen_s=3.0, follow_up_s=0.0, phrase=""))
        self.chat = FakeChat(REPLY)
        self.chat.seen = _Forgetful()  # the fake's record of prompts would itself grow
        self.conv = Conversation(
            cfg, EnergyVad(), _ForgetfulTranscriber(), self.chat, FakeSynth(), self.speaker, self.bus,
            self.clock, gate=self.gate, workers=Workers.make(cfg, InlineWorker), prompt_cache=self.chat, end_of_message=self.chat,
        )
        self.bus.subscribe(self.gate.on_event)
        self.bus.subscribe(self.on_event)
        self.actions: list[tuple[float, Callable[[Soak], None]]] = []
        self.kinds: dict[str, int] = {}
        self.reasons: dict[str, int] = {}
        self.turns = 0
        self.samples: list[dict[str, Any]] = []
        self._latencies: list[float] = []
        self._speech_end: dict[int, float] = {}
        self.done = False
        self.rng = random.Random(seed)
        self.started = time.monotonic()

    # the driver's listener
    def on_block(self, block: np.ndarray, t: float) -> None:
        while self.actions and self.actions[0][0] <= t:
            self.actions.pop(0)[1](self)
        self.conv.on_block(block, t)

    def on_playback(self, notice: Any, t: float) -> None:
        self.conv.on_playback(notice, t)

    @property
    def idle(self) -> bool:
        return self.conv.idle

    def wake(self) -> None:
        self.gate.heard(self.clock.now())

    def on_event(self, event: Any) -> None:
        if event.type == "speech_end":
            self._speech_end[event.turn] = event.t
        elif event.type == "playback_start" and event.turn in self._speech_end:
            self._latencies.append((event.t - self._speech_end.pop(event.turn)) * 1000)
        elif isinstance(event, TurnEnd):
            self._speech_end.pop(event.turn, None)
            self.turns += 1
            self.reasons[event.reason] = self.reasons.get(event.reason, 0) + 1
            if self.turns % self.every == 0:
                self.sample()
            if self.turns >= self.target:
                self.done = True

    def sample(self) -> None:
        gc.collect()
        conv = self.conv
        self.samples.append({
            "turns": self.turns,
            "sim_s": round(self.clock.now(), 1),
            "wall_s": round(time.monotonic() - self.started, 2),
            "rss_mb": round(rss_mb(), 2),
            "py_blocks": sys.getallocatedblocks(),
            "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "open_files": len(os.listdir("/proc/self/fd")),
            "history": len(conv.history.exchanges),
            "turns_in_flight": len(conv.turns._turns),
            "conversation_tasks": len(conv.tasks._tasks),
            "speaker_queued": len(self.speaker._queue),
            "speaker_turns": len(self.speaker._turns),
            "pending_actions": len(self.actions),
            "latency_p50_ms": percentile(self._latencies, 50),
            "latency_p95_ms": percentile(self._latencies, 95),
        })
        self._latencies.clear()


class _Forgetful(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        pass


class _ForgetfulTranscriber(FakeTranscriber):
    def transcribe(self, audio: np.ndarray):  # type: ignore[no-untyped-def]
        result = super().transcribe(audio)
        self.calls.clear()
        return result


def run_fake(turns: int, every: int = 100, seed: int = 1) -> dict[str, Any]:
    soak = Soak(turns, every, seed)
    source = ScenarioInput(soak, scenarios(soak.rng), limit_s=turns * 10.0)
    out = NullOutput()
    driver = PacedDuplex(source, out, soak.speaker, soak.clock, BLOCK, realtime=False)

    async def go() -> None:
        try:
            await driver.run(soak)
        finally:
            await soak.conv.aclose()

    asyncio.run(go())
    return {
        "mode": "fake",
        "turns": soak.turns,
        "simulated_s": round(soak.clock.now(), 1),
        "wall_s": round(time.monotonic() - soak.started, 1),
        "scenarios": soak.kinds,
        "reasons": soak.reasons,
        "played_s": round(out.samples / RATE, 1),
        "samples": soak.samples,
        "verdict": verdict_fake(soak.samples),
    }


def verdict_fake(samples: list[dict[str, Any]], warmup: int = 2) -> dict[str, Any]:
    """Growth after warm-up of everything sampled."""
    if len(samples) <= warmup:
        return {"enough_samples": False}
    after = samples[warmup:]
    keys = ("tasks", "threads", "open_files", "history", "turns_in_flight", "conversation_tasks",
            "speaker_queued", "speaker_turns", "pending_actions")
    return {
        "enough_samples": True,
        "max_after_warmup": {k: max(s[k] for s in after) for k in keys},
        "rss_mb_first": after[0]["rss_mb"],
        "rss_mb_last": after[-1]["rss_mb"],
        "rss_growth_pct": round(100 * (after[-1]["rss_mb"] - after[0]["rss_mb"]) / after[0]["rss_mb"], 2),
        "py_blocks_first": after[0]["py_blocks"],
        "py_blocks_last": after[-1]["py_blocks"],
        "py_blocks_max": max(s["py_blocks"] for s in after),
    }


# ---------------------------------------------------------------- real mode


def run_real(turns: int, broker_restart_s: float, seed: int, workdir: Path) -> dict[str, Any]:
    import yaml

    from tests.support.broker import Broker
    from tests.support.speech import real, say, speech_of

    rng = random.Random(seed)
    broker = Broker(workdir / "broker")
    broker.start()
    base = "voiceagent/soak"
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section in ("asr", "tts", "turn"):
        config[section]["model"] = str(ROOT / config[section]["model"])
    config["llm"]["model"] = str(ROOT / config["llm"]["model"])
    config["mqtt"] = {**config.get("mqtt", {}), **broker.mqtt_config(node_id="soak", reconnect_min_s=0.5,
                                                                       reconnect_max_s=2.0)}
    config["wake"] = {**config.get("wake", {}), "model": "none"}
    log_path = workdir / "conversations.jsonl"
    config["serve"] = {"conversation_log": str(log_path)}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))

    real_names = ["req_go_somewhere", "req_go_forward", "req_forever", "req_cards_hand",
                  "req_cards_seven_of_clubs", "req_cards_five_five"]
    clips = [speech_of(real(n)).at(RATE) for n in real_names]
    spoken = [say(t, RATE) for t in (
        "What is the capital of France?", "Tell me a joke about cats.", "How far away is the moon?",
        "What should I cook tonight?",
    )]
    interruption = say("Wait, stop, tell me about dogs instead.", RATE)

    proc = subprocess.Popen(
        [sys.executable, "-m", "voiceagent", "serve", "-c", str(workdir / "config.yaml"), "-i", "-",
         "-o", str(workdir / "out.wav"), "-e", str(workdir / "events.jsonl")],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=open(workdir / "stderr.log", "wb"),
    )
    rec = broker.recorder()
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    stop_feeding = threading.Event()
    kinds: dict[str, int] = {}

    def publish(topic: str, payload: str) -> None:
        """Publish, waiting out a broker restart (the recorder reconnects by itself)."""
        for _ in range(40):
            try:
                rec.publish(topic, payload)
                return
            except RuntimeError:  # not connected right now
                time.sleep(0.25)
        raise RuntimeError(f"could not publish to {topic} for 10 s")

    def pcm(audio: np.ndarray) -> bytes:
        return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()

    def feed() -> None:
        """Raw PCM in real time (the daemon paces it; the pipe's buffer is ~2 s)."""
        assert proc.stdin is not None
        try:
            while not stop_feeding.is_set():
                kind = rng.choice(["real", "real", "espeak", "barge_in", "ask", "say", "ask_stop"])
                kinds[kind] = kinds.get(kind, 0) + 1
                if kind in ("real", "espeak", "barge_in"):
                    question = rng.choice(clips if kind != "espeak" else spoken)
                    if kind == "barge_in":
                        audio = np.concatenate([silence(0.5), question, silence(2.2), interruption, silence(5.5)])
                    else:
                        audio = np.concatenate([silence(0.5), question, silence(5.5)])
                    proc.stdin.write(pcm(audio))
                    continue
                # typed commands: published once the daemon has read up to here
                proc.stdin.write(pcm(silence(0.3)))
                proc.stdin.flush()
                time.sleep(2.0)  # about what the pipe holds
                if kind == "say":
                    publish(f"{base}/say/set", "The washing machine is done.")
                else:
                    publish(f"{base}/ask/set", rng.choice(["Tell me a long story.", "What is a rainbow?"]))
                    if kind == "ask_stop":
                        time.sleep(2.5)
                        publish(f"{base}/stop/set", "PRESS")
                proc.stdin.write(pcm(silence(5.0)))
        except (BrokenPipeError, ValueError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        rec.wait_for(f"{base}/availability", "online", timeout=120)
        feeder.start()
        last_cpu, last_t = cpu_seconds(proc.pid), time.monotonic()
        last_restart = time.monotonic()
        restarts = 0
        while True:
            time.sleep(5.0)
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}; see {workdir / 'stderr.log'}")
            if not feeder.is_alive():
                raise RuntimeError("the input feeder stopped (see its traceback above)")
            now, cpu = time.monotonic(), cpu_seconds(proc.pid)
            done = _turn_ends(workdir / "events.jsonl")
            samples.append({
                "wall_s": round(now - started, 1), "turns": done, "rss_mb": round(rss_mb(proc.pid), 1),
                "cpu_pct": round(100 * (cpu - last_cpu) / (now - last_t), 1),
                "threads": len(os.listdir(f"/proc/{proc.pid}/task")),
                "open_files": len(os.listdir(f"/proc/{proc.pid}/fd")),
            })
            last_cpu, last_t = cpu, now
            print(f"{samples[-1]}", flush=True)
            if done >= turns:
                break
            if now - last_restart > broker_restart_s:
                broker.kill()
                time.sleep(1.0)
                broker.restart()
                restarts += 1
                last_restart = time.monotonic()
    finally:
        stop_feeding.set()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)
        rec.close()
        broker.stop()
    log = [json.loads(x) for x in log_path.read_text().splitlines()]
    return {
        "mode": "real",
        "turns": samples[-1]["turns"] if samples else 0,
        "logged_turns": len(log),
        "wall_s": round(time.monotonic() - started, 1),
        "broker_restarts": restarts,
        "inputs": kinds,
        "reasons": _count(x["reason"] for x in log),
        "samples": samples,
        "latencies": [
            {"turn": x["turn"], "source": x["source"], "latency_ms": x["latency_ms"]}
            for x in log if x["latency_ms"] is not None
        ],
        "exit_code": proc.returncode,
        "verdict": verdict_real(samples, log),
    }


def _turn_ends(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if b'"turn_end"' in line)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def verdict_real(samples: list[dict[str, Any]], log: list[dict[str, Any]], warmup_turns: int = 20) -> dict[str, Any]:
    after = [s for s in samples if s["turns"] >= warmup_turns]
    if len(after) < 2:
        return {"enough_samples": False}
    voice = [x for x in log if x["latency_ms"] is not None and x["source"] == "voice"]
    quarters = [voice[i * len(voice) // 4 : (i + 1) * len(voice) // 4] for i in range(4)]
    return {
        "enough_samples": True,
        "rss_mb_at_20_turns": after[0]["rss_mb"],
        "rss_mb_last": after[-1]["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in after),
        "rss_growth_pct": round(100 * (after[-1]["rss_mb"] - after[0]["rss_mb"]) / after[0]["rss_mb"], 2),
        "cpu_pct_median": statistics.median(s["cpu_pct"] for s in after),
        "threads_max": max(s["threads"] for s in after),
        "threads_first": after[0]["threads"],
        "open_files_max": max(s["open_files"] for s in after),
        "open_files_first": after[0]["open_files"],
        "voice_latency_by_quarter": [
            {"p50_ms": percentile([x["latency_ms"] for x in q], 50),
             "p95_ms": percentile([x["latency_ms"] for x in q], 95), "turns": len(q)}
            for q in quarters
        ],
    }


# ---------------------------------------------------------------- plot


def write_plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    turns = [s["turns"] for s in samples]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(turns, [s["rss_mb"] for s in samples])
    axes[0].set(title="resident memory", xlabel="turns", ylabel="MB")
    axes[0].set_ylim(0, max(s["rss_mb"] for s in samples) * 1.2)
    if result["mode"] == "fake":
        axes[1].plot(turns, [s["tasks"] for s in samples], label="asyncio tasks")
        axes[1].plot(turns, [s["open_files"] for s in samples], label="open files")
        axes[1].plot(turns, [s["history"] for s in samples], label="history")
        axes[1].plot(turns, [s["turns_in_flight"] for s in samples], label="turns in flight")
        axes[1].set(title="what could leak", xlabel="turns")
        axes[1].legend()
        axes[2].plot(turns, [s["latency_p50_ms"] for s in samples], label="p50")
        axes[2].plot(turns, [s["latency_p95_ms"] for s in samples], label="p95")
        axes[2].set(title="voice-to-voice (simulated clock)", xlabel="turns", ylabel="ms")
    else:
        axes[1].plot(turns, [s["cpu_pct"] for s in samples])
        axes[1].set(title="CPU (share of one core, per 5 s)", xlabel="turns", ylabel="%")
        lat = [x for x in result["latencies"]]
        axes[2].scatter(range(len(lat)), [x["latency_ms"] for x in lat], s=6,
                        c=["C0" if x["source"] == "voice" else "C1" for x in lat])
        axes[2].set(title="latency per answered turn (blue voice, orange ask/say)", xlabel="logged turn",
                    ylabel="ms")
    axes[2].legend() if result["mode"] == "fake" else None
    fig.suptitle(f"soak ({result['mode']}): {result['turns']} turns in {result['wall_s']:.0f} s")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["fake", "real"])
    parser.add_argument("--turns", type=int, default=None, help="fake: 10000, real: 200")
    parser.add_argument("--every", type=int, default=100, help="fake: sample every this many turns")
    parser.add_argument("--broker-restart-s", type=float, default=180.0, help="real: restart the broker this often")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    if args.mode == "fake":
        result = run_fake(args.turns or 10000, args.every, args.seed)
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            result = run_real(args.turns or 200, args.broker_restart_s, args.seed, Path(tmp))
    summary = {k: v for k, v in result.items() if k not in ("samples", "latencies")}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        write_plot(result, args.plot)


if __name__ == "__main__":
    main()
