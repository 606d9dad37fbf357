"""Turning link scores into probabilities (Platt scaling) and the metrics that judge scores.

Metrics take plain arrays: ``auroc`` and ``auprc`` rank positives against negatives;
``ranking_metrics`` ranks each positive against its own sampled negatives (Hits@K, MRR), ties
counted as half (a scorer that gives everything 0 ranks a positive mid-list, not first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PlattScaler:
    """``p = sigmoid(slope * score + intercept)`` with ``slope >= 0``: monotone non-decreasing."""

    slope: float = 1.0
    intercept: float = 0.0

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, *, steps: int = 200) -> PlattScaler:
        """Fit on held-out ``scores`` with 0/1 ``labels`` by maximum likelihood (Platt 1999
        targets, so that a perfectly separated split does not give an infinite slope)."""
        import torch

        y = np.asarray(labels, dtype=np.float64)
        n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
        if n_pos == 0 or n_neg == 0:
            raise ValueError("calibration needs both positive and negative examples")
        target = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        x = torch.as_tensor(np.asarray(scores, dtype=np.float64))
        t = torch.as_tensor(target)
        scale = float(x.std()) or 1.0
        raw_slope = torch.zeros((), dtype=torch.float64, requires_grad=True)
        intercept = torch.zeros((), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([raw_slope, intercept], max_iter=steps)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = torch.nn.functional.softplus(raw_slope) * x / scale + intercept
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, t)
            loss.backward()
            return loss

        optimizer.step(closure)
        slope = torch.nn.functional.softplus(raw_slope).item() / scale
        return cls(slope=slope, intercept=intercept.item())

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``scores``."""
        z = self.slope * np.asarray(scores, dtype=np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_dict(self) -> dict[str, float]:
        return {"method": "platt", "slope": self.slope, "intercept": self.intercept}  # type: ignore[dict-item]


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive outscores a negative (ties 1/2)."""
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks of tied scores
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for_each = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(for_each, ends - starts)
    n_pos, n_neg = len(pos), len(neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision; tied scores form one step)."""
    precision, recall, _ = pr_curve(positives, negatives)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def pr_curve(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) at each distinct score, highest threshold first."""
    labels, thresholds, tp, fp = _cumulative(positives, negatives)
    precision = tp / (tp + fp)
    recall = tp / max(labels.sum(), 1)
    return precision, recall, thresholds


def roc_curve(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, threshold), starting at (0, 0)."""
    labels, thresholds, tp, fp = _cumulative(positives, negatives)
    tpr = np.r_[0.0, tp / max(labels.sum(), 1)]
    fpr = np.r_[0.0, fp / max(len(labels) - labels.sum(), 1)]
    return fpr, tpr, np.r_[np.inf, thresholds]


def _cumulative(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels sorted by falling score, and per distinct score: threshold, TP and FP counts."""
    scores = np.concatenate([np.asarray(positives, float), np.asarray(negatives, float)])
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(labels)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return labels, scores[last_of_tie], tp, fp


def ranking_metrics(
    positives: np.ndarray, negatives: np.ndarray, ks: tuple[int, ...] = (10,)
) -> dict[str, float]:
    """Hits@K and MRR of each positive ranked among its own row of ``negatives`` (n x k)."""
    pos = np.asarray(positives, float)[:, None]
    neg = np.asarray(negatives, float)
    rank = 1.0 + (neg > pos).sum(axis=1) + 0.5 * (neg == pos).sum(axis=1)
    out = {f"hits@{k}": float((rank <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / rank).mean())
    return out


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the mean |observed rate - predicted p| over equal-width bins,
    weighted by how many predictions fall in each."""
    p, y = np.asarray(probabilities, float), np.asarray(labels, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(error)


def score_metrics(
    positives: np.ndarray, negatives: np.ndarray, ranked: np.ndarray | None = None
) -> dict[str, Any]:
    """AUROC and AUPRC of positives vs negatives, plus Hits@10 and MRR against ``ranked``."""
    out: dict[str, Any] = {
        "auroc": auroc(positives, negatives),
        "auprc": auprc(positives, negatives),
    }
    if ranked is not None:
        out.update(ranking_metrics(positives, ranked))
    return out
