"""Axioms <-> RDF (rdflib): the OWL files Protégé opens, and reading such files back.

A class-level rule is ``A SubClassOf (interacts_with some B)`` with its severity, mechanism,
management, source, section and date as OWL axiom annotations (``owl:Axiom``), which Protégé
shows and keeps when it saves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kg.vocab import INTERACTS_WITH
from ontology.axioms import Axiom, disjoint
from ontology.terms import (
    CATEGORY,
    CHANGESET,
    MANAGEMENT,
    MECHANISM,
    OBO_REPLACED_BY,
    ONTOLOGY_IRI,
    SECTION,
    SEVERITY,
    SYNONYM,
    VOCAB,
    curie,
    iri,
)

CITATION_BASE = "https://w3id.org/evocdss/citation/"
DCT = "http://purl.org/dc/terms/"
RULE_ANNOTATIONS = (
    ("severity", SEVERITY),
    ("mechanism", MECHANISM),
    ("management", MANAGEMENT),
    ("section", SECTION),
    ("date", f"{DCT}date"),
)


def triples(axioms: Iterable[Axiom], version: int | None = None) -> Iterator[tuple]:
    """The RDF triples (rdflib terms) of an ontology made of ``axioms``."""
    from rdflib import BNode, Literal, URIRef
    from rdflib.namespace import OWL, RDF, RDFS, XSD

    onto = URIRef(ONTOLOGY_IRI)
    yield onto, RDF.type, OWL.Ontology
    if version is not None:
        yield onto, OWL.versionIRI, URIRef(f"{ONTOLOGY_IRI}/{version}")
        yield onto, OWL.versionInfo, Literal(str(version))
    prop = URIRef(iri(INTERACTS_WITH))
    yield prop, RDF.type, OWL.ObjectProperty
    yield prop, RDF.type, OWL.SymmetricProperty
    yield prop, RDFS.label, Literal("interacts with", lang="en")
    for p in (CATEGORY, SEVERITY, MECHANISM, MANAGEMENT, SECTION, CHANGESET, SYNONYM):
        yield URIRef(p), RDF.type, OWL.AnnotationProperty
    for p in (OBO_REPLACED_BY, f"{DCT}source", f"{DCT}date"):
        yield URIRef(p), RDF.type, OWL.AnnotationProperty
    u = {}

    def ref(c: str) -> URIRef:
        if c not in u:
            u[c] = URIRef(iri(c))
        return u[c]

    for ax in axioms:
        t = ax.terms
        if ax.kind == "class":
            yield ref(t[0]), RDF.type, OWL.Class
        elif ax.kind == "category":
            yield ref(t[0]), URIRef(CATEGORY), ref(t[1])
        elif ax.kind == "label":
            yield ref(t[0]), RDFS.label, Literal(t[1], lang=t[2])
        elif ax.kind == "synonym":
            yield ref(t[0]), URIRef(SYNONYM), Literal(t[1], lang=t[2])
        elif ax.kind == "subclass":
            yield ref(t[0]), RDFS.subClassOf, ref(t[1])
        elif ax.kind == "disjoint":
            yield ref(t[0]), OWL.disjointWith, ref(t[1])
        elif ax.kind == "deprecated":
            yield ref(t[0]), OWL.deprecated, Literal(True, datatype=XSD.boolean)
        elif ax.kind == "replaced_by":
            yield ref(t[0]), URIRef(OBO_REPLACED_BY), ref(t[1])
        elif ax.kind == "rule":
            restriction, note = BNode(), BNode()
            yield ref(t[0]), RDFS.subClassOf, restriction
            yield restriction, RDF.type, OWL.Restriction
            yield restriction, OWL.onProperty, prop
            yield restriction, OWL.someValuesFrom, ref(t[1])
            yield note, RDF.type, OWL.Axiom
            yield note, OWL.annotatedSource, ref(t[0])
            yield note, OWL.annotatedProperty, RDFS.subClassOf
            yield note, OWL.annotatedTarget, restriction
            fields = dict(zip(("severity", "mechanism", "management"), t[2:5], strict=True))
            fields |= {"section": t[6], "date": t[7]}
            for name, p in RULE_ANNOTATIONS:
                if fields[name]:
                    yield note, URIRef(p), Literal(fields[name])
            if t[5]:
                yield note, URIRef(f"{DCT}source"), URIRef(CITATION_BASE + t[5])


def to_graph(axioms: Iterable[Axiom], version: int | None = None) -> object:
    """An rdflib ``Graph`` of the ontology, with the project's prefixes bound."""
    from rdflib import Graph

    graph = Graph()
    bind_prefixes(graph)
    for triple in triples(axioms, version):
        graph.add(triple)
    return graph


