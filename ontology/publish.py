"""Curation workflow: init from the KG, check a change set with HermiT, publish it as a
version synchronised into the KG, revert, and import files edited in Protégé."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kg.store import GraphStore
from ontology.changes import DRAFT, PUBLISHED, REFUSED, ChangeSet, Editor
from ontology.kg_sync import apply_sync, plan_sync
from ontology.reasoning import Check, check
from ontology.versions import Repository, Version

INIT_AUTHOR = "evocdss-build"


class Refused(ValueError):
    """A change set HermiT found inconsistent or incoherent; nothing was published."""

    def __init__(self, changes: ChangeSet, result: Check) -> None:
        self.changes = changes
        self.result = result
        classes = ", ".join(u.cls for u in result.unsatisfiable) or "the ontology"
        why = "; ".join(
            f"{u.cls}: " + ", ".join(str(a) for a in u.axioms) for u in result.unsatisfiable
        )
        more = f" and {len(result.inherited)} of their subclasses" if result.inherited else ""
        super().__init__(
            f"change set {changes.id} refused: unsatisfiable {classes}{more}"
            + (f" because {why}" if why else " (inconsistent)")
        )


def init_ontology(repo: Repository, store: GraphStore, *, reason: bool = True) -> Version:
    """Build the base ontology from the KG, check it with HermiT over all of it (``reason``;
    ~30 s) and publish it as version 1. The base came from the KG: nothing is written to it.
    """
    from ontology.schema import BASE_SOURCES, base_axioms

    if repo.head():
        raise ValueError(f"the ontology exists already (version {repo.head()}) at {repo.root}")
    axioms = base_axioms(store)
    result = check(axioms, scope="full") if reason else None
    if result is not None and not result.ok:
        raise ValueError(f"the base ontology is incoherent: {result.to_dict()}")
    cs_id = "base"
    manifest = {
        "version": 1,
        "changeset": cs_id,
        "author": INIT_AUTHOR,
        "reason": "base ontology built from the KG",
        "sources": list(BASE_SOURCES),
        "time": time.time(),
        "check": result.to_dict() if result else None,
        "kg_version": store.version(),
        "kg_url": store.url,
    }
    inferred = result.inferred if result else set()
    staging = repo.stage(1, dict.fromkeys(axioms, cs_id), inferred, manifest)
    repo.commit(staging, 1)
    return repo.load(1)


def editor(repo: Repository, changes: ChangeSet) -> Editor:
    """An editor on a draft change set against the latest version."""
    return Editor(set(repo.load().axioms), changes)


def check_changes(repo: Repository, changes: ChangeSet, *, scope: str = "module") -> Check:
    """Reason over the latest version with the change set applied (HermiT)."""
    head = repo.load()
    return check(changes.apply(set(head.axioms)), changes.signature, scope=scope)


def publish(
    repo: Repository, store: GraphStore, changes: ChangeSet | str, *, scope: str = "module"
) -> dict[str, Any]:
    """Check the change set with HermiT, then publish it as the next version and synchronise
    the KG. An inconsistent or incoherent change set is refused (``Refused``, recorded on the
    change set) and nothing is published. Returns the version's manifest.

    Given the id of a saved change set, it is read under the publish lock, so that an edit
    saved meanwhile is published with it.
    """
    with repo.lock():
        if isinstance(changes, str):
            changes = repo.changeset(changes)
        if changes.status != DRAFT:
            raise ValueError(f"change set {changes.id} is {changes.status}: only drafts publish")
        if not changes.added and not changes.removed:
            raise ValueError(f"change set {changes.id} has no edits, or they cancel out")
        return _publish(repo, store, changes, scope)


def _publish(repo: Repository, store: GraphStore, changes: ChangeSet, scope: str) -> dict[str, Any]:
    started = time.perf_counter()
    head = repo.load()
    stale = [a for a in changes.removed if a not in head.axioms]
    stale += [a for a in changes.added if a in head.axioms]
    if stale:
        raise ValueError(
            f"change set {changes.id} no longer applies to version {head.number}: {stale[0]}"
        )
    result = check_changes(repo, changes, scope=scope)
    if not result.ok:
        changes.status = REFUSED
        changes.report = {"check": result.to_dict(), "against": head.number}
        repo.save(changes)
        raise Refused(changes, result)
    number = head.number + 1
    axioms = {a: cs for a, cs in head.axioms.items() if a not in changes.removed}
    axioms |= dict.fromkeys(changes.added, changes.id)
    inferred = {x for x in head.inferred if x[0] not in result.region} | result.inferred
    authors = {cs.id: cs.author for cs in repo.published()} | {changes.id: changes.author}
    manifest = {
        "version": number,
        "changeset": changes.id,
        "author": changes.author,
        "reason": changes.reason,
        "reverts": changes.reverts,
        "time": time.time(),
        "check": result.to_dict(),
    }
    staging = repo.stage(number, axioms, inferred, manifest)
    try:
        sync = plan_sync(
            store,
            head.axioms,
            axioms,
            head.inferred,
            inferred,
            number=number,
            changeset=changes.id,
            authors=authors,
            sources=changes.citations,
        )
        manifest["kg_version"] = apply_sync(
            store, sync, reason=f"ontology v{number} ({changes.id}): {changes.reason}"
        )
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifest["kg"] = sync.to_dict()
    manifest["seconds"] = round(time.perf_counter() - started, 2)
    repo.write_manifest(staging, manifest)
    repo.commit(staging, number)
    changes.status, changes.version = PUBLISHED, number
    changes.report = {"check": result.to_dict(), "kg": sync.to_dict()}
    repo.save(changes)
    return manifest


def revert(
    repo: Repository, store: GraphStore, cs_id: str, *, author: str, reason: str
) -> dict[str, Any]:
    """Publish the inverse of a published change set (what it added is removed, what it
    removed comes back, as far as later versions have not already done so)."""
    target = repo.changeset(cs_id)
    if target.status != PUBLISHED:
        raise ValueError(f"change set {cs_id} is {target.status}: only published ones revert")
    head = set(repo.load().axioms)
    changes = ChangeSet.new(author, reason, reverts=cs_id)
    changes.citations = dict(target.citations)
    ed = Editor(head, changes)
    ed.replace_axioms(
        target.removed - head,
        target.added & head,
        op="revert",
        reason=f"revert {cs_id}: {reason}",
        source=cs_id,
    )
    repo.save(changes)
    return publish(repo, store, changes)


def import_file(
    repo: Repository, path: Path, *, author: str, reason: str, source: str = ""
) -> ChangeSet:
    """A draft change set that turns the latest version into the ontology of an OWL/RDF file
    (e.g. saved from Protégé): the axioms it adds and the ones it no longer has. The edit's
    source is ``source`` (default: the file's path)."""
    from ontology.rdf_io import read_axioms

    edited = read_axioms(path)
    head = set(repo.load().axioms)
    if not any(a.kind == "class" for a in edited & head):
        raise ValueError(f"{path} declares none of the ontology's classes")
    changes = ChangeSet.new(author, reason)
    added, removed = edited - head, head - edited
    cited = {a.terms[5] for a in added if a.kind == "rule"}
    for cs in repo.published():
        changes.citations |= {k: c for k, c in cs.citations.items() if k in cited}
    if not added and not removed:
        raise ValueError(f"{path} says nothing the ontology does not already say")
    Editor(head, changes).replace_axioms(
        added, removed, op="import", reason=reason, source=source or str(path)
    )
    repo.save(changes)
    return changes
