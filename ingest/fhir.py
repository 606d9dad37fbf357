"""FHIR R4 records (Bundles, bulk-data NDJSON) into pseudonymous ``PatientContext`` records.

Read: Patient, Condition, MedicationRequest, MedicationStatement (with ``Medication`` resources
for ``medicationReference``), AllergyIntolerance and Observation; other resource types are
skipped. Each coded item is linked to the KG by a ``CodeLinker``; ``StoreCodeLinker`` checks
every code's display text against the KG node's names, so a code that says something else
(clinosim writes alendronate orders with RxNorm 3002, cyclophosphamide) is a ``conflict``,
never a link. A ``doNotPerform`` MedicationRequest is reported, not read: it is no medication
taken; so is an HPO finding entered in error. An HPO code that is no HPO id is reported and
skipped (the OBO-style ``HP_0001250`` is read as ``HP:0001250``); SNOMED CT Negative or Absent
as an Observation's value excludes its finding.

Privacy: a patient is known by a salted hash of its resource id; names, addresses,
identifiers and birth dates are not kept (only the age). A resource id that contains one of
the patient's identifiers is replaced by a hash too. ``shift_days`` moves every date of a
patient by the same offset in ``[-shift_days, shift_days]``, derived from the salt and the
patient, while ages are computed from the true dates.

One malformed resource (bad JSON line, missing ``resourceType`` or subject, wrong types) is
reported as a ``Problem`` with its position and skipped; an input that is not FHIR at all
raises ``NotFhirError``. Everything read is held in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ingest.linking import equivalent_ids
from ingest.patient import (
    AllergyItem,
    Code,
    ConditionItem,
    Event,
    LinkResult,
    LinkStatus,
    MedicationItem,
    ObservationItem,
    PatientContext,
    PhenotypeItem,
    Problem,
    Source,
    position,
)
from kg.errors import InvalidCurie
from kg.store import GraphStore
from kg.vocab import check_curie, normalize_text

HPO_SYSTEMS = ("http://human-phenotype-ontology.org", "http://purl.obolibrary.org/obo/hp.owl")

#: FHIR code system URI -> CURIE prefix of KG node ids.
SYSTEM_PREFIXES = {
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMEDCT",
    "http://www.omim.org": "OMIM",
    "http://www.orpha.net": "ORPHA",
    **dict.fromkeys(HPO_SYSTEMS, "HP"),
}

#: SNOMED CT codes that say "no known allergy" rather than naming one.
NO_KNOWN_ALLERGY = frozenset({"716186003", "409137002", "429625007", "428607008", "428197003"})

#: SNOMED CT values of an Observation that say the finding is absent (Negative, Absent).
ABSENT_FINDING = frozenset({"260385009", "2667000"})

#: Resource types read into patient records (``Medication`` only to resolve references).
RESOURCE_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "MedicationRequest",
        "MedicationStatement",
        "AllergyIntolerance",
        "Observation",
        "Medication",
    }
)

#: Share of words two names must have in common to agree (Jaccard), when neither contains
#: the other.
MIN_NAME_OVERLAP = 0.6

_PROCESS_SALT = secrets.token_hex(16)


class NotFhirError(ValueError):
    """The input is not FHIR at all (not JSON, not a Bundle, not NDJSON of resources)."""


class CodeLinker(Protocol):
    """Links one coding of a record to a KG node."""

    def link_code(self, system: str, code: str, display: str) -> LinkResult:
        """The KG node for ``system``/``code``, checked against ``display``."""
        ...


def curie_for(system: str, code: str) -> str | None:
    """The KG id a FHIR coding maps to (``ICD10CM:E11.9``, ``RXNORM:3002``), or None; an
    OBO-style ``HP_0001250`` is ``HP:0001250``, an HPO code of another form is None."""
    prefix = SYSTEM_PREFIXES.get(system.rstrip("/"))
    local = code.strip()
    if not prefix or not local:
        return None
    if local.upper().startswith((prefix + ":", prefix + "_")):
        local = local[len(prefix) + 1 :]
    if prefix == "HP" and not _HPO_LOCAL.fullmatch(local):
        return None
    if prefix == "ICD10CM":
        local = local.upper()
        if len(local) > 3 and "." not in local:
            local = f"{local[:3]}.{local[3:]}"
    try:
        return check_curie(f"{prefix}:{local}")
    except InvalidCurie:
        return None


def names_agree(display: str, names: Iterable[str], min_overlap: float = MIN_NAME_OVERLAP) -> bool:
    """Whether ``display`` names the same thing as one of ``names``.

    After ``normalize_text``, they agree when the words of one are all among the words of the
    other ('Amlodipine (Norvasc)' and 'amlodipine'), or when they share at least
    ``min_overlap`` of their words (Jaccard) and the same numbers ('type 1' is not 'type 2').
    """
    shown = set(normalize_text(display).split())
    if not shown:
        return True
    for name in names:
        words = set(normalize_text(name).split())
        if not words:
            continue
        if shown <= words or words <= shown:
            return True
        numbers_match = {w for w in shown if w.isdigit()} == {w for w in words if w.isdigit()}
        if numbers_match and len(shown & words) / len(shown | words) >= min_overlap:
            return True
    return False


class StoreCodeLinker:
    """Links codes to the nodes of a ``GraphStore``, checking display texts against node names
    and synonyms (results are cached per system, code and display)."""

    def __init__(self, store: GraphStore, *, min_overlap: float = MIN_NAME_OVERLAP) -> None:
        self.store = store
        self.min_overlap = min_overlap
        self._cache: dict[tuple[str, str, str], LinkResult] = {}

    def link_code(self, system: str, code: str, display: str) -> LinkResult:
        key = (system, code, display)
        if key not in self._cache:
            self._cache[key] = self._link(system, code, display)
        return self._cache[key]

    def _link(self, system: str, code: str, display: str) -> LinkResult:
        curie = curie_for(system, code)
        if curie is None:
            reason = f"no KG vocabulary for code {code!r} of system {system!r}"
            return LinkResult(LinkStatus.UNLINKED, display=display, reason=reason)
        node = self.store.get_node(curie)
        if node is None:
            reason = f"{curie} is not in the KG"
            return LinkResult(LinkStatus.UNLINKED, curie=curie, display=display, reason=reason)
        nodes = self.store.get_nodes(sorted(equivalent_ids(self.store, curie))).values()
        names = [x for n in nodes for x in (n.name, *(s.text for s in n.synonyms))]
        if names_agree(display, names, self.min_overlap):
            reason = "" if display else "no display text to check the code against"
            return LinkResult(
                LinkStatus.LINKED,
                node_id=curie,
                curie=curie,
                kg_name=node.name,
                display=display,
                reason=reason,
            )
        reason = f"{curie} is {node.name!r} in the KG but the record says {display!r}"
        return LinkResult(
            LinkStatus.CONFLICT, curie=curie, kg_name=node.name, display=display, reason=reason
        )


@dataclass
class PatientRecords:
    """What a read returns: the patients, and problems that belong to no patient (unreadable
    lines, resources without a subject). Iterating it iterates the patients."""

    patients: list[PatientContext] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def __iter__(self) -> Iterator[PatientContext]:
        return iter(self.patients)

    def __len__(self) -> int:
        return len(self.patients)

    def all_problems(self) -> list[Problem]:
        """These problems and every patient's."""
        return [*self.problems, *(p for pt in self.patients for p in pt.problems)]


