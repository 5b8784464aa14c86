"""The web endpoint with fake models (fast): the page, who gets in (token, Origin,
max_sessions), the OpenAI SDK against it, bad messages answered with an error
while the session goes on, a client that vanishes, and the network clock.
test_web_realmodel.py runs the real models; test_web_browser.py a real browser."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.fakes import EnergyVad, FakeChat, FakeSynth, FakeTranscriber, silence, tone
from voiceagent.audio.speaker import Speaker
from voiceagent.clock import TimelineClock
from voiceagent.config import SatelliteConfig, config_from_dict
from voiceagent.host.host import Host, share
from voiceagent.servers.web import WebServer
from voiceagent.session.build import build_session
from voiceagent.stages.loading import Models
from voiceagent.stages.workers import InlineWorker
from voiceagent.transports.web import NetworkTransport

TOKEN = "t0ken-for-tests"
REPLY = "Hello there my friend " + "and a good day to you " * 5 + "too."
"""One sentence of thirty words: 1.5 s of the fake voice (50 ms a word)."""


def _cfg(tmp_path: Path, **web):
    return config_from_dict({
        "vad": {"detector": "webrtc", "voice_probability": 0},
        "wake": {"model": "none"}, "mqtt": {"enabled": False}, "satellites": [],
        "web": {"enabled": True, "port": 0, "token": TOKEN, **web},
    }, tmp_path)


class _Forgotten(list):
    def __call__(self, name: str) -> None:
        self.append(name)


@contextlib.asynccontextmanager
async def _server(tmp_path: Path, **web):
    cfg = _cfg(tmp_path, **web)
    chat = FakeChat(REPLY)
    host = Host(share(cfg, Models(FakeTranscriber(), chat, FakeSynth()), workers=InlineWorker))

    def open_session(name: str):
        session = build_session(cfg, SatelliteConfig(name=name), host.shared, several=True)
        session.conv.vad = EnergyVad()  # the tones are speech
        return session

    forgotten = _Forgotten()
    server = WebServer(cfg, open_session, forget=forgotten)
    stop = asyncio.Event()
    task = asyncio.ensure_future(server.run(stop))
    await asyncio.wait_for(server.listening.wait(), 5)
    server.forgotten = forgotten  # type: ignore[attr-defined]
    server.stopper = stop  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        host.close()


def _ws(server: WebServer) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/realtime"


BEARER = {"Authorization": f"Bearer {TOKEN}"}
"""A client's credentials, as the openai SDK sends them."""


async def _gone(server: WebServer) -> None:
    """Until every session has ended (a closed client's ends just after)."""
    async with asyncio.timeout(5):
        while server.connections:
            await asyncio.sleep(0.02)


def _pcm24(samples16k: np.ndarray) -> list[str]:
    """16 kHz float audio as 24 kHz PCM16 base64 chunks of 100 ms."""
    import soxr

    pcm = (np.clip(soxr.resample(samples16k, 16000, 24000), -1, 1) * 32767).astype("<i2")
    return [base64.b64encode(pcm[i : i + 2400].tobytes()).decode() for i in range(0, len(pcm), 2400)]


