"""The conversation log on a disk that fills up: a real tiny tmpfs, filled to the
last byte. One log line, the voice goes on (nothing raises), nothing is torn, and
the turns written while it was full go out, in order, once there is room again."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from voiceagent.session import log as log_module
from voiceagent.session.log import ConversationLog


@contextlib.contextmanager
def tiny_tmpfs(tmp_path: Path, size: str = "64k") -> Iterator[Path]:
    where = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system to the last byte; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        block = b"x" * 4096
        while True:
            try:
                f.write(block)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                break
        for size in (512, 64, 1):  # the last scraps too
            while True:
                try:
                    f.write(b"x" * size)
                except OSError:
                    break
    return filler


def record(turn: int) -> dict[str, object]:
    return {"turn": turn, "transcript": f"question {turn} " * 20, "reply": f"answer {turn} " * 30}


def test_a_full_disk_is_logged_once_nothing_is_torn_and_the_log_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tiny_tmpfs(tmp_path) as disk:
        path = disk / "conversation.jsonl"
        log = ConversationLog(path)
        log.write(record(1))
        filler = fill(disk)
        with caplog.at_level(logging.WARNING, logger=log_module.__name__):
            for turn in range(2, 12):
                log.write(record(turn))  # never raises: the voice goes on
            # The file's last page still had room for a few lines; then it is full.
            written = [json.loads(x)["turn"] for x in path.read_text().splitlines()]  # whole lines only
            assert written == list(range(1, len(written) + 1))
            assert log.pending >= 2 and len(written) + log.pending == 11
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1, "logged once, not once a turn"
            assert "No space left on device" in errors[0].getMessage()
            waiting = log.pending
            filler.unlink()  # space returns
            log.write(record(12))
            assert log.pending == 0
            assert any(f"written again ({waiting + 1} turns caught up)" in r.getMessage() for r in caplog.records)
        log.close()
        turns = [json.loads(x)["turn"] for x in path.read_text().splitlines()]
        assert turns == list(range(1, 13))
        assert os.stat(path).st_mode & 0o077 == 0, "what was said in the house is the owner's"


def test_beyond_its_bound_the_oldest_waiting_turns_are_dropped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(log_module, "MAX_PENDING", 5)
    path = tmp_path / "log.jsonl"
    log = ConversationLog(path)
    real_write = os.write
    full = True

    def write(fd: int, data: bytes) -> int:
        if full and fd == log._fd:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with caplog.at_level(logging.WARNING, logger=log_module.__name__):
        for turn in range(1, 9):
            log.write(record(turn))
        assert log.pending == 5
        full = False
        log.write(record(9))
    log.close()
    assert [json.loads(x)["turn"] for x in path.read_text().splitlines()] == [5, 6, 7, 8, 9]
    assert any("4 older ones lost" in r.getMessage() for r in caplog.records)
