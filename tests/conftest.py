"""Shared fixtures: every store the project supports, real and empty, for each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kg.settings import Settings
from kg.store import GraphStore

NEO4J_URL_ENV = "EVOCDSS_TEST_NEO4J_URL"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def neo4j_url() -> str:
    """The Bolt URL of the test Neo4j that `make test` started, or skip (fail under CI)."""
    url = os.environ.get(NEO4J_URL_ENV, "")
    if url:
        return url
    reason = os.environ.get("EVOCDSS_TEST_NEO4J_SKIP", "Neo4j was not started (run `make test`)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs a real Neo4j: {reason}")
    pytest.skip(reason)


def wipe_neo4j(url: str) -> None:
    """Empty the test database (test set-up only)."""
    import neo4j

    with neo4j.GraphDatabase.driver(url, auth=None) as driver:
        driver.execute_query("MATCH (n) DETACH DELETE n")


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store of each kind."""
    from kg import open_store

    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'kg.sqlite'}")
    else:
        url = neo4j_url()
        wipe_neo4j(url)
        s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def store(empty_store: GraphStore) -> GraphStore:
    """An empty store of each kind (a module may wrap it, e.g. behind a cache)."""
    return empty_store


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The project's settings with home at the repo's ``var/`` (raw HPO files, caches)."""
    return Settings(home=REPO / "var")


def _kg_fingerprint() -> str:
    """A hash of everything a KG build depends on in this repo (loaders, data, KG code)."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted([*REPO.glob("ingest/**/*"), *REPO.glob("kg/*.py")]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def built_kg(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[GraphStore]:
    """The KG built from every bundled source, once per test session (SQLite).

    A build is kept under ``var/test-kg`` keyed by a hash of the loaders and KG code, so that
    local runs reuse it; each session works on its own copy (tests may write to it).
    """
    import fcntl
    import shutil

    from ingest.build import build_kg
    from kg import open_store

    cache_dir = REPO / "var" / "test-kg"
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"kg-{_kg_fingerprint()}.sqlite"
    with (cache_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.exists():
            for old in cache_dir.glob("kg-*.sqlite*"):
                old.unlink()
            partial = cached.with_suffix(".partial")
            store = open_store(f"sqlite:///{partial}")
            build_kg(store, settings=settings)
            store.close()
            partial.rename(cached)
    path = tmp_path_factory.mktemp("built-kg") / "kg.sqlite"
    shutil.copyfile(cached, path)
    store = open_store(f"sqlite:///{path}")
    yield store
    store.close()


def resolve_path(payload: dict, path: str) -> object:
    """The value at ``medications[0]``-style ``path`` inside ``payload['patient']``."""
    value: object = payload.get("patient", payload)
    for part in path.replace("]", "").split("."):
        name, _, index = part.partition("[")
        value = value[name]  # type: ignore[index]
        if index:
            value = value[int(index)]  # type: ignore[index]
    return value


@pytest.fixture
def assert_cited() -> object:
    """A checker: every finding and problem of an answer cites refs that resolve — KG edges that
    exist (with their sources), facts of the query's patient, model outputs, or sources."""

    def check(answer: object, store: GraphStore, payload: dict) -> int:
        refs = answer.citations  # type: ignore[attr-defined]
        keys = [k for s in answer.steps for f in s.findings for k in f.citations]  # type: ignore[attr-defined]
        for step in answer.steps:  # type: ignore[attr-defined]
            for finding in step.findings:
                assert finding.citations, f"uncited claim: {finding.claim}"
        keys += [k for p in getattr(answer, "problems", []) for k in p.citations]
        for key in keys:
            ref = refs[key]
            if ref.kind == "kg_edge":
                edge = store.get_edge(ref.edge["id"])
                assert edge is not None and edge.key == (
                    ref.edge["subject"],
                    ref.edge["predicate"],
                    ref.edge["object"],
                )
                assert ref.sources and all(refs[s].kind == "source" for s in ref.sources)
                assert set(ref.sources) == set(edge.citations)
            elif ref.kind == "patient_fact":
                assert resolve_path(payload, ref.path) is not None
            elif ref.kind == "model_output":
                assert ref.path and ref.value is not None
            else:
                assert ref.kind == "source" and store.get_citations([key])
        return len(keys)

    return check
