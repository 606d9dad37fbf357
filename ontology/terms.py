"""IRIs of the ontology: CURIE <-> IRI, and the project's annotation vocabulary."""

from __future__ import annotations

from kg.export import EVO, PREFIXES, curie_to_iri

ONTOLOGY_IRI = f"{EVO}ontology"
VOCAB = f"{EVO}vocab/"
OBO_REPLACED_BY = "http://purl.obolibrary.org/obo/IAO_0100001"
SYNONYM = "http://www.w3.org/2004/02/skos/core#altLabel"

#: Annotation properties of the ontology (beyond rdfs:label and owl:deprecated).
CATEGORY = f"{VOCAB}category"
SEVERITY = f"{VOCAB}severity"
MECHANISM = f"{VOCAB}mechanism"
MANAGEMENT = f"{VOCAB}management"
SECTION = f"{VOCAB}section"
CHANGESET = f"{VOCAB}changeset"

_BY_LENGTH = sorted(((base, prefix) for prefix, base in PREFIXES.items()), key=lambda x: -len(x[0]))
_EVO_ID = f"{EVO}id/"


def iri(curie: str) -> str:
    """The IRI of a CURIE (the KG export's mapping, so KG and ontology exports agree)."""
    return curie_to_iri(curie)


def curie(value: str) -> str | None:
    """The CURIE of an IRI the ontology mints, or None for IRIs outside its namespaces."""
    if value.startswith(_EVO_ID):
        prefix, sep, local = value[len(_EVO_ID) :].partition("_")
        return f"{prefix}:{local}" if sep else None
    for base, prefix in _BY_LENGTH:
        if value.startswith(base) and len(value) > len(base):
            return f"{prefix}:{value[len(base) :]}"
    return None
