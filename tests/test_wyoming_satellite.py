"""voiceagent as the brain of the reference Wyoming satellite: PyPI's
``wyoming-satellite`` 1.0.0 (its own venv, ``make satellite-venv``), whose
microphone is a real "Hey Jarvis" and request paced in real time and whose speaker
is a file, already running when ``voiceagent serve`` starts with a
``satellites:`` entry ``{name: den, wyoming: tcp://...}``: the reply reaches the
satellite's speaker. (Issue 23, second part.)"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import start
from tests.support.config import write_config
from tests.support.daemon import WITH_WAKE
from tests.support.speech import ROOT, require_models, rms
from tests.support.web import free_port

pytestmark = pytest.mark.realmodel

SATELLITE_PY = ROOT / ".venv-satellite" / "bin" / "python"
LEAD_S = 14


def test_a_wyoming_satellite_is_answered(tmp_path: Path):
    require_models()
    if not SATELLITE_PY.exists():
        pytest.fail("no .venv-satellite: run 'make satellite-venv'", pytrace=False)
    mic = tmp_path / "mic.raw"
    # The microphone starts with the satellite, before the brain connects (the models
    # load first): the person speaks some seconds later.
    audio = np.concatenate([np.zeros(16000 * LEAD_S, np.float32), WITH_WAKE.audio, np.zeros(16000, np.float32)])
    mic.write_bytes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    speaker = tmp_path / "speaker.raw"
    port = free_port()
    pace = f"{shutil.which('python3') or 'python3'} {ROOT / 'tests/support/pace_pcm.py'} {mic} 16000"
    satellite_log = open(tmp_path / "satellite.log", "wb")
    satellite = subprocess.Popen(
        [str(SATELLITE_PY), "-m", "wyoming_satellite", "--uri", f"tcp://127.0.0.1:{port}", "--no-zeroconf",
         "--name", "den", "--mic-command", pace, "--snd-command", f"sh -c 'cat >> {speaker}'",
         "--snd-command-rate", "16000"],
        stdout=satellite_log, stderr=satellite_log,
    )
    serve_log = open(tmp_path / "serve.log", "w+b")
    serve = None
    try:
        time.sleep(1.0)  # the satellite listens before the brain starts, as in a house
        assert satellite.poll() is None, (tmp_path / "satellite.log").read_text()
        config = write_config(
            tmp_path, satellites=[{"name": "den", "wyoming": f"tcp://127.0.0.1:{port}"}],
            mqtt={"enabled": False}, wake={"model": "hey_jarvis", "follow_up_s": 0},
            serve={"conversation_log": str(tmp_path / "conversations.jsonl")}, log_level="info",
        )
        serve = start("serve", "-c", str(config), stderr=serve_log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + LEAD_S + 40
        heard = 0.0
        while time.monotonic() < deadline:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            if speaker.exists() and speaker.stat().st_size:
                played = np.frombuffer(speaker.read_bytes()[: speaker.stat().st_size // 2 * 2], "<i2") / 32768
                blocks = played[: played.size // 1600 * 1600].reshape(-1, 1600)
                heard = sum(rms(b) > 0.01 for b in blocks) * 0.1
                if heard >= 1.0:
                    break
            time.sleep(0.5)
        log = (tmp_path / "serve.log").read_text()
        assert heard >= 0.5, (heard, log[-3000:], (tmp_path / "satellite.log").read_text()[-2000:])
        assert "Traceback" not in log
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(15)
        satellite.terminate()
        satellite.wait(10)
        serve_log.close()
        satellite_log.close()


def test_a_satellite_that_wakes_on_its_own_is_heard_without_our_wake_word(tmp_path: Path):
    """A satellite with its own wake word detector (``wyoming-satellite --wake-uri``)
    sends ``detection`` and ``run-pipeline`` from the ASR stage, then the request
    alone: it is answered, though the request has no "Hey Jarvis" of ours to hear.
    Before that, its first connection names a payload of 100 MB and vanishes
    mid-event: one log line, and voiceagent connects again about a second later.
    The satellite here is a stand-in speaking the protocol (the real one is above)."""
    import asyncio

    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.pipeline import PipelineStage, RunPipeline
    from wyoming.satellite import RunSatellite
    from wyoming.server import AsyncEventHandler, AsyncServer
    from wyoming.wake import Detection

    from tests.support.speech import real

    require_models()
    request = real("req_go_somewhere")
    pcm = (request.audio * 32767).astype("<i2").tobytes()
    port = free_port()
    played: list[bytes] = []
    stops: list[int] = []

    connections: list[int] = []

    class Satellite(AsyncEventHandler):
        async def handle_event(self, event) -> bool:  # type: ignore[no-untyped-def]
            if RunSatellite.is_type(event.type):
                connections.append(1)
                if len(connections) == 1:  # first it breaks: names a huge payload and vanishes mid-event
                    self.writer.write(b'{"type": "audio-chunk", "payload_length": 99999999}\n0123')
                    await self.writer.drain()
                    return False
                asyncio.ensure_future(self.speak())
            elif AudioChunk.is_type(event.type):
                played.append(AudioChunk.from_event(event).audio)
            elif AudioStop.is_type(event.type):
                stops.append(1)
            return True

        async def speak(self) -> None:
            await asyncio.sleep(1.0)
            await self.write_event(Detection(name="hey_mycroft").event())
            await self.write_event(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event())
            loop = asyncio.get_running_loop()
            begin = loop.time()
            silence = bytes(3200)
            for i in range(0, len(pcm) + 16000 * 8 * 2, 3200):
                chunk = pcm[i:i + 3200] or silence
                await self.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=chunk.ljust(3200, b"\0")).event())
                await asyncio.sleep(max(0.0, begin + (i + 3200) / 32000 - loop.time()))

    async def go(config: Path) -> str:
        server = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
        await server.start(lambda r, w: Satellite(r, w))
        with open(tmp_path / "serve.log", "w+b") as log:
            serve = start("serve", "-c", str(config), stderr=log, stdout=subprocess.DEVNULL)
            try:
                deadline = loop_time() + 60
                while sum(len(p) for p in played) < 16000 * 2 * 1.0 and loop_time() < deadline:
                    assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                    await asyncio.sleep(0.2)
            finally:
                serve.terminate()
                await asyncio.to_thread(serve.wait, 15)
        await server.stop()
        return (tmp_path / "serve.log").read_text()

    def loop_time() -> float:
        return time.monotonic()

    config = write_config(
        tmp_path, satellites=[{"name": "den", "wyoming": f"tcp://127.0.0.1:{port}"}],
        mqtt={"enabled": False}, wake={"model": "hey_jarvis", "follow_up_s": 0},
        serve={"conversation_log": str(tmp_path / "conversations.jsonl")}, log_level="info",
    )
    log = asyncio.run(go(config))
    seconds = sum(len(p) for p in played) / 2 / 16000
    assert seconds >= 0.5, (seconds, log[-3000:])
    assert "heard by the device" in log and "Traceback" not in log
    assert len(connections) >= 2 and log.count("sent payload_length 99999999") == 1, log[-3000:]
