"""A config file for a test: the repository's, with absolute model paths, changed
where the test says (each keyword is a section's values)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.speech import ROOT


def write_config(tmp_path: Path, name: str = "config.yaml", **sections: object) -> Path:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section in ("asr", "llm", "tts", "turn"):
        cfg[section]["model"] = str(ROOT / cfg[section]["model"])
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values  # a top-level key (log_level)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path
