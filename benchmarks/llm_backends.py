"""The cost of putting the LLM behind a server: in-process llama.cpp against
``llm.backend: openai`` talking to llama_cpp.server with the same GGUF, on the same
corpus, in one run.

    .venv/bin/python benchmarks/llm_backends.py [--turns 12] [--seed 0] [--json out.json]

Both runs use the bench's espeak corpus in real time; the server runs on the same
machine (loopback), with the same threads. What differs: HTTP and SSE per token,
no KV-cache prefill of the user's first words, and no LLM end-of-message odds
(the pauses are judged by the word list and Smart Turn only).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceagent.bench.corpus import build_corpus  # noqa: E402
from voiceagent.bench.llama_server import start_llama_server  # noqa: E402
from voiceagent.bench.measure import corpus_wer, measure_utterances, premature_rates  # noqa: E402
from voiceagent.bench.runner import run_realtime  # noqa: E402
from voiceagent.bench.stats import Dist  # noqa: E402
from voiceagent.config import Config, load_config  # noqa: E402
from voiceagent.stages.loading import load_models  # noqa: E402

STAGES = (("endpoint_ms", "endpoint"), ("asr_final_ms", "ASR final"), ("llm_first_token_ms", "LLM first token"),
          ("first_clause_ms", "first clause"), ("tts_first_audio_ms", "TTS first audio"), ("v2v_ms", "voice-to-voice"))


def measure(cfg: Config, corpus) -> dict[str, dict[str, float | None]]:  # type: ignore[no-untyped-def]
    models = load_models(cfg)
    run = run_realtime(cfg, models, corpus.audio, display=False)
    utterances = measure_utterances(corpus, run.events, run.output)
    figures: dict[str, dict[str, float | None]] = {}
    for key, _label in STAGES:
        dist = Dist.of(getattr(u, key) for u in utterances)
        figures[key] = {"p50": dist.p50, "p95": dist.p95, "n": dist.n}
    figures["answered"] = {"n": sum(u.v2v_ms is not None for u in utterances)}
    with_pause, overall = premature_rates(utterances)
    figures["premature"] = {"with_pause": with_pause, "all": overall,
                            "paused_n": sum(u.has_pause for u in utterances)}
    figures["wer"] = {"corpus": corpus_wer(utterances)}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    base = load_config(ROOT / "config.yaml")
    corpus = build_corpus(args.turns, args.seed, base.audio.sample_rate, 10.0)
    print(f"corpus: {args.turns} questions, {corpus.seconds:.0f} s, seed {args.seed}", file=sys.stderr)
    results = {}
    print("1/2 llm.backend: llama (in process)", file=sys.stderr)
    results["llama"] = measure(base, corpus)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        _server, url = start_llama_server(stack, base, Path(tmp) / "server.log")
        remote = base.model_copy(update={"llm": base.llm.model_copy(update={"backend": "openai", "base_url": url})})
        print(f"2/2 llm.backend: openai ({url}, llama_cpp.server, same GGUF)", file=sys.stderr)
        results["openai"] = measure(remote, corpus)
    print("| ms after the true end of speech | llama p50 | llama p95 | openai p50 | openai p95 |")
    print("|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    for key, label in STAGES:
        a, b = results["llama"][key], results["openai"][key]
        print(f"| {label} | {fmt(a['p50'])} | {fmt(a['p95'])} | {fmt(b['p50'])} | {fmt(b['p95'])} |")
    print(f"| answered | {results['llama']['answered']['n']} of {args.turns} | | "
          f"{results['openai']['answered']['n']} of {args.turns} | |")
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    a, b = results["llama"]["premature"], results["openai"]["premature"]
    print(f"| premature end of turn, with a pause (of {a['paused_n']}) | {pct(a['with_pause'])} | | "
          f"{pct(b['with_pause'])} | |")
    print(f"| premature end of turn, all | {pct(a['all'])} | | {pct(b['all'])} | |")
    print(f"| WER | {pct(results['llama']['wer']['corpus'])} | | {pct(results['openai']['wer']['corpus'])} | |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
