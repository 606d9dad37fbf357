"""Phenotype-driven diagnosis over a KG built by the real HPO loader, and its benchmark."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from evaluation.diagnosis import evaluate_diagnosis, read_cases
from ingest.hpo import load_hpo
from kg.model import Citation, Edge
from kg.settings import Settings
from kg.sqlite_store import SQLiteStore
from kg.vocab import GENE_TO_DISEASE, HAS_PHENOTYPE, SAME_AS, SIMILAR_TO, Status
from reasoner.answer import Evidence
from reasoner.diagnosis import DiagnosisIndex, diagnose, ranking, score_diseases

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = SHARED_DATA / "phenopackets" / "dev.jsonl"
MARFAN = "OMIM:154700"
NF2, VESTIBULAR_SCHWANNOMA = "OMIM:101000", "HP:0009588"  # seen in 62 of 63 patients
AMPD_DEFICIENCY, HIGH_LACTATE = "ORPHA:45", "HP:0002151"  # Orphanet: NOT increased lactate
DUCHENNE, X_LINKED_RECESSIVE = "OMIM:310200", "HP:0001419"
RETINITIS_PIGMENTOSA = "OMIM:268000"  # X-linked recessive and autosomal recessive


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[SQLiteStore]:
    batch = load_hpo(settings)
    s = SQLiteStore(tmp_path_factory.mktemp("diagnosis") / "kg.sqlite")
    s.upsert(
        citations=[batch.citation, *batch.extra_citations],
        nodes=batch.nodes,
        edges=batch.edges,
        actor="build",
    )
    yield s
    s.close()


@pytest.fixture(scope="module")
def index(store: SQLiteStore) -> DiagnosisIndex:
    return DiagnosisIndex.from_store(store)


def top_terms(store: SQLiteStore, disease: str, n: int) -> list[str]:
    """The disease's ``n`` most frequent phenotype annotations (a textbook presentation)."""
    edges = [
        e
        for e in store.edges(subject=disease, predicate=HAS_PHENOTYPE)
        if e.qualifiers.get("aspect") == "P" and not e.qualifiers.get("negated")
    ]
    edges.sort(key=lambda e: (-e.qualifiers.get("frequency", 0.0), e.object))
    return [e.object for e in edges[:n]]


def rank_of(index: DiagnosisIndex, patient: dict, disease: str) -> int:
    order = ranking(score_diseases(index, patient)).tolist()
    return order.index(index.disease_index[disease]) + 1


def test_index_reads_the_kg_once_per_version(store: SQLiteStore, index: DiagnosisIndex) -> None:
    assert DiagnosisIndex.from_store(store) is index
    assert index.version == store.version()
    assert len(index.diseases) >= 8_000 and all(d.startswith("OMIM:") for d in index.diseases)
    assert len(index.terms) >= 19_000 and len(index.ann_term) >= 150_000
    assert index.resolve("HP:0001250") == index.term_index["HP:0001250"]
    old, new = next(iter(index.aliases.items()))  # an alternative or obsolete id
    assert old not in index.term_index and index.resolve(old) == new


def test_marfan_from_its_annotations_ranks_in_top_three(
    store: SQLiteStore, index: DiagnosisIndex
) -> None:
    patient = {"phenotypes": top_terms(store, MARFAN, 8), "sex": "FEMALE"}
    result = diagnose(index, patient, None, top_k=3)
    assert MARFAN in [d["disease"] for d in result["differential"]]
    marfan = next(d for d in result["differential"] if d["disease"] == MARFAN)
    assert marfan["name"] == "Marfan syndrome"
    assert len(marfan["supporting"]) == 8 and not marfan["unexplained"]
    assert {s["match"] for s in marfan["supporting"]} == {"exact"}
    assert sum(d["posterior"] for d in result["differential"]) <= 1.0 + 1e-6
    assert result["kg_version"] == store.version()


