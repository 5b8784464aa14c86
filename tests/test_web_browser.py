"""A real browser at the page: Debian's headless Chromium whose microphone is a real
recording opens ``voiceagent serve``'s page, presses Start (the page's own hook),
is answered, shows the captions, and what it really played (the page's tap on
its playback worklet) is transcribed and is the reply. A second person talks
over the reply: it is cut, the page reports how much it played
(``conversation.item.truncate``), and the second person is answered.

Headless Chromium has no sound card, so no echo reaches its microphone: the
browser's echo cancellation is on (as the page asks) but has nothing to remove."""

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
    request, other = real("req_go_somewhere"), real("read_amiable_himself")
    mic = tmp_path / "mic.wav"
    # Chrome starts the file when the page opens the microphone: a second of quiet
    # first, as a person pressing Start takes a moment to speak. The second person
    # starts 2 s after the request, while the reply plays.
    conversation_wav(mic, [1.0, request, 2.0, other, 8.0], rate=48000, channels=1)
    with web_serve(tmp_path) as (base, log):
        url = f"{base}/?tap=1&token={TOKEN}"  # the echo test gives it as #token=
        with Chromium(tmp_path / "chromium", mic=mic, url=url) as browser:
            browser.wait_for("window.voiceagent !== undefined", timeout=10)  # the page's module ran
            state = browser.evaluate("window.voiceagent.start()", await_promise=True)
            assert state == "listening", (state, browser.console)
            # the first reply cut, the second person answered and the reply played out
            browser.wait_for("window.voiceagent.captions.some(c => c.cancelled)"
                             " && window.voiceagent.events.filter(e => e === 'response.done').length >= 2",
                             timeout=45)
            captions = browser.evaluate("window.voiceagent.captions")
            browser_events = browser.evaluate("window.voiceagent.events")
            played = browser.evaluate("window.voiceagent.playedWavBase64()")
            shown = browser.evaluate("document.body.innerText")
            assert not browser.errors, browser.errors
    events = browser_events
    first, second = [c for c in captions if c["userFinal"] and c["assistant"]][:2]
    assert word_error_rate(request.text, first["user"]) <= 0.2, captions
    assert first["cancelled"] and first["latencyMs"] is not None, captions
    assert "conversation.item.truncated" in events  # the page said how far it played
    assert word_error_rate(other.text, second["user"]) <= 0.3, captions
    for turn in (first, second):  # the captions are on the page
        assert turn["user"] in shown and turn["assistant"].rstrip("…").strip() in shown, (turn, shown)
    audio, rate = soundfile.read(io.BytesIO(base64.b64decode(played)), dtype="float32")
    assert audio.size > 0.5 * rate

    from voiceagent.audio.convert import resample
    from voiceagent.config import AsrConfig
    from voiceagent.stages.whisper import WhisperTranscriber

    heard = WhisperTranscriber(ROOT / "models/whisper-tiny.en", AsrConfig()).transcribe(
        resample(audio, rate, 16000)).text
    said = " ".join(c["assistant"].rstrip("…") for c in (first, second))
    # What was played is the replies' voice: what Whisper hears of it was said.
    # (Not a word error rate: the small LLM often begins both replies with the same
    # sentence, and Whisper drops a repeated sentence.)
    words = [w.strip(".,!?'").lower() for w in heard.split()]
    said_words = {w.strip(".,!?'").lower() for w in said.split()}
    assert len(words) >= 3 and sum(w in said_words for w in words) >= 0.8 * len(words), (said, heard)
    assert audio.size / rate >= 0.15 * len(said.split()), (audio.size / rate, said)
    assert b"Traceback" not in log.read_bytes()
