"""Build the KG from the bundled sources: each source is one atomic, idempotent write."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.source import SourceBatch
from kg.model import WriteResult
from kg.settings import Settings, get_settings
from kg.store import GraphStore

#: Source name -> "module:function" of its loader, in build order.
SOURCES: dict[str, str] = {
    "hpo": "ingest.hpo:load_hpo",
    "icd10cm": "ingest.icd10cm:load_icd10cm",
    "drugs": "ingest.drugs:load_drugs",
    "ansm": "ingest.ansm:load_ansm",
    "rxnorm": "ingest.rxnorm:load_rxnorm",
}

BUILD_ACTOR = "evocdss-build"


@dataclass
class SourceResult:
    """What building one source did."""

    name: str
    write: WriteResult
    report: dict[str, Any]
    seconds: float


def loader(name: str) -> Callable[..., SourceBatch]:
    """The loader function of source ``name``."""
    module, func = _where(name)
    return getattr(importlib.import_module(module), func)


def citation_ids(name: str) -> tuple[str, ...]:
    """The ids of the citations source ``name``'s batch writes: its module's ``CITATION_IDS``
    where it writes several (the source's own and the project's rules or curations), else
    its ``CITATION_ID``."""
    module = importlib.import_module(_where(name)[0])
    return getattr(module, "CITATION_IDS", (module.CITATION_ID,))


def _where(name: str) -> tuple[str, str]:
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}: choose from {', '.join(SOURCES)}")
    module, func = SOURCES[name].split(":")
    return module, func


def load_source(name: str, settings: Settings) -> SourceBatch:
    """Run the loader of ``name``; every loader takes the settings (paths, releases)."""
    return loader(name)(settings)


def write_batch(
    store: GraphStore, batch: SourceBatch, progress: Callable[[int], None] | None = None
) -> WriteResult:
    """Write one source's batch atomically, citing the source in the change log reason."""
    return store.upsert(
        citations=[batch.citation, *batch.extra_citations],
        nodes=batch.nodes,
        edges=batch.edges,
        actor=BUILD_ACTOR,
        reason=f"load {batch.name} {batch.citation.version}".strip(),
        progress=progress,
    )


def missing_sources(store: GraphStore, sources: Sequence[str] | None = None) -> list[str]:
    """The sources among ``sources`` (default: all) that ``store`` does not hold yet, in build
    order: a build stopped half-way left the rest out, and a source whose loader now writes a
    citation the KG lacks (a curation added since the KG was built) is loaded again."""
    ids = {name: citation_ids(name) for name in sources or SOURCES}
    held = store.get_citations({cid for cids in ids.values() for cid in cids})
    return [name for name, cids in ids.items() if not held.keys() >= set(cids)]


def build_kg(
    store: GraphStore,
    sources: Sequence[str] | None = None,
    settings: Settings | None = None,
    on_batch: Callable[[str, SourceBatch], Callable[[int], None] | None] | None = None,
) -> list[SourceResult]:
    """Load ``sources`` (all by default, in order) into ``store``.

    ``on_batch(name, batch)`` is called once a source is parsed and may return a progress
    callback for its write.
    """
    import time

    settings = settings or get_settings()
    names = list(sources or SOURCES)
    for name in names:
        loader(name)  # fail fast on an unknown name, before any work
    results = []
    for name in names:
        start = time.perf_counter()
        batch = load_source(name, settings)
        progress = on_batch(name, batch) if on_batch else None
        write = write_batch(store, batch, progress)
        results.append(SourceResult(name, write, batch.report(), time.perf_counter() - start))
    return results
