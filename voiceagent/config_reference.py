"""The configuration reference (``docs/configuration.md``), generated from the schema.

``render()`` walks ``voiceagent.config.Config``: every field of every section,
its key path (``llm.max_tokens``, ``audio.pcm.format``, ``satellites[].name``
for the fields of a list of sections), its type, its default and its
description (``Field(description=...)``), under the section's docstring. The
schema is the one source: ``tests/test_docs.py`` fails when the page differs
from what this renders. Regenerate it with::

    python -m voiceagent.config_reference > docs/configuration.md

``NOTES`` and ``SECTION_NOTES`` say what the schema does not yet (a field with
no description, a section with no docstring), and ``ADDENDA`` what a validator
checks that the schema cannot show; the test also fails when one of them names
a key that no longer exists, or a note a key that has since got its own words,
so they can only shrink as the descriptions move into ``voiceagent/config/``.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from voiceagent.config import Config

REGENERATE = "python -m voiceagent.config_reference > docs/configuration.md"

NOTES: dict[str, str] = {
    "audio.output_device": "name (substring) or index; null: the default device",
    "audio.pcm.channels": "channels of raw PCM on stdin/stdout",
    "audio.pcm.format": "sample format: 16-bit signed or 32-bit float, little-endian",
    "asr.model": "a CTranslate2 Whisper directory (e.g. models/whisper-base after "
    "`voiceagent models pull whisper-base`)",
    "asr.device": "auto: CUDA where faster-whisper supports it on this machine, else the CPU",
    "asr.compute_type": "CTranslate2 compute type; default: int8 on CPU, float16 on CUDA",
    "asr.threads": "CPU threads",
    "asr.beam_size": "Whisper's beam size (1: greedy)",
    "asr.language": "the language spoken (a multilingual model detects it when null)",
    "llm.system_prompt": "the system prompt of every reply",
    "llm.context_tokens": "the LLM's context window, in tokens",
    "llm.max_history_turns": "earlier exchanges (as heard) kept in the prompt",
    "llm.max_tokens": "the longest reply, in tokens",
    "llm.temperature": "sampling temperature",
    "llm.top_p": "nucleus sampling",
    "llm.top_k": "top-k sampling (0: off)",
    "llm.repeat_penalty": "penalty on repeated tokens",
    "tts.model": "a piper `.onnx` voice, with its `.onnx.json` beside it",
    "tts.device": "auto: CUDA where onnxruntime supports it on this machine, else the CPU",
    "tts.threads": "CPU threads",
    "tts.clause_min_words": "in the first sentence, a comma ends a later clause once it has "
    "this many words (after it, whole sentences only)",
    "turn.model": "the Smart Turn v3.2 ONNX file (turn.end_model: smart-turn)",
    "turn.device": "auto: CUDA where onnxruntime supports it on this machine, else the CPU",
    "turn.threads": "CPU threads",
    "mqtt.host": "the broker's host name or address",
    "mqtt.port": "the broker's port (usually 8883 with TLS)",
    "mqtt.username": "the broker user",
    "mqtt.password": "the broker password (or mqtt.password_file, not both)",
    "mqtt.discovery_prefix": "Home Assistant's MQTT discovery prefix: discovery configs are "
    "retained under it",
    "mqtt.device_name": "the device's name in Home Assistant (node_id defaults to its slug)",
    "mqtt.keepalive_s": "MQTT keepalive, in seconds",
    "homeassistant.connect_timeout_s": "the longest wait to connect to Home Assistant, in seconds",
    "log_level": "logging to stderr (-v/-vv before the command lowers it to info/debug)",
}
"""Descriptions of fields whose ``Field`` has none yet, by key path."""

ADDENDA: dict[str, str] = {
    "audio.sample_rate": "8000, 16000, 32000 or 48000 (webrtcvad's rates)",
    "vad.frame_ms": "also the audio block size",
    "echo.delay_ms": "0 to 1000 or auto",
}
"""What a field's validator checks, or its description leaves out, added to its description."""

SECTION_NOTES: dict[str, str] = {
    "audio": "The sound devices, the rate the pipeline runs at, and raw PCM on stdin/stdout.",
    "vad": "Speech detection (Silero v6, or webrtcvad) and the end of the user's speech.",
    "asr": "Speech recognition (faster-whisper).",
    "llm": "The reply: a GGUF in process (llama.cpp) or an OpenAI-compatible server.",
    "tts": "Speech synthesis (piper), clause by clause.",
    "mqtt.tls": "TLS to the MQTT broker.",
}
"""Introductions of sections whose class has no docstring yet, by key path."""

