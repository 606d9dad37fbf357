"""The REST API under ``/v1``: ask the reasoner, read the KG, read FHIR records.

This module does not use postponed annotations: the ask routes are made per query kind with
the kind's own body and answer models, so that OpenAPI describes each kind exactly.
"""

import json
import tempfile
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from api.cds_input import one_line
from api.cds_models import Bundle, ErrorOut, InputProblem, error_responses
from api.context import ApiContext, Ctx
from api.security import Principal, require_role
from ingest.fhir import NotFhirError, PatientRecords, iter_events, read_bundle, read_ndjson
from kg.errors import InvalidCurie
from kg.model import Citation, Edge, Node
from kg.vocab import CATEGORIES, PREDICATES, STATUSES, check_curie
from learners.state import StateBusy
from reasoner.answer import Answer
from reasoner.differential import DiagnosisAnswer, DiagnosisQuery
from reasoner.explain import ExplainAnswer, ExplainQuery
from reasoner.inputs import Query as ReasonerQuery
from reasoner.medication import MedicationAnswer
from reasoner.trials import TrialMatchAnswer, TrialMatchQuery

#: The body and answer model of each query kind, for OpenAPI; a kind the reasoner has but this
#: table lacks is served with a generic JSON body and the base ``Answer``.
ASK_MODELS: dict[str, tuple[type[BaseModel], type[Answer]]] = {
    "medication-check": (ReasonerQuery, MedicationAnswer),
    "explain": (ExplainQuery, ExplainAnswer),
    "trial-match": (TrialMatchQuery, TrialMatchAnswer),
    "diagnosis": (DiagnosisQuery, DiagnosisAnswer),
}
JSON_TYPES = ("application/json", "application/fhir+json")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/fhir+ndjson")
MAX_EVENTS = 10_000

Reader = Annotated[Principal, Depends(require_role("clinician", "curator"))]
Ingest = Annotated[Principal, Depends(require_role("ingest"))]


# --- models ----------------------------------------------------------------------------------


class SynonymOut(BaseModel):
    text: str
    lang: str


class NodeOut(BaseModel):
    id: str
    category: str
    name: str
    synonyms: list[SynonymOut] = Field(default_factory=list)
    xrefs: list[str] = Field(default_factory=list)
    properties: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, node: Node) -> "NodeOut":
        return cls(
            id=node.id,
            category=node.category,
            name=node.name,
            synonyms=[SynonymOut(text=s.text, lang=s.lang) for s in node.synonyms],
            xrefs=list(node.xrefs),
            properties=node.properties,
        )


class EdgeOut(BaseModel):
    id: str
    subject: str
    predicate: str
    object: str
    status: str
    confidence: float
    citations: list[str]
    qualifiers: dict[str, Any] = Field(default_factory=dict)
    created: float | None = None
    updated: float | None = None

    @classmethod
    def of(cls, edge: Edge) -> "EdgeOut":
        return cls.model_validate(edge.to_dict())


class CitationOut(BaseModel):
    id: str
    kind: str
    title: str
    version: str = ""
    date: str = ""
    url: str = ""
    license: str = ""
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, citation: Citation) -> "CitationOut":
        return cls.model_validate(citation.to_dict())


class NodeDetail(BaseModel):
    node: NodeOut
    outgoing: list[EdgeOut]
    incoming: list[EdgeOut]
    citations: dict[str, CitationOut]
    kg_version: int


class SearchOut(BaseModel):
    results: list[NodeOut]
    kg_version: int


class EdgesOut(BaseModel):
    edges: list[EdgeOut]
    citations: dict[str, CitationOut]
    kg_version: int


class PatientSummary(BaseModel):
    patient_id: str = Field(description="Pseudonym: a salted hash of the Patient id.")
    age: int | None
    sex: str
    deceased: bool
    no_known_allergies: bool
    items: dict[str, int] = Field(description="Items by kind.")
    links: dict[str, int] = Field(description="Coded items by KG link status.")
    linked_nodes: int
    problems: list[InputProblem]


