"""Wake word: trimming the phrase from transcripts and the one-detection-per-word
trigger (pure), the detector's plumbing on a scripted fake model, and the real
pyopen-wakeword model on espeak-ng speech fed in 20 ms blocks like the pipeline."""

from __future__ import annotations

import os

import numpy as np
import pytest

from voiceagent.errors import ModelLoadError
from voiceagent.rules.wake_phrase import WakeTrigger, strip_wake_phrase
from voiceagent.stages.wake import CHUNK_MS, WakeWordDetector

# ------------------------------------------------------------ strip_wake_phrase

JARVIS = "hey jarvis"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hey Jarvis, what is the capital of France?", "What is the capital of France?"),
        ("Hey Jarvis. What time is it?", "What time is it?"),
        ("Hey, Jarvis! Turn on the lights.", "Turn on the lights."),
        ("hey jarvis what time is it", "What time is it"),
        ("HEY JARVIS, STOP.", "STOP."),
        (" Hey Jarvis, what time is it?", "What time is it?"),  # Whisper's leading space
        ("Hey Jarvis - what time is it?", "What time is it?"),
        ("Hey Jarvis... what time is it?", "What time is it?"),
        ("Hey Jarvis, 5 plus 5?", "5 plus 5?"),
        ("Hey Jarvis, iPhone prices?", "IPhone prices?"),  # the first letter is capitalised
        # misheard names
        ("Hey Jervis, what time is it?", "What time is it?"),
        ("Hey Travis, what time is it?", "What time is it?"),
        ("Hey Javis, what time is it?", "What time is it?"),
        ("Hey Jarvis's timer, please.", "Timer, please."),
        ("HeyJarvis, what time is it?", "What time is it?"),
        # the greeting missing, garbled or doubled
        ("Jarvis, what time is it?", "What time is it?"),
        ("Hi Jarvis, what time is it?", "What time is it?"),
        ("Hay Jarvis, what time is it?", "What time is it?"),
        ("A Jarvis, play some music.", "Play some music."),
        ("Okay, hey Jarvis. Lights on.", "Lights on."),
        # the phrase alone
        ("Hey Jarvis", ""),
        ("Hey Jarvis.", ""),
        ("Hey, Jarvis!", ""),
        ("Jarvis?", ""),
        # only the first one goes
        ("Hey Jarvis, hey Jarvis, what time is it?", "Hey Jarvis, what time is it?"),
    ],
)
def test_the_wake_phrase_is_trimmed_from_the_start(text, expected):
    assert strip_wake_phrase(text, JARVIS) == expected


def test_a_misheard_name_goes_only_when_the_detector_heard_the_wake_word():
    # Whisper tiny.en on a real "Hey Jarvis" before a request, measured.
    said = "Hey, nervous? Go somewhere and do something."
    assert strip_wake_phrase(said, JARVIS, heard=True) == "Go somewhere and do something."
    assert strip_wake_phrase(said, JARVIS) == said
    # set apart by punctuation only: "Hey you know what" is a sentence
    assert strip_wake_phrase("Hey you know what, lights on.", JARVIS, heard=True) == "Hey you know what, lights on."
    assert strip_wake_phrase("So, nervous? Go on.", JARVIS, heard=True) == "So, nervous? Go on."


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Is Jarvis listening?",  # a follow-up naming the assistant, not waking it
        "Tell Jarvis to turn on the lights.",
        "What did Jarvis say?",
        "Can you ask Jarvis something?",
        "I said hey Jarvis earlier.",
        "So, hey Jarvis, what now?",  # 'so' is not a garbled 'hey'
        "Harvest the crops.",  # 0.62 like 'jarvis': below the cutoff
        "Service, please.",
        "Hey there, what time is it?",
        "Hey, what time is it?",
        "",
        "...",
    ],
)
def test_text_not_starting_with_the_phrase_is_unchanged(text):
    assert strip_wake_phrase(text, JARVIS) == text


@pytest.mark.parametrize(
    ("text", "phrase", "expected"),
    [
        ("Okay Nabu, turn off the kitchen light.", "okay nabu", "Turn off the kitchen light."),
        ("OK, Nabu. Turn it off.", "okay nabu", "Turn it off."),
        ("Okay Naboo, what's the weather?", "okay nabu", "What's the weather?"),
        ("Alexa, play jazz.", "alexa", "Play jazz."),
        ("Hey Alexa, play jazz.", "alexa", "Play jazz."),  # a filler before a one-word phrase
        ("Alexis, play jazz.", "alexa", "Play jazz."),
        ("Play jazz, Alexa.", "alexa", "Play jazz, Alexa."),
        ("Hey Mycroft, set a timer.", "hey mycroft", "Set a timer."),
        ("Hey Microsoft, set a timer.", "hey mycroft", "Set a timer."),
        ("Hey Rhasspy, lights on.", "Hey, Rhasspy!", "Lights on."),  # the phrase's own punctuation
    ],
)
def test_other_phrases(text, phrase, expected):
    assert strip_wake_phrase(text, phrase) == expected


