"""Consistency and coherence of the ontology with HermiT (owlready2), and why a class is
unsatisfiable.

HermiT classifies the full ontology (~23k classes, 29k subsumptions) in about 30 s on two cores,
so a change set is checked over its *module*: the classes it touches and all their descendants
(whose ancestors the edit changes), closed upwards under parents and rule targets, with the
disjointness and rule axioms among them. In this axiom language (atomic subsumption,
disjointness, ``A SubClassOf R some B``), a class can only become unsatisfiable if one of its
ancestors changed, so the module finds exactly the classes the edit makes unsatisfiable when the
published version was coherent. ``scope="full"`` reasons over everything (the bench does both).
"""

from __future__ import annotations

import tempfile
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ontology.axioms import Axiom
from ontology.rdf_io import write_ntriples
from ontology.terms import curie, iri

#: KG categories whose classes are drugs (members of drug classes).
DRUG_CATEGORIES = frozenset(
    {"biolink:Drug", "biolink:SmallMolecule", "biolink:ChemicalEntity", "biolink:Food"}
)
DRUG_CLASS = "biolink:DrugClass"
REASONED_KINDS = frozenset({"class", "subclass", "disjoint", "rule"})


@dataclass
class Unsatisfiable:
    """A class HermiT proved empty, and the axioms that make it so."""

    cls: str
    axioms: list[Axiom]

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "axioms": [str(a) for a in self.axioms]}


@dataclass
class Check:
    """The outcome of reasoning over a change set's result."""

    consistent: bool
    #: unsatisfiable classes none of whose parents is (the roots of the problem), with proofs
    unsatisfiable: list[Unsatisfiable]
    #: their unsatisfiable descendants
    inherited: list[str]
    scope: str
    classes: int
    axioms: int
    seconds: float
    #: (drug, drug class) memberships HermiT entailed that no axiom states directly.
    inferred: set[tuple[str, str]] = field(default_factory=set)
    #: classes whose inferred memberships this check recomputed.
    region: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.consistent and not self.unsatisfiable

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "consistent": self.consistent,
            "unsatisfiable": [u.to_dict() for u in self.unsatisfiable],
            "unsatisfiable_descendants": self.inherited,
            "scope": self.scope,
            "classes": self.classes,
            "axioms": self.axioms,
            "seconds": round(self.seconds, 2),
            "inferred": len(self.inferred),
        }


class Graph:
    """Parents, children, disjointness and rules of a set of axioms, for closures and proofs."""

    def __init__(self, axioms: Iterable[Axiom]) -> None:
        self.parents: dict[str, list[str]] = {}
        self.children: dict[str, list[str]] = {}
        self.disjoint: list[Axiom] = []
        self.rules: dict[str, list[Axiom]] = {}
        self.category: dict[str, str] = {}
        for a in axioms:
            if a.kind == "subclass":
                self.parents.setdefault(a.terms[0], []).append(a.terms[1])
                self.children.setdefault(a.terms[1], []).append(a.terms[0])
            elif a.kind == "disjoint":
                self.disjoint.append(a)
            elif a.kind == "rule":
                self.rules.setdefault(a.terms[0], []).append(a)
            elif a.kind == "category":
                self.category[a.terms[0]] = a.terms[1]

    def descendants(self, classes: Iterable[str]) -> set[str]:
        return _closure(classes, self.children)

    def module(self, signature: Iterable[str]) -> tuple[set[str], set[str]]:
        """(region, module): the signature with its descendants, and that region closed
        upwards under parents and rule targets."""
        region = self.descendants(signature)
        seen = set(region)
        todo = deque(region)
        while todo:
            c = todo.popleft()
            nxt = [*self.parents.get(c, ()), *(r.terms[1] for r in self.rules.get(c, ()))]
            for p in nxt:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return region, seen

    def paths_up(self, cls: str) -> dict[str, str | None]:
        """Each ancestor of ``cls`` (and itself) with the child it was first reached from."""
        came: dict[str, str | None] = {cls: None}
        todo = deque([cls])
        while todo:
            c = todo.popleft()
            for p in self.parents.get(c, ()):
                if p not in came:
                    came[p] = c
                    todo.append(p)
        return came

    def explain(self, cls: str, unsat: set[str]) -> list[Axiom]:
        """The axioms that make ``cls`` unsatisfiable: two subclass paths to disjoint classes,
        or a rule whose target is unsatisfiable (then that target's reason)."""
        came = self.paths_up(cls)
        for d in self.disjoint:
            a, b = d.terms
            if a in came and b in came:
                return [*sorted({*self._path(came, a), *self._path(came, b)}), d]
        for anc in came:
            for r in self.rules.get(anc, ()):
                target = r.terms[1]
                if target in unsat and target != cls:
                    return [*self._path(came, anc), r, *self.explain(target, unsat - {cls})]
        return []

    @staticmethod
    def _path(came: dict[str, str | None], top: str) -> list[Axiom]:
        out = []
        node = top
        while came[node] is not None:
            child = came[node]
            out.append(Axiom("subclass", (child, node)))  # type: ignore[arg-type]
            node = child  # type: ignore[assignment]
        return out


