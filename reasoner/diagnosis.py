"""Phenotype-driven diagnosis: rank the KG's diseases for a patient's HPO terms.

The model is a likelihood-ratio (LIRICAL-like) model over the KG's HPO hierarchy and its
frequency-qualified ``biolink:has_phenotype`` annotations, with a coverage term and a prior.
The score of a disease ``d`` is a log posterior up to a constant:

``score(d) = sum_q log LR(q|d) + sum_x log LR(not x|d) + negated(d) + sex(d) + coverage(d)
+ prior(d)``

- **Observed term** ``q``: ``LR = P(q|d) / P(q) + noise``, where ``P(q) = exp(-IC(q))`` (the
  share of diseases annotated with ``q`` or below, the KG's ``ic_omim``) and ``P(q|d)`` is the
  best of: an annotation at ``q`` or below it (``f``: the patient's term is implied); an
  annotation ``t`` above ``q`` (the patient has a more specific form: ``f * P(q)/P(t)``, times
  ``subsumption_discount``); an annotation sharing an ancestor ``u`` with ``q``
  (``f * P(q)/P(u)`` times ``relative_discount``). ``noise`` is the LR of a term the disease
  does not explain (published cases report incidental findings, annotations are incomplete).
- **Frequencies** ``f``: ``k/n`` counts are smoothed towards ``prior_frequency`` with
  ``pseudo_count`` (a 1/1 case report says less than 40/50), floored at ``frequency_floor``;
  an annotation without a frequency gets ``prior_frequency``.
- **Excluded term** ``x`` (looked for and absent): ``LR = 1 - f`` for diseases where the feature
  is (nearly) obligatory (smoothed ``f >= excluded_min_frequency``), floored at
  ``excluded_floor``. Weaker frequencies are not used: in published cohorts the excluded
  findings are mostly the features of the true disease that this patient lacks, so penalising
  them at their face frequency ranks the true disease lower (measured on dev.jsonl).
- **Negated annotation** (the disease is known NOT to show ``t``, qualifier ``negated: true``):
  an observed ``t`` or a descendant multiplies the disease's LR by ``negated_lr``.
- **Sex**: annotations qualified ``sex: MALE``/``FEMALE`` count only for patients of that sex
  (or of unknown sex). A disease whose mode of inheritance is X-linked recessive or Y-linked,
  and none that affects females as well (autosomal, X-linked dominant, mitochondrial), gets
  ``LR = female_lr`` for a female patient (manifesting carriers exist, so it is not ruled out);
  the explanation cites the inheritance annotation and the patient's sex.
- **Coverage** (disease -> patient direction): the frequency-weighted mean over the disease's
  annotations of the information content of their best match among the patient's terms
  (Resnik), times the number of observed terms and ``coverage_weight``. It prefers diseases
  whose characteristic features the patient shows over diseases with long annotation lists
  that explain everything a little.
- **Prior**: ``annotation_prior * log(number of annotations)``; well-described diseases are the
  ones more often seen (and published).

Only ``OMIM:`` diseases are ranked by default (``prefixes``): HPO has no OMIM-ORPHA
cross-references, and ranking both would list many diseases twice. Orphanet's annotations still
count where an ``ORPHA:`` disease is the same as an OMIM disease: they are lent to it, at
``orphanet_weight`` times their frequency, for the terms it lacks. The OMIM disease is the one
the KG links by ``same_as`` (the same name, ``ingest.hpo.name_matches``, 1 to 1; each of them
where a curator has linked more; the lent annotation
cites the Orphanet annotation and that link, and its frequency is further multiplied by
``orphanet_name_weight``: these are mostly large, well-described entries, whose long Orphanet
lists at full weight diluted the OMIM disease's own profile on dev.jsonl), else the single
annotated OMIM disease the Orphanet disease's genes point to (citing the Orphanet annotation
and both gene edges).
- **Related OMIM diseases** lend each other the terms the borrower lacks: allelic disorders
  (caused by the same gene: its other phenotype entries) at ``allelic_weight`` times their
  frequency, citing the lender's annotation and both gene edges; the subtypes of one numbered
  series ("Loeys-Dietz syndrome 1" to "5", linked by ``similar_to``,
  ``ingest.hpo.series_links``) at ``series_weight`` times it, citing the lender's annotation
  and the link; floored at ``frequency_floor``. A patient's term seen in a related disease is
  weak evidence (the same gene's spectrum, the same clinical entity); lent terms count for
  observed terms only, not for the prior nor the coverage, which describe the disease's own
  presentation.

Only edges a reasoner may rely on (asserted, curated, inferred) are read; learner proposals are
not used.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kg.model import Edge
from kg.store import GraphStore
from kg.vocab import (
    GENE_TO_DISEASE,
    HAS_PHENOTYPE,
    SAME_AS,
    SIMILAR_TO,
    SUBCLASS_OF,
    TRUSTED_STATUSES,
)
from reasoner.answer import Evidence

MODEL_NAME = "evocdss-phenotype-lr"
#: 2: allelic disorders lend terms; 3: Orphanet lends through name links; 4: numbered series;
#: 5: X-linked recessive and Y-linked diseases are unlikely in female patients
MODEL_VERSION = "5"
PHENOTYPIC_ABNORMALITY = "HP:0000118"
MALE_LINKED = ("HP:0001419", "HP:0001450")
"""X-linked recessive and Y-linked inheritance."""
AFFECTS_FEMALES = ("HP:0000006", "HP:0000007", "HP:0001423", "HP:0001427")
"""Autosomal dominant and recessive, X-linked dominant and mitochondrial inheritance."""
SEX_GROUPS = {"": 0, "MALE": 1, "FEMALE": 2}


@dataclass(frozen=True)
class ModelParams:
    """The model's constants (chosen on dev.jsonl; see the module docstring)."""

    prior_frequency: float = 0.3
    pseudo_count: float = 8.0
    frequency_floor: float = 0.05
    subsumption_discount: float = 0.2
    relative_discount: float = 0.03
    noise_lr: float = 0.3
    coverage_weight: float = 0.6
    annotation_prior: float = 0.25
    excluded_min_frequency: float = 0.9
    excluded_floor: float = 0.1
    negated_lr: float = 0.05
    female_lr: float = 0.2
    """LR of a disease inherited only X-linked recessively or Y-linked, for a female patient."""
    orphanet_weight: float = 1.0
    """Frequency factor of Orphanet annotations lent to an OMIM disease (0: not used)."""
    orphanet_name_weight: float = 0.5
    """Further factor when the Orphanet disease is linked by name (``same_as``)."""
    allelic_weight: float = 0.1
    """Frequency factor of annotations lent by an OMIM disease of the same gene (0: not used)."""
    series_weight: float = 0.1
    """Frequency factor of annotations lent by an OMIM disease of the same numbered series
    (0: not used)."""
    leaders: int = 10
    """How many leading candidates the next questions try to separate."""


