"""How much of the assistant's own voice WebRTC AEC3 removes, and what it costs.

The assistant's voice (piper, the default model) is played through a simulated
room (``RoomEcho``) into a microphone with a -70 dBFS noise floor, and the
microphone is cleaned 20 ms at a time exactly as a duplex driver does it: played
block k is what the sink played while mic block k was captured. Each room is run
for both AEC3 wrappers (``livekit``, ``pywebrtc-audio``), with a delay hint of 0,
of the true delay and of 100 ms more, with the echo alone and with a near-end talker (espeak-ng)
interrupting three times, at 2, 5.6 and 9.2 s, while the reply plays on.

Columns:
- ERLE: echo return loss enhancement, mic energy over output energy while the
  echo plays, in dB; "1s+" leaves out the first second after the echo starts.
  The output sits at the noise floor, so "echo/noise" is the most it can show.
- VAD: share of the 20 ms frames during the echo that webrtcvad (mode 2) calls
  speech; "leak" is when the last such output frame ends, seconds after the echo
  started. "starts" counts runs of 60 ms or more of output speech frames (what
  would open an utterance with the default endpointer) in the first second of
  echo and after it; "longest" is the longest such run.
- near kept / SDR: what double talk does to the talker, in dB: least-squares
  gain and signal-to-distortion ratio of the output against the same canceller's
  output for the talker alone (so the canceller's own high-pass filter and 8 ms
  latency do not count).
- near VAD: share of the talker's speech frames (webrtcvad on the clean talker)
  still found in the output. near WER: whisper tiny.en on the three
  interruptions cut from the output (the "no AEC" line: cut from the mic).
- CPU: milliseconds of process time per second of audio in the canceller.

Piper's voice is sampled afresh on every run, so numbers move a little between
runs; the leak column most.

Run: ``.venv/bin/python benchmarks/echo_reduction.py`` (needs the piper and
whisper models, ``voiceagent models pull``, espeak-ng, and ``pip install
pywebrtc-audio`` for its rows). About 40 s on 2 cores.
"""

from __future__ import annotations

import gc
import importlib.metadata
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webrtcvad

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceagent.audio.convert import float_to_int16_bytes, resample  # noqa: E402
from voiceagent.audio.aec import WebRtcEchoCanceller  # noqa: E402
from voiceagent.audio.echo import estimate_delay_ms  # noqa: E402
from voiceagent.audio.room_echo import RoomEcho  # noqa: E402
from voiceagent.config import AsrConfig, TtsConfig  # noqa: E402
from voiceagent.demo import espeak  # noqa: E402

RATE = 16000
BLOCK = 320
"""Samples per block, 20 ms: what the duplex drivers use."""
LEAD_S = 0.3
"""Silence before the reply starts, in seconds."""
NOISE_DBFS = -70.0
CONDITIONS = ((40, -6), (40, 0), (120, -6), (250, -6), (400, -6))
"""(delay ms, gain dB) of the simulated room."""
REPLY = (
    "Paris is the capital of France. It sits on the river Seine, and about two "
    "million people live in the city itself. The ocean covers more than seventy "
    "percent of our planet, and most of it has never been explored."
)
INTERRUPTION = "Wait, stop. I have another question."
INTERRUPT_AT_S = (2.0, 5.6, 9.2)
HINT_OVER_MS = 100
"""Each room also runs with a delay hint this much too high, as a device's
reported latency can be."""


