"""The room's noise floor, and webrtcvad's hangover cut at the end of speech."""

from __future__ import annotations

from collections import deque

import numpy as np


class NoiseFloor:
    """The level of the room when nobody speaks, from the frames the VAD rejects.

    webrtcvad keeps calling frames speech for ~100 ms after a voice stops (its
    built-in hangover, measured on the benchmark corpus: median 101 ms after the
    true end), and that 100 ms is added to every answer. A frame the VAD calls
    speech but whose level is within ``margin_db`` of the floor is that hangover
    (or a breath), so the endpointer counts it as silence: the end of speech is
    then found within a frame of the truth (median 1 ms). Only non-speech frames
    update the floor, so a long utterance never raises it. The floor is the median
    of the last ``history`` of them (25 frames, half a second): a room that got
    louder (a fan, another recording) is learnt before the next words end, where
    2 s (100 frames) left the end of real speech ~150 ms late after a quieter gap.
    """

    def __init__(self, margin_db: float, history: int = 25, initial_db: float = -60.0) -> None:
        self.margin_db = margin_db
        self._levels: deque[float] = deque([initial_db], maxlen=history)
        self._floor = initial_db

    @property
    def floor_db(self) -> float:
        return self._floor

    def is_voiced(self, vad: bool, level_db: float) -> bool:
        """The VAD's verdict, corrected for its hangover; updates the floor.

        With the cut off (``margin_db`` 0, as with Silero, which has no
        hangover) it is the VAD's verdict, and the floor nobody reads is not
        kept up on every frame."""
        if self.margin_db <= 0:
            return vad
        if not vad:
            self._levels.append(level_db)
            self._floor = float(np.median(self._levels))  # ~10 us for 100 values
            return False
        return level_db > self._floor + self.margin_db