def _closure(start: Iterable[str], links: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    todo = deque(seen)
    while todo:
        for n in links.get(todo.popleft(), ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def check(
    axioms: set[Axiom], signature: Iterable[str] | None = None, *, scope: str = "module"
) -> Check:
    """Reason over ``axioms`` with HermiT: over the module of ``signature`` (the classes a
    change set touches) or, with ``scope="full"`` or no signature, over everything."""
    start = time.perf_counter()
    graph = Graph(axioms)
    if scope == "full" or signature is None:
        scope = "full"
        region = set(graph.category) | set(graph.parents)
        module = [a for a in axioms if a.kind in REASONED_KINDS]
    else:
        region, classes = graph.module(signature)
        module = [a for a in axioms if a.kind in REASONED_KINDS and _inside(a, classes)]
    drugs = {c for c in region if graph.category.get(c) in DRUG_CATEGORIES}
    consistent, unsat, ancestors = _hermit(module, drugs)
    roots = sorted(c for c in unsat if not unsat.intersection(graph.parents.get(c, ())))
    unsatisfiable = [Unsatisfiable(c, graph.explain(c, unsat)) for c in roots]
    inferred = {
        (c, d)
        for c, ancs in ancestors.items()
        for d in ancs
        if graph.category.get(d) == DRUG_CLASS and d not in graph.parents.get(c, ())
    }
    n_classes = sum(1 for a in module if a.kind == "class")
    return Check(
        consistent,
        unsatisfiable,
        sorted(unsat - set(roots)),
        scope,
        n_classes,
        len(module),
        time.perf_counter() - start,
        inferred,
        region,
    )


def _inside(axiom: Axiom, classes: set[str]) -> bool:
    if axiom.kind == "disjoint":
        return axiom.terms[0] in classes and axiom.terms[1] in classes
    return axiom.terms[0] in classes


def _hermit(module: list[Axiom], region: set[str]) -> tuple[bool, set[str], dict[str, set[str]]]:
    """(consistent, unsatisfiable classes, ancestors of the ``region`` classes) by HermiT."""
    import owlready2

    world = owlready2.World()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "module.nt"
        write_ntriples(module, path)
        onto = world.get_ontology(path.as_uri()).load()
        try:
            owlready2.sync_reasoner_hermit(world, debug=0)
        except owlready2.OwlReadyInconsistentOntologyError:
            world.close()
            return False, set(), {}
    unsat = {x for c in world.inconsistent_classes() if (x := curie(c.iri))}
    ancestors: dict[str, set[str]] = {}
    for c in region:
        entity = world[iri(c)]
        if entity is not None and curie(entity.iri) not in unsat:
            ancestors[c] = {x for a in entity.ancestors() if (x := curie(a.iri)) and x != c}
    del onto
    world.close()
    return True, unsat, ancestors
