from pathlib import Path

import pytest

from tests.support.cli import voiceagent
from voiceagent.config import Config, config_from_dict, load_config
from voiceagent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_shipped_config_matches_defaults():
    cfg = load_config(ROOT / "config.yaml")
    defaults = Config(base_dir=ROOT)
    assert cfg.model_dump() == defaults.model_dump()


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'vad.trailing_silence': unknown key"):
        load_config(write(tmp_path, "vad:\n  trailing_silence: 300\n"))


def test_invalid_value_is_named_with_reason(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "vad:\n  aggressiveness: 7\n"))
    assert "'vad.aggressiveness'" in str(err.value) and "7" in str(err.value)


def test_relative_model_paths_resolve_against_the_config_dir(tmp_path):
    cfg = load_config(write(tmp_path, "asr:\n  model: m/whisper\n"))
    assert cfg.resolve(cfg.asr.model) == (tmp_path / "m/whisper").resolve()


def test_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "vad: [\n"))


@pytest.mark.parametrize("depth", [65, 2000, 5000])
def test_nesting_past_any_config_is_refused_before_it_is_built(tmp_path, depth):
    # PyYAML composes recursively: 2,000 levels once ran into the recursion limit,
    # in over 2 s on a loaded box; refused at level 64 it never recurses that far.
    for text in ("[" * depth + "]" * depth, "".join(" " * i + "a:\n" for i in range(depth))):
        with pytest.raises(ConfigError, match=r"nested more than 64 levels deep, too much to be a config$"):
            load_config(write(tmp_path, text))


def test_aliases_that_expand_to_millions_of_values_are_refused(tmp_path):
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    with pytest.raises(ConfigError, match=r"expands to more than 100,000 values \(aliases\)"):
        load_config(write(tmp_path, bomb))


def test_an_anchor_used_a_few_times_still_loads(tmp_path):
    text = "audio:\n  input_device: &card USB Audio\n  output_device: *card\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.audio.input_device == cfg.audio.output_device == "USB Audio"


def test_cli_exits_2_with_one_line_naming_the_key(tmp_path):
    cfg = write(tmp_path, "llm:\n  temprature: 0.5\n")
    proc = voiceagent("run", "-c", str(cfg), "-i", "x.wav", "-o", "y.wav", text=True, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "llm.temprature" in lines[0] and "unknown key" in lines[0]


def test_a_secret_file_others_can_read_is_warned_about_once(tmp_path: Path, caplog) -> None:
    import logging

    from voiceagent.config import config_from_dict

    loose, tight, group = tmp_path / "loose-token", tmp_path / "tight-token", tmp_path / "group-token"
    for path, mode in ((loose, 0o644), (tight, 0o600), (group, 0o640)):
        path.write_text("secret-value\n")
        path.chmod(mode)
    cfg = config_from_dict({}, tmp_path)
    with caplog.at_level(logging.WARNING, logger="voiceagent.config"):
        assert cfg.secret(None, loose, "homeassistant.token") == "secret-value"
        assert cfg.secret(None, loose, "homeassistant.token") == "secret-value"
        assert cfg.secret(None, tight, "mqtt.password") == "secret-value"
        assert cfg.secret(None, group, "mqtt.password") == "secret-value"  # the systemd recipe
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "loose-token" in warned[0] and "644" in warned[0] and "chmod 600" in warned[0]
    assert "secret-value" not in warned[0]


def test_a_config_written_elsewhere_finds_the_project_models(tmp_path):
    from voiceagent.config.model import PROJECT_DIR

    cfg = config_from_dict({}, tmp_path)
    default = cfg.asr.model
    assert not (tmp_path / default).exists()
    found = cfg.resolve_model(default)
    if (PROJECT_DIR / default).exists():  # make pulled them
        assert found == (PROJECT_DIR / default).resolve()
    else:
        assert found == (tmp_path / default).resolve()  # the error will name where it looked first
    (tmp_path / default).mkdir(parents=True)
    assert cfg.resolve_model(default) == (tmp_path / default).resolve()  # beside the config wins
    assert cfg.resolve_model(tmp_path / "none") == tmp_path / "none"  # absolute: as given
