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


def test_hold_fades_out_pauses_and_release_resumes_where_it_stopped():
    sp = Speaker(1000)  # fade is 5 samples at 1 kHz
    sp.enqueue(1, np.ones(300, np.float32), "one two three")
    sp.finish(1)
    sp.pull(100)
    sp.hold()
    out, notices = sp.pull(100)
    assert 0 < out[:5].sum() < 5 and not out[5:].any()  # faded over 5 samples, then quiet
    assert [(n.kind, n.turn, n.offset) for n in notices] == [("pause", 1, 5)]
    out, notices = sp.pull(100)
    assert not out.any() and notices == [] and sp.busy
    assert sp.heard_text(1) == "one"  # 105 of 300 samples
    sp.release()
    out, notices = sp.pull(100)
    assert [n.kind for n in notices] == ["resume"] and out[0] == 0 and out[10:].all()
    out, notices = sp.pull(100)
    assert [(n.kind, n.played_samples) for n in notices] == [("end", 300)]


def test_hold_before_a_turn_starts_keeps_it_waiting():
    sp = Speaker(1000)
    sp.hold()
    sp.enqueue(1, np.ones(50, np.float32), "hi")
    out, notices = sp.pull(100)
    assert not out.any() and notices == []
    sp.release()
    out, notices = sp.pull(100)
    assert [n.kind for n in notices] == ["start"] and out[:50].all()


def test_flush_while_held_ends_the_turn_with_what_was_played():
    sp = Speaker(1000)
    sp.enqueue(1, np.ones(300, np.float32), "one two three")
    sp.pull(100)
    sp.hold()
    sp.pull(100)
    assert sp.flush(1) == 105
    sp.release()
    out, notices = sp.pull(100)
    assert not out.any()
    assert [(n.kind, n.flushed, n.heard) for n in notices] == [("end", True, "one")]


def test_duck_lowers_the_output_and_echo_level_follows_it():
    sp = Speaker(1000, level_window_s=0.2)
    assert sp.echo_level_db() is None
    sp.enqueue(1, np.full(1000, 0.5, np.float32))
    sp.pull(100)
    assert abs(sp.echo_level_db() - 20 * np.log10(0.5)) < 0.1
    sp.duck(-20)
    sp.pull(100)  # ramps down over this block
    out, _ = sp.pull(100)
    assert np.allclose(out, 0.05, atol=1e-4)
    sp.duck(0)
    sp.pull(100)
    out, _ = sp.pull(100)
    assert np.allclose(out, 0.5)
    for _ in range(3):
        sp.pull(100)
    sp.flush(1)
    for _ in range(3):
        sp.pull(100)
    assert sp.echo_level_db() is None  # the window has only silence now
