"""What a source loader returns: one citation, the nodes and edges citing it, and a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kg.model import Citation, Edge, Node


@dataclass
class Issue:
    """A defect found in source data: what kind, how many, and a few examples."""

    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str, keep: int = 10) -> None:
        self.count += 1
        if len(self.examples) < keep:
            self.examples.append(example)


@dataclass
class SourceBatch:
    """Everything one source contributes to the KG, written in one atomic upsert.

    Every edge cites ``citation.id`` (and possibly other citations in ``extra_citations``).
    A loader owns the nodes it creates: no two loaders write the same node id.
    """

    name: str
    citation: Citation
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    extra_citations: list[Citation] = field(default_factory=list)
    issues: dict[str, Issue] = field(default_factory=dict)

    def issue(self, kind: str, example: str) -> None:
        """Record one data defect of ``kind`` (shown in the build report, never silent)."""
        self.issues.setdefault(kind, Issue(kind)).add(example)

    def report(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "citation": self.citation.to_dict(),
            "nodes": len(self.nodes),
            "edges": len(self.edges),
            "issues": {
                k: {"count": v.count, "examples": v.examples} for k, v in self.issues.items()
            },
        }


#: A loader: reads its packaged source and returns a batch (``Settings`` gives paths).
Loader = Callable[..., SourceBatch]
