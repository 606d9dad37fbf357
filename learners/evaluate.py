"""Prequential (predict, then learn) evaluation of the learners against trivial baselines.

- **Signals**: when a drug exposure starts, the signal learner predicts, for every event seen
  so far, the probability that it follows within the window (``predict_proba_one``); when the
  window closes, those predictions are scored against what followed, before the learner has
  learned from this exposure's outcome at prediction time. Baseline: each event's marginal
  rate after any drug start. Metrics: mean log-loss over (exposure, event) pairs and the mean
  per-exposure AUC (events that followed ranked above those that did not).
- **Alert feedback**: ``river.evaluate.iter_progressive_val_score`` over feedback records
  with log-loss and ROC AUC; baseline: the override rate so far (Laplace-smoothed).

``evaluate_learners`` runs both on fresh learners (nothing is written to the KG or to the saved
learner state); ``plot_prequential`` draws the curves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from river import base, stats

from ingest.patient import Event
from kg.settings import Settings
from kg.store import GraphStore
from learners.feedback import FeedbackRecord, OverrideModel, record_features
from learners.signals import Exposure, SignalConfig, SignalLearner

EPS = 1e-6
CURVE_POINTS = 200


class SignalPrequential:
    """Scores a ``SignalLearner``'s predictions of what follows each drug exposure."""

    def __init__(self, learner: SignalLearner | None = None) -> None:
        self.learner = learner or SignalLearner()
        self.pending: dict[tuple[str, str], tuple[dict[str, float], dict[str, float]]] = {}
        self.loss = {"learner": 0.0, "baseline": 0.0}
        self.auc = {"learner": 0.0, "baseline": 0.0}
        self.pairs = self.exposures = self.ranked = 0
        self.curve: list[tuple[int, float, float]] = []

    def learn_event(self, event: Event) -> None:
        """Predict for an exposure that starts here, learn the event, score closed windows."""
        learner = self.learner
        drug = learner.starts_exposure(event)
        if drug is not None and learner.n:
            n = learner.n
            baseline = {e: (n_1 + 0.5) / (n + 1) for e, n_1 in learner.n_event.items()}
            predicted = learner.predict_proba_one({"drug": drug})
            self.pending[(event.patient_id, drug)] = (predicted, baseline)
        learner.learn_event(event)
        for exposure in learner.closed:
            self._score(exposure)

    def _score(self, exposure: Exposure) -> None:
        predictions = self.pending.pop((exposure.patient, exposure.drug), None)
        if not predictions or not predictions[0]:
            return
        hits = exposure.hits
        for name, p in zip(("learner", "baseline"), predictions, strict=True):
            self.loss[name] += sum(_log_loss(e in hits, q) for e, q in p.items())
        self.pairs += len(predictions[0])
        self.exposures += 1
        positives = [e for e in predictions[0] if e in hits]
        if positives and len(positives) < len(predictions[0]):
            self.ranked += 1
            for name, p in zip(("learner", "baseline"), predictions, strict=True):
                self.auc[name] += _auc(
                    [p[e] for e in positives], [q for e, q in p.items() if e not in hits]
                )
        self.curve.append((self.exposures, *self._mean_loss()))

    def _mean_loss(self) -> tuple[float, float]:
        return self.loss["learner"] / self.pairs, self.loss["baseline"] / self.pairs

    def report(self) -> dict[str, Any]:
        learner, baseline = self._mean_loss() if self.pairs else (math.nan, math.nan)
        return {
            "task": "which events follow a drug exposure within the window",
            "exposures_scored": self.exposures,
            "pairs_scored": self.pairs,
            "log_loss": {"learner": round(learner, 5), "baseline": round(baseline, 5)},
            "auc": {
                k: round(v / self.ranked, 4) if self.ranked else None for k, v in self.auc.items()
            },
            "exposures_ranked": self.ranked,
            "baseline": "marginal rate of each event after any drug start",
            "curve": _thin(self.curve),
        }


class SmoothedPrior(base.Classifier):
    """Baseline classifier: the override rate so far, Laplace-smoothed."""

    def __init__(self) -> None:
        self.rate = stats.Mean()

    def learn_one(self, x: dict, y: bool) -> None:
        self.rate.update(float(y))

    def predict_proba_one(self, x: dict) -> dict[bool, float]:
        n = self.rate.n
        p = (self.rate.get() * n + 1) / (n + 2)
        return {True: p, False: 1 - p}

    def predict_one(self, x: dict) -> bool:
        return self.predict_proba_one(x)[True] >= 0.5


