"""The Home Assistant MQTT bridge against a real mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from voiceagent.config import config_from_dict
from voiceagent.errors import ConfigError
from voiceagent.mqtt import MqttBridge, Topics, discovery_messages, truncate_state

from tests.support.broker import Broker, Recorder, make_tls_files
from tests.support.mqtt import (
    LOGGER, NODE, FakeControls, make_config, running, start_bridge, until, wait_online,
)

REPO = Path(__file__).resolve().parents[1]


# -- discovery (pure) ----------------------------------------------------------------


def test_discovery_configs(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, device_name="Kitchen Voice")
    topics = Topics.from_config(cfg.mqtt)
    messages = discovery_messages(cfg.mqtt, "1.2.3")
    by_id = {payload["unique_id"]: (topic, payload) for topic, payload in messages}
    assert len(by_id) == len(messages) == 9, "unique_ids must be unique"
    components = {
        "state": "sensor", "transcript": "sensor", "reply": "sensor", "latency": "sensor",
        "mute": "switch", "say": "text", "ask": "text", "stop": "button", "timer": "sensor",
    }  # fmt: skip
    assert set(by_id) == {f"{NODE}_{oid}" for oid in components}
    for oid, component in components.items():
        topic, payload = by_id[f"{NODE}_{oid}"]
        assert topic == f"homeassistant/{component}/{NODE}/{oid}/config"
        json.loads(json.dumps(payload))  # plain JSON
        assert payload["name"] and payload["icon"].startswith("mdi:")
        assert payload["availability_topic"] == f"voiceagent/{NODE}/availability"
        assert (payload["payload_available"], payload["payload_not_available"]) == (
            "online",
            "offline",
        )
        assert payload["device"] == {
            "identifiers": [f"voiceagent_{NODE}"],
            "name": "Kitchen Voice",
            "manufacturer": "voiceagent",
            "model": "voiceagent",
            "sw_version": "1.2.3",
        }
        assert payload["default_entity_id"] == f"{component}.{NODE}_{oid}"
        has_state = oid in ("state", "transcript", "reply", "latency", "mute", "timer")
        assert ("state_topic" in payload) == has_state
        if has_state:
            assert payload["state_topic"] == topics.state(oid) == f"voiceagent/{NODE}/{oid}/state"
        has_command = oid in ("mute", "say", "ask", "stop")
        assert ("command_topic" in payload) == has_command
        if has_command:
            assert payload["command_topic"] == topics.command(oid) == f"voiceagent/{NODE}/{oid}/set"
    state = by_id[f"{NODE}_state"][1]
    assert state["device_class"] == "enum"
    assert state["options"] == ["idle", "listening", "thinking", "speaking"]
    latency = by_id[f"{NODE}_latency"][1]
    assert (latency["unit_of_measurement"], latency["state_class"]) == ("ms", "measurement")
    mute = by_id[f"{NODE}_mute"][1]
    assert (mute["payload_on"], mute["payload_off"]) == ("ON", "OFF")
    for oid in ("say", "ask"):
        assert by_id[f"{NODE}_{oid}"][1]["mode"] == "text"
        assert by_id[f"{NODE}_{oid}"][1]["max"] == 255
    assert by_id[f"{NODE}_stop"][1]["payload_press"] == "PRESS"
    assert topics.ha_status == "homeassistant/status"
    # Controls are config (HA's Assist does not expose them), the latency diagnostic.
    categories = {oid: by_id[f"{NODE}_{oid}"][1].get("entity_category") for oid in components}
    assert categories == {
        "state": None, "transcript": None, "reply": None, "latency": "diagnostic",
        "mute": "config", "say": "config", "ask": "config", "stop": "config", "timer": None,
    }  # fmt: skip
    assert by_id[f"{NODE}_timer"][1]["device_class"] == "timestamp"
    assert "suggested_area" not in by_id[f"{NODE}_state"][1]["device"]
    placed = discovery_messages(cfg.mqtt, "1.2.3", suggested_area="Office")
    assert all(payload["device"]["suggested_area"] == "Office" for _, payload in placed)


def test_node_id_defaults_to_device_name_slug(tmp_path: Path) -> None:
    cfg = config_from_dict({"mqtt": {"device_name": "Living Room!"}}, tmp_path)
    topics = Topics.from_config(cfg.mqtt)
    assert topics.availability == "voiceagent/living_room/availability"
    first_topic = discovery_messages(cfg.mqtt, "x")[0][0]
    assert first_topic == "homeassistant/sensor/living_room/state/config"


def test_truncate_state() -> None:
    assert truncate_state("short") == "short"
    assert truncate_state("x" * 255) == "x" * 255
    cut = truncate_state("word " * 100)
    assert len(cut) <= 255 and cut.endswith("…") and cut.startswith("word word")


def test_publish_state_rejects_values_home_assistant_would_reject(tmp_path: Path) -> None:
    bridge = MqttBridge(make_config(tmp_path), FakeControls(), "x")
    for entity, value in [("nope", "x"), ("state", "dancing"), ("latency", "fast"), ("mute", "on")]:
        with pytest.raises(ValueError):
            bridge.publish_state(entity, value)
    bridge.publish_state("state", "idle")  # no broker, not running: remembered only


def test_config_errors_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="password_file"):
        MqttBridge(
            make_config(tmp_path, username="u", password_file="missing"), FakeControls(), "x"
        )
    with pytest.raises(ConfigError, match="mqtt.tls.ca_file"):
        MqttBridge(
            make_config(tmp_path, tls={"enabled": True, "ca_file": "nope.pem"}), FakeControls(), "x"
        )
    with pytest.raises(ConfigError, match="username"):
        MqttBridge(make_config(tmp_path, password="p"), FakeControls(), "x")


def test_disabled_run_returns_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bridge = MqttBridge(make_config(tmp_path, enabled=False), FakeControls(), "x")
    caplog.set_level(logging.INFO, LOGGER)
    asyncio.run(asyncio.wait_for(bridge.run(asyncio.Event()), 1))
    assert "mqtt.enabled is false" in caplog.text


# -- against a broker -----------------------------------------------------------------


def test_announces_discovery_online_and_states_retained(
    tmp_path: Path, broker: Broker, recorder: Recorder
) -> None:
    bridge, _ = start_bridge(tmp_path, broker)
    t = bridge.topics
    long_reply = "This reply is long. " * 20  # 400 characters

    async def go() -> None:
        # Set before the bridge runs: published on connect.
        bridge.publish_state("state", "listening")
        bridge.publish_state("mute", "OFF")
        async with running(bridge):
            await wait_online(recorder, bridge)
            mark = recorder.mark()
            bridge.publish_state("state", "thinking")
            bridge.publish_state("transcript", "what time is it")
            bridge.publish_state("reply", long_reply)
            bridge.publish_state("latency", "412")
            await recorder.wait_for_async(t.state("latency"), "412", since=mark)
            recorder.wait_for(t.state("state"), "thinking", since=mark)
            recorder.wait_for(t.state("transcript"), "what time is it", since=mark)
            reply = recorder.wait_for(t.state("reply"), since=mark).text
            assert len(reply) <= 255 and reply.endswith("…")
            attributes = recorder.wait_for(t.attributes("reply"), since=mark).json()
            assert attributes == {"text": long_reply}

    asyncio.run(go())

    # A client connecting later (Home Assistant) gets everything retained.
    with broker.recorder() as late:
        for topic, payload in discovery_messages(bridge._cfg.mqtt, "1.2.3"):
            got = late.wait_for(topic)
            assert got.retain and got.json() == payload
        assert late.wait_for(t.availability).retain
        assert late.wait_for(t.availability).text == "offline"  # it stopped cleanly
        for entity, value in [("state", "thinking"), ("mute", "OFF"), ("latency", "412")]:
            got = late.wait_for(t.state(entity))
            assert (got.text, got.retain) == (value, True)
        first = recorder.messages(t.availability)[0]
        assert first.text == "online"
        # Discovery came before online, and states after it.
        assert all(m.seq < first.seq for m in recorder.messages() if m.topic.endswith("/config"))
        assert recorder.messages(t.state("state"))[0].text == "listening"
        assert recorder.messages(t.state("state"))[0].seq > first.seq


def test_commands_round_trip(tmp_path: Path, broker: Broker, recorder: Recorder) -> None:
    bridge, controls = start_bridge(tmp_path, broker)
    t = bridge.topics

    async def go() -> None:
        async with running(bridge):
            await wait_online(recorder, bridge)
            recorder.publish(t.command("say"), "Dinner is ready")
            recorder.publish(t.command("ask"), "  what's the weather?  ")
            recorder.publish(t.command("stop"), "PRESS")
            await until(lambda: len(controls.calls) == 3, what="3 calls")
            assert controls.calls == [
                ("say", "Dinner is ready"),
                ("ask", "what's the weather?"),
                ("stop", None),
            ]
            mark = recorder.mark()
            recorder.publish(t.command("mute"), "on")
            await recorder.wait_for_async(t.state("mute"), "ON", since=mark)
            recorder.publish(t.command("mute"), "OFF")
            await recorder.wait_for_async(t.state("mute"), "OFF", since=mark)
            assert controls.calls[3:] == [("set_muted", True), ("set_muted", False)]

    asyncio.run(go())


def test_malformed_commands_are_logged_and_ignored(
    tmp_path: Path, broker: Broker, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    bridge, controls = start_bridge(tmp_path, broker, max_payload_bytes=300)
    t = bridge.topics
    caplog.set_level(logging.DEBUG, LOGGER)
    bad = [
        (t.command("say"), b"\xff\xfe not utf-8", "not UTF-8"),
        (t.command("say"), b"   ", "empty"),
        (t.command("ask"), b"", "empty"),
        (t.command("ask"), ("a" * 256).encode(), "256 characters"),
        (t.command("say"), b"x" * 301, "max_payload_bytes"),
        (t.command("stop"), b"x" * 301, "max_payload_bytes"),
        (t.command("mute"), b"maybe", "expected ON or OFF"),
    ]

    async def go() -> None:
        async with running(bridge):
            await wait_online(recorder, bridge)
            for topic, payload, _ in bad:
                recorder.publish(topic, payload)
            controls.fail.add("ask")
            recorder.publish(t.command("ask"), "this one raises")
            recorder.publish(t.command("say"), "still working")
            await until(lambda: ("say", "still working") in controls.calls, what="say")
            assert controls.calls == [("ask", "this one raises"), ("say", "still working")]
            # A retained command would replay on every reconnect: ignored on subscribe.
            recorder.publish(t.command("say"), "retained", retain=True)
            await until(lambda: len(controls.calls) == 3)  # live delivery runs it once
            assert bridge.connected

    asyncio.run(go())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for topic, _, why in bad:
        assert any(topic in w and why in w for w in warnings), (why, warnings)
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert "ask" in failed[0].getMessage()

    # On the next connection the retained command is not replayed.
    bridge2, controls2 = start_bridge(tmp_path, broker)

    async def again() -> None:
        async with running(bridge2):
            await until(lambda: "ignoring a retained say command" in caplog.text)

    asyncio.run(again())
    assert controls2.calls == []


def test_home_assistant_restart_republishes_discovery(
    tmp_path: Path, broker: Broker, recorder: Recorder
) -> None:
    bridge, _ = start_bridge(tmp_path, broker)
    t = bridge.topics
    config_topics = [topic for topic, _ in discovery_messages(bridge._cfg.mqtt, "x")]

    async def go() -> None:
        bridge.publish_state("state", "idle")
        async with running(bridge):
            await wait_online(recorder, bridge)
            mark = recorder.mark()
            recorder.publish(t.ha_status, "offline")  # HA going down changes nothing
            recorder.publish(t.ha_status, "online")
            for topic in config_topics:
                await recorder.wait_for_async(topic, since=mark)
            await recorder.wait_for_async(t.availability, "online", since=mark)
            await recorder.wait_for_async(t.state("state"), "idle", since=mark)
            assert len(recorder.messages(config_topics[0], since=mark)) == 1

    asyncio.run(go())


def test_reconnects_after_broker_crash(
    tmp_path: Path, broker: Broker, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    bridge, controls = start_bridge(tmp_path, broker)
    t = bridge.topics
    caplog.set_level(logging.DEBUG, LOGGER)

    def retries() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "retrying in" in r.getMessage()]

    async def go() -> None:
        async with running(bridge):
            await wait_online(recorder, bridge)
            broker.kill()
            await until(lambda: not bridge.connected, what="disconnected")
            await until(lambda: len(retries()) >= 3, what="3 retries")
            # Set while the broker is gone: published after the reconnect.
            bridge.publish_state("state", "speaking")
            mark = recorder.mark()
            broker.restart()
            await wait_online(recorder, bridge, since=mark)
            await recorder.wait_for_async(t.state("state"), "speaking", since=mark)
            for topic, _ in discovery_messages(bridge._cfg.mqtt, "x"):
                await recorder.wait_for_async(topic, since=mark)
            recorder.publish(t.command("say"), "back again")
            await until(lambda: controls.calls == [("say", "back again")])

    asyncio.run(go())
    warned = [r for r in retries() if r.levelno == logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in retries()]
    assert f"127.0.0.1:{broker.port}" in warned[0].getMessage()
    assert all(r.levelno == logging.DEBUG for r in retries()[1:])
    assert "again after" in caplog.text


def test_connects_when_the_broker_comes_up_later(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    broker.kill()
    bridge, _ = start_bridge(tmp_path, broker)
    caplog.set_level(logging.DEBUG, LOGGER)

    async def go() -> None:
        async with running(bridge):
            await until(lambda: "retrying in" in caplog.text, what="a retry")
            bridge.publish_state("transcript", "hello")
            assert not bridge.connected
            broker.restart()
            with broker.recorder() as rec:
                got = await rec.wait_for_async(bridge.topics.state("transcript"))
                assert got.text == "hello"

    asyncio.run(go())
    assert "cannot connect to MQTT broker" in caplog.text and "is it running?" in caplog.text


def test_stop_interrupts_backoff_and_silent_broker(tmp_path: Path) -> None:
    """stop ends run() within a second, whether it sleeps or waits for a CONNACK."""
    with socket.socket() as silent:
        # Accepts TCP connections (the kernel does the handshake) but never answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        for mqtt in (
            {"host": "127.0.0.1", "port": port},
            {"host": "127.0.0.1", "port": _closed_port(), "reconnect_min_s": 60},
        ):
            bridge = MqttBridge(make_config(tmp_path, **mqtt), FakeControls(), "x")

            async def go(bridge: MqttBridge = bridge) -> None:
                async with running(bridge):
                    await asyncio.sleep(0.3)

            asyncio.run(go())


def test_last_will_marks_offline_when_the_process_dies(
    tmp_path: Path, broker: Broker, recorder: Recorder
) -> None:
    section = make_config(tmp_path, broker).mqtt.model_dump(mode="json")
    code = (
        "import asyncio, json, sys\n"
        "from pathlib import Path\n"
        "from voiceagent.config import config_from_dict\n"
        "from voiceagent.mqtt import MqttBridge\n"
        "class C:\n"
        "    def __getattr__(self, name): return lambda *a: None\n"
        "cfg = config_from_dict({'mqtt': json.loads(sys.argv[1])}, Path('.'))\n"
        "asyncio.run(MqttBridge(cfg, C(), 'x').run(asyncio.Event()))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(section)], cwd=REPO)
    try:
        topic = Topics.from_config(make_config(tmp_path, broker).mqtt).availability
        recorder.wait_for(topic, "online", timeout=10)
        mark = recorder.mark()
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        recorder.wait_for(topic, "offline", since=mark)
    finally:
        proc.kill()
        proc.wait()
    with broker.recorder() as late:
        got = late.wait_for(topic)
        assert (got.text, got.retain) == ("offline", True)


def test_password_file_and_wrong_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = Broker(tmp_path / "auth", users={"agent": "s3cret", "watcher": "w"}).start()
    try:
        (tmp_path / "pw").write_text("s3cret\n")
        (tmp_path / "bad").write_text("wrong\n")
        good = MqttBridge(
            make_config(tmp_path, b, username="agent", password_file="pw"), FakeControls(), "x"
        )
        bad = MqttBridge(
            make_config(tmp_path, b, username="agent", password_file="bad", node_id="other"),
            FakeControls(),
            "x",
        )
        caplog.set_level(logging.DEBUG, LOGGER)

        def refusals() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "refused the login" in r.getMessage()]

        async def go() -> None:
            async with running(good), running(bad):
                with b.recorder(username="watcher", password="w") as rec:
                    await rec.wait_for_async(good.topics.availability, "online")
                await until(lambda: len(refusals()) >= 3, what="3 refusals")
                assert good.connected and not bad.connected

        asyncio.run(go())
    finally:
        b.kill()
    first = refusals()[0]
    assert first.levelno == logging.WARNING
    message = first.getMessage()
    assert "mqtt.username" in message and "mqtt.password" in message and "retrying in" in message
    assert all(r.levelno == logging.DEBUG for r in refusals()[1:])
    assert not [r for r in caplog.records if "s3cret" in r.getMessage() or "wrong\n" in r.getMessage()]


def test_tls(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    tls = make_tls_files(tmp_path / "pki")
    b = Broker(tmp_path / "tls", tls=tls).start()
    try:
        # ca_file relative to the config's directory.
        tls_section = {"enabled": True, "ca_file": "pki/ca.crt"}
        bridge = MqttBridge(
            make_config(tmp_path, b, host="localhost", tls=tls_section), FakeControls(), "x"
        )

        async def go() -> None:
            async with running(bridge):
                with b.recorder() as rec:
                    await wait_online(rec, bridge)

        asyncio.run(go())
    finally:
        b.kill()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_offline_that_does_not_go_out_leaves_the_will(
    tmp_path: Path, broker: Broker, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If publishing ``offline`` at shutdown fails (a loaded box timed it out), the
    bridge must not disconnect cleanly: that would make the broker drop the will
    and Home Assistant would show the assistant online for good."""
    bridge, _ = start_bridge(tmp_path, broker)
    publish = aiomqtt.Client.publish

    async def failing(self: aiomqtt.Client, topic: str, payload: Any = None, *args: Any, **kw: Any) -> None:
        if payload == "offline":
            raise aiomqtt.MqttError("Operation timed out")
        await publish(self, topic, payload, *args, **kw)

    monkeypatch.setattr(aiomqtt.Client, "publish", failing)

    async def go() -> None:
        async with running(bridge):
            await wait_online(recorder, bridge)

    asyncio.run(go())
    # Sent by the broker, not by the bridge: its publish of offline failed.
    recorder.wait_for(bridge.topics.availability, "offline")


