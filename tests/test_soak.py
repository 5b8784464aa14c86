"""The soak's short mode (``benchmarks/soak.py fake``): a thousand turns of the
conversation with fake models in simulated time, mixing answers, barge-ins,
continuations, say, ask then stop, and speech without the wake word. Nothing may
pile up: tasks, threads, files, history, turns in flight, queued audio, Python's
allocated blocks. The full 10,000-turn run and the real-time one are in the
benchmark's note (docs/soak-*.json)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import soak  # noqa: E402


def test_a_thousand_mixed_turns_leave_nothing_behind():
    result = soak.run_fake(turns=1000, every=100, seed=7)
    assert result["turns"] >= 1000
    reasons = result["reasons"]
    for reason in ("answered", "interrupted", "continued", "stopped", "not_addressed"):
        assert reasons.get(reason, 0) >= 20, reasons  # every kind of turn was there, often
    verdict = result["verdict"]
    assert verdict["enough_samples"]
    top = verdict["max_after_warmup"]
    first = result["samples"][2]
    assert top["threads"] == first["threads"]  # inline workers: no thread at all
    assert top["open_files"] == first["open_files"]
    assert top["tasks"] <= 3 and top["conversation_tasks"] <= 2
    assert top["history"] <= 3  # llm.max_history_turns
    assert top["turns_in_flight"] <= 2 and top["speaker_turns"] <= 2
    assert top["pending_actions"] <= 3
    # A leak of one object per turn would add ~800 blocks over these 800 turns.
    growth = verdict["py_blocks_last"] - verdict["py_blocks_first"]
    assert growth < 400, f"{growth} more Python blocks after 800 turns"
    # the latency of the answers stayed what it was (a simulated clock: exact)
    p50 = [s["latency_p50_ms"] for s in result["samples"] if s["latency_p50_ms"] is not None]
    assert max(p50) - min(p50) < 100, p50
