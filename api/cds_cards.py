"""From a reasoner answer to CDS Hooks cards: a uuid per card and suggestion (feedback refers
to them), delete actions for draft orders, override reasons, and the response body."""

from __future__ import annotations

import uuid
from typing import Any

from api.cds_input import HookInput
from api.cds_models import InputTrace
from api.feedback import IssuedCard
from reasoner.answer import Action, Answer, Card, OverrideReason, Suggestion
from reasoner.medication import MedicationAnswer

ACTIONABLE = frozenset({"drug-interaction", "duplicate-therapy", "allergy"})
INCOMPLETE = frozenset({"unknown-drug", "unknown-allergy", "code-name-conflict"})
OVERRIDE_REASONS = [
    OverrideReason(code="benefit-outweighs-risk", display="Benefit outweighs the risk"),
    OverrideReason(code="will-monitor", display="Will monitor or adjust the dose"),
    OverrideReason(code="patient-tolerated-before", display="Patient has tolerated it before"),
    OverrideReason(code="not-relevant", display="Not relevant to this patient"),
    OverrideReason(code="information-incorrect", display="The information is incorrect"),
]


def medication_cards(
    answer: MedicationAnswer, hook: HookInput, *, focus_only: bool
) -> list[tuple[Card, IssuedCard]]:
    """A card per problem that concerns a focus order (every problem when not ``focus_only``);
    medications that could not be checked always get an info card."""
    out = []
    for problem, card in zip(answer.problems, answer.cards, strict=True):
        concerns_focus = any(i in hook.focus for i in problem.inputs)
        if focus_only and not concerns_focus and problem.type not in INCOMPLETE:
            continue
        suggestions = []
        if problem.type in ACTIONABLE:
            for i in problem.inputs:
                med = hook.medications[i]
                if med.origin != "draft" or not med.resource.startswith("MedicationRequest/"):
                    continue
                label = hook.query.patient.medications[i].label()
                suggestions.append(
                    Suggestion(
                        label=f"Remove the draft order of {label}"[:140],
                        uuid=str(uuid.uuid4()),
                        isRecommended=problem.severity == "contraindicated",
                        actions=[
                            Action(
                                type="delete",
                                description=f"Remove draft order {med.resource} ({label})",
                                resourceId=med.resource,
                            )
                        ],
                    )
                )
        out.append(
            _issue(
                card,
                suggestions,
                problem.type,
                problem.severity,
                problem.entities,
                problem.proposed,
            )
        )
    for resource, message in hook.unreadable:
        card = Card(
            summary=f"{resource} was not checked"[:140],
            indicator="info",
            detail=f"{resource} could not be read, so it was not checked: {message}",
            source={"label": "evocdss medication check"},
        )
        out.append(_issue(card, [], "unreadable-order", "info", [], False))
    return out


def answer_cards(answer: Answer, problem_type: str) -> list[tuple[Card, IssuedCard]]:
    """The answer's own cards (e.g. diagnosis suggestions), each given a uuid."""
    return [_issue(c, c.suggestions, problem_type, "", [], False) for c in answer.cards]


def _issue(
    card: Card,
    suggestions: list[Suggestion],
    problem_type: str,
    severity: str,
    entities: list[str],
    proposed: bool,
) -> tuple[Card, IssuedCard]:
    suggestions = [
        s if s.uuid else s.model_copy(update={"uuid": str(uuid.uuid4())}) for s in suggestions
    ]
    update: dict[str, Any] = {"uuid": str(uuid.uuid4()), "suggestions": suggestions}
    if suggestions:
        update["selectionBehavior"] = card.selectionBehavior or "at-most-one"
    if card.indicator != "info" and not card.overrideReasons:
        update["overrideReasons"] = OVERRIDE_REASONS
    issued = card.model_copy(update=update)
    record = IssuedCard(
        uuid=issued.uuid,
        service="",
        hook_instance="",
        kg_version=0,
        indicator=issued.indicator,
        summary=issued.summary,
        problem_type=problem_type,
        severity=severity,
        entities=tuple(entities),
        suggestions=tuple(s.uuid for s in suggestions),
        proposed=proposed,
        override_reasons=tuple((r.system, r.code) for r in issued.overrideReasons),
    )
    return issued, record


def response_json(
    cards: list[Card], answer: Answer, hook: HookInput, more: Answer | None = None
) -> bytes:
    """The response body, serialised once: cards without empty optional fields (CDS Hooks
    clients expect them absent, not null), the answer whole (``more``, a second answer whose
    cards are included too, under ``evocdss-<kind>``)."""
    trace = InputTrace(
        patient=hook.patient, query=hook.query, medications=hook.medications, problems=hook.problems
    )
    card_json = ",".join(
        c.model_dump_json(exclude_none=True, exclude=None if c.source.url else {"source": {"url"}})
        for c in cards
    )
    second = f'"evocdss-{more.kind}":{more.model_dump_json()},' if more is not None else ""
    return (
        f'{{"cards":[{card_json}],"extension":{{"evocdss":{answer.model_dump_json()},{second}'
        f'"evocdss-input":{trace.model_dump_json()}}}}}'
    ).encode()