@dataclass
class _Columns:
    """Disease-term log frequencies grouped by term (a sparse CSC matrix)."""

    ptr: np.ndarray
    disease: np.ndarray
    log_under: np.ndarray
    """log of the highest frequency among the disease's annotations at the term or below."""
    log_direct: np.ndarray
    """log frequency of an annotation at exactly the term (-inf if none)."""

    def span(self, t: int) -> slice:
        return slice(int(self.ptr[t]), int(self.ptr[t + 1]))


@dataclass
class _Patient:
    present: list[tuple[int, int]]  # (position in the input list, term index)
    excluded: list[tuple[int, int]]
    unknown: list[str]
    sex: str


@dataclass
class DiagnosisIndex:
    """What the ranking needs from the KG, read once per KG version into arrays."""

    version: int
    params: ModelParams
    terms: list[str]
    term_index: dict[str, int]
    term_names: list[str]
    aliases: dict[str, int]
    ic: np.ndarray
    anc_ptr: np.ndarray
    anc_idx: np.ndarray
    phenotypic: np.ndarray
    diseases: list[str]
    disease_index: dict[str, int]
    disease_names: list[str]
    ann_ptr: np.ndarray
    ann_dis: np.ndarray
    ann_term: np.ndarray
    ann_freq: np.ndarray
    ann_raw: list[str]
    ann_negated: np.ndarray
    ann_sex: np.ndarray
    ann_edge: list[tuple[str, ...]]
    """The edges each annotation cites (a lent one: also the link to the lender)."""
    ann_lender: list[str]
    """The disease a lent annotation is taken from ("" for the disease's own)."""
    ann_related: np.ndarray
    """Whether each annotation is lent by a related OMIM disease (not in prior or coverage)."""
    log_prior: np.ndarray
    male_linked: np.ndarray
    """Per disease, its X-linked recessive or Y-linked inheritance annotation (-1: none, or
    also a mode that affects females)."""
    columns: dict[int, _Columns] = field(default_factory=dict)
    negated: _Columns | None = None
    ann_anc: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ann_anc_start: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def from_store(
        cls,
        store: GraphStore,
        *,
        prefixes: Sequence[str] = ("OMIM",),
        params: ModelParams | None = None,
    ) -> DiagnosisIndex:
        """The index of ``store`` at its current version (built once, then cached)."""
        params = params or ModelParams()
        version = store.version()
        key = (store.url, version, tuple(prefixes), params)
        with _CACHE_LOCK:
            index = _CACHE.get(key)
        if index is None:
            index = _build(store, tuple(prefixes), params, version)
            with _CACHE_LOCK:
                if len(_CACHE) >= 2:
                    _CACHE.pop(next(iter(_CACHE)))
                _CACHE[key] = index
        return index

    def ancestors(self, t: int) -> np.ndarray:
        """Term indexes of ``t`` and all its ancestors."""
        return self.anc_idx[self.anc_ptr[t] : self.anc_ptr[t + 1]]

    def resolve(self, term: str) -> int | None:
        """The index of an HP id, following alternative and obsolete ids; None if unknown."""
        i = self.term_index.get(term)
        return self.aliases.get(term) if i is None else i


_CACHE: dict[tuple, DiagnosisIndex] = {}
_CACHE_LOCK = threading.Lock()


# --- building the index -------------------------------------------------------------------------


