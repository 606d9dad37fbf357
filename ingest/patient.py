"""``PatientContext``: one patient's pseudonymous record, as the reasoner and learners see it.

Every item keeps its original codes, how it was linked to the KG (``linked``, ``unlinked`` or
``conflict``) and where it came from (``Source``), so any patient fact can be cited. Times are
timezone-aware UTC datetimes (a date alone is midnight UTC; a year or month alone is its first
day). No names, addresses or raw identifiers are kept: the patient id is a salted hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

LOINC_SYSTEM = "http://loinc.org"
#: Where the KG id of an abnormal lab finding starts (``EVO:lab-LOINC-2823-3-high``).
LAB_PREFIX = "EVO:lab-LOINC-"
#: Observation categories that are laboratory results.
LAB_CATEGORIES = ("laboratory", "lab")


class LinkStatus:
    """How a coded item relates to the KG."""

    LINKED = "linked"  # the code names a KG node whose names agree with the display text
    UNLINKED = "unlinked"  # no KG node for the code (unknown system, or code not in the KG)
    CONFLICT = "conflict"  # the KG node's names disagree with the display text: do not use


@dataclass(frozen=True, slots=True)
class Code:
    """A coding as written in the record: FHIR system URI, code and display text."""

    system: str
    code: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class LinkResult:
    """The outcome of linking a code to the KG.

    ``curie`` is the KG id the code maps to, whether or not that node exists; ``node_id`` is
    set only when ``status`` is ``linked``. ``kg_name`` is the node's name (in a conflict, the
    name that disagrees with ``display``).
    """

    status: str
    node_id: str | None = None
    curie: str | None = None
    kg_name: str = ""
    display: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Source:
    """Where an item came from: resource type and id, file, and position in it.

    ``line`` is the 1-based line of an NDJSON file, ``entry`` the 0-based index in a Bundle's
    ``entry`` list, ``element`` the part of the resource (e.g. ``component[0]``).
    """

    resource_type: str
    resource_id: str
    file: str = ""
    line: int | None = None
    entry: int | None = None
    element: str = ""

    @property
    def position(self) -> str:
        return position(self.file, self.line, self.entry)

    def cite(self) -> str:
        """E.g. ``Condition/cond-1 (Condition.ndjson:17)``, the patient-fact citation."""
        part = f" {self.element}" if self.element else ""
        return f"{self.resource_type}/{self.resource_id}{part} ({self.position})"


def position(file: str, line: int | None = None, entry: int | None = None) -> str:
    """``file:line`` for NDJSON, ``file#entry[i]`` for a Bundle entry (``file:line#entry[i]``
    for a Bundle on a line of NDJSON)."""
    where = file or "<input>"
    if line is not None:
        where = f"{where}:{line}"
    if entry is not None:
        where = f"{where}#entry[{entry}]"
    return where


@dataclass(frozen=True, slots=True)
class Problem:
    """A record that could not be read or linked: what kind, where, and why."""

    kind: str
    position: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """What every patient item has: codes, text, KG link, status and source."""

    codes: tuple[Code, ...]
    text: str
    link: LinkResult
    status: str
    source: Source

    @property
    def node_id(self) -> str | None:
        return self.link.node_id

    @property
    def link_status(self) -> str:
        return self.link.status

    @property
    def time(self) -> datetime | None:
        """When the item happened or was recorded (what events are ordered by)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionItem(Item):
    """A diagnosis or problem. ``status`` is the clinical status (active, resolved ...), or
    ``refuted`` / ``entered-in-error`` when the verification status says so."""

    category: str = ""  # problem-list-item, encounter-diagnosis ...
    onset: datetime | None = None
    abatement: datetime | None = None
    recorded: datetime | None = None

    @property
    def time(self) -> datetime | None:
        return self.onset or self.recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class MedicationItem(Item):
    """A medication order (``request``) or use (``statement``); ``status`` as in the record
    (active, completed, stopped, on-hold, cancelled, entered-in-error ...)."""

    kind: str  # request | statement
    intent: str = ""
    dosage: str = ""
    authored: datetime | None = None  # MedicationRequest.authoredOn
    effective: datetime | None = None  # MedicationStatement.effective[x] start

    @property
    def time(self) -> datetime | None:
        return self.authored or self.effective


