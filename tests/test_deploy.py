"""The systemd unit in deploy/ is one systemd accepts, and starts `serve`."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys

import pytest

from tests.support.speech import ROOT

UNIT = ROOT / "deploy" / "voiceagent.service"


def test_the_unit_runs_serve_and_stops_it_with_sigterm():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(UNIT)
    exec_start = unit["Service"]["ExecStart"].split()
    assert exec_start[0].endswith("/.venv/bin/voiceagent") and exec_start[1] == "serve"
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    assert unit["Service"]["Restart"] == "on-failure"


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The same unit, with ExecStart pointing at this checkout's interpreter.
    text = UNIT.read_text().replace(
        "/opt/voiceagent/.venv/bin/voiceagent", f"{sys.executable} -m voiceagent"
    )
    path = tmp_path / "voiceagent.service"
    path.write_text(text)
    proc = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    problems = [
        line for line in (proc.stdout + proc.stderr).splitlines()
        # the test machine has no such user or /opt tree, and may run no systemd
        if line.strip() and "voiceagent" in line and "user" not in line.lower()
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