_HEADER = f"""\
# Configuration reference

<!-- Generated from voiceagent/config/ by `{REGENERATE}`. Do not edit: tests/test_docs.py fails when it drifts. -->

*Generated from the schema in `voiceagent/config/`; regenerate with
`{REGENERATE}`.*

All keys are optional (except where a default says *required*), and the file
is validated when it is loaded:

- An unknown key or an invalid value is an error that names the key (exit 2).
- Relative paths are relative to the config file's directory, so `voiceagent`
  can be started from anywhere.

The shipped [config.yaml](../config.yaml) lists the settings with their
defaults. Bigger models, an LLM on a server and GPUs: [models.md](models.md).
"""


@dataclass
class _Table:
    key: str
    """Key path of the section ("" for the top level, ``satellites[]`` for list items)."""
    intro: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(key, type, default, description), as the table's columns."""
    children: list["_Table"] = field(default_factory=list)


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool, bool]:
    """(the section model a field holds, whether it is a list of them, whether null is allowed)."""
    if _is_model(annotation):
        return annotation, False, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and args and _is_model(args[0]):
        return args[0], True, False
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            model, many, _ = _model_of(rest[0])
            if model is not None:
                return model, many, len(rest) < len(args)
    return None, False, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def _type_name(annotation: Any) -> str:
    """A type as the YAML file spells its values: "integer or `auto`"."""
    alternatives = _alternatives(annotation)
    if len(alternatives) == 1:
        return alternatives[0]
    if typing.get_origin(annotation) is Literal and len(alternatives) > 2:
        return "one of " + ", ".join(alternatives)
    return ", ".join(alternatives[:-1]) + " or " + alternatives[-1]


def _alternatives(annotation: Any) -> list[str]:
    """What a value may be, one name each: the members of a union, the values of a Literal."""
    if annotation in _NAMES:
        return [_NAMES[annotation]]
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return ["path"]
    if _is_model(annotation):
        return ["section"]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return [_code(_yaml(a)) for a in args]
    if origin in (Union, types.UnionType):
        names = [name for arg in args for name in _alternatives(arg)]
        names.sort(key=lambda n: n == "null")  # "..., or null"
        return list(dict.fromkeys(names))
    if origin in (list, tuple, set, frozenset):
        inner = _alternatives(args[0]) if args else ["value"]
        return ["list of " + (_plural(inner[0]) if len(inner) == 1 else _type_name(args[0]))]
    if origin is dict:
        key, value = (_type_name(a) for a in args) if args else ("string", "value")
        return [f"mapping of {key} to {value}"]
    if annotation is Any:
        return ["any"]
    return [getattr(annotation, "__name__", str(annotation))]


def _plural(name: str) -> str:
    if name.startswith(("list", "mapping", "`")):
        return name
    return name if name.endswith("s") else f"{name}es" if name.endswith("x") else f"{name}s"


def _constraints(info: FieldInfo) -> str:
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                bounds[name] = value
    parts = []
    if "ge" in bounds and "le" in bounds:
        parts.append(f"{bounds['ge']!r} to {bounds['le']!r}")
    else:
        words = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}
        parts.extend(f"{word} {bounds[key]!r}" for key, word in words.items() if key in bounds)
    unit = "items" if typing.get_origin(info.annotation) in (list, tuple, set, frozenset) else "characters"
    if bounds.get("min_length") == 1:
        parts.append("not empty")
    elif "min_length" in bounds:
        parts.append(f"at least {bounds['min_length']} {unit}")
    if "max_length" in bounds:
        parts.append(f"at most {bounds['max_length']} {unit}")
    if "pattern" in bounds:
        parts.append(f"matching {_code(bounds['pattern'])}")
    return ", ".join(parts)


