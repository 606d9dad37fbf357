"""FHIR R4 records into PatientContext, on a small clinosim population generated here."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.fhir import (
    NotFhirError,
    PatientRecords,
    StoreCodeLinker,
    curie_for,
    iter_events,
    names_agree,
    read_bundle,
    read_ndjson,
)
from ingest.icd10cm import load_icd10cm
from ingest.patient import LinkStatus, PatientContext
from kg import open_store
from kg.model import Citation, Node
from kg.store import GraphStore

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SALT = "test-salt"
SNAPSHOT = date(2024, 12, 31)

#: RxNorm ingredients (RXCUI -> RxNorm name) among those clinosim orders at seed 1, plus
#: warfarin and alendronate; vitamin D (11253) is left out to see an unlinked code.
RXNORM_NAMES = {
    "161": "acetaminophen",
    "1191": "aspirin",
    "3002": "cyclophosphamide",
    "6809": "metformin",
    "10582": "levothyroxine",
    "11289": "warfarin",
    "15996": "mirtazapine",
    "17128": "lansoprazole",
    "17767": "amlodipine",
    "46041": "alendronate",
    "72625": "duloxetine",
    "77492": "tamsulosin",
    "83367": "atorvastatin",
    "214354": "candesartan",
}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clinosim's FHIR R4 bulk output for a catchment of 50 (18 patients), seed 1."""
    out = tmp_path_factory.mktemp("clinosim")
    command = [sys.executable, "-m", "clinosim.simulator.cli", "simulate", "-o", str(out)]
    command += ["-p", "50", "-s", "1", "--start", "2024-07-01", "--end", str(SNAPSHOT)]
    subprocess.run([*command, "--format", "fhir-r4"], check=True, capture_output=True)
    return out / "fhir_r4"


def resources(population: Path, rtype: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (population / f"{rtype}.ndjson").open()]


@pytest.fixture(scope="module")
def store(population: Path, tmp_path_factory: pytest.TempPathFactory) -> GraphStore:
    """A KG with the loader's ICD-10-CM nodes for the population's diagnoses (and their
    ancestors) and RxNorm ingredient nodes under a test citation."""
    batch = load_icd10cm()
    parents = {e.subject: e.object for e in batch.edges}
    keep = {"ICD10CM:E11.9", "ICD10CM:N10"}
    for condition in resources(population, "Condition"):
        keep.add("ICD10CM:" + condition["code"]["coding"][0]["code"])
    for curie in list(keep):
        while curie in parents:
            curie = parents[curie]
            keep.add(curie)
    test = Citation("src:test-rxnorm", "database", "RxNorm names for tests")
    s = open_store(f"sqlite:///{tmp_path_factory.mktemp('kg') / 'kg.sqlite'}")
    s.upsert(
        citations=[batch.citation, test],
        nodes=[
            *(n for n in batch.nodes if n.id in keep),
            *(Node(f"RXNORM:{k}", "biolink:Drug", v) for k, v in RXNORM_NAMES.items()),
        ],
        edges=[e for e in batch.edges if e.subject in keep],
        actor="test",
    )
    return s


@pytest.fixture(scope="module")
def records(population: Path, store: GraphStore) -> PatientRecords:
    return read_ndjson(
        population, linker=StoreCodeLinker(store), salt=SALT, reference_date=SNAPSHOT
    )


def test_patients_and_items(population: Path, records: PatientRecords) -> None:
    assert len(records) == len(resources(population, "Patient")) >= 15
    assert records.problems == []
    assert {p.kind for p in records.all_problems()} == {"code-conflict"}
    assert all(p.age is not None and p.sex in ("female", "male") for p in records)
    items = Counter(type(i).__name__ for p in records for i in p.items())
    assert items["ConditionItem"] == len(resources(population, "Condition"))
    assert items["MedicationItem"] == len(resources(population, "MedicationRequest"))
    assert items["ObservationItem"] > len(resources(population, "Observation"))  # components
    assert items["AllergyItem"] >= 3
    assert sum(p.no_known_allergies for p in records) >= 10


