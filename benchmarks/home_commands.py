"""Spoken commands of the house against a real Home Assistant: did the light do
what was asked, and how soon was the answer heard?

Starts a real Home Assistant 2024.3.3 from ``.venv-ha`` (``make ha-venv``) with
the test house (tests/home_assistant.py: office, kitchen and living-room lights,
a living-room thermostat), then runs ``voiceagent serve`` in real time on a WAV
of spoken commands, ``homeassistant.area: Office``, and reads the conversation
log, the event log and HA's states:

- per command: what was heard, the intent, its result, whether HA's state is
  the one asked for, and voice to voice: from the true end of the words (the
  last sample above -34 dBFS of the input) to the first sound of the answer,
  and from the pipeline's own end of speech (the conversation log's latency);
- overall: commands right, voice-to-voice p50 / p95, and the intent matching's
  own time (hassil, in this process, on the transcripts heard).

Voices: espeak-ng in four voices and piper's joe (a neural voice recorded from a
real person; the assistant speaks with it too, but here it is only the input).
No recording of a real person saying a command to a house is redistributable or
in ../shared/speech, so those are the closest real thing here.

With ``--real DIR`` (``../shared/speech``) the timing is also measured on real
people: each recording of ``requests.tsv`` is taken for "turn on the lights" and
then "turn off the lights" in turn, whatever its words (no recording of a real
person saying a command is at hand), and carried out in the real Home Assistant
by the real intents, in process, on the corpus timeline of ``voiceagent bench
--corpus``. What this measures is what the voice decides: when the end of the
request is heard, from the recording's own annotated end, to the first sound of
the confirmation.

With ``--llm`` the same audio is run with ``homeassistant.intents: false`` (every
request goes to the LLM), to show what the local intents save and that the LLM's
replies claim nothing.

    .venv/bin/python benchmarks/home_commands.py [--quick] [--llm] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.home_assistant import HomeAssistant  # noqa: E402
from tests.support.config import write_config  # noqa: E402
from voiceagent.demo import espeak  # noqa: E402
from voiceagent.rules.claims import claims_action  # noqa: E402

RATE = 16000
OFFICE, KITCHEN, LAMP = "light.office_light", "light.kitchen_light", "light.living_room_lamp"
# (what is said, the entity whose state it sets, the state it should then have; None: a question)
COMMANDS = [
    ("Turn on the lights.", OFFICE, "on"),
    ("Turn off the office light.", OFFICE, "off"),
    ("Turn on the kitchen light.", KITCHEN, "on"),
    ("Is the kitchen light on?", None, None),
    ("Turn off the lights in the kitchen.", KITCHEN, "off"),
    ("Turn the living room lamp on.", LAMP, "on"),
    ("Switch off the living room lamp.", LAMP, "off"),
]
VOICES = [("espeak en-us m3", "en-us+m3", 160), ("espeak en-us f2", "en-us+f2", 170),
          ("espeak en-gb m1", "en-gb+m1", 150), ("espeak en-us m7", "en-us+m7", 175), ("piper joe", None, 0)]
GAP_S = 5.0


@functools.cache
def _piper():  # type: ignore[no-untyped-def]
    """The assistant's piper voice, loaded once (as an input voice here)."""
    from voiceagent.config import load_config
    from voiceagent.stages.piper import PiperSynthesizer

    cfg = load_config(ROOT / "config.yaml")
    return PiperSynthesizer(cfg.resolve(cfg.tts.model), cfg.tts)


def voice_audio(text: str, voice: str | None, wpm: int) -> np.ndarray:
    if voice is not None:
        return 0.7 * espeak(text, RATE, voice=voice, wpm=wpm)
    from voiceagent.audio.convert import resample

    synth = _piper()
    audio = np.concatenate(list(synth.synthesize(text)))
    return 0.8 * resample(audio, synth.sample_rate, RATE) / max(1e-6, float(np.abs(audio).max()))


def timeline(voices, commands) -> tuple[np.ndarray, list[tuple[str, str, str | None, str | None, float, float]]]:
    chunks, spans, t = [np.zeros(RATE, np.float32)], [], 1.0
    for label, voice, wpm in voices:
        for text, entity, state in commands:
            audio = voice_audio(text, voice, wpm).astype(np.float32)
            loud = np.flatnonzero(np.abs(audio) > 0.02)
            spans.append((label, text, entity, state, t + loud[0] / RATE, t + (loud[-1] + 1) / RATE))
            gap = np.zeros(int(GAP_S * RATE), np.float32)
            chunks += [audio, gap]
            t += (audio.size + gap.size) / RATE
    return np.concatenate(chunks), spans


