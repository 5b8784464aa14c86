"""The embedded language model: a GGUF through llama-cpp-python (a ``ChatModel``,
``PromptCache`` and ``EndOfMessage``)."""

from __future__ import annotations

import ctypes
import logging
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np

from voiceagent.config import LlmConfig
from voiceagent.errors import ModelLoadError, Stage, StageError
from voiceagent.gpu import cuda_available

logger = logging.getLogger(__name__)

_TRAILING_PUNCTUATION = re.compile(r"[\s.?!,;:…-]+$")
_MARK = "\u0000end-of-words\u0000"
"""Where the user's words end in a rendered chat prompt (the template adds more)."""


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
        self._format, self._end_tokens = self._end_of_message_scoring()
        self.caches = SessionCaches(self._llm)
        logger.info("LLM: %s, %s GPU layers", model_path.name, gpu_layers)

    def for_session(self, session: str) -> "LlamaSessionView":
        """A session's view, with its own history in the KV cache (``SessionCaches``)."""
        return LlamaSessionView(self, session)

    def _end_of_message_scoring(self):  # type: ignore[no-untyped-def]
        """The chat formatter the completions use, and the tokens that end a message."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter, format_chatml

        llm = self._llm
        template = llm.metadata.get("tokenizer.chat_template")
        if template:  # what Llama itself builds from the GGUF metadata
            eos, bos = llm.token_eos(), llm.token_bos()
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            )
        else:
            formatter = format_chatml
        ends = {llm.token_eos()}
        for text in ("?", ".", "!"):
            ends.add(llm.tokenize(text.encode(), add_bos=False, special=False)[0])
        return formatter, sorted(t for t in ends if t >= 0)

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
                seed=cfg.seed,
            )
            for chunk in chunks:
                delta = chunk["choices"][0]["delta"]  # type: ignore[index]
                piece = delta.get("content")
                if piece:
                    yield piece
        except GeneratorExit:
            raise
        except Exception as err:
            raise StageError(Stage.LLM, str(err)) from err

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

    def end_probability(self, messages: list[dict[str, str]], user_text: str) -> float:
        """How likely the user's message is to end right after these words.

        The language model's own next-token distribution after the user's words
        (trailing punctuation removed, since Whisper adds it to any fragment):
        the probability of the end-of-message token or of ``?``, ``.`` or ``!``.
        The idea of LiveKit's turn detector, which is a fine-tuned SmolLM2-135M;
        the instruct model measured on the benchmark corpus: fragments such as
        "What is the best way to" or "What is the capital on" score below 0.003,
        whole questions 0.008-0.9. It costs little: these tokens are the reply's
        prompt too, so the reply finds them in the KV cache.
        """
        import llama_cpp

        llm = self._llm
        words = _TRAILING_PUNCTUATION.sub("", user_text.strip())
        rendered = self._format(messages=[*messages, {"role": "user", "content": words + _MARK}])
        prompt = rendered.prompt[: rendered.prompt.index(_MARK)]
        try:
            tokens = llm.tokenize(
                prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
            )
            # Reuse the KV cache as llama-cpp-python's own generate() does; the
            # last token is always evaluated again so that its logits exist.
            cached = llm.longest_token_prefix(llm._input_ids.tolist(), tokens)
            llm.n_tokens = min(cached, len(tokens) - 1)
            llm.eval(tokens[llm.n_tokens :])
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
            ).astype(np.float64)
        except Exception as err:  # llama.cpp raises RuntimeError on decode failures
            raise StageError(Stage.LLM, str(err)) from err
        probs = np.exp(logits - logits.max())
        return float(probs[self._end_tokens].sum() / probs.sum())

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


class _Saved:
    """One session's KV cache, as llama.cpp serializes it (the cells in use)."""

    def __init__(self, data: "ctypes.Array[ctypes.c_uint8]", size: int, tokens: np.ndarray) -> None:
        self.data = data
        self.size = size
        self.tokens = tokens