def read_bundle(
    bundle: dict[str, Any] | str | Path,
    *,
    linker: CodeLinker | None = None,
    salt: str | None = None,
    shift_days: int = 0,
    reference_date: date | None = None,
) -> PatientRecords:
    """Patients of a FHIR R4 Bundle (a parsed dict, or the path of a JSON file).

    ``salt`` defaults to ``Settings.pseudonym_salt``; when that is empty too, a random salt
    is drawn once per process, so pseudonyms differ between runs. ``reference_date``
    (default: today, UTC) is the date ages are computed at.
    """
    file = ""
    if not isinstance(bundle, dict):
        file = str(bundle)
        try:
            bundle = json.loads(Path(bundle).read_bytes())
        except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, too deep, too long
            raise NotFhirError(f"{file}: not a FHIR Bundle: not JSON ({e})") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        kind = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise NotFhirError(f"{file or 'input'}: not a FHIR Bundle (resourceType {kind!r})")
    reader = _Reader(linker, salt, shift_days, reference_date)
    _add_bundle(reader, bundle, file)
    return reader.finish()


def read_ndjson(
    paths: str | Path | Iterable[str | Path],
    *,
    linker: CodeLinker | None = None,
    salt: str | None = None,
    shift_days: int = 0,
    reference_date: date | None = None,
) -> PatientRecords:
    """Patients of FHIR bulk-data NDJSON files (one resource per line); a directory stands for
    the ``*.ndjson`` files in it (e.g. clinosim's ``fhir_r4`` output folder). Options as in
    ``read_bundle``."""
    reader = _Reader(linker, salt, shift_days, reference_date)
    for path in _ndjson_files(paths):
        _read_ndjson_file(path, reader)
    return reader.finish()


