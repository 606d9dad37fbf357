"""From a CDS Hooks call to the reasoner's query: the FHIR resources of ``context.draftOrders``
and ``prefetch`` are read with ``ingest.fhir`` into the patient's ``PatientContext``, then
mapped onto a ``Query`` (RxNorm codes as ``RXNORM:<code>`` with the display as text), keeping
which medication is which order and what could not be read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError

from api.cds_models import Bundle, FhirResource, HookRequest, InputMedication, InputProblem
from api.context import ApiContext
from ingest.fhir import curie_for, read_bundle
from ingest.patient import (
    Item,
    MedicationItem,
    PatientContext,
    lab_finding_key,
    lab_finding_name,
    latest_labs,
)
from kg.store import GraphStore
from reasoner.inputs import MAX_ALLERGIES, MAX_CONDITIONS, MAX_MEDICATIONS, Coded, Patient, Query

MAX_AGE = 150
INACTIVE_MEDICATION = frozenset(
    {"completed", "stopped", "cancelled", "entered-in-error", "not-taken", "revoked"}
)
INACTIVE_ALLERGY = frozenset({"inactive", "resolved", "refuted", "entered-in-error"})
INACTIVE_CONDITION = frozenset({"inactive", "resolved", "remission", "refuted", "entered-in-error"})
INACTIVE_OBSERVATION = frozenset({"cancelled", "entered-in-error", "registered"})
CHECKED_TYPES = frozenset({"MedicationRequest", "MedicationStatement", "AllergyIntolerance"})
_ENTRY = re.compile(r"#entry\[(\d+)\]$")


@dataclass
class HookInput:
    """A hook call read into a query: which medication is which order, what could not be read."""

    patient: str
    query: Query
    medications: list[InputMedication]
    focus: set[int]
    problems: list[InputProblem]
    unreadable: list[tuple[str, str]]  # medications and allergies not read: (resource, why)


def read_hook(
    ctx: ApiContext,
    patient_id: str,
    request: HookRequest,
    drafts: Bundle | None = None,
    selections: list[str] | None = None,
) -> HookInput:
    """Read the hook's draft orders and prefetch into the patient's query."""
    prefetch = usable_prefetch(request)
    entries, drafts_at, checked_at = _entries(f"Patient/{patient_id}", drafts, prefetch)
    records = read_bundle({"resourceType": "Bundle", "entry": entries}, salt=ctx.salt)
    pid = ctx.patient_pseudonym(patient_id)
    patient = next((p for p in records.patients if p.patient_id == pid), None)
    problems = [_problem(p) for p in records.problems]
    others = sum(len(list(p.items())) for p in records.patients if p.patient_id != pid)
    if others:
        problems.append(
            InputProblem(
                kind="other-patient",
                position="input",
                message=f"{others} item(s) about other patients were ignored",
            )
        )
    if patient is None:  # nothing in the input is about this patient
        today = datetime.now(UTC).date()
        patient = PatientContext(patient_id=pid, age=None, sex="unknown", reference_date=today)
    problems += [_problem(p) for p in patient.problems if p.kind != "missing-patient"]
    unreadable = [
        (checked_at[int(m.group(1))], p.message)
        for p in problems
        if (m := _ENTRY.search(p.position))
        and int(m.group(1)) in checked_at
        and p.kind != "do-not-perform"
    ]
    unreadable += [
        (drafts_at[m.source.entry], "it is about another patient")
        for p in records.patients
        if p.patient_id != pid
        for m in p.medications
        if m.source.entry in drafts_at
    ]
    wanted = set(selections or [])
    meds: list[Coded] = []
    origins: list[InputMedication] = []
    focus: set[int] = set()
    draft_ids = set(drafts_at.values())
    ordered = sorted(patient.medications, key=lambda m: m.source.entry not in drafts_at)
    for item in ordered:
        at = item.source.entry
        is_draft = at in drafts_at
        resource = drafts_at[at] if is_draft else _reference(item)
        if not is_draft and (item.status in INACTIVE_MEDICATION or resource in draft_ids):
            continue
        if is_draft and item.status in INACTIVE_MEDICATION:  # e.g. entered in error: no order
            unreadable.append((resource, f"its status is {item.status}"))
            continue
        coded = _medication(ctx.reasoner.store, item)
        if coded is None:
            unreadable.append((resource, "no RxNorm code and no name to check it by"))
            continue
        if len(meds) == MAX_MEDICATIONS:  # drafts come first, so they are checked first
            unreadable.append((resource, f"one check reads {MAX_MEDICATIONS} medications at most"))
            continue
        if is_draft and (not wanted or resource in wanted):
            focus.add(len(meds))
        origin = "draft" if is_draft else "active"
        origins.append(InputMedication(index=len(meds), origin=origin, resource=resource))
        meds.append(coded)
    if patient.age is not None and not 0 <= patient.age <= MAX_AGE:
        problems.append(
            InputProblem(kind="bad-date", position="Patient", message="implausible age")
        )
        patient.age = None
    conditions = _conditions(ctx.reasoner.store, patient, problems)
    allergies = _allergies(ctx.reasoner.store, patient, unreadable)
    try:
        query = _query(request.hookInstance, patient, meds, conditions, allergies)
    except ValidationError as exc:
        raise HTTPException(422, f"the hook's data cannot be checked: {one_line(exc)}") from None
    return HookInput(pid, query, origins, focus, problems, unreadable)


def _query(
    hook_instance: str,
    patient: PatientContext,
    meds: list[Coded],
    conditions: list[Coded],
    allergies: list[Coded],
) -> Query:
    return Query(
        id=hook_instance,
        patient=Patient(
            medications=meds,
            allergies=allergies,
            conditions=conditions,
            phenotypes=_phenotypes(patient, excluded=False),
            excluded_phenotypes=_phenotypes(patient, excluded=True),
            age=patient.age,
            sex=patient.sex,
        ),
    )


def usable_prefetch(request: HookRequest) -> dict[str, FhirResource]:
    """The prefetch values the client filled: null and failed ones (an OperationOutcome, as
    CDS Hooks 2.0 allows) are left out, as if missing."""
    return {
        key: value
        for key, value in (request.prefetch or {}).items()
        if value is not None and value.resourceType != "OperationOutcome"
    }


def one_line(exc: ValidationError) -> str:
    """A validation error as one line naming each field."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())


