"""``llm.backend: openai`` against a real OpenAI-compatible server: llama-cpp-python's
own ``llama_cpp.server`` serving the default GGUF on loopback, started by the test.

What a server cannot do (fill its cache ahead of time, give next-token odds) the
backend does not claim: the pauses are judged by the words and the voice alone.
A server that refuses a model (as Ollama does for an unknown name; llama_cpp.server
serves any name) is a stdlib HTTP server answering as Ollama would.
"""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from tests.support.cli import load_events, voiceagent
from tests.support.config import write_config
from tests.support.llm_server import STORY, chat_model
from tests.support.speech import ROOT, conversation_wav, real, require_models, word_error_rate
from voiceagent.bench.llama_server import free_port
from voiceagent.config import Config
from voiceagent.errors import ConfigError, ModelLoadError, StageError

QUESTION = [{"role": "system", "content": "You are a helpful voice assistant. Give short, direct answers."},
            {"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.realmodel
def test_the_reply_streams_and_a_cut_reply_stops_the_stream(server):
    model = chat_model(server.url, max_tokens=200)
    model.warm_up("You are a helpful voice assistant.")
    assert model.model == str(ROOT / Config().llm.model)  # not set: the first model the server lists
    assert "Paris" in "".join(model.stream_chat(QUESTION))
    # A turn cut mid-reply closes the iterator: the stream ends there, and the
    # server is free for the next turn at once.
    stream = model.stream_chat(STORY)
    pieces = [next(stream) for _ in range(3)]
    stream.close()
    start = time.monotonic()
    assert "".join(model.stream_chat(QUESTION)) and pieces
    assert time.monotonic() - start < 5


@pytest.mark.realmodel
def test_a_server_killed_mid_reply_is_an_llm_error_and_then_it_is_down(server):
    model = chat_model(server.url, max_tokens=200)
    model.warm_up("You are a helpful voice assistant.")
    with pytest.raises(StageError, match="closed the connection mid-reply") as err:
        for i, _ in enumerate(model.stream_chat(STORY)):
            if i == 2:
                server.kill()
    assert err.value.stage == "llm"
    with pytest.raises(StageError, match=r"cannot reach the LLM server at .* \(is it running\?\)"):
        list(model.stream_chat(QUESTION))


def test_a_server_that_is_not_there_fails_at_start_up():
    model = chat_model(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ModelLoadError, match="cannot reach the LLM server"):
        model.warm_up("hi")


def test_backend_openai_needs_a_base_url():
    from voiceagent.config import config_from_dict

    with pytest.raises(ConfigError, match=r"'llm': .*needs llm.base_url"):
        config_from_dict({"llm": {"backend": "openai"}}, ROOT)


class _Ollama(http.server.BaseHTTPRequestHandler):
    """Serves one model, "llama3.2", and refuses others in Ollama's words."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.headers.get("Authorization") == "Bearer sekrit"
        if body["model"] != "llama3.2":
            self._send(404, {"error": {"message": f"model \"{body['model']}\" not found, try pulling it first",
                                       "type": "api_error"}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in ("Hello", " there", "."):
            chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, status: int, data: dict) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def ollama():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ollama)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_an_unknown_model_is_refused_in_the_servers_own_words(ollama, tmp_path):
    key = tmp_path / "key"
    key.write_text("sekrit\n")
    model = chat_model(ollama, model="mistral", api_key_file=str(key))
    with pytest.raises(ModelLoadError, match=r"answered 404 for model 'mistral': model \"mistral\" not found"):
        model.warm_up("hi")
    model = chat_model(ollama, model="llama3.2", api_key="sekrit")
    model.warm_up("hi")
    assert "".join(model.stream_chat(QUESTION)) == "Hello there."


@pytest.mark.realmodel
def test_run_answers_through_the_server_without_the_llms_own_judgement(server, tmp_path):
    question = real("req_go_somewhere")
    wav, out, ev = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "ev.jsonl"
    conversation_wav(wav, [0.5, question, 4.0], rate=16000, channels=1)
    config = write_config(tmp_path, llm={"backend": "openai", "base_url": server.url})
    proc = voiceagent("run", "-c", str(config), "-i", str(wav), "-o", str(out), "-e", str(ev))
    assert proc.returncode == 0, proc.stderr.decode()
    events = load_events(ev)
    end = next(e for e in events if e["type"] == "turn_end")
    assert end["reason"] == "answered" and end["reply"].strip(), events
    assert word_error_rate(question.text, end["text"]) <= 0.25, end
    assert any(e["type"] == "llm_first_token" for e in events)
    # no end-of-message odds from a server: the words and the voice judged the pauses
    assert all(e["words_probability"] is None for e in events if e["type"] == "turn_end_judged")


@pytest.mark.realmodel
def test_run_with_the_server_down_is_one_line(tmp_path):
    require_models()
    wav = tmp_path / "in.wav"
    conversation_wav(wav, [0.5, real("req_go_somewhere"), 1.0], rate=16000, channels=1)
    config = write_config(tmp_path, llm={"backend": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"})
    proc = voiceagent("run", "-c", str(config), "-i", str(wav), "-o", str(tmp_path / "out.wav"))
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1 and "cannot reach the LLM server" in err[0], err