def test_a_bridge_cancelled_before_it_said_offline_leaves_the_will(
    tmp_path: Path, broker: Broker, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's shutdown gives the bridge 1.5 s, then cancels it. On a loaded box
    that once caught it before ``offline`` went out (a state still waiting for its
    PUBACK), and aiomqtt's exit sent a clean DISCONNECT: the broker dropped the will
    and nothing said offline (the likely cause of a CI failure in test_serve_faults). Cancelled anywhere before the
    broker has ``offline``, the bridge must drop the connection instead."""
    bridge, _ = start_bridge(tmp_path, broker)
    publish = aiomqtt.Client.publish
    hanging = asyncio.Event()

    async def never_acknowledged(self: aiomqtt.Client, topic: str, payload: Any = None, *args: Any, **kw: Any) -> None:
        if payload == "never acknowledged":  # a broker that stopped answering
            hanging.set()
            await asyncio.sleep(60)
        await publish(self, topic, payload, *args, **kw)

    monkeypatch.setattr(aiomqtt.Client, "publish", never_acknowledged)

    async def go() -> None:
        task = asyncio.create_task(bridge.run(asyncio.Event()))
        await wait_online(recorder, bridge)
        bridge.publish_state("transcript", "never acknowledged")
        await asyncio.wait_for(hanging.wait(), 5)
        task.cancel()  # no stop: the shutdown deadline ran out
        await asyncio.gather(task, return_exceptions=True)

    mark = recorder.mark()
    asyncio.run(go())
    # Sent by the broker, not by the bridge: it never got to publish offline.
    recorder.wait_for(bridge.topics.availability, "offline", since=mark)
