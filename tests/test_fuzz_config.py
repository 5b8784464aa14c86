"""Fuzzed configs: the shipped config.yaml with wrong types at every key, broken
YAML text, and bytes that are no text at all.

Each case is written to a file and loaded as the CLI loads it (``load_config``):
it must give a ``Config`` whose derived settings can all be built, or raise
``ConfigError`` with one line that starts with the file's name and, where one
key was made wrong, names that key. The cases are reproducible (``derandomize``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fuzz import assert_one_line, case_reporter, fuzz_settings
from tests.support.strategies import KEYS, broken_texts, mutated_configs
from voiceagent.config import Config, load_config
from voiceagent.errors import ConfigError
from voiceagent.mqtt.discovery import Topics, discovery_messages

SLOW_S = 2.0

FUZZ = fuzz_settings(400)
CASES: Counter[str] = Counter()
_report_cases = case_reporter(CASES)


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