class SessionCaches:
    """Several sessions on one llama.cpp context, each finding its own history in
    the KV cache.

    llama-cpp-python reuses the evaluated prompt up to the first token that
    differs. Two rooms taking turns would each find the other's history there
    and pay for their own again before the first token (hundreds of ms on 2
    cores with a few exchanges). So the cache is swapped instead: before a call
    for another session, the cells in use are saved (a few MB for the default
    model's short prompts) and that session's own are restored, on the LLM's
    worker thread. Measured in benchmarks/rooms.py. A session seen for the
    first time keeps what is there: the system prompt is the same for all.
    """

    def __init__(self, llm: object) -> None:
        self._llm = llm
        self.owner: str | None = None
        self._saved: dict[str, _Saved] = {}
        self._gone: set[str] = set()
        """Sessions that ended (``forget``) while the worker may still be in their call."""
        self._lock = threading.Lock()
        self.swap_ms: deque[float] = deque(maxlen=1000)
        """Milliseconds each of the last swaps took (``summary``)."""

    def use(self, session: str) -> None:
        with self._lock:
            self._use(session)

    def _use(self, session: str) -> None:
        if session == self.owner:
            return
        start = time.perf_counter()
        if self.owner is not None and self.owner not in self._gone:
            self._saved[self.owner] = self._save()
        saved = self._saved.pop(session, None)
        if saved is not None:
            self._restore(saved)
        self.owner = session
        self.swap_ms.append(1000 * (time.perf_counter() - start))
        logger.debug("LLM cache now %s's (%.1f ms)", session, self.swap_ms[-1])

    def forget(self, session: str) -> None:
        """``session`` ended (a browser that closed): its saved cache is dropped, and
        its cells are not saved when the next session takes the context, even if a
        call of its own was still on the worker (names are not reused: web-1, web-2...)."""
        with self._lock:
            self._gone.add(session)
            self._saved.pop(session, None)
            if self.owner == session:
                self.owner = None

    @property
    def saved_bytes(self) -> int:
        return sum(s.size for s in self._saved.values())

    def summary(self) -> str | None:
        """One line on the swaps so far (None: only one session ever used it)."""
        ms = sorted(self.swap_ms)
        if len(ms) < 2:
            return None
        return (
            f"LLM cache swaps between sessions: {len(ms)}, median {ms[len(ms) // 2]:.1f} ms, "
            f"max {ms[-1]:.1f} ms; {self.saved_bytes / 1e6:.1f} MB saved for {len(self._saved)} other session(s)"
        )

    def _save(self) -> _Saved:
        import llama_cpp

        llm = self._llm
        size = llama_cpp.llama_state_get_size(llm.ctx)  # type: ignore[attr-defined]
        data = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(llm.ctx, data, size)  # type: ignore[attr-defined]
        return _Saved(data, written, llm._input_ids.copy())  # the tokens evaluated  # type: ignore[attr-defined]

    def _restore(self, saved: _Saved) -> None:
        import llama_cpp

        llm = self._llm
        llama_cpp.llama_state_set_data(llm.ctx, saved.data, saved.size)  # type: ignore[attr-defined]
        n = saved.tokens.size
        llm.input_ids[:n] = saved.tokens  # the whole buffer; _input_ids is its first n_tokens  # type: ignore[attr-defined]
        llm.n_tokens = n  # type: ignore[attr-defined]


class LlamaSessionView:
    """One session's ``ChatModel``, ``PromptCache`` and ``EndOfMessage`` over the
    shared model: every call first makes the KV cache this session's. All calls
    run on the one LLM worker, so the swap and the call never interleave."""

    def __init__(self, model: LlamaChatModel, session: str) -> None:
        self.model = model
        self.session = session

    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        self.model.caches.use(self.session)  # runs at the first next(), on the worker
        yield from self.model.stream_chat(messages)

    def prefill(self, messages: list[dict[str, str]], user_text: str = "") -> None:
        self.model.caches.use(self.session)
        self.model.prefill(messages, user_text)

    def end_probability(self, messages: list[dict[str, str]], user_text: str) -> float:
        self.model.caches.use(self.session)
        return self.model.end_probability(messages, user_text)
