"""Many rooms in one process: what they cost and whether one slows another.

``voiceagent serve`` with the real default models on real people's requests
(``../shared/speech/requests.tsv``, else ``tests/data``), each room's input a WAV
file paced in real time, MQTT and the wake word off. Reports, on this machine:

- resident memory of one process with 1, 2 and 4 rooms (after answering), beside
  the sum of 1, 2 and 4 one-room processes (idle, warmed up);
- a lone speaker's voice-to-voice (true end of speech to the reply's first
  sound) with 0, 1 and 3 other rooms idle;
- two rooms talking at once (the same requests, the second room 1 s later):
  p50/p95 of each, and whether every request was answered exactly once;
- the LLM's KV cache swaps between sessions (how many, how long; in the log).

    .venv/bin/python benchmarks/rooms.py [--requests N] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cli import command, load_events  # noqa: E402
from tests.support.speech import Clip, conversation_wav  # noqa: E402

SHARED = ROOT.parent / "shared" / "speech"
GAP_S = 7.0
"""Silence after each request: the reply plays out before the next one."""
SECOND_ROOM_LAG_S = 1.0
PARTS = ["cache", "lone", "two", "separate"]


def requests(n: int) -> list[Clip]:
    folder = SHARED if (SHARED / "requests.tsv").exists() else ROOT / "tests" / "data"
    clips = []
    with open(folder / "requests.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            wav = folder / f"{row['name']}.wav"
            if not wav.exists():
                continue
            audio, rate = soundfile.read(str(wav), dtype="float32")
            if rate != Clip.RATE or audio.ndim != 1:
                continue
            clip = Clip(row["name"], audio, float(row["speech_start_s"]), float(row["speech_end_s"]), row["transcript"])
            if clip.end_s - clip.start_s < 6.0:  # short requests, as people ask an assistant
                clips.append(clip)
    return clips[:n]


def write_room(path: Path, clips: list[Clip], lead_s: float, total_s: float) -> list[tuple[float, float]]:
    parts: list = [lead_s]
    for clip in clips:
        parts += [clip, GAP_S]
    spans = conversation_wav(path, parts, rate=16000, channels=1) if clips else []
    if not clips:
        soundfile.write(str(path), np.zeros(int(total_s * 16000), np.float32), 16000, subtype="PCM_16")
    else:  # pad to the common length
        audio, _ = soundfile.read(str(path), dtype="float32")
        if audio.size < total_s * 16000:
            audio = np.concatenate([audio, np.zeros(int(total_s * 16000) - audio.size, np.float32)])
            soundfile.write(str(path), audio, 16000, subtype="PCM_16")
    return spans


def config(tmp: Path, rooms: list[dict] | None) -> Path:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section in ("asr", "llm", "tts", "turn"):
        cfg[section]["model"] = str(ROOT / cfg[section]["model"])
    cfg["mqtt"] = {"enabled": False}
    cfg["wake"] = {"model": "none"}
    cfg["serve"] = {"conversation_log": None}
    cfg["llm"]["seed"] = 1
    cfg["log_level"] = "info"
    cfg["satellites"] = rooms
    path = tmp / f"config-{len(rooms or [])}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(tmp: Path, name: str, rooms: dict[str, list[Clip]], lags: dict[str, float], extra: list[str] = ()) -> dict:
    """One ``serve`` process with these rooms; returns its events, spans and memory."""
    total = max(lags.get(r, 0.0) + sum(c.audio.size / Clip.RATE - c.start_s + GAP_S + 0.2 for c in clips)
                for r, clips in rooms.items()) + 1.5
    sats, spans = [], {}
    for room, clips in rooms.items():
        wav, out = tmp / f"{name}-{room}.wav", tmp / f"{name}-{room}-out.wav"
        spans[room] = write_room(wav, clips, 1.0 + lags.get(room, 0.0), total)
        sats.append({"name": room, "input": str(wav), "output": str(out)})
    events = tmp / f"{name}.jsonl"
    log = open(tmp / f"{name}.log", "w+b")
    proc = subprocess.Popen(command("serve", "-c", str(config(tmp, sats)), "-e", str(events)),
                            cwd=ROOT, stderr=log, stdout=subprocess.DEVNULL)
    expected = sum(len(c) for c in rooms.values())
    peak = 0.0
    deadline = time.monotonic() + total + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        peak = max(peak, rss_mb(proc.pid))
        if events.exists():
            done = [e for e in load_events(events) if e["type"] == "turn_end"]
            if len(done) >= expected:
                time.sleep(GAP_S)  # the last reply plays out
                break
    rss = rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    log.seek(0)
    text = log.read().decode(errors="replace")
    return {"events": load_events(events), "spans": spans, "rooms": rooms, "rss_mb": rss, "peak_mb": peak,
            "log": text}


def voice_to_voice(run: dict) -> dict[str, dict]:
    """Per room: each request's latency and how it ended."""
    result = {}
    for room, spans in run["spans"].items():
        mine = [e for e in run["events"] if e["session"] == room]
        ends = [e for e in mine if e["type"] == "turn_end"]
        answered = [e for e in ends if e["reason"] == "answered"]
        lat = []
        for start, end in spans:
            sound = next((e["t"] for e in mine if e["type"] == "playback_start" and e["t"] > end), None)
            following = [s for s, _ in spans if s > end]
            if sound is not None and (not following or sound < following[0]):
                lat.append(round(1000 * (sound - end)))
        result[room] = {"requests": len(spans), "answered": len(answered), "turn_ends": len(ends),
                        "v2v_ms": lat, **_stats(lat)}
    return result


def _swaps(log: str) -> str:
    found = [line.split(": ", 1)[1] for line in log.splitlines() if "LLM cache swaps" in line]
    return found[-1] if found else "none"


