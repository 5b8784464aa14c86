"""``voiceagent bench``: build the corpus, run everything on it, report.

Progress goes to stderr; stdout carries only the Markdown summary. With a JSON
path, the figures, the Markdown and the plot are written beside each other;
without one, nothing is written (an external peer gets a temporary directory).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from voiceagent.stages.loading import load_models
from voiceagent.audio.room_echo import EchoSpec
from voiceagent.audio.streams import read_wav
from voiceagent.bench.bargein import REPLY_INTO_S, build_timeline, measure_interruptions
from voiceagent.bench.baseline import run_baseline
from voiceagent.bench.corpus import Corpus, build_corpus, write_wav
from voiceagent.bench.measure import (
    FalseAlarms,
    UtteranceResult,
    false_barge_ins,
    measure_output,
    measure_utterances,
    paused_s,
)
from voiceagent.bench.report import BenchResults, machine, markdown, summarize
from voiceagent.bench.runner import peak_rss_mb, run_realtime
from voiceagent.bench.stats import Dist
from voiceagent.config import Config
from voiceagent.errors import VoiceAgentError

logger = logging.getLogger(__name__)

PEERS = ("pipecat",)
BARGE_IN_ECHO = EchoSpec(delay_ms=40, gain_db=-6)
FALLBACK_OFFSET_S = 2.0
"""Seconds from a question to its interruption when the first run answered nothing."""

PeerRunner = Callable[[Path, Path, Config], None]


@dataclass(frozen=True)
class BenchOptions:
    turns: int
    json_path: Path | None = None
    peer: str | None = None
    seed: int = 0
    gap_s: float = 10.0
    """Seconds after each question for the reply."""
    barge_in_turns: int = 3
    """Interrupted questions in the barge-in run (0: no barge-in run)."""


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def load_peer(name: str) -> PeerRunner:
    """The peer's ``run_peer``, imported lazily (it may not be installed)."""
    if name not in PEERS:
        raise VoiceAgentError(f"unknown peer {name!r}", f"known peers: {', '.join(PEERS)}")
    module = f"voiceagent.bench.{name}_peer"
    try:
        return importlib.import_module(module).run_peer  # type: ignore[no-any-return]
    except ModuleNotFoundError as err:
        raise VoiceAgentError(
            f"the {name} peer cannot be loaded: module {err.name} is missing",
            "run without --peer to benchmark voiceagent alone",
        ) from err


def run_peer(name: str, runner: PeerRunner, corpus: Corpus, cfg: Config) -> list[UtteranceResult]:
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-") as tmp:
        corpus_wav, output_wav = Path(tmp) / "corpus.wav", Path(tmp) / f"{name}-output.wav"
        write_wav(corpus, corpus_wav)
        runner(corpus_wav, output_wav, cfg)
        output = read_wav(output_wav, corpus.rate)
    return measure_output(corpus, output)


def run_bench(cfg: Config, opts: BenchOptions, out: TextIO = sys.stdout) -> int:
    """Run the benchmark; 0 when it completed (whatever the figures), 1 if the peer failed."""
    peer_runner = load_peer(opts.peer) if opts.peer else None  # fail before minutes of work
    started = time.perf_counter()
    # Other work on the machine skews every figure: say how busy it was before.
    load_before = os.getloadavg()[0]
    rate = cfg.audio.sample_rate
    corpus = build_corpus(opts.turns, opts.seed, rate, opts.gap_s)
    progress(
        f"corpus: {opts.turns} questions, {sum(u.has_pause for u in corpus.utterances)} with a "
        f"pause, {corpus.seconds:.0f} s of audio (seed {opts.seed})"
    )
    models = load_models(cfg)

    progress(f"1/4 the pipeline in real time ({corpus.seconds:.0f} s)")
    run = run_realtime(cfg, models, corpus.audio)
    utterances = measure_utterances(corpus, run.events, run.output)
    speech = [(u.start / rate, u.end / rate) for u in corpus.utterances]
    alarms = false_barge_ins(run.events, speech)
    paused = paused_s(run.events)

    events = {"main": run.events}
    interruptions: list = []
    offset = None
    if opts.barge_in_turns:
        v2v = Dist.of(u.v2v_ms for u in utterances).p50
        offset = (v2v / 1000 if v2v is not None else FALLBACK_OFFSET_S) + REPLY_INTO_S
        timeline = build_timeline(opts.barge_in_turns, offset, rate, opts.gap_s, opts.seed)
        progress(
            f"2/4 barge-in with echo 40:-6 ({opts.barge_in_turns} interruptions {offset:.2f} s "
            f"after the question, {timeline.audio.size / rate:.0f} s)"
        )
        run2 = run_realtime(cfg, models, timeline.audio, echo=BARGE_IN_ECHO)
        interruptions = measure_interruptions(timeline, run2.events, run2.output)
        more = false_barge_ins(run2.events, timeline.speech_s())
        alarms = FalseAlarms(alarms.barge_ins + more.barge_ins, alarms.reply_s + more.reply_s)
        paused += paused_s(run2.events)
        events["barge_in"] = run2.events
    # Before the baseline loads a second Whisper model: the pipeline's own peak.
    peak = peak_rss_mb()

    progress("3/4 the naive sequential baseline")
    baseline = run_baseline(cfg, models, corpus)

    peer_utterances, peer_error = None, None
    if opts.peer and peer_runner is not None:
        progress(f"4/4 peer {opts.peer} in real time ({corpus.seconds:.0f} s)")
        try:
            peer_utterances = run_peer(opts.peer, peer_runner, corpus, cfg)
        except VoiceAgentError as err:
            peer_error = str(err)
            print(f"voiceagent: error: peer {opts.peer}: {err}", file=sys.stderr)

    figures = summarize(
        BenchResults(
            corpus, utterances, run.wall_s, run.cpu_s, peak, baseline, alarms, paused,
            interruptions, offset, opts.peer, peer_utterances, peer_error, events,
        ),
        machine() | {
            "load_avg_1m_before": round(load_before, 2),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
        },
    )
    text = markdown(figures)
    print(text, file=out)
    if opts.json_path is not None:
        write_outputs(figures, text, opts.json_path)
    progress(f"done in {time.perf_counter() - started:.0f} s")
    return 1 if peer_error else 0


def write_json(figures: dict, text: str, path: Path) -> None:
    """PATH (the figures) and PATH with .md (the summary)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(text, encoding="utf-8")
    progress(f"wrote {path} and {path.with_suffix('.md')}")


def write_outputs(figures: dict, text: str, path: Path) -> None:
    """PATH (the figures), PATH with .md (the summary) and with .png (the plot)."""
    from voiceagent.bench.plot import write_plot

    write_json(figures, text, path)
    write_plot(figures, path.with_suffix(".png"))
    progress(f"wrote {path}, {path.with_suffix('.md')} and {path.with_suffix('.png')}")
