"""The benchmark's figures as one JSON-ready dict, and the Markdown summary rendered from it.

The Markdown, the JSON and the plot are all made from the same dict, so they
cannot disagree.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Sequence

from voiceagent.bench.baseline import TRAILING_SILENCE_MS, BaselineTurn
from voiceagent.bench.bargein import Interruption
from voiceagent.bench.corpus import Corpus
from voiceagent.bench.measure import (
    STAGES,
    FalseAlarms,
    UtteranceResult,
    corpus_wer,
    premature_rates,
)
from voiceagent.bench.stats import Dist
from voiceagent.gpu import cuda_available

TARGETS: tuple[tuple[str, str, float, str], ...] = (
    # (name, figure path, bound, "max" or "min")
    ("voice-to-voice p50 ≤ 500 ms", "v2v_ms.p50", 500.0, "max"),
    ("voice-to-voice p95 ≤ 800 ms", "v2v_ms.p95", 800.0, "max"),
    ("premature end of turn ≤ 5% (utterances with a pause)", "premature_eot_rate", 0.05, "max"),
    ("≥ 2x faster than the baseline (p50)", "speedup_p50", 2.0, "min"),
)


@dataclass(frozen=True)
class BenchResults:
    """Everything measured in one ``voiceagent bench``."""

    corpus: Corpus
    utterances: Sequence[UtteranceResult]
    wall_s: float
    """Wall seconds of the main real-time run."""
    cpu_s: float
    """CPU seconds of this process during it."""
    peak_rss_mb: float
    """Peak RSS of this process after the pipeline's runs (before the baseline's model)."""
    baseline: Sequence[BaselineTurn]
    false_alarms: FalseAlarms
    """From the main run and the replies nobody talked over in the barge-in run."""
    paused_s: float
    """Seconds replies were paused by suspicions that were then rejected (both runs)."""
    interruptions: Sequence[Interruption] = ()
    barge_in_offset_s: float | None = None
    """Seconds from a question's end to its interruption (None: no barge-in phase)."""
    peer: str | None = None
    peer_utterances: Sequence[UtteranceResult] | None = None
    peer_error: str | None = None
    events: dict[str, list[dict[str, object]]] | None = None
    """The runs' events by run name, as in the JSONL log (kept in the JSON to look into)."""


