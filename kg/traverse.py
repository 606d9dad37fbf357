"""Bounded graph walks built on ``GraphStore.neighbors``: the same in every store."""

from __future__ import annotations

from collections.abc import Sequence

from kg.model import Edge, Path
from kg.store import GraphStore


def neighbourhood(
    store: GraphStore,
    node: str,
    *,
    hops: int = 2,
    predicates: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    per_node: int = 50,
) -> list[Edge]:
    """Edges within ``hops`` of ``node``; each node contributes at most ``per_node`` edges per
    direction, so the work is bounded by ``per_node ** hops`` however large the hubs are."""
    seen_nodes = {node}
    frontier = [node]
    found: dict[str, Edge] = {}
    for _ in range(hops):
        if not frontier:
            break
        edges = store.neighbors(
            frontier, predicates=predicates, statuses=statuses, per_node=per_node
        )
        nxt: list[str] = []
        for edge in edges:
            found.setdefault(edge.id, edge)
            for end in (edge.subject, edge.object):
                if end not in seen_nodes:
                    seen_nodes.add(end)
                    nxt.append(end)
        frontier = nxt
    return list(found.values())


def paths(
    store: GraphStore,
    source: str,
    target: str,
    *,
    max_hops: int = 3,
    predicates: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    per_node: int = 50,
    limit: int = 10,
) -> list[Path]:
    """Shortest paths (edges taken in either direction) from ``source`` to ``target``.

    Breadth-first over the degree-capped graph, ``max_hops`` at most; returns up to ``limit``
    paths of the shortest length found.
    """
    parents: dict[str, list[tuple[str, Edge]]] = {source: []}
    frontier = [source]
    for _ in range(max_hops):
        if target in parents or not frontier:
            break
        layer: dict[str, list[tuple[str, Edge]]] = {}
        in_frontier = set(frontier)
        for edge in store.neighbors(
            frontier, predicates=predicates, statuses=statuses, per_node=per_node
        ):
            for here, there in ((edge.subject, edge.object), (edge.object, edge.subject)):
                if here in in_frontier and there not in parents:
                    layer.setdefault(there, []).append((here, edge))
        parents.update(layer)
        frontier = list(layer)
    if target not in parents or source == target:
        return []
    return _unwind(parents, source, target, limit)


def _unwind(
    parents: dict[str, list[tuple[str, Edge]]], source: str, target: str, limit: int
) -> list[Path]:
    out: list[Path] = []
    stack: list[tuple[str, tuple[str, ...], tuple[Edge, ...]]] = [(target, (target,), ())]
    while stack and len(out) < limit:
        node, nodes, edges = stack.pop()
        if node == source:
            out.append(Path(nodes[::-1], edges[::-1]))
            continue
        for parent, edge in parents[node]:
            stack.append((parent, (*nodes, parent), (*edges, edge)))
    return out
