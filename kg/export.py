"""Exports of the KG: Turtle with PROV-O provenance (rdflib terms), and KGX-style TSV."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from kg.model import Citation, Edge, Node, dumps
from kg.store import GraphStore
from kg.vocab import TRUSTED_STATUSES

#: IRI bases of the CURIE prefixes the KG uses; others go under the project namespace.
PREFIXES = {
    "HP": "http://purl.obolibrary.org/obo/HP_",
    "MONDO": "http://purl.obolibrary.org/obo/MONDO_",
    "OMIM": "https://omim.org/entry/",
    "ORPHA": "http://www.orpha.net/ORDO/Orphanet_",
    "NCBIGene": "https://www.ncbi.nlm.nih.gov/gene/",
    "RXNORM": "http://purl.bioontology.org/ontology/RXNORM/",
    "DRUGBANK": "https://go.drugbank.com/drugs/",
    "MESH": "http://id.nlm.nih.gov/mesh/",
    "ICD10CM": "http://purl.bioontology.org/ontology/ICD10CM/",
    "LOINC": "https://loinc.org/",
    "NCT": "https://clinicaltrials.gov/study/",
    "biolink": "https://w3id.org/biolink/vocab/",
}
EVO = "https://w3id.org/evocdss/"

Tick = Callable[[int], None]


def curie_to_iri(curie: str) -> str:
    """Expand a CURIE to an IRI (unknown prefixes live under the project namespace)."""
    prefix, _, local = curie.partition(":")
    base, local = PREFIXES.get(prefix), quote(local, safe="-._~:@!$&'()*+,;=")
    return f"{base}{local}" if base else f"{EVO}id/{quote(prefix)}_{local}"


@contextmanager
def written(path: Path) -> Iterator[TextIO]:
    """A text file written beside ``path`` and renamed over it once complete: an export that
    fails leaves the previous file, never a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_turtle(store: GraphStore, out: Path, tick: Tick | None = None) -> int:
    """Write the KG as Turtle: each edge as a reified ``rdf:Statement`` that carries status,
    confidence, qualifiers and ``prov:wasDerivedFrom`` its citations, plus the plain triple for
    the edges a reasoner may rely on (asserted, curated, inferred; not proposed, rejected or
    retracted ones).

    Streams statement by statement (terms escaped by rdflib), so memory stays flat on a full KG.
    Returns the number of edges written.
    """
    from rdflib import Literal, URIRef
    from rdflib.namespace import XSD

    def iri(curie: str) -> str:
        return URIRef(curie_to_iri(curie)).n3()

    def lit(value: object, datatype: URIRef | None = None, lang: str | None = None) -> str:
        return Literal(value, datatype=datatype, lang=lang).n3()

    def citation_iri(cid: str) -> str:
        return URIRef(f"{EVO}citation/{quote(cid, safe=':@-._~')}").n3()

    count = 0
    with written(out) as f:
        f.write(
            "@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .\n"
            "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
            "@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n"
            "@prefix prov: <http://www.w3.org/ns/prov#> .\n"
            "@prefix dcterms: <http://purl.org/dc/terms/> .\n"
            "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
            f"@prefix evo: <{EVO}vocab/> .\n\n"
        )
        for cit in store.get_citations().values():
            f.write(_citation_turtle(cit, citation_iri(cit.id), lit))
        for node in store.iter_nodes():
            f.write(_node_turtle(node, iri, lit))
        for edge in store.iter_edges():
            f.write(_edge_turtle(edge, iri, lit, citation_iri, XSD))
            count += 1
            if tick and count % 10_000 == 0:
                tick(10_000)
    return count


def _citation_turtle(cit: Citation, subject: str, lit: Callable[..., str]) -> str:
    lines = [f"{subject} a prov:Entity", f"    dcterms:title {lit(cit.title)}"]
    lines.append(f"    evo:kind {lit(cit.kind)}")
    if cit.version:
        lines.append(f"    dcterms:hasVersion {lit(cit.version)}")
    if cit.date:
        lines.append(f"    dcterms:date {lit(cit.date)}")
    if cit.url:
        lines.append(f"    dcterms:source {lit(cit.url)}")
    if cit.license:
        lines.append(f"    dcterms:license {lit(cit.license)}")
    if cit.details:
        lines.append(f"    evo:details {lit(dumps(cit.details))}")
    return " ;\n".join(lines) + " .\n\n"


def _node_turtle(node: Node, iri: Callable[[str], str], lit: Callable[..., str]) -> str:
    lines = [f"{iri(node.id)} a {iri(node.category)}", f"    rdfs:label {lit(node.name)}"]
    lines += [f"    skos:altLabel {lit(s.text, lang=s.lang)}" for s in node.synonyms]
    lines += [f"    skos:exactMatch {iri(x)}" for x in node.xrefs if ":" in x and " " not in x]
    return " ;\n".join(lines) + " .\n\n"


def _edge_turtle(
    edge: Edge,
    iri: Callable[[str], str],
    lit: Callable[..., str],
    citation_iri: Callable[[str], str],
    xsd: object,
) -> str:
    s, p, o = iri(edge.subject), iri(edge.predicate), iri(edge.object)
    stmt = f"<{EVO}edge/{edge.id}>"
    lines = [
        f"{stmt} a rdf:Statement",
        f"    rdf:subject {s}",
        f"    rdf:predicate {p}",
        f"    rdf:object {o}",
        f"    evo:status {lit(edge.status)}",
        f"    evo:confidence {lit(edge.confidence, datatype=xsd.double)}",  # type: ignore[attr-defined]
    ]
    if edge.qualifiers:
        lines.append(f"    evo:qualifiers {lit(dumps(edge.qualifiers))}")
    if edge.created is not None:
        lines.append(f"    prov:generatedAtTime {lit(_iso(edge.created), datatype=xsd.dateTime)}")  # type: ignore[attr-defined]
    lines += [f"    prov:wasDerivedFrom {citation_iri(c)}" for c in edge.citations]
    fact = f"{s} {p} {o} .\n" if edge.status in TRUSTED_STATUSES else ""
    return fact + " ;\n".join(lines) + " .\n\n"


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


def export_kgx(store: GraphStore, out: Path, tick: Tick | None = None) -> tuple[Path, Path]:
    """Write KGX-style ``<out>_nodes.tsv`` and ``<out>_edges.tsv``; returns both paths."""
    nodes_path = out.with_name(out.name + "_nodes.tsv")
    edges_path = out.with_name(out.name + "_edges.tsv")
    with written(nodes_path) as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "category", "name", "synonym", "xref", "properties"])
        for n in store.iter_nodes():
            synonyms = "|".join(f"{s.text}@{s.lang}" for s in n.synonyms)
            w.writerow([n.id, n.category, n.name, synonyms, "|".join(n.xrefs), dumps(n.properties)])
    citations = store.get_citations()
    with written(edges_path) as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(
            [
                "id",
                "subject",
                "predicate",
                "object",
                "status",
                "confidence",
                "primary_knowledge_source",
                "citations",
                "qualifiers",
            ]
        )
        for i, e in enumerate(store.iter_edges(), 1):
            sources = "|".join(citations[c].title if c in citations else c for c in e.citations)
            w.writerow(
                [
                    e.id,
                    e.subject,
                    e.predicate,
                    e.object,
                    e.status,
                    e.confidence,
                    sources,
                    "|".join(e.citations),
                    dumps(e.qualifiers),
                ]
            )
            if tick and i % 10_000 == 0:
                tick(10_000)
    return nodes_path, edges_path
