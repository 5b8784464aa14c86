"""The language model: the ``ChatModel`` protocol and its llama.cpp implementation."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator, Protocol

from voiceagent.config import LlmConfig
from voiceagent.errors import ModelLoadError, StageError
from voiceagent.gpu import cuda_available

logger = logging.getLogger(__name__)


class ChatModel(Protocol):
    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Yield pieces of the reply as they are generated. Blocking; use a worker."""
        ...

    def prefill(self, messages: list[dict[str, str]], user_text: str = "") -> None:
        """Evaluate the prompt prefix of the next turn (system prompt and history),
        and the first words of the user's message if they are known."""
        ...


class LlamaChatModel:
    """A GGUF chat model through llama-cpp-python, with the chat template from the file.

    llama-cpp-python keeps the tokens of the previous call in its KV cache and
    re-evaluates only from the first differing token, so keeping the system
    prompt and history as a stable prefix makes the first token cost only the
    new words; ``warm_up`` fills the cache with the system prompt at start-up.
    """

    def __init__(self, model_path: Path, cfg: LlmConfig) -> None:
        from llama_cpp import Llama

        gpu_layers = cfg.gpu_layers
        if gpu_layers == "auto":
            gpu_layers = -1 if cuda_available("llama_cpp") else 0
        try:
            self._llm = Llama(
                model_path=str(model_path),
                n_ctx=cfg.context_tokens,
                n_threads=cfg.threads,
                n_threads_batch=cfg.threads,
                n_gpu_layers=gpu_layers,
                verbose=False,
            )
        except Exception as err:  # llama_cpp raises ValueError for bad files
            raise ModelLoadError(
                f"cannot load LLM {model_path}: {err}", "llm.model must be a GGUF file"
            ) from err
        self._cfg = cfg
        self.gpu_layers = gpu_layers
        logger.info("LLM: %s, %s GPU layers", model_path.name, gpu_layers)

    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        cfg = self._cfg
        try:
            chunks = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=cfg.top_k,
                repeat_penalty=cfg.repeat_penalty,
            )
            for chunk in chunks:
                delta = chunk["choices"][0]["delta"]  # type: ignore[index]
                piece = delta.get("content")
                if piece:
                    yield piece
        except GeneratorExit:
            raise
        except Exception as err:
            raise StageError("llm", str(err)) from err

    def prefill(self, messages: list[dict[str, str]], user_text: str = "") -> None:
        """Put the next turn's prefix in the KV cache while nobody is waiting.

        When the bounded history slides, the whole history after the system
        prompt changes and would be re-evaluated on the user's time (over a
        second with six turns on 2 cores). A user message renders the same
        tokens as the real one up to where their texts differ, so the next turn
        reuses them: an empty one after a turn, the words of a partial transcript
        while the user is still speaking (the CPU is idle then).
        """
        for _ in self.stream_chat([*messages, {"role": "user", "content": user_text}]):
            break

    def warm_up(self, system_prompt: str) -> float:
        """Evaluate the system prompt once so its KV cache is reused. Returns seconds."""
        start = time.perf_counter()
        messages = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": "Hello."},
        ]
        for _ in self.stream_chat(messages):
            break
        return time.perf_counter() - start
