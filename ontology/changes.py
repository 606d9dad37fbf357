"""Curator edits as change sets: each edit records author, time, reason and source citation,
and the axioms it adds and removes."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from kg.model import Citation
from kg.vocab import check_category, check_curie
from ontology.axioms import Axiom, disjoint

SEVERITIES = ("contraindicated", "avoid", "precaution", "consider")
DRAFT, PUBLISHED, REFUSED = "draft", "published", "refused"


class EditError(ValueError):
    """An edit that cannot apply to the ontology (unknown class, duplicate, bad value)."""


@dataclass
class Edit:
    """One curator edit: what was done, by whom, when, why, on what source, and its axioms."""

    op: str
    author: str
    time: float
    reason: str
    source: str
    added: list[Axiom] = field(default_factory=list)
    removed: list[Axiom] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "author": self.author,
            "time": self.time,
            "reason": self.reason,
            "source": self.source,
            "added": [a.to_json() for a in self.added],
            "removed": [a.to_json() for a in self.removed],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Edit:
        return cls(
            op=d["op"],
            author=d["author"],
            time=d["time"],
            reason=d["reason"],
            source=d["source"],
            added=[Axiom.from_json(a) for a in d["added"]],
            removed=[Axiom.from_json(a) for a in d["removed"]],
        )


@dataclass
class ChangeSet:
    """Edits published together as one ontology version (or refused together)."""

    id: str
    author: str
    reason: str
    created: float
    edits: list[Edit] = field(default_factory=list)
    citations: dict[str, Citation] = field(default_factory=dict)
    status: str = DRAFT
    version: int | None = None
    reverts: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, author: str, reason: str, reverts: str | None = None) -> ChangeSet:
        """An empty draft change set."""
        if not author.strip() or not reason.strip():
            raise EditError("a change set needs an author and a reason")
        now = time.time()
        digest = hashlib.blake2b(f"{author}\t{reason}\t{now}".encode(), digest_size=3).hexdigest()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        return cls(f"cs-{stamp}-{digest}", author, reason, now, reverts=reverts)

    @property
    def added(self) -> set[Axiom]:
        """Axioms the change set adds (net of its own removals)."""
        return self._net()[0]

    @property
    def removed(self) -> set[Axiom]:
        """Axioms the change set removes (net of its own additions)."""
        return self._net()[1]

    def _net(self) -> tuple[set[Axiom], set[Axiom]]:
        added: set[Axiom] = set()
        removed: set[Axiom] = set()
        for e in self.edits:
            for a in e.added:
                removed.discard(a) if a in removed else added.add(a)
            for a in e.removed:
                added.discard(a) if a in added else removed.add(a)
        return added, removed

    @property
    def signature(self) -> set[str]:
        """The classes whose ancestors or disjointness the change set may change (what the
        reasoner checks, with their descendants)."""
        return {
            c
            for a in self.added | self.removed
            for c in (a.terms if a.kind == "disjoint" else a.terms[:1])
        }

    def apply(self, axioms: set[Axiom]) -> set[Axiom]:
        """The ontology after this change set."""
        return (axioms - self.removed) | self.added

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "author": self.author,
            "reason": self.reason,
            "created": self.created,
            "status": self.status,
            "version": self.version,
            "reverts": self.reverts,
            "citations": {k: c.to_dict() for k, c in self.citations.items()},
            "edits": [e.to_dict() for e in self.edits],
            "report": self.report,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChangeSet:
        return cls(
            id=d["id"],
            author=d["author"],
            reason=d["reason"],
            created=d["created"],
            edits=[Edit.from_dict(e) for e in d["edits"]],
            citations={k: Citation.from_dict(c) for k, c in d["citations"].items()},
            status=d["status"],
            version=d["version"],
            reverts=d.get("reverts"),
            report=d.get("report", {}),
        )


class Editor:
    """Makes edits on a draft change set against the ontology it will apply to.

    Each method validates the edit against the ontology as the earlier edits left it, and
    records one ``Edit`` (author, time, reason, source citation id).
    """

    def __init__(self, axioms: set[Axiom], changes: ChangeSet) -> None:
        if changes.status != DRAFT:
            raise EditError(f"change set {changes.id} is {changes.status}, not a draft")
        self.base = axioms
        self.changes = changes

    @property
    def state(self) -> set[Axiom]:
        return self.changes.apply(self.base)

    def cite(self, citation: Citation) -> str:
        """Register the source an edit cites (a guideline, article...); returns its id."""
        self.changes.citations[citation.id] = citation
        return citation.id

    def _record(
        self,
        op: str,
        added: list[Axiom],
        removed: list[Axiom],
        reason: str,
        source: str,
        author: str | None,
    ) -> Edit:
        if not reason.strip():
            raise EditError("every edit needs a reason")
        state = self.state
        missing = [a for a in removed if a not in state]
        if missing:
            raise EditError(f"the ontology has no {missing[0]}")
        added = [a for a in added if a not in state]
        if not added and not removed:
            raise EditError("nothing to change, the ontology already says so")
        edit = Edit(op, author or self.changes.author, time.time(), reason, source, added, removed)
        self.changes.edits.append(edit)
        return edit

    def _known(self, cls: str) -> str:
        if Axiom("class", (check_curie(cls),)) not in self.state:
            raise EditError(f"no class {cls} in the ontology")
        return cls

    def _labels(self, cls: str, lang: str | None = None) -> list[Axiom]:
        return [
            a
            for a in self.state
            if a.kind == "label" and a.terms[0] == cls and (lang is None or a.terms[2] == lang)
        ]

    def add_class(
        self,
        cls: str,
        label: str,
        *,
        parent: str,
        category: str = "biolink:DrugClass",
        lang: str = "en",
        reason: str,
        source: str = "",
        author: str | None = None,
    ) -> Edit:
        """A new class with a label, under ``parent``, for KG nodes of ``category``."""
        check_curie(cls)
        check_category(category)
        if Axiom("class", (cls,)) in self.state:
            raise EditError(f"class {cls} already exists")
        self._known(parent)
        added = [
            Axiom("class", (cls,)),
            Axiom("category", (cls, category)),
            Axiom("label", (cls, label, lang)),
            Axiom("subclass", (cls, parent)),
        ]
        return self._record("add_class", added, [], reason, source, author)

    def rename_class(
        self,
        cls: str,
        label: str,
        *,
        lang: str = "en",
        reason: str,
        source: str = "",
        author: str | None = None,
    ) -> Edit:
        """Replace the class's label in ``lang``; the old label stays as a synonym."""
        self._known(cls)
        old = self._labels(cls, lang)
        if Axiom("label", (cls, label, lang)) in old:
            raise EditError(f"{cls} is already labelled {label!r} in {lang}")
        added = [Axiom("label", (cls, label, lang))]
        added += [Axiom("synonym", (cls, a.terms[1], lang)) for a in old]
        return self._record("rename_class", added, old, reason, source, author)

    def deprecate_class(
        self,
        cls: str,
        *,
        replaced_by: str | None = None,
        reason: str,
        source: str = "",
        author: str | None = None,
    ) -> Edit:
        """Mark the class deprecated (its id stays), pointing to its replacement (which
        replaces any earlier one)."""
        self._known(cls)
        added = [Axiom("deprecated", (cls,))]
        removed = []
        if replaced_by:
            new = Axiom("replaced_by", (cls, self._known(replaced_by)))
            added.append(new)
            removed = [
                a for a in self.state if a.kind == "replaced_by" and a.terms[0] == cls and a != new
            ]
        return self._record("deprecate_class", added, removed, reason, source, author)

    def add_label(
        self,
        cls: str,
        text: str,
        lang: str,
        *,
        reason: str,
        source: str = "",
        author: str | None = None,
    ) -> Edit:
        """A label in a language (en, fr, zh ...); a class has one label per language."""
        self._known(cls)
        if self._labels(cls, lang):
            raise EditError(f"{cls} already has a {lang} label: rename it or add a synonym")
        return self._record(
            "add_label", [Axiom("label", (cls, text, lang))], [], reason, source, author
        )

    def add_synonym(
        self,
        cls: str,
        text: str,
        lang: str,
        *,
        reason: str,
        source: str = "",
        author: str | None = None,
    ) -> Edit:
        """A synonym in a language."""
        self._known(cls)
        axiom = Axiom("synonym", (cls, text, lang))
        return self._record("add_synonym", [axiom], [], reason, source, author)

    def add_subclass(
        self, sub: str, sup: str, *, reason: str, source: str = "", author: str | None = None
    ) -> Edit:
        """sub SubClassOf sup (for a substance under a drug class: membership)."""
        if sub == sup:
            raise EditError(f"{sub} cannot be a subclass of itself")
        axiom = Axiom("subclass", (self._known(sub), self._known(sup)))
        return self._record("add_subclass", [axiom], [], reason, source, author)

    def remove_subclass(
        self, sub: str, sup: str, *, reason: str, source: str = "", author: str | None = None
    ) -> Edit:
        """Remove sub SubClassOf sup."""
        axiom = Axiom("subclass", (sub, sup))
        return self._record("remove_subclass", [], [axiom], reason, source, author)

    def add_disjoint(
        self, a: str, b: str, *, reason: str, source: str = "", author: str | None = None
    ) -> Edit:
        """DisjointClasses(a, b): nothing is both."""
        if a == b:
            raise EditError(f"{a} cannot be disjoint with itself")
        axiom = disjoint(self._known(a), self._known(b))
        return self._record("add_disjoint", [axiom], [], reason, source, author)

    def remove_disjoint(
        self, a: str, b: str, *, reason: str, source: str = "", author: str | None = None
    ) -> Edit:
        """Remove DisjointClasses(a, b)."""
        return self._record("remove_disjoint", [], [disjoint(a, b)], reason, source, author)

    def add_rule(
        self,
        a: str,
        b: str,
        *,
        severity: str,
        management: str,
        source: str,
        section: str,
        date: str,
        mechanism: str = "",
        reason: str,
        author: str | None = None,
    ) -> Edit:
        """A class-level rule a guideline states: members of ``a`` interact with members of
        ``b``, with severity, management, and the guideline's citation id, section and date."""
        if severity not in SEVERITIES:
            raise EditError(f"unknown severity {severity!r}: use one of {', '.join(SEVERITIES)}")
        if source not in self.changes.citations:
            raise EditError(f"rule source {source!r} is not cited: register it with cite()")
        self._known(a)
        self._known(b)
        axiom = Axiom("rule", (a, b, severity, mechanism, management, source, section, date))
        return self._record("add_rule", [axiom], [], reason, source, author)

    def remove_rule(
        self, a: str, b: str, *, reason: str, source: str = "", author: str | None = None
    ) -> Edit:
        """Remove every rule between ``a`` and ``b`` (either direction)."""
        rules = [a_ for a_ in self.state if a_.kind == "rule" and {*a_.terms[:2]} == {a, b}]
        if not rules:
            raise EditError(f"no rule between {a} and {b}")
        return self._record("remove_rule", [], rules, reason, source, author)

    def replace_axioms(
        self, added: set[Axiom], removed: set[Axiom], *, op: str, reason: str, source: str = ""
    ) -> Edit:
        """Add and remove axioms wholesale (imports of edited files, reverts)."""
        return self._record(op, sorted(added), sorted(removed), reason, source, None)