def _entries(
    subject: str, drafts: Bundle | None, prefetch: dict[str, FhirResource]
) -> tuple[list[dict[str, Any]], dict[int, str], dict[int, str]]:
    """The entries (with their ``fullUrl``) of one Bundle of the draft orders (first) and every
    prefetched resource, with the positions of the draft orders, and of every resource the
    medication check needs (medications and allergies), as ``Type/id``. A prefetch Bundle
    that is not one is a 422."""
    entries = [e.model_dump() for e in drafts.entry if e.resource] if drafts else []
    n_drafts = len(entries)
    for key, value in prefetch.items():
        data = value.model_dump()
        if data["resourceType"] != "Bundle":
            entries.append({"resource": data})
            continue
        found = data.get("entry", [])
        if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
            raise HTTPException(422, f"prefetch.{key}: Bundle.entry is not a list of objects")
        entries += [e for e in found if isinstance(e.get("resource"), dict)]
    drafts_at: dict[int, str] = {}
    checked_at: dict[int, str] = {}
    for i, entry in enumerate(entries):
        resource = entry["resource"]
        rtype = resource.get("resourceType")
        rid = resource.get("id")
        ref = f"{rtype}/{rid}" if isinstance(rid, str) and rid else f"{rtype} (entry {i})"
        if i < n_drafts and rtype == "MedicationRequest":
            resource.setdefault("subject", {"reference": subject})
            drafts_at[i] = ref
        if rtype in CHECKED_TYPES:
            checked_at[i] = ref
    return entries, drafts_at, checked_at


def _problem(p: Any) -> InputProblem:
    return InputProblem(kind=p.kind, position=p.position, message=p.message)


def _reference(item: Item) -> str:
    return f"{item.source.resource_type}/{item.source.resource_id}"


def _medication(store: GraphStore, item: MedicationItem) -> Coded | None:
    return _coded(store, item, ("RXNORM",))


def _allergies(
    store: GraphStore, patient: PatientContext, unreadable: list[tuple[str, str]]
) -> list[Coded]:
    """The patient's active allergies by RxNorm code (or text); past ``MAX_ALLERGIES`` each
    further one is listed in ``unreadable`` (it gets a "was not checked" card)."""
    allergies: list[Coded] = []
    for item in patient.allergies:
        if item.status in INACTIVE_ALLERGY or (coded := _coded(store, item, ("RXNORM",))) is None:
            continue
        if len(allergies) == MAX_ALLERGIES:
            message = f"one check reads {MAX_ALLERGIES} allergies at most"
            unreadable.append((_reference(item), message))
        else:
            allergies.append(coded)
    return allergies


def _conditions(
    store: GraphStore, patient: PatientContext, problems: list[InputProblem]
) -> list[Coded]:
    """The patient's active conditions, then the latest result of each lab test where it is
    interpreted high or low (as the KG's abnormal-lab findings, ``EVO:lab-LOINC-<code>-high``),
    one per code (or text); past ``MAX_CONDITIONS`` the rest are left out, with a problem.
    The medication check looks them up as known adverse events of the medications."""
    first: dict[str | None, Coded] = {}
    for item in patient.conditions:
        if item.status not in INACTIVE_CONDITION and (c := _coded(store, item, None)):
            first.setdefault(c.code or c.text, c)
    valid = [o for o in patient.observations if o.status not in INACTIVE_OBSERVATION]
    for obs in latest_labs(valid):  # a high result followed by a normal one is not current
        if key := lab_finding_key(obs):
            first.setdefault(key, Coded(code=key, text=lab_finding_name(key, obs.text[:400])))
    if len(first) > MAX_CONDITIONS:
        message = f"{len(first)} distinct conditions; only the first {MAX_CONDITIONS} were read"
        problems.append(InputProblem(kind="too-many-conditions", position="input", message=message))
    return list(first.values())[:MAX_CONDITIONS]


def _coded(store: GraphStore, item: Any, prefixes: tuple[str, ...] | None) -> Coded | None:
    """The item as the reasoner's ``Coded``: its first code of ``prefixes`` (any KG vocabulary
    when None) that the KG has, else its first such code (an EHR may list a product before
    its ingredient), and its text; None when it has neither."""
    curies = [
        curie
        for c in item.codes
        if (curie := curie_for(c.system, c.code))
        and len(curie) <= 200
        and (prefixes is None or curie.split(":")[0] in prefixes)
    ]
    known = (c for c in curies if store.get_node(c) is not None)
    code = next(known, curies[0] if curies else None)
    text = item.text.strip()[:500] or None
    return Coded(code=code, text=text) if code or text else None


def _phenotypes(patient: PatientContext, *, excluded: bool) -> list[str]:
    out = []
    for p in patient.phenotypes:
        if p.excluded != excluded or p.link.status == "conflict":
            continue
        curies = (curie_for(c.system, c.code) for c in p.codes)
        curie = next((x for x in curies if x and x.startswith("HP:")), None)
        if curie and curie not in out:
            out.append(curie)
    return out
