"""Reading a config file: bounded YAML, validation, and errors of one line that
name the key."""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from voiceagent import yaml_bounded
from voiceagent.config.model import Config
from voiceagent.config.rooms import merge_satellite_overrides
from voiceagent.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_NAME = "config.yaml"

MAX_SHOWN_CHARS = 60
"""How much of a rejected value an error message shows (a pasted essay stays out)."""
MAX_INT = 2**63 - 1
"""Integers beyond this cannot reach the models (C libraries take 64 bits at most)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _key_path(loc: tuple[int | str, ...]) -> str:
    """The config key of an error location: the fields and list indexes only.

    pydantic adds the member of a union it tried (``audio.input_device.str``),
    which is no key the user could look for."""
    parts: list[str] = []
    model: Any = Config
    for part in loc:
        if isinstance(part, int):  # an item of a list (turn.stop_phrases.3)
            parts.append(str(part))
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            break  # below a value: the name of a union member
        parts.append(part)  # a field, or an unknown key as it was written
        info = fields.get(part)
        model = _section_of(info.annotation) if info is not None else None
    return ".".join(parts) or "(top level)"


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds, also inside ``X | None`` and ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_of(arg)
        if found is not None:
            return found
    return None


def _format_validation_error(err: ValidationError, source: str) -> str:
    errors = err.errors()
    keys = [_key_path(e["loc"]) for e in errors]
    key = keys[0]
    same = [e for e, k in zip(errors, keys) if k == key]  # a union: what each member wanted
    first = same[0]
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    else:
        reason = "; or ".join(dict.fromkeys(e["msg"] for e in same))
        if "input" in first and not isinstance(first["input"], (dict, list)):
            reason += f" (got {_shown(first['input'])})"
    others = len(set(keys)) - 1
    more = f" (+{others} more)" if others else ""
    return _one_line(f"{source}: invalid config key '{key}': {reason}{more}")


def _check_int_sizes(value: Any, key: str, source: str) -> None:
    """Raise ConfigError for an integer that no model library could take.

    pydantic accepts any integer where a field has no upper bound (``llm.top_k``),
    and 10**100 would then fail inside llama.cpp with a traceback."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _check_int_sizes(getattr(value, name), f"{key}.{name}" if key else name, source)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_int_sizes(item, f"{key}.{i}", source)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ConfigError(
            f"{source}: invalid config key '{key}': {_shown(value)} is too large a number"
        )


def config_from_dict(data: dict[str, Any], base_dir: Path, source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        cfg = Config.model_validate({**merge_satellite_overrides(data), "base_dir": base_dir})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
    _check_int_sizes(cfg, "", source)
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a config file.

    With no path, ``./config.yaml`` is used if it exists, else the built-in
    defaults with paths relative to the current directory.
    """
    if path is None:
        default = Path.cwd() / DEFAULT_CONFIG_NAME
        if not default.exists():
            logger.info("no %s here; using built-in defaults", DEFAULT_CONFIG_NAME)
            return config_from_dict({}, Path.cwd())
        path = default
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start} is {err.object[err.start]:#04x})") from None
    try:
        data = yaml_bounded.load(text) or {}
    except yaml_bounded.TooLarge as err:
        raise ConfigError(f"{path}: {err}, too much to be a config") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None)
        why = f": {_one_line(problem)}" if problem else ""
        raise ConfigError(f"{path}:{where} is not valid YAML{why}") from None
    return config_from_dict(data, path.resolve().parent, source=str(path))