@dataclass(frozen=True, slots=True, kw_only=True)
class AllergyItem(Item):
    """An allergy or intolerance; ``status`` is the clinical status, or the verification
    status when it is ``refuted`` / ``entered-in-error``."""

    category: tuple[str, ...] = ()  # medication, food, environment, biologic
    criticality: str = ""
    reactions: tuple[str, ...] = ()
    onset: datetime | None = None
    recorded: datetime | None = None

    @property
    def time(self) -> datetime | None:
        return self.onset or self.recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservationItem(Item):
    """A lab result, vital sign or other observation (one per component of a panel).

    ``value`` is a number, string or boolean; a coded value is in ``value_code``.
    """

    category: str = ""  # laboratory, vital-signs, social-history, survey ...
    value: float | int | str | bool | None = None
    unit: str = ""
    value_code: Code | None = None
    interpretation: str = ""  # e.g. H, L, N, A
    effective: datetime | None = None

    @property
    def time(self) -> datetime | None:
        return self.effective


@dataclass(frozen=True, slots=True, kw_only=True)
class PhenotypeItem(Item):
    """An HPO-coded feature (from a Condition or an Observation); ``excluded`` when the record
    says it was looked for and is absent."""

    excluded: bool = False
    onset: datetime | None = None

    @property
    def time(self) -> datetime | None:
        return self.onset


@dataclass(slots=True)
class PatientContext:
    """One patient's pseudonymous record.

    ``age`` is in whole years at ``reference_date`` (or at death); ``sex`` is ``female``,
    ``male``, ``other`` or ``unknown``. ``no_known_allergies`` is set by an explicit "no known
    allergy" record, which is not listed among ``allergies``. ``problems`` lists what could not
    be read or linked in this patient's resources.
    """

    patient_id: str
    age: int | None
    sex: str
    reference_date: date
    deceased: bool = False
    conditions: list[ConditionItem] = field(default_factory=list)
    medications: list[MedicationItem] = field(default_factory=list)
    allergies: list[AllergyItem] = field(default_factory=list)
    no_known_allergies: bool = False
    observations: list[ObservationItem] = field(default_factory=list)
    phenotypes: list[PhenotypeItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    source: Source | None = None

    def items(self) -> Iterator[Item]:
        """Every item: conditions, medications, allergies, observations, phenotypes."""
        yield from self.conditions
        yield from self.medications
        yield from self.allergies
        yield from self.observations
        yield from self.phenotypes

    def linked_nodes(self) -> set[str]:
        """The KG node ids this patient's items are linked to."""
        return {i.node_id for i in self.items() if i.node_id}


@dataclass(frozen=True, slots=True)
class Event:
    """A time-stamped patient item, for learners reading records in time order."""

    time: datetime
    patient_id: str
    kind: str  # condition, medication, allergy, observation, phenotype
    item: Item


def lab_finding_key(
    item: ObservationItem, categories: Iterable[str] = LAB_CATEGORIES
) -> str | None:
    """``EVO:lab-LOINC-<code>-high|low`` for a laboratory result interpreted high or low (the
    KG id of that finding, as the signal learner mints it), else None."""
    flag = item.interpretation[:1].upper()
    if flag not in ("H", "L") or item.category.lower() not in categories:
        return None
    code = loinc_code(item)
    if code is None:
        return None
    return f"{LAB_PREFIX}{code}-{'high' if flag == 'H' else 'low'}"


def lab_finding_name(key: str, lab_name: str = "") -> str:
    """The name of an abnormal-lab finding ``key``: "<lab> above|below the reference range"."""
    code, _, direction = key.removeprefix(LAB_PREFIX).rpartition("-")
    where = "above" if direction == "high" else "below"
    return f"{lab_name or 'LOINC ' + code} {where} the reference range"


def loinc_code(item: ObservationItem) -> str | None:
    """The observation's first LOINC code, if any."""
    return next((c.code for c in item.codes if c.system.rstrip("/") == LOINC_SYSTEM), None)


def latest_labs(items: Iterable[ObservationItem]) -> list[ObservationItem]:
    """The most recent laboratory result of each LOINC code (an undated one counts as the
    oldest), in the order of the codes' first appearance."""
    latest: dict[str, ObservationItem] = {}
    for item in items:
        code = loinc_code(item)
        if code is None or item.category.lower() not in LAB_CATEGORIES:
            continue
        seen = latest.get(code)
        if seen is None or (
            item.effective and (not seen.effective or item.effective > seen.effective)
        ):
            latest[code] = item
    return list(latest.values())
