"""Small statistics shared by the usage reports and the health summaries."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], pct: int) -> float | None:
    """Nearest-rank percentile, rounded to 0.01; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(float(ordered[rank - 1]), 2)
