"""Explain: why the KG holds an edge (sources, status, history), or how two entities connect."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kg.model import Edge, edge_id
from kg.store import GraphStore
from kg.vocab import check_curie, check_predicate
from reasoner.answer import Answer, Evidence, Finding, Step
from reasoner.tools import connecting_paths, display_name


class EdgeRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(max_length=200, examples=["ANSM:ibuprofene"])
    predicate: str = Field(max_length=100, examples=["biolink:member_of"])
    object: str = Field(max_length=200, examples=["ANSM:anti-inflammatoires-non-steroidiens"])


class ExplainQuery(BaseModel):
    """Explain an edge, or the best-supported short paths between two entities."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=200)
    edge: EdgeRef | None = None
    entities: list[str] | None = Field(default=None, min_length=2, max_length=2)
    max_hops: int = Field(default=3, ge=1, le=4)

    @model_validator(mode="after")
    def _one_of(self) -> ExplainQuery:
        if (self.edge is None) == (self.entities is None):
            raise ValueError("give either an edge {subject, predicate, object} or two entities")
        if self.edge:
            check_curie(self.edge.subject)
            check_predicate(self.edge.predicate)
            check_curie(self.edge.object)
        for curie in self.entities or []:
            check_curie(curie)
        return self


class ExplainAnswer(Answer):
    paths: list[list[str]] = Field(default_factory=list)
    """Each path as the citation keys of its edges, in order."""


def explain(store: GraphStore, query: ExplainQuery) -> ExplainAnswer:
    """Answer an explain query."""
    evidence = Evidence(store)
    if query.edge is not None:
        step, text = _explain_edge(store, evidence, query.edge)
        paths: list[list[str]] = []
    else:
        step, text, paths = _explain_paths(store, evidence, *query.entities, query.max_hops)
    return ExplainAnswer(
        id=query.id,
        kind="explain",
        answer=text,
        steps=[step],
        citations=evidence.refs,
        kg_version=store.version(),
        paths=paths,
    )


def _explain_edge(store: GraphStore, evidence: Evidence, ref: EdgeRef) -> tuple[Step, str]:
    eid = edge_id(ref.subject, ref.predicate, ref.object)
    step = Step(
        question=f"Why does the KG hold {ref.subject} {ref.predicate} {ref.object}?",
        tool="edge_history",
        inputs=ref.model_dump() | {"edge_id": eid},
    )
    edge = store.get_edge(eid)
    if edge is None:
        step.conclusion = "The KG does not hold this edge."
        return step, f"The KG (version {store.version()}) does not hold this edge."
    key = evidence.edge(edge)
    sources = [evidence.refs[s].label for s in evidence.refs[key].sources]
    step.findings.append(
        Finding(
            claim=f"The edge is {edge.status} (confidence {edge.confidence:.2f}), citing "
            f"{', '.join(sources)}.",
            citations=[key],
            proposed=edge.status == "proposed",
        )
    )
    for change in store.changes(key=eid):
        when = datetime.fromtimestamp(change.time, UTC).strftime("%Y-%m-%d %H:%M UTC")
        status = (change.after or {}).get("status", "")
        reason = f" ({change.reason})" if change.reason else ""
        step.findings.append(
            Finding(
                claim=f"KG version {change.seq}, {when}: {change.actor} {change.action} "
                f"-> {status}{reason}.",
                citations=[key],
            )
        )
    step.conclusion = f"{edge.status}, {len(step.findings) - 1} change(s) in its history."
    return step, f"{ref.subject} {ref.predicate} {ref.object}: {step.conclusion}"


def _explain_paths(
    store: GraphStore, evidence: Evidence, source: str, target: str, max_hops: int
) -> tuple[Step, str, list[list[str]]]:
    step = Step(
        question=f"How are {source} and {target} connected in the KG?",
        tool="connecting_paths",
        inputs={"source": source, "target": target, "max_hops": max_hops},
    )
    found = connecting_paths(store, source, target, max_hops)
    found.sort(key=lambda p: (len(p), -min(e.confidence for e in p)))
    names = store.get_nodes({x for p in found for e in p for x in (e.subject, e.object)})
    keys = []
    for path in found[:5]:
        cites = [evidence.edge(e) for e in path]
        keys.append(cites)
        step.findings.append(Finding(claim=_path_text(path, names), citations=cites))
    if not found:
        step.conclusion = f"No trusted path of at most {max_hops} edges."
        return step, step.conclusion, []
    step.conclusion = f"{len(found)} shortest path(s) of {len(found[0])} edge(s)."
    return step, f"{step.conclusion} Best: {step.findings[0].claim}", keys


def _path_text(path: list[Edge], names: dict) -> str:
    def name(x: str) -> str:
        return f"{display_name(names[x])} ({x})" if x in names else x

    return "; ".join(
        f"{name(e.subject)} {e.predicate.removeprefix('biolink:').replace('_', ' ')} "
        f"{name(e.object)}"
        for e in path
    )
