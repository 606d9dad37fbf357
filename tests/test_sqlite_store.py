"""What only the SQLite store does: its bulk path into an empty edge table, and its file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kg import Citation, Edge, edge_id
from kg.errors import StoreUnavailable
from kg.sqlite_store import BULK_INDEXES, BULK_MIN_EDGES, SQLiteStore

SRC = Citation("src:test", "database", "Test")


def chain(n: int, start: int = 0) -> list[Edge]:
    return [
        Edge(f"T:{i}", "biolink:subclass_of", f"T:{i + 1}", ("src:test",), qualifiers={"i": i})
        for i in range(start, start + n)
    ]


def test_bulk_load_into_an_empty_store_rebuilds_its_indexes(tmp_path: Path) -> None:
    path = tmp_path / "kg.sqlite"
    store = SQLiteStore(path)
    result = store.upsert(citations=[SRC], edges=chain(BULK_MIN_EDGES), actor="bulk")
    assert result.edges_created == BULK_MIN_EDGES
    assert result.version == BULK_MIN_EDGES + 1  # the citation, then one entry per edge
    indexes = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert set(BULK_INDEXES) <= indexes
    assert store.get_edge(edge_id("T:7", "biolink:subclass_of", "T:8")).qualifiers == {"i": 7}
    assert [e.object for e in store.neighbors(["T:100"], direction="out")] == ["T:101"]
    assert [c.action for c in store.changes(key=edge_id("T:7", "biolink:subclass_of", "T:8"))] == [
        "add_edge"
    ]
    again = store.upsert(edges=chain(10, start=BULK_MIN_EDGES - 5), actor="second")
    assert (again.edges_created, again.edges_updated) == (5, 0)


def test_a_failed_bulk_load_leaves_the_store_empty_with_its_indexes(tmp_path: Path) -> None:
    path = tmp_path / "kg.sqlite"
    store = SQLiteStore(path)
    edges = [*chain(BULK_MIN_EDGES), Edge("T:x", "biolink:subclass_of", "T:y", ("src:none",))]
    with pytest.raises(Exception, match="src:none"):
        store.upsert(citations=[SRC], edges=edges, actor="bulk")
    assert store.version() == 0 and store.stats().edges == 0
    indexes = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert set(BULK_INDEXES) <= indexes


def test_read_only_open_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="evocdss kg build"):
        SQLiteStore(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()