def bind_prefixes(graph: object) -> None:
    """Bind the CURIE prefixes of the KG and the project vocabularies on an rdflib graph."""
    from kg.export import EVO, PREFIXES

    for prefix, base in PREFIXES.items():
        graph.bind(prefix.lower() if prefix != "biolink" else prefix, base)  # type: ignore[attr-defined]
    graph.bind("evo", f"{EVO}vocab/")  # type: ignore[attr-defined]
    graph.bind("evoid", f"{EVO}id/")  # type: ignore[attr-defined]
    graph.bind("prov", "http://www.w3.org/ns/prov#")  # type: ignore[attr-defined]
    graph.bind("dcterms", DCT)  # type: ignore[attr-defined]


def write_ntriples(axioms: Iterable[Axiom], path: Path, version: int | None = None) -> int:
    """Write the ontology as N-Triples (fast, streamed); returns the number of triples."""
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for s, p, o in triples(axioms, version):
            f.write(f"{s.n3()} {p.n3()} {o.n3()} .\n")
            count += 1
    return count


def read_axioms(path: Path, fmt: str | None = None) -> set[Axiom]:
    """The axioms of an OWL/RDF file (RDF/XML, Turtle, N-Triples, JSON-LD), e.g. saved by
    Protégé. Statements outside the ontology's axiom kinds are ignored; a file that does not
    parse, or that would make the parser fetch something (``owl:imports``, a remote JSON-LD
    context), is a ``ValueError``: nothing is fetched."""
    from rdflib import Graph
    from rdflib.util import guess_format

    fmt = fmt or guess_format(str(path)) or "xml"
    with _parsing(path, fmt):
        _refuse_remote(path, fmt)
    if fmt in ("xml", "nt"):  # owlready2 parses these natively, several times faster
        import owlready2

        world = owlready2.World()
        try:
            with _parsing(path, fmt):
                world.get_ontology(path.resolve().as_uri()).load()
            return graph_axioms(world.as_rdflib_graph())
        finally:
            world.close()
    graph = Graph()
    with _parsing(path, fmt):
        graph.parse(path, format=fmt)
    return graph_axioms(graph)


class RemoteReference(ValueError):
    """A file that asks its reader to fetch something (an import, a remote context)."""


def _refuse_remote(path: Path, fmt: str) -> None:
    """Raise ``RemoteReference`` for what a parser would fetch: ``owl:imports`` (owlready2
    loads them from the web) or a JSON-LD context given by URL (rdflib fetches it)."""
    if fmt == "json-ld" and _remote_contexts(json.loads(path.read_bytes())):
        raise RemoteReference("remote JSON-LD contexts are not fetched: put them inline")
    if fmt in ("xml", "nt") and _imports(path, fmt):
        raise RemoteReference("owl:imports are not followed: remove them from the file")


def _imports(path: Path, fmt: str) -> bool:
    """Whether an RDF/XML or N-Triples file states ``owl:imports``."""
    if fmt == "xml":
        from xml.etree.ElementTree import iterparse  # no external entities are resolved

        return any(el.tag == f"{{{_OWL}}}imports" for _, el in iterparse(path))
    with path.open(encoding="utf-8") as f:
        return any(f"<{_OWL}imports>" in line for line in f)


def _remote_contexts(value: Any) -> bool:
    """Whether a JSON-LD document names a context (or an ``@import``) by URL anywhere."""
    if isinstance(value, list):
        return any(_remote_contexts(v) for v in value)
    if not isinstance(value, dict):
        return False
    for key, v in value.items():
        named = key == "@context" and any(isinstance(x, str) for x in _as_list(v))
        if key == "@import" or named or _remote_contexts(v):
            return True
    return False


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@contextmanager
def _parsing(path: Path, fmt: str) -> Iterator[None]:
    """A parser's error (of any kind) becomes a one-line ``ValueError`` naming the file."""
    try:
        yield
    except RemoteReference as exc:
        raise ValueError(f"{path}: {exc}") from None
    except Exception as exc:  # the RDF parsers raise many kinds of errors
        raise ValueError(f"{path} is not {fmt} RDF: {' '.join(str(exc).split())}") from exc


