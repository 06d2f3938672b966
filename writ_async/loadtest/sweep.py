"""A sweep: the same traffic at increasing load, and the knee where it stops paying.

Each step is a full run (warm-up, bound) at one concurrency or rate. The knee is the
last step before the endpoint saturates: the next step raised throughput by less than
half of what the added load would give if it scaled (``gain < 0.5 * load ratio``), or
pushed the p50 latency (from the intended send time) past twice the lightest step's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def find_knee(steps: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The knee step's load and why, from run summaries in increasing load order."""
    if not steps:
        return None
    # (null: nothing answered at that step; it then has no latency to compare)
    base_p50 = steps[0]["latency_ms"]["e2e_from_intended"].get("p50") or 0.0
    for i in range(len(steps) - 1):
        here, there = steps[i], steps[i + 1]
        rps, next_rps = here["throughput"]["requests_per_s"], there["throughput"]["requests_per_s"]
        load_ratio = there["load"] / here["load"] if here["load"] else float("inf")
        gain = next_rps / rps if rps else float("inf")
        p50 = there["latency_ms"]["e2e_from_intended"].get("p50") or 0.0
        if gain - 1.0 < 0.5 * (load_ratio - 1.0):
            return {"load": here["load"], "step": i,
                    "reason": f"throughput x{gain:.2f} for load x{load_ratio:.2f} at the next step"}
        if base_p50 and p50 > 2.0 * base_p50:
            return {"load": here["load"], "step": i,
                    "reason": f"p50 latency {p50:.1f} ms at the next step, over twice "
                              f"{base_p50:.1f} ms"}
    last = steps[-1]
    return {"load": last["load"], "step": len(steps) - 1,
            "reason": "no saturation within the swept loads"}
