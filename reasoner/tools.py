"""KG tools: the questions a plan's steps ask the KG. The deterministic planner calls them
directly; ``langchain_tools`` wraps the same functions as LangChain tools for an LLM planner."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kg.model import Edge, Node
from kg.store import GraphStore
from kg.traverse import paths
from kg.vocab import (
    HAS_ADVERSE_EVENT,
    INTERACTS_WITH,
    MEMBER_OF,
    SUBCLASS_OF,
    THERAPEUTIC_CLASS,
    TRUSTED_STATUSES,
    Status,
)

#: The one severity scale of drug problems, most severe first.
SEVERITIES = ("contraindicated", "avoid", "precaution", "consider")
VISIBLE = (*sorted(TRUSTED_STATUSES), Status.PROPOSED)


def severity_rank(severity: str) -> int:
    """0 for the most severe; unknown severities rank last."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def display_name(node: Node) -> str:
    """The English name of a node where it has one, else its name."""
    english = [s.text for s in node.synonyms if s.lang == "en"]
    return english[0] if english else node.name


def memberships(store: GraphStore, node_ids: Sequence[str]) -> dict[str, list[Edge]]:
    """Tool ``class_memberships``: the classes each node is a member of (trusted edges)."""
    out: dict[str, list[Edge]] = {n: [] for n in node_ids}
    for edge in _trusted_out(store, node_ids, MEMBER_OF):
        out[edge.subject].append(edge)
    return out


def therapeutic_classes(store: GraphStore, class_ids: Sequence[str]) -> dict[str, Edge]:
    """Tool ``therapeutic_classes``: which of the classes are therapeutic classes (two members
    are duplicate therapy), each with its trusted ``subclass_of`` edge to
    ``THERAPEUTIC_CLASS``."""
    edges = _trusted_out(store, class_ids, SUBCLASS_OF)
    return {e.subject: e for e in edges if e.object == THERAPEUTIC_CLASS}


def _trusted_out(store: GraphStore, node_ids: Sequence[str], predicate: str) -> list[Edge]:
    statuses = sorted(TRUSTED_STATUSES)
    return store.neighbors(
        node_ids, predicates=[predicate], direction="out", statuses=statuses, per_node=200
    )


def interactions(store: GraphStore, entity_ids: Iterable[str]) -> dict[str, list[Edge]]:
    """Tool ``interactions``: the interaction edges among the entities (substances or classes),
    by entity, trusted or proposed (proposed ones are labelled as such by the caller)."""
    ids = list(dict.fromkeys(entity_ids))
    out: dict[str, list[Edge]] = {n: [] for n in ids}
    for edge in store.edges_between(ids, predicates=[INTERACTS_WITH], statuses=list(VISIBLE)):
        out[edge.subject].append(edge)
        if edge.object != edge.subject:
            out[edge.object].append(edge)
    return out


def adverse_events(
    store: GraphStore, drug_ids: Sequence[str], event_ids: Sequence[str]
) -> list[Edge]:
    """Tool ``adverse_events``: the ``has_adverse_event`` edges from the drugs to the events
    (conditions, phenotypes), trusted or proposed (a learner's signal a curator has not yet
    reviewed; labelled as such by the caller)."""
    drugs, events = set(drug_ids), set(event_ids)
    ids = list(dict.fromkeys([*drug_ids, *event_ids]))
    found = store.edges_between(ids, predicates=[HAS_ADVERSE_EVENT], statuses=list(VISIBLE))
    return [e for e in found if e.subject in drugs and e.object in events]


def edge_history(store: GraphStore, edge_id: str) -> list[dict[str, Any]]:
    """Tool ``edge_history``: every change of one edge."""
    return [c.to_dict() for c in store.changes(key=edge_id)]


def connecting_paths(
    store: GraphStore, source: str, target: str, max_hops: int = 3
) -> list[list[Edge]]:
    """Tool ``connecting_paths``: the shortest trusted paths between two entities."""
    return [
        list(p.edges)
        for p in paths(store, source, target, max_hops=max_hops, statuses=sorted(TRUSTED_STATUSES))
    ]


def langchain_tools(store: GraphStore) -> list[Any]:
    """The KG tools as LangChain ``StructuredTool``s over ``store`` (results as plain dicts)."""
    from langchain_core.tools import StructuredTool

    def as_dicts(groups: dict[str, list[Edge]]) -> dict[str, list[dict[str, Any]]]:
        return {k: [e.to_dict() for e in v] for k, v in groups.items()}

    def class_memberships(node_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The drug classes each KG node (CURIE) is a member of."""
        return as_dicts(memberships(store, node_ids))

    def find_interactions(entity_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Interaction edges (severity, mechanism, management) among substances or classes."""
        return as_dicts(interactions(store, entity_ids))

    def duplicate_therapy_classes(class_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Which drug classes are therapeutic classes: two members are duplicate therapy."""
        return {k: e.to_dict() for k, e in therapeutic_classes(store, class_ids).items()}

    def find_adverse_events(drug_ids: list[str], event_ids: list[str]) -> list[dict[str, Any]]:
        """Known (or proposed) adverse events of the drugs among the events (condition or
        phenotype CURIEs)."""
        return [e.to_dict() for e in adverse_events(store, drug_ids, event_ids)]

    def history(edge_id: str) -> list[dict[str, Any]]:
        """Who changed a KG edge, when and why."""
        return edge_history(store, edge_id)

    def find_paths(source: str, target: str) -> list[list[dict[str, Any]]]:
        """Shortest trusted paths between two KG nodes."""
        return [[e.to_dict() for e in p] for p in connecting_paths(store, source, target)]

    return [
        StructuredTool.from_function(class_memberships),
        StructuredTool.from_function(find_interactions),
        StructuredTool.from_function(duplicate_therapy_classes),
        StructuredTool.from_function(find_adverse_events),
        StructuredTool.from_function(history, name="edge_history"),
        StructuredTool.from_function(find_paths, name="connecting_paths"),
    ]
