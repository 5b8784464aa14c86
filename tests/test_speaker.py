import numpy as np

from voiceagent.audio.speaker import Speaker


def test_pull_plays_in_order_and_reports_start_and_end_to_the_sample():
    sp = Speaker(1000)
    sp.enqueue(1, np.ones(150, np.float32), "hello there")
    sp.enqueue(1, np.ones(100, np.float32), "world")
    sp.finish(1)
    out, notices = sp.pull(100)
    assert out.sum() == 100 and [(n.kind, n.offset) for n in notices] == [("start", 0)]
    out, notices = sp.pull(100)
    assert notices == []
    out, notices = sp.pull(100)
    assert out[:50].sum() == 50 and out[50:].sum() == 0
    assert [(n.kind, n.offset, n.played_samples, n.heard) for n in notices] == [
        ("end", 50, 250, "hello there world")]
    assert not sp.busy


def test_silence_when_nothing_is_queued():
    out, notices = Speaker(1000).pull(64)
    assert not out.any() and notices == []


def test_flush_stops_at_once_and_keeps_only_what_was_heard():
    sp = Speaker(1000)
    sp.enqueue(1, np.ones(100, np.float32), "one two three four")
    sp.enqueue(1, np.ones(100, np.float32), "five six")
    sp.enqueue(2, np.full(50, 0.5, np.float32), "other")
    sp.pull(50)
    assert sp.heard_text(1) == "one two"
    assert sp.flush(1) == 50
    out, notices = sp.pull(100)
    assert [(n.kind, n.turn, n.flushed, n.heard) for n in notices[:1]] == [("end", 1, True, "one two")]
    # turn 2's audio plays from its beginning, right away
    assert np.allclose(out[:50], 0.5) and not out[50:].any()


def test_finish_without_audio_says_so():
    assert Speaker(1000).finish(3) is False


def test_gain():
    sp = Speaker(1000, gain_db=-6.0206)
    sp.enqueue(1, np.ones(10, np.float32))
    out, _ = sp.pull(10)
    assert np.allclose(out, 0.5, atol=1e-3)
