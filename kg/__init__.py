"""The knowledge graph: model, ``GraphStore`` contract and its two stores."""

from __future__ import annotations

from kg.errors import KGError, StoreUnavailable
from kg.model import Change, Citation, Edge, GraphArrays, Node, Stats, Synonym, WriteResult, edge_id
from kg.store import GraphStore
from kg.vocab import Status


def open_store(url: str, *, create: bool = True) -> GraphStore:
    """Open the store at ``url``: ``sqlite:///path/kg.sqlite`` or ``neo4j://host:port``.

    ``create=False`` refuses to create a missing SQLite file (for read-only commands).
    """
    if url.startswith("sqlite:///"):
        from kg.sqlite_store import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), create=create)
    if url.startswith(("neo4j://", "bolt://", "neo4j+s://", "bolt+s://")):
        from kg.neo4j_store import Neo4jStore

        return Neo4jStore(url)
    raise StoreUnavailable(
        f"unsupported store URL {url!r}: use sqlite:///path/kg.sqlite or neo4j://host:7687"
    )


__all__ = [
    "Change",
    "Citation",
    "Edge",
    "GraphArrays",
    "GraphStore",
    "KGError",
    "Node",
    "Stats",
    "Status",
    "StoreUnavailable",
    "Synonym",
    "WriteResult",
    "edge_id",
    "open_store",
]
