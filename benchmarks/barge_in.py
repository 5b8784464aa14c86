"""Barge-in benchmark: how fast the reply stops, and what must not stop it.

Runs the real default models in real time (as ``voiceagent run`` does) on
espeak-ng speech in several voices, with and without the simulated room echo of
``--echo 40:-6``, and reports:

- stop latency: from the onset of an interrupting utterance (first sample above
  -40 dBFS in the input) to the output going silent (peak below -40 dBFS for
  200 ms), median and worst;
- false stops: barge-ins on replies that nobody interrupted, and on a 150 ms
  noise burst or an "mm-hmm" over the reply; and how long such false alarms
  paused the reply.

    .venv/bin/python benchmarks/barge_in.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceagent.host.run import run_paced  # noqa: E402
from voiceagent.stages.loading import load_models  # noqa: E402
from voiceagent.audio.room_echo import EchoSpec  # noqa: E402
from voiceagent.audio.streams import ArrayInput, MemoryOutput  # noqa: E402
from voiceagent.bench.bargein import INTERRUPTIONS  # noqa: E402
from voiceagent.bench.measure import first_sound, paused_s, quiet_after  # noqa: E402
from voiceagent.config import load_config  # noqa: E402
from voiceagent.demo import espeak  # noqa: E402
from voiceagent.events import EventBus  # noqa: E402

RATE = 16000
ASK = "Can you tell me something interesting about the ocean?"


def say(text: str, voice: str) -> np.ndarray:
    return 0.7 * espeak(text, RATE, voice=voice, wpm=160)


async def converse(cfg, models, audio, echo):
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    out = MemoryOutput()
    await run_paced(cfg, models, ArrayInput(audio), out, bus, echo=echo)
    return events, out.audio


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="two interruption cases only")
    ap.add_argument("--false-only", action="store_true", help="only the false-alarm runs")
    args = ap.parse_args()
    cfg = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    models = load_models(cfg)
    cases = [] if args.false_only else INTERRUPTIONS[:2] if args.quick else INTERRUPTIONS
    ask = say(ASK, "en-us+m3")
    rows = []
    for label, echo in (("no echo", None), ("echo 40:-6", EchoSpec(40, -6))):
        stops, missed = [], 0
        for voice, text, after in cases:
            inter = say(text, voice)
            lead = np.concatenate([np.zeros(RATE // 2, np.float32), ask])
            start = lead.size + int(after * RATE)
            audio = np.concatenate([lead, np.zeros(int(after * RATE), np.float32), inter, np.zeros(6 * RATE, np.float32)])
            events, out = asyncio.run(converse(cfg, models, audio, echo))
            t0 = (start + first_sound(inter, 0, inter.size)) / RATE
            played = [e.t for e in events if e.type == "playback_start" and e.turn == 1]
            if not played or played[0] > t0 - 0.3:
                print(f"  {voice}: the reply had not started before the interruption; skipped")
                continue
            barge = [e for e in events if e.type == "barge_in"]
            stop = quiet_after(out, t0, RATE)
            stops.append(stop * 1000)
            missed += not barge
            print(f"  [{label}] {voice}: quiet {stop * 1000:.0f} ms after onset, barge_in={bool(barge)}")
        # false alarms: a burst, an mm-hmm, and a reply with nobody interrupting
        rng = np.random.default_rng(1)
        burst = (0.1 * rng.standard_normal(int(0.15 * RATE))).astype(np.float32)
        mm = say("Mm-hmm.", "en-us+f3")
        z = lambda s: np.zeros(int(s * RATE), np.float32)  # noqa: E731
        audio = np.concatenate([z(0.5), ask, z(2.8), burst, z(1.5), mm, z(9.0), say("What is the capital of France?", "en-us+m3"), z(6.0)])
        events, out = asyncio.run(converse(cfg, models, audio, echo))
        false_barge = sum(e.type == "barge_in" for e in events)
        for e in events:
            if e.type.startswith("barge_in") or e.type == "turn_end":
                print(f"  [{label}] {e.to_dict()}")
        suspected = sum(e.type == "barge_in_suspected" for e in events)
        verdicts = [e.verdict for e in events if e.type == "barge_in_rejected"]
        rows.append((label, stops, missed, false_barge, suspected, verdicts, paused_s([e.to_dict() for e in events])))
    print()
    print("| input | interruptions | stop latency median | worst | missed | false barge-ins (burst, mm-hmm, clean reply) | rejected suspicions | paused by them |")
    print("|---|---|---|---|---|---|---|---|")
    for label, stops, missed, fb, sus, verdicts, paused in rows:
        med = f"{statistics.median(stops):.0f} ms" if stops else "-"
        worst = f"{max(stops):.0f} ms" if stops else "-"
        print(f"| {label} | {len(stops)} | {med} | {worst} | {missed} | {fb} | {sus}: {', '.join(verdicts)} | {paused:.2f} s |")


if __name__ == "__main__":
    main()
