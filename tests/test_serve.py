"""``voiceagent serve`` end to end: the real models, a real mosquitto broker, file
input, commands from a test client, the broker dying, SIGTERM and SIGKILL.

Each test starts the daemon as a user (or systemd) would, and looks at what Home
Assistant would see on the broker, the output WAV, the event log and the
conversation log.
"""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import soundfile

from tests.support.broker import Broker
from tests.support.cli import load_events
from tests.support.daemon import BASE, NODE, REQUEST, WITH_WAKE, Daemon, serve_config, wait_state
from tests.support.speech import real, require_models, word_error_rate

pytestmark = pytest.mark.realmodel

ENTITIES = {
    "state": "sensor", "transcript": "sensor", "reply": "sensor", "latency": "sensor",
    "mute": "switch", "say": "text", "ask": "text", "stop": "button", "timer": "sensor",
}
WITHOUT_WAKE = real("read_amiable_himself")
QUIET = 0.01
"""Output peak (-40 dBFS) below which the speaker counts as silent."""


@pytest.fixture(autouse=True)
def _models():
    require_models()


def test_home_assistant_sees_it_commands_it_and_sees_it_go_offline(tmp_path, broker: Broker):
    rec = broker.recorder()
    config = serve_config(tmp_path, broker)
    daemon = Daemon(tmp_path, config, [0.5, WITHOUT_WAKE, 3.0, WITH_WAKE, 2.0])
    try:
        # -- discovery: one device, eight entities, each valid for Home Assistant
        rec.wait_for(f"{BASE}/availability", "online", timeout=60)
        rec.wait_for(f"homeassistant/button/{NODE}/stop/config")
        with broker.recorder() as late:  # Home Assistant starting later sees it too
            late.wait_for(f"{BASE}/availability", "online")
            for object_id, component in ENTITIES.items():
                msg = late.wait_for(f"homeassistant/{component}/{NODE}/{object_id}/config")
                assert msg.retain, "discovery must be retained"
        for object_id, component in ENTITIES.items():
            cfg = rec.wait_for(f"homeassistant/{component}/{NODE}/{object_id}/config").json()
            assert cfg["unique_id"] == f"{NODE}_{object_id}"
            avail = cfg.get("availability_topic") or cfg["availability"][0]["topic"]
            assert avail == f"{BASE}/availability"
            assert cfg["device"]["identifiers"] and cfg["device"]["name"]
            if component in ("sensor", "switch"):
                assert cfg["state_topic"].startswith(BASE)
            if component in ("switch", "text", "button"):
                assert cfg["command_topic"].startswith(BASE)
        ids = [json.loads(m.payload)["unique_id"] for m in rec.messages() if m.topic.endswith("/config")]
        assert len(ids) == len(set(ids)) == len(ENTITIES)

        # -- the wake word: the question without it is ignored, with it answered
        transcript = rec.wait_for(f"{BASE}/transcript/state", timeout=60)
        assert word_error_rate(REQUEST.text, transcript.text) <= 0.34, transcript.text
        assert "jarvis" not in transcript.text.lower()  # trimmed
        rec.wait_for(f"{BASE}/reply/state", lambda m: bool(m.text.strip()), timeout=30)
        latency = rec.wait_for(f"{BASE}/latency/state", timeout=30)
        assert 0 < int(latency.text) < 5000
        mark = rec.mark()
        wait_state(rec, "idle", since=0)

        # -- say: speech in the output, idle -> thinking/speaking -> idle
        rec.publish(f"{BASE}/say/set", "The washing machine is done.")
        wait_state(rec, "speaking", since=mark)
        mark = rec.mark()
        wait_state(rec, "idle", since=mark)
        said = rec.wait_for(f"{BASE}/reply/state", "The washing machine is done.", since=mark)
        assert said

        # -- ask, then stop while it speaks
        mark = rec.mark()
        rec.publish(f"{BASE}/ask/set", "Tell me a long story about a brave knight and a dragon.")
        wait_state(rec, "thinking", since=mark)
        wait_state(rec, "speaking", since=mark)
        time.sleep(0.5)
        rec.publish(f"{BASE}/stop/set", "PRESS")
        wait_state(rec, "idle", since=mark)

        # -- mute: the switch's state follows the command
        mark = rec.mark()
        rec.publish(f"{BASE}/mute/set", "ON")
        rec.wait_for(f"{BASE}/mute/state", "ON", since=mark)
        rec.publish(f"{BASE}/mute/set", "OFF")
        rec.wait_for(f"{BASE}/mute/state", "OFF", since=mark)

        # -- SIGTERM: offline within a couple of seconds
        mark = rec.mark()
        code, took = daemon.signal(signal.SIGTERM)
        assert code == 0, daemon.log()
        assert took < 3.0, f"took {took:.1f} s to stop"
        try:
            rec.wait_for(f"{BASE}/availability", "offline", since=mark)
        except AssertionError as err:
            raise AssertionError(f"{err}\ndaemon log:\n{daemon.log()}") from None
    finally:
        daemon.close()
        rec.close()

    events = load_events(daemon.events)
    ends = {e["turn"]: e for e in events if e["type"] == "turn_end"}
    # The comma pause after the wake word may end a turn of its own ("wake_word",
    # then the request within wake.listen_s) or not: either way the request is answered.
    reasons = [e["reason"] for e in ends.values() if e["reason"] != "wake_word"]
    assert reasons[:2] == ["not_addressed", "answered"], ends
    assert any(e["type"] == "wake_word" for e in events)
    # the output has the reply to the question, the announcement and part of the story
    audio, rate = soundfile.read(str(daemon.out), dtype="float32")
    played = [e for e in events if e["type"] == "playback_end"]
    assert len(played) == 3, played
    starts = {e["turn"]: e["t"] for e in events if e["type"] == "playback_start"}
    for end in played:
        segment = audio[int(starts[end["turn"]] * rate) : int(end["t"] * rate)]
        assert np.abs(segment).max() > 0.1, end
    stopped = played[-1]
    assert ends[stopped["turn"]]["reason"] == "stopped"
    after = audio[int((stopped["t"] + 0.05) * rate) :]
    assert after.size and np.abs(after).max() < QUIET, "still speaking after stop"
    # the conversation log has the three turns addressed to the assistant, in order
    lines = [json.loads(line) for line in (tmp_path / "conversations.jsonl").read_text().splitlines()]
    assert [(x["source"], x["reason"], x["interrupted"]) for x in lines] == [
        ("voice", "answered", False), ("say", "answered", False), ("ask", "stopped", True),
    ]
    assert lines[0]["latency_ms"] and lines[0]["reply"]