def _build(
    store: GraphStore, prefixes: tuple[str, ...], params: ModelParams, version: int
) -> DiagnosisIndex:
    terms, term_names, store_ic, aliases, disease_names = [], [], [], {}, {}
    for node in store.iter_nodes():
        if node.id.startswith("HP:"):
            for old in (*node.properties.get("alt_ids", ()), *node.properties.get("replaces", ())):
                aliases[old] = len(terms)
            terms.append(node.id)
            term_names.append(node.name)
            store_ic.append(float(node.properties.get("ic_omim", math.nan)))
        elif node.category == "biolink:Disease" and node.id.split(":", 1)[0] in prefixes:
            disease_names[node.id] = node.name
    term_index = {t: i for i, t in enumerate(terms)}
    parents: list[list[int]] = [[] for _ in terms]
    trusted = sorted(TRUSTED_STATUSES)
    for e in store.edges(predicate=SUBCLASS_OF, statuses=trusted):
        child, parent = term_index.get(e.subject), term_index.get(e.object)
        if child is not None and parent is not None:
            parents[child].append(parent)
    anc_ptr, anc_idx = _ancestor_lists(parents)

    rows = []
    for e in store.edges(predicate=HAS_PHENOTYPE, statuses=trusted):
        t = term_index.get(e.object)
        if t is not None and e.subject in disease_names:
            q = e.qualifiers
            negated = bool(q.get("negated"))
            freq = _frequency(q, params)
            sex = _sex_group(q.get("sex"))
            raw = str(q.get("frequency_raw", ""))
            rows.append((e.subject, t, negated, freq, sex, raw, (e.id,), False, ""))
    genes_of: dict[str, dict[str, str]] = defaultdict(dict)  # disease -> gene -> edge id
    for e in store.edges(predicate=GENE_TO_DISEASE, statuses=trusted):
        genes_of[e.object][e.subject] = e.id
    omim_terms, diseases_of = _terms_of(rows), _diseases_of(genes_of)
    lent = _orphanet_rows(store, omim_terms, genes_of, diseases_of, term_index, params)
    lent.update(_related_rows(store, rows, omim_terms, genes_of, diseases_of, params, lent))
    rows += lent.values()
    rows.sort()
    annotated = sorted({r[0] for r in rows if not r[2]})
    disease_index = {d: i for i, d in enumerate(annotated)}
    rows = [r for r in rows if r[0] in disease_index]
    n_t, n_d = len(terms), len(annotated)
    ann_dis = np.array([disease_index[r[0]] for r in rows], dtype=np.int64)
    ann_term = np.array([r[1] for r in rows], dtype=np.int64)
    ann_negated = np.array([r[2] for r in rows], dtype=bool)
    ann_freq = np.array([r[3] for r in rows], dtype=np.float64)
    ann_sex = np.array([r[4] for r in rows], dtype=np.int8)
    ann_related = np.array([r[7] for r in rows], dtype=bool)
    sizes = np.bincount(ann_dis[~ann_negated & ~ann_related], minlength=n_d)

    ic = np.array(store_ic)
    if np.isnan(ic).any():
        ic = _ic_from_annotations(ann_dis[~ann_negated], ann_term[~ann_negated], anc_ptr, anc_idx)
    ic = _fill_unannotated(ic, anc_ptr, anc_idx)
    root = term_index.get(PHENOTYPIC_ABNORMALITY, -1)
    phenotypic = np.add.reduceat((anc_idx == root).astype(np.int64), anc_ptr[:-1]) > 0

    index = DiagnosisIndex(
        version=version,
        params=params,
        terms=terms,
        term_index=term_index,
        term_names=term_names,
        aliases={a: i for a, i in aliases.items() if a not in term_index},
        ic=ic,
        anc_ptr=anc_ptr,
        anc_idx=anc_idx,
        phenotypic=phenotypic,
        diseases=annotated,
        disease_index=disease_index,
        disease_names=[disease_names[d] for d in annotated],
        ann_ptr=np.searchsorted(ann_dis, np.arange(n_d + 1)).astype(np.int64),
        ann_dis=ann_dis,
        ann_term=ann_term,
        ann_freq=ann_freq,
        ann_raw=[r[5] for r in rows],
        ann_negated=ann_negated,
        ann_sex=ann_sex,
        ann_edge=[r[6] for r in rows],
        ann_lender=[r[8] for r in rows],
        ann_related=ann_related,
        log_prior=params.annotation_prior * np.log(np.maximum(sizes, 1)),
        male_linked=_male_linked(ann_dis, ann_term, ann_negated | ann_related, n_d, term_index),
    )
    positive = ~ann_negated
    for group in SEX_GROUPS.values():
        m = positive & (ann_sex == group)
        if m.any():
            index.columns[group] = _columns(ann_dis[m], ann_term[m], ann_freq[m], anc_ptr, anc_idx)
    if ann_negated.any():
        itself = np.arange(n_t + 1, dtype=np.int64)
        m = ann_negated
        index.negated = _columns(ann_dis[m], ann_term[m], np.ones(int(m.sum())), itself, itself)
    index.ann_anc, index.ann_anc_start = _flat_ancestors(ann_term, anc_ptr, anc_idx)
    return index


def _male_linked(
    dis: np.ndarray, term: np.ndarray, skip: np.ndarray, n_d: int, term_index: dict[str, int]
) -> np.ndarray:
    """Per disease, the row of its own X-linked recessive or Y-linked inheritance annotation,
    or -1 (none, or the disease also has a mode of inheritance that affects females)."""
    out = np.full(n_d, -1, dtype=np.int64)
    male = {term_index[t] for t in MALE_LINKED if t in term_index}
    female = {term_index[t] for t in AFFECTS_FEMALES if t in term_index}
    both = np.zeros(n_d, dtype=bool)
    for r in np.flatnonzero(~skip & np.isin(term, sorted(male | female))):
        if term[r] in male:
            out[dis[r]] = r
        else:
            both[dis[r]] = True
    out[both] = -1
    return out


