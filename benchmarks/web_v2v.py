"""Voice to voice through the web endpoint, beside ``voiceagent run``, on the same recordings.

For each labelled request (``requests.tsv`` of a corpus folder), the official
``openai`` SDK streams the recording to ``voiceagent serve``'s ``/v1/realtime``
on loopback in real time (100 ms a message, then silence); the time from the
labelled end of speech to the first ``response.output_audio.delta`` received is
its voice-to-voice latency. Then ``voiceagent run`` plays the same file and its
own ``playback_start`` gives the same measure without the network. Also: the
word error rate of the endpoint's input transcript.

    .venv/bin/python benchmarks/web_v2v.py --speech ../shared/speech [--json F] [--limit N]

Both paths use the same config (the repository's) and the same models; run them
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.config import write_config  # noqa: E402
from voiceagent.bench.realtime_client import talk  # noqa: E402
from voiceagent.bench.recordings import read_tables  # noqa: E402
from voiceagent.bench.wer import wer  # noqa: E402

TOKEN = "bench-token"


def _config(work: Path, port: int) -> Path:
    return write_config(work, web={"enabled": True, "port": port, "token": TOKEN}, mqtt={"enabled": False},
                        satellites=[])


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PAIRS = [("req_wealth_tax", "read_birch_canoe"), ("req_cards_hand", "read_child_dog"),
         ("req_forever", "read_dashwood"), ("req_go_forward", "read_expression"),
         ("read_amiable_woman", "req_cards_five_five"), ("req_cards_four_queen", "read_drop_the_two"),
         ("req_cards_ten_of_clubs", "read_ill_disposed"), ("read_amiable_himself", "req_go_somewhere")]
"""(request, interruption): different people."""


def interruption(first, second, port: int, after_s: float = 2.0) -> dict:
    a, rate = sf.read(first.path, dtype="float32")
    b, _ = sf.read(second.path, dtype="float32")
    cut = b[max(0, int((second.start_s - 0.05) * rate)):]
    gap = max(0.0, first.end_s + after_s - a.size / rate - 0.05)
    onset = a.size / rate + gap + 0.05
    audio = np.concatenate([a, np.zeros(int(gap * rate), np.float32), cut])
    run = asyncio.run(talk(f"http://127.0.0.1:{port}", TOKEN, audio, rate=rate, tail_s=5.0))
    started = run.first("input_audio_buffer.speech_started", after=onset - 0.3)
    done = run.first("response.done", after=started[0]) if started else None
    cancelled = done is not None and done[1]["response"]["status"] == "cancelled"
    last_audio = max((t for t, _ in run.audio_at if onset <= t <= (done[0] if done else onset)), default=None)
    heard = [e["transcript"] for t, e in run.of("conversation.item.input_audio_transcription.completed") if t > onset]
    result = {
        "pair": f"{first.name}+{second.name}",
        "speech_started_ms": round(1000 * (started[0] - onset)) if started else None,
        "audio_stopped_ms": round(1000 * (last_audio - onset)) if last_audio is not None and cancelled else None,
        "cancelled_ms": round(1000 * (done[0] - onset)) if cancelled else None,
        "status": done[1]["response"]["status"] if done else None,
        "wer": round(wer(second.transcript, heard[0]), 3) if heard else 1.0,
    }
    print("barge", json.dumps(result), flush=True)
    return result


def through_web(rows, all_rows, work: Path) -> tuple[list[dict], list[dict]]:
    port = _port()
    log = open(work / "serve.log", "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "voiceagent", "serve", "-c", str(_config(work, port))],
                            stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while b"web page at" not in (work / "serve.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((work / "serve.log").read_text()[-2000:])
            time.sleep(0.2)
        results = []
        rows_by_name = {r.name: r for r in all_rows}
        for row in rows:
            audio, rate = sf.read(row.path, dtype="float32")
            run = asyncio.run(talk(f"http://127.0.0.1:{port}", TOKEN, audio, rate=rate, tail_s=4.0))
            first = run.first_audio(after=row.start_s)
            done = run.of("conversation.item.input_audio_transcription.completed")
            heard = done[0][1]["transcript"] if done else ""
            results.append({
                "name": row.name, "v2v_ms": None if first is None else round(1000 * (first - row.end_s)),
                "wer": round(wer(row.transcript, heard), 3), "heard": heard,
            })
            print(f"web  {row.name:28s} {results[-1]['v2v_ms']} ms  {heard!r}", flush=True)
        interrupted = [interruption(rows_by_name[a], rows_by_name[b], port) for a, b in PAIRS
                       if a in rows_by_name and b in rows_by_name]
        return results, interrupted
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def through_run(rows, work: Path) -> list[dict]:
    results = []
    for row in rows:
        events_path = work / f"{row.name}.jsonl"
        subprocess.run([sys.executable, "-m", "voiceagent", "run", "-i", str(row.path), "-o", str(work / "out.wav"),
                        "-e", str(events_path)], check=True, capture_output=True, cwd=ROOT)
        events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
        start = next((e["t"] for e in events if e["type"] == "playback_start" and e["t"] > row.start_s), None)
        results.append({"name": row.name, "v2v_ms": None if start is None else round(1000 * (start - row.end_s))})
        print(f"run  {row.name:28s} {results[-1]['v2v_ms']} ms", flush=True)
    return results


def summary(results: list[dict]) -> dict:
    values = sorted(r["v2v_ms"] for r in results if r["v2v_ms"] is not None)
    if not values:
        return {"answered": 0, "of": len(results)}
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return {"answered": len(values), "of": len(results), "p50_ms": statistics.median(values), "p95_ms": p95,
            "max_ms": values[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speech", type=Path, default=ROOT.parent / "shared" / "speech")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--limit", type=int, default=0, help="only the first N requests")
    ap.add_argument("--interruptions-only", action="store_true", help="only the pairs, not v2v")
    args = ap.parse_args()
    all_rows = [r for r in read_tables(args.speech) if r.table == "requests.tsv"]
    rows = all_rows[: args.limit] if args.limit else all_rows
    if args.interruptions_only:
        rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        web, interrupted = through_web(rows, all_rows if not args.limit else [], work)
        run = through_run(rows, work) if rows else []
    report = {
        "web": summary(web), "run": summary(run),
        "web_wer": round(float(np.mean([r["wer"] for r in web])), 3),
        "interruptions": interrupted,
        "per_file": [{**w, "run_v2v_ms": r["v2v_ms"]} for w, r in zip(web, run)],
    }
    print(json.dumps({k: v for k, v in report.items() if k not in ("per_file", "interruptions")}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