def run(ha: HomeAssistant, work: Path, audio: np.ndarray, spans, intents: bool) -> list[dict]:
    ha.reset()
    token = ha.write_token_file(work / "token")
    log = work / f"conversations-{intents}.jsonl"
    events = work / f"events-{intents}.jsonl"
    config = write_config(
        work, name=f"config-{intents}.yaml", mqtt={"enabled": False}, wake={"model": "none"},
        homeassistant={"url": ha.url, "token_file": str(token), "area": "Office", "intents": intents},
        serve={"conversation_log": str(log)}, log_level="warning",
    )
    wav = work / "commands.wav"
    soundfile.write(wav, audio, RATE, subtype="PCM_16")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voiceagent", "serve", "-c", str(config), "-i", str(wav), "-o", str(work / "out.wav"),
         "-e", str(events)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(work / f"stderr-{intents}.log", "w"),
    )
    results: list[dict] = []
    try:
        # Follow the timeline: after each command's answer (or its gap), read HA's state.
        started = time.monotonic()
        for label, text, entity, state, _start, end in spans:
            while time.monotonic() - started < end + 30 and proc.poll() is None:  # model loading, then real time
                turns = _turns(log)
                if len(turns) > len(results):
                    break
                time.sleep(0.1)
            turns = _turns(log)
            turn = turns[len(results)] if len(turns) > len(results) else {}
            time.sleep(0.3)
            sound = _first_sound(events, turn.get("turn"))
            actual = ha.state(entity)["state"] if entity else None
            results.append({
                "voice": label, "said": text, "heard": turn.get("transcript"), "reply": turn.get("reply"),
                "intent": (turn.get("intent") or {}).get("intent"), "result": (turn.get("intent") or {}).get("result"),
                "latency_ms": turn.get("latency_ms"),
                "v2v_ms": None if sound is None else round((sound - end) * 1000),
                "entity": entity, "wanted": state, "state": actual,
                "right": (actual == state) if entity else (turn.get("reply") in ("Yes", "No, off")),
                "claims": bool(turn.get("reply")) and claims_action(turn.get("reply", "")) and not turn.get("intent"),
            })
    finally:
        proc.terminate()
        proc.wait(30)
    return results


def _first_sound(events: Path, turn: int | None) -> float | None:
    """When the answer to ``turn`` started playing, on the input's timeline."""
    if turn is None or not events.exists():
        return None
    for event in map(json.loads, events.read_text().splitlines()):
        if event["type"] == "playback_start" and event["turn"] == turn:
            return float(event["t"])
    return None


def _turns(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [t for t in map(json.loads, log.read_text().splitlines()) if t["source"] == "voice"]


def summary(results: list[dict]) -> dict:
    lat = sorted(r["v2v_ms"] for r in results if r["v2v_ms"] is not None)
    p = lambda q: lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))] if lat else None  # noqa: E731
    return {
        "commands": len(results), "right": sum(r["right"] for r in results),
        "matched": sum(r["intent"] is not None for r in results),
        "claims": sum(r["claims"] for r in results),
        "v2v_p50_ms": p(0.5), "v2v_p95_ms": p(0.95), "v2v_mean_ms": round(statistics.mean(lat)) if lat else None,
    }


def matching_ms(results: list[dict]) -> dict:
    from voiceagent.home.house import Area, Entity, House
    from voiceagent.home.intents import IntentMatcher

    matcher = IntentMatcher("en", "Office")
    matcher.update(House(
        areas={a: Area(a, n) for a, n in (("office", "Office"), ("kitchen", "Kitchen"), ("living_room", "Living Room"))},
        entities={e: Entity(e, n, (), a) for e, n, a in ((OFFICE, "Office Light", "office"),
                  (KITCHEN, "Kitchen Light", "kitchen"), (LAMP, "Living Room Lamp", "living_room"))},
    ))
    times = []
    for r in results:
        for _ in range(5):
            t = time.perf_counter()
            matcher.match(r["heard"] or "")
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50_ms": round(times[len(times) // 2], 2), "max_ms": round(times[-1], 2)}


class EachRequestAsALightCommand:
    """``Commands`` that take every request for "turn on the lights", then "turn off
    the lights", and carry it out with the real ``HomeControl``."""

    converses = False

    def __init__(self, control) -> None:  # type: ignore[no-untyped-def]
        self.control = control
        self.done = 0

    def match(self, text: str):  # type: ignore[no-untyped-def]
        if not text.strip():
            return None
        return self.control.match(("Turn on the lights.", "Turn off the lights.")[self.done % 2])

    def expected(self, command):  # type: ignore[no-untyped-def]
        return self.control.expected(command)

    async def execute(self, command):  # type: ignore[no-untyped-def]
        self.done += 1
        return await self.control.execute(command)

    async def converse(self, text: str):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def cannot_act(self) -> str:
        return self.control.cannot_act()


