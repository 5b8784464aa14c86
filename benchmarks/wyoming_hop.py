"""What putting ASR and TTS on another machine costs: the Wyoming hop against
in-process stages (``asr.backend`` / ``tts.backend: wyoming``).

Three ways to run each stage on the same model files:

- ``in-process``: WhisperTranscriber and PiperSynthesizer, as ``voiceagent run`` has them;
- ``voiceagent``: ``voiceagent serve``'s own Wyoming services, reached through
  ``stages.wyoming`` over loopback: the same computation, so the difference to
  in-process is the hop itself (connect, framing, the server's event loop,
  and the two processes sharing the cores);
- ``reference``: ``wyoming-faster-whisper`` 3.8.1 (greedy, 2 threads, as our
  defaults) and ``wyoming-piper`` 2.5.2, the servers people run (their own
  computation: faster-whisper's full 30 s window; piper's 1024-sample chunks).

For each labelled request of the corpus: the transcription's wall time (the
whole utterance sent at once, as the dialogue's final transcript is). For six
reply sentences, each cut into clauses as the dialogue cuts a reply and each
clause one request: the time to the first audio and to the whole sentence. Then
voice to voice through ``voiceagent run`` on every request: in-process, with both
stages on ``voiceagent serve``'s services, and on the reference servers (the
whole turn, as a user hears it).

    .venv/bin/python benchmarks/wyoming_hop.py --speech ../shared/speech [--json F]

Needs ``make wyoming-peers-venv``. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.config import write_config  # noqa: E402
from tests.support.web import free_port, serving  # noqa: E402
from tests.support.wyoming_peers import faster_whisper_server, piper_server  # noqa: E402
from voiceagent.bench.recordings import read_tables  # noqa: E402
from voiceagent.bench.wer import wer  # noqa: E402
from voiceagent.config import Config  # noqa: E402
from voiceagent.stages.piper import PiperSynthesizer  # noqa: E402
from voiceagent.stages.whisper import WhisperTranscriber  # noqa: E402
from voiceagent.stages.wyoming import WyomingSynthesizer, WyomingTranscriber  # noqa: E402

SENTENCES = [
    "Sure.",
    "The kitchen light is on now.",
    "Paris is the capital of France.",
    "I set a timer for five minutes.",
    "A rainbow is the arc of colours you see when sunlight shines through drops of rain.",
    "Go forward ten meters, then turn left at the door.",
]


def _ms(seconds: list[float]) -> dict:
    values = sorted(1000 * s for s in seconds)
    return {"p50_ms": round(statistics.median(values)), "p90_ms": round(values[int(0.9 * (len(values) - 1))]),
            "mean_ms": round(statistics.fmean(values)), "n": len(values)}


def asr_times(transcriber, rows) -> tuple[dict, float]:
    times, errors = [], []
    transcriber.transcribe(np.zeros(8000, np.float32))  # warm
    for row in rows:
        audio, _ = sf.read(row.path, dtype="float32")
        began = time.perf_counter()
        text = transcriber.transcribe(audio).text
        times.append(time.perf_counter() - began)
        errors.append(wer(row.transcript, text))
    return _ms(times), round(statistics.fmean(errors), 3)


def tts_times(synthesizer, cfg: Config) -> dict:
    """Each sentence as the dialogue speaks a reply: cut into clauses (the first one
    short), each clause one ``synthesize`` call; the first chunk of the first clause
    is when the reply is first heard."""
    first, whole = [], []
    list(synthesizer.synthesize("Hello."))  # warm
    for _ in range(2):
        for sentence in SENTENCES:
            splitter = cfg.tts.splitter()
            began = time.perf_counter()
            got = None
            for clause in splitter.push(sentence) + splitter.flush():
                for _chunk in synthesizer.synthesize(clause):
                    got = got or time.perf_counter() - began
            whole.append(time.perf_counter() - began)
            first.append(got or whole[-1])
    return {"first_chunk": _ms(first), "sentence": _ms(whole)}


def v2v(rows, work: Path, **sections) -> dict:
    path = write_config(work, f"run-{len(list(work.iterdir()))}.yaml", llm={"seed": 1}, **sections)
    lags = []
    for row in rows:
        events = work / "events.jsonl"
        subprocess.run([sys.executable, "-m", "voiceagent", "run", "-c", str(path), "-i", str(row.path),
                        "-o", str(work / "out.wav"), "-e", str(events)], check=True, capture_output=True, cwd=ROOT)
        got = [json.loads(line) for line in events.read_text().splitlines()]
        start = next((e["t"] for e in got if e["type"] == "playback_start" and e["t"] > row.end_s), None)
        if start is not None:
            lags.append(start - row.end_s)
    return _ms(lags)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speech", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-v2v", action="store_true", help="stage timings only")
    args = parser.parse_args()
    rows = [r for r in read_tables(args.speech) if r.table == "requests.tsv"]
    cfg = Config()
    result: dict = {"requests": len(rows), "asr": {}, "tts": {}, "v2v": {}}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        result["asr"]["in-process"] = asr_times(WhisperTranscriber(ROOT / cfg.asr.model, cfg.asr), rows)
        result["tts"]["in-process"] = tts_times(PiperSynthesizer(ROOT / cfg.tts.model, cfg.tts), cfg)
        ours = f"tcp://127.0.0.1:{free_port()}"
        (work / "serve").mkdir()
        stack.enter_context(serving(work / "serve", b"Wyoming services at", wyoming={"uri": ours}))
        for name, asr_uri, tts_uri in [("voiceagent", ours, ours)]:
            remote = Config.model_validate({"asr": {"backend": "wyoming", "uri": asr_uri},
                                            "tts": {"backend": "wyoming", "uri": tts_uri}})
            tts = WyomingSynthesizer(remote.tts)
            tts.warm_up()
            result["asr"][name] = asr_times(WyomingTranscriber(remote.asr), rows)
            result["tts"][name] = tts_times(tts, cfg)
        runs = work / "runs"
        runs.mkdir()
        if not args.no_v2v:  # the turn with both stages a hop away, on the same computation
            result["v2v"]["voiceagent"] = v2v(rows, runs, asr={"backend": "wyoming", "uri": ours},
                                              tts={"backend": "wyoming", "uri": ours})
        stack.close()  # the serve's models off the CPU before the reference servers
        peers = work / "peers"
        peers.mkdir()
        asr_uri = stack.enter_context(faster_whisper_server(peers))
        tts_uri = stack.enter_context(piper_server(peers))
        remote = Config.model_validate({"asr": {"backend": "wyoming", "uri": asr_uri},
                                        "tts": {"backend": "wyoming", "uri": tts_uri}})
        tts = WyomingSynthesizer(remote.tts)
        tts.warm_up()
        result["asr"]["reference"] = asr_times(WyomingTranscriber(remote.asr), rows)
        result["tts"]["reference"] = tts_times(tts, cfg)
        if not args.no_v2v:
            result["v2v"]["in-process"] = v2v(rows, runs)
            result["v2v"]["reference"] = v2v(rows, runs, asr={"backend": "wyoming", "uri": asr_uri},
                                             tts={"backend": "wyoming", "uri": tts_uri})
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