@pytest.mark.parametrize("phrase", ["", "   ", "!"])
def test_an_empty_phrase_trims_nothing(phrase):
    text = "Hey Jarvis, what time is it?"
    assert strip_wake_phrase(text, phrase) == text


# ------------------------------------------------------------ the trigger


def fires(probabilities: list[float], threshold: float = 0.5, hold_ms: float = 1000) -> list[int]:
    """Indexes of the chunks on which the trigger fires."""
    trigger = WakeTrigger(threshold, hold_ms)
    return [i for i, p in enumerate(probabilities) if trigger.update(p)]


def test_one_detection_per_crossing():
    assert fires([0.0, 0.1, 0.6, 0.9, 0.7, 0.2, 0.0]) == [2]


def test_the_threshold_itself_counts():
    assert fires([0.4, 0.5]) == [1]
    assert fires([0.49, 0.2]) == []


def test_a_dip_inside_one_phrase_does_not_fire_again():
    # the measured trace of one espeak 'Hey Jarvis', then silence
    trace = [0.01, 0.11, 0.31, 0.34, 0.65, 0.02, 0.51, 0.57, 0.97, 0.12] + [0.0] * 20
    assert fires(trace) == [4]
    # without the hold it would have counted twice
    assert fires(trace, hold_ms=0) == [4, 6]


def test_re_armed_after_the_hold_and_a_chunk_below():
    hold = 3 * CHUNK_MS
    assert fires([0.9, 0.1, 0.1, 0.1, 0.9], hold_ms=hold) == [0, 4]
    # below the threshold only inside the hold: not re-armed yet
    assert fires([0.9, 0.1, 0.1, 0.9, 0.9], hold_ms=hold) == [0]
    # a wake word 1.2 s after the last one, with the default 1 s hold
    assert fires([0.9] + [0.0] * 14 + [0.9]) == [0, 15]


def test_a_probability_that_stays_high_fires_once():
    assert fires([0.9] * 40) == [0]
    assert fires([0.9] * 40 + [0.1, 0.9]) == [0, 41]


def test_reset_re_arms():
    trigger = WakeTrigger(0.5)
    assert trigger.update(0.9)
    assert not trigger.armed
    assert not trigger.update(0.9)
    trigger.reset()
    assert trigger.armed
    assert trigger.update(0.9)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5])
def test_a_threshold_outside_0_1_is_an_error(threshold):
    with pytest.raises(ValueError, match="threshold"):
        WakeTrigger(threshold)


# ------------------------------------------------------------ the detector, on a fake


class ScriptedModel:
    """One probability per 1280 samples (80 ms at 16 kHz) from a script, then 0.0."""

    def __init__(self, script: tuple[float, ...] | list[float] = ()) -> None:
        self.script = list(script)
        self.pending = 0
        self.chunks = 0
        self.feeds: list[int] = []
        self.resets = 0
        self.warmed = False

    def probabilities(self, pcm: bytes) -> list[float]:
        assert pcm, "pyopen-wakeword fails on an empty chunk"
        self.feeds.append(len(pcm) // 2)
        self.pending += len(pcm) // 2
        out = []
        while self.pending >= 1280:
            self.pending -= 1280
            out.append(self.script[self.chunks] if self.chunks < len(self.script) else 0.0)
            self.chunks += 1
        return out

    def warm_up(self) -> None:
        self.warmed = True

    def reset(self) -> None:
        self.resets += 1
        self.pending = 0


def blocks(seconds: float, rate: int, ms: int = 20):
    n = rate * ms // 1000
    for _ in range(int(seconds * 1000) // ms):
        yield np.zeros(n, np.float32)


def test_process_gives_the_chunks_probability_on_the_block_completing_it():
    model = ScriptedModel([0.1, 0.7, 0.3])
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000, backend=model)
    assert [detector.process(b) for b in blocks(0.24, 16000)] == [
        0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0, 0.3
    ]
    assert detector.threshold == 0.5


def test_process_gives_the_highest_of_several_chunks():
    model = ScriptedModel([0.2, 0.8, 0.4])
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000, backend=model)
    assert detector.process(np.zeros(3 * 1280, np.float32)) == 0.8


