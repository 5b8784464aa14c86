"""A real browser hearing its own loudspeaker: barge-in through the BROWSER's echo
canceller.

``voiceagent serve`` runs no echo canceller for a browser session: the page asks
``getUserMedia`` for ``echoCancellation`` (and noise suppression, gain control)
and relies on the browser's. Here headless Chromium uses real audio devices, on
PulseAudio (``tests/support/pulse.py``): it plays into the null sink ``va_spk``
and records ``va_mic_in``, a ``module-remap-source`` of ``va_mic.monitor``
(Chromium lists no monitor sources as microphones). A ``module-loopback`` copies
``va_spk.monitor`` into ``va_mic`` (-6 dB, 50 ms plus PulseAudio's buffering),
so everything the page plays comes back into its microphone as from a
loudspeaker in a room; the test plays real people into ``va_mic`` with ``paplay``.

- Only a request: the reply plays to its end (not cancelled), and its echo makes
  no second turn.
- A second person talks over the reply: it is cut and that person is heard.

Besides the page's own microphone, the test opens two more in the page as
meters: "page", with the page's constraints (what reaches the server), and
"raw", all processing off (what the microphone hears). Each test prints their
levels (dBFS, 40 ms windows) during the request and while the reply plays, and
the server's log lines about barge-in. Seen (3 runs): the echo reaches the
microphone at about -31 dBFS (median; the request about -25), and what the
page's processing leaves of it is about -90 dBFS: Chrome's canceller removes
it. With the page's echoCancellation forced off (a script injected before the
page loads), the first test fails: the reply is cut by its own echo, again and
again, and the server logs ``echo (...), not answered`` and ``interrupted``.

Chromium's captures of one device: a second ``getUserMedia`` with the same
constraints as an open one reads the same processed audio; one with all
processing off reads the raw microphone; but one that asks for echo
cancellation with other settings than the open one was not echo-cancelled
(a meter with echoCancellation alone read as "raw"; with the page's forced off,
the "page" meter did too). Alone, echoCancellation took a 440 Hz tone down by
about 51 dB; noise suppression and gain control alone, by 19 dB.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.chromium import CHROMIUM_MISSING, Chromium, chromium_path
from tests.support.pulse import PulseSinks, loop_speaker_into_mic_or_skip, pulse_sinks_or_skip
from tests.support.speech import conversation_wav, real, require_models, word_error_rate
from tests.support.web import TOKEN, web_serve

pytestmark = [
    pytest.mark.realmodel,
    pytest.mark.device,
    pytest.mark.skipif(chromium_path() is None, reason=CHROMIUM_MISSING),
]

LOOPBACK_LATENCY_MS = 50
LOOPBACK_GAIN_DB = -6.0
REQUEST = real("req_go_somewhere")
"""'Go somewhere and do something.'"""
OTHER = real("req_forever")
"""A second person: 'Feels like these days go on forever.'"""
INTERRUPT_AFTER_S = 1.5
"""Seconds after the reply starts playing that the second person starts."""
MIC_SOURCE = "va_mic_in"

METERS_JS = """(async () => {
  const open = async (on) => {
    const s = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: on, noiseSuppression: on, autoGainControl: on, channelCount: 1 } });
    const ctx = new AudioContext();
    await ctx.resume();
    const an = ctx.createAnalyser();
    an.fftSize = 2048;
    ctx.createMediaStreamSource(s).connect(an);
    return an;
  };
  const on = await open(true), off = await open(false);
  const buf = new Float32Array(2048);
  const level = (an) => {
    an.getFloatTimeDomainData(buf);
    let x = 0;
    for (const v of buf) x += v * v;
    return Math.sqrt(x / buf.length);
  };
  window.__meter = [];
  setInterval(() => window.__meter.push(
    [level(on), level(off), window.voiceagent.playedChunks.length]), 40);
  return true;
})()"""


def _pactl(pulse: PulseSinks, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10,
                          env=pulse.child_env(LC_ALL="C"), stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def room() -> Iterator[PulseSinks]:
    """``va_mic`` / ``va_spk``, ``va_spk`` looped back into ``va_mic``, and a source
    ``va_mic_in`` that Chromium takes for a microphone."""
    sinks = pulse_sinks_or_skip()
    pulse = next(sinks)  # skips when PulseAudio is unavailable
    remap = None
    try:
        result = _pactl(pulse, "load-module", "module-remap-source", f"master={pulse.monitor('va_mic')}",
                        f"source_name={MIC_SOURCE}", f"source_properties=device.description={MIC_SOURCE}")
        if result.returncode != 0 or not result.stdout.strip().isdigit():
            pytest.skip(f"PulseAudio module-remap-source unavailable: {result.stderr.strip()}")
        remap = result.stdout.strip()
        loop_speaker_into_mic_or_skip(pulse, LOOPBACK_LATENCY_MS, LOOPBACK_GAIN_DB)
        yield pulse
    finally:
        if remap is not None:
            _pactl(pulse, "unload-module", remap)
        sinks.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    require_models()
    with web_serve(tmp_path_factory.mktemp("serve")) as (base, log):
        yield base, log


class Page:
    """The page in a Chromium on the PulseAudio devices, started, with its meters."""

    def __init__(self, browser: Chromium, pulse: PulseSinks) -> None:
        self.browser, self.pulse = browser, pulse
        browser.wait_for("window.voiceagent !== undefined", timeout=10)  # the page's module ran
        state = browser.evaluate("window.voiceagent.start()", await_promise=True)
        assert state == "listening", (state, browser.console)
        assert browser.evaluate(METERS_JS, await_promise=True)
        self.check_devices()

    def check_devices(self) -> None:
        """Chromium really plays into va_spk and records va_mic_in."""
        sinks = {line.split("\t")[0]: line.split("\t")[1]
                 for line in _pactl(self.pulse, "list", "short", "sinks").stdout.splitlines()}
        sources = {line.split("\t")[0]: line.split("\t")[1]
                   for line in _pactl(self.pulse, "list", "short", "sources").stdout.splitlines()}
        clients = {line.split("\t")[0] for line in _pactl(self.pulse, "list", "short", "clients").stdout.splitlines()
                   if line.split("\t")[-1] == "chromium"}
        played = [sinks.get(line.split("\t")[1]) for line in
                  _pactl(self.pulse, "list", "short", "sink-inputs").stdout.splitlines()
                  if line.split("\t")[2] in clients]
        recorded = [sources.get(line.split("\t")[1]) for line in
                    _pactl(self.pulse, "list", "short", "source-outputs").stdout.splitlines()
                    if line.split("\t")[2] in clients]
        assert self.pulse.sink("va_spk") in played and MIC_SOURCE in recorded, (played, recorded)

    def evaluate(self, expression: str):
        return self.browser.evaluate(expression)

    def count(self, event: str) -> int:
        return self.evaluate(f"window.voiceagent.events.filter(e => e === {event!r}).length")

    def played_s(self) -> float:
        return self.evaluate("window.voiceagent.playedChunks.reduce((n, c) => n + c.length, 0)") / 24000

    def play(self, parts: list, path: Path) -> subprocess.Popen[bytes]:
        conversation_wav(path, parts, rate=16000, channels=1)
        return self.pulse.play(path, "va_mic")

    def wait_played_out(self, timeout: float, quiet_s: float = 1.5) -> None:
        """Until the page has played nothing for ``quiet_s``, after a response.done."""
        self.browser.wait_for("window.voiceagent.events.includes('response.done')", timeout=timeout)
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.evaluate("window.voiceagent.playedChunks.length")
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)
        raise TimeoutError("the page kept playing")

    def levels(self) -> str:
        """The meters: what the microphone heard (processing off) and what the page's
        processing left (on), in dBFS, during the request and the reply."""
        meter = np.array(self.evaluate("window.__meter"), dtype=float)
        if meter.size == 0:
            return "no meter readings"
        on, off, chunks = meter[:, 0], meter[:, 1], meter[:, 2]
        playing = np.r_[False, np.diff(chunks) > 0]
        first = int(np.argmax(playing)) if playing.any() else len(meter)
        user = (np.arange(len(meter)) < first) & (off > 0.003)

        def db(x: np.ndarray, q: float) -> str:
            return f"{20 * np.log10(max(float(np.percentile(x, q)), 1e-6)):6.1f}" if x.size else "   n/a"

        rows = [f"{'':22} {'raw p50':>8} {'raw p90':>8} {'page p50':>8} {'page p90':>8} {'page max':>8}"]
        for name, mask in (("request (before reply)", user), ("reply playing", playing)):
            rows.append(f"{name:22} {db(off[mask], 50):>8} {db(off[mask], 90):>8} "
                        f"{db(on[mask], 50):>8} {db(on[mask], 90):>8} {db(on[mask], 100):>8}  ({mask.sum()} x 40 ms)")
        return "\n".join(rows)


def _log_lines(log: Path, since: int) -> list[str]:
    text = log.read_text(errors="replace")[since:]
    return [line for line in text.splitlines()
            if any(k in line.lower() for k in ("barge", "interrupt", "cancel", "echo"))]


def _browser(pulse: PulseSinks, tmp: Path, base: str) -> Chromium:
    return Chromium(tmp / "chromium", url=f"{base}/?tap=1#token={TOKEN}", fake_devices=False,
                    env=pulse.child_env(PULSE_SOURCE=MIC_SOURCE, PULSE_SINK=pulse.sink("va_spk")))


def test_its_own_voice_through_the_room_does_not_interrupt_the_reply(room, server, tmp_path):
    base, log = server
    since = len(log.read_text(errors="replace"))
    with _browser(room, tmp_path, base) as browser:
        page = Page(browser, room)
        page.play([0.3, REQUEST, 0.5], tmp_path / "request.wav").wait()
        page.wait_played_out(timeout=30)
        time.sleep(2.0)  # the reply's echo tail would have been taken for speech by now
        captions = page.evaluate("window.voiceagent.captions")
        events = page.evaluate("window.voiceagent.events")
        played = page.played_s()
        levels = page.levels()
        assert not browser.errors, browser.errors
    lines = _log_lines(log, since)
    print(f"\n{levels}\nplayed {played:.1f} s\ncaptions {captions}\nlog:\n" + "\n".join(lines))
    assert captions and captions[0]["userFinal"], captions
    first = captions[0]
    assert word_error_rate(REQUEST.text, first["user"]) <= 0.3, captions
    assert first["assistant"] and not first["cancelled"], captions  # response.done: not "cancelled"
    assert events.count("response.done") == 1, events
    # nothing more was heard: the echo made no turn of its own
    assert events.count("input_audio_buffer.speech_started") == 1, (events, captions)
    assert len(captions) == 1 and events.count("response.created") == 1, (events, captions)
    assert played >= 0.15 * len(first["assistant"].split()), (played, first)
    assert b"Traceback" not in log.read_bytes()


def test_a_person_over_the_reply_still_interrupts_it(room, server, tmp_path):
    base, log = server
    since = len(log.read_text(errors="replace"))
    with _browser(room, tmp_path, base) as browser:
        page = Page(browser, room)
        page.play([0.3, REQUEST, 0.5], tmp_path / "request.wav").wait()
        browser.wait_for("window.voiceagent.playedChunks.length > 0", timeout=30)
        time.sleep(INTERRUPT_AFTER_S)
        page.play([OTHER], tmp_path / "other.wav")
        browser.wait_for("window.voiceagent.captions.some(c => c.cancelled)", timeout=10)
        browser.wait_for("window.voiceagent.captions.filter(c => c.userFinal).length >= 2", timeout=20)
        captions = page.evaluate("window.voiceagent.captions")
        events = page.evaluate("window.voiceagent.events")
        levels = page.levels()
        assert not browser.errors, browser.errors
    lines = _log_lines(log, since)
    print(f"\n{levels}\ncaptions {captions}\nlog:\n" + "\n".join(lines))
    heard = [c for c in captions if c["userFinal"]]
    assert word_error_rate(REQUEST.text, heard[0]["user"]) <= 0.3, captions
    assert heard[0]["cancelled"], captions
    assert word_error_rate(OTHER.text, heard[1]["user"]) <= 0.3, captions
    assert "conversation.item.truncated" in events, events
    assert b"Traceback" not in log.read_bytes()
