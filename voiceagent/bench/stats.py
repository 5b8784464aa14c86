"""Median and 95th percentile of a latency distribution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class Dist:
    """p50 and p95 of some values (numpy's linear interpolation between order
    statistics: with few values the p95 lies close to the maximum)."""

    p50: float | None
    p95: float | None
    n: int
    """How many finite values there were."""

    @classmethod
    def of(cls, values: Iterable[float | None]) -> "Dist":
        """Missing and infinite values are left out (and not counted in ``n``)."""
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return cls(None, None, 0)
        p50, p95 = np.percentile(finite, [50, 95], method="linear")
        return cls(float(p50), float(p95), len(finite))

    def to_dict(self) -> dict[str, float | int | None]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        return {"p50": r(self.p50), "p95": r(self.p95), "n": self.n}