def test_excluded_obligate_feature_lowers_the_disease(
    store: SQLiteStore, index: DiagnosisIndex
) -> None:
    edge = store.edges(subject=NF2, predicate=HAS_PHENOTYPE, object=VESTIBULAR_SCHWANNOMA)[0]
    assert edge.qualifiers["frequency"] >= 0.95
    schwannoma = index.term_index[VESTIBULAR_SCHWANNOMA]
    present = [  # consistent with the exclusion: no kind of vestibular schwannoma
        t
        for t in top_terms(store, NF2, 10)
        if schwannoma not in index.ancestors(index.term_index[t])
    ][:4]
    patient = {"phenotypes": present}
    excluding = {**patient, "excluded_phenotypes": [VESTIBULAR_SCHWANNOMA]}
    d = index.disease_index[NF2]
    assert score_diseases(index, excluding)[d] < score_diseases(index, patient)[d] - 1.0
    assert rank_of(index, excluding, NF2) >= rank_of(index, patient, NF2)
    evidence = Evidence(store)
    before = diagnose(index, patient, None, top_k=50)["differential"]
    result = diagnose(index, excluding, evidence, top_k=50)
    nf2 = next(x for x in result["differential"] if x["disease"] == NF2)
    assert nf2["posterior"] < next(x for x in before if x["disease"] == NF2)["posterior"]
    against = [c for c in nf2["contradicting"] if c["phenotype"] == VESTIBULAR_SCHWANNOMA]
    assert against and against[0]["match"] == "absent_in_patient" and against[0]["log_lr"] < 0
    assert against[0]["citations"] == ["patient:excluded_phenotypes[0]", f"kg:{edge.id}"]


def test_a_negated_annotation_matching_an_observed_term_lowers_the_disease(
    store: SQLiteStore,
) -> None:
    edge = store.edges(subject=AMPD_DEFICIENCY, predicate=HAS_PHENOTYPE, object=HIGH_LACTATE)[0]
    assert edge.qualifiers["negated"] is True
    index = DiagnosisIndex.from_store(store, prefixes=("ORPHA",))
    assert all(d.startswith("ORPHA:") for d in index.diseases) and index.ann_negated.any()
    present = top_terms(store, AMPD_DEFICIENCY, 4)
    d = index.disease_index[AMPD_DEFICIENCY]
    without, with_lactate = {"phenotypes": present}, {"phenotypes": [*present, HIGH_LACTATE]}
    assert score_diseases(index, with_lactate)[d] < score_diseases(index, without)[d]
    evidence = Evidence(store)
    result = diagnose(index, with_lactate, evidence, top_k=20)
    ampd = next(x for x in result["differential"] if x["disease"] == AMPD_DEFICIENCY)
    (against,) = [c for c in ampd["contradicting"] if c["match"] == "excluded_in_disease"]
    assert against["phenotype"] == HIGH_LACTATE and against["frequency"] == 0.0
    assert against["citations"] == [f"patient:phenotypes[{len(present)}]", f"kg:{edge.id}"]


def test_an_x_linked_recessive_disease_is_less_likely_in_a_female_patient(
    store: SQLiteStore, index: DiagnosisIndex
) -> None:
    (edge,) = store.edges(subject=DUCHENNE, predicate=HAS_PHENOTYPE, object=X_LINKED_RECESSIVE)
    present = [t for t in top_terms(store, DUCHENNE, 8) if index.phenotypic[index.term_index[t]]]
    male, female = ({"phenotypes": present, "sex": sex} for sex in ("MALE", "FEMALE"))
    d = index.disease_index[DUCHENNE]
    gap = score_diseases(index, male)[d] - score_diseases(index, female)[d]
    assert gap == pytest.approx(-math.log(index.params.female_lr))
    assert rank_of(index, female, DUCHENNE) >= rank_of(index, male, DUCHENNE)
    evidence = Evidence(store)
    result = diagnose(index, female, evidence, top_k=50)
    dmd = next(x for x in result["differential"] if x["disease"] == DUCHENNE)
    (against,) = [c for c in dmd["contradicting"] if c["match"] == "inheritance_vs_sex"]
    assert against["annotation"] == X_LINKED_RECESSIVE and against["log_lr"] < 0
    assert against["citations"] == ["patient:sex", f"kg:{edge.id}"]
    assert evidence.refs["patient:sex"].value == "FEMALE"
    male_result = diagnose(index, male, None, top_k=50)["differential"]
    dmd_male = next(x for x in male_result if x["disease"] == DUCHENNE)
    assert dmd["posterior"] < dmd_male["posterior"]  # less likely, not ruled out
    assert not [c for c in dmd_male["contradicting"] if c["match"] == "inheritance_vs_sex"]
    # a disease also inherited autosomal recessively affects females as well
    assert store.edges(subject=RETINITIS_PIGMENTOSA, predicate=HAS_PHENOTYPE, object="HP:0000007")
    rp = index.disease_index[RETINITIS_PIGMENTOSA]
    assert index.male_linked[rp] == -1 and index.male_linked[d] >= 0
    rp_patient = {"phenotypes": top_terms(store, RETINITIS_PIGMENTOSA, 4)}
    assert score_diseases(index, {**rp_patient, "sex": "FEMALE"})[rp] == pytest.approx(
        score_diseases(index, {**rp_patient, "sex": "MALE"})[rp]
    )


