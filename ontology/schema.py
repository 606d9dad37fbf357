"""The base ontology: the KG's schema and the class hierarchies of its sources, as axioms.

- one class per KG node category (``biolink:Drug``, ``biolink:Disease`` ...), the main ones
  pairwise disjoint, so that a curator's edit mixing a drug class into a disease is incoherent;
- ANSM drug classes as classes under ``biolink:Drug`` (a drug class is the set of its drugs),
  and their member substances as *subclasses* of their classes (a substance is the class of
  its products), so that class membership is OWL subsumption and a class-level rule reaches
  every member by inheritance;
- the HPO phenotype hierarchy (``subclass_of``) under ``biolink:PhenotypicFeature``;
- ICD-10-CM chapters, blocks and three-character categories under ``biolink:Disease``
  (the 96k subcategories stay in the KG only).

Labels and synonyms keep their language tags (en, fr, zh).
"""

from __future__ import annotations

from collections.abc import Iterable

from kg.model import Node
from kg.store import GraphStore
from kg.vocab import CATEGORIES, INTERACTS_WITH, MEMBER_OF, SUBCLASS_OF
from ontology.axioms import Axiom, disjoint

DRUG, DRUG_CLASS = "biolink:Drug", "biolink:DrugClass"
#: Top categories no class may fall under two of.
DISJOINT_TOPS = (
    DRUG,
    "biolink:Disease",
    "biolink:PhenotypicFeature",
    "biolink:Gene",
    "biolink:ClinicalTrial",
    "biolink:EligibilityCriterion",
    "biolink:GuidelineRecommendation",
)
#: The top class a node of a category goes under when it has no parent in the ontology.
TOP_OF = {DRUG_CLASS: DRUG, "biolink:SmallMolecule": DRUG, "biolink:ChemicalEntity": DRUG}
#: Citation ids of the sources the base ontology is built from.
BASE_SOURCES = ("src:hpo", "src:icd10cm", "src:ansm-thesaurus")


def category_axioms() -> set[Axiom]:
    """A class per KG category, labelled, the main ones pairwise disjoint."""
    out: set[Axiom] = set()
    for cat in sorted(CATEGORIES):
        out.add(Axiom("class", (cat,)))
        out.add(Axiom("label", (cat, _words(cat.removeprefix("biolink:")), "en")))
    for i, a in enumerate(DISJOINT_TOPS):
        for b in DISJOINT_TOPS[i + 1 :]:
            out.add(disjoint(a, b))
    return out


def node_axioms(node: Node) -> set[Axiom]:
    """Declaration, category, labels (one per language) and synonyms of a node's class."""
    out = {Axiom("class", (node.id,)), Axiom("category", (node.id, node.category))}
    french = node.id.startswith("ANSM:")
    labels = {"fr" if french else "en": node.name}
    for syn in node.synonyms:
        if syn.lang not in labels:
            labels[syn.lang] = syn.text
        elif syn.text != labels[syn.lang]:
            out.add(Axiom("synonym", (node.id, syn.text, syn.lang)))
    out |= {Axiom("label", (node.id, text, lang)) for lang, text in labels.items()}
    return out


def base_axioms(store: GraphStore) -> set[Axiom]:
    """The base ontology read from the KG (see the module docstring)."""
    parents: dict[str, set[str]] = {}
    for e in store.edges(predicate=SUBCLASS_OF):
        hpo = e.subject.startswith("HP:") and e.object.startswith("HP:")
        if hpo or (e.subject.startswith("ICD10CM:") and "." not in e.subject):
            parents.setdefault(e.subject, set()).add(e.object)
    for e in store.edges(predicate=MEMBER_OF):
        if e.subject.startswith("ANSM:") and e.object.startswith("ANSM:"):
            parents.setdefault(e.subject, set()).add(e.object)
    ansm = {
        x
        for e in store.edges(predicate=INTERACTS_WITH)
        for x in (e.subject, e.object)
        if x.startswith("ANSM:")
    }
    ids = set(parents) | {p for ps in parents.values() for p in ps} | ansm
    nodes = store.get_nodes(sorted(ids))
    out = category_axioms()
    for node in nodes.values():
        out |= node_axioms(node)
        for parent in sorted(parents.get(node.id, ())):
            if parent in nodes:
                out.add(Axiom("subclass", (node.id, parent)))
        if not parents.get(node.id):
            out.add(Axiom("subclass", (node.id, _top(node))))
    return out


def _top(node: Node) -> str:
    if node.id.startswith("HP:"):
        return "biolink:PhenotypicFeature"
    return TOP_OF.get(node.category, node.category)


def _words(name: str) -> str:
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()


def classes_of(axioms: Iterable[Axiom]) -> set[str]:
    """The declared classes of a set of axioms."""
    return {a.terms[0] for a in axioms if a.kind == "class"}
