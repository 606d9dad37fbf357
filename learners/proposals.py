"""Curating what the learners propose: list, show, accept (→ ``curated``), reject
(→ ``rejected``, which the learners read back as a negative and never propose again).

Every decision goes through ``GraphStore.set_status``, so the change log holds it with the
curator (actor) and the reason. Only a ``proposed`` edge can be accepted or rejected.
"""

from __future__ import annotations

from typing import Any

from kg.errors import StatusConflict
from kg.model import Edge
from kg.store import GraphStore
from kg.vocab import Status


class ProposalError(ValueError):
    """A curation request that cannot be done (unknown edge, not a proposal, no reason)."""


class UnknownEdge(ProposalError):
    """No edge with that id in the KG."""


class AlreadyDecided(ProposalError):
    """The edge is not (or no longer) a proposal: someone decided it already."""


def list_proposals(
    store: GraphStore,
    status: str = Status.PROPOSED,
    predicate: str | None = None,
    limit: int | None = 100,
    source: str | None = None,
) -> list[Edge]:
    """Edges with ``status`` (default: proposed), most confident first, at most ``limit``;
    with ``source``, only edges citing a citation whose id starts with it (``model:signals``
    is every version of that learner)."""
    edges = store.edges(predicate=predicate, statuses=[status])
    if source:
        edges = [e for e in edges if any(c.startswith(source) for c in e.citations)]
    edges.sort(key=lambda e: (-e.confidence, e.subject, e.predicate, e.object))
    return edges if limit is None else edges[:limit]


def show(store: GraphStore, edge_id: str) -> dict[str, Any]:
    """The edge, the names of its ends, its citations (resolved) and its change history."""
    edge = _edge(store, edge_id)
    names = store.get_nodes([edge.subject, edge.object])
    return {
        "edge": edge.to_dict(),
        "subject_name": names[edge.subject].name if edge.subject in names else None,
        "object_name": names[edge.object].name if edge.object in names else None,
        "citations": {k: v.to_dict() for k, v in store.get_citations(edge.citations).items()},
        "history": [c.to_dict() for c in store.changes(key=edge.id)],
    }


def accept(store: GraphStore, edge_id: str, actor: str, reason: str) -> Edge:
    """Accept a proposed edge: its status becomes ``curated``."""
    return _decide(store, edge_id, Status.CURATED, actor, reason)


def reject(store: GraphStore, edge_id: str, actor: str, reason: str) -> Edge:
    """Reject a proposed edge: its status becomes ``rejected``; learners read it back as a
    negative and never propose it again."""
    return _decide(store, edge_id, Status.REJECTED, actor, reason)


def _decide(store: GraphStore, edge_id: str, status: str, actor: str, reason: str) -> Edge:
    if not actor.strip():
        raise ProposalError("a curation decision needs an actor (who decides)")
    if not reason.strip():
        raise ProposalError("a curation decision needs a reason")
    edge = _edge(store, edge_id)
    if edge.status == Status.PROPOSED:
        try:  # checked again as it is written: another curator may decide in between
            return store.set_status(
                edge_id, status, actor=actor, reason=reason, expected=Status.PROPOSED
            )
        except StatusConflict:
            edge = _edge(store, edge_id)
    verb = "accept" if status == Status.CURATED else "reject"
    raise AlreadyDecided(
        f"edge {edge_id} is {edge.status}, not proposed: only proposed edges can be "
        f"{verb}ed ({edge.subject} {edge.predicate} {edge.object})"
    )


def _edge(store: GraphStore, edge_id: str) -> Edge:
    edge = store.get_edge(edge_id)
    if edge is None:
        raise UnknownEdge(f"no edge {edge_id} in the KG: see `evocdss proposals list`")
    return edge
