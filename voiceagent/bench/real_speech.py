"""``voiceagent bench --corpus DIR``: the pipeline on recordings of real people.

espeak-ng's prosody says nothing about how people pause, so this runs a folder
of real recordings (``bench.recordings``) in real time, as ``voiceagent run``
would, and reports what a person would notice: words lost or misheard (WER,
numbers spelled out), replies that began before they had finished, one
utterance answered as several turns, reply audio heard while they spoke, how
long the assistant waited after they stopped, and voice-to-voice latency.

Beside the pipeline's own turn-taking it shows the detectors it combines,
each alone on the same audio (``bench.detectors``, as LiveKit's eot-bench
compares them), and optionally a peer (pipecat) on the same timeline.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any, Sequence, TextIO

from voiceagent.bench.corpus import Corpus
from voiceagent.bench.detector_sweep import figures, score, silence_fire_s, smart_turn_fire_s
from voiceagent.bench.detectors import LabeledClip, trace_all
from voiceagent.bench.measure import UtteranceResult, measure_utterances
from voiceagent.bench.recordings import load_recordings
from voiceagent.bench.report import machine
from voiceagent.bench.runner import run_realtime
from voiceagent.bench.stats import Dist
from voiceagent.config import Config
from voiceagent.errors import VoiceAgentError
from voiceagent.stages.loading import load_models
from voiceagent.stages.protocols import EndOfTurnModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealOptions:
    corpus_dir: Path
    json_path: Path | None = None
    peer: str | None = None
    gap_s: float = 8.0
    detectors: bool = True
    """Also run the end-of-turn detectors alone (about a minute on 2 cores)."""


def group_figures(results: Sequence[UtteranceResult]) -> dict[str, Any]:
    """The overall figures of some utterances."""
    if not results:
        return {"n": 0}
    ref = sum(u.ref_words for u in results)
    waits = [u.endpoint_ms for u in results if u.endpoint_ms is not None]
    return {
        "n": len(results),
        "wer": round(sum(u.word_errors for u in results) / max(ref, 1), 4),
        "wer_max": round(max(u.wer for u in results), 4),
        "premature": sum(u.premature for u in results),
        "split": sum(u.split for u in results),
        "talked_over_s": round(sum(u.talked_over_s for u in results), 2),
        "talked_over_max_s": round(max(u.talked_over_s for u in results), 2),
        "mean_wait_ms": round(mean(waits), 1) if waits else None,
        "answered": sum(u.answered for u in results),
        "v2v_ms": Dist.of(u.v2v_ms for u in results).to_dict(),
    }


def summarize_real(
    corpus: Corpus, results: Sequence[UtteranceResult], detectors: dict[str, Any] | None,
    peer: tuple[str, Sequence[UtteranceResult] | None, str | None] | None, extra: dict[str, Any],
) -> dict[str, Any]:
    paused = [u for u in results if u.has_pause]
    requests = [u for u in results if not u.has_pause]
    figures: dict[str, Any] = {
        "corpus": extra.pop("corpus_dir"),
        "all": group_figures(results),
        "requests": group_figures(requests),
        "paused": group_figures(paused),
        "per_utterance": [u.to_dict() | {"name": corpus.utterances[u.index].voice} for u in results],
        "detectors": detectors,
    } | extra
    if peer is not None:
        name, peer_results, error = peer
        figures["peer"] = {"name": name, "error": error}
        if peer_results is not None:
            figures["peer"] |= {
                "all": group_figures(peer_results),
                "requests": group_figures([u for u in peer_results if not u.has_pause]),
                "paused": group_figures([u for u in peer_results if u.has_pause]),
                "per_utterance": [u.to_dict() for u in peer_results],
            }
    return figures


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def markdown_real(f: dict[str, Any]) -> str:
    m = f["machine"]
    lines = [
        "# voiceagent bench: real recordings",
        "",
        f"{f['all']['n']} recordings of real people from `{f['corpus']}` ({f['requests']['n']} "
        f"requests, {f['paused']['n']} with pauses inside), {f['gap_s']:g} s after each, played in "
        f"real time. Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}; ASR "
        f"`{f['asr_model']}`.",
        "",
        "| | WER | premature | split | talked over (s, total / max) | mean wait (ms) | v2v p50 | v2v p95 | answered |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, g: dict[str, Any]) -> str:
        if not g.get("n"):
            return f"| {label} | - | - | - | - | - | - | - | 0 |"
        return (
            f"| {label} | {_pct(g['wer'])} (max {_pct(g['wer_max'])}) | {g['premature']} | {g['split']} | "
            f"{g['talked_over_s']:.2f} / {g['talked_over_max_s']:.2f} | {_ms(g['mean_wait_ms'])} | "
            f"{_ms(g['v2v_ms']['p50'])} | {_ms(g['v2v_ms']['p95'])} | {g['answered']} of {g['n']} |"
        )

    lines += [row("requests", f["requests"]), row("with pauses", f["paused"]), row("**all**", f["all"])]
    peer = f.get("peer")
    if peer:
        if peer.get("error"):
            lines.append(f"| {peer['name']} | could not run: {peer['error']} | | | | | | | |")
        else:
            for key, label in (("requests", "requests"), ("paused", "with pauses")):
                g = peer[key]
                if g.get("n"):
                    lines.append(
                        f"| {peer['name']}, {label} | - | {g['premature']} | - | "
                        f"{g['talked_over_s']:.2f} / {g['talked_over_max_s']:.2f} | - | "
                        f"{_ms(g['v2v_ms']['p50'])} | {_ms(g['v2v_ms']['p95'])} | {g['answered']} of {g['n']} |"
                    )
    if f.get("detectors"):
        from voiceagent.bench.detector_sweep import markdown_row, markdown_rows

        ours = f["all"]
        lines += ["", "## End of turn: the policy beside the detectors it combines", ""]
        lines += markdown_rows(f["detectors"])
        if "silence_floor" in f["detectors"]:
            lines.append(markdown_row(
                f"silence alone, webrtcvad's hangover cut {f['vad_end_margin_db']:g} dB over the noise floor",
                f["detectors"]["silence_floor"], "T = {:g} ms",
            ))
        cut = ours["premature"] / ours["n"] if ours["n"] else None
        lines.append(
            f"| **voiceagent's policy** (this run: cut-off rate, mean wait) | {_pct(cut)} | "
            f"{_ms(ours['mean_wait_ms'])} ms |"
        )
        lines += ["", "At the pipeline's own settings:", ""]
        for key, label in (
            ("silence", "silence alone, T = {} ms"),
            ("silence_floor", "silence alone with the hangover cut, T = {} ms"),
            ("smart_turn", "Smart Turn alone, p >= {}"),
        ):
            at = f["detectors"].get(key, {}).get("at_setting")
            if at:
                lines.append(
                    f"- {label.format(at['param'])}: cut-off rate {_pct(at['cutoff_rate'])}, "
                    f"mean wait {_ms(at['mean_wait_ms'])} ms"
                )
    lines += [
        "",
        "## Per recording (ms after the true end of speech)",
        "",
        "| recording | pauses (ms) | wait | v2v | talked over (s) | turns | WER | transcript |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for u in f["per_utterance"]:
        corpus_u = next(c for c in f["corpus_utterances"] if c["index"] == u["index"])
        pauses = ", ".join(f"{1000 * (b - a):.0f}" for a, b in corpus_u["pauses_s"])
        flags = " PREMATURE" if u["premature"] else ""
        flags += " SPLIT" if u["answered_turns"] > 1 else ""
        lines.append(
            f"| {u['name']}{flags} | {pauses} | {_ms(u['endpoint_ms'])} | {_ms(u['v2v_ms'])} | "
            f"{u['talked_over_s']:.2f} | {'; '.join(u['outcomes'])} | {100 * u['wer']:.0f}% | "
            f"{u['transcript'].replace('|', '/')} |"
        )
    lines += [
        "",
        "Premature: an end of turn or a reply inside the speech (in one of its pauses). Split: "
        "more than one turn answered for one utterance. Talked over: seconds of reply audio "
        "above -40 dBFS between the true start and end of the speech. Wait: the end_of_turn "
        "event after the true end. WER: the words of the turns that were answered, numbers "
        "spelled out; a fragment rejected as noise or merged into its continuation counts as "
        "lost where its words are missing from the answered turn.",
    ]
    return "\n".join(lines) + "\n"


def clips_of(corpus: Corpus, before_s: float = 0.3, after_s: float = 4.0) -> list[LabeledClip]:
    """Each utterance of the timeline as a clip, with the silence after it."""
    rate, clips = corpus.rate, []
    for u in corpus.utterances:
        a = max(0, u.start - int(before_s * rate))
        b = min(corpus.audio.size, u.end + int(after_s * rate))
        clips.append(LabeledClip(u.voice, corpus.audio[a:b], rate, (u.start - a) / rate, (u.end - a) / rate))
    return clips


def compare_detectors(corpus: Corpus, end_model: EndOfTurnModel | None, cfg: Config) -> dict[str, Any] | None:
    """eot-bench's two figures for silence alone and Smart Turn alone, and each at
    the pipeline's own setting (``vad.trailing_silence_ms``, ``turn.threshold``)."""
    if end_model is None:
        return None
    clips = clips_of(corpus)
    traces = trace_all(clips, end_model, frame_ms=cfg.vad.frame_ms)
    # Silence as the pipeline counts it too: webrtcvad's hangover cut at the
    # noise floor (vad.end_margin_db). Not for Smart Turn: the cut splits speech
    # into short silences it would be asked about.
    floored = trace_all(clips, None, frame_ms=cfg.vad.frame_ms, end_margin_db=cfg.vad.end_margin_db)
    figs: dict[str, Any] = figures(traces)
    figs["silence_floor"] = figures(floored)["silence"]
    silence_ms, threshold = cfg.turn.complete_silence_ms, cfg.turn.threshold
    for key, point in (
        ("silence", score(traces, lambda p: silence_fire_s(p, silence_ms), silence_ms)),
        ("silence_floor", score(floored, lambda p: silence_fire_s(p, silence_ms), silence_ms)),
        ("smart_turn", score(traces, lambda p: smart_turn_fire_s(p, threshold), threshold)),
    ):
        figs[key]["at_setting"] = {
            "param": point.param, "cutoff_rate": round(point.cutoff_rate, 4),
            "mean_wait_ms": None if point.mean_wait_ms is None else round(point.mean_wait_ms, 1),
        }
    return figs


