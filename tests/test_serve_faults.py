"""``voiceagent serve`` killed mid-reply and stopped while its model is busy (real
models, real broker): what a week under systemd will do to it sooner or later."""

from __future__ import annotations

import json
import signal
import time
import wave

import pytest
import soundfile

from tests.support.broker import Broker
from tests.support.daemon import BASE, REQUEST, Daemon, serve_config, wait_state
from tests.support.speech import require_models

pytestmark = pytest.mark.realmodel


@pytest.fixture(autouse=True)
def _models():
    require_models()


LONG = {"max_tokens": 400, "max_sentences": 20}
"""A reply long enough that the LLM is still generating while it speaks."""
STORY = "Tell me a long story about a brave knight and a dragon."


def test_sigkill_mid_reply_leaves_a_log_that_parses_and_a_readable_wav(tmp_path, broker: Broker):
    rec = broker.recorder()
    config = serve_config(tmp_path, broker, wake={"model": "none"}, llm=LONG)
    daemon = Daemon(tmp_path, config, [0.5, REQUEST, 1.0])
    try:
        rec.wait_for(f"{BASE}/availability", "online", timeout=60)
        rec.wait_for(f"{BASE}/reply/state", lambda m: bool(m.text.strip()), timeout=60)  # turn 1 done
        wait_state(rec, "idle", since=0)
        mark = rec.mark()
        rec.publish(f"{BASE}/ask/set", STORY)
        wait_state(rec, "speaking", since=mark)
        time.sleep(0.7)  # mid-sentence, with tokens still coming
        daemon.signal(signal.SIGKILL)
    finally:
        daemon.close()
        rec.close()
    # every finished turn is in the conversation log, and every line parses
    lines = [json.loads(x) for x in (tmp_path / "conversations.jsonl").read_text().splitlines()]
    assert [(x["source"], x["reason"]) for x in lines] == [("voice", "answered")]
    # the event log: whole lines up to the kill
    events = (tmp_path / "events.jsonl").read_text().splitlines()
    assert events and all(json.loads(x) for x in events)
    # the output WAV is readable, by libsndfile and by Python's strict wave module
    audio, rate = soundfile.read(str(daemon.out), dtype="float32")
    assert rate == 16000 and audio.size > rate  # the first reply and part of the story
    with wave.open(str(daemon.out)) as w:
        assert w.getnframes() == audio.size


def test_sigterm_while_the_model_is_busy_exits_within_the_stop_timeout(tmp_path, broker: Broker):
    rec = broker.recorder()
    config = serve_config(tmp_path, broker, wake={"model": "none"}, llm=LONG)
    daemon = Daemon(tmp_path, config, [0.5])
    try:
        rec.wait_for(f"{BASE}/availability", "online", timeout=60)
        mark = rec.mark()
        rec.publish(f"{BASE}/ask/set", STORY)
        wait_state(rec, "speaking", since=mark)  # the LLM is still generating the rest
        code, took = daemon.signal(signal.SIGTERM)
        assert code == 0, daemon.log()[-3000:]
        # systemd's TimeoutStopSec is 10 s (deploy/voiceagent.service); it is much quicker
        assert took < 3.0, f"took {took:.1f} s to stop"
        try:
            rec.wait_for(f"{BASE}/availability", "offline", since=mark)
        except AssertionError as err:  # the daemon log says how the bridge ended
            raise AssertionError(f"{err}\ndaemon log:\n{daemon.log()[-3000:]}") from None
    finally:
        daemon.close()
        rec.close()
    lines = [json.loads(x) for x in (tmp_path / "conversations.jsonl").read_text().splitlines()]
    assert [(x["source"], x["reason"]) for x in lines] == [("ask", "shutdown")]
    assert "Traceback" not in daemon.log()
