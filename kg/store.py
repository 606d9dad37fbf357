"""The ``GraphStore`` contract of every store (SQLite, Neo4j), tested by one conformance suite."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from kg.model import Change, Citation, Edge, GraphArrays, Node, Stats, WriteResult

Progress = Callable[[int], None]


@runtime_checkable
class GraphStore(Protocol):
    """A knowledge graph with provenance, statuses and a change log.

    Writes are atomic: ``upsert`` and ``set_status`` either write everything and append their
    change-log entries in the same transaction, or write nothing. The last change-log ``seq`` is
    the KG version.
    """

    url: str

    def upsert(
        self,
        *,
        citations: Iterable[Citation] = (),
        nodes: Iterable[Node] = (),
        edges: Iterable[Edge] = (),
        actor: str,
        reason: str = "",
        progress: Progress | None = None,
        retract: Iterable[str] = (),
    ) -> WriteResult:
        """Write citations, nodes and edges in one transaction; a no-op write changes nothing.

        Nodes are replaced by their new content; an existing edge merges with the new one
        (see ``kg.model.merge_edge``). Every edge must cite at least one citation that is in the
        batch or already in the store. ``progress`` is called with counts of records done.
        The edges with ids in ``retract`` (after the batch's edges are written) become
        ``retracted`` in the same transaction, logged as ``set_status`` with ``actor`` and
        ``reason`` (which must not be empty then) and counted as updated; an unknown id
        raises ``NotFound`` and nothing is written.
        """
        ...

    def get_node(self, curie: str) -> Node | None:
        """The node with this CURIE, or None."""
        ...

    def get_nodes(self, curies: Iterable[str]) -> dict[str, Node]:
        """The nodes among ``curies`` that exist, by id."""
        ...

    def search(self, text: str, *, category: str | None = None, limit: int = 20) -> list[Node]:
        """Nodes whose name or a synonym matches ``text``, ignoring case, accents, punctuation.

        Exact matches of a whole name come first, then names that start with ``text``, then
        names with a word that starts with ``text``; shorter names first within each group.
        A negative ``limit`` raises ``ValueError`` (as in ``edges`` and ``changes``).
        """
        ...

    def get_citations(self, ids: Iterable[str] | None = None) -> dict[str, Citation]:
        """Citations by id (all when ``ids`` is None)."""
        ...

    def get_edge(self, edge_id: str) -> Edge | None:
        """The edge with this id (``kg.model.edge_id``), or None (also for a malformed id)."""
        ...

    def edges(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        statuses: Sequence[str] | None = None,
        min_confidence: float = 0.0,
        limit: int | None = None,
    ) -> list[Edge]:
        """Edges matching the pattern (None matches anything), by (subject, predicate, object)."""
        ...

    def neighbors(
        self,
        nodes: Sequence[str],
        *,
        predicates: Sequence[str] | None = None,
        direction: str = "both",
        statuses: Sequence[str] | None = None,
        per_node: int = 100,
    ) -> list[Edge]:
        """Edges touching each of ``nodes`` (``out``, ``in`` or ``both``), at most ``per_node``
        per node and direction (the first by predicate, then the other end's id), so hubs cannot
        blow up a query."""
        ...

    def edges_between(
        self,
        nodes: Sequence[str],
        *,
        predicates: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[Edge]:
        """Edges whose subject and object are both among ``nodes`` (the induced subgraph)."""
        ...

    def set_status(
        self, edge_id: str, status: str, *, actor: str, reason: str, expected: str | None = None
    ) -> Edge:
        """Change an edge's status, logging actor and reason; returns the edge after. With
        ``expected``, the edge must have that status when the change is written (checked in the
        same transaction), else ``StatusConflict`` is raised and nothing changes."""
        ...

    def changes(
        self, since: int = 0, *, key: str | None = None, limit: int | None = None
    ) -> list[Change]:
        """Change-log entries with ``seq > since`` (optionally for one key), oldest first."""
        ...

    def version(self) -> int:
        """The KG version: the seq of the last change-log entry (0 for an empty KG)."""
        ...

    def stats(self) -> Stats:
        """Counts by category, predicate and status."""
        ...

    def export_arrays(
        self, *, predicates: Sequence[str] | None = None, statuses: Sequence[str] | None = None
    ) -> GraphArrays:
        """Edges as integer arrays (node index per endpoint, predicate index) for graph ML."""
        ...

    def iter_nodes(self) -> Iterable[Node]:
        """Every node, ordered by id."""
        ...

    def iter_edges(self) -> Iterable[Edge]:
        """Every edge, in an order that is the same on every call."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