def files_corpus(folder: Path, gap_s: float = 4.0):  # type: ignore[no-untyped-def]
    """Each request recording whole, as ``voiceagent serve -i FILE`` gets it (its own
    room tone before and after the words), then digital silence (``gap_s``). Each is
    run as a conversation of its own (``run_real``), as one ``serve -i`` per file."""
    from voiceagent.audio.streams import read_wav
    from voiceagent.bench.corpus import Corpus, Utterance
    from voiceagent.bench.recordings import read_tables

    parts, utterances, pos, starts = [], [], 0, []
    for i, row in enumerate(r for r in read_tables(folder) if r.table == "requests.tsv"):
        audio = read_wav(row.path, RATE)
        starts.append(pos)
        utterances.append(Utterance(i, row.transcript, row.name, 0, 0.0, 0,
                                    pos + int(row.start_s * RATE), pos + int(row.end_s * RATE), ()))
        parts += [audio, np.zeros(int(gap_s * RATE), np.float32)]
        pos += audio.size + int(gap_s * RATE)
    corpus = Corpus(RATE, 0, gap_s, float("-inf"), tuple(utterances), np.concatenate(parts))
    object.__setattr__(corpus, "file_starts", tuple(starts))
    return corpus


def _file_bounds(corpus) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """(first sample, length) of each file and its silence on a ``files_corpus``."""
    starts = list(corpus.file_starts) + [corpus.audio.size]
    return [(a, b - a) for a, b in zip(starts, starts[1:])]


def run_real(ha: HomeAssistant, folder: Path, as_files: bool = False) -> list[dict]:
    import asyncio

    from voiceagent.host.run import run_paced
    from voiceagent.audio.streams import ArrayInput, MemoryOutput
    from voiceagent.bench.recordings import load_recordings, read_tables
    from voiceagent.config import config_from_dict, load_config
    from voiceagent.events import EventBus
    from voiceagent.home.client import ClientSettings
    from voiceagent.home.connection import HomeConnection
    from voiceagent.home.control import HomeControl
    from voiceagent.home.intents import IntentMatcher
    from voiceagent.home.timers import Timers
    from voiceagent.stages.loading import load_models

    ha.reset()
    if as_files:
        corpus = files_corpus(folder)
    else:
        with tempfile.TemporaryDirectory() as tmp:  # the requests only: a pause inside a real
            for row in read_tables(folder):           # command is not what this measures
                if row.table == "requests.tsv":
                    (Path(tmp) / f"{row.name}.wav").symlink_to(row.path.resolve())
            (Path(tmp) / "requests.tsv").write_text((folder / "requests.tsv").read_text())
            corpus = load_recordings(Path(tmp), gap_s=5.0)
    cfg = load_config(ROOT / "config.yaml")
    cfg = config_from_dict(
        {**cfg.model_dump(exclude={"base_dir"}), "homeassistant": {"url": ha.url, "token": ha.token, "area": "Office"}},
        ROOT,
    )
    models = load_models(cfg)
    events: list[dict] = []

    async def go() -> None:
        control = HomeControl(IntentMatcher("en", "Office"), Timers(), HomeConnection(ClientSettings(
            ha.url, ha.token, 5.0, 5.0, 0.2, 1.0, True)))
        stop = asyncio.Event()
        connection = asyncio.ensure_future(control.connection.run(stop))
        while not control.connection.available:
            await asyncio.sleep(0.05)
        commands = EachRequestAsALightCommand(control)
        # One conversation over the timeline, or one per file (its events moved to
        # where the file lies on the timeline).
        pieces = [(0, corpus.audio.size)]
        if as_files:
            pieces = _file_bounds(corpus)
        try:
            for k, (first, size) in enumerate(pieces):
                bus = EventBus()
                offset = first / corpus.rate
                bus.subscribe(lambda e, off=offset, k=k: events.append(
                    {**e.to_dict(), "t": e.t + off, "turn": e.turn + 1000 * k}))
                audio = corpus.audio[first:first + size]
                await run_paced(cfg, models, ArrayInput(audio), MemoryOutput(), bus, realtime=True, commands=commands)
        finally:
            stop.set()
            await connection

    asyncio.run(go())
    rate = corpus.rate
    results = []
    for i, utt in enumerate(corpus.utterances):
        until = corpus.utterances[i + 1].start / rate - 0.3 if i + 1 < len(corpus.utterances) else 1e9
        start, end = utt.start / rate, utt.end / rate
        turns = {e["turn"] for e in events if e["type"] == "speech_start" and start - 0.3 <= e["t"] < until}
        last = max(turns, default=None)

        def at(kind: str) -> float | None:
            return next((e["t"] for e in events if e["type"] == kind and e["turn"] == last), None)
        sound = min((e["t"] for e in events if e["type"] == "playback_start" and e["turn"] in turns), default=None)
        intent = next((e for e in events if e["type"] == "intent" and e["turn"] in turns), None)
        heard = " / ".join(e["text"] for e in events if e["type"] == "turn_end" and e["turn"] in turns)
        results.append({
            "voice": utt.voice, "said": utt.text, "heard": heard, "intent": intent and intent["intent"],
            "result": intent and intent["result"], "reply": intent and intent["speech"],
            "v2v_ms": None if sound is None else round((sound - end) * 1000),
            "premature": sound is not None and sound < end, "answered_turns": len({e["turn"] for e in events
                         if e["type"] == "intent" and e["turn"] in turns}),
            # where the time goes, for the last turn: the end of speech heard, the silence waited, the rest
            "speech_end_late_ms": _ms_between(end, at("speech_end")),
            "silence_ms": _ms_between(at("speech_end"), at("end_of_turn")),
            "to_sound_ms": _ms_between(at("end_of_turn"), at("playback_start")),
        })
    return results


