"""The reference Wyoming servers of tests/support/wyoming_peers.py work on the
project's model files, driven by the project's ``wyoming`` client: each says what it
is, a real person's request is transcribed, a sentence is synthesized."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.cli import load_events, one_line_error, voiceagent
from tests.support.config import write_config
from tests.support.speech import real, require_models, word_error_rate
from tests.support.wyoming_peers import faster_whisper_server, piper_server, require_peer_venvs

pytestmark = pytest.mark.realmodel


async def _info(client):
    from wyoming.info import Describe, Info

    await client.write_event(Describe().event())
    return Info.from_event(await client.read_event())


def test_the_peers_describe_transcribe_and_synthesize(tmp_path: Path):
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncClient
    from wyoming.tts import Synthesize

    require_models()
    require_peer_venvs()
    clip = real("req_go_forward")
    pcm = (clip.audio * 32767).astype("<i2").tobytes()

    async def transcribe(uri):
        async with asyncio.timeout(30), AsyncClient.from_uri(uri) as client:
            info = await _info(client)
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for i in range(0, len(pcm), 3200):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i:i + 3200]).event())
            await client.write_event(AudioStop().event())
            event = await client.read_event()
            assert event is not None and Transcript.is_type(event.type), event
            return info, Transcript.from_event(event).text

    async def synthesize(uri):
        async with asyncio.timeout(30), AsyncClient.from_uri(uri) as client:
            info = await _info(client)
            await client.write_event(Synthesize(text="The kitchen light is on now.").event())
            types, seconds = [], 0.0
            while not (types and AudioStop.is_type(types[-1])):
                event = await client.read_event()
                assert event is not None, "piper closed the connection"
                types.append(event.type)
                if AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    seconds += len(chunk.audio) / (chunk.rate * chunk.width * chunk.channels)
            return info, types, seconds

    with faster_whisper_server(tmp_path) as asr_uri, piper_server(tmp_path) as tts_uri:
        asr_info, transcript = asyncio.run(transcribe(asr_uri))
        tts_info, types, seconds = asyncio.run(synthesize(tts_uri))

    assert asr_info.asr and asr_info.asr[0].name == "faster-whisper"
    assert word_error_rate(clip.text, transcript) <= 0.2, transcript
    assert tts_info.tts and any(v.name == "en_US-joe-medium" for v in tts_info.tts[0].voices)
    assert types[0] == "audio-start" and set(types[1:-1]) == {"audio-chunk"}, types
    assert seconds >= 0.5


def test_voiceagent_runs_on_them_as_its_remote_asr_and_tts(tmp_path: Path):
    """``asr.backend: wyoming`` and ``tts.backend: wyoming``: a real request through
    ``voiceagent run`` is heard by wyoming-faster-whisper and answered in
    wyoming-piper's voice; with the ASR server gone, start-up fails in one line."""
    import soundfile

    require_models()
    require_peer_venvs()
    clip = real("req_go_forward")
    wav = tmp_path / "in.wav"
    soundfile.write(wav, clip.audio, clip.RATE)
    with faster_whisper_server(tmp_path) as asr_uri, piper_server(tmp_path) as tts_uri:
        config = write_config(tmp_path, asr={"backend": "wyoming", "uri": asr_uri},
                              tts={"backend": "wyoming", "uri": tts_uri})
        out, events = tmp_path / "out.wav", tmp_path / "events.jsonl"
        proc = voiceagent("run", "-c", str(config), "-i", str(wav), "-o", str(out), "-e", str(events))
        assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    (end,) = [e for e in load_events(events) if e["type"] == "turn_end"]
    assert word_error_rate(clip.text, end["text"]) <= 0.2, end
    reply, rate = soundfile.read(out, dtype="float32")
    assert rate == 16000 and reply.ndim == 1
    loud = reply[clip.audio.size:]  # the reply follows the request in the output's timeline
    assert (abs(loud) > 0.02).sum() / rate >= 0.5, "no audible reply"
    # The server gone: one line at start, not a traceback at the first turn.
    proc = voiceagent("run", "-c", str(config), "-i", str(wav), "-o", str(out))
    line = one_line_error(proc)
    assert asr_uri in line and "cannot reach" in line, line
