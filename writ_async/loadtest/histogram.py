"""A log-linear histogram of durations: O(1) to record, mergeable, bounded relative error.

HdrHistogram's layout, in pure Python: values are counted in integer ticks (1 µs by
default); below ``2 ** (bits + 1)`` ticks every value has its own bucket (exact), above
it each power of two is split into ``2 ** bits`` equal buckets, so a bucket is never
wider than ``2 ** -bits`` of its lower bound. With ``bits=12`` (the default) that is
exact to 8 ms and within 0.013 % (the bucket midpoint) beyond, at any count:
percentiles do not degrade as a run grows, and memory is bounded by the range of
values, not their number.

Percentiles are nearest-rank (the smallest recorded value with at least ``q`` of the
count at or below it), reported as the bucket's midpoint clamped to the exact min/max.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

QUANTILES = (0.5, 0.9, 0.99, 0.999)


class LogHistogram:
    __slots__ = ("_exact", "_shift_base", "bits", "count", "counts", "max", "min", "tick",
                 "total")

    def __init__(self, bits: int = 12, tick: float = 1e-6) -> None:
        if not 1 <= bits <= 20:
            raise ValueError(f"bits must be within 1..20, got {bits}")
        self.bits = bits
        self.tick = tick
        self._exact = 1 << (bits + 1)  # values below this many ticks are counted exactly
        self._shift_base = bits + 1
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def __repr__(self) -> str:
        if not self.count:
            return "<LogHistogram empty>"
        return (f"<LogHistogram count={self.count} p50={self.percentile(0.5):.6g}"
                f" p99={self.percentile(0.99):.6g} max={self.max:.6g}>")

    def record(self, value: float) -> None:
        """Count one value (seconds, or whatever unit ``tick`` is in); negatives count as 0."""
        if value < 0.0:
            value = 0.0
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        ticks = int(value / self.tick + 1e-7)  # 999e-6 / 1e-6 is 998.99...
        if ticks >= self._exact:
            shift = ticks.bit_length() - self._shift_base
            ticks = (shift << self.bits) + (ticks >> shift)
        counts = self.counts
        counts[ticks] = counts.get(ticks, 0) + 1

    def record_many(self, values: Iterable[float]) -> None:
        """``record`` each of ``values`` (one call, for the many gaps of a stream)."""
        tick, exact, shift_base, bits = self.tick, self._exact, self._shift_base, self.bits
        counts = self.counts
        lo, hi, total, n = self.min, self.max, self.total, 0
        for value in values:
            if value < 0.0:
                value = 0.0
            n += 1
            total += value
            if value < lo:
                lo = value
            if value > hi:
                hi = value
            ticks = int(value / tick + 1e-7)
            if ticks >= exact:
                shift = ticks.bit_length() - shift_base
                ticks = (shift << bits) + (ticks >> shift)
            counts[ticks] = counts.get(ticks, 0) + 1
        self.count += n
        self.total, self.min, self.max = total, lo, hi

    def merge(self, other: LogHistogram) -> None:
        if (other.bits, other.tick) != (self.bits, self.tick):
            raise ValueError("cannot merge histograms of different precision")
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def bucket_bounds(self, index: int) -> tuple[float, float]:
        """The half-open value range ``[low, high)`` of bucket ``index``."""
        if index < self._exact:
            return index * self.tick, (index + 1) * self.tick
        shift = (index >> self.bits) - 1
        mantissa = index - (shift << self.bits)
        low = mantissa << shift
        return low * self.tick, (low + (1 << shift)) * self.tick

    def buckets(self) -> Iterator[tuple[float, float, int]]:
        """``(low, high, count)`` of every non-empty bucket, in increasing order."""
        for index in sorted(self.counts):
            low, high = self.bucket_bounds(index)
            yield low, high, self.counts[index]

    def percentile(self, q: float) -> float:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be within [0, 1], got {q}")
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count - 1e-9))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                low, high = self.bucket_bounds(index)
                mid = low if index < self._exact else (low + high) / 2.0  # exact: the tick
                return min(self.max, max(self.min, mid))
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def summary(self, scale: float = 1000.0) -> dict[str, float | int]:
        """count, mean, min, max and the standard percentiles, times ``scale`` (ms)."""
        if not self.count:
            return {"count": 0}
        out: dict[str, float | int] = {
            "count": self.count, "mean": round(self.mean * scale, 4),
            "min": round(self.min * scale, 4), "max": round(self.max * scale, 4)}
        for q in QUANTILES:
            out[_name(q)] = round(self.percentile(q) * scale, 4)
        return out


def _name(q: float) -> str:
    text = f"{q * 100:g}".replace(".", "_")
    return f"p{text}"
