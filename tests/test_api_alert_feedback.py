"""Alert feedback over HTTP: CDS Hooks feedback trains the override model live, the model orders
and tiers the next cards (never a contraindicated one), and it survives a restart."""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from kg.settings import Settings
from kg.store import GraphStore
from learners.feedback import load_model, model_path

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HPO = "http://purl.obolibrary.org/obo/hp.owl"
CLINICIAN = "alert-clinician-key-00001"
PATIENT = "pt-alerts"
IBUPROFEN, SIMVASTATIN = ("mr-ibu", "5640", "ibuprofen"), ("mr-simva", "36567", "simvastatin")
WARFARIN = ("mr-w", "11289", "warfarin")
PROBABILITY = re.compile(r"overridden with probability (\d\.\d\d)")


@pytest.fixture
def app_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The project settings with feedback, learner and audit files of the test's own."""
    return settings.model_copy(
        update={
            "api_keys": SecretStr(f"{CLINICIAN}:clinician"),
            "api_audit_log": tmp_path / "audit.log",
            "api_feedback_db": tmp_path / "feedback.sqlite",
            "learners_dir": tmp_path / "learners",
            "pseudonym_salt": "alert-test-salt",
        }
    )


def client_of(store: GraphStore, settings: Settings) -> TestClient:
    app = create_app(store, settings)
    app.state.ctx.reasoner.linker.use_embeddings = False
    return TestClient(app, headers={"Authorization": f"Bearer {CLINICIAN}"})


@pytest.fixture
def client(built_kg: GraphStore, app_settings: Settings) -> Iterator[TestClient]:
    with client_of(built_kg, app_settings) as c:
        yield c


def order(rid: str, code: str, name: str, status: str = "draft") -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": name}],
            "text": name,
        },
    }


def bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def sign(client: TestClient, drafts: list[tuple], allergies: tuple[str, ...] = ()) -> dict:
    """order-sign of ``drafts`` for a patient on warfarin (with ``allergies``)."""
    allergy = [
        {
            "resourceType": "AllergyIntolerance",
            "id": f"al-{i}",
            "patient": {"reference": f"Patient/{PATIENT}"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"text": text},
        }
        for i, text in enumerate(allergies)
    ]
    body = {
        "hook": "order-sign",
        "hookInstance": "alerts",
        "context": {
            "userId": "Practitioner/dr-1",
            "patientId": PATIENT,
            "draftOrders": bundle(*(order(*d) for d in drafts)),
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": PATIENT, "gender": "male"},
            "medications": bundle(order(*WARFARIN, status="active")),
            "allergies": bundle(*allergy),
        },
    }
    response = client.post("/cds-services/order-sign", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def card_about(out: dict, word: str) -> dict:
    (card,) = [c for c in out["cards"] if word in c["summary"]]
    return card


def decide(client: TestClient, decisions: dict[str, str]) -> None:
    """Post feedback: card uuid -> accepted or overridden."""
    items: list[dict[str, Any]] = []
    for uuid, outcome in decisions.items():
        item = {"card": uuid, "outcome": outcome, "outcomeTimestamp": "2026-02-01T09:00:00Z"}
        if outcome == "overridden":
            item["overrideReason"] = {"reason": {"code": "not-relevant"}}
        items.append(item)
    response = client.post("/cds-services/order-sign/feedback", json={"feedback": items})
    assert response.status_code == 200, response.text


def model_named(out: dict) -> list[dict]:
    return [m for m in out["extension"]["evocdss"]["models"] if m["name"] == "alert-override"]


def test_overridden_cards_are_tiered_lower_and_the_model_survives_a_restart(
    client: TestClient, built_kg: GraphStore, app_settings: Settings
) -> None:
    first = sign(client, [IBUPROFEN, SIMVASTATIN])
    assert [c["indicator"] for c in first["cards"]] == ["warning", "warning"]
    assert "Ibuprofen" in first["cards"][0]["summary"]  # avoid before precaution
    assert "alert feedback" not in str(first["cards"]) and model_named(first) == []

    # clinicians override the warfarin-ibuprofen card and accept the warfarin-statin one
    for _ in range(30):
        out = sign(client, [IBUPROFEN, SIMVASTATIN])
        decide(
            client,
            {
                card_about(out, "Ibuprofen")["uuid"]: "overridden",
                card_about(out, "Simvastatin")["uuid"]: "accepted",
            },
        )
    after = sign(client, [IBUPROFEN, SIMVASTATIN])
    statin, nsaid = after["cards"]
    assert "Simvastatin" in statin["summary"] and statin["indicator"] == "warning"
    assert "Ibuprofen" in nsaid["summary"] and nsaid["indicator"] == "info"
    assert "alert-override@1, trained on 60 clinician decisions" in nsaid["detail"]
    assert "instead of warning" in nsaid["detail"]
    assert float(PROBABILITY.search(nsaid["detail"]).group(1)) >= 0.6
    assert "alert feedback" not in (statin.get("detail") or "")
    assert model_named(after) == [{"name": "alert-override", "version": "1"}]
    saved = load_model(model_path(app_settings))
    assert saved is not None and saved.seen == 60 and saved.position == 60

    # a restart reloads the model, and catching up with the feedback file counts nothing twice
    with client_of(built_kg, app_settings) as again:
        restarted = sign(again, [IBUPROFEN, SIMVASTATIN])
        assert [c["summary"] for c in restarted["cards"]] == [statin["summary"], nsaid["summary"]]
        assert [c["indicator"] for c in restarted["cards"]] == ["warning", "info"]
        assert "trained on 60 clinician decisions" in restarted["cards"][1]["detail"]
        decide(again, {card_about(restarted, "Ibuprofen")["uuid"]: "overridden"})
        assert "trained on 61 " in card_about(sign(again, [IBUPROFEN]), "Ibuprofen")["detail"]

    # a model file written by another version is not used: the model is rebuilt from the feedback
    model_path(app_settings).write_bytes(pickle.dumps(saved))  # the model without its version
    with client_of(built_kg, app_settings) as rebuilt:
        assert "trained on 61 " in card_about(sign(rebuilt, [IBUPROFEN]), "Ibuprofen")["detail"]
    resaved = load_model(model_path(app_settings))
    assert resaved is not None and resaved.seen == 61 and resaved.position == 61


def test_a_contraindicated_card_is_never_downgraded(client: TestClient) -> None:
    out = sign(client, [IBUPROFEN], allergies=("NSAIDs",))
    allergy, interaction = out["cards"]
    assert allergy["indicator"] == "critical" and allergy["summary"].startswith("Allergy")
    assert interaction["indicator"] == "warning"
    for _ in range(40):  # both cards overridden every time
        out = sign(client, [IBUPROFEN], allergies=("NSAIDs",))
        decide(client, {c["uuid"]: "overridden" for c in out["cards"]})
    allergy, interaction = sign(client, [IBUPROFEN], allergies=("NSAIDs",))["cards"]
    assert allergy["indicator"] == "critical" and allergy["summary"].startswith("Allergy")
    assert float(PROBABILITY.search(allergy["detail"]).group(1)) >= 0.9
    assert "a contraindicated-level card is never downgraded or moved" in allergy["detail"]
    assert interaction["indicator"] == "info" and "tier suppressed" in interaction["detail"]


def test_a_card_takes_one_outcome_and_one_override_demotes_nothing(
    client: TestClient, app_settings: Settings
) -> None:
    uuid = card_about(sign(client, [IBUPROFEN]), "Ibuprofen")["uuid"]
    item = {
        "card": uuid,
        "outcome": "overridden",
        "overrideReason": {"reason": {"code": "not-relevant"}},
        "outcomeTimestamp": "2026-02-01T09:00:00Z",
    }
    url = "/cds-services/order-sign/feedback"
    assert client.post(url, json={"feedback": [item]}).json() == {"stored": 1}
    assert client.post(url, json={"feedback": [item]}).json() == {"stored": 0}  # a retry
    twice = client.post(url, json={"feedback": [item, item]})
    assert twice.status_code == 422 and "is already in this request" in twice.text
    accepted = {"card": uuid, "outcome": "accepted", "outcomeTimestamp": "2026-02-01T09:05:00Z"}
    other = client.post(url, json={"feedback": [accepted]})
    assert other.status_code == 409 and "already recorded as overridden" in other.text
    saved = load_model(model_path(app_settings))
    assert saved is not None and saved.seen == 1

    # one clinician's override is too little to turn the warning into info
    again = sign(client, [IBUPROFEN])
    assert card_about(again, "Ibuprofen")["indicator"] == "warning"
    assert "alert feedback" not in str(again["cards"]) and model_named(again) == []


def test_feedback_on_diagnosis_suggestions_does_not_train_the_alert_model(
    client: TestClient, app_settings: Settings
) -> None:
    body = {
        "hook": "patient-view",
        "hookInstance": "dx",
        "context": {"userId": "Practitioner/dr-1", "patientId": PATIENT},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": PATIENT, "gender": "male"},
            "medications": bundle(order(*WARFARIN, status="active")),
            "conditions": bundle(
                {
                    "resourceType": "Condition",
                    "id": "c-1",
                    "subject": {"reference": f"Patient/{PATIENT}"},
                    "code": {"coding": [{"system": HPO, "code": "HP:0001250"}]},
                }
            ),
        },
    }
    for _ in range(40):  # every diagnosis suggestion dismissed
        out = client.post("/cds-services/patient-view", json=body).json()
        assert out["extension"]["evocdss"]["kind"] == "diagnosis" and out["cards"]
        response = client.post(
            "/cds-services/patient-view/feedback",
            json={
                "feedback": [
                    {
                        "card": c["uuid"],
                        "outcome": "overridden",
                        "outcomeTimestamp": "2026-02-01T09:00:00Z",
                    }
                    for c in out["cards"]
                ]
            },
        )
        assert response.status_code == 200, response.text
    assert load_model(model_path(app_settings)) is None  # nothing learned, nothing saved
    nsaid = card_about(sign(client, [IBUPROFEN]), "Ibuprofen")
    assert nsaid["indicator"] == "warning" and "alert feedback" not in str(nsaid)
