"""The Wyoming ASR stream's speculative transcript (``servers.wyoming_listen``),
with the real Silero on real speech and a recording transcriber: the transcript
is started at the first pause after the words, so that at Home Assistant's
``audio-stop`` (its VAD's verdict, up to a second later) it is ready; speech
after that pause makes a new guess; the answer is always of the whole stream;
audio sent faster than real time makes no guess."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.support.speech import real, speech_of
from voiceagent.config import Config
from voiceagent.servers.wyoming_listen import AsrStream
from voiceagent.stages.protocols import Transcript
from voiceagent.stages.vad import SileroVad


def _pcm(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def _run(audio: np.ndarray, live: bool = True) -> tuple[Transcript, list[int], AsrStream]:
    calls: list[int] = []

    async def transcribe(samples: np.ndarray) -> Transcript:
        calls.append(samples.size)
        await asyncio.sleep(0.01)
        return Transcript(f"{samples.size} samples", 0.01)

    now = [0.0]  # a microphone's pace: each chunk arrives as it ends
    stream = AsrStream(Config(), transcribe, lambda: SileroVad(16000), clock=lambda: now[0] if live else 0.0)
    pcm = _pcm(audio)
    for i in range(0, len(pcm), 2048):  # 64 ms chunks, as a satellite sends them
        now[0] = (i + 2048) / 32000
        stream.feed(pcm[i:i + 2048], 16000, 2, 1)
        await asyncio.sleep(0)
    return await stream.final(), calls, stream


def test_the_transcript_is_ready_from_the_first_pause_when_only_silence_follows():
    clip = speech_of(real("req_go_forward"))
    audio = np.concatenate([clip.audio, np.zeros(16000, np.float32)])  # HA's VAD waits ~1 s
    result, calls, stream = asyncio.run(_run(audio))
    assert stream.guesses >= 1 and len(calls) == stream.guesses  # no transcription after audio-stop
    # the last guess began within ~0.25 s of the words' end, not at the end of the silence
    assert calls[-1] / 16000 < clip.end_s + 0.25, (calls, clip.end_s)
    assert result.text == f"{calls[-1]} samples"


def test_speech_after_the_pause_is_transcribed_too():
    first, second = speech_of(real("req_go_forward")), speech_of(real("req_cards_hand"))
    audio = np.concatenate([first.audio, np.zeros(8000, np.float32), second.audio, np.zeros(16000, np.float32)])
    result, calls, stream = asyncio.run(_run(audio))
    assert stream.guesses >= 2
    assert calls[-1] / 16000 > first.audio.size / 16000 + 0.5 + second.end_s - 0.1  # covers the second person
    assert result.text == f"{calls[-1]} samples"


def test_a_stream_with_no_speech_is_transcribed_whole_at_its_stop():
    result, calls, stream = asyncio.run(_run(np.zeros(16000, np.float32)))
    assert stream.guesses == 0 and calls == [16000]


def test_a_stream_sent_faster_than_real_time_makes_no_guesses():
    """A file or our own remote stage: audio-stop is moments away, and a guess would
    only hold the ASR worker the final transcript needs."""
    clip = speech_of(real("req_go_forward"))
    result, calls, stream = asyncio.run(_run(np.concatenate([clip.audio, np.zeros(16000, np.float32)]), live=False))
    assert stream.guesses == 0 and len(calls) == 1 and stream.speech is None  # no Silero even loaded
