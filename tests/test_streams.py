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


def test_a_stalled_pipe_does_not_hold_up_a_stop_nor_the_exit():
    # The writer keeps the pipe open and sends nothing (a hung arecord): the
    # daemon's stop must still end the driver, and the process must exit.
    code = (
        "import asyncio, os, sys, time\n"
        "from voiceagent.transports.paced import PacedDuplex\n"
        "from voiceagent.audio.speaker import Speaker\n"
        "from voiceagent.audio.streams import PcmInput, NullOutput\n"
        "from voiceagent.clock import ManualClock\n"
        "from voiceagent.config import PcmFormat\n"
        "r, w = os.pipe()\n"
        "class Idle:\n"
        "    idle = True\n"
        "    def on_block(self, b, t): pass\n"
        "    def on_playback(self, n, t): pass\n"
        "async def main():\n"
        "    stop = asyncio.Event()\n"
        "    asyncio.get_running_loop().call_later(0.3, stop.set)\n"
        "    d = PacedDuplex(PcmInput(os.fdopen(r, 'rb'), PcmFormat(), 16000), NullOutput(),\n"
        "                    Speaker(16000), ManualClock(), 320)\n"
        "    await d.run(Idle(), stop=stop)\n"
        "t = time.monotonic()\n"
        "asyncio.run(main())\n"
        "print(round(time.monotonic() - t, 2))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) < 1.0


def test_a_driver_taking_over_goes_on_with_the_same_timeline():
    import asyncio

    import numpy as np

    from voiceagent.transports.paced import PacedDuplex
    from voiceagent.audio.speaker import Speaker
    from voiceagent.audio.streams import ArrayInput, NullOutput
    from voiceagent.clock import ManualClock

    class Times:
        idle = True

        def __init__(self):
            self.t = []

        def on_block(self, block, t):
            self.t.append(t)

        def on_playback(self, notice, t):
            pass

    seen = Times()
    driver = PacedDuplex(ArrayInput(np.zeros(1600, np.float32)), NullOutput(), Speaker(16000),
                         ManualClock(), 320, realtime=False, start_block=50)
    asyncio.run(driver.run(seen))
    assert seen.t[0] == 1.0 and driver.blocks_done == 55


def test_nan_samples_on_a_pipe_are_an_input_error_that_names_where():
    import asyncio
    import io

    import numpy as np
    import pytest

    from voiceagent.audio.streams import PcmInput
    from voiceagent.config import PcmFormat
    from voiceagent.errors import AudioInputError

    pcm = np.zeros(8000, "<f4")
    pcm[6000] = np.inf
    source = PcmInput(io.BytesIO(pcm.tobytes()), PcmFormat(format="f32le"), 16000)

    async def drain():
        blocks = []
        while (block := await source.read(320)) is not None:
            blocks.append(block)
        return blocks

    with pytest.raises(AudioInputError, match=r"stdin: 1 samples are NaN or infinite, the first at 0\.38 s"):
        asyncio.run(drain())


def test_a_daemon_input_that_fails_goes_on_as_silence(caplog):
    import asyncio

    import numpy as np

    from voiceagent.audio.streams import EndlessInput
    from voiceagent.errors import AudioInputError

    class Breaks:
        reads = 0

        async def read(self, n):
            self.reads += 1
            if self.reads > 2:
                raise AudioInputError("stdin: 1 samples are NaN or infinite, the first at 0.04 s")
            return np.full(n, 0.5, np.float32)

        def close(self):
            pass

    endless = EndlessInput(Breaks())

    async def read(k):
        return [await endless.read(320) for _ in range(k)]

    blocks = asyncio.run(read(5))
    assert [float(b.max()) for b in blocks] == [0.5, 0.5, 0.0, 0.0, 0.0]
    assert "NaN or infinite" in caplog.text and endless.ended
