"""Published versions as files under ``<home>/ontology/``, change sets, diffs and histories.

Layout::

    changesets/<id>.json          every change set (draft, published or refused)
    versions/<n>/axioms.json      [kind, *terms, change set id] per axiom (the version's truth)
    versions/<n>/ontology.owl     OWL (RDF/XML) that Protégé opens
    versions/<n>/inferred.json    memberships HermiT entailed, [drug, class]
    versions/<n>/manifest.json    number, time, change set, author, reason, check, KG sync
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kg.settings import Settings, get_settings
from ontology.axioms import Axiom
from ontology.changes import PUBLISHED, ChangeSet


class VersionError(LookupError):
    """A version or change set that does not exist."""


@dataclass
class Version:
    """One published version: its axioms with the change set that added each."""

    number: int
    axioms: dict[Axiom, str]
    inferred: set[tuple[str, str]]
    manifest: dict[str, Any]


class Repository:
    """The ontology's versions and change sets on disk."""

    def __init__(self, settings: Settings | None = None, root: Path | None = None) -> None:
        self.root = root or (settings or get_settings()).home / "ontology"
        self.changesets = self.root / "changesets"
        self.versions = self.root / "versions"
        self._loaded: dict[int, Version] = {}

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the repository's publish lock (one publish at a time, across processes)."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def numbers(self) -> list[int]:
        """Published version numbers, oldest first."""
        if not self.versions.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions.iterdir() if p.name.isdigit())

    def head(self) -> int:
        """The latest version number (0 before ``init``)."""
        numbers = self.numbers()
        return numbers[-1] if numbers else 0

    def folder(self, number: int) -> Path:
        return self.versions / str(number)

    def load(self, number: int | None = None) -> Version:
        """A published version (the latest by default)."""
        number = self.head() if number is None else number
        if number in self._loaded:  # published versions never change
            return self._loaded[number]
        folder = self.folder(number)
        if not (folder / "manifest.json").exists():
            raise VersionError(
                f"no ontology version {number}: versions are {self.numbers() or 'none'} "
                "(run `evocdss ontology init` first)"
            )
        rows = json.loads((folder / "axioms.json").read_text(encoding="utf-8"))
        axioms = {Axiom(r[0], tuple(r[1:-1])): r[-1] for r in rows}
        inferred = {tuple(x) for x in json.loads((folder / "inferred.json").read_text())}
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        version = Version(number, axioms, inferred, manifest)  # type: ignore[arg-type]
        self._loaded[number] = version
        return version

    def manifest(self, number: int) -> dict[str, Any]:
        """The manifest of a published version (without loading its axioms)."""
        path = self.folder(number) / "manifest.json"
        if not path.exists():
            raise VersionError(f"no ontology version {number}: versions are {self.numbers()}")
        return json.loads(path.read_text(encoding="utf-8"))

    def stage(
        self,
        number: int,
        axioms: dict[Axiom, str],
        inferred: set[tuple[str, str]],
        manifest: dict[str, Any],
    ) -> Path:
        """Write a version's files into a staging folder; ``commit`` makes it published."""
        from ontology.rdf_io import write_owl

        staging = self.versions / f".staging-{number}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        rows = [[a.kind, *a.terms, cs] for a, cs in sorted(axioms.items())]
        (staging / "axioms.json").write_text(
            "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n",
            encoding="utf-8",
        )
        (staging / "inferred.json").write_text(json.dumps(sorted(inferred)))
        write_owl(axioms, staging / "ontology.owl", number)
        self.write_manifest(staging, manifest)
        return staging

    def commit(self, staging: Path, number: int) -> Path:
        """Publish a staged version (a rename: a version is there whole or not at all)."""
        final = self.folder(number)
        if final.exists():
            raise VersionError(f"version {number} exists already: someone published first")
        staging.rename(final)
        return final

    @staticmethod
    def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, ensure_ascii=False, indent=2)
        (folder / "manifest.json").write_text(text, encoding="utf-8")

    # -- change sets ----------------------------------------------------------------------

    def save(self, changes: ChangeSet) -> Path:
        """Write a change set (drafts may be saved any number of times)."""
        self.changesets.mkdir(parents=True, exist_ok=True)
        path = self.changesets / f"{changes.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(changes.to_dict(), ensure_ascii=False, indent=1))
        tmp.replace(path)
        return path

    def changeset(self, cs_id: str) -> ChangeSet:
        path = self.changesets / f"{cs_id}.json"
        if not path.exists():
            raise VersionError(f"no change set {cs_id}")
        return ChangeSet.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def all_changesets(self) -> list[ChangeSet]:
        """Every change set, oldest first."""
        if not self.changesets.is_dir():
            return []
        found = [self.changeset(p.stem) for p in self.changesets.glob("cs-*.json")]
        return sorted(found, key=lambda c: (c.created, c.id))

    def published(self) -> list[ChangeSet]:
        """Published change sets in version order."""
        done = [c for c in self.all_changesets() if c.status == PUBLISHED]
        return sorted(done, key=lambda c: c.version or 0)

    # -- diffs and histories --------------------------------------------------------------

    def diff(self, v1: int, v2: int) -> dict[str, Any]:
        """Axioms added and removed from version ``v1`` to ``v2``, each with the change set,
        author, time and reason of the edit that made the change."""
        old, new = self.load(v1), self.load(v2)
        lo, hi = sorted((v1, v2))
        between = [c for c in self.published() if c.version and lo < c.version <= hi]

        def who(axiom: Axiom, side: str) -> dict[str, Any]:
            made = side if v1 <= v2 else {"added": "removed", "removed": "added"}[side]
            for cs in reversed(between):
                for e in reversed(cs.edits):
                    if axiom in (e.added if made == "added" else e.removed):
                        return {
                            "changeset": cs.id,
                            "version": cs.version,
                            "author": e.author,
                            "time": e.time,
                            "reason": e.reason,
                            "source": e.source,
                        }
            return {"changeset": (new if side == "added" else old).axioms.get(axiom, "")}

        added = sorted(set(new.axioms) - set(old.axioms))
        removed = sorted(set(old.axioms) - set(new.axioms))
        return {
            "from": v1,
            "to": v2,
            "added": [{"axiom": a.to_json(), **who(a, "added")} for a in added],
            "removed": [{"axiom": a.to_json(), **who(a, "removed")} for a in removed],
        }

    def history(self, cls: str) -> list[dict[str, Any]]:
        """Who changed a class, when, why and on what source, oldest first (base included);
        ``VersionError`` for a class no version holds."""
        out = []
        if self.numbers():
            first = self.load(self.numbers()[0])
            base = sorted(a for a in first.axioms if cls in a.classes and first.axioms[a] == "base")
            if base:
                m = first.manifest
                out.append(
                    {
                        "version": first.number,
                        "changeset": m.get("changeset", ""),
                        "op": "init",
                        "author": m.get("author", ""),
                        "time": m.get("time"),
                        "reason": m.get("reason", ""),
                        "source": ", ".join(m.get("sources", [])),
                        "added": [a.to_json() for a in base],
                        "removed": [],
                    }
                )
        for cs in self.published():
            for e in cs.edits:
                touched = [a for a in e.added + e.removed if cls in a.classes]
                if touched:
                    out.append(
                        {
                            "version": cs.version,
                            "changeset": cs.id,
                            "op": e.op,
                            **{k: v for k, v in e.to_dict().items() if k != "op"},
                            "added": [a.to_json() for a in e.added if cls in a.classes],
                            "removed": [a.to_json() for a in e.removed if cls in a.classes],
                        }
                    )
        if not out:
            raise VersionError(f"no class {cls} in any version of the ontology")
        return out
