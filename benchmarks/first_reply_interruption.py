"""An interruption early in the first reply, through ``voiceagent run`` as a user would.

For each pair of real recordings (a request, then an interruption), one run
finds when the first reply starts; the interruption is then spliced in at 0.2
to 1.0 s into that reply and the file is run again (with and without a
simulated echo path, ``--echo``). Reported per case: how long after the
interruption's first word the reply went quiet (from the output WAV), and the
word error rate of the turn that answered the interruption.

    .venv/bin/python benchmarks/first_reply_interruption.py --speech ../shared/speech [--json F]

The reply's start moves by a few tens of milliseconds between runs; the offset
reported is the one measured in the run itself.
"""

from __future__ import annotations

import argparse
import json
import math
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceagent.bench.measure import quiet_after  # noqa: E402
from voiceagent.bench.recordings import read_tables  # noqa: E402
from voiceagent.bench.wer import wer as word_error_rate  # noqa: E402

logger = logging.getLogger(__name__)
RATE = 16000
LEAD_S = 0.5
PAIRS = [  # (request, interruption): different speakers, as at a kitchen table
    ("req_wealth_tax", "read_birch_canoe"),
    ("req_go_somewhere", "read_child_dog"),
    ("req_cards_hand", "req_forever"),
    ("read_amiable_himself", "req_go_forward"),
]
OFFSETS_S = (0.3, 0.45, 0.6)


def labels(speech: Path) -> dict[str, tuple[float, float, str]]:
    return {r.name: (r.start_s, r.end_s, r.transcript) for r in read_tables(speech)}


def cut(speech: Path, name: str, lab: dict[str, tuple[float, float, str]]) -> np.ndarray:
    audio, rate = sf.read(speech / f"{name}.wav", dtype="float32")
    start, end, _ = lab[name]
    # Keep a little of the room around the words, as a microphone would.
    return audio[max(0, int((start - 0.15) * rate)) : int((end + 0.15) * rate)]


def run(audio: np.ndarray, work: Path, tag: str, echo: str | None) -> tuple[list[dict], np.ndarray]:
    wav, out, ev = work / f"{tag}.wav", work / f"{tag}-out.wav", work / f"{tag}.jsonl"
    sf.write(wav, audio, RATE, subtype="PCM_16")
    cmd = [sys.executable, "-m", "voiceagent", "run", "-i", str(wav), "-o", str(out), "-e", str(ev)]
    if echo:
        cmd += ["--echo", echo]
    subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    events = [json.loads(line) for line in ev.read_text().splitlines() if line.strip()]
    played, _ = sf.read(out, dtype="float32")
    return events, played


def first_playback(events: list[dict]) -> float | None:
    return next((e["t"] for e in events if e["type"] == "playback_start"), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speech", type=Path, default=Path("../shared/speech"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--echo", default="none,40:-6", help="comma list: none and/or DELAY_MS:GAIN_DB")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lab = labels(args.speech)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for echo in args.echo.split(","):
            echo_arg = None if echo == "none" else echo
            for req, intr in PAIRS:
                request, interruption = cut(args.speech, req, lab), cut(args.speech, intr, lab)
                lead = np.zeros(int(LEAD_S * RATE), np.float32)
                base = np.concatenate([lead, request, np.zeros(6 * RATE, np.float32)])
                events, _ = run(base, work, "base", echo_arg)
                start = first_playback(events)
                if start is None:
                    logger.warning("%s: not answered; skipped", req)
                    continue
                for offset in OFFSETS_S:
                    at = int((start + offset - 0.15) * RATE)  # the cut keeps 0.15 s of room first
                    audio = base.copy()
                    audio = np.concatenate([audio, np.zeros(8 * RATE, np.float32)])
                    onset = at / RATE + 0.15
                    audio[at : at + interruption.size] += interruption
                    events, played = run(audio, work, "cut", echo_arg)
                    actual = first_playback(events)
                    quiet = quiet_after(played, onset, RATE)
                    first_turn = next((e["turn"] for e in events if e["type"] == "playback_start"), None)
                    answered = [e for e in events if e["type"] == "turn_end" and e.get("text")
                                and e["turn"] != first_turn and e["t"] > onset]
                    text = answered[0]["text"] if answered else ""
                    row = {
                        "echo": echo, "request": req, "interruption": intr, "offset_s": offset,
                        "into_reply_s": round(onset - actual, 3) if actual is not None else None,
                        "quiet_after_onset_ms": round(quiet * 1000) if math.isfinite(quiet) else None,
                        "transcript": text, "wer": round(word_error_rate(lab[intr][2], text), 3),
                        "barge_in": any(e["type"] == "barge_in" for e in events),
                    }
                    logger.info("%s", row)
                    rows.append(row)
    print("| echo | request | interruption | into the reply (s) | quiet after onset (ms) | WER | transcript |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['echo']} | {r['request']} | {r['interruption']} | {r['into_reply_s']} | "
              f"{r['quiet_after_onset_ms']} | {r['wer']:.2f} | {r['transcript']} |")
    for echo in args.echo.split(","):
        mine = [r for r in rows if r["echo"] == echo and r["quiet_after_onset_ms"] is not None]
        if mine:
            q = [r["quiet_after_onset_ms"] for r in mine]
            print(f"\n{echo}: quiet after onset p50 {statistics.median(q):.0f} ms, max {max(q)} ms; "
                  f"WER mean {statistics.mean(r['wer'] for r in mine):.2f}, "
                  f"within 200 ms {sum(x <= 200 for x in q)} of {len(q)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
