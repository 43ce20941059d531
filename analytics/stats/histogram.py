"""Fixed log-spaced latency buckets: percentiles from counts, within a known relative error.

Bucket 0 holds values below MIN_MS; bucket i >= 1 holds [MIN_MS * RATIO**(i-1),
MIN_MS * RATIO**i); the last bucket also takes everything above. A percentile
is reported as the geometric middle of its bucket, so it is within
RELATIVE_ERROR of the exact nearest-rank value (or within MIN_MS of it below
MIN_MS). The bounds never change: histograms in the database stay comparable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

RATIO = 1.1
MIN_MS = 0.01  # 10 µs
MAX_MS = 1_000_000.0  # about 17 minutes; longer calls share the last bucket
BUCKETS = 2 + math.ceil(math.log(MAX_MS / MIN_MS) / math.log(RATIO))
RELATIVE_ERROR = math.sqrt(RATIO) - 1  # about 4.9 %

_LOG_RATIO = math.log(RATIO)


def bucket_of(value_ms: float) -> int:
    if value_ms < MIN_MS:
        return 0
    return min(BUCKETS - 1, 1 + int(math.log(value_ms / MIN_MS) / _LOG_RATIO))


def representative(bucket: int) -> float:
    """The value reported for a bucket: its geometric middle (half of MIN_MS for bucket 0)."""
    if bucket <= 0:
        return MIN_MS / 2
    return float(MIN_MS * RATIO ** (bucket - 0.5))


def nearest_rank(n: int, percentile: float) -> int:
    """0-based index of the nearest-rank percentile among n sorted values."""
    return max(0, math.ceil(percentile / 100 * n) - 1)


def percentiles(
    counts: dict[int, int], wanted: Iterable[float], maximum: float | None = None
) -> dict[float, float | None]:
    """Nearest-rank percentiles of the values counted per bucket (None when there are none).

    `maximum`, the largest value seen, caps the answer: the top bucket's middle
    may lie above it.
    """
    total = sum(counts.values())
    wanted = list(wanted)
    if total == 0:
        return dict.fromkeys(wanted)
    ordered = sorted(counts.items())
    out: dict[float, float | None] = {}
    for p in wanted:
        rank = nearest_rank(total, p)
        seen = 0
        for bucket, count in ordered:
            seen += count
            if seen > rank:
                value = representative(bucket)
                out[p] = round(min(value, maximum) if maximum is not None else value, 3)
                break
    return out