def _orphanet_rows(
    store: GraphStore,
    omim_terms: dict[str, set[int]],
    genes_of: dict[str, dict[str, str]],
    diseases_of: dict[str, set[str]],
    term_index: dict[str, int],
    params: ModelParams,
) -> dict[tuple[str, int], tuple]:
    """Annotations of Orphanet diseases lent to the OMIM disease they are the same as.

    That is each annotated OMIM disease an ``ORPHA:`` disease is linked to by ``same_as`` (citing
    the link), else the one annotated OMIM disease its causal genes are associated with (the
    same gene-defined entity; citing both ``gene_associated_with_condition`` edges). Its
    annotations of terms the OMIM disease lacks are added to it (frequency times
    ``orphanet_weight``, and ``orphanet_name_weight`` through a name link), each also citing
    the Orphanet ``has_phenotype`` edge; keyed by (disease, term index)."""
    if params.orphanet_weight <= 0:
        return {}
    lent: dict[tuple[str, int], tuple] = {}
    same_as = _same_as_omim(store, omim_terms)
    for e in store.edges(predicate=HAS_PHENOTYPE, statuses=sorted(TRUSTED_STATUSES)):
        t = term_index.get(e.object)
        if t is None or not e.subject.startswith("ORPHA:"):
            continue
        if e.subject in same_as:
            weight = params.orphanet_weight * params.orphanet_name_weight
            borrowers = [(d, (e.id, link)) for d, link in same_as[e.subject]]
        else:
            weight = params.orphanet_weight
            genes = genes_of.get(e.subject, {})
            omim = {d for g in genes for d in diseases_of[g] if d in omim_terms}
            if len(omim) != 1:
                continue
            d = omim.pop()
            gene = next(g for g in sorted(genes) if d in diseases_of[g])
            borrowers = [(d, (e.id, genes[gene], genes_of[d][gene]))]
        q = e.qualifiers
        freq = max(_frequency(q, params) * weight, params.frequency_floor)
        for d, cited in borrowers:
            if t in omim_terms[d]:
                continue
            row = (d, t, bool(q.get("negated")), freq, _sex_group(q.get("sex")))
            row += (str(q.get("frequency_raw", "")), cited, False, e.subject)
            if (d, t) not in lent or lent[(d, t)][3] < freq:
                lent[(d, t)] = row
    return lent


def _same_as_omim(
    store: GraphStore, omim_terms: dict[str, set[int]]
) -> dict[str, list[tuple[str, str]]]:
    """Orphanet disease -> each annotated OMIM disease it is ``same_as`` (the build links 1 to 1;
    a curator may add more), with the link's edge id."""
    links: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in store.edges(predicate=SAME_AS, statuses=sorted(TRUSTED_STATUSES)):
        for orpha, omim in ((e.subject, e.object), (e.object, e.subject)):
            if orpha.startswith("ORPHA:") and omim in omim_terms and omim.startswith("OMIM:"):
                links[orpha].append((omim, e.id))
    return links


def _related_rows(
    store: GraphStore,
    rows: list[tuple],
    omim_terms: dict[str, set[int]],
    genes_of: dict[str, dict[str, str]],
    diseases_of: dict[str, set[str]],
    params: ModelParams,
    taken: dict[tuple[str, int], tuple],
) -> dict[tuple[str, int], tuple]:
    """Annotations an OMIM disease lends to the related OMIM diseases (``_relatives``).

    Only positive annotations of terms the borrower has neither itself nor from Orphanet
    (``taken``) are lent, at the relation's weight times their frequency, each citing the
    lender's ``has_phenotype`` edge and the edges that relate the two diseases; per (disease,
    term index) the highest frequency is kept."""
    relatives = _relatives(store, omim_terms, genes_of, diseases_of, params)
    lent: dict[tuple[str, int], tuple] = {}
    for lender, t, negated, f, sex, raw, (edge_id,), *_ in rows:
        if negated:
            continue
        for d, links, weight in relatives.get(lender, ()):
            if t in omim_terms[d] or (d, t) in taken:
                continue
            freq = max(f * weight, params.frequency_floor)
            if (d, t) not in lent or lent[(d, t)][3] < freq:
                lent[(d, t)] = (d, t, False, freq, sex, raw, (edge_id, *links), True, lender)
    return lent


def _relatives(
    store: GraphStore,
    omim_terms: dict[str, set[int]],
    genes_of: dict[str, dict[str, str]],
    diseases_of: dict[str, set[str]],
    params: ModelParams,
) -> dict[str, list[tuple[str, tuple[str, ...], float]]]:
    """Annotated OMIM disease -> (related annotated OMIM disease, the edges relating them, the
    weight of what it lends): the allelic disorders (the shared gene's two edges) at
    ``allelic_weight`` and the diseases of its numbered series (``similar_to``) at
    ``series_weight``; a relation of weight 0 is left out."""
    relatives: dict[str, list[tuple[str, tuple[str, ...], float]]] = defaultdict(list)
    if params.allelic_weight > 0:
        for lender in sorted(d for d in genes_of if d in omim_terms):
            for gene in sorted(genes_of[lender]):
                for d in sorted(diseases_of[gene] - {lender}):
                    if d in omim_terms:
                        links = (genes_of[lender][gene], genes_of[d][gene])
                        relatives[lender].append((d, links, params.allelic_weight))
    if params.series_weight > 0:
        for e in store.edges(predicate=SIMILAR_TO, statuses=sorted(TRUSTED_STATUSES)):
            if e.subject in omim_terms and e.object in omim_terms:
                relatives[e.subject].append((e.object, (e.id,), params.series_weight))
                relatives[e.object].append((e.subject, (e.id,), params.series_weight))
    return relatives


