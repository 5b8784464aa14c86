"""The remote stages' client side (``stages.wyoming``) against small scripted
servers: what a server says is turned into a transcript or audio, and a server
that is down, silent, refusing or talking nonsense is one ``StageError`` line
naming it, never a hang or a traceback. The real servers (wyoming-faster-whisper,
wyoming-piper) are in tests/test_wyoming_peers.py. Also: who may reach the
Wyoming services (``wyoming.allowed_clients``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import write_event

from voiceagent.config import Config
from voiceagent.errors import ModelLoadError, StageError
from voiceagent.stages.wyoming import WyomingSynthesizer, WyomingTranscriber
from voiceagent.wyoming_bounded import read_event_sync


@contextmanager
def scripted(answer: Callable[[socket.socket, list[str]], None]) -> Iterator[str]:
    """A server on a free port that reads each request up to its last event
    (``audio-stop``, ``synthesize``, ``describe``) and then calls ``answer``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                kinds: list[str] = []
                while True:
                    event = read_event_sync(reader)
                    if event is None:
                        break
                    kinds.append(event.type)
                    if event.type in ("audio-stop", "synthesize", "describe"):
                        try:
                            answer(conn, kinds)
                        except OSError:
                            pass
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        listener.close()


def _send(conn: socket.socket, *events) -> None:
    with conn.makefile("wb") as out:
        for event in events:
            write_event(event.event(), out)


def _asr(uri: str, timeout_s: float = 2.0) -> WyomingTranscriber:
    return WyomingTranscriber(Config.model_validate({"asr": {"backend": "wyoming", "uri": uri,
                                                             "timeout_s": timeout_s}}).asr)


def _tts(uri: str) -> WyomingSynthesizer:
    return WyomingSynthesizer(Config.model_validate({"tts": {"backend": "wyoming", "uri": uri,
                                                             "timeout_s": 2.0}}).tts)


def test_a_transcript_comes_back_and_hallucinations_are_dropped():
    texts = iter([" Go forward 10 meters.", "Thanks for watching!"])
    seen: list[list[str]] = []

    def answer(conn, kinds):
        seen.append(kinds)
        _send(conn, Transcript(text=next(texts)))

    with scripted(answer) as uri:
        asr = _asr(uri)
        assert asr.transcribe(np.zeros(40000, np.float32)).text == "Go forward 10 meters."
        assert asr.transcribe(np.zeros(16000, np.float32)).text == ""
    # 2.5 s of audio in 1 s chunks, between transcribe/audio-start and audio-stop
    assert seen[0] == ["transcribe", "audio-start", "audio-chunk", "audio-chunk", "audio-chunk", "audio-stop"]


def test_synthesized_audio_streams_chunk_by_chunk_at_the_servers_rate():
    def answer(conn, kinds):
        tone = (np.sin(np.arange(2205) / 5) * 8000).astype("<i2").tobytes()
        _send(conn, AudioStart(rate=22050, width=2, channels=1),
              *[AudioChunk(rate=22050, width=2, channels=1, audio=tone) for _ in range(3)], AudioStop())

    with scripted(answer) as uri:
        tts = _tts(uri)
        chunks = list(tts.synthesize("Hello there."))
    assert tts.sample_rate == 22050 and len(chunks) == 3
    assert all(c.dtype == np.float32 and np.abs(c).max() > 0.2 for c in chunks)


@pytest.mark.parametrize(
    "answer, says",
    [
        (lambda conn, kinds: _send(conn, Error(text="model exploded")), "answered an error: model exploded"),
        (lambda conn, kinds: conn.sendall(b"{nonsense\n"), "not a Wyoming answer"),
        (lambda conn, kinds: conn.sendall(b'{"type": "transcript", "payload_length": 99999999999}\n'),
         "not a Wyoming answer"),
        (lambda conn, kinds: conn.sendall(b'{"type": "transcript", "data_length": 50}\n{"te'), "not a Wyoming answer"),
        (lambda conn, kinds: None, "without a transcript"),
        (lambda conn, kinds: threading.Event().wait(3), "sent nothing for 0.5 s"),
    ],
    ids=["error", "garbage", "huge", "cut", "closed", "silent"],
)
def test_a_failing_asr_server_is_one_stage_error(answer, says):
    with scripted(answer) as uri:
        with pytest.raises(StageError) as caught:
            _asr(uri, timeout_s=0.5).transcribe(np.zeros(8000, np.float32))
    message = str(caught.value)
    assert message.startswith(f"asr: the Wyoming ASR at {uri}: ") and says in message, message
    assert "\n" not in message


def test_a_server_that_is_down_fails_the_start_in_one_line():
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(ModelLoadError) as caught:
        _asr(f"tcp://127.0.0.1:{port}").warm_up()
    assert "cannot reach it" in str(caught.value) and "check asr.uri" in caught.value.hint
    with pytest.raises(ModelLoadError):
        _tts(f"tcp://127.0.0.1:{port}").warm_up()


def test_a_tts_cut_mid_reply_is_a_stage_error_after_the_audio_it_had():
    def answer(conn, kinds):
        _send(conn, AudioStart(rate=22050, width=2, channels=1),
              AudioChunk(rate=22050, width=2, channels=1, audio=b"\x10\x20" * 2000))

    with scripted(answer) as uri:
        got = []
        with pytest.raises(StageError, match="before the end of the audio"):
            for chunk in _tts(uri).synthesize("Hello."):
                got.append(chunk)
    assert len(got) == 1


def test_backends_need_their_server():
    for section in ("asr", "tts"):
        with pytest.raises(ValueError, match=f"needs {section}.uri"):
            Config.model_validate({section: {"backend": "wyoming"}})


def test_wyoming_services_beyond_loopback_need_an_allowlist():
    with pytest.raises(ValueError, match="allowed_clients"):
        Config.model_validate({"wyoming": {"uri": "tcp://0.0.0.0:10700"}})
    with pytest.raises(ValueError, match="no address or network"):
        Config.model_validate({"wyoming": {"uri": "tcp://0.0.0.0:10700", "allowed_clients": ["ha.local"]}})
    cfg = Config.model_validate({"wyoming": {"uri": "tcp://0.0.0.0:10700",
                                             "allowed_clients": ["192.168.1.10", "10.0.0.0/24"]}}).wyoming
    assert cfg.admits("192.168.1.10") and cfg.admits("10.0.0.77") and cfg.admits("127.0.0.1")
    assert cfg.admits("::ffff:192.168.1.10")
    assert not cfg.admits("192.168.1.11") and not cfg.admits("")
    local = Config.model_validate({"wyoming": {"uri": "tcp://127.0.0.1:10700"}}).wyoming
    assert local.admits("127.0.0.1") and not local.admits("192.168.1.10")
