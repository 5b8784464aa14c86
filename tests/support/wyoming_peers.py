"""The reference Wyoming servers, for tests in which voiceagent uses them as its
remote ASR and TTS stages: PyPI's ``wyoming-faster-whisper`` 3.8.1 and
``wyoming-piper`` 2.5.2, each from a venv of its own (``make wyoming-peers-venv``),
serving the project's own model files with no download, on a free loopback port.

Both answer ``describe`` under a second after start. faster-whisper loads its model
before it listens; it sends one ``transcript`` (no streaming) after ``audio-stop``
and then closes the connection. piper finds ``<voice>.onnx`` and ``.onnx.json`` in
``--data-dir`` (the layout of ``models/piper-joe-medium``), loads the voice at the
first synthesize (~0.5 s) and sends 22050 Hz, 16-bit mono audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.speech import ROOT
from tests.support.web import free_port

ASR_VENV = ROOT / ".venv-wyoming-asr"
TTS_VENV = ROOT / ".venv-wyoming-tts"
MODELS = ROOT / "models"


def require_peer_venvs() -> None:
    """Fail, not skip: ``make test`` builds the venvs, so a missing one is a broken setup."""
    missing = [v.name for v in (ASR_VENV, TTS_VENV) if not (v / ".installed").exists()]
    if missing:
        pytest.fail(f"no {', '.join(missing)}: run 'make wyoming-peers-venv'")


async def _describe(uri: str) -> bool:
    from wyoming.client import AsyncClient
    from wyoming.info import Describe, Info

    try:
        async with asyncio.timeout(2), AsyncClient.from_uri(uri) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            return event is not None and Info.is_type(event.type)
    except (OSError, TimeoutError):
        return False


@contextlib.contextmanager
def _serving(tmp: Path, name: str, argv: list[str], timeout_s: float = 30) -> Iterator[str]:
    uri = f"tcp://127.0.0.1:{free_port()}"
    log_path = tmp / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*argv, "--uri", uri], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while not asyncio.run(_describe(uri)):
                assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, (
                    f"{name} did not answer describe in {timeout_s} s:\n{log_path.read_text()[-3000:]}"
                )
                time.sleep(0.1)
            yield uri
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def faster_whisper_server(tmp: Path) -> Iterator[str]:
    """wyoming-faster-whisper on models/whisper-tiny.en; yields its ``tcp://`` URI.
    Greedy decoding on 2 threads, as voiceagent's own ``asr`` defaults, so that
    the two are compared like for like (its defaults, beam 5 on 4 threads, take
    2-3 times as long on 2 cores)."""
    data = tmp / "whisper-data"  # required; stays empty (the model is a local dir)
    data.mkdir(exist_ok=True)
    with _serving(tmp, "wyoming-faster-whisper", [
        str(ASR_VENV / "bin" / "python"), "-m", "wyoming_faster_whisper",
        "--model", str(MODELS / "whisper-tiny.en"), "--stt-library", "faster-whisper",
        "--local-files-only", "--data-dir", str(data), "--language", "en",
        "--beam-size", "1", "--cpu-threads", "2",
    ]) as uri:
        yield uri


@contextlib.contextmanager
def piper_server(tmp: Path) -> Iterator[str]:
    """wyoming-piper with en_US-joe-medium from models/piper-joe-medium; yields its
    ``tcp://`` URI. It reads that directory only."""
    with _serving(tmp, "wyoming-piper", [
        str(TTS_VENV / "bin" / "python"), "-m", "wyoming_piper",
        "--voice", "en_US-joe-medium", "--data-dir", str(MODELS / "piper-joe-medium"),
        "--local-files-only",
    ]) as uri:
        yield uri
