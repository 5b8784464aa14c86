"""End-of-speech detectors on real recordings, against their labelled ends.

Each detector is a pair of per-frame flags fed to the pipeline's own ``Endpointer``
(config.yaml ``vad:``): one while idle (onsets), one inside an utterance, as
``Listening.push`` switches from webrtcvad to ``NoiseFloor.is_voiced``. The end is
``Listening.voiced_until``; PAUSE is when the endpointer fires ``vad.speculate_ms`` later.

Conditions (requests.tsv + paused.tsv): clean (the file as is); faint (speech + 0.3 s
cut as ``bench.recordings`` does, 1.5 s of -60 dBFS pink noise around and under it);
quiet15/25 (speech 15/25 dB down); noisy (pink noise 15 dB under the speech, an ESC-50
clip at speech level in a 3 s lead); step (1 s of zeros, -47 dBFS room tone, speech
0.56 s after the step); timeline (``voiceagent bench --corpus``'s own stream, 8 s gaps).

Columns: end lag = detected end - labelled end; false ends = files with >= 200 / 250 ms
of endpointer silence inside the speech outside labelled pauses (+-0.1 s); false onsets
= onsets on synthetic noise (by kind; a fresh detector's first 0.3 s not counted);
found = files whose speech opened an utterance (share of it inside one); open = no
PAUSE before the recording ran out; CPU = ms of one core per 20 ms frame.

TEN VAD (``ten-vad``) runs in its own venv (``--ten-python``); its library needs
libc++.so.1 (``--ten-libs``). Run: ``.venv/bin/python benchmarks/vad_end.py --speech DIR [--json PATH]``
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
CONTEXT_S = 0.3  # speech cut with this much of its own room, as bench.recordings does
PAD_S = 1.5
NOISE_DB = -60.0
ROOM_TONE_DB = -47.0
STEP_S, STEP_TO_SPEECH_S = 1.0, 0.56
NOISY_SNR_DB, NOISY_LEAD_S, ESC_S = 15.0, 3.0, 1.2
FALSE_END_S, PAUSE_SLACK_S = (0.2, 0.25), 0.1  # 250 ms: turn.complete_silence_ms
WARMUP_S = 0.3
CONDITIONS = ("clean", "faint", "quiet15", "quiet25", "noisy", "step", "timeline")


@dataclass
class Signal:
    name: str
    audio: np.ndarray
    start: float
    end: float
    pauses: tuple[tuple[float, float], ...]
    noise_only: tuple[tuple[float, float, str], ...]  # synthetic stretches: an onset there is false


def build(rec, cond: str, rng: np.random.Generator, esc: list[np.ndarray]) -> Signal:
    from voiceagent.audio.convert import rms_db
    from voiceagent.audio.streams import read_wav
    from voiceagent.bench.corpus import pink_noise

    audio = read_wav(rec.path, RATE)
    if cond == "clean":
        return Signal(rec.name, audio, rec.start_s, rec.end_s, rec.pauses_s, ())
    a, b = max(0, int((rec.start_s - CONTEXT_S) * RATE)), min(audio.size, int((rec.end_s + CONTEXT_S) * RATE))
    clip = audio[a:b].copy()
    ramp = np.linspace(0.0, 1.0, int(0.02 * RATE), dtype=np.float32)  # no click at the cut
    clip[: ramp.size] *= ramp
    clip[-ramp.size:] *= ramp[::-1]
    speech_db = rms_db(audio[int(rec.start_s * RATE): int(rec.end_s * RATE)])
    clip *= 10 ** ({"quiet15": -15, "quiet25": -25}.get(cond, 0) / 20)
    lead = {"noisy": NOISY_LEAD_S, "step": STEP_S + STEP_TO_SPEECH_S - (rec.start_s - a / RATE)}.get(cond, PAD_S)
    n_lead = int(lead * RATE)
    out = np.zeros(n_lead + clip.size + int(PAD_S * RATE), np.float32)
    out[n_lead: n_lead + clip.size] += clip
    if cond == "step":  # zeros until the room tone starts: the floor learns -180 dB first
        k = int(STEP_S * RATE)
        out[k:] += pink_noise(out.size - k, ROOM_TONE_DB, rng)
    else:
        out += pink_noise(out.size, speech_db - NOISY_SNR_DB if cond == "noisy" else NOISE_DB, rng)
    if cond == "noisy":  # a real non-speech sound between utterances, as loud as the speech
        e = esc[rng.integers(len(esc))]
        k = int(0.3 * RATE)
        out[k: k + e.size] += e * 10 ** ((speech_db - rms_db(e)) / 20)
    shift, clip_end = lead - a / RATE, lead + clip.size / RATE + 0.04
    # A fresh webrtcvad (or TEN) calls its first frames of noise speech: once per process, not counted.
    lead_kind = {"step": "step", "noisy": "esc"}.get(cond, "noise")
    noise = ((WARMUP_S, lead - 0.04, lead_kind), (clip_end, out.size / RATE, "noise"))
    return Signal(
        rec.name, np.clip(out, -1, 1), rec.start_s + shift, rec.end_s + shift,
        tuple((p + shift, q + shift) for p, q in rec.pauses_s), noise,
    )


def timeline(folder: Path, recs, gap_s: float) -> tuple[Signal, list[Signal]]:
    """``voiceagent bench --corpus``'s own timeline (one stream, -60 dBFS gaps), and a label per recording."""
    from voiceagent.bench.recordings import CONTEXT_S as CUT, load_recordings

    corpus = load_recordings(folder, RATE, gap_s)
    whole = Signal("timeline", corpus.audio, 0.0, corpus.seconds, (), ())
    labels, prev_end = [], WARMUP_S
    for u, rec in zip(corpus.utterances, recs):
        start, end = u.start / RATE, u.end / RATE
        clip_start = start - min(CUT, rec.start_s)
        labels.append(Signal(rec.name, whole.audio, start, end, tuple((p / RATE, q / RATE) for p, q in u.pauses),
                             ((prev_end, clip_start - 0.04, "noise"),)))
        prev_end = end + CUT + 0.04
    return whole, labels


