"""File and pipe streams."""

from __future__ import annotations

import subprocess
import sys
import wave


def test_a_wav_output_is_readable_even_if_the_process_dies_without_closing_it(tmp_path):
    path = tmp_path / "out.wav"
    code = (
        "import os, numpy as np\n"
        "from voiceagent.audio.streams import WavOutput\n"
        f"out = WavOutput(__import__('pathlib').Path({str(path)!r}), 16000)\n"
        "for _ in range(50): out.write(np.full(320, 0.1, np.float32))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with wave.open(str(path)) as w:  # the strict reader trusts the header's length
        assert w.getnframes() == 50 * 320
