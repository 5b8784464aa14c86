"""A room for a Wyoming satellite in a test: its loudspeaker is heard by its
microphone, as on a Raspberry Pi with a speaker beside its mic.

wyoming-satellite runs two programs for its audio, each a process of its own:
``--snd-command`` (raw 16-bit mono PCM on stdin, at ``--snd-command-rate``;
started at the first event of a reply, its stdin closed at ``audio-stop``, and
waited for) and ``--mic-command`` (raw PCM on stdout, read 1024 samples at a
time). This file is both:

    python tests/support/satellite_room.py speaker ROOM_DIR
    python tests/support/satellite_room.py mic ROOM_DIR

They share a timeline: sample ``i`` of a timeline file is the sound at
``CLOCK_MONOTONIC`` time ``epoch_ns + i / rate`` (``ROOM_DIR/room.json``), one
file for what the speaker played (``speaker.raw``), one for what the microphone
heard (``mic.raw``) and one for the echo part of it (``echo.raw``); int16, never
written where nothing sounded (holes read as zeros: silence).

- The speaker plays like a sound card: a reader thread takes what the satellite
  writes as it comes (and notes the moment stdin closes: ``audio-stop``), the
  player writes it to ``speaker.raw`` in 20 ms periods at the timeline position
  where it sounds, blocking on real time with ``BUFFER_S`` of device buffer.
  When it runs dry (the satellite's stream is late) the next sample sounds when
  it arrives: an underrun, as with a real device. After stdin closes it drains
  what it holds, then exits. ``speaker.log`` gets one JSON line per happening:
  ``open``, ``first_read`` (how many samples had waited for it to start),
  ``play`` (first sample or after an underrun: its index), ``eof_stdin``,
  ``eof`` (the index after the last sample it got) and ``done``, each with ``ns``.
- The microphone outputs, paced in real time, 1024 samples each time a chunk's
  last sample has been "captured": the scripted voices (``cue``), plus the echo
  of what the speaker played ``delay_ms`` earlier through a short room response
  (``voiceagent.audio.room_echo.RoomEcho``'s: the direct path at ``gain_db``
  then 120 ms of reflections), plus a faint noise floor. A voice is a cue: an
  int16 file ``ROOM_DIR/cues/NAME.raw`` (made whole by a rename), mixed in from
  the chunk at which the microphone first sees it; it writes the timeline
  index where the voice began to ``cues/NAME.start``.

``Room`` is the test's side: it writes ``room.json``, the commands to give the
satellite, cues, and reads the timelines back.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1024
"""Samples per microphone write (wyoming-satellite's default chunk)."""
PERIOD_S = 0.02
"""The speaker plays in periods of this long."""
BUFFER_S = 0.04
"""The speaker's device buffer: how far ahead of the sound it takes its input."""


def _config(room: Path) -> dict[str, Any]:
    return json.loads((room / "room.json").read_text())


def _index(epoch_ns: int, rate: int) -> int:
    """The timeline index of now."""
    return (time.monotonic_ns() - epoch_ns) * rate // 1_000_000_000


def _sleep_until(index: int, epoch_ns: int, rate: int) -> None:
    wait = (epoch_ns + index * 1_000_000_000 // rate - time.monotonic_ns()) / 1e9
    if wait > 0:
        time.sleep(wait)


# ---------------------------------------------------------------- the speaker


def speaker(room: Path) -> None:
    """``--snd-command``: plays stdin onto ``speaker.raw`` in real time."""
    cfg = _config(room)
    rate, epoch = int(cfg["rate"]), int(cfg["epoch_ns"])
    period = int(PERIOD_S * rate) * 2
    fd = os.open(room / "speaker.raw", os.O_WRONLY | os.O_CREAT, 0o644)
    log = open(room / "speaker.log", "a", buffering=1)

    def note(kind: str, **fields: object) -> None:
        log.write(json.dumps({"kind": kind, "pid": os.getpid(), "ns": time.monotonic_ns(), **fields}) + "\n")

    note("open")
    periods: list[bytes | None] = []
    ready = threading.Condition()

    def read() -> None:
        """Takes everything the satellite writes as it comes; None at stdin's end."""
        carry = b""
        first = True
        while True:
            data = os.read(0, 65536)
            if data and first:
                note("first_read", samples=len(data) // 2)  # what waited while it started
                first = False
            if data:
                data = carry + data
                whole = len(data) // period * period
                parts = [data[i : i + period] for i in range(0, whole, period)]
                carry = data[whole:]
            else:
                note("eof_stdin")
                parts = [carry] if len(carry) >= 2 else []
            with ready:
                periods.extend(p[: len(p) // 2 * 2] for p in parts)
                if not data:
                    periods.append(None)
                ready.notify()
            if not data:
                return

    threading.Thread(target=read, daemon=True).start()
    next_index: int | None = None
    buffer = int(BUFFER_S * rate)
    while True:
        with ready:
            while not periods:
                ready.wait()
            block = periods.pop(0)
        if block is None:
            break
        now = _index(epoch, rate)
        if next_index is None or next_index < now:
            next_index = now  # started, or ran dry: it sounds as soon as it is here
            note("play", index=next_index)
        os.pwrite(fd, block, next_index * 2)
        next_index += len(block) // 2
        _sleep_until(next_index - buffer, epoch, rate)
    note("eof", index=next_index)
    if next_index is not None:
        _sleep_until(next_index, epoch, rate)  # what the device holds still plays
    note("done", index=next_index)
    os.close(fd)


# ------------------------------------------------------------- the microphone


def mic(room: Path) -> None:
    """``--mic-command``: the voices cued, the speaker's echo and a noise floor,
    as raw PCM on stdout in real time."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import numpy as np

    from voiceagent.audio.room_echo import RoomEcho

    cfg = _config(room)
    rate, epoch = int(cfg["rate"]), int(cfg["epoch_ns"])
    path = RoomEcho(float(cfg["delay_ms"]), float(cfg["gain_db"]), rate)
    taps = path.response.astype(np.float64)
    span = CHUNK + taps.size - 1
    """Played samples one chunk of echo is made of."""
    nfft = 1 << int(np.ceil(np.log2(span + taps.size)))
    taps_f = np.fft.rfft(taps, nfft)
    noise = 10 ** (float(cfg["noise_db"]) / 20)  # its RMS
    rng = np.random.default_rng(0)
    cues = room / "cues"
    played_fd = os.open(room / "speaker.raw", os.O_RDONLY | os.O_CREAT, 0o644)
    mic_fd = os.open(room / "mic.raw", os.O_WRONLY | os.O_CREAT, 0o644)
    echo_fd = os.open(room / "echo.raw", os.O_WRONLY | os.O_CREAT, 0o644)
    seen: set[str] = set()
    voices: list[list[Any]] = []
    """[samples (float), position] of each voice still speaking."""
    out = sys.stdout.buffer
    pos = _index(epoch, rate)
    while True:
        _sleep_until(pos + CHUNK, epoch, rate)  # the chunk's last sample has been captured
        for name in sorted(os.listdir(cues)):
            if name.endswith(".raw") and name not in seen:
                seen.add(name)
                samples = np.frombuffer((cues / name).read_bytes(), "<i2").astype(np.float64) / 32768
                voices.append([samples, 0])
                start = cues / (name[:-4] + ".start")
                start.with_suffix(".tmp").write_text(str(pos))
                start.with_suffix(".tmp").rename(start)
        voice = np.zeros(CHUNK)
        for v in voices:
            part = v[0][v[1] : v[1] + CHUNK]
            voice[: part.size] += part
            v[1] += CHUNK
        voices = [v for v in voices if v[1] < v[0].size]
        # the echo: what was played up to delay_ms before each sample, through the room
        first = pos - path.delay - (taps.size - 1)
        played = np.zeros(span)
        if pos + CHUNK - path.delay > 0:
            skip = max(0, -first)
            raw = os.pread(played_fd, (span - skip) * 2, (first + skip) * 2)
            got = np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.float64) / 32768
            played[skip : skip + got.size] = got
        echo = np.fft.irfft(np.fft.rfft(played, nfft) * taps_f, nfft)[taps.size - 1 : taps.size - 1 + CHUNK]
        heard = voice + echo + noise * rng.standard_normal(CHUNK)
        pcm = (np.clip(heard, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
        out.write(pcm)
        out.flush()
        os.pwrite(mic_fd, pcm, pos * 2)
        os.pwrite(echo_fd, (np.clip(echo, -1, 32767 / 32768) * 32768).astype("<i2").tobytes(), pos * 2)
        pos += CHUNK


# ------------------------------------------------------------ the test's side


@dataclass
class Room:
    """The room's files in ``path``, its clock starting now."""

    path: Path
    rate: int = 16000
    delay_ms: float = 100.0
    gain_db: float = -6.0
    noise_db: float = -65.0

    def __post_init__(self) -> None:
        (self.path / "cues").mkdir(parents=True, exist_ok=True)
        self.epoch_ns = time.monotonic_ns()
        (self.path / "room.json").write_text(json.dumps({
            "rate": self.rate, "epoch_ns": self.epoch_ns, "delay_ms": self.delay_ms,
            "gain_db": self.gain_db, "noise_db": self.noise_db,
        }))
        self._cues = 0

    def command(self, role: str) -> str:
        """The ``--mic-command`` (``mic``) or ``--snd-command`` (``speaker``)."""
        flags = " -S" if role == "speaker" else ""  # no site: a speaker starts in ~20 ms
        return f"{sys.executable}{flags} {Path(__file__).resolve()} {role} {self.path}"

    def now(self) -> int:
        """The timeline index of now."""
        return _index(self.epoch_ns, self.rate)

    def seconds(self, index: int) -> float:
        return index / self.rate

    def cue(self, samples: Any) -> str:
        """Someone in the room says ``samples`` (float, at ``rate``) from the
        microphone's next chunk; returns the cue's name (see ``cue_start``)."""
        import numpy as np

        self._cues += 1
        name = f"{self._cues:03d}"
        pcm = (np.clip(np.asarray(samples, np.float64), -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
        tmp = self.path / "cues" / f"{name}.part"
        tmp.write_bytes(pcm)
        tmp.rename(self.path / "cues" / f"{name}.raw")
        return name

    def cue_start(self, name: str, timeout: float = 5.0) -> int:
        """The timeline index where the cued voice began."""
        path = self.path / "cues" / f"{name}.start"
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, f"the microphone never took cue {name}"
            time.sleep(0.02)
        return int(path.read_text())

    def timeline(self, which: str) -> Any:
        """``speaker``, ``mic`` or ``echo``: float samples from the epoch to what is written."""
        import numpy as np

        data = (self.path / f"{which}.raw").read_bytes() if (self.path / f"{which}.raw").exists() else b""
        return np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.float32) / 32768

    def speaker_log(self) -> list[dict[str, Any]]:
        path = self.path / "speaker.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def index_of_ns(self, ns: int) -> int:
        return (ns - self.epoch_ns) * self.rate // 1_000_000_000


def main() -> None:
    role, room = sys.argv[1], Path(sys.argv[2])
    {"speaker": speaker, "mic": mic}[role](room)


if __name__ == "__main__":
    main()
