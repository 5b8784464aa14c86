"""The broker flapping every few seconds for over half a minute (a real mosquitto
killed and restarted 12 times; 20 times, a minute, until the suite neared its 15
minutes on 2 cores, and no flap differs from the next): the bridge reconnects each time, its log stays a few lines
per outage, nothing piles up, and afterwards Home Assistant sees it online with
its states and can command it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.mqtt import LOGGER, running, start_bridge, until, wait_online

FLAPS = 12
DOWN_S = 1.0
UP_S = 2.0


def test_a_broker_flapping_for_half_a_minute(tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    bridge, controls = start_bridge(tmp_path, broker)
    t = bridge.topics
    tasks: list[int] = []
    connected_in_up = 0

    async def go() -> None:
        nonlocal connected_in_up
        async with running(bridge):
            with broker.recorder() as rec:
                await wait_online(rec, bridge)
            start = time.monotonic()
            for flap in range(FLAPS):
                broker.kill()
                bridge.publish_state("transcript", f"flap {flap}")  # while it is down
                await asyncio.sleep(DOWN_S)
                broker.restart()
                deadline = time.monotonic() + UP_S
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    if bridge.connected:
                        connected_in_up += 1
                        break
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                tasks.append(len(asyncio.all_tasks()))
            assert time.monotonic() - start >= FLAPS * (DOWN_S + UP_S) - 1
            # Steady again: online, the latest state, and commands work.
            await until(lambda: bridge.connected, timeout=10, what="connected after the flapping")
            with broker.recorder() as rec:
                await rec.wait_for_async(t.availability, "online", timeout=10)
                await rec.wait_for_async(t.state("transcript"), f"flap {FLAPS - 1}", timeout=10)
                rec.publish(t.command("say"), "still here")
                await until(lambda: ("say", "still here") in controls.calls, what="the command")

    asyncio.run(go())
    # reconnected within the up time in nearly every flap (backoff resets on success)
    assert connected_in_up >= FLAPS - 2, connected_in_up
    assert max(tasks) <= min(tasks) + 2, tasks
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) <= 3 * FLAPS, f"{len(lines)} warnings for {FLAPS} outages"
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