def alert_prequential(records: Iterable[FeedbackRecord]) -> dict[str, Any]:
    """Progressive validation of the override model against the prior override rate."""
    from river import evaluate, metrics

    data = [(record_features(r), r.overridden) for r in records]
    if not data:
        return {"records": 0, "note": "no feedback records given"}
    runs = {}
    for name, model in (
        ("learner", OverrideModel().model),
        ("baseline", SmoothedPrior()),
    ):
        metric = metrics.LogLoss() + metrics.ROCAUC()
        points = list(
            evaluate.iter_progressive_val_score(data, model, metric, step=max(1, len(data) // 100))
        )
        runs[name] = (metric, [(p["Step"], p["LogLoss"].get()) for p in points])
    curve = [
        (step, a, b)
        for (step, a), (_, b) in zip(runs["learner"][1], runs["baseline"][1], strict=True)
    ]
    return {
        "task": "whether a card is overridden",
        "records": len(data),
        "override_rate": round(sum(y for _, y in data) / len(data), 4),
        "log_loss": {k: round(v[0][0].get(), 5) for k, v in runs.items()},
        "auc": {k: round(float(v[0][1].get()), 4) for k, v in runs.items()},
        "baseline": "override rate so far, Laplace-smoothed",
        "curve": _thin(curve),
    }


def evaluate_learners(
    records_path: str | Path,
    settings: Settings,
    *,
    store: GraphStore | None = None,
    feedback: Iterable[FeedbackRecord] | None = None,
    signal_config: SignalConfig | None = None,
) -> dict[str, Any]:
    """Prequential metrics of each learner against its baseline on ``records_path`` (FHIR R4
    NDJSON, codes linked through ``store``, default the configured KG) and on ``feedback``
    records when given; ``signal_config`` sets the signal learner's window and washout."""
    from kg import open_store
    from learners.stream import read_events

    own = store is None
    store = store or open_store(settings.store_url, create=False)
    try:
        events, _ = read_events(records_path, store, settings.pseudonym_salt or "evaluation")
        kg_version = store.version()
    finally:
        if own:
            store.close()
    signals = SignalPrequential(SignalLearner(signal_config))
    for event in events:
        signals.learn_event(event)
    return {
        "records": str(records_path),
        "events": len(events),
        "kg_version": kg_version,
        "learners": {
            f"{signals.learner.name}@{signals.learner.version}": signals.report(),
            f"{OverrideModel.name}@{OverrideModel.version}": alert_prequential(feedback or ()),
        },
    }


def read_feedback(path: Path) -> list[FeedbackRecord]:
    """Feedback records from a JSON-lines file (one ``FeedbackRecord.to_dict()`` per line)."""
    if not path.is_file():
        raise ValueError(f"no feedback file {path}")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(FeedbackRecord.from_dict(json.loads(line)))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{n}: not a feedback record ({exc})") from None
    return out


def plot_prequential(result: dict[str, Any], path: Path) -> Path:
    """A PNG of each learner's prequential log-loss curve next to its baseline's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learners = {k: v for k, v in result["learners"].items() if v.get("curve")}
    fig, axes = plt.subplots(1, max(1, len(learners)), figsize=(6 * max(1, len(learners)), 4))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, (name, report) in zip(axes, learners.items(), strict=False):
        steps, learner, baseline = zip(*report["curve"], strict=True)
        ax.plot(steps, learner, label=f"{name} ({report['log_loss']['learner']:.4f})")
        ax.plot(steps, baseline, label=f"baseline ({report['log_loss']['baseline']:.4f})")
        ax.set_title(report["task"], fontsize=9)
        ax.set_xlabel("exposures scored" if "exposures_scored" in report else "feedback records")
        ax.set_ylabel("cumulative mean log-loss")
        ax.legend(fontsize=8)
    where = Path(result["records"])
    fig.suptitle(f"Prequential evaluation on {where.parent.name}/{where.name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _log_loss(y: bool, p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return -math.log(p if y else 1 - p)


def _auc(positives: list[float], negatives: list[float]) -> float:
    """The share of (positive, negative) pairs ranked right, ties counting half."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _thin(curve: list[tuple], points: int = CURVE_POINTS) -> list[list[float]]:
    """At most ``points`` points of a curve (always its last)."""
    if len(curve) <= points:
        return [list(p) for p in curve]
    step = len(curve) / points
    picked = [curve[int(i * step)] for i in range(points - 1)] + [curve[-1]]
    return [[round(v, 6) if isinstance(v, float) else v for v in p] for p in picked]