def test_detect_fires_once_per_wake_word():
    model = ScriptedModel([0.0, 0.6, 0.9, 0.3, 0.8] + [0.0] * 15 + [0.9])
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000, backend=model)
    hits = [i for i, b in enumerate(blocks(2.0, 16000)) if detector.detect(b)]
    assert hits == [7, 83]  # chunks 1 and 20: the 4th block of each 80 ms completes it
    assert detector.last_probability == 0.0


def test_detect_sees_every_chunk_of_a_long_block():
    # a crossing in the middle of a block must not be lost behind a later chunk
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000, backend=ScriptedModel([0.1, 0.9, 0.2]))
    assert detector.detect(np.zeros(3 * 1280, np.float32))
    assert detector.last_probability == 0.9


def test_other_rates_are_resampled_to_16k():
    model = ScriptedModel()
    detector = WakeWordDetector("hey_jarvis", 0.5, 48000, backend=model)
    for block in blocks(2.0, 48000):
        detector.process(block)
    # soxr holds back a few milliseconds; 2 s is 25 chunks
    assert 24 <= model.chunks <= 25
    assert 31000 <= sum(model.feeds) <= 32000


def test_long_blocks_are_fed_in_pieces_of_at_most_1_s():
    model = ScriptedModel()
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000, backend=model)
    detector.process(np.zeros(16000 * 3 + 5, np.float32))
    assert model.feeds == [16000, 16000, 16000, 5]
    detector.process(np.zeros(0, np.float32))  # nothing reaches the model
    assert len(model.feeds) == 4


def test_warm_up_and_reset():
    model = ScriptedModel([0.9, 0.9])
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000, backend=model)
    detector.warm_up()
    assert model.warmed and model.resets == 1
    assert detector.detect(np.zeros(1280, np.float32))
    assert not detector.detect(np.zeros(1280, np.float32))  # the same wake word
    detector.reset()
    assert model.resets == 2 and detector.last_probability == 0.0
    model.script.append(0.9)
    assert detector.detect(np.zeros(1280, np.float32))  # re-armed


def test_an_unknown_model_is_a_model_load_error():
    with pytest.raises(ModelLoadError, match="unknown wake word model 'hey_siri'") as err:
        WakeWordDetector("hey_siri", 0.5, 16000)
    assert "hey_jarvis" in str(err.value)


def test_an_unsupported_platform_is_a_model_load_error(monkeypatch):
    pyopen_wakeword = pytest.importorskip("pyopen_wakeword")

    def no_library(*args, **kwargs):
        raise ValueError("Unable to detect platform for tensorflowlite_c")

    monkeypatch.setattr(pyopen_wakeword.OpenWakeWordFeatures, "from_builtin", no_library)
    with pytest.raises(ModelLoadError, match="cannot load wake word model 'hey_jarvis'") as err:
        WakeWordDetector("hey_jarvis", 0.5, 16000)
    assert "wake.model: none" in str(err.value)


def test_a_bad_threshold_fails_before_loading():
    with pytest.raises(ValueError, match="threshold"):
        WakeWordDetector("hey_jarvis", 1.0, 16000, backend=ScriptedModel())


# ------------------------------------------------------------ the real model

QUESTION = "What is the capital of France?"


def detections(
    detector: WakeWordDetector, audio: np.ndarray, rate: int
) -> tuple[list[float], float]:
    """Feed ``audio`` plus 1 s of silence in 20 ms blocks as the pipeline does:
    the times (seconds, at the end of the detecting block) and the highest probability."""
    audio = np.concatenate([audio, np.zeros(rate, np.float32)])
    n = rate // 50
    times, peak = [], 0.0
    for start in range(0, audio.size, n):
        if detector.detect(audio[start : start + n]):
            times.append((start + n) / rate)
        peak = max(peak, detector.last_probability)
    return times, peak


def phrase_end(audio: np.ndarray, rate: int) -> float:
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    return (loud[-1] + 1) / rate


@pytest.fixture(scope="module")
def jarvis():
    detector = WakeWordDetector("hey_jarvis", 0.5, 16000)
    detector.warm_up()
    return detector


def speech(text: str, rate: int, voice: str | None) -> np.ndarray:
    from tests.support.speech import require_espeak, say

    if voice is None:
        return say(text, rate)  # espeak-ng en-us+m3, 160 words per minute
    from voiceagent.demo import espeak

    require_espeak()
    name, wpm = voice.split("@")
    return 0.7 * espeak(text, rate, voice=name, wpm=int(wpm))


@pytest.mark.realmodel
@pytest.mark.parametrize("voice", [None, "en-gb+f2@170"])
def test_hey_jarvis_is_detected_once_just_after_the_phrase(jarvis, voice):
    jarvis.reset()
    audio = speech(f"Hey Jarvis, {QUESTION}", 16000, voice)
    times, peak = detections(jarvis, audio, 16000)
    end = phrase_end(speech("Hey Jarvis", 16000, voice), 16000)
    # measured: 0.24 s (en-us+m3) and 0.22 s (en-gb+f2) after the end of "Jarvis"
    assert len(times) == 1, (times, peak)
    assert end < times[0] < end + 0.6, (times, end)
    assert peak > 0.9