def _diseases_of(genes_of: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    """Gene -> the diseases associated with it."""
    diseases_of: dict[str, set[str]] = defaultdict(set)
    for disease, genes in genes_of.items():
        for gene in genes:
            diseases_of[gene].add(disease)
    return diseases_of


def _terms_of(rows: list[tuple]) -> dict[str, set[int]]:
    """Disease -> the term indexes it is annotated with (positively or not)."""
    terms: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        terms[r[0]].add(r[1])
    return terms


def _frequency(qualifiers: dict[str, Any], params: ModelParams) -> float:
    """The annotation's frequency: ``k/n`` smoothed, a class midpoint, or the prior."""
    f = qualifiers.get("frequency")
    if not isinstance(f, int | float):
        return params.prior_frequency
    raw = str(qualifiers.get("frequency_raw", ""))
    parts = [p.split("/") for p in raw.split(";")] if "/" in raw else []
    if parts and all(len(p) == 2 and p[0].isdigit() and p[1].isdigit() for p in parts):
        k, n = sum(int(p[0]) for p in parts), sum(int(p[1]) for p in parts)
        f = (k + params.pseudo_count * params.prior_frequency) / (n + params.pseudo_count)
    return max(float(f), params.frequency_floor)


def _sex_group(value: Any) -> int:
    sexes = {s.strip().upper() for s in str(value or "").split(";")} - {""}
    return SEX_GROUPS.get(sexes.pop(), 0) if len(sexes) == 1 else 0


def _ancestor_lists(parents: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Every term's ancestors including itself, as CSR arrays (``ptr``, ``idx``)."""
    done: list[np.ndarray | None] = [None] * len(parents)
    for start in range(len(parents)):
        stack = [start]
        while stack:
            t = stack[-1]
            if done[t] is not None:
                stack.pop()
                continue
            todo = [p for p in parents[t] if done[p] is None]
            if todo:
                stack.extend(todo)
                continue
            done[t] = np.unique(np.concatenate([[t], *(done[p] for p in parents[t])]))
            stack.pop()
    lists = [a if a is not None else np.zeros(0, dtype=np.int64) for a in done]
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(a) for a in lists])
    idx = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, dtype=np.int64)
    return ptr, idx


