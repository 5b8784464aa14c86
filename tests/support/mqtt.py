"""The Home Assistant MQTT bridge in a test: its config pointed at a test broker,
fake daemon controls that record the commands, and the bridge run until the
test is done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.support.broker import Broker, Recorder
from voiceagent.config import Config, config_from_dict
from voiceagent.mqtt import MqttBridge

NODE = "test_node"
LOGGER = "voiceagent.mqtt.bridge"


class FakeControls:
    """Records calls; raises on the methods named in ``fail``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail: set[str] = set()

    def _record(self, name: str, arg: object) -> None:
        self.calls.append((name, arg))
        if name in self.fail:
            raise RuntimeError(f"{name} failed on purpose")

    def say(self, text: str) -> None:
        self._record("say", text)

    def ask(self, text: str) -> None:
        self._record("ask", text)

    def stop(self) -> None:
        self._record("stop", None)

    def set_muted(self, muted: bool) -> None:
        self._record("set_muted", muted)


def make_config(base: Path, broker: Broker | None = None, **mqtt: Any) -> Config:
    section: dict[str, Any] = broker.mqtt_config() if broker is not None else {}
    section.update(node_id=NODE, reconnect_min_s=0.05, reconnect_max_s=0.2)
    section.update(mqtt)
    return config_from_dict({"mqtt": section}, base)


async def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[asyncio.Event]:
    """Run the bridge; on exit set stop and check that run() returns promptly."""
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        t0 = time.monotonic()
        await asyncio.wait_for(task, 3)
        assert time.monotonic() - t0 < 1.2, "run() took too long to return after stop"


def start_bridge(tmp_path: Path, broker: Broker, **mqtt: Any) -> tuple[MqttBridge, FakeControls]:
    controls = FakeControls()
    return MqttBridge(make_config(tmp_path, broker, **mqtt), controls, "1.2.3"), controls


async def wait_online(rec: Recorder, bridge: MqttBridge, since: int = 0) -> None:
    await rec.wait_for_async(bridge.topics.availability, "online", since=since)
    # connected turns True once subscribed: commands sent before would be lost.
    await until(lambda: bridge.connected, what="connected")