def test_conditions_link_to_icd10cm(records: PatientRecords) -> None:
    conditions = [c for p in records for c in p.conditions]
    assert all(c.link_status == LinkStatus.LINKED for c in conditions)
    assert all(c.node_id == "ICD10CM:" + c.codes[0].code for c in conditions)
    hypertension = next(c for c in conditions if c.node_id == "ICD10CM:I10")
    assert hypertension.link.kg_name == "Essential (primary) hypertension"
    assert hypertension.status == "active"
    assert hypertension.onset is not None
    assert hypertension.source.resource_type == "Condition"
    assert hypertension.source.file.endswith("Condition.ndjson")
    assert hypertension.source.cite().startswith(f"Condition/{hypertension.source.resource_id} (")


def test_medications_link_to_rxnorm(records: PatientRecords) -> None:
    meds = [m for p in records for m in p.medications]
    assert all(m.kind == "request" for m in meds)
    amlodipine = [m for m in meds if m.codes and m.codes[0].code == "17767"]
    assert amlodipine
    assert all(m.node_id == "RXNORM:17767" for m in amlodipine)  # 'Amlodipine (Norvasc)'
    assert all(m.authored is not None and m.status for m in amlodipine)
    vitamin_d = next(m for m in meds if m.codes and m.codes[0].code == "11253")
    assert vitamin_d.link_status == LinkStatus.UNLINKED
    assert vitamin_d.link.curie == "RXNORM:11253"
    text_only = [m for m in meds if not m.codes]  # e.g. folic acid, written without a code
    assert all(m.text and m.link_status == LinkStatus.UNLINKED for m in text_only)


def test_alendronate_written_as_cyclophosphamide_is_a_conflict(records: PatientRecords) -> None:
    orders = [m for p in records for m in p.medications if m.codes and m.codes[0].code == "3002"]
    assert orders
    for order in orders:
        assert order.link_status == LinkStatus.CONFLICT
        assert order.node_id is None
        assert order.link.curie == "RXNORM:3002"
        assert order.link.kg_name == "cyclophosphamide"
        assert "Alendronate" in order.link.display
    linked = {n for p in records for n in p.linked_nodes()}
    assert "RXNORM:3002" not in linked
    conflicts = [c for p in records for c in p.problems if c.kind == "code-conflict"]
    assert len(conflicts) == len(orders)
    assert all("MedicationRequest.ndjson:" in c.position for c in conflicts)
    assert all("cyclophosphamide" in c.message for c in conflicts)


def test_observations_have_loinc_values_and_units(records: PatientRecords) -> None:
    observations = [o for p in records for o in p.observations]
    heart_rates = [o for o in observations if o.codes[0].code == "8867-4"]
    assert heart_rates
    assert all(o.codes[0].system == "http://loinc.org" for o in heart_rates)
    assert all(isinstance(o.value, int | float) and o.unit == "/min" for o in heart_rates)
    assert all(o.category == "vital-signs" and o.effective is not None for o in heart_rates)
    systolic = [o for o in observations if o.codes[0].code == "8480-6"]  # blood pressure panel
    assert systolic and all(o.unit == "mm[Hg]" and o.source.element for o in systolic)
    assert all(o.source.element.startswith("component[") for o in systolic)
    smoking = next(o for o in observations if o.codes[0].code == "72166-2")
    assert smoking.value_code is not None and smoking.value_code.system == "http://snomed.info/sct"
    assert all(o.link_status == LinkStatus.UNLINKED for o in heart_rates)  # no LOINC in this KG


def test_allergies(records: PatientRecords) -> None:
    allergies = [a for p in records for a in p.allergies]
    assert {a.text for a in allergies} >= {"Wheat", "Aspirin"}
    assert all(a.codes[0].system == "http://snomed.info/sct" for a in allergies)
    assert all(a.status == "active" and a.category for a in allergies)
    assert not any("no known" in a.text.lower() for a in allergies)


