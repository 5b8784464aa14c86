"""Fuzzed MQTT commands: payloads of every shape on every topic the bridge hears,
and any sequence of commands through the daemon's controls.

The bridge's handling of one message (``MqttBridge._on_message``, what the
listener calls for each) must either call a control with a sound argument (one
line of text, at most 255 characters; ON/OFF; a press) or log and ignore the
message, with log lines of one line each: never raise. The daemon's controls
(``DaemonControls``) must keep their bounds under any sequence: few
announcements waiting, one question waiting, the latest question answered, no
task per command. Reproducible (``derandomize``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fuzz import case_reporter, fuzz_settings
from tests.support.mqtt import FakeControls, make_config
from voiceagent.session.controls import MAX_WAITING_SAYS, DaemonControls
from voiceagent.events import TurnEnd
from voiceagent.mqtt import MqttBridge
from voiceagent.mqtt.discovery import COMMAND_ENTITIES, MAX_STATE_CHARS

LIMIT = 1024
"""mqtt.max_payload_bytes (the default)."""

FUZZ = fuzz_settings(400)
CASES: Counter[str] = Counter()
_report_cases = case_reporter(CASES)


# -- one message at the bridge -----------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

payloads = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=LIMIT - 2, max_size=LIMIT + 2),
    st.sampled_from([b"", b"x" * 100_000, b"\xff\xfe\xfd", b"\xc3", b"\xed\xa0\x80", b"\x00", b"PRESS",
                     b"ON", b"off", b" On ", b"\tON\n", b"\xef\xbb\xbfON", b"ON\x00", b"a\nb", b"\r\n"]),
    st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=250, max_size=260).map(str.encode),
)


def _topics(bridge: MqttBridge) -> list[str]:
    t = bridge.topics
    return [*(t.command(e) for e in COMMAND_ENTITIES), t.ha_status, t.state("mute"), "voiceagent/other/say/set"]


def _sound(name: str, arg: object) -> bool:
    if name in ("say", "ask"):
        return (
            isinstance(arg, str) and 0 < len(arg) <= MAX_STATE_CHARS and arg == arg.strip()
            and not any(unicodedata.category(c) == "Cc" for c in arg)
        )
    if name == "set_muted":
        return isinstance(arg, bool)
    return name == "stop" and arg is None


@FUZZ
@given(data=st.data(), payload=payloads, retain=st.booleans())
def test_every_payload_on_every_topic_is_handled_or_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, data: st.DataObject, payload: bytes, retain: bool
) -> None:
    controls = FakeControls()
    bridge = MqttBridge(make_config(tmp_path), controls, "x")
    topic = data.draw(st.sampled_from(_topics(bridge)), label="topic")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, "voiceagent"):
        bridge._on_message(aiomqtt.Message(topic, payload, 1, retain, 1, None))
    for name, arg in controls.calls:
        assert _sound(name, arg), (name, arg)
    for record in caplog.records:
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage(), record.getMessage()
        assert len(record.getMessage()) < 400
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) <= 1
    command = topic in {bridge.topics.command(e) for e in COMMAND_ENTITIES}
    if command and not controls.calls:
        assert warned, f"{payload[:60]!r} on {topic} was ignored without a word"
    CASES["command done" if controls.calls else "ignored"] += 1


def test_a_flood_of_bad_commands_is_one_line_per_kind_and_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    controls = FakeControls()
    bridge = MqttBridge(make_config(tmp_path), controls, "x")
    with caplog.at_level(logging.DEBUG, "voiceagent"):
        for i in range(2000):
            for topic in _topics(bridge):
                bridge._on_message(aiomqtt.Message(topic, b"\xff" + bytes([i % 256]), 1, False, 1, None))
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 3, warned  # say, ask, mute: not UTF-8 (stop takes any press)
    assert len(controls.calls) == 2000 and {c[0] for c in controls.calls} == {"stop"}
    CASES["flood of 12000 bad messages"] += 1


# -- any sequence through the daemon's controls ----------------------------------------


class FakeLedger:
    def __init__(self) -> None:
        self.live: list[int] = []

    def replying(self) -> list[int]:
        return list(self.live)


class FakeConversation:
    """Turns that play until the test ends them; a say or an ask cuts what plays.

    Every turn here is one the controls started, so a say that finds a turn
    playing would be an announcement cutting another, or an answer."""

    def __init__(self) -> None:
        self.turns = FakeLedger()
        self.started: list[tuple[str, str, float]] = []
        self.controls: DaemonControls | None = None
        self._ids = 0

    def _cut_all(self) -> int:
        cut = list(self.turns.live)
        self.turns.live.clear()
        for turn in cut:  # the real ledger publishes the end of a cut turn at once
            self.end(turn, "stopped")
        return len(cut)

    def end(self, turn: int, reason: str = "answered") -> None:
        if turn in self.turns.live:
            self.turns.live.remove(turn)
        assert self.controls is not None
        self.controls.on_event(TurnEnd(0.0, turn, "", "", reason))

    def _start(self, kind: str, text: str) -> int:
        self._cut_all()
        self._ids += 1
        self.started.append((kind, text, asyncio.get_running_loop().time()))
        self.turns.live.append(self._ids)
        return self._ids

    def say(self, text: str) -> int:
        assert not self.turns.live, "an announcement cut a say or an answer"
        return self._start("say", text)

    def ask(self, text: str) -> int:
        return self._start("ask", text)

    def stop(self) -> int:
        return self._cut_all()


class FakeListener:
    def __init__(self) -> None:
        self.conv = FakeConversation()
        self.muted = False


INTERVAL_S = 0.005

steps = st.lists(
    st.one_of(
        st.tuples(st.just("say"), st.sampled_from(["Dinner.", "Door.", "Rain.", "Mail.", "Bus."])),
        st.tuples(st.just("ask"), st.sampled_from(["Time?", "Weather?", "News?", "Jokes?"])),
        st.tuples(st.just("stop"), st.none()),
        st.tuples(st.just("mute"), st.booleans()),
        st.tuples(st.just("end"), st.sampled_from(["answered", "interrupted"])),
        st.tuples(st.just("wait"), st.sampled_from([0.0, 0.002, INTERVAL_S, 2 * INTERVAL_S])),
    ),
    max_size=40,
)


@settings(FUZZ, max_examples=150)
@given(sequence=steps)
def test_any_sequence_of_commands_keeps_the_bounds_and_the_latest_question(sequence) -> None:
    async def go() -> None:
        listener = FakeListener()
        conv = listener.conv
        controls = DaemonControls(listener, ask_interval_s=INTERVAL_S)  # type: ignore[arg-type]
        conv.controls = controls
        last_ask = None
        for command, arg in sequence:
            match command:
                case "say":
                    controls.say(arg)
                case "ask":
                    controls.ask(arg)
                    last_ask = arg
                case "stop":
                    controls.stop()
                    last_ask = None
                case "mute":
                    controls.set_muted(arg)
                    assert listener.muted is arg
                case "end":
                    if conv.turns.live:
                        conv.end(conv.turns.live[0], arg)
                case "wait":
                    await asyncio.sleep(arg)
            await asyncio.sleep(0)  # a say that follows a turn's end starts on the next loop turn
            assert len(controls.says) <= MAX_WAITING_SAYS
            assert len(asyncio.all_tasks()) == 1, "a task per command"
        await asyncio.sleep(3 * INTERVAL_S)
        asks = [(text, t) for kind, text, t in conv.started if kind == "ask"]
        if last_ask is not None:  # the latest question wins
            assert asks and asks[-1][0] == last_ask, (asks, sequence)
        starts = [t for _, t in asks]
        assert all(b - a >= INTERVAL_S * 0.9 for a, b in zip(starts, starts[1:])), starts
        controls.close()

    asyncio.run(go())
    CASES["command sequence"] += 1