def _stats(values: list[int]) -> dict:
    if not values:
        return {"p50": None, "p95": None}
    s = sorted(values)
    return {"p50": statistics.median(s), "p95": s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]}


def idle_process_rss(tmp: Path, n: int) -> float:
    """``n`` one-room processes on silence, warmed up: the sum of their RSS."""
    procs = []
    for k in range(n):
        wav, out = tmp / f"alone{k}.wav", tmp / f"alone{k}-out.wav"
        soundfile.write(str(wav), np.zeros(16000 * 40, np.float32), 16000, subtype="PCM_16")
        cfg = config(tmp, [{"name": f"room{k}", "input": str(wav), "output": str(out)}])
        procs.append(subprocess.Popen(command("serve", "-c", str(cfg)), cwd=ROOT,
                                      stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
    time.sleep(25 + 5 * n)  # loaded and warm (one after another on 2 cores)
    total = sum(rss_mb(p.pid) for p in procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)
    return total


HISTORIES = {
    "kitchen": ["What should I cook tonight?", "Pasta with tomatoes and basil is quick and good.",
                "How long do I boil the pasta?", "About ten minutes, until it is soft but firm.",
                "And the sauce?", "Cook the tomatoes with garlic and olive oil for fifteen minutes."],
    "office": ["What is the capital of Australia?", "The capital of Australia is Canberra.",
               "How many people live there?", "About four hundred and sixty thousand people.",
               "Is it far from Sydney?", "It is about three hours by car from Sydney."],
}


def cache_swaps(turns: int = 6) -> dict:
    """Two rooms with histories of their own taking turns on one LLM: the first
    token with the KV cache swapped per room, and with one cache shared (each
    turn finds the other room's history there and evaluates its own again)."""
    from voiceagent.config import load_config
    from voiceagent.stages.llama import LlamaChatModel

    cfg = load_config(ROOT / "config.yaml")
    model = LlamaChatModel(cfg.resolve(cfg.llm.model), cfg.llm)
    system = {"role": "system", "content": cfg.llm.system_prompt}

    def messages(room: str, k: int) -> list[dict]:
        h = HISTORIES[room]
        past = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(h)]
        return [system, *past, {"role": "user", "content": f"Thanks. One more question, number {k}?"}]

    def first_token(chat, msgs) -> float:
        start = time.perf_counter()
        stream = chat.stream_chat(msgs)
        next(iter(stream))
        stream.close()
        return 1000 * (time.perf_counter() - start)

    result = {}
    for mode in ("swapped", "shared"):
        views = {r: model.for_session(r) if mode == "swapped" else model for r in HISTORIES}
        for room, chat in views.items():  # each room's history in the cache once (its prefill)
            chat.prefill(messages(room, 0)[:-1])
        times = []
        for k in range(turns):
            for room, chat in views.items():  # the rooms' turns alternate
                times.append(first_token(chat, messages(room, k)))
                chat.prefill(messages(room, k + 1)[:-1])  # after its own exchange, as the dialogue does
        result[mode] = {"first_token_ms": _stats([round(t) for t in times])}
    summary = model.caches.summary()
    result["swaps"] = summary
    print(f"LLM first token, two rooms taking turns: swapped caches p50/p95 "
          f"{result['swapped']['first_token_ms']}, one shared cache {result['shared']['first_token_ms']}; {summary}",
          flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="measure only these")
    parser.add_argument("--keep", type=Path, help="keep each run's events, log and audio in this folder")
    args = parser.parse_args()
    clips = requests(args.requests)
    other = clips[::-1]
    report: dict = {"requests": [c.name for c in clips]}
    if "cache" in args.only:
        report["llm_cache"] = cache_swaps()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = args.keep
        for n in (1, 2, 4) if "lone" in args.only else ():
            rooms = {"lone": clips, **{f"idle{k}": [] for k in range(1, n)}}
            run = serve(tmp, f"lone{n}", rooms, {})
            swaps = _swaps(run["log"])
            report[f"lone_speaker_{n}_rooms"] = {
                "rss_mb": round(run["rss_mb"]), "peak_mb": round(run["peak_mb"]), **voice_to_voice(run)["lone"],
            }
            print(f"{n} room(s), one speaking: RSS {run['rss_mb']:.0f} MB, v2v p50/p95 "
                  f"{report[f'lone_speaker_{n}_rooms']['p50']}/{report[f'lone_speaker_{n}_rooms']['p95']} ms, "
                  f"cache swaps {swaps}", flush=True)
        run = serve(tmp, "two", {"a": clips, "b": other}, {"b": SECOND_ROOM_LAG_S}) if "two" in args.only else None
        both = voice_to_voice(run) if run else {}
        if run:
            pooled = [v for r in both.values() for v in r["v2v_ms"]]
            report["two_at_once"] = {"rss_mb": round(run["rss_mb"]), **both, "both": _stats(pooled),
                                     "cache_swaps": _swaps(run["log"])}
            for room, r in both.items():
                print(f"two at once, room {room}: {r['answered']}/{r['requests']} answered ({r['turn_ends']} turn "
                      f"ends), v2v p50/p95 {r['p50']}/{r['p95']} ms", flush=True)
            print(f"two at once, both rooms: v2v p50/p95 {report['two_at_once']['both']}; "
                  f"{report['two_at_once']['cache_swaps']}", flush=True)
        for n in (1, 2, 4) if "separate" in args.only else ():
            total = idle_process_rss(tmp, n)
            report[f"separate_{n}_processes_rss_mb"] = round(total)
            print(f"{n} separate one-room process(es), idle: RSS {total:.0f} MB in all", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
