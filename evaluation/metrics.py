"""Rank and latency metrics shared by the benchmark runners."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_metrics(ranks: Sequence[int | None], ks: Sequence[int] = (1, 3, 10)) -> dict[str, float]:
    """Top-k accuracy and mean reciprocal rank over ``ranks`` (1 = first; None = not ranked,
    which counts as a miss). Empty input gives zeros."""
    n = len(ranks)
    found = [r for r in ranks if r is not None]
    out = {f"top{k}": (sum(1 for r in found if r <= k) / n if n else 0.0) for k in ks}
    out["mrr"] = sum(1.0 / r for r in found) / n if n else 0.0
    return {k: round(v, 4) for k, v in out.items()}


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and mean of per-item durations, in milliseconds."""
    if not seconds:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0}
    ms = np.asarray(seconds, dtype=float) * 1000.0
    return {
        "p50": round(float(np.percentile(ms, 50)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "mean": round(float(ms.mean()), 2),
    }


def cumulative_accuracy(ranks: Sequence[int | None], max_k: int) -> np.ndarray:
    """Top-k accuracy for k = 1..max_k (the curve a rank distribution plot shows)."""
    n = len(ranks)
    counts = np.zeros(max_k + 1)
    for r in ranks:
        if r is not None and r <= max_k:
            counts[r] += 1
    return np.cumsum(counts)[1:] / max(n, 1)