class EventOut(BaseModel):
    time: datetime
    patient_id: str
    kind: str
    codes: list[str]
    text: str
    status: str
    link_status: str
    node_id: str | None


class LearnOut(BaseModel):
    events_learned: int
    events_skipped: int = Field(
        description="Events at or before the learners' position in the record stream: learned "
        "already (the same records sent again) or too late to learn in time order."
    )
    patients: int = Field(description="Patients whose events were learned.")
    learners: dict[str, str] = Field(description="Learner name: name@version.")
    proposals: dict[str, dict[str, Any]] = Field(
        description="Per learner, what it wrote into the KG: edges proposed, updated and "
        "retracted, and the model citation they carry (empty when nothing was learned)."
    )
    position: dict[str, Any] = Field(description="The learners' position after this request.")


class IngestOut(BaseModel):
    patients: list[PatientSummary]
    items: dict[str, int]
    links: dict[str, int]
    problems: list[InputProblem] = Field(description="Problems that belong to no patient.")
    events_total: int
    events: list[EventOut] = Field(
        default_factory=list, description=f"With ?events=true: the first {MAX_EVENTS} events."
    )
    learned: LearnOut = Field(
        description="What the online learners (the same as `evocdss learn`) did with the events."
    )
    kg_version: int


class Health(BaseModel):
    status: str
    kg_version: int


# --- routes ----------------------------------------------------------------------------------


