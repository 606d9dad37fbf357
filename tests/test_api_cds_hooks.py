"""CDS Hooks 2.0 over HTTP on the real KG: discovery, order-sign/select, patient-view, feedback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.cds_hooks import TEMPLATES
from api.feedback import SCHEMA, FeedbackRequest, FeedbackStore, iter_feedback
from kg.model import Citation, Edge
from kg.settings import Settings
from kg.store import GraphStore
from reasoner.medication import MedicationAnswer

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CLINICIAN = "clinician-key-for-tests-0001"
INGEST = "ingest-key-for-tests-000001"
PATIENT = "pt-777"


@pytest.fixture(scope="module")
def app_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The project settings (shared caches under var/) with keys, and audit, feedback and
    learner files of this module's own."""
    tmp = tmp_path_factory.mktemp("api")
    return settings.model_copy(
        update={
            "api_keys": SecretStr(f"{CLINICIAN}:clinician,{INGEST}:ingest"),
            "api_audit_log": tmp / "audit.log",
            "api_feedback_db": tmp / "feedback.sqlite",
            "learners_dir": tmp / "learners",
            "pseudonym_salt": "cds-test-salt",
        }
    )


@pytest.fixture(scope="module")
def client(built_kg: GraphStore, app_settings: Settings) -> Iterator[TestClient]:
    app = create_app(built_kg, app_settings)
    # Names the KG does not know stay unknown here (no embedding fallback): these tests are
    # about the hooks, and the embedding index is tested with the linker.
    app.state.ctx.reasoner.linker.use_embeddings = False
    with TestClient(app, headers={"Authorization": f"Bearer {CLINICIAN}"}) as c:
        yield c


def medication(rid: str, code: str | None, display: str = "", status: str = "draft") -> dict:
    coding = [{"system": RXNORM, "code": code, **({"display": display} if display else {})}]
    concept: dict[str, Any] = {"coding": coding} if code else {}
    if display:
        concept["text"] = display
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "medicationCodeableConcept": concept,
    }


def allergy(rid: str, text: str) -> dict:
    return {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "patient": {"reference": f"Patient/{PATIENT}"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"text": text},
    }


def bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def hook_body(
    hook: str,
    drafts: list[dict] | None = None,
    active: list[dict] | None = None,
    allergies: list[dict] | None = None,
    conditions: list[dict] | None = None,
    **context: Any,
) -> dict:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": f"test-{hook}",
        "context": {"userId": "Practitioner/dr-1", "patientId": PATIENT, **context},
        "prefetch": {
            "patient": {
                "resourceType": "Patient",
                "id": PATIENT,
                "gender": "female",
                "birthDate": "1950-03-01",
            },
            "medications": bundle(*(active or [])),
            "allergies": bundle(*(allergies or [])),
            "conditions": bundle(*(conditions or [])),
        },
    }
    if drafts is not None:
        body["context"]["draftOrders"] = {
            "resourceType": "Bundle",
            "entry": [{"resource": r} for r in drafts],
        }
    return body


def sign(client: TestClient, **kwargs: Any) -> dict:
    response = client.post("/cds-services/order-sign", json=hook_body("order-sign", **kwargs))
    assert response.status_code == 200, response.text
    return response.json()


def test_discovery_lists_services_with_prefetch_templates(client: TestClient) -> None:
    services = {s["id"]: s for s in client.get("/cds-services").json()["services"]}
    assert set(services) == {"order-select", "order-sign", "patient-view"}
    for sid, s in services.items():
        assert s["hook"] == sid and s["title"] and s["description"]
        assert s["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert s["prefetch"]["medications"] == (
            "MedicationRequest?patient={{context.patientId}}&status=active"
        )
        assert s["prefetch"]["conditions"].startswith("Condition?patient={{context.patientId}}")
        assert s["prefetch"]["allergies"].startswith("AllergyIntolerance?patient=")
    assert services["order-sign"]["prefetch"] == TEMPLATES