def iter_events(patients: Iterable[PatientContext]) -> Iterator[Event]:
    """Every dated item of ``patients`` as an ``Event``, oldest first (ties in a fixed order);
    items without a date are left out."""
    events = [
        Event(item.time, patient.patient_id, _KINDS[type(item)], item)
        for patient in patients
        for item in patient.items()
        if item.time is not None
    ]
    events.sort(key=_event_order)
    return iter(events)


def pseudonym(raw_id: str, salt: str) -> str:
    """The salted hash that stands for a patient (or resource) id."""
    digest = hmac.new(salt.encode(), raw_id.encode(), hashlib.sha256).hexdigest()
    return f"anon-{digest[:20]}"


def date_shift(raw_id: str, salt: str, max_days: int) -> timedelta:
    """The patient's date offset, in ``[-max_days, max_days]`` days, fixed by salt and id."""
    if max_days <= 0:
        return timedelta(0)
    digest = hmac.new(salt.encode(), b"date-shift\0" + raw_id.encode(), hashlib.sha256).digest()
    return timedelta(days=int.from_bytes(digest[:8]) % (2 * max_days + 1) - max_days)


_KINDS: dict[type, str] = {
    ConditionItem: "condition",
    MedicationItem: "medication",
    AllergyItem: "allergy",
    ObservationItem: "observation",
    PhenotypeItem: "phenotype",
}


def _event_order(e: Event) -> tuple:
    s = e.item.source
    return (e.time, e.patient_id, e.kind, s.file, s.line or 0, s.entry or 0, s.element)


def _ndjson_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    files: list[Path] = []
    for p in map(Path, items):
        if p.is_dir():
            found = sorted(p.glob("*.ndjson"))
            if not found:
                raise NotFhirError(f"{p}: no .ndjson files in this directory")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return files


def _add_bundle(
    reader: _Reader, bundle: dict[str, Any], file: str, line: int | None = None
) -> None:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise NotFhirError(f"{position(file, line)}: Bundle.entry is not a list")
    for i, entry in enumerate(entries):
        where = _Where(file, line, i)
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            reader.problem("not-a-resource", where, "Bundle entry has no resource object")
            continue
        full_url = entry.get("fullUrl")
        reader.add(resource, where, full_url if isinstance(full_url, str) else "")


def _read_ndjson_file(path: Path, reader: _Reader) -> None:
    file = str(path)
    good = bad = 0
    first_error = ""
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = _Where(file, line=n)
            try:
                resource = json.loads(raw)
            except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, too deep, too long
                bad += 1
                first_error = first_error or f"line {n}: {e}"
                reader.problem("bad-json", where, f"not a JSON object: {e}")
                continue
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                bad += 1
                first_error = first_error or f"line {n}: no resourceType"
                reader.problem("not-a-resource", where, "JSON line without a resourceType")
                continue
            good += 1
            if resource["resourceType"] == "Bundle":
                _add_bundle(reader, resource, file, n)
            else:
                reader.add(resource, where)
    if bad and not good:
        raise NotFhirError(f"{file}: not FHIR NDJSON: no line is a FHIR resource ({first_error})")


@dataclass(frozen=True, slots=True)
class _Where:
    file: str
    line: int | None = None
    entry: int | None = None

    def source(self, resource_type: str, resource_id: str, element: str = "") -> Source:
        return Source(resource_type, resource_id, self.file, self.line, self.entry, element)

    def __str__(self) -> str:
        return position(self.file, self.line, self.entry)


class _Malformed(ValueError):
    """A resource whose structure is not what FHIR R4 says (reported, then skipped)."""


@dataclass
class _Patient:
    """A patient being assembled; ``secrets`` (raw ids) never reach the output."""

    context: PatientContext
    shift: timedelta
    secrets: set[str]


class _Reader:
    """Collects resources, then groups them by patient and parses them into records."""

    def __init__(
        self,
        linker: CodeLinker | None,
        salt: str | None,
        shift_days: int,
        reference_date: date | None,
    ) -> None:
        if not salt:
            from kg.settings import get_settings

            salt = get_settings().pseudonym_salt or _PROCESS_SALT
        self.linker = linker
        self.salt = salt
        self.shift_days = shift_days
        self.reference_date = reference_date or datetime.now(UTC).date()
        self.resources: list[tuple[dict[str, Any], _Where, str]] = []
        self.aliases: dict[str, str] = {}  # Bundle fullUrl -> "Type/id" (or the fullUrl)
        self.problems: list[Problem] = []

    def problem(self, kind: str, where: _Where, message: str) -> None:
        self.problems.append(Problem(kind, str(where), message))

    def add(self, resource: dict[str, Any], where: _Where, full_url: str = "") -> None:
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            self.problem("not-a-resource", where, "resource without a resourceType")
            return
        if rtype not in RESOURCE_TYPES:
            return
        if full_url:
            rid = resource.get("id")
            self.aliases[full_url] = f"{rtype}/{rid}" if isinstance(rid, str) and rid else full_url
        self.resources.append((resource, where, full_url))

    def resolve(self, reference: str) -> str:
        """``Type/id`` of a reference (relative, absolute, versioned or a Bundle fullUrl)."""
        if reference in self.aliases:
            return self.aliases[reference]
        match = _REFERENCE.search(reference)
        return match.group(1) if match else reference

    def finish(self) -> PatientRecords:
        patients: dict[str, _Patient] = {}
        medications: dict[str, dict[str, Any]] = {}
        for resource, where, full_url in self.resources:
            rtype, rid = resource["resourceType"], resource.get("id")
            key = f"{rtype}/{rid}" if isinstance(rid, str) and rid else full_url
            if rtype == "Medication" and key:
                medications[key] = resource
            elif rtype == "Patient":
                if not key:
                    self.problem("malformed-resource", where, "Patient without an id")
                elif key in patients:
                    self.problem("duplicate-patient", where, "Patient repeated; first one kept")
                else:
                    patients[key] = self._patient(resource, where, key)
        for resource, where, _ in self.resources:
            rtype = resource["resourceType"]
            if rtype in ("Patient", "Medication"):
                continue
            key = self.resolve(_reference(resource.get("subject") or resource.get("patient")))
            if key not in patients:
                if not key.startswith("Patient/"):
                    self.problem("missing-subject", where, f"{rtype} has no Patient subject")
                    continue
                patients[key] = self._new_patient(key)
                patients[key].context.problems.append(
                    Problem("missing-patient", str(where), "refers to a Patient not in the input")
                )
            _Parser(self, patients[key], where, medications).parse(resource)
        return PatientRecords([p.context for p in patients.values()], self.problems)

    def _new_patient(self, key: str) -> _Patient:
        context = PatientContext(
            patient_id=pseudonym(key, self.salt),
            age=None,
            sex="unknown",
            reference_date=self.reference_date,
        )
        shift = date_shift(key, self.salt, self.shift_days)
        return _Patient(context, shift, {key, key.removeprefix("Patient/")})

    def _patient(self, resource: dict[str, Any], where: _Where, key: str) -> _Patient:
        patient = self._new_patient(key)
        patient.context.source = where.source("Patient", patient.context.patient_id)
        try:
            self._demographics(resource, where, patient)
        except (_Malformed, TypeError, AttributeError, ValueError) as e:
            problem = Problem("malformed-resource", str(where), f"Patient demographics: {e}")
            patient.context.problems.append(problem)
        return patient

    def _demographics(self, resource: dict[str, Any], where: _Where, patient: _Patient) -> None:
        ctx = patient.context
        for ident in _list(resource, "identifier"):
            value = _dict(ident, "identifier").get("value")
            if isinstance(value, str):
                patient.secrets.add(value)
        gender = _str(resource, "gender")
        ctx.sex = gender if gender in ("female", "male", "other", "unknown") else "unknown"
        died = resource.get("deceasedDateTime")
        ctx.deceased = resource.get("deceasedBoolean") is True or isinstance(died, str)
        birth = _parse_time(resource.get("birthDate"))
        death = _parse_time(died)
        if birth is None:
            ctx.problems.append(Problem("no-birth-date", str(where), "no valid birthDate"))
            return
        at = min(self.reference_date, death.date()) if death else self.reference_date
        b = birth.date()
        age = at.year - b.year - ((at.month, at.day) < (b.month, b.day))
        if age < 0:
            ctx.problems.append(Problem("bad-date", str(where), "born after the reference date"))
        else:
            ctx.age = age


