"""``voiceagent talk`` on real audio devices: PulseAudio null sinks.

The test plays the user's speech into the ``va_mic`` sink; voiceagent records
from its monitor through the ALSA ``pulse`` device and plays to ``va_spk``,
whose monitor the test records. Stopped with SIGINT, as a user would.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile

from tests.support.cli import start
from tests.support.pulse import pulse_sinks_or_skip
from tests.support.speech import conversation_wav, real, require_models, rms, word_error_rate

pytestmark = [pytest.mark.device, pytest.mark.realmodel]

QUESTION = real("req_forever")
"""A real person: 'Feels like these days go on forever.'"""


@pytest.fixture
def pulse():
    yield from pulse_sinks_or_skip()


def _lines(stream, out: queue.Queue) -> None:
    for line in iter(stream.readline, b""):
        out.put(line.decode(errors="replace"))


def test_talk_on_pulseaudio_null_sinks(pulse, tmp_path):
    require_models()
    wav = tmp_path / "user.wav"
    conversation_wav(wav, [0.3, QUESTION, 0.5], rate=16000, channels=1)
    said = tmp_path / "said.wav"
    events = tmp_path / "events.jsonl"
    recorder = pulse.record(pulse.monitor("va_spk"), said)
    proc = start(
        "talk", "--input-device", "pulse", "--output-device", "pulse", "--events", str(events),
        env=pulse.child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
    stderr = []
    try:
        deadline = time.monotonic() + 60
        while not any("listening" in s for s in stderr):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(stderr)
            try:
                stderr.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        time.sleep(0.5)
        pulse.play(wav, pulse.sink("va_mic")).wait(timeout=30)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            text = events.read_text() if events.exists() else ""
            if '"turn_end"' in text:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # a clean stop, as Ctrl+C would
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        pulse.stop(recorder)
    while not lines.empty():
        stderr.append(lines.get())
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    ends = [e for e in evs if e["type"] == "turn_end"]
    assert ends and ends[0]["reason"] == "answered", "".join(stderr)
    assert word_error_rate(QUESTION.text, ends[0]["text"]) <= 0.25, ends[0]
    audio, rate = soundfile.read(str(said), dtype="float32")
    assert rms(audio) > 0.005 and np.abs(audio).max() > 0.1, "the reply was not heard on the sink"
