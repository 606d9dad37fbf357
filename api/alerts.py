"""Alert feedback, live: clinicians' CDS Hooks feedback trains the override model
(``learners.feedback.OverrideModel``) as it is stored, and the model orders and tiers the
medication cards the services return.

The feedback file is the source of truth: the model remembers the sequence number of the last
feedback it learned (``position``), is saved under ``<learners_dir>/alert-model.pkl`` after
each batch, and catches up with whatever the file holds beyond that at start and after each
feedback request, so nothing is learned twice and a lost model is rebuilt from the file.

A card the model expects to be overridden (tier ``passive`` or ``suppressed``) is shown as
``info`` instead of ``warning`` and listed after the interruptive cards, and its detail says so,
citing the model. Nothing is hidden (a hidden card gets no feedback, so the model could never
learn that it matters again), and a contraindicated-level or critical card is never moved or
downgraded, whatever the model predicts.
"""

from __future__ import annotations

import logging
import pickle
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from api.feedback import FeedbackRecord as StoredFeedback
from api.feedback import FeedbackStore, IssuedCard
from learners.feedback import (
    NEVER_SUPPRESSED,
    TIERS,
    FeedbackRecord,
    OverrideModel,
    card_features,
    load_model,
    record_features,
    save_model,
    severity_rank,
)
from reasoner.answer import Card, ModelInfo

log = logging.getLogger(__name__)

Issued = list[tuple[Card, IssuedCard]]


def as_record(stored: StoredFeedback) -> FeedbackRecord:
    """A stored feedback outcome as the model's training record (its card's kind, severity,
    entities and service; the override reason code)."""
    card = stored.card
    return FeedbackRecord(
        card_type=card.problem_type,
        severity=card.severity,
        entities=card.entities,
        outcome=stored.outcome,
        override_reason=stored.override_code or "",
        time=datetime.fromisoformat(stored.outcome_time),
        hook=card.service,
    )


class AlertModel:
    """The override model of a running server: learns stored feedback, tiers cards."""

    def __init__(self, path: Path, feedback: FeedbackStore) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.model = _load(path)
        self.catch_up(feedback)

    def catch_up(self, feedback: FeedbackStore) -> int:
        """Learn the feedback stored since the model's position; returns how many records.
        Only cards of medication problems (they carry a severity) are learned: the model tiers
        those, and how often diagnosis suggestions are dismissed says nothing about them."""
        with self._lock:
            learned = 0
            for stored in feedback.iter_feedback(self.model.position):
                if stored.card.severity:
                    record = as_record(stored)
                    self.model.learn_one(record_features(record), record.overridden)
                    learned += 1
                self.model.position = stored.seq
            if learned:
                try:
                    save_model(self.model, self.path)
                except OSError as exc:  # the feedback is stored: a later save catches up
                    log.warning("could not save the alert model to %s: %s", self.path, exc)
            return learned

    def prioritise(self, cards: Issued, hook: str) -> tuple[Issued, ModelInfo | None]:
        """``cards`` ordered and tiered by their predicted override probability, and the model
        that did it (None before ``min_records`` decisions: the cards are left as they are)."""
        with self._lock:
            model = self.model
            if model.seen < model.min_records:
                return cards, None
            scores = [
                model.predict_one(card_features(r.problem_type, r.severity, r.entities, hook))
                for _, r in cards
            ]
            seen = model.seen
        ranked = []
        for i, ((card, record), p) in enumerate(zip(cards, scores, strict=True)):
            protected = record.severity == NEVER_SUPPRESSED or card.indicator == "critical"
            tier = "interruptive" if protected else model.tier(record.severity, p)
            card, record = _retiered(card, record, tier, p, model, seen, protected)
            ranked.append(((TIERS.index(tier), severity_rank(record.severity), p, i), card, record))
        ranked.sort(key=lambda r: r[0])
        info = ModelInfo(name=model.name, version=str(model.version))
        return [(card, record) for _, card, record in ranked], info


def _retiered(
    card: Card,
    record: IssuedCard,
    tier: str,
    p: float,
    model: OverrideModel,
    seen: int,
    protected: bool,
) -> tuple[Card, IssuedCard]:
    """The card with the model's note (and a lower indicator) when its tier is not
    interruptive, or when it is protected from a tier the model would have given it."""
    cited = (
        f"The alert feedback model {model.name}@{model.version}, trained on {seen} clinician "
        f"decisions on cards, predicts that this card is overridden with probability {p:.2f}"
    )
    if protected:
        if p < model.passive_at:
            return card, record
        note = f"{cited}; a contraindicated-level card is never downgraded or moved."
        return card.model_copy(update={"detail": _append(card.detail, note)}), record
    if tier == "interruptive":
        return card, record
    limit = model.suppress_at if tier == "suppressed" else model.passive_at
    indicator = "info"
    shown = f"shown as info instead of {card.indicator}" if card.indicator != indicator else ""
    note = (
        f"{cited} (at least {limit:.2f}): tier {tier}, "
        + (f"{shown} and " if shown else "")
        + "listed after the interruptive cards."
    )
    update = {"detail": _append(card.detail, note), "indicator": indicator}
    issued = card.model_copy(update=update)
    return issued, replace(record, indicator=indicator)


def _append(detail: str | None, note: str) -> str:
    return f"{detail}\n\n{note}" if detail else note


def _load(path: Path) -> OverrideModel:
    """The saved model, or a new one (rebuilt from the feedback file) when there is none or it
    cannot be read."""
    try:
        return load_model(path) or OverrideModel()
    except (ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        log.warning("alert model %s unusable (%s): rebuilding it from the feedback file", path, exc)
        return OverrideModel()
