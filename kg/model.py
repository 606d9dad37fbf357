"""The KG's records: citations, nodes, edges, change-log entries and write results."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kg.errors import InvalidStatus, MissingCitation
from kg.vocab import (
    STATUSES,
    STICKY_STATUSES,
    Status,
    check_category,
    check_curie,
    check_predicate,
)


@dataclass(frozen=True, slots=True)
class Citation:
    """Where a statement comes from: a database release, guideline, article, model or person.

    ``kind`` is one of ``database``, ``guideline``, ``article``, ``model``, ``curator``,
    ``record-window`` or ``ontology``.
    """

    id: str
    kind: str
    title: str
    version: str = ""
    date: str = ""
    url: str = ""
    license: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "version": self.version,
            "date": self.date,
            "url": self.url,
            "license": self.license,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Citation:
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Synonym:
    """A name of a node in a language (``en``, ``fr``, ``zh`` ...)."""

    text: str
    lang: str = "en"


@dataclass(frozen=True, slots=True)
class Node:
    """A KG node, identified by a CURIE, with a Biolink category."""

    id: str
    category: str
    name: str
    synonyms: tuple[Synonym, ...] = ()
    xrefs: tuple[str, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> Node:
        check_curie(self.id)
        check_category(self.category)
        return self

    def data(self) -> dict[str, Any]:
        """The node's content as JSON-able data (what stores persist and compare)."""
        return {
            "id": self.id,
            "category": self.category,
            "name": self.name,
            "synonyms": [[s.text, s.lang] for s in self.synonyms],
            "xrefs": list(self.xrefs),
            "properties": self.properties,
        }

    @classmethod
    def from_data(cls, d: dict[str, Any]) -> Node:
        return cls(
            id=d["id"],
            category=d["category"],
            name=d["name"],
            synonyms=tuple(Synonym(t, lang) for t, lang in d.get("synonyms", ())),
            xrefs=tuple(d.get("xrefs", ())),
            properties=d.get("properties", {}),
        )


#: The form of every edge id (``edge_id``): "E" and 16 lower-case hex digits.
EDGE_ID = re.compile(r"E[0-9a-f]{16}")


def check_limit(limit: int | None) -> None:
    """Refuse a negative ``limit`` of a store read (every store reads "no limit" as None)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be at least 0 (or None for no limit), not {limit}")


def edge_id(subject: str, predicate: str, obj: str) -> str:
    """The stable id of the edge (subject, predicate, object), the same in every store."""
    digest = hashlib.blake2b(f"{subject}\t{predicate}\t{obj}".encode(), digest_size=8)
    return "E" + digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Edge:
    """A statement ``subject predicate object`` with status, confidence and citations."""

    subject: str
    predicate: str
    object: str
    citations: tuple[str, ...] = ()
    status: str = Status.ASSERTED
    confidence: float = 1.0
    qualifiers: dict[str, Any] = field(default_factory=dict)
    created: float | None = None
    updated: float | None = None
    id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", edge_id(self.subject, self.predicate, self.object))

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject, self.predicate, self.object)

    def validate(self) -> Edge:
        check_curie(self.subject)
        check_curie(self.object)
        check_predicate(self.predicate)
        if self.status not in STATUSES:
            raise InvalidStatus(f"unknown status {self.status!r}: use one of {sorted(STATUSES)}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} of {self.key} is outside 0-1")
        if not self.citations:
            raise MissingCitation(
                f"edge {self.subject} {self.predicate} {self.object} cites no source: "
                "every edge needs at least one citation id"
            )
        return self

    def content(self) -> dict[str, Any]:
        """What an upsert compares: everything but the timestamps."""
        return {
            "subject": self.subject,
            "predicate": self.predicate,
            "object": self.object,
            "status": self.status,
            "confidence": self.confidence,
            "qualifiers": self.qualifiers,
            "citations": list(self.citations),
        }

    def content_json(self, qualifiers_json: str, citations_json: str) -> str:
        """``dumps(self.content())`` composed from already-encoded parts (for bulk writes)."""
        return (
            f'{{"citations":{citations_json},"confidence":{self.confidence!r},'
            f'"object":{_encode_str(self.object)},"predicate":{_encode_str(self.predicate)},'
            f'"qualifiers":{qualifiers_json},"status":{_encode_str(self.status)},'
            f'"subject":{_encode_str(self.subject)}}}'
        )

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.content(), "created": self.created, "updated": self.updated}


@dataclass(frozen=True, slots=True)
class Change:
    """One change-log entry; ``seq`` of the last entry is the KG version."""

    seq: int
    time: float
    actor: str
    action: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "key": self.key,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one atomic write did."""

    nodes_created: int = 0
    nodes_updated: int = 0
    edges_created: int = 0
    edges_updated: int = 0
    citations_written: int = 0
    version: int = 0

    @property
    def changed(self) -> int:
        return (
            self.nodes_created
            + self.nodes_updated
            + self.edges_created
            + self.edges_updated
            + self.citations_written
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts of the KG by category, predicate and status, at a version."""

    version: int
    nodes: int
    edges: int
    citations: int
    nodes_by_category: dict[str, int]
    edges_by_predicate: dict[str, int]
    edges_by_status: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "nodes": self.nodes,
            "edges": self.edges,
            "citations": self.citations,
            "nodes_by_category": self.nodes_by_category,
            "edges_by_predicate": self.edges_by_predicate,
            "edges_by_status": self.edges_by_status,
        }


@dataclass(frozen=True, slots=True)
class Path:
    """A path through the KG as alternating node ids and edges."""

    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True, slots=True)
class GraphArrays:
    """Edges as integer arrays for graph ML (PyG): ``src[i] -predicate[i]-> dst[i]``."""

    node_ids: list[str]
    node_categories: list[str]
    predicates: list[str]
    src: Any  # numpy int64 array
    dst: Any  # numpy int64 array
    predicate: Any  # numpy int64 array, index into ``predicates``
    version: int


_TRUST = {Status.PROPOSED: 0, Status.INFERRED: 1, Status.ASSERTED: 2, Status.CURATED: 3}


def merge_edge(old: Edge, new: Edge) -> Edge:
    """The edge after upserting ``new`` over ``old``.

    Citations and qualifiers accumulate; confidence is taken from ``new``. A person's decision
    (curated, rejected) stands; otherwise the more trusted status wins (curated > asserted >
    inferred > proposed), and a retracted edge takes the new status.
    """
    if old.status in STICKY_STATUSES:
        status = old.status
    elif old.status == Status.RETRACTED:
        status = new.status
    else:
        status = max(old.status, new.status, key=lambda s: _TRUST.get(s, -1))
    citations = tuple(dict.fromkeys((*old.citations, *new.citations)))
    return Edge(
        subject=old.subject,
        predicate=old.predicate,
        object=old.object,
        citations=citations,
        status=status,
        confidence=new.confidence,
        qualifiers={**old.qualifiers, **new.qualifiers},
        created=old.created,
        updated=old.updated,
    )


_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# Canonical JSON (sorted keys, compact, UTF-8). CPython's C encoder is built once rather than
# per call, which halves the cost of encoding the many small dicts of a bulk write.
_C_ENCODER = json.encoder.c_make_encoder  # type: ignore[attr-defined]
if _C_ENCODER is not None:
    _encode = _C_ENCODER(None, _not_json, _encode_str, None, ":", ",", True, False, True)

    def dumps(value: Any) -> str:
        """Canonical JSON used for persisted content and comparisons."""
        return "".join(_encode(value, 0))

else:  # pragma: no cover - Python builds without the C accelerator
    dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode
