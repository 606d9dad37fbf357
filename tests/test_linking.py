"""Entity linking on the real KG: codes, exact names in any language, embeddings, unknowns."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.linking import EntityLinker
from kg import Citation, Node, Synonym, open_store
from kg.settings import Settings
from kg.store import GraphStore


@pytest.fixture(scope="module")
def linker(built_kg: GraphStore, settings: Settings) -> EntityLinker:
    return EntityLinker(built_kg, settings, use_embeddings=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("warfarine", "ANSM:warfarine"),
        ("Warfarin", "ANSM:warfarine"),
        ("Coumadin", "ANSM:warfarine"),
        ("RXNORM:11289", "ANSM:warfarine"),
        ("aspirin", "ANSM:acide-acetylsalicylique"),
        ("acetylsalicylic acid", "ANSM:acide-acetylsalicylique"),
        ("RXNORM:1191", "ANSM:acide-acetylsalicylique"),
        ("ibuprofen", "ANSM:ibuprofene"),
        ("Ibuprofène", "ANSM:ibuprofene"),
        ("NSAIDs", "ANSM:anti-inflammatoires-non-steroidiens"),
        ("alcohol", "ANSM:alcool-boisson-ou-excipient"),
        ("grapefruit juice", "ANSM:pamplemousse-jus-et-fruit"),
        ("St John's wort", "ANSM:millepertuis"),
        ("antacids", "ANSM:topiques-gastro-intestinaux-antiacides-et-adsorbants"),
        ("oral contraceptives", "ANSM:estroprogestatifs-contraceptifs"),
        ("DB00682", "ANSM:warfarine"),
    ],
)
def test_drug_mentions_resolve_to_the_ansm_entries(
    linker: EntityLinker, text: str, expected: str
) -> None:
    result = linker.link(text, "drug")
    assert result.node is not None and result.node.id == expected, result
    assert result.method in ("code", "exact") and result.score == 1.0


def test_codes_and_names_of_phenotypes_and_diseases(linker: EntityLinker) -> None:
    assert linker.link("HP:0001250", "phenotype").node.id == "HP:0001250"
    assert linker.link("seizure", "phenotype").node.id == "HP:0001250"
    assert linker.link("E11.9", "disease").node.id == "ICD10CM:E11.9"
    assert linker.link("Marfan syndrome", "disease").node.id == "OMIM:154700"
    assert linker.link("HP:0001250", "drug").node is None  # a code outside the category


def test_unknown_mentions_are_unknown_not_guesses(linker: EntityLinker) -> None:
    result = linker.link("zzqxv tablets", "drug")
    assert result.node is None and result.method == "unknown"
    with pytest.raises(ValueError, match="category"):
        linker.link("aspirin", "food")
    with pytest.raises(ValueError, match="empty"):
        linker.link("  ")


def test_nine_in_ten_ansm_substances_have_an_english_name_that_links_back(
    built_kg: GraphStore, linker: EntityLinker
) -> None:
    substances = [
        n
        for n in built_kg.iter_nodes()
        if n.id.startswith("ANSM:") and n.category != "biolink:DrugClass"
    ]
    named = [(n, next((s.text for s in n.synonyms if s.lang == "en"), None)) for n in substances]
    back = [n for n, en in named if en and linker.link(en, "drug").node.id == n.id]
    assert len(substances) > 1000
    assert len(back) / len(substances) >= 0.9


def test_embeddings_link_paraphrases_above_the_threshold_only(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kg.sqlite'}")
    src = Citation("src:t", "database", "test")
    store.upsert(
        citations=[src],
        nodes=[
            Node("HP:0001250", "biolink:PhenotypicFeature", "Seizure"),
            Node("HP:0002315", "biolink:PhenotypicFeature", "Headache", (Synonym("Cephalgia"),)),
            Node("HP:0000822", "biolink:PhenotypicFeature", "Hypertension"),
        ],
        actor="t",
    )
    linker = EntityLinker(store, Settings(home=tmp_path), threshold=0.6)
    near = linker.link("high blood pressure", "phenotype")
    assert near.node is not None and near.node.id == "HP:0000822"
    assert near.method == "embedding" and 0.6 <= near.score < 1.0
    far = linker.link("broken left femur", "phenotype")
    assert far.node is None and far.candidates and far.candidates[0][2] < 0.6
    cached = list((tmp_path / "cache" / "embeddings").glob("phenotype-*.npz"))
    assert len(cached) == 1
    again = EntityLinker(store, Settings(home=tmp_path), threshold=0.6)
    assert again.index("phenotype").version == store.version()  # read from the cache