class _Parser:
    """Parses one patient's clinical resource into items."""

    def __init__(
        self,
        reader: _Reader,
        patient: _Patient,
        where: _Where,
        medications: dict[str, dict[str, Any]],
    ) -> None:
        self.reader = reader
        self.patient = patient
        self.ctx = patient.context
        self.where = where
        self.medications = medications

    def problem(self, kind: str, message: str) -> None:
        self.ctx.problems.append(Problem(kind, str(self.where), message))

    def parse(self, r: dict[str, Any]) -> None:
        rtype = r["resourceType"]
        try:
            source = self.where.source(rtype, self._resource_id(r))
            if rtype == "Condition":
                self._condition(r, source)
            elif rtype in ("MedicationRequest", "MedicationStatement"):
                self._medication(r, source)
            elif rtype == "AllergyIntolerance":
                self._allergy(r, source)
            elif rtype == "Observation":
                self._observation(r, source)
        except (_Malformed, TypeError, AttributeError, KeyError, ValueError) as e:
            self.problem("malformed-resource", f"{rtype} skipped: {e}")

    def _resource_id(self, r: dict[str, Any]) -> str:
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            return ""
        if any(len(secret) >= 4 and secret in rid for secret in self.patient.secrets):
            return pseudonym(f"{r['resourceType']}/{rid}", self.reader.salt)
        return rid

    # --- resources -------------------------------------------------------------------------

    def _condition(self, r: dict[str, Any], source: Source) -> None:
        codes, text = self._concept(r, "code")
        status = _status(r, "clinicalStatus", "verificationStatus")
        onset = self._time(r, "onsetDateTime") or self._period_start(r, "onsetPeriod")
        void = status == "entered-in-error"
        if self._phenotype(codes, text, status == "refuted", onset, source, void=void):
            return
        self.ctx.conditions.append(
            ConditionItem(
                codes=codes,
                text=text,
                link=self._link(codes, text),
                status=status,
                source=source,
                category=_first_code(_list(r, "category")),
                onset=onset,
                abatement=self._time(r, "abatementDateTime"),
                recorded=self._time(r, "recordedDate"),
            )
        )

    def _medication(self, r: dict[str, Any], source: Source) -> None:
        if r.get("doNotPerform") is True:
            self.problem("do-not-perform", "an order not to give this medication; not read")
            return
        codes, text = self._medication_concept(r)
        is_request = r["resourceType"] == "MedicationRequest"
        dosages = _list(r, "dosageInstruction" if is_request else "dosage")
        effective = self._time(r, "effectiveDateTime") or self._period_start(r, "effectivePeriod")
        self.ctx.medications.append(
            MedicationItem(
                codes=codes,
                text=text,
                link=self._link(codes, text),
                status=_str(r, "status"),
                source=source,
                kind="request" if is_request else "statement",
                intent=_str(r, "intent"),
                dosage="; ".join(t for d in dosages if (t := _str(_dict(d), "text"))),
                authored=self._time(r, "authoredOn"),
                effective=effective or self._time(r, "dateAsserted"),
            )
        )

    def _allergy(self, r: dict[str, Any], source: Source) -> None:
        codes, text = self._concept(r, "code")
        if any(c.system == "http://snomed.info/sct" and c.code in NO_KNOWN_ALLERGY for c in codes):
            self.ctx.no_known_allergies = True
            return
        reactions = [
            _concept_text(_dict(m))
            for reaction in _list(r, "reaction")
            for m in _list(_dict(reaction), "manifestation")
        ]
        self.ctx.allergies.append(
            AllergyItem(
                codes=codes,
                text=text,
                link=self._link(codes, text),
                status=_status(r, "clinicalStatus", "verificationStatus"),
                source=source,
                category=tuple(c for c in _list(r, "category") if isinstance(c, str)),
                criticality=_str(r, "criticality"),
                reactions=tuple(t for t in reactions if t),
                onset=self._time(r, "onsetDateTime"),
                recorded=self._time(r, "recordedDate"),
            )
        )

    def _observation(self, r: dict[str, Any], source: Source) -> None:
        codes, text = self._concept(r, "code")
        effective = (
            self._time(r, "effectiveDateTime")
            or self._period_start(r, "effectivePeriod")
            or self._time(r, "effectiveInstant")
            or self._time(r, "issued")
        )
        value, unit, value_code = _value(r)
        interpretation = _first_code(_list(r, "interpretation"))
        excluded = value is False or interpretation.upper() == "NEG" or _says_absent(value_code)
        void = _str(r, "status") == "entered-in-error"
        if self._phenotype(codes, text, excluded, effective, source, void=void):
            return
        components = _list(r, "component")
        common = {
            "status": _str(r, "status"),
            "category": _first_code(_list(r, "category")),
            "effective": effective,
        }
        if value is not None or value_code is not None or not components:
            self.ctx.observations.append(
                ObservationItem(
                    codes=codes,
                    text=text,
                    link=self._link(codes, text),
                    source=source,
                    value=value,
                    unit=unit,
                    value_code=value_code,
                    interpretation=interpretation,
                    **common,
                )
            )
        for i, component in enumerate(components):
            part = _dict(component)
            c_codes, c_text = self._concept(part, "code")
            c_value, c_unit, c_value_code = _value(part)
            self.ctx.observations.append(
                ObservationItem(
                    codes=c_codes,
                    text=c_text,
                    link=self._link(c_codes, c_text),
                    source=replace(source, element=f"component[{i}]"),
                    value=c_value,
                    unit=c_unit,
                    value_code=c_value_code,
                    interpretation=_first_code(_list(part, "interpretation")),
                    **common,
                )
            )

    def _phenotype(
        self,
        codes: tuple[Code, ...],
        text: str,
        excluded: bool,
        onset: datetime | None,
        source: Source,
        *,
        void: bool = False,
    ) -> bool:
        """Record an HPO-coded Condition or Observation as a phenotype (True if it was one).

        HPO codes that are no HPO ids are reported and skipped; a ``void`` one (entered in
        error) is reported, not read."""
        hpo = tuple(c for c in codes if c.system.rstrip("/") in HPO_SYSTEMS)
        valid = tuple(c for c in hpo if curie_for(c.system, c.code))
        if bad := [c.code for c in hpo if c not in valid]:
            self.problem("bad-code", f"not HPO ids (HP:0000000), skipped: {bad}")
        if not valid:
            return False
        if void:
            self.problem("entered-in-error", "an HPO finding entered in error; not read")
            return True
        self.ctx.phenotypes.append(
            PhenotypeItem(
                codes=codes,
                text=text,
                link=self._link(valid, text),
                status="excluded" if excluded else "present",
                source=source,
                excluded=excluded,
                onset=onset,
            )
        )
        return True

    # --- parts ---------------------------------------------------------------------------

    def _concept(self, r: dict[str, Any], key: str) -> tuple[tuple[Code, ...], str]:
        concept = r.get(key)
        if concept is None:
            raise _Malformed(f"no {key}")
        concept = _dict(concept, key)
        codes = _codes(concept)
        text = _str(concept, "text") or next((c.display for c in codes if c.display), "")
        if not codes and not text:
            raise _Malformed(f"{key} has neither coding nor text")
        return codes, text

    def _medication_concept(self, r: dict[str, Any]) -> tuple[tuple[Code, ...], str]:
        if "medicationCodeableConcept" in r:
            return self._concept(r, "medicationCodeableConcept")
        ref = _dict(r.get("medicationReference"), "medicationReference")
        target = _str(ref, "reference")
        if target.startswith("#"):
            medication = next(
                (c for c in _list(r, "contained") if _dict(c).get("id") == target[1:]), None
            )
        else:
            medication = self.medications.get(self.reader.resolve(target))
        if medication is None:
            display = _str(ref, "display")
            if not display:
                raise _Malformed("medicationReference to a Medication not in the input")
            self.problem("unresolved-reference", "Medication not in the input; its display kept")
            return (), display
        return self._concept(medication, "code")

    def _link(self, codes: tuple[Code, ...], text: str) -> LinkResult:
        if not codes:
            return LinkResult(LinkStatus.UNLINKED, display=text, reason="no code")
        if self.reader.linker is None:
            return LinkResult(LinkStatus.UNLINKED, display=text, reason="no KG linker given")
        results = [self.reader.linker.link_code(c.system, c.code, c.display or text) for c in codes]
        conflict = next((x for x in results if x.status == LinkStatus.CONFLICT), None)
        if conflict:
            self.problem("code-conflict", conflict.reason)
            return conflict
        return next((x for x in results if x.status == LinkStatus.LINKED), results[0])

    def _time(self, r: dict[str, Any], key: str) -> datetime | None:
        value = r.get(key)
        if value is None:
            return None
        parsed = _parse_time(value)
        if parsed is None:
            self.problem("bad-date", f"{key} is not a FHIR date/time")
            return None
        try:
            return parsed + self.patient.shift
        except OverflowError:
            self.problem("bad-date", f"{key} is out of range once shifted")
            return None

    def _period_start(self, r: dict[str, Any], key: str) -> datetime | None:
        period = r.get(key)
        return self._time(_dict(period, key), "start") if period is not None else None


