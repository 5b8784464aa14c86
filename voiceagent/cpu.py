"""Thread budget: how the models share a small CPU.

On 2 cores the critical path of a reply is sequential (final ASR, then the
LLM's first clause, then its synthesis), so each model gets every core
(``threads: 2``) and they take turns: the LLM is held while the first clause is
synthesized (``tts.prioritize_first_clause``), the end-of-turn model and the
second-stage VAD take one thread each and are small.

Measured on the 2-core build machine, and why nothing here makes idle threads
sleep: with ``OMP_WAIT_POLICY=PASSIVE`` llama.cpp (OpenMP) produced a token
every 25 ms instead of 9 ms; with onnxruntime's spinning off, piper's first
clause took 86-93 ms instead of 83 ms. Spinning between a model's own parallel
regions is what makes it fast; the models do not overlap on the critical path.
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
