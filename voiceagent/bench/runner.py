"""One real-time run of the real pipeline on a corpus timeline, as ``voiceagent run`` does it."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass

import numpy as np

from voiceagent.host.run import run_paced
from voiceagent.session.display import event_sinks
from voiceagent.stages.loading import Models
from voiceagent.audio.room_echo import EchoSpec
from voiceagent.audio.streams import ArrayInput, MemoryOutput
from voiceagent.config import Config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    events: list[dict[str, object]]
    """Every event, as in the JSONL log, in publication order."""
    output: np.ndarray
    """The speaker signal, sample-aligned with the input."""
    wall_s: float
    """Wall-clock seconds of the run."""
    cpu_s: float
    """CPU seconds of this process (all its threads; no child process) during the run."""

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second: 1.0 is one core fully busy."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def process_cpu_s() -> float:
    """User plus system CPU seconds of this process, children (espeak) excluded."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_realtime(
    cfg: Config, models: Models, audio: np.ndarray, echo: EchoSpec | None = None,
    display: bool = True,
) -> RunResult:
    """Feed ``audio`` to the pipeline at real-time pace until it is answered.

    With ``display`` the transcripts and replies are printed to stderr as they
    happen (a run lasts as long as its audio: minutes).
    """
    events: list[dict[str, object]] = []
    out = MemoryOutput()
    with event_sinks(None, display=display) as (bus, _tracker):
        bus.subscribe(lambda e: events.append(e.to_dict()))
        cpu0, wall0 = process_cpu_s(), time.perf_counter()
        asyncio.run(run_paced(cfg, models, ArrayInput(audio), out, bus, realtime=True, echo=echo))
        wall, cpu = time.perf_counter() - wall0, process_cpu_s() - cpu0
    logger.info("run: %.1f s of audio in %.1f s, %.1f CPU s", audio.size / cfg.audio.sample_rate, wall, cpu)
    return RunResult(events, out.audio, wall, cpu)