@pytest.mark.realmodel
@pytest.mark.parametrize(
    "text", [QUESTION, "Is Jarvis listening? Tell Jarvis to turn on the lights."]
)
def test_no_wake_word_no_detection(jarvis, text):
    jarvis.reset()
    times, peak = detections(jarvis, speech(text, 16000, None), 16000)
    assert times == [] and peak < 0.2  # measured: 0.000 and 0.05


@pytest.mark.realmodel
def test_48k_input_is_detected_like_16k(jarvis):
    jarvis.reset()
    t16, _ = detections(jarvis, speech(f"Hey Jarvis, {QUESTION}", 16000, None), 16000)
    detector = WakeWordDetector("hey_jarvis", 0.5, 48000)
    detector.warm_up()
    t48, peak = detections(detector, speech(f"Hey Jarvis, {QUESTION}", 48000, None), 48000)
    assert len(t48) == 1 and peak > 0.9
    assert abs(t48[0] - t16[0]) < 0.1  # soxr's delay is a few milliseconds


@pytest.mark.realmodel
def test_reset_returns_to_the_warmed_up_state(jarvis):
    audio = speech(f"Hey Jarvis, {QUESTION}", 16000, None)
    audio = np.concatenate([audio, np.zeros(16000, np.float32)])
    traces = []
    for _ in range(2):
        jarvis.reset()
        traces.append([jarvis.process(audio[i : i + 320]) for i in range(0, audio.size, 320)])
    assert traces[0] == traces[1]
    # warmed up: one 80 ms chunk gives one probability, not the 8 s fill of a fresh extractor
    jarvis.reset()
    assert len(jarvis._backend.probabilities(np.zeros(1280, np.int16).tobytes())) == 1


@pytest.mark.realmodel
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_no_tflite_thread_pool():
    # TFLite's default options start 8 threads on the first call, even on 2 cores
    before = len(os.listdir("/proc/self/task"))
    detector = WakeWordDetector("alexa", 0.5, 16000)
    detector.warm_up()
    detector.process(np.zeros(16000, np.float32))
    assert len(os.listdir("/proc/self/task")) <= before


# -- real people ------------------------------------------------------------------

REAL_WAKE_MODELS = {"hey jarvis": "hey_jarvis", "okay nabu": "okay_nabu", "alexa": "alexa",
                    "hey mycroft": "hey_mycroft"}


@pytest.mark.realmodel
def test_real_people_saying_wake_words_are_heard_once_by_their_model_only():
    # tests/data holds ten real recordings of four wake words (pymicro-wakeword's
    # test set). Measured: eight are detected at every one of 8 chunk offsets
    # (peak 0.92-1.00), two never (a "Hey Jarvis" peaking at 0.16-0.32 and an
    # "Okay Nabu" at 0.00); no model fires on another's word.
    from tests.support.speech import _table, real

    detectors = {m: WakeWordDetector(m, 0.5, 16000) for m in REAL_WAKE_MODELS.values()}
    for d in detectors.values():
        d.warm_up()
    heard = 0
    clips = _table("wake.tsv")
    for name, rows in clips.items():
        audio = real(name).audio
        own = REAL_WAKE_MODELS[rows[0]["wake_word"]]
        counts = set()
        for offset in range(0, 1280, 320):  # where the 80 ms chunks fall is chance
            detectors[own].reset()
            times, _ = detections(detectors[own], np.concatenate([np.zeros(8000 + offset, np.float32), audio]), 16000)
            counts.add(len(times))
        assert len(counts) == 1 and counts.pop() in (0, len(rows)), (name, counts)  # never twice, never by luck
        heard += bool(detections(detectors[own], audio, 16000)[0])
        for model, detector in detectors.items():
            if model != own:
                detector.reset()
                assert detections(detector, audio, 16000)[0] == [], (name, model)
    assert heard / len(clips) >= 0.7, f"{heard} of {len(clips)} real wake words heard (measured 8 of 10)"


@pytest.mark.realmodel
def test_real_requests_wake_no_model():
    from tests.support.speech import real

    for model in REAL_WAKE_MODELS.values():
        detector = WakeWordDetector(model, 0.5, 16000)
        detector.warm_up()
        for name in ["req_go_somewhere", "req_forever", "read_amiable_himself", "read_cold_hearted"]:
            detector.reset()
            times, peak = detections(detector, real(name).audio, 16000)
            assert times == [] and peak < 0.2, (model, name, peak)