def assistant_speech() -> np.ndarray:
    from voiceagent.stages.piper import PiperSynthesizer

    cfg = TtsConfig(device="cpu")
    voice = PiperSynthesizer(ROOT / cfg.model, cfg)
    parts = [np.zeros(int(LEAD_S * RATE), np.float32)]
    for chunk in voice.synthesize(REPLY):
        parts.append(resample(chunk, voice.sample_rate, RATE))
        parts.append(np.zeros(int(0.2 * RATE), np.float32))
    del voice
    gc.collect()  # onnxruntime's threads must not count in the CPU times below
    audio = np.concatenate(parts + [np.zeros(int(0.5 * RATE), np.float32)])
    return audio[: audio.size // BLOCK * BLOCK]


class PyWebRtcCanceller:
    """The same AEC3 through pywebrtc-audio, which splits blocks into 10 ms frames itself."""

    def __init__(self, sample_rate: int, delay_ms: int = 0) -> None:
        import pywebrtc_audio

        self._aec = pywebrtc_audio.EchoCanceller(sample_rate, 1, delay_ms)

    def process(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        return self._aec.process(mic.astype(np.float32), played.astype(np.float32))


BACKENDS = {"livekit": WebRtcEchoCanceller, "pywebrtc-audio": PyWebRtcCanceller}


def run(backend: str, hint_ms: int, played: np.ndarray, mic: np.ndarray) -> tuple[np.ndarray, float]:
    """Output of a fresh canceller fed block by block, and its CPU seconds."""
    aec = BACKENDS[backend](RATE, delay_ms=hint_ms)
    out = np.empty_like(mic)
    cpu = 0.0
    for i in range(0, mic.size, BLOCK):
        t = time.process_time()
        out[i : i + BLOCK] = aec.process(mic[i : i + BLOCK], played[i : i + BLOCK])
        cpu += time.process_time() - t
    return out, cpu


def vad_flags(audio: np.ndarray) -> np.ndarray:
    vad = webrtcvad.Vad(2)
    return np.array([
        vad.is_speech(float_to_int16_bytes(audio[i : i + BLOCK]), RATE)
        for i in range(0, audio.size - BLOCK + 1, BLOCK)
    ])


def longest_run_ms(flags: np.ndarray) -> int:
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max(initial=0)) * BLOCK * 1000 // RATE


def starts(flags: np.ndarray, frames: int = 3) -> np.ndarray:
    """Frame indices where a run of at least ``frames`` speech frames begins: with
    the default endpointer (60 ms voiced to open an utterance) each would have
    been taken for the user starting to speak."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    begin, end = edges[0::2], edges[1::2]
    return begin[end - begin >= frames]


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64))) + 1e-20


def db(ratio: float) -> float:
    return float(10 * np.log10(ratio))


def fit(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(gain dB, signal-to-distortion dB) of ``ref`` in ``out``, least squares."""
    gain = max(float(np.dot(out, ref)) / energy(ref), 1e-6)
    return 20 * np.log10(gain), db(energy(ref) / energy(out / gain - ref))


@dataclass
class Talk:
    """The near-end talker: interruptions at known places in a silent track."""

    audio: np.ndarray
    spans: list[slice]
    """Each interruption's samples, from first to last loud sample."""
    clips: list[slice]
    """Each interruption as espeak-ng made it (with its own silences), 300 ms either side."""
    frames: np.ndarray
    """webrtcvad's verdict on the clean talker, per 20 ms frame."""

    def cuts(self, audio: np.ndarray) -> list[np.ndarray]:
        """The interruptions, as an endpointer would cut them out for the ASR."""
        return [audio[s] for s in self.clips]

    def kept(self, out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
        mask = np.zeros(out.size, bool)
        for s in self.spans:
            mask[s] = True
        return fit(out[mask], ref[mask])

    def recall(self, out: np.ndarray) -> float:
        return float((vad_flags(out) & self.frames).sum() / max(self.frames.sum(), 1))


def near_talker(size: int) -> Talk:
    user = 0.6 * espeak(INTERRUPTION, RATE)
    loud = np.flatnonzero(np.abs(user) > 0.01)
    audio = np.zeros(size, np.float32)
    spans, clips = [], []
    margin = int(0.3 * RATE)
    for at_s in INTERRUPT_AT_S:
        at = int(at_s * RATE)
        audio[at : at + user.size] = user[: size - at]
        spans.append(slice(at + int(loud[0]), min(at + int(loud[-1]) + 1, size)))
        clips.append(slice(at - margin, min(at + user.size + margin, size)))
    return Talk(audio, spans, clips, vad_flags(audio))


def package_mb(dist: str) -> float | None:
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return sum(f.locate().stat().st_size for f in files if f.locate().exists()) / 1e6


def main() -> int:
    print("synthesizing the reply with piper ...", file=sys.stderr)
    played = assistant_speech()
    seconds = played.size / RATE
    talk = near_talker(played.size)
    noise = (10 ** (NOISE_DBFS / 20) * np.random.default_rng(1).standard_normal(played.size)).astype(np.float32)
    sizes = {b: package_mb(b) for b in BACKENDS}
    backends = [b for b in BACKENDS if sizes[b] is not None]
    silent = np.zeros_like(played)

    rooms, rows, cuts = [], [], {}
    print("cancelling ...", file=sys.stderr)
    alone = {}
    for backend in backends:
        # The talker with nothing played: the reference for double talk, and
        # what the canceller does to the user when there is no echo at all.
        ref, _ = run(backend, 0, silent, talk.audio + noise)
        alone[backend] = ref
        cuts[("alone", backend)] = talk.cuts(ref)
        level = db(energy(ref) / energy(talk.audio + noise))
        rows.append(("talker alone", backend, "-", None, (level, None), talk.recall(ref)))
    for delay_ms, gain_db in CONDITIONS:
        name = f"{delay_ms} ms, {gain_db:+d} dB"
        echo = RoomEcho(delay_ms, gain_db, RATE).mix(silent, played)
        active = np.flatnonzero(np.abs(echo) > 1e-3)
        onset, end = int(active[0]), int(active[-1]) + 1
        playing = slice(onset // BLOCK, end // BLOCK)
        settled_frames = slice(playing.start + RATE // BLOCK, playing.stop)
        settled = slice(onset + RATE, end)
        mic = echo + noise
        mic_dt = mic + talk.audio
        near_echo = db(sum(energy(talk.audio[s]) for s in talk.spans) / sum(energy(echo[s]) for s in talk.spans))
        found = estimate_delay_ms(played[: 3 * RATE], mic[: 3 * RATE], RATE)
        cuts[(name, "none")] = talk.cuts(mic_dt)
        mic_flags = vad_flags(mic)[playing]
        rooms.append((name, db(energy(echo[settled]) / energy(noise[settled])), near_echo,
                      mic_flags.mean(), starts(mic_flags).size, found))
        for backend in backends:
            for hint in (0, delay_ms, delay_ms + HINT_OVER_MS):
                out, cpu = run(backend, hint, played, mic)
                flags = vad_flags(out)
                leaked = np.flatnonzero(flags[playing])
                false = starts(flags[playing])
                out_dt, _ = run(backend, hint, played, mic_dt)
                cuts[(name, backend, hint)] = talk.cuts(out_dt)
                rows.append((name, backend, hint, (
                    db(energy(mic[onset:end]) / energy(out[onset:end])),
                    db(energy(mic[settled]) / energy(out[settled])),
                    flags[playing].mean(),
                    flags[settled_frames].mean(),
                    "-" if leaked.size == 0 else f"{(leaked[-1] + 1) * BLOCK / RATE:.2f}",
                    f"{(false < RATE // BLOCK).sum()} / {(false >= RATE // BLOCK).sum()}",
                    longest_run_ms(flags[playing]),
                    1000 * cpu / seconds,
                ), talk.kept(out_dt, alone[backend]), talk.recall(out_dt)))

    # Whisper last, so that its threads do not run during the timed AEC calls.
    wer = transcribe_all(cuts)

    print(f"reply: {seconds:.1f} s of piper speech at {RATE} Hz in 20 ms blocks, mic noise floor "
          f"{NOISE_DBFS:.0f} dBFS; near-end talker (espeak-ng) at {INTERRUPT_AT_S} s: {INTERRUPTION!r}")
    print("installed size: " + ", ".join(
        f"{b} {sizes[b]:.1f} MB" if sizes[b] else f"{b} not installed" for b in BACKENDS))
    print()
    print("| echo delay, gain | echo/noise dB | near/echo dB | VAD on mic | starts on mic "
          "| GCC-PHAT estimate ms | near WER, no AEC |")
    print("|---|---|---|---|---|---|---|")
    for name, echo_noise, near_echo, vad_mic, mic_starts, found in rooms:
        print(f"| {name} | {echo_noise:.1f} | {near_echo:+.1f} | {vad_mic:.0%} | {mic_starts} "
              f"| {'none' if found is None else f'{found:.1f}'} | {wer[(name, 'none')]:.0%} |")
    print()
    print("| echo delay, gain | AEC | hint ms | ERLE dB | ERLE 1s+ dB | VAD out | VAD out 1s+ | leak s "
          "| starts <1s / 1s+ | longest ms | near kept dB | near SDR dB | near VAD | near WER | CPU ms/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, backend, hint, echo_only, (kept, sdr), recall in rows:
        if echo_only is None:
            key = ("alone", backend)
            cells = f"| - | - | - | - | - | - | - | {kept:+.1f} (level) | - "
        else:
            key = (name, backend, hint)
            erle, erle_settled, vad_out, vad_settled, leak, false, longest, cpu = echo_only
            cells = (f"| {erle:.1f} | {erle_settled:.1f} | {vad_out:.0%} | {vad_settled:.0%} | {leak} | {false} "
                     f"| {longest} "
                     f"| {kept:+.1f} | {sdr:.1f} ")
        print(f"| {name} | {backend} | {hint} {cells}| {recall:.0%} | {wer[key]:.0%} "
              f"| {'-' if echo_only is None else f'{echo_only[-1]:.1f}'} |")
    return 0


def transcribe_all(cuts: dict[tuple, list[np.ndarray]]) -> dict[tuple, float]:
    """Word error rate over each set of interruptions (whisper tiny.en)."""
    from tests.support.speech import word_error_rate
    from voiceagent.stages.whisper import WhisperTranscriber

    print("transcribing the interruptions with whisper ...", file=sys.stderr)
    cfg = AsrConfig(device="cpu")
    asr = WhisperTranscriber(ROOT / cfg.model, cfg)
    return {
        key: float(np.mean([word_error_rate(INTERRUPTION, asr.transcribe(audio).text) for audio in audios]))
        for key, audios in cuts.items()
    }


if __name__ == "__main__":
    sys.exit(main())
