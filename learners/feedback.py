"""Alert feedback: an online model of how likely a clinician overrides a card, and the tiers
(interruptive, passive, suppressed) it gives the reasoner's problems.

Clinicians accept or override CDS Hooks cards; each decision is a ``FeedbackRecord``. An
online logistic regression (``river.linear_model.LogisticRegression``) over one-hot features
of the card — its type, severity, type × severity, hook and each KG entity involved (drugs and
their classes) — learns the probability of an override. The override reason is not a feature:
it is only known once the card has been overridden.

``prioritise`` orders problems and gives each a tier. A contraindicated-level problem is always
interruptive, whatever the model says; every problem is interruptive until the model has learned
from ``min_records`` decisions (one clinician's override must not turn a warning into info).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from river import linear_model, optim

from kg.settings import Settings
from learners.state import write_pickle

OUTCOMES = ("accepted", "overridden")
TIERS = ("interruptive", "passive", "suppressed")
NEVER_SUPPRESSED = "contraindicated"
#: The reasoner's severity scale, most severe first (``reasoner.tools.SEVERITIES`` + info).
SEVERITIES = ("contraindicated", "avoid", "precaution", "consider", "info")


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A clinician's decision on one card: ``outcome`` is ``accepted`` or ``overridden``."""

    card_type: str
    severity: str
    entities: tuple[str, ...]
    outcome: str
    override_reason: str = ""
    time: datetime | None = None
    hook: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"feedback outcome {self.outcome!r}: use accepted or overridden")
        object.__setattr__(self, "entities", tuple(self.entities))

    @property
    def overridden(self) -> bool:
        return self.outcome == "overridden"

    def to_dict(self) -> dict[str, Any]:
        return {
            "card_type": self.card_type,
            "severity": self.severity,
            "entities": list(self.entities),
            "outcome": self.outcome,
            "override_reason": self.override_reason,
            "time": self.time.isoformat() if self.time else None,
            "hook": self.hook,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedbackRecord:
        when = d.get("time")
        return cls(
            card_type=d["card_type"],
            severity=d["severity"],
            entities=tuple(d.get("entities", ())),
            outcome=d["outcome"],
            override_reason=d.get("override_reason") or "",
            time=datetime.fromisoformat(when) if isinstance(when, str) else when,
            hook=d.get("hook") or "",
        )


def card_features(
    card_type: str, severity: str, entities: Iterable[str] = (), hook: str = ""
) -> dict[str, float]:
    """One-hot features of a card."""
    x = {
        f"type={card_type}": 1.0,
        f"severity={severity}": 1.0,
        f"type|severity={card_type}|{severity}": 1.0,
    }
    if hook:
        x[f"hook={hook}"] = 1.0
    for entity in entities:
        x[f"entity={entity}"] = 1.0
    return x


def record_features(record: FeedbackRecord) -> dict[str, float]:
    return card_features(record.card_type, record.severity, record.entities, record.hook)


class OverrideModel:
    """Online probability that a card is overridden (River logistic regression)."""

    name = "alert-override"
    version = 1

    def __init__(
        self,
        *,
        learning_rate: float = 0.1,
        l2: float = 1e-4,
        min_records: int = 30,
        passive_at: float = 0.6,
        suppress_at: float = 0.9,
    ) -> None:
        self.model = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), l2=l2, intercept_lr=learning_rate
        )
        self.min_records = min_records
        self.passive_at = passive_at
        self.suppress_at = suppress_at
        self.seen = 0
        self.position = 0  # the last feedback record learned (e.g. its sequence number)

    def learn_one(self, x: dict[str, float], overridden: bool) -> None:
        self.model.learn_one(x, overridden)
        self.seen += 1

    def predict_one(self, x: dict[str, float]) -> float:
        """The probability that a card with features ``x`` is overridden."""
        return float(self.model.predict_proba_one(x)[True])

    def tier(self, severity: str, p_override: float) -> str:
        """``interruptive``, ``passive`` or ``suppressed``; contraindicated, and every problem
        before ``min_records`` decisions, is interruptive."""
        if severity == NEVER_SUPPRESSED or self.seen < self.min_records:
            return "interruptive"
        if p_override >= self.suppress_at:
            return "suppressed"
        if p_override >= self.passive_at:
            return "passive"
        return "interruptive"


def train_from(
    records: Iterable[FeedbackRecord], model: OverrideModel | None = None
) -> OverrideModel:
    """``model`` (a new ``OverrideModel`` by default) after learning from ``records``."""
    model = model or OverrideModel()
    for record in records:
        model.learn_one(record_features(record), record.overridden)
    return model


def prioritise(
    problems: Iterable[Any], model: OverrideModel | None = None, *, hook: str = ""
) -> list[tuple[Any, float, str]]:
    """``(problem, p_override, tier)`` for each problem (objects or dicts with ``type``,
    ``severity`` and ``entities``), interruptive first, then passive, then suppressed; most
    severe first within a tier, then least likely overridden. Without a model every problem
    gets p = 0.5 and is interruptive."""
    out = []
    for problem in problems:
        kind, severity = _field(problem, "type"), _field(problem, "severity")
        if model is None:
            p, tier = 0.5, "interruptive"
        else:
            x = card_features(kind, severity, _field(problem, "entities") or (), hook)
            p = model.predict_one(x)
            tier = model.tier(severity, p)
        out.append((problem, p, tier))
    out.sort(key=lambda r: (TIERS.index(r[2]), severity_rank(_field(r[0], "severity")), r[1]))
    return out


def model_path(settings: Settings) -> Path:
    """Where the alert model lives: ``<learners_dir>/alert-model.pkl`` (default
    ``<home>/learners/alert-model.pkl``)."""
    return settings.learners_path / "alert-model.pkl"


def save_model(model: OverrideModel, path: Path) -> None:
    """Write the model with its name and version, atomically (``write_pickle``)."""
    write_pickle({"name": model.name, "version": model.version, "model": model}, path)


def load_model(path: Path) -> OverrideModel | None:
    """The model saved at ``path`` by this version of it, or None when there is none.

    A file saved by another version (or not by ``save_model``) is refused: ``version`` is a
    class attribute, so only the name and version written beside the model tell which version
    saved it."""
    if not path.exists():
        return None
    saved = pickle.loads(path.read_bytes())
    wanted = f"{OverrideModel.name}@{OverrideModel.version}"
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), OverrideModel):
        raise ValueError(f"{path} is not an {wanted} model")
    found = f"{saved.get('name')}@{saved.get('version')}"
    if found != wanted:
        raise ValueError(f"{path} holds a {found} model, not {wanted}")
    return saved["model"]


def _field(problem: Any, name: str) -> Any:
    return problem.get(name) if isinstance(problem, Mapping) else getattr(problem, name, None)


def severity_rank(severity: str) -> int:
    """0 for the most severe level (contraindicated), larger for milder or unknown ones."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