def test_next_questions_are_annotated_to_leaders_and_not_asked(
    store: SQLiteStore, index: DiagnosisIndex
) -> None:
    present = top_terms(store, MARFAN, 4)
    excluded = ["HP:0001249"]  # intellectual disability
    patient = {"phenotypes": present, "excluded_phenotypes": excluded}
    result = diagnose(index, patient, Evidence(store), top_k=index.params.leaders)
    leaders = [d["disease"] for d in result["differential"]]
    questions = result["next_questions"]
    assert 1 <= len(questions) <= 5
    implied = {index.terms[a] for t in present for a in index.ancestors(index.term_index[t])}
    for q in questions:
        assert q["phenotype"] not in implied | set(excluded)
        assert any(
            store.edges(subject=d, predicate=HAS_PHENOTYPE, object=q["phenotype"]) for d in leaders
        )
        assert q["expected_information_gain"] > 0 and q["why"] and q["citations"]
    gains = [q["expected_information_gain"] for q in questions]
    assert gains == sorted(gains, reverse=True)
    assert len({q["phenotype"] for q in questions}) == len(questions)


def test_every_cited_item_resolves_to_a_patient_fact_and_a_stored_edge(
    store: SQLiteStore, index: DiagnosisIndex
) -> None:
    own = {e.object for e in store.edges(subject=MARFAN, predicate=HAS_PHENOTYPE)}
    orphanet_only = next(t for t in top_terms(store, "ORPHA:558", 40) if t not in own)
    present = [*top_terms(store, MARFAN, 5), orphanet_only, "HP:0001250"]
    patient = {"phenotypes": present, "excluded_phenotypes": ["HP:0001083"], "sex": "MALE"}
    evidence = Evidence(store)
    result = diagnose(index, patient, evidence, top_k=10)
    items = [
        (d["disease"], item)
        for d in result["differential"]
        for item in (*d["supporting"], *d["contradicting"])
    ]
    assert len(items) >= 30
    lent_by_name = []
    for disease, item in items:
        patient_key, edge_key, *link_keys = item["citations"]
        fact = evidence.refs[patient_key]
        assert fact.kind == "patient_fact"
        section, position = fact.path.rstrip("]").split("[")
        assert patient[section][int(position)] == fact.value
        ref = evidence.refs[edge_key]
        assert ref.kind == "kg_edge" and ref.edge["predicate"] == HAS_PHENOTYPE
        assert ref.edge["object"] == item["annotation"]
        stored = store.get_edge(ref.edge["id"])
        assert stored is not None and stored.key == (ref.edge["subject"], *stored.key[1:])
        assert ref.sources == ["src:hpo"] and evidence.refs["src:hpo"].kind == "source"
        lender = ref.edge["subject"]
        if lender != disease:  # lent by Orphanet or a related OMIM disease
            assert lender.split(":")[0] in {"ORPHA", "OMIM"} and item["lent_by"] == lender
            links = [evidence.refs[k].edge for k in link_keys]
            if len(links) == 1 and links[0]["predicate"] == SIMILAR_TO:  # the same series
                assert {links[0]["subject"], links[0]["object"]} == {lender, disease}
                assert evidence.refs[link_keys[0]].sources == ["src:evocdss-disease-series"]
            elif len(links) == 1:  # an Orphanet disease of the same name
                lent_by_name.append(item)
                assert (links[0]["subject"], links[0]["object"]) == (lender, disease)
                assert links[0]["predicate"] == SAME_AS
                assert evidence.refs[link_keys[0]].sources == ["src:evocdss-disease-names"]
            else:
                assert len(links) == 2 and {g["predicate"] for g in links} == {GENE_TO_DISEASE}
                assert links[0]["subject"] == links[1]["subject"]
                assert {g["object"] for g in links} == {lender, disease}
        else:
            assert not link_keys and item["lent_by"] is None
    assert lent_by_name  # Orphanet's Marfan syndrome (ORPHA:558) lends its terms by name
    for d in result["differential"]:
        assert evidence.refs[d["citations"][0]].kind == "model_output"


