"""Fuzzed Realtime API messages: anything a client can send on a connection.

One message at a connection (``RealtimeConnection.handle``) must either be taken
(audio fed to the session's clock, a setting changed, text asked, a reply
stopped or truncated) or refused with a ``ClientError`` whose message is one
short line, which the connection sends back as an ``error`` event before going
on: never raise anything else. The session's side is a recording stand-in here;
tests/test_web.py sends the same kinds of messages to real sessions over a real
socket. Reproducible (``derandomize``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzz import case_reporter, fuzz_settings
from voiceagent.config import config_from_dict
from voiceagent.servers import realtime_events as rt
from voiceagent.servers.realtime import RealtimeConnection
from voiceagent.transports.web import NetworkTransport

LIMIT = 4096
CFG = config_from_dict({}, Path("."))
FUZZ = fuzz_settings(500)
CASES: Counter[str] = Counter()
_report_cases = case_reporter(CASES)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=16,
)
b64 = st.one_of(
    st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=40),
    st.sampled_from(["", "=", "A", "AA==", "AAA=", "////", "\u00e9\u00e9", "A" * (LIMIT + 10)]),
)
formats = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(["audio/pcm", "audio/pcmu", "audio/pcma", "x"]),
                           "rate": st.one_of(st.sampled_from([16000, 24000, 8000, 0, -1]), json_values)}),
)
events = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_audio_buffer.append"), "audio": b64}),
    st.fixed_dictionaries({"type": st.just("session.update"), "session": st.one_of(json_values, st.fixed_dictionaries({
        "audio": st.fixed_dictionaries({"input": st.fixed_dictionaries({"format": formats, "transcription": json_values}),
                                        "output": st.fixed_dictionaries({"format": formats})}),
        "input_audio_format": json_values, "instructions": json_values}))}),
    st.fixed_dictionaries({"type": st.just("conversation.item.create"), "item": st.one_of(json_values, st.fixed_dictionaries({
        "type": st.sampled_from(["message", "function_call", 3]), "role": st.sampled_from(["user", "system", None]),
        "content": st.one_of(json_values, st.lists(st.fixed_dictionaries({
            "type": st.sampled_from(["input_text", "input_audio"]), "text": json_values}), max_size=3))}))}),
    st.fixed_dictionaries({"type": st.just("conversation.item.truncate"), "item_id": json_values,
                           "audio_end_ms": json_values, "content_index": json_values}),
    st.fixed_dictionaries({"type": st.sampled_from(sorted(rt.CLIENT_EVENTS) + ["nope", ""])}),
    st.dictionaries(st.sampled_from(["type", "event_id", "audio", "session", "item"]), json_values, max_size=4),
)
messages = st.one_of(
    events.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.just("x" * (LIMIT + 1)),
)


class _Conversation:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def ask(self, text: str) -> int:
        assert isinstance(text, str) and text.strip() and len(text) <= 2000
        self.calls.append(("ask", text))
        return 1

    def stop(self) -> int:
        self.calls.append(("stop",))
        return 0

    def truncate(self, turn: int, samples: int) -> None:
        assert turn >= 0 and samples >= 0
        self.calls.append(("truncate", turn, samples))


class _Session:
    def __init__(self) -> None:
        self.conv = _Conversation()


class _Socket:
    async def send(self, message: str) -> None:
        pass


@FUZZ
@given(st.lists(messages, min_size=1, max_size=6))
def test_any_message_is_taken_or_refused_in_one_line(batch):
    async def go():
        conn = RealtimeConnection(_Socket(), "web-1", "m", 16000, "joe", LIMIT)  # type: ignore[arg-type]
        transport = NetworkTransport(CFG, lambda out, notices: None, "fuzz")
        conn.session, conn.transport = _Session(), transport  # type: ignore[assignment]
        for message in batch:
            try:
                conn.handle(message)
                CASES["taken"] += 1
            except rt.ClientError as err:
                assert err.message and "\n" not in err.message and len(err.message) < 300, err.message
                CASES["refused"] += 1
        assert transport.buffered_s <= 60
        assert conn.settings.input_rate in rt.RATES and conn.settings.output_rate in rt.RATES

    asyncio.run(go())
