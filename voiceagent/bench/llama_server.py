"""llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) as a
local peer: the configured GGUF on a free loopback port, waited for until it
answers, stopped on every exit path. Used by the pipecat peer (from its own venv),
``benchmarks/llm_backends.py`` and the tests of ``llm.backend: openai``; and the
subprocess helpers behind it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from voiceagent.config import Config
from voiceagent.errors import VoiceAgentError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def stop_process(proc: subprocess.Popen, name: str) -> None:
    """Stop a subprocess and everything it started (it leads its own session)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop on SIGTERM; killing it", name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def start_process(
    stack: ExitStack, cmd: list[str], log_path: Path, name: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``cmd`` with its output in ``log_path`` (a file, not a pipe: a chatty
    server would fill a pipe and block); ``stack`` stops it."""
    log = stack.enter_context(open(log_path, "wb"))
    logger.info("starting %s: %s", name, " ".join(cmd))
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        env=env, start_new_session=True,
    )
    stack.callback(stop_process, proc, name)
    return proc


def http_json(url: str, body: dict | None = None, timeout: float = 5.0) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def start_llama_server(
    stack: ExitStack, cfg: Config, log_path: Path, python: str = sys.executable, gpu_layers: int = 0
) -> tuple[subprocess.Popen, str]:
    """``cfg.llm.model`` served with the configured threads and context until
    ``stack`` closes; returns the process and its base URL (``.../v1``)."""
    llm = cfg.llm
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [
        python, "-m", "llama_cpp.server",
        "--model", str(cfg.resolve(llm.model)),
        "--n_threads", str(llm.threads),
        "--n_threads_batch", str(llm.threads),
        "--n_ctx", str(llm.context_tokens),
        "--n_gpu_layers", str(gpu_layers),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--verbose", "False",
    ]  # fmt: skip
    proc = start_process(stack, cmd, log_path, "llama.cpp server")
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise VoiceAgentError(
                f"the llama.cpp server exited with status {proc.returncode}:\n{tail(log_path)}",
                f"see {log_path}",
            )
        try:
            http_json(f"{url}/models", timeout=1.0)
            return proc, url
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise VoiceAgentError(
                f"the llama.cpp server did not answer within {START_TIMEOUT_S:.0f} s", f"see {log_path}"
            )
        time.sleep(0.2)