def loudest(audio: np.ndarray, seconds: float) -> np.ndarray:
    """The loudest stretch of an ESC-50 clip (they are mostly silence between barks)."""
    n, c = int(seconds * RATE), np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    k = int(np.argmax(c[n:] - c[:-n]))
    return audio[k: k + n]


def hysteresis(p: np.ndarray, on: float, off: float) -> np.ndarray:
    """Speech from p >= on until p < off (one flag of state)."""
    out, state = np.zeros(p.size, bool), False
    for i, x in enumerate(p):
        state = x >= on if not state else x >= off
        out[i] = state
    return out


def features(sig: Signal, cfg, cost: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Per-frame webrtcvad, level, noise-floor verdict and Silero probability, timed."""
    from voiceagent.audio.convert import rms_db
    from voiceagent.rules.noise_floor import NoiseFloor
    from voiceagent.stages.vad import SileroVad, WebRtcVad

    vad = WebRtcVad(cfg.vad.aggressiveness, RATE, cfg.vad.frame_ms)
    floor, silero = NoiseFloor(cfg.vad.end_margin_db), SileroVad(RATE)
    n = sig.audio.size // vad.frame_samples
    frames = sig.audio[: n * vad.frame_samples].reshape(n, -1)
    out = {k: np.zeros(n, bool) for k in ("webrtc", "floor")} | {"silero": np.zeros(n, np.float32)}
    t = np.zeros(4)
    for i, f in enumerate(frames):
        t[0] = time.perf_counter()
        out["webrtc"][i] = v = vad.is_speech(f)
        t[1] = time.perf_counter()
        out["floor"][i] = floor.is_voiced(v, rms_db(f))  # called on every frame: it tracks the floor
        t[2] = time.perf_counter()
        out["silero"][i] = silero.probability(f)
        t[3] = time.perf_counter()
        for k, dt in zip(("webrtc", "floor", "silero"), np.diff(t)):
            cost.setdefault(k, [0.0, 0])[0] += dt
    for k in ("webrtc", "floor", "silero"):
        cost[k][1] += n
    return out


def ten_probabilities(signals: dict[str, np.ndarray], python: str, libs: str, hop: int) -> tuple[dict, float]:
    """TEN VAD in its own venv: a probability per hop, and ms per hop."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **{k: (np.clip(v, -1, 1) * 32767).astype(np.int16) for k, v in signals.items()})
        env = dict(os.environ, LD_LIBRARY_PATH=":".join(filter(None, [libs, os.environ.get("LD_LIBRARY_PATH")])))
        run = subprocess.run([python, __file__, "--ten-worker", str(src), str(dst), str(hop)],
                             env=env, capture_output=True, text=True, check=False)
        if run.returncode:
            lines = run.stderr.strip().splitlines() or [f"exit {run.returncode}"]
            raise RuntimeError(next((x for x in lines if x.startswith("OSError")), lines[-1]))  # not __del__'s
        data = dict(np.load(dst))
    return data, float(data.pop("__ms_per_hop"))


def ten_worker(src: str, dst: str, hop: int) -> None:
    from ten_vad import TenVad  # only in the throwaway venv

    out, spent, frames = {}, 0.0, 0
    for key, audio in np.load(src).items():
        vad, n = TenVad(hop_size=hop, threshold=0.5), audio.size // hop  # a fresh state per recording
        p = np.zeros(n, np.float32)
        t0 = time.perf_counter()
        for i in range(n):
            p[i] = vad.process(audio[i * hop: (i + 1) * hop])[0]
        spent, frames = spent + time.perf_counter() - t0, frames + n
        out[key] = p
    np.savez(dst, __ms_per_hop=np.float64(1000 * spent / max(frames, 1)), **out)


def endpoint(settings, onset: np.ndarray, inside: np.ndarray, frame_s: float):
    """Run the Endpointer; utterances as [onset_t, voiced_until, pause_t] and silence episodes."""
    from voiceagent.rules.endpointer import Decision, Endpointer

    ep, utts, episodes, cur = Endpointer(settings), [], {}, None
    for i in range(onset.size):
        d = ep.push(bool(inside[i] if ep.in_utterance else onset[i]))
        if d is Decision.START:
            cur = [ep.onset_index * frame_s, None, None]
            utts.append(cur)
        elif d is Decision.PAUSE:
            cur[2] = (i + 1) * frame_s
        elif d is Decision.RESUME:
            cur[2] = None
        if ep.in_utterance or d is Decision.END:
            cur[1] = (ep.last_voiced_index + 1) * frame_s
            if i > ep.last_voiced_index:  # silence so far, counted as the endpointer counts it
                episodes[ep.last_voiced_index] = i
    return utts, [((a + 1) * frame_s, (b + 1) * frame_s) for a, b in episodes.items()]


def score(sig: Signal, utts, episodes) -> dict:
    hit = [u for u in utts if u[0] < sig.end and u[1] > sig.start]
    spans = [(max(u[0], sig.start), min(u[1], sig.end)) for u in hit]
    covered = sum(max(0.0, b - a) for a, b in spans) / (sig.end - sig.start)  # utterances never overlap
    gap = 0.0
    for a, b in episodes:  # silence inside the speech, less the labelled pauses
        pieces = [(max(a, sig.start), min(b, sig.end))]
        for p, q in sig.pauses:
            p, q = p - PAUSE_SLACK_S, q + PAUSE_SLACK_S
            pieces = [s for x, y in pieces for s in ((x, min(y, p)), (max(x, q), y)) if s[1] > s[0]]
        gap = max([gap] + [y - x for x, y in pieces])
    last = max(hit, key=lambda u: u[1]) if hit else None
    return {
        "name": sig.name, "found": bool(hit), "covered": covered, "longest_gap_ms": round(1000 * gap),
        "false_onsets": [k for u in utts for p, q, k in sig.noise_only if p <= u[0] < q],
        "end_lag_ms": None if last is None else 1000 * (last[1] - sig.end),
        "pause_lag_ms": None if last is None or last[2] is None else 1000 * (last[2] - sig.end),
        "open": last is not None and last[2] is None,  # still voiced when the recording ran out
    }


def pct(values: list, q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summary(rows: list[dict]) -> dict:
    lags = [r["end_lag_ms"] for r in rows if r["end_lag_ms"] is not None]
    pauses = [r["pause_lag_ms"] for r in rows if r["pause_lag_ms"] is not None]
    return {
        "n": len(rows), "found": sum(r["found"] for r in rows),
        "covered": float(np.mean([r["covered"] for r in rows])),
        "end_lag_ms": {"p50": pct(lags, 50), "p90": pct(lags, 90), "max": max(lags, default=None),
                       "min": min(lags, default=None)},
        "pause_lag_ms": {"p50": pct(pauses, 50), "p90": pct(pauses, 90), "max": max(pauses, default=None)},
        "false_ends": {f"{1000 * t:.0f}": [r["name"] for r in rows if r["longest_gap_ms"] >= 1000 * t - 1]
                       for t in FALSE_END_S},
        "false_onsets": {k: sum(r["false_onsets"].count(k) for r in rows) for k in ("noise", "esc", "step")},
        "open": [r["name"] for r in rows if r["open"]],
    }


def detectors(f: dict[str, np.ndarray], on: float, off: float) -> dict[str, tuple]:
    """name -> (onset flags, inside flags, components it runs per frame)."""
    w, fl, s = f["webrtc"], f["floor"], hysteresis(f["silero"], on, off)
    tag = f"{on:g}/{off:g}"
    out = {
        "webrtcvad alone": (w, w, ("webrtc",)),
        "webrtcvad + floor (now)": (w, fl, ("webrtc", "floor")),
        f"silero {tag}": (s, s, ("silero",)),
        f"webrtcvad on; floor AND silero {tag} inside": (w, fl & s, ("webrtc", "floor", "silero")),
        f"webrtcvad AND silero on; silero {tag} inside": (w & s, s, ("webrtc", "silero")),
        f"webrtcvad AND silero on; floor AND silero {tag} inside": (w & s, fl & s, ("webrtc", "floor", "silero")),
    }
    if "ten" in f:
        t = hysteresis(f["ten"], on, off)
        out[f"ten-vad {tag}"] = (t, t, ("ten",))
        out[f"webrtcvad AND ten on; ten {tag} inside"] = (w & t, t, ("webrtc", "ten"))
    return out


def fmt(v, unit: str = "") -> str:
    return "-" if v is None else f"{v:.0f}{unit}"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}. Endpointer: {result['endpointer']}.", ""]
    if result.get("ten_error"):
        lines += [f"TEN VAD could not run: {result['ten_error']}", ""]
    lines += ["| condition | detector | end lag p50 / p90 / max (min) ms | PAUSE fires p50 / p90 ms | false ends "
              ">=200 / >=250 ms | false onsets | found (speech covered) | open | CPU ms/frame |",
              "|---|---|---|---|---|---|---|---|---|"]
    for cond, by_det in result["conditions"].items():
        for det, s in by_det.items():
            e, p, n = s["end_lag_ms"], s["pause_lag_ms"], s["n"]
            onsets = ", ".join(f"{v} {k}" for k, v in s["false_onsets"].items() if v) or "0"
            lines.append(
                f"| {cond} | {det} | {fmt(e['p50'])} / {fmt(e['p90'])} / {fmt(e['max'])} ({fmt(e['min'])}) | "
                f"{fmt(p['p50'])} / {fmt(p['p90'])} | {' / '.join(str(len(v)) for v in s['false_ends'].values())} | "
                f"{'-' if cond == 'clean' else onsets} | {s['found']}/{n} ({100 * s['covered']:.0f}%) | "
                f"{len(s['open'])} | {result['cpu_ms'][det]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speech", type=Path, default=Path("/work/shared/speech"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--thresholds", default="0.5/0.35,0.5/0.2", help="probability on/off pairs, comma-separated")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--only", default="", help="regular expression: run only the detectors it matches")
    ap.add_argument("--ten-python", default="/tmp/tenvad/bin/python")
    ap.add_argument("--ten-libs", default="/tmp/libcxx/root/usr/lib/llvm-14/lib")
    ap.add_argument("--ten-hop", type=int, default=160, help="TEN's hop (160 or 256 are its own; 20 ms frames)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ten-worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ten_worker:
        ten_worker(args.ten_worker[0], args.ten_worker[1], int(args.ten_worker[2]))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    sys.path.insert(0, str(ROOT))
    from voiceagent.audio.streams import read_wav
    from voiceagent.bench.recordings import read_tables
    from voiceagent.bench.report import machine
    from voiceagent.config import load_config

    cfg = load_config(args.config)
    settings, frame_s = cfg.endpointer_settings(), cfg.vad.frame_ms / 1000
    esc = [loudest(read_wav(args.speech / f"{n}.wav", RATE), ESC_S) for n in ("n_dog_bark", "n_car_horn")]
    recs = read_tables(args.speech)
    conditions = args.conditions.split(",")
    cases: dict[str, tuple[str, Signal, list[Signal]]] = {}  # key -> condition, audio, labels scored on it
    for c in conditions:
        if c == "timeline":
            whole, labels = timeline(args.speech, recs, 8.0)
            cases[c] = (c, whole, labels)
        else:
            for i, r in enumerate(recs):  # noise seeded per case: the same whatever else runs
                sig = build(r, c, np.random.default_rng([args.seed, CONDITIONS.index(c), i]), esc)
                cases[f"{c}|{r.name}"] = (c, sig, [sig])
    cost: dict[str, list[float]] = {}
    feats = {key: features(sig, cfg, cost) for key, (_, sig, _) in cases.items()}
    logger.info("webrtcvad, floor and silero on %d signals done", len(cases))
    result = {"machine": machine(), "endpointer": str(settings), "conditions": {}, "ten_error": None}
    cpu = {k: 1000 * t / max(n, 1) for k, (t, n) in cost.items()}
    if Path(args.ten_python).exists():
        try:
            probs, ms = ten_probabilities({k: s.audio for k, (_, s, _) in cases.items()}, args.ten_python,
                                          args.ten_libs, args.ten_hop)
            per_frame = int(RATE * frame_s) // args.ten_hop  # the last hop's probability stands for the frame
            cpu["ten"] = ms * per_frame
            for key, f in feats.items():
                f["ten"] = probs[key][per_frame - 1:: per_frame][: f["webrtc"].size]
        except (RuntimeError, OSError) as err:  # reported in the table, the rest still runs
            result["ten_error"] = str(err)
    else:
        result["ten_error"] = f"no {args.ten_python} (python -m venv it; pip install ten-vad numpy)"
    result["cpu_ms"] = {}
    rows: dict[str, dict[str, list[dict]]] = {c: {} for c in conditions}
    only = re.compile(args.only)
    for key, (cond, sig, labels) in cases.items():
        done = set()  # the threshold-free detectors once per case
        for pair in args.thresholds.split(","):
            on, off = (float(x) for x in pair.split("/"))
            for det, (onset, inside, parts) in detectors(feats[key], on, off).items():
                if det in done or not only.search(det):
                    continue
                done.add(det)
                result["cpu_ms"][det] = sum(cpu[p] for p in parts)
                utts, episodes = endpoint(settings, onset, inside, frame_s)
                rows[cond].setdefault(det, []).extend(score(label, utts, episodes) for label in labels)
    for cond, by_det in rows.items():
        result["conditions"][cond] = {d: summary(v) | {"files": v} for d, v in by_det.items()}
    result["cpu_components_ms"] = cpu
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
