"""The barge-in policy, as pure decisions on plain values."""

from dataclasses import replace

from voiceagent.config import BargeInConfig, TurnConfig
from voiceagent.rules.bargein import (
    Verdict,
    confirms_by_duration,
    counts_as_speech,
    is_clearly_noise,
    is_user_speech,
    judge,
    words_of,
)

S = replace(BargeInConfig().settings(), stop_phrases=tuple(TurnConfig().stop_phrases))


def test_user_speech_must_be_voiced_and_stand_out_of_the_echo():
    assert is_user_speech(True, -40.0, -20.0, S)  # ducked by AEC3 in double talk, still there
    assert not is_user_speech(False, -25.0, -20.0, S)  # webrtcvad says no
    assert not is_user_speech(True, -50.0, -20.0, S)  # residual echo of the reply
    assert is_user_speech(True, -50.0, None, S)  # nothing played: any level


def test_only_what_the_second_stage_agrees_with_counts():
    assert counts_as_speech(0.8, S)
    assert not counts_as_speech(0.2, S)  # a cough, a knock
    assert counts_as_speech(None, S)  # no second stage configured


def test_long_speech_confirms_without_words():
    assert not confirms_by_duration(980, S)  # a slow "mm-hmm" is ~700 ms
    assert confirms_by_duration(1000, S)


def test_judge():
    played = "The capital of France is Paris, a city on the Seine."
    assert judge("Stop.", 400, played, S) is Verdict.INTERRUPTION
    assert judge("Wait, what about Spain?", 600, played, S) is Verdict.INTERRUPTION
    assert judge("Mm-hmm.", 450, played, S) is Verdict.BACKCHANNEL
    assert judge("Yeah, yeah. Okay.", 600, played, S) is Verdict.BACKCHANNEL
    assert judge("I see.", 400, played, S) is Verdict.BACKCHANNEL
    assert judge("I see a dog.", 600, played, S) is Verdict.INTERRUPTION
    assert judge("", 400, played, S) is Verdict.NOISE
    assert judge("Stop.", 150, played, S) is Verdict.SHORT  # too short to tell yet
    assert judge("a city on the Seine", 900, played, S) is Verdict.ECHO
    assert judge("Paris", 400, played, S) is Verdict.INTERRUPTION  # one word is not echo
    assert judge("[coughing]", 400, played, S) is Verdict.NOISE
    assert judge("And then then.", 600, played, S, logprob=-0.93) is Verdict.UNCLEAR
    assert judge("Wait.", 400, played, S, logprob=-0.45) is Verdict.INTERRUPTION
    assert judge("(clears throat) Stop!", 600, played, S) is Verdict.INTERRUPTION


def test_garbled_echo_is_echo_but_a_stop_over_it_is_not():
    played = "The ocean is a vast and mysterious world, full of wonders."
    assert judge("serious work.", 600, played, S) is Verdict.ECHO  # issue 14, a 150 ms stall
    assert judge("No, what about the mysterious world?", 900, played, S) is Verdict.INTERRUPTION
    assert judge("Wait, the mysterious world.", 900, played, S) is Verdict.INTERRUPTION


def test_noise_that_never_sounded_like_a_voice_is_rejected_at_once():
    assert is_clearly_noise(0.05, S)  # Silero on a noise burst
    assert not is_clearly_noise(0.2, S)  # a word half-suppressed by AEC3: ask the ASR
    assert not is_clearly_noise(None, S)  # no second stage: ask the ASR


def test_words_of_keeps_hyphenated_words():
    assert words_of("Mm-hmm. Uh-huh, OK!") == ["mm-hmm", "uh-huh", "ok"]