def test_order_sign_interaction_with_an_active_medication(
    client: TestClient, built_kg: GraphStore, assert_cited: Callable
) -> None:
    out = sign(
        client,
        drafts=[medication("mr-new", "5640", "ibuprofen")],
        active=[medication("mr-old", "11289", "warfarin", status="active")],
    )
    (card,) = out["cards"]
    assert card["indicator"] == "warning" and len(card["summary"]) <= 140
    assert "Ibuprofen" in card["summary"] and "Warfarin" in card["summary"]
    assert "ANSM" in card["source"]["label"] and card["source"]["url"].startswith("https://")
    assert len(card["uuid"]) == 36
    (suggestion,) = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one"
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove draft order MedicationRequest/mr-new (ibuprofen / RXNORM:5640)",
            "resourceId": "MedicationRequest/mr-new",
        }
    ]
    assert {r["code"] for r in card["overrideReasons"]} >= {"benefit-outweighs-risk"}
    # the whole reasoning trace, every claim cited
    answer = MedicationAnswer.model_validate(out["extension"]["evocdss"])
    trace = out["extension"]["evocdss-input"]
    assert answer.kind == "medication-check" and answer.kg_version == built_kg.version()
    assert [m["origin"] for m in trace["medications"]] == ["draft", "active"]
    assert trace["query"]["patient"]["medications"] == [
        {"code": "RXNORM:5640", "text": "ibuprofen"},
        {"code": "RXNORM:11289", "text": "warfarin"},
    ]
    assert trace["patient"].startswith("anon-") and PATIENT not in trace["patient"]
    assert trace["query"]["patient"]["sex"] == "female" and trace["query"]["patient"]["age"] > 70
    assert assert_cited(answer, built_kg, trace["query"]) > 5


def test_only_problems_of_draft_orders_become_cards(client: TestClient) -> None:
    out = sign(
        client,
        drafts=[medication("mr-new", "6809", "metformin")],
        active=[
            medication("mr-1", "5640", "ibuprofen", status="active"),
            medication("mr-2", "11289", "warfarin", status="active"),
            medication("mr-3", "1191", "aspirin", status="stopped"),
        ],
    )
    answer = out["extension"]["evocdss"]
    assert [p["inputs"] for p in answer["problems"]] == [[1, 2]]  # among active ones only
    assert out["cards"] == []
    assert len(out["extension"]["evocdss-input"]["medications"]) == 3  # the stopped one left out


def test_allergy_to_a_class_is_critical(client: TestClient) -> None:
    out = sign(
        client,
        drafts=[medication("mr-new", "5640", "ibuprofen")],
        allergies=[allergy("al-1", "NSAIDs")],
    )
    (card,) = out["cards"]
    assert card["indicator"] == "critical" and card["summary"].startswith("Allergy")
    assert card["suggestions"][0]["isRecommended"] is True
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/mr-new"


def test_unknown_and_conflicting_codes_are_info_cards(client: TestClient) -> None:
    out = sign(
        client,
        drafts=[
            medication("mr-a", "999999999"),  # a code the KG does not know, without a name
            medication("mr-b", "3002", "alendronate"),  # RxNorm 3002 is cyclophosphamide
            {
                **medication("mr-c", None),
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0002-3227"}]
                },
            },
        ],
    )
    cards = out["cards"]
    assert [c["indicator"] for c in cards] == ["info"] * 3
    text = " ".join(c["summary"] + " " + c.get("detail", "") for c in cards)
    assert "RXNORM:999999999" in text and "cyclophosphamide" in text.lower()
    assert "MedicationRequest/mr-c was not checked" in text
    assert all(not c["suggestions"] for c in cards)


def test_unreadable_medications_and_allergies_are_info_cards(client: TestClient) -> None:
    broken = {**medication("mr-x", "11289", "warfarin", status="active")}
    broken["medicationCodeableConcept"] = "warfarin"  # not a CodeableConcept
    bad_allergy = {**allergy("al-x", "penicillin"), "code": {}}
    out = sign(
        client,
        drafts=[medication("mr-new", "5640", "ibuprofen")],
        active=[broken],
        allergies=[bad_allergy],
    )
    summaries = sorted(c["summary"] for c in out["cards"])
    assert summaries == [
        "AllergyIntolerance/al-x was not checked",
        "MedicationRequest/mr-x was not checked",
    ]
    assert {p["kind"] for p in out["extension"]["evocdss-input"]["problems"]} == {
        "malformed-resource"
    }
    body = hook_body("order-sign", drafts=[])
    body["prefetch"]["medications"]["entry"] = "none"
    response = client.post("/cds-services/order-sign", json=body)
    assert response.status_code == 422 and "prefetch.medications" in response.json()["detail"]


