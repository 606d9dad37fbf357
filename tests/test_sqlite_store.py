"""What only the SQLite store does: its bulk path into an empty edge table, its file, and its
per-thread connections."""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
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


def test_a_threads_connection_closes_when_the_thread_ends(tmp_path: Path) -> None:
    """A server's worker threads come and go: each thread's connection (its files and page
    cache, up to 256 MB) must not outlive it. SQLite keeps a closed connection's database file
    open for reuse while another connection of the process holds its lock, so the check is that
    files do not pile up by two per thread, as they did while the store kept every connection."""
    store = SQLiteStore(tmp_path / "kg.sqlite")
    store.upsert(citations=[SRC], edges=chain(3), actor="test")

    def open_files() -> int:
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    threads, before, seen = 60, open_files(), []
    for _ in range(threads):
        worker = threading.Thread(target=lambda: seen.append(store.stats().edges))
        worker.start()
        worker.join()
    assert seen == [3] * threads
    assert open_files() - before < threads / 2
    store.close()
    assert open_files() < before  # the main thread's connection and the files kept for reuse
