"""Publish -> KG: the edges and nodes a version change means for the knowledge graph.

- ``subclass (C, D)`` -> ``biolink:member_of`` when C is a drug and D a drug class, else
  ``biolink:subclass_of``; ``disjoint`` -> ``biolink:disjoint_with``; axioms with a Biolink
  category class at an end are schema, not KG edges;
- ``rule (A, B, ...)`` -> ``biolink:interacts_with`` both ways (as ANSM's edges are), with
  severity, mechanism, management and the guideline's section and date as qualifiers;
- memberships HermiT entailed -> ``biolink:member_of`` with status ``inferred``.

Edges a curator's axioms make are ``curated``; each cites the ontology version, the curator
and, for rules, the guideline. What a version dropped is ``retracted``, never deleted; an
edge another source stated before the ontology wrote to it gets that source's qualifiers back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from kg.model import Citation, Edge, Node, Synonym
from kg.store import GraphStore
from kg.vocab import INTERACTS_WITH, MEMBER_OF, SUBCLASS_OF, Status
from ontology.axioms import Axiom, rule_fields
from ontology.reasoning import DRUG_CATEGORIES, DRUG_CLASS

ACTOR = "evocdss-ontology"


@dataclass
class Sync:
    """What publishing a version writes into the KG."""

    citations: list[Citation] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    retract: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "citations": [c.id for c in self.citations],
            "nodes": len(self.nodes),
            "edges": len(self.edges),
            "retracted": len(self.retract),
        }


def version_citation(number: int, changeset: str) -> Citation:
    """The citation of an ontology version (kind ``ontology``)."""
    return Citation(
        id=f"ontology:evocdss-v{number}",
        kind="ontology",
        title=f"evocdss curated ontology, version {number}",
        version=str(number),
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        url="https://w3id.org/evocdss/ontology",
        details={"changeset": changeset},
    )


def curator_citation(author: str) -> Citation:
    """The citation of a curator (kind ``curator``)."""
    return Citation(id=f"curator:{author}", kind="curator", title=f"curator {author}")


def axiom_edges(axiom: Axiom, category: dict[str, str]) -> list[tuple[str, str, str, dict]]:
    """(subject, predicate, object, qualifiers) of the KG edges an axiom stands for."""
    t = axiom.terms
    if axiom.kind in ("subclass", "disjoint", "rule") and any(
        x.startswith("biolink:") for x in t[:2]
    ):
        return []
    if axiom.kind == "subclass":
        drug = category.get(t[0]) in DRUG_CATEGORIES and category.get(t[1]) == DRUG_CLASS
        return [(t[0], MEMBER_OF if drug else SUBCLASS_OF, t[1], {})]
    if axiom.kind == "disjoint":
        return [(t[0], "biolink:disjoint_with", t[1], {})]
    if axiom.kind == "rule":
        f = rule_fields(axiom)
        q = {k: f[k] for k in ("severity", "mechanism", "management") if f[k]}
        q |= {"source_section": f["section"], "source_date": f["date"], "rule": f"{t[0]}|{t[1]}"}
        return [
            (t[0], INTERACTS_WITH, t[1], q),
            (t[1], INTERACTS_WITH, t[0], q),
        ]
    return []


def plan_sync(
    store: GraphStore,
    old: dict[Axiom, str],
    new: dict[Axiom, str],
    old_inferred: set[tuple[str, str]],
    new_inferred: set[tuple[str, str]],
    *,
    number: int,
    changeset: str,
    authors: dict[str, str],
    sources: dict[str, Citation],
) -> Sync:
    """The KG writes that take the KG from version ``old`` of the ontology to ``new``.

    ``authors`` maps a change set id to the curator of its axioms; ``sources`` are the
    citations the new axioms cite (guidelines).
    """
    category = {a.terms[0]: a.terms[1] for a in [*old, *new] if a.kind == "category"}
    version = version_citation(number, changeset)
    sync = Sync(citations=[version])
    curators: dict[str, Citation] = {}

    def cites(cs: str, source: str = "") -> tuple[str, ...]:
        author = authors.get(cs, ACTOR)
        cur = curators.setdefault(author, curator_citation(author))
        return tuple(x for x in (source, version.id, cur.id) if x)

    for axiom in sorted(set(new) - set(old)):
        for s, p, o, q in axiom_edges(axiom, category):
            source = rule_fields(axiom)["source"] if axiom.kind == "rule" else ""
            q = {**q, "ontology_version": number}
            sync.edges.append(Edge(s, p, o, cites(new[axiom], source), Status.CURATED, 1.0, q))
    for s, o in sorted(new_inferred - old_inferred):
        q = {"entailed_by": "HermiT", "ontology_version": number}
        sync.edges.append(Edge(s, MEMBER_OF, o, cites(changeset), Status.INFERRED, 1.0, q))
    gone = [k for a in set(old) - set(new) for k in axiom_edges(a, category)]
    gone += [(s, MEMBER_OF, o, {}) for s, o in old_inferred - new_inferred]
    kept = {(s, p, o) for a in new for s, p, o, _ in axiom_edges(a, category)}
    kept |= {(s, MEMBER_OF, o) for s, o in new_inferred}
    ids = sorted({Edge(s, p, o).id for s, p, o, _ in gone if (s, p, o) not in kept})
    for eid in ids:
        if store.get_edge(eid) is None:
            continue
        source = _source_edge(store, eid)
        if source is None:
            sync.retract.append(eid)
        else:
            sync.edges.append(source)
    sync.nodes = _nodes(store, old, new, category)
    sync.citations += list(curators.values())
    sync.citations += [
        sources[c] for c in sorted({e.citations[0] for e in sync.edges}) if c in sources
    ]
    return sync


def _source_edge(store: GraphStore, edge_id: str) -> Edge | None:
    """The edge as another source wrote it, if the ontology's first write merged into it
    (its own severity and other qualifiers, to restore rather than retract); else None."""
    first = next((c for c in store.changes(key=edge_id) if c.actor == ACTOR), None)
    before = first.before if first is not None and first.action == "update_edge" else None
    if before is None or before["status"] == Status.RETRACTED:
        return None
    return Edge(**{**before, "citations": tuple(before["citations"])})  # before: Edge.content()


def _nodes(
    store: GraphStore, old: dict[Axiom, str], new: dict[Axiom, str], category: dict[str, str]
) -> list[Node]:
    """New class nodes, and nodes whose names or deprecation changed."""
    naming = {"class", "label", "synonym", "deprecated", "replaced_by"}
    added = [a for a in set(new) - set(old) if a.kind in naming]
    removed = [a for a in set(old) - set(new) if a.kind in naming]
    touched = sorted({a.terms[0] for a in added + removed})
    existing = store.get_nodes(touched)
    out = []
    for cls in touched:
        labels = {a.terms[2]: a.terms[1] for a in new if a.kind == "label" and a.terms[0] == cls}
        node = existing.get(cls)
        if node is None:
            if Axiom("class", (cls,)) not in new:
                continue
            lang = "en" if "en" in labels else next(iter(labels), "en")
            node = Node(cls, category.get(cls, "biolink:NamedThing"), labels.get(lang, cls))
        gone = {(a.terms[1], a.terms[2]) for a in removed if a.kind in ("label", "synonym")}
        synonyms = [s for s in node.synonyms if (s.text, s.lang) not in gone]
        synonyms += [
            Synonym(a.terms[1], a.terms[2])
            for a in sorted(added)
            if a.kind in ("label", "synonym") and a.terms[0] == cls
        ]
        name_lang = "fr" if cls.startswith("ANSM:") else "en"
        props = dict(node.properties)
        deprecated = Axiom("deprecated", (cls,)) in new
        props.pop("deprecated", None)
        props.pop("replaced_by", None)
        if deprecated:
            props["deprecated"] = True
            repl = [a.terms[1] for a in new if a.kind == "replaced_by" and a.terms[0] == cls]
            if repl:
                props["replaced_by"] = repl[0]
        out.append(
            replace(
                node,
                name=labels.get(name_lang, node.name),
                synonyms=tuple(dict.fromkeys(synonyms)),
                properties=props,
            )
        )
    return out


def apply_sync(store: GraphStore, sync: Sync, *, reason: str) -> int:
    """Write a sync in one atomic upsert, retractions included; returns the KG version after."""
    return store.upsert(
        citations=sync.citations,
        nodes=sync.nodes,
        edges=sync.edges,
        actor=ACTOR,
        reason=reason,
        retract=sync.retract,
    ).version