def test_a_coding_the_kg_knows_is_preferred(client: TestClient) -> None:
    warfarin = medication("mr-old", None, status="active")
    warfarin["medicationCodeableConcept"] = {
        "coding": [
            {"system": RXNORM, "code": "855332", "display": "warfarin sodium 5 MG Oral Tablet"},
            {"system": RXNORM, "code": "11289", "display": "warfarin"},
        ],
        "text": "warfarin sodium 5 MG Oral Tablet",
    }
    out = sign(client, drafts=[medication("mr-new", "5640", "ibuprofen")], active=[warfarin])
    assert [c["summary"] for c in out["cards"]] == ["Ibuprofen + Warfarin (avoid)"]
    sent = out["extension"]["evocdss-input"]["query"]["patient"]["medications"]
    assert sent[1]["code"] == "RXNORM:11289"


def test_a_do_not_perform_order_is_no_medication_taken(client: TestClient) -> None:
    aspirin = {**medication("mr-dnp", "1191", "aspirin", status="active"), "doNotPerform": True}
    out = sign(client, drafts=[medication("mr-new", "11289", "warfarin")], active=[aspirin])
    assert out["cards"] == []
    trace = out["extension"]["evocdss-input"]
    assert [m["resource"] for m in trace["medications"]] == ["MedicationRequest/mr-new"]
    assert [p["kind"] for p in trace["problems"]] == ["do-not-perform"]


def test_a_draft_about_another_patient_is_not_checked(client: TestClient) -> None:
    draft = {**medication("mr-new", "5640", "ibuprofen"), "subject": {"reference": "Patient/x"}}
    out = sign(client, drafts=[draft], active=[medication("mr-old", "11289", "warfarin", "active")])
    (card,) = out["cards"]
    assert card["summary"] == "MedicationRequest/mr-new was not checked"
    assert card["indicator"] == "info" and "another patient" in card["detail"]


def test_a_draft_entered_in_error_is_not_checked(client: TestClient) -> None:
    draft = medication("mr-new", "5640", "ibuprofen", status="entered-in-error")
    out = sign(client, drafts=[draft], active=[medication("mr-old", "11289", "warfarin", "active")])
    (card,) = out["cards"]  # no interaction card for an order that was never meant
    assert card["summary"] == "MedicationRequest/mr-new was not checked"
    assert "entered-in-error" in card["detail"]


def test_past_the_size_limits_the_rest_is_reported_not_a_422(client: TestClient) -> None:
    filler = [medication(f"mr-{i}", "161", "acetaminophen", "active") for i in range(199)]
    warfarin = medication("mr-old", "11289", "warfarin", "active")  # the 201st medication
    allergies = [allergy(f"al-{i}", "penicillin") for i in range(200)]
    out = sign(
        client,
        drafts=[medication("mr-new", "5640", "ibuprofen")],  # drafts are read first
        active=[*filler, warfarin],
        allergies=[*allergies, allergy("al-nsaid", "NSAIDs")],
    )
    unchecked = {c["summary"]: c["detail"] for c in out["cards"] if "not checked" in c["summary"]}
    assert set(unchecked) == {
        "MedicationRequest/mr-old was not checked",
        "AllergyIntolerance/al-nsaid was not checked",
    }
    assert "200 medications at most" in unchecked["MedicationRequest/mr-old was not checked"]
    trace = out["extension"]["evocdss-input"]["query"]["patient"]
    assert len(trace["medications"]) == 200 and trace["medications"][0]["code"] == "RXNORM:5640"
    assert len(trace["allergies"]) == 200