def test_pseudonyms_hide_identifiers(
    population: Path, records: PatientRecords, store: GraphStore
) -> None:
    secrets: set[str] = set()
    for patient in resources(population, "Patient"):
        secrets.add(patient["id"])
        secrets.update(i["value"] for i in patient["identifier"])
        for name in patient.get("name", ()):
            secrets.add(" ".join([*name.get("given", ()), name.get("family", "")]).strip())
        secrets.update(line for a in patient.get("address", ()) for line in a.get("line", ()))
        secrets.update(t["value"] for t in patient.get("telecom", ()))
    output = repr(records.patients) + repr(records.problems)
    assert not [s for s in secrets if s in output]
    again = read_ndjson(population, linker=StoreCodeLinker(store), salt=SALT)
    other = read_ndjson(population, linker=StoreCodeLinker(store), salt="another salt")
    ids = [p.patient_id for p in records]
    assert len(set(ids)) == len(ids)
    assert [p.patient_id for p in again] == ids
    assert not set(ids) & {p.patient_id for p in other}
    assert len(other) == len(records)


def test_date_shift_keeps_ages(population: Path, records: PatientRecords) -> None:
    shifted = read_ndjson(population, salt=SALT, shift_days=30, reference_date=SNAPSHOT)
    offsets = set()
    for before, after in zip(records, shifted, strict=True):
        assert after.patient_id == before.patient_id
        assert after.age == before.age
        deltas = {
            a.time - b.time
            for b, a in zip(before.items(), after.items(), strict=True)
            if b.time is not None
        }
        assert len(deltas) == 1
        delta = deltas.pop()
        assert abs(delta) <= timedelta(days=30)
        offsets.add(delta)
    assert len(offsets) > 1


def test_iter_events_in_time_order(records: PatientRecords) -> None:
    events = list(iter_events(records))
    dated = sum(1 for p in records for i in p.items() if i.time is not None)
    assert len(events) == dated > 0
    assert all(a.time <= b.time for a, b in itertools.pairwise(events))
    assert {e.kind for e in events} == {"condition", "medication", "allergy", "observation"}
    patients = {p.patient_id for p in records}
    assert {e.patient_id for e in events} <= patients


def test_bad_lines_are_reported_and_skipped(population: Path, tmp_path: Path) -> None:
    patient, conditions = _patient_with_conditions(population)
    subject = {"reference": f"Patient/{patient['id']}"}
    bad = [
        b'{"resourceType": "Condition", "id": "cut-short", ',
        b"[1, 2]",
        b'{"id": "no-type"}',
        b"\xff\xfe not utf-8",
        json.dumps({"resourceType": "Condition", "id": "c1", "code": {"text": "x"}}).encode(),
        json.dumps({"resourceType": "Condition", "subject": subject, "code": "E11.9"}).encode(),
        json.dumps(
            {
                "resourceType": "Observation",
                "subject": subject,
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "valueQuantity": {"value": "high"},
            }
        ).encode(),
        json.dumps(
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/not-in-the-file"},
                "code": {"coding": [{"system": ICD10CM, "code": "I10"}]},
            }
        ).encode(),
    ]
    good = [json.dumps(r).encode() for r in (patient, *conditions)]
    half = len(good) // 2
    lines = good[:half] + bad + [b""] + good[half:]
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_ndjson(path, salt=SALT)
    first_bad = half + 1
    last_at = {p.kind: p.position for p in read.all_problems() if p.kind != "missing-patient"}
    assert last_at == {
        "bad-json": f"{path}:{first_bad + 3}",
        "not-a-resource": f"{path}:{first_bad + 2}",
        "missing-subject": f"{path}:{first_bad + 4}",
        "malformed-resource": f"{path}:{first_bad + 6}",
    }
    kinds = Counter(p.kind for p in read.all_problems())
    assert kinds == {
        "bad-json": 2,
        "not-a-resource": 2,
        "missing-subject": 1,
        "malformed-resource": 2,
        "missing-patient": 1,
    }
    assert sum(len(p.conditions) for p in read) == len(conditions) + 1
    orphan = next(p for p in read if p.source is None)
    assert orphan.age is None and [c.node_id for c in orphan.conditions] == [None]