def test_orphanet_annotations_of_the_same_gene_count_for_the_omim_disease(
    store: SQLiteStore, index: DiagnosisIndex
) -> None:
    # DEE4 (STXBP1): OMIM does not list focal impaired awareness seizures or multifocal
    # discharges; Orphanet's STXBP1-related encephalopathy (same single gene) does.
    dee4, orphanet, focal = "OMIM:612164", "ORPHA:599373", "HP:0002384"
    patient = {"phenotypes": [focal, "HP:0010841", "HP:0010851", "HP:0002521"]}
    evidence = Evidence(store)
    result = diagnose(index, patient, evidence, top_k=10)
    entry = next(d for d in result["differential"] if d["disease"] == dee4)
    item = next(i for i in entry["supporting"] if i["phenotype"] == focal)
    assert item["match"] == "exact" and len(item["edges"]) == 3 and item["lent_by"] == orphanet
    annotation, *genes = (evidence.refs[k].edge for k in item["citations"][1:])
    assert (annotation["subject"], annotation["object"]) == (orphanet, focal)
    assert {(g["object"], g["predicate"]) for g in genes} == {
        (orphanet, GENE_TO_DISEASE),
        (dee4, GENE_TO_DISEASE),
    }
    assert genes[0]["subject"] == genes[1]["subject"] == "NCBIGene:6812"
    without = DiagnosisIndex.from_store(store, params=replace(index.params, orphanet_weight=0))
    assert rank_of(index, patient, dee4) < rank_of(without, patient, dee4)


def test_orphanet_annotations_of_the_same_name_count_for_the_omim_disease(
    store: SQLiteStore, index: DiagnosisIndex
) -> None:
    # Jacobsen syndrome (a chromosomal deletion: no gene links the two entries) is not
    # annotated in OMIM with what Orphanet's Jacobsen syndrome lists; the KG's same_as link
    # (same name) lends Orphanet's terms to the OMIM disease.
    jacobsen, orphanet = "OMIM:147791", "ORPHA:2308"
    own = {e.object for e in store.edges(subject=jacobsen, predicate=HAS_PHENOTYPE)}
    lent = [t for t in top_terms(store, orphanet, 40) if t not in own][:3]
    assert len(lent) == 3
    patient = {"phenotypes": [*top_terms(store, jacobsen, 3), *lent]}
    evidence = Evidence(store)
    result = diagnose(index, patient, evidence, top_k=10)
    entry = next(d for d in result["differential"] if d["disease"] == jacobsen)
    items = [i for i in entry["supporting"] if i["phenotype"] in lent and i["lent_by"]]
    assert items and all(i["lent_by"] == orphanet and len(i["edges"]) == 2 for i in items)
    annotation, link = (evidence.refs[k].edge for k in items[0]["citations"][1:])
    assert (annotation["subject"], annotation["predicate"]) == (orphanet, HAS_PHENOTYPE)
    assert (link["subject"], link["predicate"], link["object"]) == (orphanet, SAME_AS, jacobsen)
    without = DiagnosisIndex.from_store(store, params=replace(index.params, orphanet_weight=0))
    assert rank_of(index, patient, jacobsen) < rank_of(without, patient, jacobsen)


def lenders(index: DiagnosisIndex, disease: str) -> set[str]:
    """The diseases that lend ``disease`` annotations in ``index``."""
    d = index.disease_index[disease]
    return set(index.ann_lender[index.ann_ptr[d] : index.ann_ptr[d + 1]])


def test_a_curated_second_same_as_link_lends_to_both_omim_diseases(store: SQLiteStore) -> None:
    # the build links names 1 to 1; a curator links Orphanet's Jacobsen syndrome to the
    # Paris-Trousseau thrombocytopenia of the same 11q deletion too: both OMIM diseases borrow
    jacobsen, paris_trousseau, orphanet = "OMIM:147791", "OMIM:188025", "ORPHA:2308"
    guideline = Citation("src:test-curation", "guideline", "Curator review (test)")
    link = Edge(orphanet, SAME_AS, paris_trousseau, (guideline.id,), status=Status.CURATED)
    assert orphanet not in lenders(DiagnosisIndex.from_store(store), paris_trousseau)
    store.upsert(citations=[guideline], edges=[link], actor="dr.test", reason="11q deletion")
    try:
        index = DiagnosisIndex.from_store(store)
        assert orphanet in lenders(index, jacobsen) & lenders(index, paris_trousseau)
    finally:  # a rejected link is not trusted: the other tests see the KG as built
        store.set_status(link.id, Status.REJECTED, actor="dr.test", reason="test over")
    assert orphanet not in lenders(DiagnosisIndex.from_store(store), paris_trousseau)