def run_real_bench(cfg: Config, opts: RealOptions, out: TextIO = sys.stdout) -> int:
    from voiceagent.bench.command import progress, load_peer, run_peer, write_json

    peer_runner = load_peer(opts.peer) if opts.peer else None
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    corpus = load_recordings(opts.corpus_dir, cfg.audio.sample_rate, opts.gap_s)
    progress(f"corpus: {len(corpus.utterances)} recordings from {opts.corpus_dir}, {corpus.seconds:.0f} s")
    models = load_models(cfg)
    progress(f"1/3 the pipeline in real time ({corpus.seconds:.0f} s)")
    run = run_realtime(cfg, models, corpus.audio)
    results = measure_utterances(corpus, run.events, run.output)

    detectors = None
    if opts.detectors:
        progress("2/3 the end-of-turn detectors alone")
        detectors = compare_detectors(corpus, models.end_model, cfg)
    peer = None
    if opts.peer and peer_runner is not None:
        progress(f"3/3 peer {opts.peer} in real time ({corpus.seconds:.0f} s)")
        try:
            peer = (opts.peer, run_peer(opts.peer, peer_runner, corpus, cfg), None)
        except VoiceAgentError as err:  # reported beside our figures
            peer = (opts.peer, None, str(err))
            print(f"voiceagent: error: peer {opts.peer}: {err}", file=sys.stderr)
    figures = summarize_real(corpus, results, detectors, peer, {
        "corpus_dir": str(opts.corpus_dir),
        "gap_s": opts.gap_s,
        "asr_model": cfg.asr.model.name,
        "vad_end_margin_db": cfg.vad.end_margin_db,
        "machine": machine() | {"load_avg_1m_before": round(load_before, 2),
                                "load_avg_1m_after": round(os.getloadavg()[0], 2)},
        "run_wall_s": round(run.wall_s, 1),
        "run_cpu_s": round(run.cpu_s, 1),
        "corpus_utterances": corpus.describe()["utterances"],
        "events": run.events,
    })
    text = markdown_real(figures)
    print(text, file=out)
    if opts.json_path is not None:
        write_json(figures, text, opts.json_path)
    progress(f"done in {time.perf_counter() - started:.0f} s")
    return 1 if peer is not None and peer[2] else 0
