"""The ``voiceagent`` command run as a user runs it: in a child process, from the
repository root, with this interpreter. One harness for every test that runs it.

- :func:`voiceagent` runs it to the end (``subprocess.run``; output captured as
  bytes, 240 s at most unless the caller says otherwise);
- :func:`start` starts it and returns the ``Popen`` (for a daemon, or a test
  that signals it or reads its stderr as it goes);
- :func:`load_events` reads the event log it wrote; :func:`one_line_error` checks
  that it failed with one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.speech import ROOT

TIMEOUT_S = 240


def command(*args: str) -> list[str]:
    """The command line: ``python -m voiceagent ARGS``."""
    return [sys.executable, "-m", "voiceagent", *args]


def voiceagent(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``voiceagent ARGS`` to the end; ``kwargs`` go to ``subprocess.run`` (they
    may replace the defaults: ``cwd`` the repository root, ``capture_output``,
    ``timeout``)."""
    options: dict[str, Any] = {"cwd": ROOT, "capture_output": True, "timeout": TIMEOUT_S, **kwargs}
    return subprocess.run(command(*args), **options)


def start(*args: str, **kwargs: Any) -> subprocess.Popen:
    """Start ``voiceagent ARGS``; ``kwargs`` go to ``subprocess.Popen`` (``cwd``
    defaults to the repository root)."""
    options: dict[str, Any] = {"cwd": ROOT, **kwargs}
    return subprocess.Popen(command(*args), **options)


def load_events(path: Path) -> list[dict]:
    """The event log (``-e``/``--events``), one JSON object a line."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The command failed (exit 1 or 2) with one line on stderr, not a traceback."""
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode in (1, 2) and len(err) == 1, (proc.returncode, err)
    assert err[0].startswith("voiceagent: error: ") and "Traceback" not in err[0], err
    return err[0]
