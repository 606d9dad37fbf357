"""CDS Hooks 2.0 services: discovery, ``order-select``, ``order-sign``, ``patient-view`` and
feedback.

A hook call's FHIR resources are read into a reasoner query (``api.cds_input``); the answer
becomes cards (``api.cds_cards``), each with a ``uuid`` that feedback refers to, and the
response carries, in ``extension``, the whole reasoning trace (``evocdss``: the reasoner's
answer) and how the input was read (``evocdss-input``). Bodies: ``api.cds_models``.

This service never queries a FHIR server itself: a prefetch key it needs that the client did
not fill is answered with 412, as the specification says.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, ValidationError

from api.cds_cards import answer_cards, medication_cards, response_json
from api.cds_input import HookInput, one_line, read_hook, usable_prefetch
from api.cds_models import (
    HOOK_ERRORS,
    CdsResponse,
    FeedbackOut,
    HookRequest,
    OrderSelectRequest,
    OrderSignRequest,
    PatientViewRequest,
    error_responses,
)
from api.context import ApiContext, Ctx
from api.feedback import FeedbackConflict, FeedbackRequest, IssuedCard, UnknownCard
from api.security import Principal, require_role
from reasoner.answer import Answer, Card

TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "medications": "MedicationRequest?patient={{context.patientId}}&status=active",
    "conditions": "Condition?patient={{context.patientId}}",
    "allergies": "AllergyIntolerance?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&_sort=-date&_count=200",
}

# --- discovery ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    hook: str
    title: str
    description: str
    required: tuple[str, ...]
    prefetch: dict[str, str] = field(default_factory=lambda: dict(TEMPLATES))


SERVICES = {
    "order-select": Service(
        "order-select",
        "evocdss medication safety (order select)",
        "Interactions, duplicate therapy and allergy conflicts of the selected draft "
        "medication orders with the other drafts and the patient's active medications, and "
        "known adverse events of them among the patient's conditions and abnormal labs.",
        ("medications", "allergies"),
    ),
    "order-sign": Service(
        "order-sign",
        "evocdss medication safety (order sign)",
        "Interactions, duplicate therapy and allergy conflicts of every draft medication "
        "order with the others and with the patient's active medications, and known adverse "
        "events of them among the patient's conditions and abnormal labs.",
        ("medications", "allergies"),
    ),
    "patient-view": Service(
        "patient-view",
        "evocdss patient summary",
        "Diagnosis suggestions and next questions from the patient's HPO-coded findings where "
        "the diagnosis reasoner is available, else problems of the active medications.",
        ("conditions", "medications"),
    ),
}


class ServiceOut(BaseModel):
    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str]
    usageRequirements: str


class Discovery(BaseModel):
    services: list[ServiceOut]


def discovery() -> Discovery:
    return Discovery(
        services=[
            ServiceOut(
                hook=s.hook,
                id=sid,
                title=s.title,
                description=s.description,
                prefetch=s.prefetch,
                usageRequirements=(
                    f"Prefetch {', '.join(s.required)} (required: this service does not query "
                    "the FHIR server). Authorization: Bearer <API key>."
                ),
            )
            for sid, s in SERVICES.items()
        ]
    )


def check_prefetch(service: str, request: HookRequest) -> None:
    """412 when a prefetch key the service needs is missing, null or failed."""
    prefetch = usable_prefetch(request)
    missing = [k for k in SERVICES[service].required if k not in prefetch]
    if missing:
        raise HTTPException(
            412,
            f"prefetch {', '.join(missing)} missing or failed ("
            + "; ".join(f"{k}: {TEMPLATES[k]}" for k in missing)
            + "); this service does not query FHIR servers",
        )


# --- routes ----------------------------------------------------------------------------------


def _respond(
    ctx: ApiContext,
    request: Request,
    service: str,
    hook: HookInput,
    answer: Answer,
    cards: list[tuple[Card, IssuedCard]],
    hook_instance: str,
    more: Answer | None = None,
) -> Response:
    ctx.feedback.record_cards(
        replace(r, service=service, hook_instance=hook_instance, kg_version=answer.kg_version)
        for _, r in cards
    )
    for card, _ in cards:
        ctx.metrics.cards.labels(service, card.indicator).inc()
    request.state.kg_version = answer.kg_version
    body = response_json([c for c, _ in cards], answer, hook, more)
    return Response(body, media_type="application/json")


def _prioritised(
    ctx: ApiContext, service: str, answer: Answer, cards: list[tuple[Card, IssuedCard]]
) -> tuple[Answer, list[tuple[Card, IssuedCard]]]:
    """Medication cards ordered and tiered by the alert feedback model (``api.alerts``); the
    answer then names the model too."""
    cards, model = ctx.alerts.prioritise(cards, service)
    if model is not None:
        answer = answer.model_copy(update={"models": [*answer.models, model]})
    return answer, cards


def _ask(ctx: ApiContext, kind: str, payload: dict[str, Any]) -> Answer:
    try:
        return ctx.reasoner.ask(kind, payload)
    except ValidationError as exc:
        raise HTTPException(422, f"the hook's data cannot be checked: {one_line(exc)}") from None
    except ValueError as exc:
        raise HTTPException(422, f"the hook's data cannot be checked: {exc}") from None


def _medication_hook(
    ctx: ApiContext, request: Request, service: str, body: OrderSignRequest | OrderSelectRequest
) -> Response:
    request.state.patient = ctx.patient_pseudonym(body.context.patientId)
    selections = getattr(body.context, "selections", None)
    context = body.context
    check_prefetch(service, body)
    with ctx.reasoner.store.pinned():
        hook = read_hook(ctx, context.patientId, body, context.draftOrders, selections)
        answer = _ask(ctx, "medication-check", hook.query.model_dump(exclude_none=True))
    answer, cards = _prioritised(
        ctx, service, answer, medication_cards(answer, hook, focus_only=True)
    )
    return _respond(ctx, request, service, hook, answer, cards, body.hookInstance)


Clinician = Annotated[Principal, Depends(require_role("clinician"))]


def router() -> APIRouter:
    """The CDS Hooks routes."""
    api = APIRouter(tags=["CDS Hooks"])

    @api.get("/cds-services", response_model=Discovery, responses=error_responses())
    def cds_discovery(_: Clinician) -> Discovery:
        """CDS Hooks discovery: the services and the prefetch each needs."""
        return discovery()

    # The medication hooks run on the event loop, not in the thread pool: a medication check
    # is a few milliseconds of CPU, and in one worker process the GIL serialises threads anyway;
    # measured with bench/http_load.py, inline calls cost ~20% less CPU per request and have a
    # shorter latency tail. Slower work (patient-view, which may run the diagnosis reasoner;
    # /v1/ask; FHIR ingest) stays in the thread pool so that it does not hold the loop.

    @api.post("/cds-services/order-select", response_model=CdsResponse, responses=HOOK_ERRORS)
    async def order_select(
        body: OrderSelectRequest, request: Request, ctx: Ctx, _: Clinician
    ) -> Response:
        """Medication safety of the selected draft orders (``context.selections``) with the other
        drafts and the active medications."""
        return _medication_hook(ctx, request, "order-select", body)

    @api.post("/cds-services/order-sign", response_model=CdsResponse, responses=HOOK_ERRORS)
    async def order_sign(
        body: OrderSignRequest, request: Request, ctx: Ctx, _: Clinician
    ) -> Response:
        """Medication safety of every draft order before signing."""
        return _medication_hook(ctx, request, "order-sign", body)

    @api.post("/cds-services/patient-view", response_model=CdsResponse, responses=HOOK_ERRORS)
    def patient_view(
        body: PatientViewRequest, request: Request, ctx: Ctx, _: Clinician
    ) -> Response:
        """Problems of the active medications and, where HPO-coded findings are known,
        diagnosis suggestions and the next questions to ask (the diagnosis answer is the
        ``evocdss`` extension then, the medication check ``evocdss-medication-check``)."""
        request.state.patient = ctx.patient_pseudonym(body.context.patientId)
        check_prefetch("patient-view", body)
        hook = read_hook(ctx, body.context.patientId, body)
        hook.focus = set(range(len(hook.query.patient.medications)))
        patient = hook.query.patient
        answer = _ask(ctx, "medication-check", hook.query.model_dump(exclude_none=True))
        answer, cards = _prioritised(
            ctx, "patient-view", answer, medication_cards(answer, hook, focus_only=False)
        )
        medication = None
        if patient.phenotypes:
            findings = patient.model_dump(
                include={"phenotypes", "excluded_phenotypes", "age", "sex"}, exclude_none=True
            )
            medication = answer
            answer = _ask(ctx, "diagnosis", {"id": hook.query.id, "patient": findings})
            cards = cards + answer_cards(answer, "diagnosis")
        return _respond(
            ctx, request, "patient-view", hook, answer, cards, body.hookInstance, medication
        )

    @api.post(
        "/cds-services/{service_id}/feedback",
        response_model=FeedbackOut,
        responses=error_responses(400, 404, 409, 413, 422),
    )
    def feedback(
        body: FeedbackRequest,
        ctx: Ctx,
        caller: Clinician,
        service_id: Annotated[str, Path(max_length=64)],
    ) -> FeedbackOut:
        """Whether clinicians accepted or overrode cards (with the override reason); the alert
        feedback model learns from it at once. A card takes one outcome: resending it stores
        nothing (``stored`` counts the new ones), another outcome is a 409."""
        if service_id not in SERVICES:
            raise HTTPException(404, f"no CDS service {service_id!r}")
        try:
            stored = ctx.feedback.record_feedback(service_id, body, caller.key_id)
        except UnknownCard as exc:
            raise HTTPException(404, str(exc)) from None
        except FeedbackConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        for item in body.feedback:
            ctx.metrics.feedback.labels(service_id, item.outcome).inc()
        ctx.alerts.catch_up(ctx.feedback)
        return FeedbackOut(stored=stored)

    @api.post("/cds-services/{service_id}", include_in_schema=False)
    def unknown_service(service_id: str, _: Clinician) -> None:
        raise HTTPException(404, f"no CDS service {service_id!r}: see GET /cds-services")

    return api
