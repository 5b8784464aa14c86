"""Has the audio stream stalled, and how far did that move the echo path?

A duplex sound-card stream plays one block per block captured. When the whole
process is descheduled for a while (a busy box: measured with SIGSTOP on
PulseAudio through ALSA), no callback runs: the output runs dry and the input
piles up in the device's buffer. Afterwards the callbacks go on at the
device's pace, so the input does not catch up: from then on it lags the output
by more, and the echo of what is played reaches the microphone that much later
*in the stream*, at once and for good. How much more is not the stall's
length: measured on the PulseAudio loopback of the device tests, three 100 ms
stalls moved the echo by 40, 73 and 82 ms, three of 300 ms by 243, 262 and
264 ms (the host drops some input when it recovers from an overrun).

The stream's reported latency (output DAC time minus input ADC time) tells it
better. Read on the first callback after the stall it was within 1 ms of the
shift, or below it by 30-45 ms (the output buffer had drained; it refills over
the next blocks), never above it, in 12 stalls of 100-300 ms. Below is the
safe side: a reference that leads the echo a little is fine for AEC3, one that
lags it leaks (see ``audio.echo.WebRtcEchoCanceller.realign``). Read later,
once the output had refilled, it overshot by up to 12 ms. So ``StallWatch``
answers on that first callback, and the echo canceller checks the shift on the
echo itself (``audio.echo.EchoGatedCanceller``). Where the host reports no
latency the shift is unknown (0) and only that check can find it.

Pure: per block, the time since the last callback, the stream's
underflow/overflow flags and its reported latency in; a decision out.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

STALL_BLOCKS = 3.0
"""A gap between callbacks longer than this many blocks is a stall (measured:
ordinary jitter on PulseAudio gives gaps of up to 2 blocks, then a quick one)."""
BASELINE_BLOCKS = 5
"""Blocks before a stall whose median latency is the one before it."""
MIN_SHIFT_MS = 5.0
"""An underflow or overflow flag without a gap that moved the latency less than
this moved nothing worth telling: AEC3 tracks that little itself."""


@dataclass(frozen=True)
class Realign:
    """The stream stalled or ran dry: the echo now reaches the microphone
    ``shift_ms`` later than it did (negative: sooner), from this block on."""

    shift_ms: float
    """From the reported latency; 0 where the host reports none."""
    stall_ms: float
    """How long the callbacks stopped beyond one block (0: an underflow or
    overflow flag without a gap)."""
    measured: bool
    """Whether ``shift_ms`` comes from a reported latency."""


class StallWatch:
    def __init__(self, block_ms: float) -> None:
        self.block_ms = block_ms
        self._latencies: deque[float] = deque(maxlen=BASELINE_BLOCKS)
        """Reported latencies (milliseconds) since the last stall, the latest last."""

    def observe(self, gap_ms: float | None, latency_ms: float, xrun: bool) -> Realign | None:
        """One block: ``gap_ms`` since the previous callback (None for the first),
        the reported ``latency_ms`` (0 or less: not reported) and whether the
        stream flagged an output underflow or input overflow."""
        stalled = gap_ms is not None and gap_ms > STALL_BLOCKS * self.block_ms
        if not (stalled or xrun):
            if latency_ms > 0:
                self._latencies.append(latency_ms)
            return None
        stall = gap_ms - self.block_ms if stalled else 0.0  # type: ignore[operator]
        before = statistics.median(self._latencies) if self._latencies else None
        # The next stall is measured from the latency after this one: right
        # after it the output is still refilling, so the latency reads low and
        # a shift measured from it errs low again.
        self._latencies.clear()
        if latency_ms <= 0 or before is None:
            return Realign(0.0, stall, measured=False) if stalled else None
        self._latencies.append(latency_ms)
        shift = latency_ms - before
        if not stalled and abs(shift) < MIN_SHIFT_MS:
            return None
        return Realign(shift, stall, measured=True)