def test_out_of_range_dates_are_bad_dates(client: TestClient) -> None:
    warfarin = medication("mr-old", "11289", "warfarin", status="active")
    warfarin["authoredOn"] = "9999-12-31T23:59:59-05:00"  # past year 9999 in UTC
    condition = {
        "resourceType": "Condition",
        "id": "c-1",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "code": {"text": "hypertension"},
        "recordedDate": "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    }
    out = sign(
        client,
        drafts=[medication("mr-new", "5640", "ibuprofen")],
        active=[warfarin],
        conditions=[condition],
    )
    assert "Ibuprofen + Warfarin (avoid)" in [c["summary"] for c in out["cards"]]
    problems = out["extension"]["evocdss-input"]["problems"]
    assert [p["kind"] for p in problems] == ["bad-date", "bad-date"]


def test_order_select_cards_concern_the_selected_orders(client: TestClient) -> None:
    body = hook_body(
        "order-select",
        drafts=[medication("mr-a", "5640", "ibuprofen"), medication("mr-b", "1191", "aspirin")],
        active=[medication("mr-w", "11289", "warfarin", status="active")],
        selections=["MedicationRequest/mr-b"],
    )
    out = client.post("/cds-services/order-select", json=body).json()
    problems = out["extension"]["evocdss"]["problems"]
    assert len(problems) == 3  # every pair interacts
    assert len(out["cards"]) == 2  # the two that involve aspirin
    assert out["cards"][0]["indicator"] == "critical"  # aspirin + warfarin
    for card in out["cards"]:
        ids = [a["resourceId"] for s in card["suggestions"] for a in s["actions"]]
        assert "MedicationRequest/mr-b" in ids and "MedicationRequest/mr-w" not in ids


def hpo_finding(rtype: str, rid: str, code: str, **fields: Any) -> dict:
    coding = [{"system": "http://purl.obolibrary.org/obo/hp.owl", "code": code}]
    return {
        "resourceType": rtype,
        "id": rid,
        "subject": {"reference": f"Patient/{PATIENT}"},
        "code": {"coding": coding},
        **fields,
    }


def on_aspirin_and_warfarin(conditions: list[dict]) -> dict:
    """A patient-view of a patient on aspirin and warfarin with ``conditions``."""
    return hook_body(
        "patient-view",
        active=[
            medication("mr-1", "1191", "aspirin", status="active"),
            medication("mr-2", "11289", "warfarin", status="active"),
        ],
        conditions=conditions,
    )


def test_patient_view(client: TestClient) -> None:
    seizure = hpo_finding("Condition", "c-1", "HP:0001250")
    seizure["code"]["coding"][0]["display"] = "Seizure"
    body = on_aspirin_and_warfarin([seizure])
    response = client.post("/cds-services/patient-view", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    trace = out["extension"]["evocdss-input"]
    assert trace["query"]["patient"]["phenotypes"] == ["HP:0001250"]
    answer = out["extension"]["evocdss"]
    assert answer["kind"] == "diagnosis" and len(answer["differential"]) == 10
    assert answer["differential"][0]["supporting"][0]["phenotype"] == "HP:0001250"
    checked = out["extension"]["evocdss-medication-check"]
    assert checked["kind"] == "medication-check" and checked["problems"]
    # medication safety first, then the diagnosis suggestions and the questions to ask next
    assert out["cards"][0]["indicator"] == "critical"  # aspirin + warfarin
    assert out["cards"][0]["suggestions"] == []  # nothing is a draft here
    lead = answer["differential"][0]
    assert out["cards"][-2]["summary"].startswith(f"Consider {lead['name'][:40]}")
    assert out["cards"][-1]["summary"].startswith("Ask about: ")
    assert all(len(c["uuid"]) == 36 and len(c["summary"]) <= 140 for c in out["cards"])


def test_patient_view_leaves_out_void_findings_and_excludes_absent_ones(
    client: TestClient,
) -> None:
    void = {"coding": [{"code": "entered-in-error"}]}
    conditions = [
        hpo_finding("Condition", "c-1", "HP:0001250", verificationStatus=void),
        hpo_finding("Condition", "c-2", "HP:0002315"),
    ]
    absent = {"coding": [{"system": "http://snomed.info/sct", "code": "2667000"}]}
    observation = hpo_finding("Observation", "o-1", "HP:0001263", valueCodeableConcept=absent)
    body = hook_body("patient-view", conditions=conditions)
    body["prefetch"]["observations"] = bundle(observation)
    response = client.post("/cds-services/patient-view", json=body)
    assert response.status_code == 200, response.text
    trace = response.json()["extension"]["evocdss-input"]
    sent = trace["query"]["patient"]
    assert (sent["phenotypes"], sent["excluded_phenotypes"]) == (["HP:0002315"], ["HP:0001263"])
    assert [p["kind"] for p in trace["problems"]] == ["entered-in-error"]


def test_patient_view_reads_obo_style_hpo_codes_and_skips_malformed_ones(
    client: TestClient,
) -> None:
    body = on_aspirin_and_warfarin(
        [hpo_finding("Condition", "c-1", "HP_0001250"), hpo_finding("Condition", "c-2", "HP:12")]
    )
    response = client.post("/cds-services/patient-view", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    trace = out["extension"]["evocdss-input"]
    assert trace["query"]["patient"]["phenotypes"] == ["HP:0001250"]
    assert [p["kind"] for p in trace["problems"]] == ["bad-code"]
    assert out["cards"][0]["indicator"] == "critical"  # aspirin + warfarin


def test_many_conditions_are_read_once_and_capped(client: TestClient) -> None:
    hypertension = {
        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}],
        "text": "Essential (primary) hypertension",
    }
    conditions = [
        {
            "resourceType": "Condition",
            "id": f"c-{i}",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "code": hypertension if i % 2 else {"text": f"finding {i}"},
        }
        for i in range(1002)
    ]
    out = sign(
        client,
        drafts=[medication("mr-new", "5640", "ibuprofen")],
        active=[medication("mr-old", "11289", "warfarin", status="active")],
        conditions=conditions,
    )
    assert [c["summary"] for c in out["cards"]] == ["Ibuprofen + Warfarin (avoid)"]
    trace = out["extension"]["evocdss-input"]
    sent = trace["query"]["patient"]["conditions"]
    assert len(sent) == 500 and [c.get("code") for c in sent[:3]] == [None, "ICD10CM:I10", None]
    [problem] = trace["problems"]
    assert problem["kind"] == "too-many-conditions" and "502 distinct" in problem["message"]


def test_a_draft_whose_reviewed_adverse_event_the_patient_has_gets_a_card(
    client: TestClient, built_kg: GraphStore
) -> None:
    model = Citation("model:test-signals@1", "model", "test signal learner", version="1")
    edge = Edge(  # as the signal learner writes it: the drug is the orders' RxNorm code
        "RXNORM:17767", "biolink:has_adverse_event", "ICD10CM:R60.0", (model.id,), "proposed"
    )
    built_kg.upsert(citations=[model], edges=[edge], actor="test-learner", reason="signal")
    built_kg.set_status(edge.id, "curated", actor="curator", reason="known effect")
    edema = {
        "resourceType": "Condition",
        "id": "c-edema",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R60.0"}]},
    }
    try:
        out = sign(client, drafts=[medication("mr-new", "17767", "amlodipine")], conditions=[edema])
    finally:
        built_kg.set_status(edge.id, "rejected", actor="test", reason="test cleanup")
    [card] = out["cards"]
    assert card["summary"] == "Amlodipine may cause or worsen Localized edema"
    assert card["indicator"] == "info" and "test signal learner" in card["source"]["label"]
    [problem] = out["extension"]["evocdss"]["problems"]
    assert problem["type"] == "adverse-event" and problem["inputs"] == [0]


def lab(rid: str, loinc: str, name: str, flag: str, when: str) -> dict:
    category = "http://terminology.hl7.org/CodeSystem/observation-category"
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "category": [{"coding": [{"system": category, "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": name}]},
        "valueQuantity": {"value": 100 if flag == "H" else 20, "unit": "U/L"},
        "interpretation": [{"coding": [{"code": flag}]}],
        "effectiveDateTime": when,
    }


def test_a_current_abnormal_lab_that_the_draft_may_cause_gets_a_card(
    client: TestClient, built_kg: GraphStore
) -> None:
    from learners.signals import lab_finding_node

    model = Citation("model:test-signals@1", "model", "test signal learner", version="1")
    ast, alt = "EVO:lab-LOINC-1920-8-high", "EVO:lab-LOINC-1742-6-high"
    nodes = [lab_finding_node(ast, "AST"), lab_finding_node(alt, "ALT")]
    edges = [
        Edge("RXNORM:83367", "biolink:has_adverse_event", e, (model.id,), "curated")
        for e in (ast, alt)
    ]
    built_kg.upsert(citations=[model], nodes=nodes, edges=edges, actor="curator", reason="test")
    body = hook_body("order-sign", drafts=[medication("mr-new", "83367", "atorvastatin")])
    body["prefetch"]["observations"] = bundle(
        lab("o-1", "1920-8", "AST", "H", "2024-05-01"),
        lab("o-2", "1742-6", "ALT", "H", "2024-03-01"),
        lab("o-3", "1742-6", "ALT", "N", "2024-05-01"),  # ALT is back to normal
    )
    try:
        response = client.post("/cds-services/order-sign", json=body)
    finally:
        for e in edges:
            built_kg.set_status(e.id, "rejected", actor="test", reason="test cleanup")
    assert response.status_code == 200, response.text
    out = response.json()
    assert [c["summary"] for c in out["cards"]] == [
        "Atorvastatin may cause or worsen AST above the reference range"
    ]
    sent = out["extension"]["evocdss-input"]["query"]["patient"]["conditions"]
    assert sent == [{"code": ast, "text": "AST above the reference range"}]


def test_a_medication_reference_to_a_draft_bundle_full_url(client: TestClient) -> None:
    med_url, order_url = (f"urn:uuid:1f0c2a7e-0000-4000-8000-00000000000{i}" for i in (1, 2))
    order = {**medication("mr-new", None), "medicationReference": {"reference": med_url}}
    del order["medicationCodeableConcept"]
    ibuprofen = {
        "resourceType": "Medication",
        "id": "med-1",
        "code": {"coding": [{"system": RXNORM, "code": "5640", "display": "ibuprofen"}]},
    }
    body = hook_body("order-sign", active=[medication("mr-old", "11289", "warfarin", "active")])
    body["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "entry": [
            {"fullUrl": med_url, "resource": ibuprofen},
            {"fullUrl": order_url, "resource": order},
        ],
    }
    response = client.post("/cds-services/order-sign", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert [c["summary"] for c in out["cards"]] == ["Ibuprofen + Warfarin (avoid)"]
    trace = out["extension"]["evocdss-input"]
    assert trace["medications"][0] == {
        "index": 0,
        "origin": "draft",
        "resource": "MedicationRequest/mr-new",
    }


def test_missing_prefetch_is_412(client: TestClient) -> None:
    body = hook_body("order-sign", drafts=[medication("mr-a", "5640", "ibuprofen")])
    del body["prefetch"]["allergies"]
    body["prefetch"]["medications"] = None
    response = client.post("/cds-services/order-sign", json=body)
    assert response.status_code == 412
    assert "medications, allergies" in response.json()["detail"]
    del body["prefetch"]
    assert client.post("/cds-services/order-sign", json=body).status_code == 412


def test_failed_prefetch_is_412(client: TestClient) -> None:
    """CDS Hooks 2.0: a client sends an OperationOutcome for a prefetch it could not fill."""
    body = hook_body("order-sign", drafts=[medication("mr-a", "5640", "ibuprofen")])
    body["prefetch"]["medications"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    response = client.post("/cds-services/order-sign", json=body)
    assert response.status_code == 412
    assert response.json()["detail"].startswith("prefetch medications missing or failed")
    body["prefetch"]["conditions"] = body["prefetch"]["medications"]
    body["prefetch"]["medications"] = bundle()
    response = client.post("/cds-services/order-sign", json=body)  # conditions: optional here
    assert response.status_code == 200, response.text


def test_bad_requests_are_4xx_naming_the_problem(client: TestClient) -> None:
    body = hook_body("order-select", drafts=[])
    response = client.post("/cds-services/order-sign", json=body)  # hook of another service
    assert response.status_code == 422 and "hook" in response.text
    body = hook_body("order-sign", drafts=[])
    body["context"]["patientId"] = "has spaces/and slashes"
    response = client.post("/cds-services/order-sign", json=body)
    assert response.status_code == 422 and "patientId" in response.text
    response = client.post(
        "/cds-services/order-sign",
        content=b'{"hook": "order-sign",',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "malformed JSON" in response.json()["detail"]
    assert client.post("/cds-services/no-such-service", json={}).status_code == 404


def test_feedback_is_stored_and_readable(client: TestClient, app_settings: Settings) -> None:
    out = sign(
        client,
        drafts=[medication("mr-1", "5640", "ibuprofen"), medication("mr-2", "1191", "aspirin")],
        active=[medication("mr-w", "11289", "warfarin", status="active")],
    )
    first, second = out["cards"][:2]
    reasons_system = first["overrideReasons"][0]["system"]
    feedback = {
        "feedback": [
            {
                "card": first["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"code": "will-monitor", "system": reasons_system},
                    "userComment": "INR checked twice a week",
                },
                "outcomeTimestamp": "2026-01-05T10:00:00Z",
            },
            {
                "card": second["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": second["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-01-05T10:00:01Z",
            },
        ]
    }
    response = client.post("/cds-services/order-sign/feedback", json=feedback)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 2}
    records = list(iter_feedback(app_settings.feedback_path))
    overridden, accepted = records[-2:]
    assert overridden.outcome == "overridden" and overridden.override_code == "will-monitor"
    assert overridden.comment == "INR checked twice a week"
    assert overridden.card.problem_type == "drug-interaction"
    assert overridden.card.severity == "contraindicated" and overridden.card.indicator == "critical"
    assert "ANSM:warfarine" in overridden.card.entities
    assert accepted.accepted_suggestions == (second["suggestions"][0]["uuid"],)
    assert accepted.card.service == "order-sign" and accepted.card.kg_version > 0
    assert overridden.key_id and CLINICIAN not in overridden.key_id


def test_bad_feedback_stores_nothing(client: TestClient, app_settings: Settings) -> None:
    out = sign(
        client,
        drafts=[medication("mr-1", "5640", "ibuprofen")],
        active=[medication("mr-w", "11289", "warfarin", status="active")],
    )
    card = out["cards"][0]
    before = len(list(iter_feedback(app_settings.feedback_path)))
    ok = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-05T10:00:00Z"}
    cases = [
        ("order-sign", [ok, {**ok, "card": "not-a-card"}], 404),
        ("order-select", [ok], 404),  # the card came from order-sign
        ("nonsense", [ok], 404),
        ("order-sign", [{**ok, "outcome": "accepted", "acceptedSuggestions": [{"id": "x"}]}], 422),
        ("order-sign", [{**ok, "outcome": "maybe"}], 422),
        ("order-sign", [], 422),
        ("order-sign", [{**ok, "overrideReason": {"reason": {"code": "too-busy"}}}], 422),
        (  # an offered code, of another system
            "order-sign",
            [{**ok, "overrideReason": {"reason": {"code": "will-monitor", "system": "x:y"}}}],
            422,
        ),
    ]
    for service, items, status in cases:
        response = client.post(f"/cds-services/{service}/feedback", json={"feedback": items})
        assert response.status_code == status, (service, items, response.text)
    assert len(list(iter_feedback(app_settings.feedback_path))) == before


def test_a_feedback_file_of_an_older_version_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    old_schema = SCHEMA.replace(",\n    override_reasons TEXT\n", "\n")
    with closing(sqlite3.connect(path)) as db:  # cards as stored before reasons were kept
        db.executescript(old_schema)
        db.execute(
            "INSERT INTO cards VALUES ('c-old', 'order-sign', 'h', 0, 1, 'warning', 's', "
            "'drug-interaction', 'avoid', '[]', '[]', 0)"
        )
        db.commit()
    store = FeedbackStore(path)
    item = {
        "card": "c-old",
        "outcome": "overridden",
        "overrideReason": {"reason": {"code": "a-code-of-that-time"}},
        "outcomeTimestamp": "2026-01-05T10:00:00Z",
    }
    request = FeedbackRequest.model_validate({"feedback": [item]})
    assert store.record_feedback("order-sign", request, "k") == 1  # its reasons are unknown
    store.close()
    (record,) = iter_feedback(path)
    assert record.override_code == "a-code-of-that-time"


def test_a_real_patient_record(
    client: TestClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The active medications, conditions and allergies of the clinosim patient with the most
    active orders, as prefetch, and a new warfarin order."""
    out_dir = tmp_path_factory.mktemp("clinosim")
    command = [sys.executable, "-m", "clinosim.simulator.cli", "simulate", "-o", str(out_dir)]
    command += ["-p", "50", "-s", "1", "--start", "2024-07-01", "--end", "2024-12-31"]
    subprocess.run([*command, "--format", "fhir-r4"], check=True, capture_output=True)
    fhir = out_dir / "fhir_r4"

    def read(rtype: str) -> list[dict]:
        return [json.loads(x) for x in (fhir / f"{rtype}.ndjson").read_text().splitlines() if x]

    meds = [m for m in read("MedicationRequest") if m["status"] == "active"]
    counts: dict[str, int] = {}
    for m in meds:
        counts[m["subject"]["reference"]] = counts.get(m["subject"]["reference"], 0) + 1
    subject = max(counts, key=lambda k: counts[k])
    pid = subject.removeprefix("Patient/")

    def of(rows: list[dict]) -> dict:
        mine = [
            r
            for r in rows
            if (r.get("subject") or r.get("patient", {})).get("reference") == subject
        ]
        return bundle(*mine)

    patient = next(p for p in read("Patient") if p["id"] == pid)
    draft = {**medication("new-1", "11289", "warfarin"), "subject": {"reference": subject}}
    body = {
        "hook": "order-sign",
        "hookInstance": "clinosim-1",
        "context": {"userId": "Practitioner/x", "patientId": pid, "draftOrders": bundle(draft)},
        "prefetch": {
            "patient": patient,
            "medications": of(meds),
            "conditions": of(read("Condition")),
            "allergies": of(read("AllergyIntolerance")),
        },
    }
    response = client.post("/cds-services/order-sign", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    trace = out["extension"]["evocdss-input"]
    sent = trace["query"]["patient"]
    assert len(sent["medications"]) == counts[subject] + 1
    assert sent["medications"][0] == {"code": "RXNORM:11289", "text": "warfarin"}
    assert all(m["code"].startswith("RXNORM:") for m in sent["medications"] if "code" in m)
    codes = [c["code"] for c in sent["conditions"] if "code" in c]
    assert codes and all(c.startswith(("ICD10CM:", "SNOMEDCT:")) for c in codes)
    assert all(len(c["summary"]) <= 140 and c["uuid"] for c in out["cards"])
    assert pid not in json.dumps(out)  # the patient is known by its pseudonym only


def test_audit_log_has_every_request_and_no_patient_data(
    client: TestClient, app_settings: Settings
) -> None:
    client.post(
        "/cds-services/order-sign",
        json=hook_body("order-sign", drafts=[medication("mr-1", "5640", "ibuprofen")]),
    )
    client.get("/cds-services", headers={"Authorization": "Bearer wrong-key-wrong-key"})
    text = app_settings.audit_log_path.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    hooks = [r for r in records if r["route"] == "/cds-services/order-sign"]
    read = [r for r in hooks if r["status"] in (200, 412)]  # the others never got that far
    assert read and all(r["patient"].startswith("anon-") for r in read)
    assert all(r["kg_version"] > 0 and r["key"] and len(r["key"]) == 12 for r in hooks)
    assert {r["status"] for r in hooks} >= {200, 412, 422, 400}
    assert records[-1]["status"] == 401 and records[-1]["key"] is None
    for secret in (PATIENT, "ibuprofen", "warfarin", CLINICIAN, "wrong-key", "INR checked"):
        assert secret not in text
