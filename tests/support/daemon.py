"""``voiceagent serve`` for a test: its config pointed at a test broker, the daemon
started on a WAV file as a user (or systemd) would, and what Home Assistant sees
of its state on the broker."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.support.broker import Broker, Recorder
from tests.support.cli import start
from tests.support.config import write_config
from tests.support.speech import conversation_wav, real, spliced

NODE = "test_agent"
BASE = f"voiceagent/{NODE}"
REQUEST = real("req_go_somewhere")
WITH_WAKE = spliced(real("w_mw_hey_jarvis_2"), REQUEST, gap_s=0.15)
"""A real "Hey Jarvis," then, after a comma pause, another person's request."""


def serve_config(tmp_path: Path, broker: Broker, **sections) -> Path:
    """The repository's config with absolute model paths, pointed at ``broker``."""
    base = {
        "mqtt": broker.mqtt_config(node_id=NODE, reconnect_min_s=0.2, reconnect_max_s=1.0),
        "wake": {"model": "hey_jarvis", "follow_up_s": 0},
        "serve": {"conversation_log": str(tmp_path / "conversations.jsonl")},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return write_config(tmp_path, **base, log_level="info")


class Daemon:
    """``voiceagent serve`` on ``parts`` (see ``conversation_wav``) written to
    ``in.wav``, its output to ``out.wav``, events to ``events.jsonl`` and its
    stderr to ``stderr.log``, all in ``tmp_path``."""

    def __init__(self, tmp_path: Path, config: Path, parts: list) -> None:
        self.wav, self.out, self.events = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "events.jsonl"
        self.spans = conversation_wav(self.wav, parts, rate=16000, channels=1)
        self.stderr = open(tmp_path / "stderr.log", "w+b")
        self.proc = start(
            "serve", "-c", str(config), "-i", str(self.wav), "-o", str(self.out), "-e", str(self.events),
            stderr=self.stderr, stdout=subprocess.DEVNULL,
        )

    def log(self) -> str:
        if not self.stderr.closed:
            self.stderr.flush()
        return Path(self.stderr.name).read_text(errors="replace")

    def signal(self, sig: signal.Signals, timeout: float = 10.0) -> tuple[int, float]:
        """Send ``sig``; returns the exit code and the seconds it took to exit."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def wait_state(rec: Recorder, state: str, since: int, timeout: float = 30.0):
    return rec.wait_for(f"{BASE}/state/state", state, since=since, timeout=timeout)