def _yaml(value: Any) -> str:
    """A value as it would be written in the YAML file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, BaseModel):
        return "{}" if not value.model_fields_set else json.dumps(value.model_dump(mode="json"))
    if isinstance(value, str):
        plain = (
            re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_ ./:-]*", value)
            and value.strip() == value
            and ": " not in value
            and not value.endswith(":")
        )
        reserved = value.lower() in ("null", "true", "false", "yes", "no", "on", "off", "~") or re.fullmatch(
            r"[-+]?(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?|\.(inf|nan)", value, re.IGNORECASE
        )
        return value if plain and not reserved else json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml(k)}: {_yaml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "*required*"
    return _code(_yaml(info.get_default(call_default_factory=True)))


def _prose(text: str | None) -> str:
    """A docstring or description as Markdown: reStructuredText's ``code`` becomes
    `code`, and a ``<`` outside code is no HTML tag (``voiceagent-<node_id>``)."""
    if not text:
        return ""
    text = re.sub(r"``(.+?)``", r"`\1`", inspect.cleandoc(text))
    pieces = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;") for p in pieces)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    fields = model.model_fields.items()
    return [(info.alias or name, info) for name, info in fields if info.exclude is not True]


def _table(model: type[BaseModel], key: str, description: str = "", shape: str = "") -> _Table:
    """The rows of one section, and a table of its own for each section within it.

    Its introduction: what shape of value it is when it is not a plain mapping,
    the field's description, and the class docstring (or else ``SECTION_NOTES``)."""
    doc = _prose(model.__doc__)
    if not doc and not description:
        doc = SECTION_NOTES.get(key, "")
    table = _Table(key, "\n\n".join(t for t in (shape, _prose(description), doc) if t))
    for name, info in _fields(model):
        path = _join(key, name)
        text = "; ".join(t for t in (info.description or NOTES.get(path), ADDENDA.get(path)) if t)
        section, many, nullable = _model_of(info.annotation)
        if section is None:
            limits = _constraints(info)
            kind = _type_name(info.annotation) + (f", {limits}" if limits else "")
            table.rows.append((_code(path), kind, _default(info), _prose(text)))
            continue
        child_key = f"{path}[]" if many else path
        default = _default(info)
        if many:
            null = ", or `null`" if nullable else ""
            shape = f"`{path}` is a list of mappings with the keys below{null}; default {default}."
        else:
            shape = f"`{path}` may be `null`; default {default}." if nullable else ""
        table.children.append(_table(section, child_key, text, shape))
        if key:  # a section within a section: a row in its place, pointing at its table
            kind = ("list of sections" if many else "section") + (" or null" if nullable else "")
            see = f"see [{child_key}](#{_anchor(child_key)})"
            table.rows.append((_code(path), kind, default, see))
    return table


def _anchor(key: str) -> str:
    """GitHub's anchor for a heading made of ``key``."""
    return re.sub(r"[^\w\- ]", "", key.lower()).replace(" ", "-")


def _render_table(table: _Table, level: int, out: list[str]) -> None:
    out += [f"{'#' * level} {table.key or 'Top level'}", ""]
    if table.intro:
        out += [table.intro, ""]
    if table.rows:
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
        out.append("")
    for child in table.children:
        _render_table(child, min(level + 1, 6), out)


def _tables() -> list[_Table]:
    """The top level's own keys first, then one table per section, in schema order."""
    top = _table(Config, "")
    sections = top.children
    top.children = []
    return ([top] if top.rows else []) + sections


def _contents(tables: list[_Table], depth: int = 0) -> list[str]:
    """The list of sections, nested as they are."""
    lines = []
    for table in tables:
        title = table.key or "Top level"
        lines.append(f"{'  ' * depth}- [{title}](#{_anchor(title)})")
        lines += _contents(table.children, depth + 1)
    return lines


def render() -> str:
    """The whole of ``docs/configuration.md``."""
    tables = _tables()
    out = [_HEADER, "## Sections", "", *_contents(tables), ""]
    for table in tables:
        _render_table(table, 2, out)
    return "\n".join(out).rstrip("\n") + "\n"


def schema_keys() -> dict[str, bool]:
    """Every key path the reference shows, sections included: whether the schema describes it.

    For the test that ``NOTES`` and ``SECTION_NOTES`` only fill gaps."""
    keys: dict[str, bool] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in _fields(model):
            path = _join(prefix, name)
            section, many, _ = _model_of(info.annotation)
            if section is not None:
                child = f"{path}[]" if many else path
                keys[child] = bool(section.__doc__ or info.description)
                walk(section, child)
            else:
                keys[path] = bool(info.description)

    walk(Config, "")
    return keys


if __name__ == "__main__":
    print(render(), end="")
