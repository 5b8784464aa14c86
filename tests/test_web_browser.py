"""A real browser at the page: Debian's headless Chromium whose microphone is a real
recording opens ``voiceagent serve``'s page, presses Start (the page's own hook),
is answered, shows the captions, and what it really played (the page's tap on
its playback worklet) is transcribed and is the reply."""

from __future__ import annotations

import base64
import io

import pytest
import soundfile

from tests.support.chromium import CHROMIUM_MISSING, Chromium, chromium_path
from tests.support.speech import ROOT, conversation_wav, real, require_models, word_error_rate
from tests.support.web import TOKEN, web_serve

pytestmark = [pytest.mark.realmodel, pytest.mark.skipif(chromium_path() is None, reason=CHROMIUM_MISSING)]


def test_a_browser_is_answered_through_the_page(tmp_path):
    require_models()
    request = real("req_go_somewhere")
    mic = tmp_path / "mic.wav"
    # Chrome starts the file when the page opens the microphone: a second of quiet
    # first, as a person pressing Start takes a moment to speak.
    conversation_wav(mic, [1.0, request, 8.0], rate=48000, channels=1)
    with web_serve(tmp_path) as (base, log):
        url = f"{base}/?tap=1#token={TOKEN}"
        with Chromium(tmp_path / "chromium", mic=mic, url=url) as browser:
            browser.wait_for("window.voiceagent !== undefined", timeout=10)  # the page's module ran
            state = browser.evaluate("window.voiceagent.start()", await_promise=True)
            assert state == "listening", (state, browser.console)
            browser.wait_for("window.voiceagent.captions.some(c => c.userFinal && c.assistant"
                             " && c.latencyMs != null)", timeout=30)
            # the reply plays out (a few seconds of the piper voice)
            browser.wait_for("window.voiceagent.events.includes('response.done')", timeout=30)
            captions = browser.evaluate("window.voiceagent.captions")
            played = browser.evaluate("window.voiceagent.playedWavBase64()")
            shown = browser.evaluate("document.body.innerText")
            assert not browser.errors, browser.errors
    turn = next(c for c in captions if c["userFinal"] and c["assistant"])
    assert word_error_rate(request.text, turn["user"]) <= 0.2, turn
    assert turn["assistant"] in shown and turn["user"] in shown  # the captions are on the page
    audio, rate = soundfile.read(io.BytesIO(base64.b64decode(played)), dtype="float32")
    assert audio.size > 0.5 * rate

    from voiceagent.audio.convert import resample
    from voiceagent.config import AsrConfig
    from voiceagent.stages.whisper import WhisperTranscriber

    heard = WhisperTranscriber(ROOT / "models/whisper-tiny.en", AsrConfig()).transcribe(
        resample(audio, rate, 16000)).text
    assert word_error_rate(turn["assistant"], heard) <= 0.35, (turn["assistant"], heard)
    assert b"Traceback" not in log.read_bytes()