# --- JSON helpers: raise _Malformed on wrong types ----------------------------------------


def _dict(value: Any, what: str = "element") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is a {type(value).__name__}, expected an object")
    return value


def _list(r: dict[str, Any], key: str) -> list[Any]:
    value = r.get(key, [])
    if not isinstance(value, list):
        raise _Malformed(f"{key} is a {type(value).__name__}, expected a list")
    return value


def _str(r: dict[str, Any], key: str) -> str:
    value = r.get(key, "")
    if not isinstance(value, str):
        raise _Malformed(f"{key} is a {type(value).__name__}, expected a string")
    return value


def _codes(concept: dict[str, Any]) -> tuple[Code, ...]:
    codes = []
    for coding in _list(concept, "coding"):
        c = _dict(coding, "coding")
        code = c.get("code")
        if isinstance(code, int | float) and not isinstance(code, bool):
            code = str(code)  # a code written as a JSON number
        if isinstance(code, str) and code:
            codes.append(Code(_str(c, "system"), code, _str(c, "display")))
    return tuple(codes)


def _concept_text(concept: dict[str, Any]) -> str:
    return _str(concept, "text") or next((c.display for c in _codes(concept) if c.display), "")


def _first_code(concepts: list[Any]) -> str:
    """The first code among a list of CodeableConcepts (e.g. a category)."""
    for concept in concepts:
        for c in _codes(_dict(concept)):
            return c.code
    return ""