def graph_axioms(graph: object) -> set[Axiom]:
    """The axioms of an rdflib graph (the inverse of ``to_graph``)."""
    from rdflib import BNode, Literal, URIRef
    from rdflib.namespace import OWL, RDF, RDFS

    g = graph
    out: set[Axiom] = set()

    def c(term: object) -> str | None:
        return curie(str(term)) if isinstance(term, URIRef) else None

    for s in g.subjects(RDF.type, OWL.Class):  # type: ignore[attr-defined]
        if (x := c(s)) is not None:
            out.add(Axiom("class", (x,)))
    simple = {
        URIRef(CATEGORY): "category",
        OWL.disjointWith: "disjoint",
        URIRef(OBO_REPLACED_BY): "replaced_by",
    }
    for p, kind in simple.items():
        for s, o in g.subject_objects(p):  # type: ignore[attr-defined]
            a, b = c(s), c(o)
            if a and b:
                out.add(disjoint(a, b) if kind == "disjoint" else Axiom(kind, (a, b)))
    classes = {a.terms[0] for a in out}
    for p, kind in ((RDFS.label, "label"), (URIRef(SYNONYM), "synonym")):
        for s, o in g.subject_objects(p):  # type: ignore[attr-defined]
            if (a := c(s)) in classes and isinstance(o, Literal):
                out.add(Axiom(kind, (a, str(o), o.language or "en")))
    for s, o in g.subject_objects(OWL.deprecated):  # type: ignore[attr-defined]
        if (a := c(s)) and o.toPython() is True:
            out.add(Axiom("deprecated", (a,)))
    for group in g.subjects(RDF.type, OWL.AllDisjointClasses):  # type: ignore[attr-defined]
        members = [c(m) for m in g.items(g.value(group, OWL.members))]  # type: ignore[attr-defined]
        members = [m for m in members if m]
        out |= {disjoint(a, b) for i, a in enumerate(members) for b in members[i + 1 :]}
    prop = URIRef(iri(INTERACTS_WITH))

    def restriction(node: object) -> object:
        if g.value(node, OWL.onProperty) != prop:  # type: ignore[attr-defined]
            return None
        return g.value(node, OWL.someValuesFrom)  # type: ignore[attr-defined]

    # Annotated axioms are matched by structure: writers copy the restriction's blank node.
    notes = {
        (g.value(n, OWL.annotatedSource), restriction(g.value(n, OWL.annotatedTarget))): n  # type: ignore[attr-defined]
        for n in g.subjects(RDF.type, OWL.Axiom)  # type: ignore[attr-defined]
        if g.value(n, OWL.annotatedProperty) == RDFS.subClassOf  # type: ignore[attr-defined]
    }
    for s, o in g.subject_objects(RDFS.subClassOf):  # type: ignore[attr-defined]
        a = c(s)
        if a is None:
            continue
        if not isinstance(o, BNode):
            if b := c(o):
                out.add(Axiom("subclass", (a, b)))
            continue
        filler = restriction(o)
        b = c(filler)
        if b is None:
            continue
        note = notes.get((s, filler))
        fields = {name: _text(g, note, p) for name, p in RULE_ANNOTATIONS}
        source = str(g.value(note, URIRef(f"{DCT}source")) or "") if note is not None else ""  # type: ignore[attr-defined]
        terms = (a, b, fields["severity"], fields["mechanism"], fields["management"])
        terms += (source.removeprefix(CITATION_BASE), fields["section"], fields["date"])
        out.add(Axiom("rule", terms))
    return out


def _text(graph: object, note: object, prop: str) -> str:
    from rdflib import URIRef

    if note is None:
        return ""
    value = graph.value(note, URIRef(prop))  # type: ignore[attr-defined]
    return "" if value is None else str(value)