def machine() -> dict[str, Any]:
    """CPU model, core count and GPU (or "none") of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # not Linux: platform's answer stands
        pass
    gpu = "none"
    if any(cuda_available(lib) for lib in ("ctranslate2", "llama_cpp", "onnxruntime")):
        gpu = "CUDA"
        if smi := shutil.which("nvidia-smi"):
            names = subprocess.run(
                [smi, "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True, text=True, check=False,
            ).stdout.strip()
            gpu = ", ".join(names.splitlines()) or gpu
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b is not None and b > 0 else None


def _get(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def summarize(r: BenchResults, machine_info: dict[str, Any]) -> dict[str, Any]:
    """The figures: one key per metric, {p50, p95, n} for distributions."""
    utts = list(r.utterances)
    v2v = Dist.of(u.v2v_ms for u in utts)
    base = Dist.of(b.v2v_ms for b in r.baseline)
    premature, premature_all = premature_rates(utts)
    cores = machine_info.get("cores") or 1
    reply_min = r.false_alarms.reply_s / 60
    figures: dict[str, Any] = {
        "turns": len(utts),
        "seed": r.corpus.seed,
        "gap_s": r.corpus.gap_s,
        "machine": machine_info,
        "v2v_ms": v2v.to_dict(),
        "baseline_v2v_ms": base.to_dict(),
    }
    for key, _kind in STAGES:
        figures[key] = Dist.of(getattr(u, key) for u in utts).to_dict()
    wer = corpus_wer(utts)
    figures |= {
        "premature_eot_rate": None if premature is None else round(premature, 4),
        "premature_eot_rate_all": None if premature_all is None else round(premature_all, 4),
        "utterances_with_pause": sum(u.has_pause for u in utts),
        "wer": None if wer is None else round(wer, 4),
        "answered": sum(u.answered for u in utts),
        "replies_overlapping_next": sum(u.overlaps_next for u in utts),
        "cpu_percent": round(100 * r.cpu_s / r.wall_s, 1) if r.wall_s else None,
        "cpu_percent_all_cores": round(100 * r.cpu_s / r.wall_s / cores, 1) if r.wall_s else None,
        "run_wall_s": round(r.wall_s, 1),
        "run_cpu_s": round(r.cpu_s, 1),
        "peak_rss_mb": round(r.peak_rss_mb, 1),
        "speedup_p50": _ratio(base.p50, v2v.p50),
        "speedup_p95": _ratio(base.p95, v2v.p95),
        "barge_in_stop_ms": Dist.of(i.stop_ms for i in r.interruptions).to_dict(),
        "false_barge_ins_per_min": round(r.false_alarms.barge_ins / reply_min, 3) if reply_min else None,
        "false_barge_ins": r.false_alarms.barge_ins,
        "reply_audio_min": round(reply_min, 2),
        "paused_by_rejected_s": round(r.paused_s, 2),
        "per_turn": [u.to_dict() for u in utts],
        "baseline": _baseline(r.baseline),
        "barge_in": {
            "echo": "40:-6",
            "offset_s": None if r.barge_in_offset_s is None else round(r.barge_in_offset_s, 3),
            "interruptions": len(r.interruptions),
            "stopped": sum(i.stop_ms is not None for i in r.interruptions),
            "nothing_playing": sum(not i.reply_playing for i in r.interruptions),
            "missed": sum(i.reply_playing and not i.barge_in for i in r.interruptions),
            "resumed": sum(i.resumed for i in r.interruptions),
            "answered": sum(i.answered for i in r.interruptions),
            "per_interruption": [i.to_dict() for i in r.interruptions],
        },
        "corpus": r.corpus.describe(),
    }
    if r.peer is not None:
        figures["peer"] = {"name": r.peer, "error": r.peer_error}
        if r.peer_utterances is not None:
            peer_v2v = Dist.of(u.v2v_ms for u in r.peer_utterances)
            peer_premature, peer_all = premature_rates(r.peer_utterances)
            figures["peer_v2v_ms"] = peer_v2v.to_dict()
            figures["peer_premature_eot_rate"] = peer_premature
            figures["peer_premature_eot_rate_all"] = peer_all
            figures["peer_replies_overlapping_next"] = sum(u.overlaps_next for u in r.peer_utterances)
            figures["peer"]["per_turn"] = [
                {"index": u.index, "v2v_ms": u.to_dict()["v2v_ms"], "premature": u.premature}
                for u in r.peer_utterances
            ]
    figures["events"] = r.events or {}
    figures["targets"] = [
        {"target": name, "figure": path, "value": _get(figures, path),
         "pass": _passes(_get(figures, path), bound, kind)}
        for name, path, bound, kind in TARGETS
    ]
    return figures


def _passes(value: float | None, bound: float, kind: str) -> bool | None:
    if value is None:
        return None
    return value <= bound if kind == "max" else value >= bound


def _baseline(turns: Sequence[BaselineTurn]) -> dict[str, Any]:
    words = sum(t.ref_words for t in turns)
    return {
        "trailing_silence_ms": TRAILING_SILENCE_MS,
        "endpoint_ms": Dist.of(t.endpoint_ms for t in turns).to_dict(),
        "asr_ms": Dist.of(t.asr_ms for t in turns if t.endpoint_ms is not None).to_dict(),
        "llm_ms": Dist.of(t.llm_ms for t in turns if t.reply).to_dict(),
        "tts_ms": Dist.of(t.tts_ms for t in turns if t.reply).to_dict(),
        "premature": sum(t.premature for t in turns),
        "answered": sum(t.v2v_ms is not None for t in turns),
        "wer": round(sum(t.word_errors for t in turns) / words, 4) if words else None,
        "per_turn": [t.to_dict() for t in turns],
    }


# -- Markdown -----------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "**FAIL**")


def markdown(f: dict[str, Any]) -> str:
    """The summary: headline table with targets, per-utterance table, method notes."""
    m = f["machine"]
    bi, bl = f["barge_in"], f["baseline"]
    with_pause = f["utterances_with_pause"]
    lines = [
        "# voiceagent bench",
        "",
        f"{f['turns']} spoken questions (espeak-ng, seed {f['seed']}, {f['gap_s']:g} s for each "
        f"reply, {with_pause} with a mid-sentence pause), played in real time. "
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}"
        + (f", load average {m['load_avg_1m_before']} before the run and "
           f"{m['load_avg_1m_after']} after it." if "load_avg_1m_before" in m else "."),
        "",
        "## Targets",
        "",
        "| target | value | |",
        "|---|---|---|",
    ]
    for t in f["targets"]:
        value = t["value"]
        shown = (
            "-" if value is None
            else _pct(value) if "premature" in t["figure"]
            else f"{value:.2f}x" if "speedup" in t["figure"]
            else f"{value:.0f} ms"
        )
        lines.append(f"| {t['target']} | {shown} | {_mark(t['pass'])} |")
    lines += [
        "",
        "## Latency (ms after the true end of speech)",
        "",
        "| stage | p50 | p95 | n |",
        "|---|---|---|---|",
    ]
    rows = [
        ("endpoint (end_of_turn)", f["endpoint_ms"]),
        ("ASR final", f["asr_final_ms"]),
        ("LLM first token", f["llm_first_token_ms"]),
        ("first clause", f["first_clause_ms"]),
        ("TTS first audio", f["tts_first_audio_ms"]),
        ("**voice-to-voice** (first reply sample heard)", f["v2v_ms"]),
        (f"baseline voice-to-voice (sequential, {bl['trailing_silence_ms']} ms silence)",
         f["baseline_v2v_ms"]),
        ("  baseline endpoint", bl["endpoint_ms"]),
        ("  baseline ASR (whole utterance)", bl["asr_ms"]),
        ("  baseline LLM (whole reply)", bl["llm_ms"]),
        ("  baseline TTS (whole reply)", bl["tts_ms"]),
    ]
    if "peer_v2v_ms" in f:
        rows.append((f"{f['peer']['name']} voice-to-voice", f["peer_v2v_ms"]))
    rows.append(("barge-in stop (onset to silent, echo 40:-6)", f["barge_in_stop_ms"]))
    for label, d in rows:
        lines.append(f"| {label} | {_ms(d['p50'])} | {_ms(d['p95'])} | {d['n']} |")
    lines += [
        "",
        "## Turn-taking, accuracy, cost",
        "",
        "| figure | value |",
        "|---|---|",
        f"| speedup over the baseline, p50 / p95 | {_x(f['speedup_p50'])} / {_x(f['speedup_p95'])} |",
        f"| premature end of turn, utterances with a pause | {_pct(f['premature_eot_rate'])} "
        f"(of {with_pause}) |",
        f"| premature end of turn, all utterances | {_pct(f['premature_eot_rate_all'])} |",
        f"| answered / replies overlapping the next question | {f['answered']} of {f['turns']} / "
        f"{f['replies_overlapping_next']} |",
        f"| WER (pipeline / baseline) | {_pct(f['wer'])} / {_pct(bl['wer'])} |",
        f"| baseline premature cuts / answered | {bl['premature']} / {bl['answered']} |",
        f"| barge-in: interruptions stopped / resumed before the end / missed / nothing playing "
        f"| {bi['stopped']} / {bi['resumed']} / {bi['missed']} / {bi['nothing_playing']} "
        f"(of {bi['interruptions']}, "
        f"{_s(bi['offset_s'])} after the question) |",
        f"| false barge-ins per minute of reply nobody talked over | "
        f"{_num(f['false_barge_ins_per_min'])} ({f['false_barge_ins']} in "
        f"{f['reply_audio_min']:.1f} min) |",
        f"| replies paused by rejected suspicions | {f['paused_by_rejected_s']:.2f} s |",
        f"| CPU during the run | {_num(f['cpu_percent'])}% of one core "
        f"({_num(f['cpu_percent_all_cores'])}% of {m['cores']}); {f['run_cpu_s']} s over "
        f"{f['run_wall_s']} s |",
        f"| peak RSS | {f['peak_rss_mb']:.0f} MB |",
    ]
    if "peer" in f:
        peer = f["peer"]
        if peer.get("error"):
            lines.append(f"| {peer['name']} | could not run: {peer['error']} |")
        else:
            lines.append(
                f"| {peer['name']}: premature replies, with a pause / all; answered; replies "
                f"overlapping the next question | {_pct(f['peer_premature_eot_rate'])} / "
                f"{_pct(f['peer_premature_eot_rate_all'])}; {f['peer_v2v_ms']['n']} of "
                f"{f['turns']}; {f['peer_replies_overlapping_next']} |"
            )
    lines += ["", "## Per utterance (ms after the true end of speech)", ""]
    lines += _per_turn_table(f)
    lines += ["", "## Method", "", *NOTES]
    return "\n".join(lines) + "\n"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def _per_turn_table(f: dict[str, Any]) -> list[str]:
    base = {b["index"]: b for b in f["baseline"]["per_turn"]}
    peer = {p["index"]: p for p in f.get("peer", {}).get("per_turn", [])}
    head = "| # | pause | endpoint | ASR | 1st token | 1st clause | TTS | v2v | baseline | "
    head += "peer | " if peer else ""
    head += "flags | turns | transcript |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for u in f["per_turn"]:
        i = u["index"]
        pause = f"{1000 * sum(b - a for a, b in f['corpus']['utterances'][i]['pauses_s']):.0f}"
        flags = ", ".join(
            name for name, on in (
                ("PREMATURE", u["premature"]), ("unanswered", u["v2v_ms"] is None),
                ("overlaps next", u["overlaps_next"]), ("playing at end", u["playing_at_end"]),
            ) if on
        )
        row = [
            str(i), pause if u["has_pause"] else "", _ms(u["endpoint_ms"]), _ms(u["asr_final_ms"]),
            _ms(u["llm_first_token_ms"]), _ms(u["first_clause_ms"]), _ms(u["tts_first_audio_ms"]),
            _ms(u["v2v_ms"]), _ms(base[i]["v2v_ms"]) if i in base else "-",
        ]
        if peer:
            row.append(_ms(peer[i]["v2v_ms"]) if i in peer else "-")
        wer = f" (WER {100 * u['wer']:.0f}%)" if u["wer"] else ""
        row += [flags, "; ".join(u["outcomes"]), f"{u['transcript'].replace('|', '/')}{wer}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


NOTES = [
    "- Every latency is measured from the *true* end of speech, read off the clean espeak "
    "signal (last sample above -40 dBFS) before noise was added. Voice-to-voice is the first "
    "output sample above 0.01 (-40 dBFS) after it, on the output aligned sample for sample with "
    "the input (it includes one 20 ms output block, as a sound card would). The stage columns "
    "are the events of the turn whose reply was played; negative values are speculative work "
    "done before the end of turn was confirmed.",
    "- p50/p95 are numpy percentiles with linear interpolation; with few turns the p95 is "
    "close to the maximum.",
    "- Premature end of turn: an end_of_turn or a reply started between the true start and "
    "end of speech, i.e. in a mid-sentence pause (300-700 ms SSML breaks).",
    "- Baseline: webrtcvad with a fixed 800 ms trailing silence (longer than the corpus's "
    "longest pause, so it does not cut them), then faster-whisper's standard transcribe() on "
    "the whole utterance (own model, configured beam size), then the whole LLM reply (system "
    "prompt and transcript, no history; cut after llm.max_sentences sentences as the pipeline "
    "does), then the whole reply synthesized. Its voice-to-voice is the endpoint delay plus "
    "the measured compute times, run one utterance after another with nothing else running; "
    "it has no 20 ms output block.",
    "- Barge-in: a second real-time run with a simulated room echo (40 ms, -6 dB); each "
    "question is interrupted at a fixed time after its end, chosen from the first run's "
    "median voice-to-voice plus 1.2 s. Stop latency: interruption onset to the output "
    "staying below -40 dBFS for 200 ms. False barge-ins: barge_in events on replies no user "
    "speech overlapped, from the first run and the interrupting questions' own replies.",
    "- CPU: this process's user+system CPU seconds (all threads, no child processes) over "
    "the wall time of the main run. Peak RSS: getrusage ru_maxrss, models included.",
]