def _status(r: dict[str, Any], clinical: str, verification: str) -> str:
    checked = _first_code([r[verification]]) if verification in r else ""
    if checked in ("refuted", "entered-in-error"):
        return checked
    return _first_code([r[clinical]]) if clinical in r else ""


def _value(r: dict[str, Any]) -> tuple[float | int | str | bool | None, str, Code | None]:
    """(value, unit, coded value) of an Observation or component."""
    if "valueQuantity" in r:
        q = _dict(r["valueQuantity"], "valueQuantity")
        number = q.get("value")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            raise _Malformed("valueQuantity.value is not a number")
        return number, _str(q, "unit") or _str(q, "code"), None
    if "valueCodeableConcept" in r:
        concept = _dict(r["valueCodeableConcept"], "valueCodeableConcept")
        codes = _codes(concept)
        text = _concept_text(concept)
        return text or None, "", codes[0] if codes else None
    for key, kinds in (
        ("valueInteger", int),
        ("valueBoolean", bool),
        ("valueString", str),
        ("valueDateTime", str),
    ):
        if key in r:
            value = r[key]
            if not isinstance(value, kinds) or (kinds is int and isinstance(value, bool)):
                raise _Malformed(f"{key} is a {type(value).__name__}")
            return value, "", None
    return None, "", None


def _says_absent(value_code: Code | None) -> bool:
    """Whether an Observation's coded value is SNOMED CT Negative or Absent."""
    if value_code is None:
        return False
    return value_code.system == "http://snomed.info/sct" and value_code.code in ABSENT_FINDING


def _reference(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return value["reference"]
    return ""


_HPO_LOCAL = re.compile(r"[0-9]{7}")
_REFERENCE = re.compile(r"([A-Za-z]+/[^/]+?)(?:/_history/[^/]*)?$")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


def _parse_time(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime (None if it is not one)."""
    if not isinstance(value, str):
        return None
    match = _PARTIAL_DATE.match(value)
    try:
        if match:
            return datetime(int(match[1]), int(match[2] or 1), 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59:59-05:00 is past 9999 in UTC
        return None
