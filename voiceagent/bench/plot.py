"""The benchmark's PNG: where the time goes, and how voice-to-voice is spread.

Left: a timeline from the true end of speech, one bar per stage of the pipeline
reaching its median time, with a tick at its p95 (negative: done before the end
of speech was over). Right: every turn's voice-to-voice for the pipeline, the
baseline and a peer, as box and points on a log scale (the baseline is seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PIPELINE_STAGES = (
    ("endpoint_ms", "endpoint"),
    ("asr_final_ms", "ASR final"),
    ("llm_first_token_ms", "LLM 1st token"),
    ("first_clause_ms", "1st clause"),
    ("tts_first_audio_ms", "TTS 1st audio"),
    ("v2v_ms", "voice-to-voice"),
)


def write_plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    _breakdown(left, figures)
    _spread(right, figures)
    fig.suptitle(
        f"voiceagent bench: {figures['turns']} turns, {figures['machine']['cpu']}, "
        f"{figures['machine']['cores']} cores", fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _breakdown(ax: Any, f: dict[str, Any]) -> None:
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd"]
    for y, ((key, _label), color) in enumerate(zip(PIPELINE_STAGES, colors)):
        p50, p95 = f[key]["p50"], f[key]["p95"]
        if p50 is None:
            continue
        ax.barh(y, p50, color=color, height=0.6)
        ax.plot([p95, p95], [y - 0.3, y + 0.3], color="black", lw=1.5)
        ax.text(max(p50, p95), y, f"  {p50:.0f} / {p95:.0f}", va="center", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(500, color="grey", lw=0.8, ls="--")
    ax.axvline(800, color="grey", lw=0.8, ls=":")
    ax.set_yticks(range(len(PIPELINE_STAGES)), [label for _, label in PIPELINE_STAGES])
    ax.invert_yaxis()
    ax.margins(x=0.15)
    ax.set_xlabel("ms after the true end of speech: bar p50, tick p95 (targets 500 / 800 ms)")
    ax.set_title("pipeline, per stage", fontsize=10)


def _spread(ax: Any, f: dict[str, Any]) -> None:
    series = [("pipeline", [u["v2v_ms"] for u in f["per_turn"]])]
    series.append(("baseline", [b["v2v_ms"] for b in f["baseline"]["per_turn"]]))
    if "peer" in f and f["peer"].get("per_turn"):
        series.append((f["peer"]["name"], [p["v2v_ms"] for p in f["peer"]["per_turn"]]))
    data = [[v for v in values if v is not None] for _, values in series]
    positions = range(1, len(series) + 1)
    ax.boxplot([d if d else [np.nan] for d in data], positions=list(positions), widths=0.5,
               showfliers=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same figures draw the same plot
    for pos, values in zip(positions, data):
        ax.scatter(pos + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.7)
    ax.axhline(500, color="grey", lw=0.8, ls="--")
    ax.axhline(800, color="grey", lw=0.8, ls=":")
    if any(data):
        ax.set_yscale("log")
    ax.set_xticks(list(positions), [
        f"{name}\np50 {np.median(d):.0f} ms" if d else name for (name, _), d in zip(series, data)
    ])
    ax.set_ylabel("voice-to-voice, ms (log scale)")
    ax.set_title("voice-to-voice per turn", fontsize=10)
