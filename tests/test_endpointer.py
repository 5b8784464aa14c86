from voiceagent.rules.endpointer import Decision, Endpointer, EndpointerSettings

S = EndpointerSettings(frame_ms=20, start_ms=60, resume_ms=60, speculate_ms=200,
                       trailing_silence_ms=600, max_utterance_ms=5000)


def run(flags: list[bool], settings: EndpointerSettings = S) -> list[tuple[int, Decision]]:
    ep = Endpointer(settings)
    return [(i, d) for i, f in enumerate(flags) if (d := ep.push(f)) is not Decision.NONE]


def frames(ms: int, speech: bool) -> list[bool]:
    return [speech] * (ms // 20)


def test_start_pause_end():
    decisions = run(frames(200, False) + frames(500, True) + frames(800, False))
    assert [d for _, d in decisions] == [Decision.START, Decision.PAUSE, Decision.END]
    # START after 3 voiced frames; PAUSE after 10 silent; END after 30 silent.
    assert decisions[0][0] == 10 + 2
    assert decisions[1][0] == 35 + 9
    assert decisions[2][0] == 35 + 29


def test_onset_and_last_voiced_are_sample_accurate():
    ep = Endpointer(S)
    for f in frames(200, False) + frames(500, True) + frames(800, False):
        ep.push(f)
    assert ep.onset_index == 10
    assert ep.last_voiced_index == 34


def test_mid_sentence_pause_shorter_than_trailing_resumes():
    flags = frames(500, True) + frames(400, False) + frames(500, True) + frames(800, False)
    assert [d for _, d in run(flags)] == [
        Decision.START, Decision.PAUSE, Decision.RESUME, Decision.PAUSE, Decision.END]


def test_short_blips_inside_silence_do_not_reset_it():
    flags = frames(500, True) + frames(300, False) + [True] + frames(100, False) + [True, True] + frames(400, False)
    decisions = run(flags)
    assert [d for _, d in decisions] == [Decision.START, Decision.PAUSE, Decision.END]
    # the end comes 600 ms after the real speech, blips included in the silence
    assert decisions[-1][0] == 25 + 29


def test_a_click_does_not_start_an_utterance():
    assert run([False, True, False, False, True, False] * 10) == []


def test_scattered_speech_within_window_starts():
    assert [d for _, d in run([True, False, True, True, False])] == [Decision.START]


def test_max_utterance_forces_end():
    settings = EndpointerSettings(frame_ms=20, start_ms=60, resume_ms=60, speculate_ms=200,
                                 trailing_silence_ms=650, max_utterance_ms=1000)
    decisions = run(frames(3000, True), settings)
    assert [d for _, d in decisions][:2] == [Decision.START, Decision.END]


def test_speculate_zero_pauses_on_first_silent_frame():
    settings = EndpointerSettings(frame_ms=20, start_ms=60, resume_ms=60, speculate_ms=0,
                                 trailing_silence_ms=200, max_utterance_ms=20000)
    decisions = run(frames(200, True) + frames(300, False), settings)
    assert decisions[1] == (10, Decision.PAUSE)