def _ms_between(a: float | None, b: float | None) -> int | None:
    return None if a is None or b is None else round((b - a) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two voices")
    parser.add_argument("--llm", action="store_true", help="also run with every request sent to the LLM")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--real", type=Path, help="a folder of real recordings (../shared/speech)")
    parser.add_argument("--real-only", action="store_true", help="with --real: skip the synthetic voices")
    args = parser.parse_args()
    voices = VOICES[:1] + VOICES[-1:] if args.quick else VOICES
    audio, spans = timeline(voices, COMMANDS)
    out: dict = {"machine": "see docs", "voices": [v[0] for v in voices], "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        ha = HomeAssistant(Path(tmp) / "ha").start()
        try:
            for intents in [] if args.real_only else ([True, False] if args.llm else [True]):
                results = run(ha, Path(tmp), audio, spans, intents)
                name = "intents" if intents else "llm"
                out["runs"][name] = {"summary": summary(results), "turns": results}
                if intents:
                    out["runs"][name]["matching"] = matching_ms(results)
                s = out["runs"][name]["summary"]
                print(f"\n## {name}: {s['right']}/{s['commands']} right, {s['matched']} matched, "
                      f"{s['claims']} false claims, voice to voice p50 {s['v2v_p50_ms']} ms, p95 {s['v2v_p95_ms']} ms")
                print("| voice | said | heard | intent | result | HA state | reply | v2v ms | after its end of speech |")
                print("|---|---|---|---|---|---|---|---|---|")
                for r in results:
                    state = f"{r['state']} ({'right' if r['right'] else 'WRONG'})" if r["entity"] else ("right" if r["right"] else "WRONG")
                    print(f"| {r['voice']} | {r['said']} | {r['heard']} | {r['intent']} | {r['result']} | {state} | "
                          f"{r['reply']} | {r['v2v_ms']} | {r['latency_ms']} |")
            for how in ("timeline", "files") if args.real else ():
                real = run_real(ha, args.real, as_files=how == "files")
                lat = sorted(r["v2v_ms"] for r in real if r["v2v_ms"] is not None)
                out["runs"][f"real-{how}"] = {"turns": real, "summary": {
                    "recordings": len(real), "done": sum(r["result"] == "done" for r in real),
                    "premature": sum(r["premature"] for r in real),
                    "split": sum(r["answered_turns"] > 1 for r in real),
                    "v2v_p50_ms": lat[len(lat) // 2] if lat else None,
                    "v2v_p95_ms": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else None,
                }}
                s = out["runs"][f"real-{how}"]["summary"]
                print(f"\n## real people ({args.real}, {how}), each request taken for a light command: "
                      f"{s['done']}/{s['recordings']} done, {s['premature']} premature, {s['split']} split, "
                      f"voice to voice p50 {s['v2v_p50_ms']} ms, p95 {s['v2v_p95_ms']} ms")
                print("| recording | heard | result | reply | v2v ms | end heard late ms | silence ms | then to sound ms |")
                print("|---|---|---|---|---|---|---|---|")
                for r in real:
                    print(f"| {r['voice']} | {r['heard']} | {r['result']} | {r['reply']} | {r['v2v_ms']} | "
                          f"{r['speech_end_late_ms']} | {r['silence_ms']} | {r['to_sound_ms']} |")
        finally:
            ha.kill()
    if "intents" in out["runs"]:
        print(f"\nintent matching on the transcripts: {out['runs']['intents']['matching']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
