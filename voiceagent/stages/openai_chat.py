"""A language model behind an OpenAI-compatible server (``llm.backend: openai``).

llama.cpp's ``llama-server`` and ``llama_cpp.server``, Ollama (``/v1``), vLLM and
others serve ``POST /chat/completions`` with server-sent events. This is how a
bigger model than the embedded one is used, or the LLM put on a GPU machine
elsewhere in the house while the daemon runs on a small box by the microphone.

It is a ``ChatModel`` only: a server neither lets the client fill its prompt
cache ahead of time (``PromptCache``) nor gives the next-token distribution
(``EndOfMessage``), so the pauses are judged by the words and the voice alone.
(llama.cpp's servers do keep the last prompt cached, so a stable prefix of
system prompt and history still makes the first token cheap.)

The reply streams through httpx on the LLM worker's thread: closing the
iterator (a turn cut mid-reply) closes the HTTP response, which tells the
server to stop generating.
"""

from __future__ import annotations

import json
import logging
from typing import Iterator

import httpx

from voiceagent.config import Config
from voiceagent.errors import ModelLoadError, Stage, StageError

logger = logging.getLogger(__name__)


class OpenAIChatModel:
    def __init__(self, cfg: Config) -> None:
        llm = cfg.llm
        assert llm.base_url is not None  # the config's validator says so
        self._cfg = llm
        self.base_url = llm.base_url.rstrip("/")
        key = cfg.secret(llm.api_key, llm.api_key_file, "llm.api_key")
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(llm.read_timeout_s, connect=llm.connect_timeout_s),
        )
        # The embedded model's file is no name on a server: left at it, ask the server.
        default = type(llm).model_fields["model"].default
        self.model: str | None = llm.model if llm.model != default else None
        """The model's name on the server; None until ``warm_up`` asks it for its first."""

    # ------------------------------------------------------------------ replies

    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        cfg = self._cfg
        body = {
            "model": self.model or "",
            "messages": messages,
            "stream": True,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            # llama.cpp's servers and vLLM take these too; others ignore them
            "top_k": cfg.top_k,
            "repeat_penalty": cfg.repeat_penalty,
        }
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise StageError(Stage.LLM, self._refusal(response))
                for line in response.iter_lines():
                    piece = _piece(line)
                    if piece is None:
                        break  # [DONE]
                    if piece:
                        yield piece
        except httpx.HTTPError as err:
            raise StageError(Stage.LLM, self._describe(err)) from err

    # ----------------------------------------------------------------- start-up

    def warm_up(self, system_prompt: str) -> None:
        """Check that the server answers and serves the model, before any turn
        (a one-line error otherwise), and let it cache the system prompt."""
        if self.model is None:
            self.model = self._first_model()
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": "Hello."}]
        try:
            for _ in self.stream_chat(messages):
                break
        except StageError as err:
            raise ModelLoadError(str(err).removeprefix("llm: "), "check llm.base_url and llm.model") from None
        logger.info("LLM: %s at %s", self.model, self.base_url)

    def _first_model(self) -> str:
        try:
            response = self._client.get("/models")
            if response.status_code != 200:
                raise ModelLoadError(self._refusal(response), "check llm.base_url, or set llm.model")
            models = [m["id"] for m in response.json().get("data", [])]
        except httpx.HTTPError as err:
            raise ModelLoadError(self._describe(err), "check llm.base_url") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ModelLoadError(
                f"{self.base_url}/models did not answer with a list of models", "set llm.model"
            ) from None
        if not models:
            raise ModelLoadError(f"the LLM server at {self.base_url} serves no model", "set llm.model")
        return models[0]

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ errors

    def _describe(self, err: httpx.HTTPError) -> str:
        where = f"the LLM server at {self.base_url}"
        if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout):
            return f"cannot reach {where} (is it running?): {err}"
        if isinstance(err, httpx.ReadTimeout):
            return f"{where} sent nothing for {self._cfg.read_timeout_s:g} s (llm.read_timeout_s)"
        if isinstance(err, httpx.RemoteProtocolError | httpx.ReadError):
            return f"{where} closed the connection mid-reply: {err}"
        return f"{where}: {type(err).__name__}: {err}"

    def _refusal(self, response: httpx.Response) -> str:
        """The server's own words for an error answer (HTTP 4xx/5xx)."""
        detail = response.text.strip()
        try:
            data = response.json()
            error = data.get("error", data) if isinstance(data, dict) else data
            detail = error.get("message", detail) if isinstance(error, dict) else str(error)
        except ValueError:
            pass
        model = f" for model {self.model!r}" if self.model else ""
        return f"the LLM server at {self.base_url} answered {response.status_code}{model}: {detail[:300]}"


def _piece(line: str) -> str | None:
    """The text in one server-sent event line: "" for none, None at the end."""
    if not line.startswith("data:"):
        return ""  # blank lines between events, comments, event names
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        choices = json.loads(data).get("choices") or [{}]
        return choices[0].get("delta", {}).get("content") or ""
    except (ValueError, AttributeError, TypeError):
        logger.debug("ignoring a malformed event from the LLM server: %r", data[:200])
        return ""