def test_it_survives_the_broker_and_a_kill_leaves_it_offline(tmp_path, broker: Broker):
    rec = broker.recorder()
    config = serve_config(tmp_path, broker, wake={"model": "none"})
    daemon = Daemon(tmp_path, config, [0.5])
    try:
        rec.wait_for(f"{BASE}/availability", "online", timeout=60)
        # the broker dies; it forgets every retained message, and comes back
        broker.kill()
        time.sleep(1.0)
        broker.restart()
        rec.wait_subscribed(2, timeout=10)
        mark = rec.mark()
        rec.wait_for(f"{BASE}/availability", "online", since=mark, timeout=15)
        rec.wait_for(f"homeassistant/sensor/{NODE}/state/config", since=mark)
        # the voice loop went on meanwhile, and commands work again
        rec.publish(f"{BASE}/ask/set", "What is the capital of France?")
        rec.wait_for(f"{BASE}/reply/state", lambda m: bool(m.text.strip()), since=mark, timeout=30)
        # Home Assistant restarts: discovery again
        mark = rec.mark()
        rec.publish("homeassistant/status", "online")
        rec.wait_for(f"homeassistant/button/{NODE}/stop/config", since=mark)
        # malformed and oversized commands are ignored, the daemon goes on
        rec.publish(f"{BASE}/ask/set", b"\xff\xfe not utf-8")
        rec.publish(f"{BASE}/say/set", "x" * 5000)
        rec.publish(f"{BASE}/mute/set", "MAYBE")
        mark = rec.mark()
        rec.publish(f"{BASE}/mute/set", "ON")
        rec.wait_for(f"{BASE}/mute/state", "ON", since=mark)
        assert daemon.proc.poll() is None
        # killed outright: the broker publishes the last will
        mark = rec.mark()
        daemon.signal(signal.SIGKILL)
        rec.wait_for(f"{BASE}/availability", "offline", since=mark, timeout=10)
    finally:
        daemon.close()
        rec.close()
    log = daemon.log()
    for why in ("not UTF-8", "over mqtt.max_payload_bytes", "got 'MAYBE'"):
        assert why in log, log[-3000:]
