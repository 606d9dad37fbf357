"""Request and answer models of the ``/v1/ontology`` routes: one model per curator edit (the
``op`` field tells them apart), and what change sets, checks and versions look like."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.rest import CitationOut
from kg.model import Citation
from kg.vocab import check_category, check_curie
from ontology.changes import SEVERITIES, Edit, Editor

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Curie = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_curie)]
Lang = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]
Category = Annotated[str, AfterValidator(check_category)]


def _calendar_day(day: str) -> str:
    """``day`` if it is a day of the calendar (2026-13-45 matches the pattern, but is not)."""
    datetime.date.fromisoformat(day)
    return day


Day = Annotated[
    str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_calendar_day)
]
SourceId = Annotated[
    str, Field(max_length=200, description="Citation id of the edit's source (optional).")
]


class ReasonIn(BaseModel):
    """Why (a new change set, a revert, a curation decision)."""

    model_config = ConfigDict(extra="forbid")
    reason: Text


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    reason: Text

    #: the fields that name classes the ontology must have
    known: ClassVar[tuple[str, ...]] = ()

    def apply(self, ed: Editor, author: str) -> Edit:
        """Make the edit with ``ed`` in the name of ``author``."""
        raise NotImplementedError


class _Sourced(_Edit):
    source: SourceId = ""


class AddClass(_Sourced):
    op: Literal["add_class"]
    cls: Curie = Field(alias="class", description="The new class's CURIE.")
    label: Label
    parent: Curie
    category: Category = "biolink:DrugClass"
    lang: Lang = "en"
    known: ClassVar[tuple[str, ...]] = ("parent",)

    def apply(self, ed: Editor, author: str) -> Edit:
        return ed.add_class(
            self.cls,
            self.label,
            parent=self.parent,
            category=self.category,
            lang=self.lang,
            reason=self.reason,
            source=self.source,
            author=author,
        )


class Rename(_Sourced):
    op: Literal["rename"]
    cls: Curie = Field(alias="class")
    label: Label
    lang: Lang = "en"
    known: ClassVar[tuple[str, ...]] = ("cls",)

    def apply(self, ed: Editor, author: str) -> Edit:
        return ed.rename_class(
            self.cls,
            self.label,
            lang=self.lang,
            reason=self.reason,
            source=self.source,
            author=author,
        )


class Deprecate(_Sourced):
    op: Literal["deprecate"]
    cls: Curie = Field(alias="class")
    replaced_by: Curie | None = None
    known: ClassVar[tuple[str, ...]] = ("cls", "replaced_by")

    def apply(self, ed: Editor, author: str) -> Edit:
        return ed.deprecate_class(
            self.cls,
            replaced_by=self.replaced_by,
            reason=self.reason,
            source=self.source,
            author=author,
        )


class AddLabel(_Sourced):
    op: Literal["add_label", "add_synonym"]
    cls: Curie = Field(alias="class")
    text: Label
    lang: Lang = "en"
    known: ClassVar[tuple[str, ...]] = ("cls",)

    def apply(self, ed: Editor, author: str) -> Edit:
        add = ed.add_label if self.op == "add_label" else ed.add_synonym
        return add(
            self.cls, self.text, self.lang, reason=self.reason, source=self.source, author=author
        )


class Subclass(_Sourced):
    op: Literal["add_subclass", "remove_subclass"]
    sub: Curie
    sup: Curie
    known: ClassVar[tuple[str, ...]] = ("sub", "sup")

    def apply(self, ed: Editor, author: str) -> Edit:
        change = ed.add_subclass if self.op == "add_subclass" else ed.remove_subclass
        return change(self.sub, self.sup, reason=self.reason, source=self.source, author=author)


class Disjoint(_Sourced):
    op: Literal["add_disjoint", "remove_disjoint"]
    a: Curie
    b: Curie
    known: ClassVar[tuple[str, ...]] = ("a", "b")

    def apply(self, ed: Editor, author: str) -> Edit:
        change = ed.add_disjoint if self.op == "add_disjoint" else ed.remove_disjoint
        return change(self.a, self.b, reason=self.reason, source=self.source, author=author)


class GuidelineIn(BaseModel):
    """The guideline a class-level rule comes from (cited by every edge the rule makes)."""

    model_config = ConfigDict(extra="forbid")
    id: Curie = Field(description="Citation id, e.g. guideline:ansm-2023.")
    title: Label
    url: str = Field("", max_length=500)
    version: str = Field("", max_length=50)


class AddRule(_Edit):
    """Members of ``a`` interact with members of ``b``, as a guideline states."""

    op: Literal["add_rule"]
    a: Curie
    b: Curie
    severity: Literal[SEVERITIES]  # type: ignore[valid-type]
    management: Text
    mechanism: str = Field("", max_length=2000)
    guideline: GuidelineIn
    section: Label
    date: Day = Field(description="The guideline's date, YYYY-MM-DD.")
    known: ClassVar[tuple[str, ...]] = ("a", "b")

    def apply(self, ed: Editor, author: str) -> Edit:
        g = self.guideline
        cite = Citation(g.id, "guideline", g.title, version=g.version, date=self.date, url=g.url)
        return ed.add_rule(
            self.a,
            self.b,
            severity=self.severity,
            management=self.management,
            mechanism=self.mechanism,
            source=ed.cite(cite),
            section=self.section,
            date=self.date,
            reason=self.reason,
            author=author,
        )


class RemoveRule(_Sourced):
    op: Literal["remove_rule"]
    a: Curie
    b: Curie
    known: ClassVar[tuple[str, ...]] = ("a", "b")

    def apply(self, ed: Editor, author: str) -> Edit:
        return ed.remove_rule(self.a, self.b, reason=self.reason, source=self.source, author=author)


EditIn = Annotated[
    AddClass | Rename | Deprecate | AddLabel | Subclass | Disjoint | AddRule | RemoveRule,
    Field(discriminator="op"),
]


# --- answers ---------------------------------------------------------------------------------


class EditOut(BaseModel):
    op: str
    author: str = Field(description="The key id of the curator who made the edit.")
    time: float
    reason: str
    source: str
    added: list[list[str]] = Field(description="Axioms added: [kind, *terms].")
    removed: list[list[str]]


class ChangeSetOut(BaseModel):
    id: str
    author: str
    reason: str
    created: float
    status: str = Field(description="draft, published or refused.")
    version: int | None
    reverts: str | None
    citations: dict[str, CitationOut]
    edits: list[EditOut]
    report: dict[str, Any]


class UnsatisfiableOut(BaseModel):
    cls: str = Field(alias="class")
    axioms: list[str] = Field(description="The axioms that make the class unsatisfiable.")


class CheckOut(BaseModel):
    ok: bool
    consistent: bool
    unsatisfiable: list[UnsatisfiableOut]
    unsatisfiable_descendants: list[str]
    scope: str
    classes: int
    axioms: int
    seconds: float
    inferred: int


class RefusedOut(BaseModel):
    detail: str
    check: CheckOut


class VersionOut(BaseModel):
    version: int
    changeset: str
    author: str
    reason: str
    time: float
    kg_version: int | None = None
    reverts: str | None = None
    check: CheckOut | None = None
    kg: dict[str, Any] = Field(default_factory=dict, description="What the KG sync wrote.")


class AxiomChange(BaseModel):
    axiom: list[str]
    changeset: str
    version: int | None = None
    author: str = ""
    time: float | None = None
    reason: str = ""
    source: str = ""


class DiffOut(BaseModel):
    from_version: int = Field(alias="from")
    to_version: int = Field(alias="to")
    added: list[AxiomChange]
    removed: list[AxiomChange]


class HistoryRow(BaseModel):
    version: int
    changeset: str
    op: str
    author: str
    time: float | None
    reason: str
    source: str
    added: list[list[str]]
    removed: list[list[str]]