@pytest.mark.parametrize(
    ("borrower", "lender", "term", "weight", "links"),
    [
        # Marfan syndrome (FBN1) is not annotated with hypoplasia of the maxilla; Weill-Marchesani
        # syndrome 2, another FBN1 disorder, is: cited with the shared gene's two edges
        (
            MARFAN,
            "OMIM:608328",
            "HP:0000327",
            "allelic_weight",
            {
                ("NCBIGene:2200", "OMIM:608328", GENE_TO_DISEASE),
                ("NCBIGene:2200", MARFAN, GENE_TO_DISEASE),
            },
        ),
        # Loeys-Dietz syndrome 5 (TGFB3) is not annotated with descending thoracic aortic
        # aneurysm; Loeys-Dietz syndrome 1 (TGFBR1), of its numbered series, is: cited with the link
        (
            "OMIM:615582",
            "OMIM:609192",
            "HP:0004959",
            "series_weight",
            {("OMIM:609192", "OMIM:615582", SIMILAR_TO)},
        ),
    ],
)
def test_related_omim_diseases_lend_their_terms_weakly(
    store: SQLiteStore,
    index: DiagnosisIndex,
    borrower: str,
    lender: str,
    term: str,
    weight: str,
    links: set[tuple[str, str, str]],
) -> None:
    assert not store.edges(subject=borrower, predicate=HAS_PHENOTYPE, object=term)
    assert store.edges(subject=lender, predicate=HAS_PHENOTYPE, object=term)
    patient = {"phenotypes": [*top_terms(store, borrower, 4), term]}
    evidence = Evidence(store)
    result = diagnose(index, patient, evidence, top_k=10)
    candidate = next(d for d in result["differential"] if d["disease"] == borrower)
    item = next(i for i in candidate["supporting"] if i["phenotype"] == term)
    assert item["match"] == "exact" and item["frequency"] <= 0.1 and item["lent_by"] == lender
    annotation, *cited = (evidence.refs[k].edge for k in item["citations"][1:])
    assert (annotation["subject"], annotation["object"]) == (lender, term)
    assert {(e["subject"], e["object"], e["predicate"]) for e in cited} == links
    without = DiagnosisIndex.from_store(store, params=replace(index.params, **{weight: 0}))
    d = index.disease_index[borrower]
    assert without.disease_index[borrower] == d
    assert score_diseases(index, patient)[d] > score_diseases(without, patient)[d] + 0.5
    assert index.log_prior[d] == without.log_prior[d]  # lent terms do not make it better known
    assert rank_of(index, patient, borrower) <= rank_of(without, patient, borrower)


def test_unknown_terms_are_reported_not_guessed(index: DiagnosisIndex) -> None:
    result = diagnose(index, {"phenotypes": ["HP:0001166", "HP:9999999"]}, None, top_k=3)
    assert result["unknown_phenotypes"] == ["HP:9999999"]
    assert len(result["differential"]) == 3


def test_read_cases_names_a_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    good = {"id": "a", "present": ["HP:0001166"], "excluded": [], "diseases": [{"id": MARFAN}]}
    path.write_text(json.dumps(good) + "\n" + '{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"cases\.jsonl:2"):
        read_cases(path)
    assert read_cases(path, limit=1)[0]["targets"] == [MARFAN]


def test_evaluation_on_the_first_hundred_dev_cases(store: SQLiteStore, tmp_path: Path) -> None:
    if not CASES.is_file():
        pytest.skip(f"benchmark cases not found at {CASES} (../shared/data is absent)")
    result = evaluate_diagnosis(store, CASES, out_dir=tmp_path, limit=100, progress=False)
    assert result["cases"] == 100 and 0.7 <= result["coverage"] <= 1.0
    ours, baseline = result["methods"]["evocdss"], result["methods"]["hpo3_enrichment"]
    for m in (ours, baseline):
        a, c = m["all"], m["covered"]
        assert 0.3 <= a["top1"] <= a["top3"] <= a["top10"] <= 1.0
        assert a["top1"] <= a["mrr"] <= a["top10"] and c["top10"] >= a["top10"]
        assert 0 < m["latency_ms"]["p50"] <= m["latency_ms"]["p95"]
        assert sum(m["rank_buckets"].values()) == 100
    assert ours["all"]["mrr"] >= baseline["all"]["mrr"]
    assert len(result["per_case"]) == 100
    for name in ("diagnosis.json", "diagnosis.md", "diagnosis_ranks.png"):
        assert (tmp_path / name).stat().st_size > 200
    assert json.loads((tmp_path / "diagnosis.json").read_text())["cases"] == 100
    assert "| evocdss |" in (tmp_path / "diagnosis.md").read_text()