def write_owl(axioms: Iterable[Axiom], path: Path, version: int | None = None) -> None:
    """Write the ontology as OWL in RDF/XML (what Protégé opens): one block per class with
    its annotations and axioms, then the annotated rule axioms."""
    from xml.sax.saxutils import escape, quoteattr

    def res(curie_: str) -> str:
        return f"rdf:resource={quoteattr(iri(curie_))}"

    def text(tag: str, value: str, lang: str | None = None) -> str:
        attr = f" xml:lang={quoteattr(lang)}" if lang else ""
        return f"    <{tag}{attr}>{escape(value)}</{tag}>\n"

    def restriction(target: str) -> str:
        return (
            f"<owl:Restriction><owl:onProperty {res(INTERACTS_WITH)}/>"
            f"<owl:someValuesFrom {res(target)}/></owl:Restriction>"
        )

    by_class: dict[str, list[Axiom]] = {}
    for a in axioms:
        by_class.setdefault(a.terms[0], []).append(a)
    with path.open("w", encoding="utf-8") as f:
        f.write(_XML_HEADER)
        f.write(f"<owl:Ontology rdf:about={quoteattr(ONTOLOGY_IRI)}>\n")
        if version is not None:
            f.write(f'    <owl:versionIRI rdf:resource="{ONTOLOGY_IRI}/{version}"/>\n')
            f.write(text("owl:versionInfo", str(version)))
        f.write("</owl:Ontology>\n")
        f.write(f"<owl:ObjectProperty rdf:about={quoteattr(iri(INTERACTS_WITH))}>\n")
        f.write(f'    <rdf:type rdf:resource="{_OWL}SymmetricProperty"/>\n')
        f.write(text("rdfs:label", "interacts with", "en") + "</owl:ObjectProperty>\n")
        for p in (CATEGORY, SEVERITY, MECHANISM, MANAGEMENT, SECTION, CHANGESET, SYNONYM):
            f.write(f"<owl:AnnotationProperty rdf:about={quoteattr(p)}/>\n")
        for p in (OBO_REPLACED_BY, f"{DCT}source", f"{DCT}date"):
            f.write(f"<owl:AnnotationProperty rdf:about={quoteattr(p)}/>\n")
        rules = []
        for cls in sorted(by_class):
            group = sorted(by_class[cls])
            tag = (
                "owl:Class"
                if group[0].kind == "class" or Axiom("class", (cls,)) in group
                else ("rdf:Description")
            )
            f.write(f"<{tag} rdf:about={quoteattr(iri(cls))}>\n")
            for a in group:
                t = a.terms
                if a.kind == "label":
                    f.write(text("rdfs:label", t[1], t[2]))
                elif a.kind == "synonym":
                    f.write(text("skos:altLabel", t[1], t[2]))
                elif a.kind == "category":
                    f.write(f"    <evo:category {res(t[1])}/>\n")
                elif a.kind == "subclass":
                    f.write(f"    <rdfs:subClassOf {res(t[1])}/>\n")
                elif a.kind == "disjoint":
                    f.write(f"    <owl:disjointWith {res(t[1])}/>\n")
                elif a.kind == "deprecated":
                    f.write(
                        f'    <owl:deprecated rdf:datatype="{_XSD}boolean">true</owl:deprecated>\n'
                    )
                elif a.kind == "replaced_by":
                    f.write(f"    <obo:IAO_0100001 {res(t[1])}/>\n")
                elif a.kind == "rule":
                    f.write(f"    <rdfs:subClassOf>{restriction(t[1])}</rdfs:subClassOf>\n")
                    rules.append(a)
            f.write(f"</{tag}>\n")
        for a in rules:
            t = a.terms
            f.write("<owl:Axiom>\n")
            f.write(f"    <owl:annotatedSource {res(t[0])}/>\n")
            f.write(f'    <owl:annotatedProperty rdf:resource="{_RDFS}subClassOf"/>\n')
            f.write(f"    <owl:annotatedTarget>{restriction(t[1])}</owl:annotatedTarget>\n")
            fields = dict(zip(("severity", "mechanism", "management"), t[2:5], strict=True))
            fields |= {"section": t[6], "date": t[7]}
            for name, qname in _RULE_QNAMES.items():
                if fields[name]:
                    f.write(text(qname, fields[name]))
            if t[5]:
                f.write(f"    <dcterms:source rdf:resource={quoteattr(CITATION_BASE + t[5])}/>\n")
            f.write("</owl:Axiom>\n")
        f.write("</rdf:RDF>\n")


_OWL = "http://www.w3.org/2002/07/owl#"
_RDFS = "http://www.w3.org/2000/01/rdf-schema#"
_XSD = "http://www.w3.org/2001/XMLSchema#"
_RULE_QNAMES = {
    "severity": "evo:severity",
    "mechanism": "evo:mechanism",
    "management": "evo:management",
    "section": "evo:section",
    "date": "dcterms:date",
}
_XML_HEADER = f"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:rdfs="{_RDFS}"
         xmlns:owl="{_OWL}"
         xmlns:xsd="{_XSD}"
         xmlns:skos="http://www.w3.org/2004/02/skos/core#"
         xmlns:obo="http://purl.obolibrary.org/obo/"
         xmlns:dcterms="{DCT}"
         xmlns:evo="{VOCAB}">
"""