def _flat_ancestors(
    term: np.ndarray, anc_ptr: np.ndarray, anc_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ancestors of each entry of ``term``, concatenated, and where each entry's start."""
    lens = anc_ptr[term + 1] - anc_ptr[term]
    starts = np.cumsum(lens) - lens
    offsets = np.arange(int(lens.sum())) - np.repeat(starts, lens)
    return anc_idx[np.repeat(anc_ptr[term], lens) + offsets], starts


def _ic_from_annotations(
    dis: np.ndarray, term: np.ndarray, anc_ptr: np.ndarray, anc_idx: np.ndarray
) -> np.ndarray:
    """-log(share of diseases annotated with each term or below), where the KG has no IC."""
    n_t, n_d = len(anc_ptr) - 1, int(dis.max()) + 1 if len(dis) else 1
    anc, _ = _flat_ancestors(term, anc_ptr, anc_idx)
    lens = anc_ptr[term + 1] - anc_ptr[term]
    pairs = np.unique(anc * n_d + np.repeat(dis, lens))
    counts = np.bincount(pairs // n_d, minlength=n_t)
    return -np.log(np.maximum(counts, 1) / n_d)


def _fill_unannotated(ic: np.ndarray, anc_ptr: np.ndarray, anc_idx: np.ndarray) -> np.ndarray:
    """Give terms no disease is annotated with (IC 0 in the source) the IC of their most
    specific annotated ancestor: they are at least as rare as it is."""
    ic = ic.copy()
    for t in np.flatnonzero(ic == 0):
        ic[t] = ic[anc_idx[anc_ptr[t] : anc_ptr[t + 1]]].max()
    return ic


def _columns(
    dis: np.ndarray, term: np.ndarray, freq: np.ndarray, anc_ptr: np.ndarray, anc_idx: np.ndarray
) -> _Columns:
    """Annotations propagated to every ancestor: per (ancestor, disease) the best frequency."""
    anc, _ = _flat_ancestors(term, anc_ptr, anc_idx)
    lens = anc_ptr[term + 1] - anc_ptr[term]
    dd, logf = np.repeat(dis, lens), np.log(np.repeat(freq, lens))
    direct = anc == np.repeat(term, lens)
    order = np.lexsort((-logf, dd, anc))
    anc, dd, logf, direct = anc[order], dd[order], logf[order], direct[order]
    first = np.ones(len(anc), dtype=bool)
    first[1:] = (anc[1:] != anc[:-1]) | (dd[1:] != dd[:-1])
    group = np.cumsum(first) - 1
    log_direct = np.full(int(first.sum()), -np.inf)
    np.maximum.at(log_direct, group[direct], logf[direct])
    ptr = np.searchsorted(anc[first], np.arange(len(anc_ptr))).astype(np.int64)
    return _Columns(ptr=ptr, disease=dd[first], log_under=logf[first], log_direct=log_direct)


# --- scoring ------------------------------------------------------------------------------------


def _patient(index: DiagnosisIndex, patient: dict[str, Any]) -> _Patient:
    present, excluded, unknown, seen = [], [], [], set()
    for key, out in (("phenotypes", present), ("excluded_phenotypes", excluded)):
        for pos, term in enumerate(patient.get(key) or ()):
            t = index.resolve(term)
            if t is None:
                unknown.append(term)
            elif (key, t) not in seen:
                seen.add((key, t))
                out.append((pos, t))
    sex = str(patient.get("sex") or "").upper()
    return _Patient(present, excluded, unknown, sex if sex in SEX_GROUPS else "")


def _groups(index: DiagnosisIndex, sex: str) -> list[_Columns]:
    wanted = {0, SEX_GROUPS[sex]} if sex else set(SEX_GROUPS.values())
    return [c for g, c in index.columns.items() if g in wanted]


def _score_parts(index: DiagnosisIndex, p: _Patient) -> dict[str, np.ndarray]:
    """The score of every disease, by part (their sum is the score)."""
    params, n_d = index.params, len(index.diseases)
    groups = _groups(index, p.sex)
    log_noise = math.log(params.noise_lr)
    log_sub, log_rel = math.log(params.subsumption_discount), math.log(params.relative_discount)
    observed, negated = np.zeros(n_d), np.zeros(n_d)
    for _, q in p.present:
        best = np.full(n_d, -np.inf)
        for u in index.ancestors(q):
            for cols in groups:
                span = cols.span(u)
                if u == q:
                    values = cols.log_under[span] + index.ic[q]
                else:
                    values = np.maximum(
                        cols.log_direct[span] + log_sub, cols.log_under[span] + log_rel
                    )
                    values += index.ic[u]
                np.maximum.at(best, cols.disease[span], values)
        observed += np.logaddexp(best, log_noise)
        if index.negated is not None:
            hit = np.zeros(n_d, dtype=bool)
            for u in index.ancestors(q):
                hit[index.negated.disease[index.negated.span(u)]] = True
            negated[hit] += math.log(params.negated_lr)
    excluded = np.zeros(n_d)
    for _, x in p.excluded:
        f = np.zeros(n_d)
        for cols in groups:
            span = cols.span(x)
            np.maximum.at(f, cols.disease[span], np.exp(cols.log_under[span]))
        f[f < params.excluded_min_frequency] = 0.0
        excluded += np.log(np.maximum(1.0 - f, params.excluded_floor))
    sex = np.zeros(n_d)
    if p.sex == "FEMALE":
        sex[index.male_linked >= 0] = math.log(params.female_lr)
    return {
        "observed": observed,
        "negated": negated,
        "excluded": excluded,
        "sex": sex,
        "coverage": _coverage(index, p),
        "prior": index.log_prior,
    }


def _coverage(index: DiagnosisIndex, p: _Patient) -> np.ndarray:
    """Per disease: weight * n_observed * mean over its annotations of IC(best patient match)."""
    n_d = len(index.diseases)
    if not p.present or not index.params.coverage_weight:
        return np.zeros(n_d)
    closure_ic = np.zeros(len(index.terms))
    for _, q in p.present:
        anc = index.ancestors(q)
        closure_ic[anc] = index.ic[anc]
    best = np.maximum.reduceat(closure_ic[index.ann_anc], index.ann_anc_start)
    w = np.where(index.ann_negated | index.ann_related, 0.0, index.ann_freq)
    num = np.bincount(index.ann_dis, weights=w * best, minlength=n_d)
    den = np.bincount(index.ann_dis, weights=w, minlength=n_d)
    scale = index.params.coverage_weight * len(p.present)
    return scale * num / np.maximum(den, 1e-12)


def score_diseases(index: DiagnosisIndex, patient: dict[str, Any]) -> np.ndarray:
    """The score (log posterior up to a constant) of every disease of ``index.diseases``."""
    return sum(_score_parts(index, _patient(index, patient)).values())


def ranking(scores: np.ndarray) -> np.ndarray:
    """Disease indexes best first (ties keep the index order, i.e. by disease id)."""
    return np.argsort(-scores, kind="stable")


# --- explaining the leaders ---------------------------------------------------------------------


@dataclass
class _Profile:
    """One disease's annotations: at each term, and the best one at or below each term."""

    direct: dict[int, int]
    under: dict[int, int]
    negated: dict[int, int]


def _profile(index: DiagnosisIndex, d: int, sex: str) -> _Profile:
    wanted = {0, SEX_GROUPS[sex]} if sex else set(SEX_GROUPS.values())
    direct, under, negated = {}, {}, {}
    for r in range(index.ann_ptr[d], index.ann_ptr[d + 1]):
        t = int(index.ann_term[r])
        if index.ann_negated[r]:
            negated[t] = r
            continue
        if int(index.ann_sex[r]) not in wanted:
            continue
        direct[t] = r
        for u in index.ancestors(t).tolist():
            if u not in under or index.ann_freq[r] > index.ann_freq[under[u]]:
                under[u] = r
    return _Profile(direct, under, negated)


def _match(index: DiagnosisIndex, prof: _Profile, q: int) -> tuple[float, str, int, int] | None:
    """How ``prof`` best explains observed term ``q``: (log value, kind, annotation row, via)."""
    params = index.params
    best: tuple[float, str, int, int] | None = None
    r = prof.under.get(q)
    if r is not None:
        kind = "exact" if index.ann_term[r] == q else "implied"
        best = (math.log(index.ann_freq[r]) + index.ic[q], kind, r, q)
    for u in index.ancestors(q).tolist():
        if u == q:
            continue
        for rows, kind, discount in (
            (prof.direct, "subsumed", params.subsumption_discount),
            (prof.under, "related", params.relative_discount),
        ):
            r = rows.get(u)
            if r is not None:
                value = math.log(index.ann_freq[r] * discount) + index.ic[u]
                if best is None or value > best[0]:
                    best = (value, kind, r, u)
    return best


def _explain(
    index: DiagnosisIndex,
    d: int,
    p: _Patient,
    patient: dict[str, Any],
    cite: _Citer,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Supporting, contradicting and unexplained patient terms for disease ``d``."""
    params = index.params
    prof = _profile(index, d, p.sex)
    log_noise = math.log(params.noise_lr)
    supporting, contradicting, unexplained = [], [], []
    for pos, q in p.present:
        fact = cite.patient("phenotypes", pos, patient["phenotypes"][pos], index.term_names[q])
        m = _match(index, prof, q)
        if m is not None and m[0] > log_noise:
            value, kind, r, via = m
            item = _item(index, q, kind, r, float(np.logaddexp(value, log_noise)))
            if kind == "related":
                item["shared_ancestor"] = index.terms[via]
                item["shared_ancestor_name"] = index.term_names[via]
            item["citations"] = [fact, *cite.edges(index.ann_edge[r])]
            supporting.append(item)
        else:
            unexplained.append(
                {"phenotype": index.terms[q], "name": index.term_names[q], "citations": [fact]}
            )
        for u in index.ancestors(q).tolist():
            r = prof.negated.get(u)
            if r is not None:
                item = _item(index, q, "excluded_in_disease", r, math.log(params.negated_lr))
                item["citations"] = [fact, *cite.edges(index.ann_edge[r])]
                contradicting.append(item)
    for pos, x in p.excluded:
        r = prof.under.get(x)
        if r is None or index.ann_freq[r] < params.excluded_min_frequency:
            continue
        fact = cite.patient(
            "excluded_phenotypes", pos, patient["excluded_phenotypes"][pos], index.term_names[x]
        )
        log_lr = math.log(max(1.0 - index.ann_freq[r], params.excluded_floor))
        item = _item(index, x, "absent_in_patient", r, log_lr)
        item["citations"] = [fact, *cite.edges(index.ann_edge[r])]
        contradicting.append(item)
    r = int(index.male_linked[d])
    if p.sex == "FEMALE" and r >= 0:
        t = int(index.ann_term[r])
        item = _item(index, t, "inheritance_vs_sex", r, math.log(params.female_lr))
        fact = cite.patient("sex", None, patient["sex"], "female")
        item["citations"] = [fact, *cite.edges(index.ann_edge[r])]
        contradicting.append(item)
    return supporting, contradicting, unexplained


def _item(index: DiagnosisIndex, q: int, kind: str, r: int, log_lr: float) -> dict[str, Any]:
    t = int(index.ann_term[r])
    return {
        "phenotype": index.terms[q],
        "name": index.term_names[q],
        "match": kind,
        "annotation": index.terms[t],
        "annotation_name": index.term_names[t],
        "frequency": 0.0 if index.ann_negated[r] else round(float(index.ann_freq[r]), 3),
        "frequency_raw": index.ann_raw[r],
        "log_lr": round(log_lr, 3),
        "edges": list(index.ann_edge[r]),
        "lent_by": index.ann_lender[r] or None,
    }


class _Citer:
    """Citation keys through an ``Evidence`` (or none without one)."""

    def __init__(self, evidence: Evidence | None) -> None:
        self.evidence = evidence
        self._edges: dict[str, Edge | None] = {}

    def patient(self, key: str, pos: int | None, value: str, name: str) -> str:
        path = key if pos is None else f"{key}[{pos}]"
        if self.evidence is None:
            return f"patient:{path}"
        label = f"excluded: {name}" if key == "excluded_phenotypes" else name
        return self.evidence.patient(path, label, value)

    def edges(self, edge_ids: tuple[str, ...]) -> list[str]:
        if self.evidence is None:
            return []
        keys = []
        for edge_id in edge_ids:
            if edge_id not in self._edges:
                self._edges[edge_id] = self.evidence.store.get_edge(edge_id)
            edge = self._edges[edge_id]
            if edge is not None:
                keys.append(self.evidence.edge(edge))
        return keys


# --- next questions -----------------------------------------------------------------------------


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)


def _next_questions(
    index: DiagnosisIndex,
    leaders: list[int],
    weights: np.ndarray,
    profiles: list[_Profile],
    p: _Patient,
    cite: _Citer,
    limit: int,
) -> list[dict[str, Any]]:
    """Terms annotated to the leaders (not only lent by a related disease), not yet asked,
    whose answer best separates them."""
    known = set()
    for _, q in p.present:
        known.update(index.ancestors(q).tolist())
    excluded = {x for _, x in p.excluded}
    candidates = sorted(
        {
            t
            for prof in profiles
            for t, r in prof.direct.items()
            if index.phenotypic[t]
            and not index.ann_related[r]
            and t not in known
            and not excluded.intersection(index.ancestors(t).tolist())
        }
    )
    if not candidates or len(leaders) < 2:
        return []
    rows = [[prof.under.get(t) for prof in profiles] for t in candidates]
    background = np.clip(np.exp(-index.ic[candidates]), 1e-3, 0.5)
    yes = np.array(
        [
            [background[i] if r is None else index.ann_freq[r] for r in row]
            for i, row in enumerate(rows)
        ]
    )
    prior = weights / weights.sum()
    p_yes = yes @ prior
    post_yes = yes * prior / p_yes[:, None]
    post_no = (1 - yes) * prior / (1 - p_yes)[:, None]
    gain = _entropy(prior) - p_yes * _entropy(post_yes) - (1 - p_yes) * _entropy(post_no)
    out = []
    for i in np.argsort(-gain, kind="stable")[:limit]:
        if gain[i] <= 1e-6:
            break
        out.append(
            {
                "phenotype": index.terms[candidates[i]],
                "name": index.term_names[candidates[i]],
                "expected_information_gain": round(float(gain[i]), 4),
                "probability_present": round(float(p_yes[i]), 3),
                "why": _why(index, candidates[i], leaders, yes[i], rows[i]),
                "citations": [
                    k for r in rows[i] if r is not None for k in cite.edges(index.ann_edge[r])
                ],
            }
        )
    return out


def _why(index: DiagnosisIndex, t: int, leaders: list[int], yes: np.ndarray, rows: list) -> str:
    """Which leading candidates a question about ``t`` tells apart, in words."""

    def names(js: list[int], frequency: bool, n: int = 3) -> str:
        shown = [
            f"{index.disease_names[leaders[j]]} ({index.diseases[leaders[j]]}"
            + (f", {yes[j]:.0%})" if frequency else ")")
            for j in js[:n]
        ]
        return ", ".join(shown) + (f" and {len(js) - n} more" if len(js) > n else "")

    order = [int(j) for j in np.argsort(-yes, kind="stable")]
    annotated = [j for j in order if rows[j] is not None]
    likely = [j for j in annotated if yes[j] >= 0.4] or annotated[:1]
    rare = [j for j in annotated if j not in likely and yes[j] < 0.15]
    absent = [j for j in order if rows[j] is None]
    parts = [f"{index.term_names[t]} is expected in {names(likely, True)}"]
    if absent:
        parts.append(f"not annotated to {names(absent, False)}")
    if rare:
        parts.append(f"rare in {names(rare, True)}")
    return "; ".join(parts) + ": its presence or absence separates these candidates."


# --- the tool -----------------------------------------------------------------------------------


def diagnose(
    index: DiagnosisIndex,
    patient: dict[str, Any],
    evidence: Evidence | None = None,
    top_k: int = 10,
    next_questions: int = 5,
) -> dict[str, Any]:
    """Rank diseases for ``patient`` (``phenotypes``, ``excluded_phenotypes``: HP ids; ``sex``).

    Returns plain dicts: ``differential`` (the ``top_k`` diseases, best first, each with
    ``score``, ``posterior`` among all ranked diseases, ``score_parts``, and the patient terms
    ``supporting`` it, ``contradicting`` it and ``unexplained`` by it, each citing the patient
    fact and the ``has_phenotype`` edge used), ``next_questions`` (phenotypes whose presence or
    absence best separates the leaders, by expected information gain), ``unknown_phenotypes``
    (ids not in the KG), ``kg_version`` and ``model``. With an ``Evidence`` every item's
    ``citations`` are keys of ``evidence.refs``; without one, only patient keys are given.
    """
    p = _patient(index, patient)
    parts = _score_parts(index, p)
    scores = sum(parts.values())
    order = ranking(scores)
    shifted = np.exp(scores - scores[order[0]]) if len(order) else scores
    posterior = shifted / shifted.sum() if len(order) else shifted
    cite = _Citer(evidence)
    leaders = order[: max(top_k, index.params.leaders)].tolist()
    profiles = [_profile(index, d, p.sex) for d in leaders[: index.params.leaders]]
    differential = []
    for rank, d in enumerate(leaders[:top_k], start=1):
        supporting, contradicting, unexplained = _explain(index, d, p, patient, cite)
        entry = {
            "rank": rank,
            "disease": index.diseases[d],
            "name": index.disease_names[d],
            "score": round(float(scores[d]), 4),
            "posterior": round(float(posterior[d]), 4),
            "score_parts": {k: round(float(v[d]), 4) for k, v in parts.items()},
            "supporting": supporting,
            "contradicting": contradicting,
            "unexplained": unexplained,
        }
        if evidence is not None:
            label = f"{index.disease_names[d]} ranked {rank} (posterior {posterior[d]:.3f})"
            value = {"disease": entry["disease"], "rank": rank, "score": entry["score"]}
            entry["citations"] = [evidence.model(MODEL_NAME, MODEL_VERSION, label, value)]
        differential.append(entry)
    lead = leaders[: index.params.leaders]
    questions = _next_questions(index, lead, posterior[lead], profiles, p, cite, next_questions)
    return {
        "differential": differential,
        "next_questions": questions,
        "unknown_phenotypes": p.unknown,
        "ranked_diseases": len(index.diseases),
        "kg_version": index.version,
        "model": model_card(index),
    }


def model_card(index: DiagnosisIndex) -> dict[str, Any]:
    """The model's name, version and constants (to cite or report with its outputs)."""
    return {"name": MODEL_NAME, "version": MODEL_VERSION, "params": asdict(index.params)}
