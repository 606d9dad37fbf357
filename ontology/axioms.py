"""Axioms: the unit of every edit, diff and version of the ontology.

An axiom is a kind and a tuple of terms (CURIEs and literals), so that sets of axioms diff
exactly and serialise as JSON. Kinds:

- ``class (C,)`` declares an OWL class; ``category (C, biolink:X)`` the KG category of its node;
- ``label (C, text, lang)``, ``synonym (C, text, lang)``: names with a language tag;
- ``subclass (C, D)``: C SubClassOf D; ``disjoint (C, D)``: DisjointClasses (C < D);
- ``deprecated (C,)`` and ``replaced_by (C, D)``: deprecation keeps C's id and points to D;
- ``rule (A, B, severity, mechanism, management, source, section, date)``: a class-level
  interaction a guideline states, A SubClassOf interacts_with some B, annotated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KINDS = {
    "class": 1,
    "category": 2,
    "label": 3,
    "synonym": 3,
    "subclass": 2,
    "disjoint": 2,
    "deprecated": 1,
    "replaced_by": 2,
    "rule": 8,
}
RULE_FIELDS = ("a", "b", "severity", "mechanism", "management", "source", "section", "date")
#: Kinds whose terms after the first are classes too.
CLASS_TERMS = {"subclass": 2, "disjoint": 2, "replaced_by": 2, "rule": 2}


@dataclass(frozen=True, order=True, slots=True)
class Axiom:
    """One axiom of the ontology (see the module docstring for the kinds)."""

    kind: str
    terms: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown axiom kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if len(self.terms) != KINDS[self.kind]:
            raise ValueError(f"{self.kind} axiom needs {KINDS[self.kind]} terms: {self.terms}")

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes the axiom is about (whose history it belongs to)."""
        return self.terms[: CLASS_TERMS.get(self.kind, 1)]

    def to_json(self) -> list[str]:
        return [self.kind, *self.terms]

    @classmethod
    def from_json(cls, data: Iterable[str]) -> Axiom:
        kind, *terms = data
        return cls(kind, tuple(terms))

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(self.terms)})"


def disjoint(a: str, b: str) -> Axiom:
    """DisjointClasses(a, b), with its terms in a canonical order."""
    return Axiom("disjoint", tuple(sorted((a, b))))


def rule_fields(axiom: Axiom) -> dict[str, str]:
    """The named fields of a ``rule`` axiom."""
    return dict(zip(RULE_FIELDS, axiom.terms, strict=True))
