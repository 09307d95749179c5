"""The small result type every estimator returns, and unit conversion."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """A scalar estimate in nats with its standard error (0.0 where the value is exact)."""

    value: float
    stderr: float = 0.0

    def __sub__(self, other: Estimate) -> Estimate:
        # Independent-error subtraction; callers with correlated terms compute stderr themselves.
        return Estimate(self.value - other.value, math.hypot(self.stderr, other.stderr))


LN2 = math.log(2.0)


def nats_to_bits(x: float) -> float:
    """Convert an information quantity from nats to bits (divide by ln 2)."""
    return x / LN2
