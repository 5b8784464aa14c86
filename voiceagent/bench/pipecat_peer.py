"""``voiceagent bench --peer pipecat``: pipecat on the same audio and models.

pipecat runs in its own venv, ``.venv-pipecat`` (``make pipecat-venv``), so that
its dependency pins cannot break the project venv; this module never imports it.
It starts two subprocesses from that venv:

* llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``)
  on a free loopback port with the configured GGUF, threads and context size;
* ``benchmarks/peers/pipecat_bot.py``: a pipecat pipeline with its faster-whisper STT service,
  its OpenAI LLM service pointed at that server, its in-process piper TTS
  service, Silero VAD and the smart-turn v3 end-of-turn model (pipecat 1.14's
  defaults), and a transport that plays ``corpus_wav`` as the microphone in
  real time and records what the bot plays, sample-aligned with the input.

Both are stopped on every exit path.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from voiceagent.bench.llama_server import http_json, start_llama_server, start_process, tail
from voiceagent.errors import ModelMissingError, VoiceAgentError

if TYPE_CHECKING:
    from voiceagent.config import Config

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPECAT_VENV = REPO_ROOT / ".venv-pipecat"
BOT_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "pipecat_bot.py"
"""Runs in .venv-pipecat, so it is not part of the package (it imports pipecat, not voiceagent)."""
SAMPLE_RATE = 16000
# Loading whisper, piper, Silero and smart-turn before the clock starts, plus
# shutting the pipeline down after the input ends.
BOT_OVERHEAD_S = 180.0
SETUP_HINT = "make pipecat-venv"


def _venv_python() -> Path:
    python = PIPECAT_VENV / "bin" / "python"
    if not python.exists():
        raise VoiceAgentError(
            f"pipecat peer: {PIPECAT_VENV} is missing (pipecat lives in its own venv)",
            SETUP_HINT,
        )
    if not (PIPECAT_VENV / ".installed").exists():
        raise VoiceAgentError(
            f"pipecat peer: {PIPECAT_VENV} is incomplete (its install did not finish)",
            SETUP_HINT,
        )
    return python


def _check_models(cfg: Config) -> tuple[Path, Path, Path]:
    asr = cfg.resolve(cfg.asr.model)
    llm = cfg.resolve(cfg.llm.model)
    tts = cfg.resolve(cfg.tts.model)
    for path, what in ((asr, "ASR"), (llm, "LLM"), (tts, "TTS")):
        if not path.exists():
            raise ModelMissingError(f"{what} model not found: {path}", "voiceagent models pull")
    if tts.suffix != ".onnx" or not tts.with_name(tts.name + ".json").exists():
        raise VoiceAgentError(
            f"pipecat peer: pipecat's piper service needs <voice>.onnx with <voice>.onnx.json "
            f"beside it; got {tts}"
        )
    return asr, llm, tts


def _check_corpus(corpus_wav: Path) -> tuple[int, float]:
    import soundfile as sf

    try:
        info = sf.info(str(corpus_wav))
    except Exception as err:  # soundfile raises RuntimeError/LibsndfileError
        raise VoiceAgentError(f"pipecat peer: cannot read {corpus_wav}: {err}") from None
    if info.samplerate != SAMPLE_RATE or info.channels != 1:
        raise VoiceAgentError(
            f"pipecat peer: {corpus_wav} is {info.samplerate} Hz x{info.channels}; "
            f"the peer needs {SAMPLE_RATE} Hz mono"
        )
    return info.frames, info.frames / SAMPLE_RATE


def _devices(cfg: Config) -> tuple[str, str, int, bool]:
    """ASR device and compute type, LLM GPU layers, piper on CUDA: resolved as voiceagent does."""
    from voiceagent.gpu import cuda_available
    from voiceagent.stages.whisper import resolve_device

    asr_device, compute_type = resolve_device(cfg.asr)
    gpu_layers = cfg.llm.gpu_layers
    if gpu_layers == "auto":
        gpu_layers = -1 if cuda_available("llama_cpp") else 0
    tts_device = cfg.tts.device
    if tts_device == "auto":
        tts_device = "cuda" if cuda_available("onnxruntime") else "cpu"
    return asr_device, compute_type, int(gpu_layers), tts_device == "cuda"


def run_peer(corpus_wav: Path, output_wav: Path, cfg: Config) -> None:
    """Run pipecat on corpus_wav in real time; write the aligned output WAV.

    Output sample k is what pipecat played while input sample k was being
    captured. Logs of both subprocesses and the bot's transcripts and replies
    (JSON lines) are written beside ``output_wav``.

    Raises VoiceAgentError(message, hint) when it cannot run (e.g. the
    .venv-pipecat venv is missing: hint 'make pipecat-venv').
    """
    corpus_wav = Path(corpus_wav).resolve()
    output_wav = Path(output_wav).resolve()
    python = _venv_python()
    asr_model, _llm_model, tts_model = _check_models(cfg)  # each there, or a clear error
    n_frames, duration_s = _check_corpus(corpus_wav)
    asr_device, compute_type, gpu_layers, tts_cuda = _devices(cfg)

    output_wav.parent.mkdir(parents=True, exist_ok=True)
    output_wav.unlink(missing_ok=True)
    stem = output_wav.with_suffix("")
    server_log = Path(f"{stem}.pipecat-llama.log")
    bot_log = Path(f"{stem}.pipecat-bot.log")
    events = Path(f"{stem}.pipecat-events.jsonl")

    llm = cfg.llm
    bot_cmd = [
        str(python), str(BOT_SCRIPT),
        "--input", str(corpus_wav),
        "--output", str(output_wav),
        "--events", str(events),
        "--asr-model", str(asr_model),
        "--asr-device", asr_device,
        "--asr-compute-type", compute_type,
        "--asr-beam-size", str(cfg.asr.beam_size),
        "--tts-model", str(tts_model),
        "--system-prompt", llm.system_prompt,
        "--max-tokens", str(llm.max_tokens),
        "--temperature", str(llm.temperature),
        "--top-p", str(llm.top_p),
        "--top-k", str(llm.top_k),
        "--repeat-penalty", str(llm.repeat_penalty),
        "--log-level", "DEBUG" if cfg.log_level == "debug" else "INFO",
    ]  # fmt: skip
    if tts_cuda:
        bot_cmd.append("--tts-cuda")
    # pipecat's whisper service leaves faster-whisper's cpu_threads at 0, which
    # takes the thread count from OMP_NUM_THREADS.
    bot_env = {**os.environ, "OMP_NUM_THREADS": str(cfg.asr.threads), "PYTHONUNBUFFERED": "1"}
    bot_env.pop("PYTHONPATH", None)

    with ExitStack() as stack:
        server, base_url = start_llama_server(stack, cfg, server_log, str(python), gpu_layers)
        bot_cmd += ["--llm-url", base_url]
        # Evaluate the system prompt once, so the first turn finds it in the KV
        # cache as voiceagent's own LLM does after loading.
        try:
            http_json(
                f"{base_url}/chat/completions",
                {
                    "model": "local",
                    "messages": [
                        {"role": "system", "content": llm.system_prompt},
                        {"role": "user", "content": "Hello."},
                    ],
                    "max_tokens": 1,
                },
                timeout=60.0,
            )
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise VoiceAgentError(
                f"pipecat peer: the llama.cpp server failed a warm-up request: {err}",
                f"see {server_log}",
            ) from None

        bot = start_process(stack, bot_cmd, bot_log, "pipecat bot", env=bot_env)
        timeout = duration_s + BOT_OVERHEAD_S
        try:
            rc = bot.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VoiceAgentError(
                f"pipecat peer: the bot did not finish {duration_s:.0f} s of audio in "
                f"{timeout:.0f} s:\n{tail(bot_log)}",
                f"see {bot_log}",
            ) from None
        if rc != 0:
            raise VoiceAgentError(
                f"pipecat peer: the bot exited with status {rc}:\n{tail(bot_log)}",
                f"see {bot_log}" if (PIPECAT_VENV / ".installed").exists() else SETUP_HINT,
            )
        if server.poll() is not None:
            raise VoiceAgentError(
                f"pipecat peer: the llama.cpp server died during the run "
                f"(status {server.returncode}):\n{tail(server_log)}",
                f"see {server_log}",
            )

    _check_output(output_wav, n_frames, bot_log)
    _report(events)


def _check_output(output_wav: Path, n_frames: int, bot_log: Path) -> None:
    import soundfile as sf

    if not output_wav.exists():
        raise VoiceAgentError(
            f"pipecat peer: the bot wrote no {output_wav}:\n{tail(bot_log)}", f"see {bot_log}"
        )
    info = sf.info(str(output_wav))
    if info.samplerate != SAMPLE_RATE or info.channels != 1 or info.frames != n_frames:
        raise VoiceAgentError(
            f"pipecat peer: {output_wav} is {info.frames} frames at {info.samplerate} Hz "
            f"x{info.channels}; expected {n_frames} frames at {SAMPLE_RATE} Hz mono"
        )


def _report(events: Path) -> None:
    """Log what the bot heard and said, and how well it kept real time."""
    try:
        lines = events.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        kind = record.get("event")
        if kind in ("transcript", "llm_end"):
            who = "heard" if kind == "transcript" else "replied"
            logger.info("pipecat %s at %.2f s: %s", who, record["t"], record.get("text", ""))
        elif kind == "done":
            logger.info(
                "pipecat kept real time: max clock lag %.0f ms, %d playback underruns",
                1000 * record.get("max_clock_lag_s", 0.0),
                record.get("underruns", 0),
            )
            if record.get("max_clock_lag_s", 0.0) > 0.2:
                logger.warning("pipecat peer: the bot's clock lagged by up to %.2f s (CPU overload?)",
                               record["max_clock_lag_s"])


if __name__ == "__main__":  # manual use: python -m voiceagent.bench.pipecat_peer IN.wav OUT.wav
    from voiceagent.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m voiceagent.bench.pipecat_peer IN.wav OUT.wav [CONFIG]")
    try:
        run_peer(Path(sys.argv[1]), Path(sys.argv[2]), load_config(sys.argv[3] if len(sys.argv) == 4 else None))
    except VoiceAgentError as err:
        sys.exit(str(err))