def test_bundle(population: Path, records: PatientRecords, store: GraphStore) -> None:
    patient, _ = _patient_with_conditions(population)
    ref = f"Patient/{patient['id']}"
    urn = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ref)}"
    entries = [{"fullUrl": urn, "resource": patient}]
    for rtype in ("Condition", "MedicationRequest", "AllergyIntolerance", "Observation"):
        for r in resources(population, rtype):
            holder = "patient" if rtype == "AllergyIntolerance" else "subject"
            if r[holder]["reference"] == ref:
                entries.append({"resource": {**r, holder: {"reference": urn}}})
    leaky = {**entries[1]["resource"], "id": f"cond-{patient['id']}-1"}
    entries.append({"resource": leaky})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    path = Path(population).parent / "bundle.json"
    path.write_text(json.dumps(bundle))
    for source in (bundle, path):
        read = read_bundle(
            source, linker=StoreCodeLinker(store), salt=SALT, reference_date=SNAPSHOT
        )
        [one] = read.patients
        from_ndjson = next(p for p in records if p.patient_id == one.patient_id)
        assert one.age == from_ndjson.age and one.sex == from_ndjson.sex
        assert len(one.conditions) == len(from_ndjson.conditions) + 1
        assert _summary(one.medications) == _summary(from_ndjson.medications)
        assert _summary(one.observations) == _summary(from_ndjson.observations)
        assert _summary(one.allergies) == _summary(from_ndjson.allergies)
        assert one.conditions[0].source.position.endswith("#entry[1]")
        assert one.conditions[-1].source.resource_id.startswith("anon-")
        assert patient["id"] not in repr(read)


def _patient_with_conditions(population: Path) -> tuple[dict, list[dict]]:
    conditions = resources(population, "Condition")
    for patient in resources(population, "Patient"):
        ref = f"Patient/{patient['id']}"
        own = [c for c in conditions if c["subject"]["reference"] == ref]
        if own:
            return patient, own
    raise AssertionError("no patient with conditions")


def _summary(items: list[Any]) -> Counter:
    return Counter((i.codes, i.text, i.link_status, i.node_id, i.time) for i in items)


def test_not_fhir_raises(tmp_path: Path) -> None:
    csv = tmp_path / "labs.csv"
    csv.write_text("patient,code,value\n1,8867-4,72\n2,8867-4,80\n")
    with pytest.raises(NotFhirError, match="not FHIR NDJSON"):
        read_ndjson(csv)
    with pytest.raises(NotFhirError, match="not JSON"):
        read_bundle(csv)
    resource = tmp_path / "patient.json"
    resource.write_text(json.dumps({"resourceType": "Patient", "id": "p"}))
    with pytest.raises(NotFhirError, match="not a FHIR Bundle"):
        read_bundle(resource)
    with pytest.raises(NotFhirError, match=r"no \.ndjson files"):
        read_ndjson(tmp_path)


def test_linker_checks_names(store: GraphStore) -> None:
    linker = StoreCodeLinker(store)
    e11_9 = linker.link_code(ICD10CM, "E119", "Type 2 diabetes mellitus without complications")
    assert (e11_9.status, e11_9.node_id) == (LinkStatus.LINKED, "ICD10CM:E11.9")
    type_1 = linker.link_code(ICD10CM, "E11.9", "Type 1 diabetes mellitus without complications")
    assert (type_1.status, type_1.node_id) == (LinkStatus.CONFLICT, None)
    n10 = linker.link_code(ICD10CM, "N10", "Acute tubulo-interstitial nephritis")
    assert n10.status == LinkStatus.LINKED  # an inclusion term of N10
    warfarin = linker.link_code(RXNORM, "11289", "Warfarin Sodium 5 MG Oral Tablet")
    assert warfarin.node_id == "RXNORM:11289"
    brand = linker.link_code(RXNORM, "11289", "Coumadin")  # no node here has that name
    assert brand.status == LinkStatus.CONFLICT
    assert linker.link_code(RXNORM, "11289", "").status == LinkStatus.LINKED
    unknown = linker.link_code("http://example.org/codes", "42", "Something")
    assert (unknown.status, unknown.curie) == (LinkStatus.UNLINKED, None)
    assert curie_for("http://loinc.org", "8867-4") == "LOINC:8867-4"
    assert curie_for("http://human-phenotype-ontology.org", "HP:0001250") == "HP:0001250"
    assert names_agree("Albuterol (ProAir / Ventolin)", ["albuterol"])
    assert not names_agree("Alendronate (Fosamax)", ["cyclophosphamide"])


