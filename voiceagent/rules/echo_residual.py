"""How loud the reply's echo still is after cancellation: measured, not assumed.

Over a reply, a frame is taken for the user only if it stands out of what the
echo of the reply can leave in the microphone. A fixed margin below the reply
(``barge_in.echo_margin_db``) cannot be right everywhere: with headphones, a
file, or a canceller that removes the echo well, nothing of the reply is left,
and the margin only deafens the assistant to a quiet user (measured: a real
voice at -35 dBFS over a -13 dBFS reply with no echo path was heard 430-700 ms
late, its first words lost). So this keeps, per frame of playback that was not
taken for the user, how far the cleaned input lay below the reply, and where
the echo canceller has found no echo path the margin becomes that residual's
high percentile plus ``HEADROOM_DB``: never stricter than the configured margin,
which applies until enough was measured. Where there is an echo path the
configured margin stays: while AEC3 converges on it, its residual changes
faster than it can be measured (a margin learnt in its first second let an echo
leak through, with ``--echo 40:-6``).

Pure: plain decibel values in, a margin out.
"""

from __future__ import annotations

from collections import deque

import numpy as np

WINDOW_FRAMES = 100
"""Frames of playback remembered (2 s at 20 ms): a few words of the reply."""
MIN_FRAMES = 5
"""Frames measured before the measurement is trusted (0.1 s). Only ever used
where no echo reaches the input, so what is measured is the room, not a
converging canceller; waiting 0.5 s for it left a user who spoke 0.25 s into the
first reply under the configured margin, unheard until then."""
PERCENTILE = 95.0
"""Of the residual: the echo's loud moments, not its average."""
HEADROOM_DB = 8.0
"""Above that percentile, a frame is louder than the echo has been."""


class EchoResidual:
    def __init__(self, configured_margin_db: float) -> None:
        self.configured_margin_db = configured_margin_db
        self._residual: deque[float] = deque(maxlen=WINDOW_FRAMES)

    def observe(self, level_db: float, echo_db: float) -> None:
        """A frame of playback that was not the user: its level and the reply's (dBFS)."""
        self._residual.append(level_db - echo_db)

    def margin_db(self) -> float:
        """How far below the reply's level input is still echo (negative decibels)."""
        if len(self._residual) < MIN_FRAMES:
            return self.configured_margin_db
        measured = float(np.percentile(np.fromiter(self._residual, float), PERCENTILE)) + HEADROOM_DB
        return min(self.configured_margin_db, measured)

    def reset(self) -> None:
        """The echo path may have changed (a new device): measure again."""
        self._residual.clear()
