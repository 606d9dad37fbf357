"""A read-through cache in front of a ``GraphStore``, valid for one KG version.

The reasoner asks the same questions of the KG again and again (the nodes of common drugs, their
classes, the interactions of a class); the answers change only when the KG version does. Every
cached read first asks the store for its version (one indexed look-up) and drops the cache when
it moved, so answers are exactly those of the store. Within ``pinned()`` (one request) the
version is read once, which saves the look-ups and gives the answer one version to state; the
store itself is live, so a KG write landing during that request can still be read by it. Writes
and everything else go straight to the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from kg.model import Citation, Edge, Node
from kg.store import GraphStore

MAX_ENTRIES = 200_000
_PINNED: ContextVar[int | None] = ContextVar("evocdss_pinned_kg_version", default=None)


class CachedStore:
    """A ``GraphStore`` whose point reads, neighbourhoods and induced subgraphs are cached per
    KG version (node by node, so that any combination of cached nodes is served)."""

    def __init__(self, store: GraphStore, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.url = store.url
        self.max_entries = max_entries
        self._version = -1
        self._nodes: dict[str, Node | None] = {}
        self._citations: dict[str, Citation | None] = {}
        self._edges: dict[tuple, list[Edge]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @contextmanager
    def pinned(self) -> Iterator[int]:
        """Read the KG version once; until the block ends (in this thread or task) every
        cached read uses it."""
        token = _PINNED.set(None)
        try:
            version = self.version()
            _PINNED.set(version)
            yield version
        finally:
            _PINNED.reset(token)

    def version(self) -> int:
        pinned = _PINNED.get()
        if pinned is not None:
            return pinned
        version = self.store.version()
        if version != self._version or self._size() > self.max_entries:
            with self._lock:
                self._nodes.clear()
                self._citations.clear()
                self._edges.clear()
                self._version = version
        return version

    def _size(self) -> int:
        return len(self._nodes) + len(self._citations) + len(self._edges)

    def _keep(self, version: int, cache: dict, entries: dict) -> None:
        """Cache ``entries`` read at ``version``, unless the KG has moved on meanwhile."""
        with self._lock:
            if self._version == version:
                cache.update(entries)

    def get_node(self, curie: str) -> Node | None:
        return self.get_nodes([curie]).get(curie)

    def get_nodes(self, curies: Iterable[str]) -> dict[str, Node]:
        version = self.version()
        ids = list(dict.fromkeys(curies))
        cached = {i: self._nodes[i] for i in ids if i in self._nodes}
        missing = [i for i in ids if i not in cached]
        if missing:
            found = self.store.get_nodes(missing)
            fresh = {i: found.get(i) for i in missing}
            self._keep(version, self._nodes, fresh)
            cached.update(fresh)
        return {i: node for i in ids if (node := cached[i]) is not None}

    def get_citations(self, ids: Iterable[str] | None = None) -> dict[str, Citation]:
        if ids is None:
            return self.store.get_citations(None)
        version = self.version()
        wanted = list(dict.fromkeys(ids))
        cached = {i: self._citations[i] for i in wanted if i in self._citations}
        missing = [i for i in wanted if i not in cached]
        if missing:
            found = self.store.get_citations(missing)
            fresh = {i: found.get(i) for i in missing}
            self._keep(version, self._citations, fresh)
            cached.update(fresh)
        return {i: c for i in wanted if (c := cached[i]) is not None}

    def neighbors(
        self,
        nodes: Sequence[str],
        *,
        predicates: Sequence[str] | None = None,
        direction: str = "both",
        statuses: Sequence[str] | None = None,
        per_node: int = 100,
    ) -> list[Edge]:
        version = self.version()
        shape = ("nb", _key(predicates), direction, _key(statuses), per_node)
        seen: dict[str, Edge] = {}
        for node in dict.fromkeys(nodes):
            key = (node, *shape)
            edges = self._edges.get(key)
            if edges is None:
                edges = self.store.neighbors(
                    [node],
                    predicates=predicates,
                    direction=direction,
                    statuses=statuses,
                    per_node=per_node,
                )
                self._keep(version, self._edges, {key: edges})
            for edge in edges:
                seen.setdefault(edge.id, edge)
        return list(seen.values())

    def edges_between(
        self,
        nodes: Sequence[str],
        *,
        predicates: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[Edge]:
        if predicates is None:  # a node's out-edges of every predicate can be many: no cache
            return self.store.edges_between(nodes, statuses=statuses)
        version = self.version()
        ids = list(dict.fromkeys(nodes))
        members = set(ids)
        shape = ("out", _key(predicates), _key(statuses))
        found = []
        for node in ids:
            key = (node, *shape)
            edges = self._edges.get(key)
            if edges is None:
                edges = [
                    e for p in predicates for e in self.store.edges(node, p, statuses=statuses)
                ]
                self._keep(version, self._edges, {key: edges})
            found.extend(e for e in edges if e.object in members)
        found.sort(key=lambda e: e.key)
        return found


def _key(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)