def test_linker_reads_the_names_of_equivalent_nodes(built_kg: GraphStore) -> None:
    """RXNORM:11289 has no synonyms; DrugBank's warfarin (same_as ANSM, close_match DrugBank)
    is also called Coumadin."""
    linker = StoreCodeLinker(built_kg)
    brand = linker.link_code(RXNORM, "11289", "Coumadin")
    assert (brand.status, brand.node_id) == (LinkStatus.LINKED, "RXNORM:11289")
    assert linker.link_code(RXNORM, "11289", "Plavix").status == LinkStatus.CONFLICT


def test_phenotypes_from_hpo_codes() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "2015-03"}},
            *(
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "subject": {"reference": "Patient/p1"},
                        "code": {
                            "coding": [
                                {
                                    "system": "http://human-phenotype-ontology.org",
                                    "code": code,
                                    "display": name,
                                }
                            ]
                        },
                        "valueBoolean": present,
                    }
                }
                for code, name, present in (
                    ("HP:0001250", "Seizure", True),
                    ("HP:0001263", "Global developmental delay", False),
                )
            ),
        ],
    }
    [patient] = read_bundle(bundle, salt=SALT, reference_date=SNAPSHOT).patients
    assert isinstance(patient, PatientContext) and patient.age == 9
    assert [(p.codes[0].code, p.excluded) for p in patient.phenotypes] == [
        ("HP:0001250", False),
        ("HP:0001263", True),
    ]
    assert [p.link.curie for p in patient.phenotypes] == [None, None]  # no linker given
    assert not patient.observations and not patient.conditions


def test_medication_statements_and_references(store: GraphStore) -> None:
    warfarin = {
        "coding": [{"system": RXNORM, "code": "11289", "display": "warfarin"}],
        "text": "Warfarin",
    }
    subject = {"reference": "Patient/p2"}
    entries = [
        {"resource": {"resourceType": "Patient", "id": "p2", "gender": "male"}},
        {"fullUrl": "urn:uuid:med-1", "resource": {"resourceType": "Medication", "code": warfarin}},
        {
            "resource": {
                "resourceType": "MedicationStatement",
                "status": "active",
                "subject": subject,
                "medicationReference": {"reference": "urn:uuid:med-1"},
                "effectivePeriod": {"start": "2024-11-02"},
                "dosage": [{"text": "5 mg daily"}],
            }
        },
        {
            "resource": {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "subject": subject,
                "contained": [{"resourceType": "Medication", "id": "m", "code": warfarin}],
                "medicationReference": {"reference": "#m"},
                "authoredOn": "2024-12-01T08:30:00+01:00",
            }
        },
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    [patient] = read_bundle(bundle, linker=StoreCodeLinker(store), salt=SALT).patients
    statement, request = patient.medications
    assert (statement.kind, statement.dosage, statement.node_id) == (
        "statement",
        "5 mg daily",
        "RXNORM:11289",
    )
    assert statement.time is not None and statement.time.date() == date(2024, 11, 2)
    assert (request.kind, request.node_id) == ("request", "RXNORM:11289")
    assert request.time is not None and request.time.hour == 7  # normalised to UTC
    assert patient.age is None and [p.kind for p in patient.problems] == ["no-birth-date"]


def test_dates_out_of_range_are_bad_dates() -> None:
    subject = {"reference": "Patient/p4"}
    condition = {
        "resourceType": "Condition",
        "subject": subject,
        "code": {"text": "x"},
        "onsetDateTime": "0001-01-01",  # out of range when shifted back
        "abatementDateTime": "9999-12-31",  # ... or forward
        "recordedDate": "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    }
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "subject": subject,
        "medicationCodeableConcept": {"text": "warfarin"},
        "authoredOn": "9999-12-31T23:59:59-05:00",  # past year 9999 in UTC
    }
    entries = [
        {"resource": r} for r in ({"resourceType": "Patient", "id": "p4"}, condition, request)
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    [patient] = read_bundle(bundle, salt=SALT, shift_days=30).patients
    [read] = patient.conditions
    assert (read.recorded, [m.authored for m in patient.medications]) == (None, [None])
    assert None in (read.onset, read.abatement)
    assert [p.kind for p in patient.problems].count("bad-date") == 3


def test_do_not_perform_orders_are_reported_not_read() -> None:
    order = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "doNotPerform": True,
        "subject": {"reference": "Patient/p5"},
        "medicationCodeableConcept": {"text": "aspirin"},
    }
    bundle = {"resourceType": "Bundle", "entry": [{"resource": order}]}
    [patient] = read_bundle(bundle, salt=SALT).patients
    assert patient.medications == []
    assert [p.kind for p in patient.problems] == ["missing-patient", "do-not-perform"]


def test_malformed_patient_is_kept_and_reported() -> None:
    patient = {"resourceType": "Patient", "id": "p3", "identifier": 5, "gender": "female"}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}]}
    [read] = read_bundle(bundle, salt=SALT).patients
    assert [(p.kind, p.position) for p in read.problems] == [
        ("malformed-resource", "<input>#entry[0]")
    ]
    assert read.source is not None and read.source.resource_id == read.patient_id


