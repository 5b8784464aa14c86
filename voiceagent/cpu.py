"""Thread budget: how the models share a small CPU.

On 2 cores the critical path of a reply is mostly sequential (final ASR, then
the LLM's first clause, then its synthesis), so the ASR and the TTS get every
core (``threads: 2``) and take turns: the LLM is held while the first clause is
synthesized (``tts.prioritize_first_clause``); the end-of-turn model and the
second-stage VAD take one thread each and are small.

The LLM gets one thread (``llm.threads: 1``). llama.cpp's threads meet at a
barrier after every step, so with two threads on two cores any other runnable
thread stalls it: measured, 232 ms a token beside a Smart Turn loop instead of
10 ms alone, while one thread made 18 ms a token either way. In the real
pipeline something else always runs (Smart Turn judging the pause beside the
reply, the audio loop, the next clause's TTS): one thread brought the first
clause from ~200 ms to ~135 ms on real requests.

Why nothing here makes idle threads sleep: with ``OMP_WAIT_POLICY=PASSIVE``
llama.cpp (OpenMP) produced a token every 25 ms instead of 9 ms; with
onnxruntime's spinning off, piper's first clause took 86-93 ms instead of 83 ms.
"""

from __future__ import annotations


def onnx_options(threads: int):  # type: ignore[no-untyped-def]
    """onnxruntime session options: ``threads`` intra-op threads, one inter-op."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options
