"""The ICD-10-CM loader on the release packaged in simple-icd-10-cm."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ingest.build import write_batch
from ingest.icd10cm import load_icd10cm
from ingest.source import SourceBatch
from kg import open_store
from kg.model import Node


@pytest.fixture(scope="module")
def batch() -> SourceBatch:
    return load_icd10cm()


@pytest.fixture(scope="module")
def nodes(batch: SourceBatch) -> dict[str, Node]:
    return {n.id: n for n in batch.nodes}


@pytest.fixture(scope="module")
def parents(batch: SourceBatch) -> dict[str, str]:
    return {e.subject: e.object for e in batch.edges}


def test_counts_and_citation(batch: SourceBatch, nodes: dict[str, Node]) -> None:
    kinds = Counter(n.properties["kind"] for n in batch.nodes)
    assert len(nodes) == len(batch.nodes) >= 90_000  # ids are unique
    assert kinds["chapter"] == 22
    assert kinds["block"] >= 280
    assert kinds["category"] >= 1_900
    assert kinds["subcategory"] >= 90_000
    assert sum(n.properties["billable"] for n in batch.nodes) >= 70_000
    assert batch.citation.id == "src:icd10cm"
    assert batch.citation.license == "public domain"
    assert batch.citation.version.startswith("FY20")
    for node in batch.nodes:
        node.validate()
    for edge in batch.edges:
        assert edge.validate().citations == ("src:icd10cm",)
        assert edge.object in nodes


def test_e11_9_subclass_chain(nodes: dict[str, Node], parents: dict[str, str]) -> None:
    node = nodes["ICD10CM:E11.9"]
    assert node.name == "Type 2 diabetes mellitus without complications"
    assert node.category == "biolink:Disease"
    assert node.properties == {"billable": True, "kind": "subcategory"}
    chain = ["ICD10CM:E11.9"]
    while chain[-1] in parents:
        chain.append(parents[chain[-1]])
    assert chain == ["ICD10CM:E11.9", "ICD10CM:E11", "ICD10CM:E08-E13", "ICD10CM:E00-E89"]
    assert nodes["ICD10CM:E11"].properties == {"billable": False, "kind": "category"}
    assert nodes["ICD10CM:E08-E13"].properties["kind"] == "block"
    assert nodes["ICD10CM:E00-E89"].properties == {
        "billable": False,
        "kind": "chapter",
        "chapter": "4",
    }


def test_billable_flags(nodes: dict[str, Node]) -> None:
    assert nodes["ICD10CM:I10"].properties["billable"]  # a category with no subdivisions
    assert not nodes["ICD10CM:S62.90"].properties["billable"]
    assert nodes["ICD10CM:S62.90XA"].properties["billable"]  # 7th character
    assert not nodes["ICD10CM:A00-A09"].properties["billable"]


def test_single_category_blocks_keep_codes_apart(
    batch: SourceBatch, nodes: dict[str, Node], parents: dict[str, str]
) -> None:
    assert parents["ICD10CM:B99.9"] == "ICD10CM:B99"
    assert parents["ICD10CM:B99"] == "ICD10CM:B99-B99"
    assert nodes["ICD10CM:B99-B99"].properties["kind"] == "block"
    assert nodes["ICD10CM:B99"].properties["kind"] == "category"
    assert batch.issues["block-named-like-its-category"].count >= 30


def test_categories_and_synonyms(nodes: dict[str, Node]) -> None:
    assert nodes["ICD10CM:R50.9"].category == "biolink:ClinicalFinding"
    assert nodes["ICD10CM:Z79.01"].category == "biolink:ClinicalFinding"
    assert nodes["ICD10CM:N10"].name == "Acute pyelonephritis"
    synonyms = {s.text for s in nodes["ICD10CM:N10"].synonyms}
    assert "Acute tubulo-interstitial nephritis" in synonyms  # the older title, an inclusion term


def test_deterministic(batch: SourceBatch) -> None:
    again = load_icd10cm()
    assert [n.data() for n in again.nodes] == [n.data() for n in batch.nodes]
    assert [e.key for e in again.edges] == [e.key for e in batch.edges]


def test_idempotent_write(batch: SourceBatch, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kg.sqlite'}")
    try:
        first = write_batch(store, batch)
        assert first.nodes_created == len(batch.nodes)
        assert first.edges_created == len(batch.edges)
        version = store.version()
        second = write_batch(store, batch)
        assert second.changed == 0
        assert store.version() == version
        assert store.get_node("ICD10CM:E11.9") == next(
            n for n in batch.nodes if n.id == "ICD10CM:E11.9"
        )
        assert [n.id for n in store.search("acute tubulo-interstitial nephritis")] == [
            "ICD10CM:N10"
        ]
    finally:
        store.close()
