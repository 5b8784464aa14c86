"""Detect whether each inference library can use a CUDA GPU here.

Each library is asked separately: a machine can have a GPU that ctranslate2 can
use while llama-cpp-python was built without CUDA, for example.
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)


@functools.cache
def cuda_available(library: str) -> bool:
    """True if ``library`` (ctranslate2, llama_cpp or onnxruntime) can run on CUDA."""
    try:
        if library == "ctranslate2":
            import ctranslate2

            return ctranslate2.get_cuda_device_count() > 0
        if library == "llama_cpp":
            import llama_cpp

            return bool(llama_cpp.llama_supports_gpu_offload())
        if library == "onnxruntime":
            import onnxruntime

            return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except Exception as err:  # a broken CUDA install must not stop a CPU run
        logger.warning("could not probe CUDA for %s: %s", library, err)
        return False
    raise ValueError(f"unknown library {library!r}")
