"""The web endpoint with the real models: ``voiceagent serve`` with ``web:`` and
``satellites: []``, and the official ``openai`` SDK streaming real people in real
time, as the issue's check does: the request's transcript, the reply's audio, a
second person talking over the reply (``speech_started``, then ``response.done``
cancelled, and what they said transcribed), and a wrong token refused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.support.speech import Clip, real, require_models, speech_of, word_error_rate
from tests.support.web import TOKEN, web_serve
from voiceagent.bench.realtime_client import RATE, talk

pytestmark = pytest.mark.realmodel


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    require_models()
    with web_serve(tmp_path_factory.mktemp("web"), max_sessions=2) as found:
        yield found


def _with_interruption(request: Clip, other: Clip, after_s: float) -> tuple[np.ndarray, float, float]:
    """``request`` (its whole file), then ``other``'s words starting ``after_s`` after
    the request's last word. Returns the audio, the end of the request and the
    interruption's onset, in seconds."""
    cut = speech_of(other, before_s=0.05)
    gap = max(0.0, request.end_s + after_s - request.audio.size / Clip.RATE - cut.start_s)
    audio = np.concatenate([request.audio, np.zeros(int(gap * Clip.RATE), np.float32), cut.audio])
    onset = request.audio.size / Clip.RATE + gap + cut.start_s
    return audio, request.end_s, onset


def test_a_person_is_answered_and_another_talking_over_the_reply_cancels_it(served):
    base, log = served
    request, other = real("req_go_somewhere"), real("read_cold_hearted")
    audio, end_s, onset_s = _with_interruption(request, other, after_s=2.0)
    run = asyncio.run(talk(base, TOKEN, audio, tail_s=5.0))

    completed = run.of("conversation.item.input_audio_transcription.completed")
    assert completed, [e["type"] for _, e in run.events]
    assert word_error_rate(request.text, completed[0][1]["transcript"]) <= 0.2, completed[0][1]
    first_audio = run.first_audio()
    assert first_audio is not None and first_audio < end_s + 3.0  # timings: benchmarks/web_v2v.py
    assert run.reply_audio.size > 0.5 * RATE

    started = run.first("input_audio_buffer.speech_started", after=onset_s - 0.3)
    assert started is not None, [(round(t, 2), e["type"]) for t, e in run.events]
    done = run.first("response.done", after=started[0])
    assert done is not None and done[1]["response"]["status"] == "cancelled", done
    # the reply stopped: no more audio until the answer to the interruption begins
    following = run.first("response.created", after=done[0])
    until = following[0] if following else float("inf")
    assert not [t for t, _ in run.audio_at if done[0] < t < until]
    heard = [e["transcript"] for t, e in completed if t > onset_s]
    assert heard and word_error_rate(other.text, heard[0]) <= 0.3, (other.text, heard)
    assert b"Traceback" not in log.read_bytes()


def test_a_wrong_token_is_refused_at_the_upgrade(served):
    import websockets
    from openai import AsyncOpenAI

    base, _ = served

    async def go() -> int:
        ws = base.replace("http", "ws")
        client = AsyncOpenAI(api_key="wrong", base_url=f"{base}/v1", websocket_base_url=f"{ws}/v1")
        try:
            async with client.realtime.connect(model="x"):
                return 101
        except websockets.InvalidStatus as err:
            return err.response.status_code

    assert asyncio.run(go()) == 401