async def _stream(ws, chunks: list[str]) -> None:
    """Real time, as a microphone would (100 ms a message)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, chunk in enumerate(chunks):
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.1 - loop.time()))


async def _ask(ws, text: str) -> None:
    """A typed request, answered as the API has it: the item, then response.create."""
    await ws.send(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}))
    await ws.send(json.dumps({"type": "response.create"}))


async def _events(ws, until: str, timeout: float = 10.0) -> list[dict]:
    seen: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await ws.recv())
            seen.append(event)
            if event["type"] == until:
                return seen


def test_the_page_is_served_and_nothing_else(tmp_path):
    import httpx

    async def go():
        async with _server(tmp_path) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient() as client:
                page = await client.get(base + "/")
                missing = [await client.get(base + p) for p in ("/nothing.js", "/../config.yaml", "/%2e%2e/x.js")]
                plain = await client.get(base + "/v1/realtime")  # no upgrade
            return page, missing, plain

    page, missing, plain = asyncio.run(go())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()
    assert all(r.status_code == 404 for r in missing), [r.status_code for r in missing]
    assert plain.status_code in (400, 401, 426)  # no token, not a WebSocket: refused, no session


def test_who_gets_in(tmp_path):
    async def status_of(url: str, **kwargs) -> int:
        try:
            async with connect(url, **kwargs) as ws:
                await ws.recv()  # session.created
            await _gone(server)
            return 101
        except websockets.InvalidStatus as err:
            return err.response.status_code

    async def go():
        nonlocal server
        async with _server(tmp_path, max_sessions=1) as server:
            url = _ws(server)
            own = f"http://127.0.0.1:{server.port}"
            results = {
                "no token": await status_of(url),
                "wrong token": await status_of(url, additional_headers={"Authorization": "Bearer nope"}),
                "bearer": await status_of(url, additional_headers=BEARER),
                "browser": await status_of(
                    url, subprotocols=["realtime", f"openai-insecure-api-key.{TOKEN}"], origin=own),
                "other origin": await status_of(url, additional_headers=BEARER, origin="http://evil.example"),
            }
            async with connect(url, additional_headers=BEARER) as first:
                await first.recv()
                try:
                    async with connect(url, additional_headers=BEARER):
                        results["over max_sessions"] = 101
                except websockets.InvalidStatus as err:
                    results["over max_sessions"] = err.response.status_code
                    results["reason"] = err.response.body.decode()
            return results

    server = None
    results = asyncio.run(go())
    assert results == {
        "no token": 401, "wrong token": 401, "bearer": 101, "browser": 101, "other origin": 403,
        "over max_sessions": 503, "reason": results["reason"],
    }
    assert "max_sessions" in results["reason"]


def test_an_exposed_endpoint_needs_a_token(tmp_path):
    from voiceagent.errors import ConfigError

    with pytest.raises(ConfigError, match="web.token"):
        config_from_dict({"web": {"enabled": True, "host": "0.0.0.0"}}, tmp_path)
    config_from_dict({"web": {"enabled": True, "host": "0.0.0.0", "token": "x"}}, tmp_path)
    config_from_dict({"web": {"enabled": True, "host": "::1"}}, tmp_path)  # loopback: no token needed


def test_the_openai_sdk_is_answered_and_a_stop_cancels_the_response(tmp_path):
    from openai import AsyncOpenAI

    async def go():
        async with _server(tmp_path) as server:
            client = AsyncOpenAI(api_key=TOKEN, base_url=f"http://127.0.0.1:{server.port}/v1",
                                 websocket_base_url=f"ws://127.0.0.1:{server.port}/v1")
            kinds: list[str] = []
            done: list = []
            audio = 0
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.session.update(session={"type": "realtime", "audio": {"input": {
                    "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "whisper-1"}}}})
                sender = asyncio.ensure_future(_stream(conn._connection, _pcm24(
                    np.concatenate([silence(0.3), tone(0.8), silence(4.0)]))))
                async with asyncio.timeout(15):
                    async for event in conn:
                        kinds.append(event.type)
                        if event.type == "response.output_audio.delta":
                            audio += len(base64.b64decode(event.delta)) // 2
                            if audio > 24000 * 0.3 and not done:
                                await conn.response.cancel()
                                done.append("asked")
                        if event.type == "response.done":
                            done.append(event.response)
                            break
                sender.cancel()
            return kinds, done, audio

    kinds, done, audio = asyncio.run(go())
    for kind in ("session.created", "session.updated", "input_audio_buffer.speech_started",
                 "input_audio_buffer.speech_stopped", "conversation.item.input_audio_transcription.completed",
                 "response.created", "response.output_audio.delta", "response.output_audio_transcript.delta"):
        assert kind in kinds, kind
    response = done[-1]
    assert response.status == "cancelled" and response.status_details.reason == "client_cancelled"
    assert 24000 * 0.3 < audio < 24000 * 0.7  # stopped at once, not played out (1.5 s)
    transcript = response.output[0].content[0].transcript
    assert transcript and len(transcript.split()) < len(REPLY.split())


def test_bad_messages_get_an_error_and_the_session_goes_on(tmp_path):
    bad = [
        "not json", "[1, 2]", json.dumps({"no": "type"}), json.dumps({"type": "no.such.event"}),
        json.dumps({"type": "input_audio_buffer.append", "audio": "***"}),
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}),
        json.dumps({"type": "input_audio_buffer.append"}),
        json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}}),
        json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {
            "type": "audio/pcm", "rate": 44100}}}}}),
        json.dumps({"type": "conversation.item.truncate", "item_id": "item_x", "audio_end_ms": 5}),
        json.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "system",
                                                                 "content": []}}),
        json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (1 << 20)}),  # over the limit
        b"\x00\xff binary",
    ]

    async def go():
        async with _server(tmp_path) as server:
            async with connect(_ws(server), additional_headers=BEARER,
                               max_size=None) as ws:
                await _events(ws, "session.created")
                errors = []
                for message in bad:
                    await ws.send(message)
                    [event] = await _events(ws, "error")
                    errors.append(event["error"])
                # still the same session, still working
                await ws.send(json.dumps({"type": "session.update", "session": {
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}}))
                updated = (await _events(ws, "session.updated"))[-1]
                await _ask(ws, "hello")
                answered = await _events(ws, "response.done", timeout=10)
            return errors, updated, answered

    errors, updated, answered = asyncio.run(go())
    assert len(errors) == len(bad)
    for error in errors:
        assert error["message"] and "\n" not in error["message"] and len(error["message"]) < 300
    assert updated["session"]["audio"]["input"]["format"]["rate"] == 16000
    assert answered[-1]["response"]["status"] == "completed"
    assert any(e["type"] == "response.output_audio.delta" for e in answered)


def test_a_client_that_vanishes_mid_reply_frees_its_session(tmp_path):
    async def go():
        async with _server(tmp_path) as server:
            async with connect(_ws(server), additional_headers=BEARER) as ws:
                await _ask(ws, "hello")
                await _events(ws, "response.output_audio.delta")
                ws.transport.abort()  # gone, no close handshake
            await _gone(server)
            # the next client is served as before
            async with connect(_ws(server), additional_headers=BEARER) as ws:
                created = await _events(ws, "session.created")
            return server.forgotten, created  # type: ignore[attr-defined]

    forgotten, created = asyncio.run(go())
    assert forgotten[0] == "web-1"  # its saved LLM cache dropped (then web-2 at the stop)
    assert created[-1]["session"]["id"].startswith("sess_web2")


# ---------------------------------------------------------------- the network clock


class _Handler:
    def __init__(self) -> None:
        self.blocks: list[tuple[float, float]] = []
        self.idle = True

    def on_block(self, block, t):
        self.blocks.append((t, float(np.abs(block).max())))

    def on_playback(self, notice, t):
        pass


def _transport(tmp_path: Path) -> tuple[NetworkTransport, list]:
    cfg = config_from_dict({}, tmp_path)
    sent: list = []
    return NetworkTransport(cfg, lambda out, notices: sent.append(out), "test"), sent


def test_the_clock_hears_a_silent_client_as_silence_and_a_streaming_one_whole(tmp_path):
    async def go():
        transport, sent = _transport(tmp_path)
        handler = _Handler()
        stop = asyncio.Event()
        run = asyncio.ensure_future(transport.run(handler, Speaker(16000), TimelineClock(), stop))
        await asyncio.sleep(0.3)  # nothing sent: silence goes on in real time
        quiet = len(handler.blocks)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(10):  # 1 s of loud audio in 100 ms messages, in real time
            transport.feed(np.full(1600, 0.5, np.float32))
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.1 - loop.time()))
        await asyncio.sleep(0.3)
        stop.set()
        await run
        return quiet, handler.blocks, sent

    quiet, blocks, sent = asyncio.run(go())
    assert 8 <= quiet <= 16  # ~0.3 s of 20 ms blocks, less the wait for a first message
    loud = [i for i, (_, peak) in enumerate(blocks) if peak > 0.4]
    assert len(loud) == 50  # every sample heard
    assert loud == list(range(loud[0], loud[0] + 50))  # in one piece: no silence pushed into it
    assert 0 <= len(sent) - len(blocks) <= 10  # one output block per input block, sent up to 0.2 s before it
    times = [t for t, _ in blocks]
    assert times == sorted(times) and np.allclose(np.diff(times), 0.02)


def test_a_client_faster_than_real_time_is_paced_and_a_flood_refused(tmp_path):
    async def go():
        transport, _ = _transport(tmp_path)
        handler = _Handler()
        stop = asyncio.Event()
        run = asyncio.ensure_future(transport.run(handler, Speaker(16000), TimelineClock(), stop))
        assert transport.feed(np.full(16000 * 2, 0.5, np.float32))  # 2 s at once
        flooded = transport.feed(np.zeros(16000 * 40, np.float32))
        await asyncio.sleep(0.5)
        heard = len(handler.blocks) * 0.02
        stop.set()
        await run
        return heard, flooded

    heard, flooded = asyncio.run(go())
    assert 0.4 <= heard <= 0.5 + 0.2 + 0.06  # real time plus the lead, not 2 s at once
    assert flooded is False


def test_the_history_keeps_only_what_the_client_played(tmp_path):
    """A browser buffers what it is sent: its truncate (audio_end_ms) is what was heard."""

    async def go():
        async with _server(tmp_path) as server:
            async with connect(_ws(server), additional_headers=BEARER) as ws:
                await _ask(ws, "hello")
                done = (await _events(ws, "response.done"))[-1]["response"]
                item_id = done["output"][0]["id"]
                session = next(iter(server.connections.values())).session
                before = session.conv.history.exchanges[-1].assistant
                # 0.4 s of the 16 kHz session's 50 ms words: 8 of them
                await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": item_id,
                                          "content_index": 0, "audio_end_ms": 400}))
                truncated = (await _events(ws, "conversation.item.truncated"))[-1]
                return done, before, session.conv.history.exchanges[-1], truncated

    done, before, after, truncated = asyncio.run(go())
    assert done["status"] == "completed" and before == REPLY.strip()
    assert after.assistant == " ".join(REPLY.split()[:8]) and after.interrupted
    assert truncated["audio_end_ms"] == 400


def test_a_truncate_during_the_reply_caps_what_it_will_say_was_heard():
    speaker = Speaker(16000)
    speaker.enqueue(1, np.full(16000, 0.2, np.float32), "one two three four five six seven eight nine ten")
    speaker.finish(1)
    speaker.pull(8000)  # half sent to the client
    assert speaker.truncate(1, 4000) == "one two"  # it played a quarter
    _, notices = speaker.pull(8000)
    [end] = [n for n in notices if n.kind == "end"]
    assert end.heard == "one two"
    assert speaker.truncate(1, 1600) == "one"  # after the end too
    assert speaker.truncate(7, 100) is None


def test_a_taken_port_is_a_one_line_error(tmp_path):
    import socket

    from voiceagent.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = _cfg(tmp_path, port=port)
        server = WebServer(cfg, lambda name: None)  # type: ignore[arg-type,return-value]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(server.run(asyncio.Event()))


def test_https_and_wss_with_the_configured_certificate(tmp_path):
    """A phone's browser opens the microphone only on https: the page and the API over TLS."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make test installs it)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    trust = ssl.create_default_context(cafile=str(cert))

    async def go():
        import httpx

        async with _server(tmp_path, tls_cert=str(cert), tls_key=str(key)) as server:
            async with httpx.AsyncClient(verify=trust) as client:
                page = await client.get(f"https://127.0.0.1:{server.port}/")
            url = f"wss://127.0.0.1:{server.port}/v1/realtime"
            async with connect(url, ssl=trust, additional_headers=BEARER,
                               origin=f"https://127.0.0.1:{server.port}") as ws:
                created = await _events(ws, "session.created")
            return page.status_code, created[-1]["type"], server.url

    status, created, url = asyncio.run(go())
    assert (status, created) == (200, "session.created") and url.startswith("https://")