def router(kinds: list[str]) -> APIRouter:
    """The /v1 routes, with an ask route for each of the reasoner's ``kinds``."""
    api = APIRouter(prefix="/v1")
    for kind in kinds:
        _add_ask_route(api, kind, *ASK_MODELS.get(kind, (dict[str, Any], Answer)))

    @api.post("/ask/{kind}", include_in_schema=False)
    def unknown_kind(kind: str, _: Reader) -> None:
        raise HTTPException(404, f"unknown kind {kind!r}: use one of {', '.join(kinds)}")

    @api.get(
        "/kg/nodes/{curie:path}",
        response_model=NodeDetail,
        tags=["KG"],
        responses=error_responses(404, 422, 503),
    )
    def kg_node(
        curie: str,
        ctx: Ctx,
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=500, description="Edges per direction.")] = 25,
    ) -> NodeDetail:
        """A node with its names, cross-references and edges (statuses, citations)."""
        _curie(curie, "curie")
        version = ctx.store.version()
        node = ctx.store.get_node(curie)
        if node is None:
            raise HTTPException(404, f"no node {curie} in the KG (version {version})")
        outgoing = ctx.store.neighbors([curie], direction="out", per_node=limit)
        incoming = ctx.store.neighbors([curie], direction="in", per_node=limit)
        return NodeDetail(
            node=NodeOut.of(node),
            outgoing=[EdgeOut.of(e) for e in outgoing],
            incoming=[EdgeOut.of(e) for e in incoming],
            citations=_citations(ctx, [*outgoing, *incoming]),
            kg_version=version,
        )

    @api.get(
        "/kg/search", response_model=SearchOut, tags=["KG"], responses=error_responses(422, 503)
    )
    def kg_search(
        ctx: Ctx,
        _: Reader,
        q: Annotated[str, Query(min_length=1, max_length=200, description="A name.")],
        category: Annotated[
            str | None, Query(max_length=100, description="A Biolink category.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> SearchOut:
        """Nodes by name or synonym (case, accents and punctuation ignored)."""
        if category is not None and category not in CATEGORIES:
            raise HTTPException(
                422, f"category: unknown {category!r}; use one of {', '.join(sorted(CATEGORIES))}"
            )
        version = ctx.store.version()
        nodes = ctx.store.search(q, category=category, limit=limit)
        return SearchOut(results=[NodeOut.of(n) for n in nodes], kg_version=version)

    @api.get("/kg/edges", response_model=EdgesOut, tags=["KG"], responses=error_responses(422, 503))
    def kg_edges(
        ctx: Ctx,
        _: Reader,
        subject: Annotated[str | None, Query(max_length=200)] = None,
        predicate: Annotated[str | None, Query(max_length=100)] = None,
        object: Annotated[str | None, Query(max_length=200)] = None,
        status: Annotated[list[str] | None, Query(max_length=6)] = None,
        min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> EdgesOut:
        """Edges matching a pattern: give a subject, an object, or both (and optionally a
        predicate, statuses and a minimum confidence)."""
        if subject is None and object is None:
            raise HTTPException(422, "subject or object: give at least one of them")
        for name, value in (("subject", subject), ("object", object)):
            if value is not None:
                _curie(value, name)
        if predicate is not None and predicate not in PREDICATES:
            raise HTTPException(422, f"predicate: unknown {predicate!r}")
        for s in status or []:
            if s not in STATUSES:
                raise HTTPException(
                    422, f"status: unknown {s!r}; use {', '.join(sorted(STATUSES))}"
                )
        version = ctx.store.version()
        edges = ctx.store.edges(
            subject,
            predicate,
            object,
            statuses=status,
            min_confidence=min_confidence,
            limit=limit,
        )
        return EdgesOut(
            edges=[EdgeOut.of(e) for e in edges],
            citations=_citations(ctx, edges),
            kg_version=version,
        )

    @api.post(
        "/ingest/fhir",
        response_model=IngestOut,
        tags=["Records"],
        responses={
            **error_responses(400, 413, 415, 422),
            409: {"model": ErrorOut, "description": "The learner state cannot take records."},
            503: {
                "model": ErrorOut,
                "description": "Another process is learning (see Retry-After).",
            },
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/fhir+json": {
                        "schema": {"$ref": "#/components/schemas/Bundle"},
                    },
                    "application/x-ndjson": {
                        "schema": {"type": "string", "description": "One resource per line."}
                    },
                },
            }
        },
    )
    async def ingest_fhir(
        request: Request,
        ctx: Ctx,
        _: Ingest,
        events: Annotated[bool, Query(description="List the events too.")] = False,
    ) -> IngestOut:
        """Read a FHIR R4 Bundle (JSON) or bulk NDJSON into pseudonymous patient records, feed
        their events to the online learners (as `evocdss learn` does: events learned already
        are skipped, signals over threshold become proposed KG edges, the learner state is
        saved), and report what was read, how codes link to the KG, every problem, and what
        the learners did. The records themselves are not stored."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in (*JSON_TYPES, *NDJSON_TYPES):
            raise HTTPException(
                415, f"content type {media or 'none'!r}: send {JSON_TYPES[1]} or {NDJSON_TYPES[0]}"
            )
        body = await request.body()
        records = await run_in_threadpool(_read_records, ctx, body, media in NDJSON_TYPES)
        request.state.patients = len(records.patients)
        return await run_in_threadpool(_ingest_out, ctx, records, events)

    return api


def _add_ask_route(api: APIRouter, kind: str, body_model: Any, answer_model: type[Answer]) -> None:
    def ask(body: body_model, request: Request, ctx: Ctx, _: Reader) -> Response:  # type: ignore[valid-type]
        payload = body.model_dump() if isinstance(body, BaseModel) else body
        try:
            with ctx.reasoner.store.pinned():
                answer = ctx.reasoner.ask(kind, payload)
        except ValidationError as exc:
            raise HTTPException(422, one_line(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        request.state.kg_version = answer.kg_version
        return Response(answer.model_dump_json(), media_type="application/json")

    ask.__doc__ = f"Ask the reasoner a {kind} query; the answer cites every claim."
    api.add_api_route(
        f"/ask/{kind}",
        ask,
        methods=["POST"],
        response_model=answer_model,
        tags=["Reasoner"],
        name=f"ask_{kind.replace('-', '_')}",
        responses=error_responses(400, 413, 422, 503),
    )


def health(ctx: ApiContext) -> Health:
    """``/healthz``: the KG store answers, and its version."""
    try:
        return Health(status="ok", kg_version=ctx.store.version())
    except Exception as exc:  # the store is down: say so without details
        raise HTTPException(503, "KG store unavailable") from exc


def _curie(value: str, name: str) -> None:
    try:
        check_curie(value)
    except InvalidCurie as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


def _citations(ctx: ApiContext, edges: list[Edge]) -> dict[str, CitationOut]:
    ids = {c for e in edges for c in e.citations}
    return {k: CitationOut.of(v) for k, v in ctx.store.get_citations(ids).items()} if ids else {}


def _read_records(ctx: ApiContext, body: bytes, ndjson: bool) -> PatientRecords:
    linker = ctx.code_linker()
    if ndjson:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "body.ndjson"
            path.write_bytes(body)
            try:
                records = read_ndjson(path, linker=linker, salt=ctx.salt)
            except NotFhirError as exc:
                raise HTTPException(422, str(exc).replace(str(path), "body")) from None
        return _renamed(records, str(path), "body")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too deep, too long a number
        raise HTTPException(400, f"malformed JSON body: {exc}") from None
    try:
        Bundle.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, f"not a FHIR Bundle: {one_line(exc)}") from None
    try:
        return read_bundle(data, linker=linker, salt=ctx.salt)
    except NotFhirError as exc:
        raise HTTPException(422, str(exc)) from None


def _renamed(records: PatientRecords, old: str, new: str) -> PatientRecords:
    """Positions that name the temporary file name the request body instead."""

    def fix(p: Any) -> Any:
        return replace(p, position=p.position.replace(old, new))

    for patient in records.patients:
        patient.problems = [fix(p) for p in patient.problems]
    return PatientRecords(records.patients, [fix(p) for p in records.problems])


def _ingest_out(ctx: ApiContext, records: PatientRecords, with_events: bool) -> IngestOut:
    items: Counter[str] = Counter()
    links: Counter[str] = Counter()
    summaries = []
    for p in records.patients:
        kinds = {
            "conditions": len(p.conditions),
            "medications": len(p.medications),
            "allergies": len(p.allergies),
            "observations": len(p.observations),
            "phenotypes": len(p.phenotypes),
        }
        status = Counter(i.link_status for i in p.items())
        items.update(kinds)
        links.update(status)
        summaries.append(
            PatientSummary(
                patient_id=p.patient_id,
                age=p.age,
                sex=p.sex,
                deceased=p.deceased,
                no_known_allergies=p.no_known_allergies,
                items=kinds,
                links=dict(status),
                linked_nodes=len(p.linked_nodes()),
                problems=[_problem(x) for x in p.problems],
            )
        )
    all_events = list(iter_events(records.patients))
    try:
        learned = ctx.learners.learn(all_events, ctx.store, ctx.salt)
    except ValueError as exc:
        raise HTTPException(409, f"the learners cannot take these records: {exc}") from None
    except StateBusy as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "10"}) from None
    shown = all_events[:MAX_EVENTS] if with_events else []
    return IngestOut(
        patients=summaries,
        items=dict(items),
        links=dict(links),
        problems=[_problem(x) for x in records.problems],
        events_total=len(all_events),
        events=[
            EventOut(
                time=e.time,
                patient_id=e.patient_id,
                kind=e.kind,
                codes=[f"{c.system}|{c.code}" for c in e.item.codes],
                text=e.item.text,
                status=e.item.status,
                link_status=e.item.link_status,
                node_id=e.item.node_id,
            )
            for e in shown
        ],
        learned=LearnOut(
            events_learned=learned.events_learned,
            events_skipped=learned.events_skipped,
            patients=learned.patients,
            learners=learned.learners,
            proposals=learned.flushed,
            position=learned.position,
        ),
        kg_version=ctx.store.version(),
    )


def _problem(p: Any) -> InputProblem:
    return InputProblem(kind=p.kind, position=p.position, message=p.message)
