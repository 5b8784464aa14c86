"""Thread budget: the models take turns on the cores instead of spinning on them.

On a small CPU the critical path of a reply is sequential (ASR, then the LLM,
then the first clause's TTS), so each model is given every core (``threads: 2``
on 2 cores). What ruins that is idle spinning: after a call returns, OpenMP
(ctranslate2's libiomp spins 200 ms by default, llama.cpp's libgomp a while too)
and onnxruntime's thread pools keep their threads busy-waiting for more work,
so the *next* model in the chain runs on a core that is not really free.
Measured on 2 cores: piper's first clause took 230-300 ms right after an LLM
call instead of 90 ms alone.

``quiet_thread_pools`` must run before ctranslate2 or llama_cpp is imported
(the OpenMP runtimes read the environment once, when they load); the CLI calls
it first thing. Explicit settings in the environment win.
"""

from __future__ import annotations

import os

_QUIET = {
    "OMP_WAIT_POLICY": "PASSIVE",  # libgomp (llama.cpp) and libiomp: sleep when idle
    "KMP_BLOCKTIME": "0",  # libiomp (ctranslate2): no spin after a parallel region
}


def quiet_thread_pools() -> None:
    """Stop idle OpenMP threads from spinning (call before loading any model)."""
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)


def onnx_options(threads: int):  # type: ignore[no-untyped-def]
    """onnxruntime session options for ``threads`` threads that do not spin when idle."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