def test_the_token_never_reaches_the_log(tmp_path, caplog):
    import logging

    async def go():
        async with _server(tmp_path) as server:
            for protocols, headers in ((None, BEARER),
                                       (["realtime", f"openai-insecure-api-key.{TOKEN}"], {})):
                async with connect(_ws(server), subprotocols=protocols, additional_headers=headers) as ws:
                    await _events(ws, "session.created")
                await _gone(server)
            with contextlib.suppress(websockets.InvalidStatus):
                async with connect(_ws(server), additional_headers={"Authorization": f"Bearer {TOKEN}x"}):
                    pass

    with caplog.at_level(logging.DEBUG):
        asyncio.run(go())
    served = [r for r in caplog.records if not r.name.startswith("websockets.client")]  # not the test's own
    text = "\n".join(r.getMessage() for r in served)
    assert "Authorization" in text  # the server's headers were logged, at debug level
    assert TOKEN not in text


def test_a_stop_ends_the_reply_and_tells_the_client(tmp_path):
    async def go():
        async with _server(tmp_path) as server:
            async with connect(_ws(server), additional_headers=BEARER) as ws:
                await _ask(ws, "hello")
                await _events(ws, "response.output_audio.delta")
                server.stopper.set()  # type: ignore[attr-defined]  # SIGTERM, as serve has it
                done = (await _events(ws, "response.done"))[-1]
                with pytest.raises(websockets.ConnectionClosed):
                    await _events(ws, "never")
                return done, ws.close_code

    done, code = asyncio.run(go())
    assert done["response"]["status"] == "cancelled" and code == 1001