def hpo_finding(rtype: str, code: str, **fields: Any) -> dict[str, Any]:
    """A Condition or Observation of patient p6 coded with one HPO code."""
    coding = [{"system": "http://purl.obolibrary.org/obo/hp.owl", "code": code}]
    return {
        "resourceType": rtype,
        "subject": {"reference": "Patient/p6"},
        "code": {"coding": coding, "text": "Seizure"},
        **fields,
    }


def test_negative_absent_and_void_hpo_findings() -> None:
    snomed = "http://snomed.info/sct"
    void = {"coding": [{"code": "entered-in-error"}]}
    findings = [
        hpo_finding("Condition", "HP:0000001", verificationStatus=void),
        hpo_finding("Observation", "HP:0000002", status="entered-in-error", valueBoolean=True),
        hpo_finding("Observation", "HP:0000003", status="final", valueBoolean=True),
        *(
            hpo_finding(
                "Observation",
                code,
                status="final",
                valueCodeableConcept={"coding": [{"system": snomed, "code": value}]},
            )
            for code, value in (("HP:0000004", "2667000"), ("HP:0000005", "260385009"))
        ),
    ]
    bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in findings]}
    [patient] = read_bundle(bundle, salt=SALT).patients
    assert [(p.codes[0].code, p.excluded) for p in patient.phenotypes] == [
        ("HP:0000003", False),
        ("HP:0000004", True),
        ("HP:0000005", True),
    ]
    assert not patient.conditions and not patient.observations
    void_at = [p.position for p in patient.problems if p.kind == "entered-in-error"]
    assert void_at == ["<input>#entry[0]", "<input>#entry[1]"]


def test_hpo_codes_in_obo_form_and_malformed_ones() -> None:
    hpo = "http://human-phenotype-ontology.org"
    assert curie_for(hpo, "HP_0001250") == curie_for(hpo, "hp:0001250") == "HP:0001250"
    assert curie_for(hpo, "HP:12") is curie_for(hpo, "HP:HP_0001250") is None
    findings = [hpo_finding("Condition", "HP_0001250"), hpo_finding("Condition", "HP:12")]
    bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in findings]}
    [patient] = read_bundle(bundle, salt=SALT).patients
    assert [p.codes[0].code for p in patient.phenotypes] == ["HP_0001250"]
    assert [c.text for c in patient.conditions] == ["Seizure"]  # read by its text alone
    [bad] = [p for p in patient.problems if p.kind == "bad-code"]
    assert bad.position == "<input>#entry[1]" and "'HP:12'" in bad.message
