"""An OpenAI-compatible LLM server for tests: llama-cpp-python's own
``llama_cpp.server`` serving the default GGUF on loopback (the ``server``
fixture, registered for every test module by tests/conftest.py), and the
``llm.backend: openai`` chat model pointed at it."""

from __future__ import annotations

import signal
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.support.speech import ROOT, require_models
from voiceagent.bench.llama_server import start_llama_server
from voiceagent.config import Config

if TYPE_CHECKING:
    from voiceagent.stages.openai_chat import OpenAIChatModel

STORY = [{"role": "user", "content": "Tell me a very long story about a dragon and a knight."}]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def server(tmp_path):
    """llama_cpp.server serving the default GGUF on a free loopback port."""
    require_models()
    with ExitStack() as stack:
        proc, url = start_llama_server(stack, Config(base_dir=ROOT), tmp_path / "llama-server.log")
        yield Server(url, proc)


def chat_model(url: str, **llm) -> OpenAIChatModel:
    # imported here: this module is a plugin of every test module (tests/conftest.py)
    from voiceagent.stages.openai_chat import OpenAIChatModel

    return OpenAIChatModel(Config(llm={"backend": "openai", "base_url": url, **llm}))
