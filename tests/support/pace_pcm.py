"""A microphone for a Wyoming satellite in a test: raw 16-bit PCM from a file on
stdout, paced in real time, then silence until killed (a microphone does not end).

    python tests/support/pace_pcm.py FILE.raw [RATE]
"""

from __future__ import annotations

import sys
import time

CHUNK = 1024
"""Samples per write (wyoming-satellite's default chunk)."""


def main() -> None:
    path, rate = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 16000
    with open(path, "rb") as f:
        data = f.read()
    out = sys.stdout.buffer
    start = time.monotonic()
    i = 0
    silence = bytes(2 * CHUNK)
    while True:
        chunk = data[i * 2 * CHUNK : (i + 1) * 2 * CHUNK] or silence
        out.write(chunk.ljust(2 * CHUNK, b"\0"))
        out.flush()
        i += 1
        time.sleep(max(0.0, start + i * CHUNK / rate - time.monotonic()))


if __name__ == "__main__":
    main()
