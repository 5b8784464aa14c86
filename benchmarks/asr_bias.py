"""What biasing Whisper toward the house's names (``homeassistant.bias_asr``) costs
and gains: every clip transcribed without hotwords, with the test house's 7 names
(tests/home_assistant.py), and with 40 names (a larger house), on the same model.

- commands: the 35 spoken commands of benchmarks/home_commands.py (espeak in four
  voices and piper's joe): how many transcripts hold every house name said, as
  written, and the WER;
- real people: the recordings of ``--real DIR`` (``../shared/speech`` requests),
  which name nothing of the house: the WER, so that the bias is seen not to make
  ordinary speech into names;
- the time of each transcription (p50 / p95 in ms), which is what the bias adds to
  every turn's end of speech.

    .venv/bin/python benchmarks/asr_bias.py [--real ../shared/speech] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.home_commands import COMMANDS, RATE, VOICES, voice_audio  # noqa: E402
from tests.support.home_assistant import DEFAULT_HOUSE  # noqa: E402
from voiceagent.bench.stats import Dist  # noqa: E402
from voiceagent.bench.wer import wer  # noqa: E402

HOUSE = [*DEFAULT_HOUSE.areas.values(), *(d.name for d in (*DEFAULT_HOUSE.lights, *DEFAULT_HOUSE.thermostats))]
"""The test house's areas and exposed entities, as ``HomeControl.names`` gives them."""
LARGER = HOUSE + [
    "Bedroom", "Guest Room", "Bathroom", "Hallway", "Garage", "Porch", "Dining Room", "Nursery",
    "Ceiling Light", "Desk Lamp", "Reading Lamp", "Floor Lamp", "Bedside Lamp", "Hue Go",
    "Strip Lights", "Porch Light", "Garage Door", "Front Door Lock", "Coffee Maker", "Kettle",
    "Fan", "Heater", "Dehumidifier", "TV", "Soundbar", "Blinds", "Curtains", "Bathroom Mirror",
    "Hallway Light", "Dining Room Chandelier", "Nursery Night Light", "Garden Lights", "Snug",
]
REPEATS = 3
NAMES_SAID = ("office light", "kitchen light", "living room lamp", "kitchen", "office")


def names_right(said: str, heard: str) -> bool:
    """Every house name in what was said is in what was heard, in the same words."""
    said_l, heard_l = said.lower(), heard.lower()
    for name in NAMES_SAID:
        if name in said_l:
            said_l = said_l.replace(name, "")
            if name not in heard_l:
                return False
            heard_l = heard_l.replace(name, "", 1)
    return True


def clips(real: Path | None) -> list[tuple[str, str, np.ndarray]]:
    out = [("command", text, voice_audio(text, voice, wpm).astype(np.float32))
           for _, voice, wpm in VOICES for text, _, _ in COMMANDS]
    if real is not None:
        from voiceagent.audio.streams import read_wav
        from voiceagent.bench.recordings import read_tables

        for rec in read_tables(real):
            if rec.table not in ("requests.tsv", "paused.tsv"):
                continue
            audio = read_wav(rec.path, RATE)
            # the words and 0.3 s after them, as the recognizer gets them at the end of a turn
            out.append(("real", rec.transcript, audio[int(rec.start_s * RATE): int((rec.end_s + 0.3) * RATE)]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, help="a corpus folder (../shared/speech)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from voiceagent.config import load_config
    from voiceagent.stages.whisper import WhisperTranscriber

    cfg = load_config(ROOT / "config.yaml")
    asr = WhisperTranscriber(cfg.resolve(cfg.asr.model), cfg.asr)
    data = clips(args.real)
    for _, _, audio in data[:3]:
        asr.transcribe(audio)  # warm up
    configs = (("none", []), ("house (7 names)", HOUSE), (f"larger ({len(LARGER)} names)", LARGER))
    rows: dict[str, dict[str, list]] = {label: {"command": [], "real": []} for label, _ in configs}
    # Each clip under every configuration in turn, the best of REPEATS timings:
    # the box's noise drifts over minutes, and the bias's cost is a few ms.
    for kind, text, audio in data:
        for label, names in configs:
            asr.set_hotwords(names)
            times = []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                heard = asr.transcribe(audio).text
                times.append((time.perf_counter() - t0) * 1000)
            rows[label][kind].append((text, heard, min(times)))
    report = {}
    for label, _ in configs:
        entry = {}
        for kind, got in rows[label].items():
            if not got:
                continue
            times = Dist.of(ms for _, _, ms in got)
            entry[kind] = {
                "n": len(got),
                "wer": round(statistics.mean(wer(t, h) for t, h, _ in got), 3),
                "p50_ms": round(times.p50, 1),  # type: ignore[arg-type]
                "p95_ms": round(times.p95, 1),  # type: ignore[arg-type]
            }
            base = rows[configs[0][0]][kind]
            # paired: this clip's time less its time without hotwords
            entry[kind]["added_ms_p50"] = round(statistics.median(m - b[2] for (_, _, m), b in zip(got, base)), 1)
            if kind == "command":
                entry[kind]["names_right"] = sum(names_right(t, h) for t, h, _ in got)
                entry[kind]["names_wrong"] = [h for t, h, _ in got if not names_right(t, h)]
            else:
                entry[kind]["heard"] = [h for _, h, _ in got]
        report[label] = entry
        print(label, json.dumps({k: {f: v for f, v in e.items() if f != "heard"} for k, e in entry.items()}, indent=1),
              flush=True)
    asr.set_hotwords([])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
