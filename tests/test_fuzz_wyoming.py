"""Fuzzed Wyoming clients: whatever a client sends to the Wyoming services (bytes
that are no event, headers of any shape, lengths that lie, events of every type
with any data, audio in formats we do not take), the service answers, sends an
``error``, or drops that client with one log line, and the next client is served
as before. Fake models (fast); tests/test_wyoming_realmodel.py has the real ones.
Reproducible (``derandomize``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.support.fakes import FakeChat, FakeSynth, FakeTranscriber
from tests.support.fuzz import case_reporter, fuzz_settings
from tests.support.web import free_port
from voiceagent.config import config_from_dict
from voiceagent.host.host import share
from voiceagent.servers.wyoming import WyomingService
from voiceagent.wyoming_bounded import MAX_PAYLOAD
from voiceagent.stages.loading import Models
from voiceagent.stages.workers import InlineWorker

FUZZ = fuzz_settings(150)
CASES: Counter[str] = Counter()
_report_cases = case_reporter(CASES)

TYPES = ["describe", "transcribe", "audio-start", "audio-chunk", "audio-stop", "synthesize", "synthesize-start",
         "synthesize-chunk", "synthesize-stop", "transcript", "detect", "run-satellite", "ping", "nonsense", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@st.composite
def events(draw) -> bytes:
    header: dict = {"type": draw(st.sampled_from(TYPES) | st.text(max_size=10))}
    if draw(st.booleans()):
        header["data"] = draw(st.fixed_dictionaries({}, optional={
            "rate": st.sampled_from([16000, 22050, 8000, 0, -5, 1.5]) | json_values,
            "width": st.sampled_from([2, 1, 4, 0]) | json_values,
            "channels": st.sampled_from([1, 2, 0]) | json_values,
            "text": st.text(max_size=50) | json_values,
        }))
    payload = draw(st.binary(max_size=300))
    lie = draw(st.sampled_from([0, 0, 0, 5, -3, MAX_PAYLOAD + 1, 2**62]))
    if payload or lie:
        header["payload_length"] = len(payload) + lie if lie != 2**62 else lie
    return json.dumps(header).encode() + b"\n" + payload


clients = st.lists(st.one_of(events(), st.binary(max_size=200), st.just(b"x" * 70_000 + b"\n")), max_size=5)


def _service(tmp_path: Path) -> tuple[WyomingService, str]:
    cfg = config_from_dict({}, tmp_path)
    uri = f"tcp://127.0.0.1:{free_port()}"
    shared = share(cfg, Models(FakeTranscriber(), FakeChat(), FakeSynth()), workers=InlineWorker)
    return WyomingService(cfg, uri, shared), uri


@contextlib.asynccontextmanager
async def _running(tmp_path: Path) -> AsyncIterator[tuple[WyomingService, str]]:
    """The service on fakes, listening, until the block ends."""
    service, uri = _service(tmp_path)
    stop = asyncio.Event()
    task = asyncio.ensure_future(service.run(stop))
    await service.listening.wait()
    try:
        yield service, uri
    finally:
        stop.set()
        await task


async def _exchange(uri: str, data: bytes, wait: float = 0.05) -> bytes:
    host, port = uri[len("tcp://"):].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    got = b""
    try:
        writer.write(data)
        await writer.drain()
        got = await asyncio.wait_for(reader.read(1 << 20), wait)
    except (TimeoutError, ConnectionError):  # the service dropped us: that is allowed
        pass
    writer.close()
    return got


@FUZZ
@given(st.lists(clients, min_size=1, max_size=4))
def test_any_client_leaves_the_service_serving(tmp_path_factory, batch):
    async def go():
        async with _running(tmp_path_factory.mktemp("wy")) as (service, uri):
            for client in batch:
                await _exchange(uri, b"".join(client))
                CASES["client"] += 1
            info = await _exchange(uri, b'{"type": "describe"}\n', wait=2.0)
            assert b'"type": "info"' in info or b'"type":"info"' in info, info[:200]

    asyncio.run(go())


def test_bad_input_is_one_log_line(tmp_path, caplog):
    async def go():
        async with _running(tmp_path) as (service, uri):
            for data in (b"{not json\n", b'{"type": "audio-chunk", "payload_length": 99999999}\n',
                         b'{"type": "audio-start", "data": {"rate": 16000, "width": 4, "channels": 1}}\n'
                         b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 4, "channels": 1},'
                         b' "payload_length": 8}\n12345678{"type": "audio-stop"}\n'):
                await _exchange(uri, data, wait=0.5)

    with caplog.at_level(logging.INFO, logger="voiceagent.servers.wyoming"):
        asyncio.run(go())
    lines = [r for r in caplog.records if r.name == "voiceagent.servers.wyoming" and "Wyoming services at" not in r.getMessage()]
    assert len(lines) == 3, [r.getMessage() for r in lines]
    assert all("\n" not in r.getMessage() and not r.exc_info for r in lines)


def test_a_conversation_id_keeps_the_history_across_connections(tmp_path):
    """Home Assistant opens a connection per turn; a client that names its
    conversation (``context.conversation_id``, newer wyoming) is answered with
    the turns before; one that does not starts afresh each connection."""
    from wyoming.asr import Transcript
    from wyoming.client import AsyncClient
    from wyoming.handle import Handled

    async def go():
        async with _running(tmp_path) as (service, uri):
            for text, context in (("What is a heron?", {"conversation_id": "c1"}),
                                  ("How tall is it?", {"conversation_id": "c1"}),
                                  ("And a crane?", None)):
                async with AsyncClient.from_uri(uri) as client:
                    await client.write_event(Transcript(text=text, context=context).event())
                    while not Handled.is_type((await client.read_event()).type):
                        pass
        return service.shared.models.chat.seen

    seen = asyncio.run(go())
    users = [[m["content"] for m in messages if m["role"] == "user"] for messages in seen]
    assert users == [["What is a heron?"], ["What is a heron?", "How tall is it?"], ["And a crane?"]]
