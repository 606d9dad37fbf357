"""The one answer shape of every query kind, and ``Evidence``: the citations an answer collects.

Each finding's ``citations`` are keys of ``Answer.citations``; each of those resolves to a KG
edge (with the sources it cites), a patient fact, a model output, or a source ``Citation``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from kg.model import Citation, Edge
from kg.store import GraphStore

MACHINE_LABEL = "machine-generated: decision support for a clinician, not a decision"
PLANNER = "evocdss deterministic planner 1"


class Ref(BaseModel):
    """What a citation key points at."""

    id: str
    kind: Literal["source", "kg_edge", "patient_fact", "model_output"]
    label: str
    # kind == "source": a Citation record (database release, guideline, article, curator, ...)
    source_kind: str = ""
    version: str = ""
    date: str = ""
    url: str = ""
    license: str = ""
    # kind == "kg_edge": the edge as the KG held it at ``Answer.kg_version``
    edge: dict[str, Any] | None = None
    # kind == "kg_edge": keys of the "source" refs the edge cites
    sources: list[str] = Field(default_factory=list)
    # kind == "patient_fact": where in the input it is; kind == "model_output": the output
    path: str = ""
    value: Any = None


class Finding(BaseModel):
    """One claim and the citation keys that support it."""

    claim: str
    citations: list[str]
    proposed: bool = False
    """True when the claim rests on knowledge a learner proposed and no person reviewed yet."""


class Step(BaseModel):
    """One sub-question of the plan, the tool that answered it and what it found."""

    question: str
    tool: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    conclusion: str = ""


class CardSource(BaseModel):
    label: str
    url: str = ""


class Action(BaseModel):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(BaseModel):
    label: str
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[Action] = Field(default_factory=list)


class OverrideReason(BaseModel):
    code: str
    system: str = "https://w3id.org/evocdss/override-reason"
    display: str


class Card(BaseModel):
    """A CDS Hooks 2.0 card."""

    uuid: str | None = None
    summary: str = Field(max_length=140)
    indicator: Literal["info", "warning", "critical"]
    detail: str | None = None
    source: CardSource
    suggestions: list[Suggestion] = Field(default_factory=list)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[OverrideReason] = Field(default_factory=list)


class ModelInfo(BaseModel):
    name: str
    version: str


class GeneratedBy(BaseModel):
    label: str = MACHINE_LABEL
    planner: str = PLANNER
    llm: str | None = None
    """The chat model that rephrased the answer, when one is configured."""
    grounding: list[str] = Field(default_factory=list)
    """Why the LLM's rephrasing was rejected (the deterministic text stands), if it was."""


class Answer(BaseModel):
    """Every query kind answers in this shape; kinds add their own fields."""

    id: str
    kind: str
    answer: str
    cards: list[Card] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    citations: dict[str, Ref] = Field(default_factory=dict)
    kg_version: int
    models: list[ModelInfo] = Field(default_factory=list)
    generated_by: GeneratedBy = Field(default_factory=GeneratedBy)


class Evidence:
    """Collects the refs an answer cites, resolving KG edges to their sources."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.refs: dict[str, Ref] = {}
        self._sources: dict[str, Citation] = {}

    def edge(self, edge: Edge) -> str:
        """Cite a KG edge (and, through it, the sources it cites); returns the key."""
        key = f"kg:{edge.id}"
        if key not in self.refs:
            missing = [c for c in edge.citations if c not in self._sources]
            if missing:
                self._sources.update(self.store.get_citations(missing))
            sources = [self.source(self._sources[c]) for c in edge.citations if c in self._sources]
            self.refs[key] = Ref(
                id=key,
                kind="kg_edge",
                label=f"{edge.subject} {edge.predicate} {edge.object} ({edge.status})",
                edge=edge.to_dict(),
                sources=sources,
            )
        return key

    def source(self, citation: Citation) -> str:
        """Cite a source record directly; returns the key."""
        key = citation.id
        if key not in self.refs:
            label = " ".join(x for x in (citation.title, citation.version) if x)
            self.refs[key] = Ref(
                id=key,
                kind="source",
                label=label,
                source_kind=citation.kind,
                version=citation.version,
                date=citation.date,
                url=citation.url,
                license=citation.license,
            )
        return key

    def patient(self, path: str, label: str, value: Any = None) -> str:
        """Cite a fact of the patient input (``path`` like ``medications[0]``); returns the key."""
        key = f"patient:{path}"
        self.refs.setdefault(
            key, Ref(id=key, kind="patient_fact", label=label, path=path, value=value)
        )
        return key

    def model(self, name: str, version: str, label: str, value: Any = None) -> str:
        """Cite a model output (the same output twice is one ref); returns the key."""
        digest = hashlib.blake2b(
            json.dumps([label, value], sort_keys=True, default=str).encode(), digest_size=6
        ).hexdigest()
        key = f"model:{name}@{version}:{digest}"
        self.refs.setdefault(
            key, Ref(id=key, kind="model_output", label=label, value=value, path=name)
        )
        return key
