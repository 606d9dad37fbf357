"""The CDS Hooks 2.0 request and response bodies, as pydantic models (what OpenAPI shows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reasoner.answer import Answer, Card
from reasoner.inputs import Query

FHIR_ID = r"^[A-Za-z0-9\-\.]{1,64}$"


# --- requests --------------------------------------------------------------------------------


class FhirResource(BaseModel):
    """Any FHIR R4 resource (read by ``ingest.fhir``; what it cannot read is reported)."""

    model_config = ConfigDict(extra="allow")

    resourceType: str = Field(min_length=1, max_length=64)


class BundleEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    fullUrl: str | None = Field(default=None, max_length=2000)
    resource: FhirResource | None = None


class Bundle(BaseModel):
    """A FHIR R4 Bundle."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Bundle"]
    type: str | None = Field(default=None, max_length=64)
    entry: list[BundleEntry] = Field(default_factory=list, max_length=5000)


class PatientViewContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    userId: str = Field(min_length=1, max_length=200, examples=["Practitioner/123"])
    patientId: str = Field(pattern=FHIR_ID, examples=["1288992"])
    encounterId: str | None = Field(default=None, max_length=200)


class OrderSignContext(PatientViewContext):
    draftOrders: Bundle


class OrderSelectContext(OrderSignContext):
    selections: list[str] = Field(
        default_factory=list, max_length=200, examples=[["MedicationRequest/103"]]
    )


class HookRequest(BaseModel):
    """What every CDS Hooks 2.0 call sends."""

    model_config = ConfigDict(extra="allow")

    hookInstance: str = Field(min_length=1, max_length=200)
    fhirServer: str | None = Field(default=None, max_length=2000)
    fhirAuthorization: dict[str, Any] | None = None
    prefetch: dict[str, FhirResource | None] | None = Field(default=None, max_length=20)


class OrderSelectRequest(HookRequest):
    hook: Literal["order-select"]
    context: OrderSelectContext


class OrderSignRequest(HookRequest):
    hook: Literal["order-sign"]
    context: OrderSignContext


class PatientViewRequest(HookRequest):
    hook: Literal["patient-view"]
    context: PatientViewContext


# --- responses -------------------------------------------------------------------------------


class InputMedication(BaseModel):
    index: int
    origin: Literal["draft", "active"]
    resource: str


class InputProblem(BaseModel):
    kind: str
    position: str
    message: str


class InputTrace(BaseModel):
    """How the hook's FHIR input was read into the reasoner's query."""

    patient: str = Field(description="The patient's pseudonym (a salted hash of its id).")
    query: Query
    medications: list[InputMedication] = Field(default_factory=list)
    problems: list[InputProblem] = Field(default_factory=list)


class Extension(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    evocdss: Answer = Field(description="The reasoner's full answer: steps, findings, citations.")
    evocdss_input: InputTrace = Field(alias="evocdss-input")


class CdsResponse(BaseModel):
    """A CDS Hooks 2.0 response with the reasoning trace as an extension."""

    model_config = ConfigDict(populate_by_name=True)

    cards: list[Card]
    extension: Extension


class FeedbackOut(BaseModel):
    stored: int


class ErrorOut(BaseModel):
    detail: Any


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for 401, 403, 429 and ``codes``."""
    text = {
        400: "Malformed JSON.",
        401: "No valid API key.",
        403: "The key's role may not do this.",
        404: "Not found.",
        409: "The card already has another outcome.",
        412: "A prefetch the service needs is missing or failed (it does not query FHIR servers).",
        413: "Request body too large.",
        415: "Unsupported content type.",
        422: "The request does not follow the schema (the detail names the field).",
        429: "Rate limit exceeded (see Retry-After).",
        503: "The KG store is unavailable.",
    }
    return {c: {"model": ErrorOut, "description": text[c]} for c in (401, 403, 429, *codes)}


HOOK_ERRORS = error_responses(400, 412, 413, 422)
