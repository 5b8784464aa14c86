"""Fuzzed configs: the shipped config.yaml with wrong types at every key, broken
YAML text, and bytes that are no text at all.

Each case is written to a file and loaded as the CLI loads it (``load_config``):
it must give a ``Config`` whose derived settings can all be built, or raise
``ConfigError`` with one line that starts with the file's name and, where one
key was made wrong, names that key. The cases are reproducible (``derandomize``).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fuzz import assert_one_line, case_reporter, fuzz_settings
from voiceagent.config import Config, load_config
from voiceagent.errors import ConfigError
from voiceagent.mqtt.discovery import Topics, discovery_messages

ROOT = Path(__file__).resolve().parents[1]
SHIPPED: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text())
SLOW_S = 2.0

FUZZ = fuzz_settings(400)
CASES: Counter[str] = Counter()
_report_cases = case_reporter(CASES)


def key_paths(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the config, sections and the values in them."""
    paths = []
    for key, value in tree.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths.extend(key_paths(value, (*prefix, key)))
    return paths


KEYS = key_paths(SHIPPED)

wrong_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "auto", "none", "yes", "1e400", "-0", "0x10", "a" * 5000, "x\ny"]),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers() | st.none(), max_size=3),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, -(10**9), 2**31, 2**63, 2**64, 10**100]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
)


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(tree.get(key), dict):
            tree[key] = {}
        tree = tree[key]
    tree[path[-1]] = value


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[str, tuple[str, ...] | None]:
    """(YAML text, the key made wrong when it was only one)."""
    tree = json.loads(json.dumps(SHIPPED))  # a deep copy
    count = draw(st.integers(1, 3))
    changed = []
    for _ in range(count):
        path = draw(st.sampled_from(KEYS))
        what = draw(st.sampled_from(["value", "value", "value", "typo", "delete"]))
        if what == "value":
            _set(tree, path, draw(wrong_values))
        elif what == "typo":
            _set(tree, (*path[:-1], path[-1] + draw(st.sampled_from(["s", "_x", "E"]))), 1)
        else:
            parent = tree
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent.get(key), dict) else {}
            parent.pop(path[-1], None)
        changed.append((path, what))
    only = changed[0][0] if count == 1 and changed[0][1] != "delete" else None
    return yaml.safe_dump(tree, allow_unicode=True), only


BREAKERS = [":", "[", "{", "]", "*nope", "&a", "!!python/object/apply:os.system ['true']",
            "\t", "'unclosed", "\"bad \\q\"", "%YAML 9.9", "---\n---", "? [a]: 1", "@", "`",
            "- a\nb: c", "a: b: c", "!!binary zz", "!!float abc", "&a [*a]", "...",
            "\x00", "\ufeff", "\u2028"]


@st.composite
def broken_texts(draw: st.DrawFn) -> bytes:
    """The shipped file with a line or a value replaced by something YAML chokes on."""
    lines = (ROOT / "config.yaml").read_text().splitlines()
    at = draw(st.integers(0, len(lines) - 1))
    junk = draw(st.sampled_from(BREAKERS) | st.text(max_size=20))
    how = draw(st.sampled_from(["replace line", "after colon", "insert"]))
    if how == "replace line":
        lines[at] = junk
    elif how == "after colon" and ":" in lines[at]:
        lines[at] = lines[at].split(":", 1)[0] + ": " + junk
    else:
        lines.insert(at, junk)
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # a stray byte that is not UTF-8
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80"])) + data[pos:]
    return data


raw_files = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"- a\n- b\n", b"42", b"null", b"~", b"'text'", b"[" * 2000 + b"]" * 2000,
                     b"a:\n" + b"".join(b" " * (i + 1) + b"a:\n" for i in range(1500)),
                     b"audio: !!set {a, b}", b"audio: 2001-01-01", b"? !!binary aGk=\n: 1"]),
)


def check_config(path: Path, wrong_key: tuple[str, ...] | None = None) -> str:
    start = time.monotonic()
    try:
        cfg = load_config(path)
    except ConfigError as err:
        line = assert_one_line(err)
        assert line.startswith(str(path)) or str(path) in line, line
        if wrong_key is not None and "invalid config key" in line:
            named = line.split("invalid config key '", 1)[1].split("'", 1)[0]
            dotted = ".".join(wrong_key)
            assert named.startswith(dotted) or dotted.startswith(named), (dotted, line)
        outcome = "refused"
    else:
        check_derived(cfg)
        outcome = "loaded"
    assert time.monotonic() - start < SLOW_S, f"loading took {time.monotonic() - start:.1f} s"
    return outcome


def check_derived(cfg: Config) -> None:
    """What the commands build from a config at start-up: none of it may raise."""
    cfg.endpointer_settings()
    cfg.turn.end_settings()
    cfg.turn.continuation_settings(cfg.barge_in)
    cfg.barge_in.settings()
    cfg.wake.gate_settings()
    cfg.tts.splitter()
    Topics.from_config(cfg.mqtt)
    json.dumps(discovery_messages(cfg.mqtt, "x", cfg.homeassistant.area))
    cfg.resolve(cfg.asr.model)
    if cfg.serve.conversation_log is not None:
        cfg.resolve(cfg.serve.conversation_log)


@FUZZ
@given(case=mutated_configs())
def test_wrong_types_at_every_key_load_or_fail_in_one_line(tmp_path: Path, case) -> None:
    text, wrong_key = case
    path = tmp_path / "config.yaml"
    path.write_text(text)
    CASES[f"mutated {check_config(path, wrong_key)}"] += 1


@settings(FUZZ, max_examples=150)
@given(data=broken_texts())
def test_broken_yaml_text_fails_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    CASES[f"broken text {check_config(path)}"] += 1


@settings(FUZZ, max_examples=100)
@given(data=raw_files)
def test_files_that_are_no_config_fail_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    CASES[f"raw {check_config(path)}"] += 1


def test_every_key_is_covered() -> None:
    """The mutations reach every key there is (the list comes from the shipped file)."""
    sections = {path[0] for path in KEYS}
    assert sections == set(Config.model_fields) - {"base_dir"}, sections
    assert len(KEYS) > 100
