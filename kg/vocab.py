"""Identifiers and vocabularies of the KG: CURIEs, Biolink categories and predicates, statuses."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from kg.errors import InvalidCurie, UnknownCategory, UnknownPredicate

CURIE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:[^\s|]+$")

#: Biolink Model categories the KG uses for nodes.
CATEGORIES = frozenset(
    {
        "biolink:Disease",
        "biolink:PhenotypicFeature",
        "biolink:Gene",
        "biolink:Drug",
        "biolink:SmallMolecule",
        "biolink:ChemicalEntity",
        "biolink:DrugClass",
        "biolink:Food",
        "biolink:Device",
        "biolink:ClinicalFinding",
        "biolink:ClinicalTrial",
        "biolink:EligibilityCriterion",
        "biolink:GuidelineRecommendation",
        "biolink:NamedThing",
    }
)

#: Predicates that code refers to by name (each is also in ``PREDICATES``).
SUBCLASS_OF = "biolink:subclass_of"
MEMBER_OF = "biolink:member_of"
INTERACTS_WITH = "biolink:interacts_with"
HAS_PHENOTYPE = "biolink:has_phenotype"
GENE_TO_DISEASE = "biolink:gene_associated_with_condition"
HAS_ADVERSE_EVENT = "biolink:has_adverse_event"
SAME_AS = "biolink:same_as"
CLOSE_MATCH = "biolink:close_match"
SIMILAR_TO = "biolink:similar_to"

#: The drug classes whose members duplicate each other's therapy are ``subclass_of`` this node.
THERAPEUTIC_CLASS = "EVO:therapeutic-class"

#: Biolink Model predicates the KG accepts on edges.
PREDICATES = frozenset(
    {
        SUBCLASS_OF,
        MEMBER_OF,
        "biolink:has_member",
        INTERACTS_WITH,
        HAS_PHENOTYPE,
        GENE_TO_DISEASE,
        "biolink:contraindicated_in",
        "biolink:treats",
        HAS_ADVERSE_EVENT,
        SAME_AS,
        CLOSE_MATCH,
        SIMILAR_TO,
        "biolink:related_to",
        "biolink:has_criterion",
        "biolink:disjoint_with",
        "biolink:studied_in",
    }
)


class Status:
    """Edge statuses: where a statement comes from and whether it stands."""

    ASSERTED = "asserted"
    CURATED = "curated"
    INFERRED = "inferred"
    PROPOSED = "proposed"
    REJECTED = "rejected"
    RETRACTED = "retracted"


STATUSES = frozenset(
    {
        Status.ASSERTED,
        Status.CURATED,
        Status.INFERRED,
        Status.PROPOSED,
        Status.REJECTED,
        Status.RETRACTED,
    }
)

#: Statuses a reasoner may rely on without labelling them as unreviewed.
TRUSTED_STATUSES = frozenset({Status.ASSERTED, Status.CURATED, Status.INFERRED})

#: Human decisions that a later upsert from a source or a learner must not overturn.
STICKY_STATUSES = frozenset({Status.CURATED, Status.REJECTED})


@lru_cache(maxsize=1 << 16)
def check_curie(value: str) -> str:
    """Return ``value`` if it is a well-formed CURIE (``PREFIX:local``), else raise."""
    if not isinstance(value, str) or not CURIE_RE.match(value):
        raise InvalidCurie(f"malformed CURIE {value!r}: expected PREFIX:local, e.g. HP:0001250")
    return value


def check_predicate(value: str) -> str:
    """Return ``value`` if it is a Biolink predicate the KG knows, else raise."""
    if value not in PREDICATES:
        raise UnknownPredicate(
            f"unknown predicate {value!r}: use one of {', '.join(sorted(PREDICATES))}"
        )
    return value


def check_category(value: str) -> str:
    """Return ``value`` if it is a Biolink category the KG knows, else raise."""
    if value not in CATEGORIES:
        raise UnknownCategory(
            f"unknown category {value!r}: use one of {', '.join(sorted(CATEGORIES))}"
        )
    return value


def normalize_text(text: str) -> str:
    """Fold case, accents and punctuation so that 'Warfarine', 'warfarine ' and 'WARFARINE' meet."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = stripped.casefold()
    return " ".join(re.sub(r"[^\w]+", " ", folded).split())
