"""What the daemon costs and how fast it reacts: ``voiceagent serve`` with the real
default models, a real mosquitto broker and file input (espeak-ng questions).

Reports:
- start-up: process start to ``online`` on the broker (models loaded and warm);
- voice turns with the wake word ("Hey Jarvis, <question>") and without a wake
  word model (``wake.model: none``): latency from the conversation log (end of
  speech to the first reply sample), and whether each was answered;
- ``ask`` over MQTT: publish to the state going ``speaking`` (wall clock, on the
  broker) and, inside the daemon, the typed request to the first reply sample;
- idle: CPU (share of one core) and resident memory while it listens to silence;
- the broker killed and restarted: restart to ``online`` again, with the
  default backoff (1 s doubling);
- SIGTERM to ``offline`` on the broker and to the process's exit.

    .venv/bin/python benchmarks/serve.py [--questions N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.broker import Broker  # noqa: E402
from tests.support.speech import conversation_wav  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water?",
    "How many days are in a week?",
    "What is the largest planet?",
    "What do bees make?",
]
NODE = "bench_agent"
BASE = f"voiceagent/{NODE}"
TICKS = os.sysconf("SC_CLK_TCK")


def config(tmp: Path, broker: Broker, wake: str) -> Path:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section in ("asr", "llm", "tts", "turn"):
        cfg[section]["model"] = str(ROOT / cfg[section]["model"])
    cfg["mqtt"] = broker.mqtt_config(node_id=NODE)
    cfg["wake"] = {"model": wake, "follow_up_s": 0}
    cfg["serve"] = {"conversation_log": str(tmp / f"log-{wake}.jsonl")}
    path = tmp / f"config-{wake}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(tmp: Path, cfg: Path, wav: Path, tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "voiceagent", "serve", "-c", str(cfg), "-i", str(wav),
         "-o", str(tmp / f"out-{tag}.wav"), "-e", str(tmp / f"events-{tag}.jsonl")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / f"stderr-{tag}.log", "w"),
    )


def voice_run(tmp: Path, broker: Broker, wake: str, n: int) -> list[dict]:
    parts: list = [1.0]
    for q in QUESTIONS[:n]:
        parts += [f"Hey Jarvis, {q[0].lower()}{q[1:]}" if wake != "none" else q, 8.0]
    wav = tmp / f"in-{wake}.wav"
    conversation_wav(wav, parts, rate=16000, channels=1)
    seconds = sum(p for p in parts if isinstance(p, float)) + 3.0 * n
    with broker.recorder() as rec:
        mark = rec.mark()
        proc = start(tmp, config(tmp, broker, wake), wav, wake)
        rec.wait_for(f"{BASE}/availability", "online", since=mark, timeout=120)
        time.sleep(seconds)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    log = tmp / f"log-{wake}.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=6)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    broker = Broker(tmp / "broker").start()
    rows: list[tuple[str, str]] = []
    try:
        for wake in ("hey_jarvis", "none"):
            turns = voice_run(tmp, broker, wake, args.questions)
            lat = [t["latency_ms"] for t in turns if t["source"] == "voice" and t["latency_ms"] is not None]
            answered = sum(t["reason"] == "answered" for t in turns)
            label = "with wake word" if wake != "none" else "no wake word model"
            rows.append((f"voice turns {label}: answered", f"{answered} of {args.questions}"))
            if lat:
                rows.append((f"voice turns {label}: latency p50 / max (ms)",
                             f"{statistics.median(lat):.0f} / {max(lat):.0f}"))

        # one long-running daemon on silence for the rest
        wav = tmp / "silence.wav"
        conversation_wav(wav, [1.0], rate=16000, channels=1)
        with broker.recorder() as rec:
            t0 = time.monotonic()
            proc = start(tmp, config(tmp, broker, "hey_jarvis"), wav, "idle")
            mark = rec.mark()
            rec.wait_for(f"{BASE}/availability", "online", since=mark, timeout=120)
            rows.append(("start-up to online (s)", f"{time.monotonic() - t0:.1f}"))
            time.sleep(3.0)
            c0, w0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(20.0)
            idle = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - w0)
            rows.append(("idle CPU, share of one core (wake word on, 20 s)", f"{idle * 100:.0f}%"))
            rows.append(("resident memory (MB)", f"{rss_mb(proc.pid):.0f}"))

            walls = []
            for q in QUESTIONS[:5]:
                mark = rec.mark()
                t = time.monotonic()
                rec.publish(f"{BASE}/ask/set", q)
                rec.wait_for(f"{BASE}/state/state", "speaking", since=mark, timeout=30)
                walls.append((time.monotonic() - t) * 1000)
                rec.wait_for(f"{BASE}/state/state", "idle", since=mark, timeout=60)
            rows.append(("ask: publish to state speaking, p50 / max (ms, wall)",
                         f"{statistics.median(walls):.0f} / {max(walls):.0f}"))
            events = [json.loads(x) for x in (tmp / "events-idle.jsonl").read_text().splitlines()]
            req = {e["turn"]: e["t"] for e in events if e["type"] == "text_request"}
            first = {}
            for e in events:
                if e["type"] == "playback_start":
                    first.setdefault(e["turn"], e["t"])
            inside = [(first[k] - req[k]) * 1000 for k in req if k in first]
            rows.append(("ask: request to first reply sample, p50 (ms, in the daemon)",
                         f"{statistics.median(inside):.0f}"))

            broker.kill()
            time.sleep(2.0)
            broker.restart()
            t = time.monotonic()
            mark = rec.mark()
            rec.wait_for(f"{BASE}/availability", "online", since=mark, timeout=60)
            rows.append(("broker killed 2 s, restarted: restart to online (s)", f"{time.monotonic() - t:.1f}"))

            mark = rec.mark()
            t = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rec.wait_for(f"{BASE}/availability", "offline", since=mark, timeout=10)
            off = time.monotonic() - t
            proc.wait(10)
            rows.append(("SIGTERM to offline / to exit (s)", f"{off:.2f} / {time.monotonic() - t:.2f}"))
    finally:
        broker.stop()
    width = max(len(k) for k, _ in rows)
    print(f"voiceagent serve, {os.cpu_count()} cores, default models\n")
    print(f"| {'figure'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    print(f"\n(files in {tmp})")


if __name__ == "__main__":
    main()
