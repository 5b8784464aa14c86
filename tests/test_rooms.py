"""Two rooms in one ``voiceagent serve`` process, for real: the real models (loaded
once), real people asking in both rooms about a second apart, a real mosquitto.

Each room is answered exactly once, in its own output, with nothing of the other
room's reply there; every event says which room it is from; each room is a Home
Assistant device of its own on MQTT (its own availability, transcript and state),
and its conversation log is its own.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.support.broker import Broker, Recorder
from tests.support.cli import load_events, start
from tests.support.config import write_config
from tests.support.speech import conversation_wav, real, require_models, word_error_rate

pytestmark = pytest.mark.realmodel

NODE = "house"
ROOMS = {
    "kitchen": real("req_go_somewhere"),
    "office": real("read_amiable_himself"),
}
LEAD_S = {"kitchen": 1.0, "office": 2.0}
"""Each room's request starts here: about a second apart, so that their ends of
turn, transcripts and replies overlap on the shared models."""
TAIL_S = 12.0


def _room_audio(tmp_path: Path) -> dict[str, tuple[Path, Path, tuple[float, float]]]:
    rooms = {}
    for name, clip in ROOMS.items():
        wav, out = tmp_path / f"{name}-in.wav", tmp_path / f"{name}-out.wav"
        spans = conversation_wav(wav, [LEAD_S[name], clip, TAIL_S], rate=16000, channels=1)
        rooms[name] = (wav, out, spans[0])
    return rooms


def _wait_answered(events: Path, rooms: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists():
            done = {e["session"] for e in load_events(events) if e["type"] == "turn_end"}
            if len(done) >= rooms:
                return
        time.sleep(0.5)


def test_two_rooms_in_one_process_each_answered_in_its_own_room(tmp_path: Path, broker: Broker, recorder: Recorder):
    require_models()
    rooms = _room_audio(tmp_path)
    config = write_config(
        tmp_path,
        mqtt=broker.mqtt_config(node_id=NODE, reconnect_min_s=0.2, reconnect_max_s=1.0),
        wake={"model": "none"},
        serve={"conversation_log": str(tmp_path / "conversations.jsonl")},
        satellites=[
            {"name": name, "input": str(wav), "output": str(out)} for name, (wav, out, _) in rooms.items()
        ],
        log_level="info",
    )
    events = tmp_path / "events.jsonl"
    stderr = open(tmp_path / "stderr.log", "w+b")
    proc = start("serve", "-c", str(config), "-e", str(events), stderr=stderr)
    try:
        for name in rooms:  # each room its own device, online
            recorder.wait_for(f"voiceagent/{NODE}_{name}/availability", "online", timeout=120)
        _wait_answered(events, len(rooms), timeout=60)
        time.sleep(4.0)  # the replies play out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    log = (tmp_path / "stderr.log").read_text(errors="replace")
    assert "Traceback" not in log, log

    evs = load_events(events)
    assert evs and all(e["session"] in rooms for e in evs), {e["session"] for e in evs}
    for name, (wav, out, (start_s, end_s)) in rooms.items():
        mine = [e for e in evs if e["session"] == name]
        ends = [e for e in mine if e["type"] == "turn_end"]
        answered = [e for e in ends if e["reason"] == "answered"]
        assert len(answered) == 1, (name, ends)
        assert word_error_rate(ROOMS[name].text, answered[0]["text"]) <= 0.25, (name, answered[0])
        # Its own output: silent until its own request has ended, then its reply.
        audio, rate = soundfile.read(str(out), dtype="float32")
        before = audio[: int(end_s * rate)]
        assert np.abs(before).max() < 0.01, f"{name} played something before its request ended"
        first_sound = next(e["t"] for e in mine if e["type"] == "playback_start")
        assert np.abs(audio[int(first_sound * rate):]).max() > 0.05, f"{name}'s reply is not in its output"
        # ... and nothing played after its own reply ended (the other room's reply is elsewhere)
        reply_end = next(e["t"] for e in mine if e["type"] == "playback_end")
        assert np.abs(audio[int((reply_end + 0.1) * rate):]).max() < 0.01, f"{name} played after its reply"
        # Home Assistant sees each room's own transcript and state
        transcript = recorder.last(f"voiceagent/{NODE}_{name}/transcript/state")
        assert transcript is not None and transcript.text == answered[0]["text"], name
        assert recorder.last(f"voiceagent/{NODE}_{name}/availability").text == "offline"
        log_lines = (tmp_path / f"conversations-{name}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in log_lines]
        assert [r["session"] for r in records] == [name], records
    configs = [m.topic for m in recorder.messages() if m.topic.endswith("/config")]
    assert any(f"{NODE}_kitchen" in t for t in configs) and any(f"{NODE}_office" in t for t in configs)
