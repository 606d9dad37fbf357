"""Reviewing what the learners propose, under ``/v1/proposals`` (role curator): list, show,
accept (the edge becomes ``curated``) and reject (``rejected``), as ``evocdss proposals ...``
does. The KG change log records each decision with the caller's key id and the reason."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from api.cds_models import ErrorOut, error_responses
from api.context import ApiContext, Ctx
from api.ontology_models import ReasonIn
from api.rest import CitationOut, EdgeOut
from api.security import Principal, require_role
from kg.model import EDGE_ID, Edge
from kg.vocab import PREDICATES, STATUSES, Status
from learners.proposals import (
    AlreadyDecided,
    ProposalError,
    UnknownEdge,
    accept,
    list_proposals,
    reject,
    show,
)

Curator = Annotated[Principal, Depends(require_role("curator"))]
EdgeId = Annotated[str, Path(pattern=f"^{EDGE_ID.pattern}$", description="An edge id.")]
DECIDED = {409: {"model": ErrorOut, "description": "The edge is not a proposal (any more)."}}


class ProposalsOut(BaseModel):
    proposals: list[EdgeOut]
    names: dict[str, str]
    kg_version: int


class ChangeOut(BaseModel):
    seq: int
    time: float
    actor: str
    action: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str


class ProposalOut(BaseModel):
    edge: EdgeOut
    subject_name: str | None
    object_name: str | None
    citations: dict[str, CitationOut]
    history: list[ChangeOut]


class DecisionOut(BaseModel):
    edge: EdgeOut
    kg_version: int


def router() -> APIRouter:
    """The /v1/proposals routes."""
    api = APIRouter(prefix="/v1/proposals", tags=["Proposals"])

    @api.get("", response_model=ProposalsOut, responses=error_responses(422, 503))
    def proposals(
        ctx: Ctx,
        _: Curator,
        status: Annotated[str, Query(description="proposed, curated, rejected ...")] = (
            Status.PROPOSED
        ),
        predicate: Annotated[str | None, Query(max_length=100)] = None,
        source: Annotated[
            str | None,
            Query(max_length=200, description="Citation id prefix, e.g. model:signals."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> ProposalsOut:
        """Edges with a status (default: proposed), most confident first; optionally of one
        predicate, or citing one source (a learner's model citations)."""
        if status not in STATUSES:
            raise HTTPException(
                422, f"status: unknown {status!r}; use {', '.join(sorted(STATUSES))}"
            )
        if predicate is not None and predicate not in PREDICATES:
            raise HTTPException(422, f"predicate: unknown {predicate!r}")
        version = ctx.store.version()
        edges = list_proposals(ctx.store, status, predicate, limit, source=source)
        nodes = ctx.store.get_nodes({x for e in edges for x in (e.subject, e.object)})
        return ProposalsOut(
            proposals=[EdgeOut.of(e) for e in edges],
            names={k: n.name for k, n in nodes.items()},
            kg_version=version,
        )

    @api.get("/{edge_id}", response_model=ProposalOut, responses=error_responses(404, 422))
    def proposal(edge_id: EdgeId, ctx: Ctx, _: Curator) -> dict[str, Any]:
        """An edge with the names of its ends, its citations resolved and its history."""
        return _do(show, ctx.store, edge_id)

    @api.post(
        "/{edge_id}/accept",
        response_model=DecisionOut,
        responses={**error_responses(400, 404, 422), **DECIDED},
    )
    def accept_proposal(edge_id: EdgeId, body: ReasonIn, ctx: Ctx, who: Curator) -> DecisionOut:
        """Accept a proposed edge: it becomes curated (decided by the caller's key id)."""
        edge = _do(accept, ctx.store, edge_id, who.key_id, body.reason)
        return _decision(ctx, edge)

    @api.post(
        "/{edge_id}/reject",
        response_model=DecisionOut,
        responses={**error_responses(400, 404, 422), **DECIDED},
    )
    def reject_proposal(edge_id: EdgeId, body: ReasonIn, ctx: Ctx, who: Curator) -> DecisionOut:
        """Reject a proposed edge: the learners will not propose it again."""
        edge = _do(reject, ctx.store, edge_id, who.key_id, body.reason)
        return _decision(ctx, edge)

    return api


def _do(action: Any, *args: Any) -> Any:
    """Run a ``learners.proposals`` action: unknown edge 404, decided already 409."""
    try:
        return action(*args)
    except UnknownEdge as exc:
        raise HTTPException(404, str(exc)) from None
    except AlreadyDecided as exc:
        raise HTTPException(409, str(exc)) from None
    except ProposalError as exc:
        raise HTTPException(422, str(exc)) from None


def _decision(ctx: ApiContext, edge: Edge) -> DecisionOut:
    return DecisionOut(edge=EdgeOut.of(edge), kg_version=ctx.store.version())
