"""End of turn: the pure per-pause decision, the endpointer honouring it, and the
conversation asking the model (fakes on a manual clock); the real Smart Turn model
and the windowed ASR at the end."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.conversation import converse, first
from tests.support.fakes import FakeChat, FakeTranscriber, silence, tone
from voiceagent.rules.endpointer import Decision, Endpointer, EndpointerSettings
from voiceagent.rules.turn_end import (
    TurnEndSettings,
    looks_unfinished,
    silence_needed_ms,
)
from voiceagent.stages.protocols import Transcript

S = TurnEndSettings(
    complete_ms=250, unsure_ms=450, unfinished_ms=1000, doubtful_ms=600, threshold=0.5, words_threshold=0.01,
    fragment_threshold=0.001,
)


@pytest.mark.parametrize(
    "text",
    ["Remind me to", "I was thinking about", "Could you tell me about the", "Set a timer for",
     "I'd like a pizza and", "Well, um", "So I was wondering,", "Play something like...",
     "What is the capital of"],
)
def test_words_a_sentence_cannot_end_on_are_unfinished(text):
    assert looks_unfinished(text)


@pytest.mark.parametrize(
    "text",
    ["", "What is the capital of France?", "Turn on the kitchen lights", "Where are you from?",
     "What should I do", "Do you know where the station is", "What is it like?", "I think so.",
     "Why?"],
)
def test_complete_looking_words(text):
    assert not looks_unfinished(text)


def test_silence_needed_per_pause():
    assert silence_needed_ms("Remind me to", 0.99, S) == 1000  # the words win
    assert silence_needed_ms("What time is it?", 0.9, S) == 250
    assert silence_needed_ms("What time is it?", 0.5, S) == 250  # at the threshold
    assert silence_needed_ms("What time is it?", 0.2, S) == 450  # the voice is unsure
    assert silence_needed_ms("What time is it?", None, S) == 450  # no model
    # the language model finds the words a fragment (a misheard "of"): wait,
    # whatever the voice says; only doubtful: wait a little longer
    assert silence_needed_ms("What is the capital on?", 0.9, S, words_probability=0.0004) == 1000
    assert silence_needed_ms("7 of clubs.", 0.99, S, words_probability=0.003) == 600
    assert silence_needed_ms("7 of clubs.", 0.2, S, words_probability=0.003) == 600
    assert silence_needed_ms("What is the capital of France?", 0.9, S, words_probability=0.93) == 250


def test_an_unlikely_end_by_the_language_model_is_waited_out():
    class Fragmentary(FakeChat):
        end_p = 0.0005

    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.7), tone(1.0), silence(2.5)])
    events, _, _ = converse(audio, chat=Fragmentary(), end_model=FixedEnd(0.3))
    judged = [e for e in events if e.type == "turn_end_judged"]
    assert judged and all(j.silence_ms == 1000 and j.words_probability == 0.0005 for j in judged)
    # the 0.7 s pause is waited out: the turn ends after the whole utterance
    assert [e.turn for e in events if e.type == "end_of_turn"] == [1]


def run(ep: Endpointer, flags: list[bool]) -> list[tuple[int, Decision]]:
    return [(i, d) for i, f in enumerate(flags) if (d := ep.push(f)) is not Decision.NONE]


def test_endpointer_ends_after_the_silence_set_for_this_pause():
    ep = Endpointer(EndpointerSettings(frame_ms=20, start_ms=60, resume_ms=60, speculate_ms=100,
                                       trailing_silence_ms=1000, max_utterance_ms=20000))
    got = run(ep, [True] * 10 + [False] * 8)
    assert got == [(2, Decision.START), (14, Decision.PAUSE)]
    ep.set_silence_needed(200)  # 8 silent frames = 160 ms so far
    assert ep.push(False) is Decision.NONE  # 180 ms
    assert ep.push(False) is Decision.END  # the 10th silent frame: 200 ms


def test_a_shorter_silence_than_already_passed_ends_at_the_next_frame():
    ep = Endpointer(EndpointerSettings(frame_ms=20, start_ms=60, resume_ms=60, speculate_ms=100,
                                       trailing_silence_ms=1000, max_utterance_ms=20000))
    run(ep, [True] * 10 + [False] * 20)
    ep.set_silence_needed(250)
    assert ep.push(False) is Decision.END


def test_resumed_speech_restores_the_default_silence():
    ep = Endpointer(EndpointerSettings(frame_ms=20, start_ms=60, resume_ms=60, speculate_ms=100,
                                       trailing_silence_ms=400, max_utterance_ms=20000))
    run(ep, [True] * 10 + [False] * 6)
    ep.set_silence_needed(2000)
    got = run(ep, [True] * 5 + [False] * 20)
    assert (2, Decision.RESUME) in got and (24, Decision.END) in got  # 20 frames = 400 ms


class FixedEnd:
    """An end-of-turn model that always gives the same probability."""

    sample_rate = 16000

    def __init__(self, probability: float) -> None:
        self.p = probability
        self.calls = 0

    def probability(self, audio: np.ndarray) -> float:
        self.calls += 1
        return self.p


class Words(FakeTranscriber):
    """Short audio is an unfinished phrase, longer audio the whole request."""

    def transcribe(self, audio: np.ndarray) -> Transcript:
        super().transcribe(audio)
        loud = np.count_nonzero(np.abs(audio) > 0.1) / 16000
        return Transcript("Remind me to" if loud < 1.5 else "Remind me to buy milk.", 0.0)


def check_ended_as_judged(events, silence_ms: int, turn: int = 1) -> None:
    """The turn ended once the judged silence had passed, or at the judgement if that
    came later (worker threads are not on the manual clock: under load they lag)."""
    end = first(events, "end_of_turn", turn).t
    speech_end = first(events, "speech_end", turn).t
    judged = [e for e in events if e.type == "turn_end_judged" and e.turn == turn][-1]
    assert judged.silence_ms == silence_ms
    due = max(speech_end + silence_ms / 1000, judged.t)
    assert due - 0.001 <= end <= due + 0.045, (end, speech_end, judged)


def test_a_complete_turn_ends_after_the_short_silence():
    audio = np.concatenate([silence(0.3), tone(1.0), silence(2.0)])
    events, _, _ = converse(audio, end_model=FixedEnd(0.9))
    judged = first(events, "turn_end_judged", 1)
    assert judged.silence_ms == 250 and judged.probability == pytest.approx(0.9)
    check_ended_as_judged(events, 250)
    assert first(events, "turn_end", 1).reason == "answered"


def test_an_unsure_voice_waits_longer():
    audio = np.concatenate([silence(0.3), tone(1.0), silence(2.0)])
    events, _, _ = converse(audio, end_model=FixedEnd(0.1))
    check_ended_as_judged(events, 400)


def test_a_hesitation_after_an_unfinished_phrase_is_waited_out():
    # 700 ms of silence after "Remind me to": longer than the unsure wait, but
    # the words are unfinished, so the turn goes on and is answered as a whole.
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.7), tone(1.0), silence(2.5)])
    events, _, _ = converse(audio, transcriber=Words(), end_model=FixedEnd(0.99))
    judged = [e for e in events if e.type == "turn_end_judged"]
    # (under load the first pause's judgement may come after speech resumed and be
    # dropped; the default silence then holds the turn open just the same)
    assert all(j.silence_ms == 1000 for j in judged if j.text == "Remind me to")
    assert [e.text for e in events if e.type == "asr_final"] == ["Remind me to buy milk."]
    assert [e.turn for e in events if e.type == "end_of_turn"] == [1]
    check_ended_as_judged(events, 250)


def test_a_failing_model_leaves_the_words_to_decide():
    class Broken:
        sample_rate = 16000
        def probability(self, audio):
            from voiceagent.errors import StageError
            raise StageError("turn", "boom")

    audio = np.concatenate([silence(0.3), tone(1.0), silence(2.0)])
    events, _, _ = converse(audio, end_model=Broken())
    assert first(events, "turn_end_judged", 1).probability is None
    assert first(events, "turn_end", 1).reason == "answered"


# ---------------------------------------------------------------- real models

@pytest.mark.realmodel
def test_smart_turn_hears_a_finished_and_an_unfinished_sentence():
    from tests.support.speech import ROOT, require_models, say
    from voiceagent.audio.convert import resample
    from voiceagent.stages.smart_turn import SmartTurn

    require_models()
    model = SmartTurn(ROOT / "models/smart-turn-v3.2/smart-turn-v3.2-cpu.onnx", threads=1)
    pause = silence(0.2)
    done = np.concatenate([resample(say("Turn on the kitchen lights."), 22050, 16000), pause])
    unfinished = np.concatenate([resample(say("I would like to know"), 22050, 16000), pause])
    assert model.probability(done) > 0.5
    assert model.probability(unfinished) < 0.5


@pytest.mark.realmodel
def test_the_fitted_asr_window_transcribes_real_speech_like_the_full_one():
    from tests.support.speech import ROOT, real, require_models, speech_of, word_error_rate
    from voiceagent.config import AsrConfig
    from voiceagent.stages.whisper import WhisperTranscriber, is_probably_noise

    require_models()
    fit = WhisperTranscriber(ROOT / "models/whisper-tiny.en", AsrConfig(window="fit"))
    full = WhisperTranscriber(ROOT / "models/whisper-tiny.en", AsrConfig(window="full"))
    # Real people, no digits (tiny.en writes numbers as digits). Measured word
    # error rates, both windows alike: 0, 0, 0.05, 0.25 ("old-sposed"), 0.14,
    # 0.05, 0. (Short counted phrases, where the fitted window loops, are the
    # next test.)
    names = ["req_go_somewhere", "req_forever", "read_dashwood", "read_ill_disposed",
             "read_cold_hearted", "read_amiable_woman", "read_amiable_himself"]
    errors = {"fit": 0.0, "full": 0.0}
    for name in names:
        clip = speech_of(real(name), before_s=0.3, after_s=0.06)  # as the pipeline cuts it
        for window, model in (("fit", fit), ("full", full)):
            result = model.transcribe(clip.audio)
            assert word_error_rate(clip.text, result.text) <= 0.34, (name, window, result)
            errors[window] += word_error_rate(clip.text, result.text)
        assert result.logprob is not None and -1.0 < result.logprob <= 0
    assert errors["fit"] <= errors["full"] + 0.1, errors
    assert is_probably_noise(fit.transcribe(silence(1.0)).text)  # "you", filtered downstream


@pytest.mark.realmodel
def test_short_counted_phrases_do_not_loop():
    from tests.support.speech import ROOT, real, require_models, speech_of, word_error_rate
    from voiceagent.config import AsrConfig
    from voiceagent.rules.repeats import find_loop
    from voiceagent.stages.whisper import WhisperTranscriber

    require_models()
    fit = WhisperTranscriber(ROOT / "models/whisper-tiny.en", AsrConfig(window="fit"))
    # With the fitted window alone, tiny.en wrote "10 of clubs 10 of clubs 10 of
    # clubs 10 of" and "4 queen of clothes" four times; such loops are decoded
    # again with the full window. Numbers count as words ("10" is "ten").
    for name in ("req_cards_ten_of_clubs", "req_cards_four_queen", "req_cards_seven_of_clubs",
                 "req_cards_five_five", "req_cards_hand"):
        clip = speech_of(real(name), before_s=0.3, after_s=0.06)
        text = fit.transcribe(clip.audio).text
        assert find_loop(text) is None, (name, text)
        assert word_error_rate(clip.text, text) <= 0.34, (name, text)


@pytest.mark.realmodel
def test_the_language_model_knows_a_fragment_from_a_question():
    from tests.support.speech import ROOT, require_models
    from voiceagent.config import LlmConfig
    from voiceagent.stages.llama import LlamaChatModel

    require_models()
    cfg = LlmConfig()
    chat = LlamaChatModel(ROOT / cfg.model, cfg)
    prefix = [{"role": "system", "content": cfg.system_prompt}]
    assert chat.end_probability(prefix, "What is the best way to?") < 0.01
    assert chat.end_probability(prefix, "What is the capital on?") < 0.01
    assert chat.end_probability(prefix, "What is the capital of France?") > 0.1
    # the tokens stay in the KV cache: the reply to the same words starts from them
    reply = "".join(chat.stream_chat([*prefix, {"role": "user", "content": "What is the capital of France?"}]))
    assert "Paris" in reply
