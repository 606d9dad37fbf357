"""The REST API under /v1 over HTTP on the real KG: ask, KG reads, FHIR ingest, health, metrics,
and an OpenAPI document that describes each of them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from kg.settings import Settings
from kg.store import GraphStore
from reasoner.differential import DiagnosisAnswer

CLINICIAN = "rest-clinician-key-000001"
CURATOR = "rest-curator-key-00000001"
INGEST = "rest-ingest-key-000000001"
ADMIN = "rest-admin-key-0000000001"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def client(
    built_kg: GraphStore, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("api")
    app_settings = settings.model_copy(
        update={
            "api_keys": SecretStr(
                f"{CLINICIAN}:clinician,{CURATOR}:curator,{INGEST}:ingest,{ADMIN}:admin"
            ),
            "api_audit_log": tmp / "audit.log",
            "api_feedback_db": tmp / "feedback.sqlite",
            "learners_dir": tmp / "learners",
        }
    )
    app = create_app(built_kg, app_settings)
    app.state.ctx.reasoner.linker.use_embeddings = False  # names unknown to the KG stay unknown
    with TestClient(app, headers=auth(CLINICIAN)) as c:
        yield c


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clinosim's FHIR R4 bulk output for a catchment of 30, seed 2."""
    out = tmp_path_factory.mktemp("clinosim")
    command = [sys.executable, "-m", "clinosim.simulator.cli", "simulate", "-o", str(out)]
    command += ["-p", "30", "-s", "2", "--start", "2024-07-01", "--end", "2024-12-31"]
    subprocess.run([*command, "--format", "fhir-r4"], check=True, capture_output=True)
    return out / "fhir_r4"


def test_ask_medication_check(client: TestClient, built_kg: GraphStore) -> None:
    payload = {
        "id": "q1",
        "patient": {"medications": [{"text": "warfarin"}, {"code": "RXNORM:5640"}]},
    }
    response = client.post("/v1/ask/medication-check", json=payload)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["id"], answer["kind"], answer["kg_version"]) == (
        "q1",
        "medication-check",
        built_kg.version(),
    )
    (problem,) = answer["problems"]
    assert (problem["type"], problem["severity"], problem["inputs"]) == (
        "drug-interaction",
        "avoid",
        [0, 1],
    )
    assert all(key in answer["citations"] for key in problem["citations"])
    assert "machine-generated" in answer["generated_by"]["label"]


def test_ask_diagnosis(client: TestClient, built_kg: GraphStore, assert_cited: object) -> None:
    # Marfan syndrome's hallmarks; the patient was examined for, and has no, seizures
    terms = ["HP:0001166", "HP:0001083", "HP:0002616", "HP:0000767", "HP:0001519"]
    payload = {
        "id": "d1",
        "patient": {"phenotypes": terms, "excluded_phenotypes": ["HP:0001250"], "sex": "female"},
        "top": 5,
    }
    response = client.post("/v1/ask/diagnosis", json=payload)
    assert response.status_code == 200, response.text
    answer = DiagnosisAnswer.model_validate(response.json())
    assert answer.kind == "diagnosis" and answer.kg_version == built_kg.version()
    assert len(answer.differential) == 5 and answer.differential[0].disease == "OMIM:154700"
    assert answer.answer.startswith("Leading candidates: Marfan syndrome")
    assert [s.tool for s in answer.steps] == [
        "resolve_phenotypes",
        "rank_diseases",
        "contradicting_findings",
        "next_questions",
    ]
    assert answer.next_questions and all(q.citations for q in answer.next_questions)
    assert assert_cited(answer, built_kg, payload) > 20  # type: ignore[operator]
    assert answer.cards[0].summary.startswith("Consider Marfan syndrome")
    assert "machine-generated" in answer.generated_by.label
    assert answer.models[0].name == "evocdss-phenotype-lr"

    bad = dict(payload, patient={"phenotypes": ["HP:0001166", "seizures"]})
    response = client.post("/v1/ask/diagnosis", json=bad)
    assert response.status_code == 422 and "patient.phenotypes[1]" in response.text
    none = client.post("/v1/ask/diagnosis", json={"id": "d2", "patient": {}})
    assert none.status_code == 422 and "at least one" in none.text
    unknown = client.post(
        "/v1/ask/diagnosis",
        json={"id": "d3", "patient": {"phenotypes": ["HP:0001166", "HP:9999999"]}},
    )
    assert unknown.status_code == 200 and unknown.json()["unknown_phenotypes"] == ["HP:9999999"]


def test_ask_diagnosis_weighs_x_linked_inheritance_against_a_female_patient(
    client: TestClient, built_kg: GraphStore, assert_cited: object
) -> None:
    # Duchenne muscular dystrophy's hallmarks (muscle weakness, calf pseudohypertrophy, ...)
    terms = ["HP:0001324", "HP:0001771", "HP:0002091", "HP:0002194", "HP:0002505", "HP:0002515"]
    payload = {"id": "d4", "patient": {"phenotypes": terms, "sex": "female"}, "top": 10}
    answer = DiagnosisAnswer.model_validate(client.post("/v1/ask/diagnosis", json=payload).json())
    dmd = next(c for c in answer.differential if c.disease == "OMIM:310200")
    (against,) = [m for m in dmd.contradicting if m.match == "inheritance_vs_sex"]
    assert against.annotation == "HP:0001419" and against.citations[0] == "patient:sex"
    step = next(s for s in answer.steps if s.tool == "contradicting_findings")
    assert any("the patient is female" in f.claim for f in step.findings)
    assert assert_cited(answer, built_kg, payload) > 10  # type: ignore[operator]


def test_ask_explain(client: TestClient) -> None:
    edge = {
        "subject": "ANSM:ibuprofene",
        "predicate": "biolink:member_of",
        "object": "ANSM:anti-inflammatoires-non-steroidiens",
    }
    answer = client.post("/v1/ask/explain", json={"id": "e1", "edge": edge}).json()
    assert answer["kind"] == "explain" and "asserted" in answer["steps"][0]["conclusion"]
    finding = answer["steps"][0]["findings"][0]
    assert answer["citations"][finding["citations"][0]]["kind"] == "kg_edge"


def test_ask_errors(client: TestClient) -> None:
    response = client.post("/v1/ask/horoscope", json={"id": "x"})
    assert response.status_code == 404 and "medication-check" in response.json()["detail"]
    response = client.post(
        "/v1/ask/medication-check", json={"id": "x", "patient": {"medications": [{}]}}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == ["body", "patient", "medications", 0]
    response = client.post("/v1/ask/medication-check", json={"id": "x", "colour": "red"})
    assert response.status_code == 422 and "colour" in response.text
    response = client.post("/v1/ask/explain", json={"id": "x", "entities": ["HP:1", "not a curie"]})
    assert response.status_code == 422 and "CURIE" in response.text
    response = client.post(
        "/v1/ask/medication-check",
        content=b"{'id': 1}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "malformed JSON" in response.json()["detail"]
    response = client.post(
        "/v1/ask/medication-check", json={"id": "x", "patient": {"medications": [{"text": "   "}]}}
    )
    assert response.status_code == 422 and "empty" in response.json()["detail"]


def test_kg_node(client: TestClient) -> None:
    out = client.get("/v1/kg/nodes/HP:0001250", params={"limit": 5}).json()
    assert (
        out["node"]["name"] == "Seizure" and out["node"]["category"] == "biolink:PhenotypicFeature"
    )
    assert any(e["predicate"] == "biolink:subclass_of" for e in out["outgoing"])
    assert 0 < len(out["incoming"]) <= 10  # 5 per direction of each query
    assert set(out["citations"]) == {
        c for e in out["outgoing"] + out["incoming"] for c in e["citations"]
    }
    assert out["citations"]["src:hpo"]["license"]
    assert client.get("/v1/kg/nodes/HP:9999999").status_code == 404
    response = client.get("/v1/kg/nodes/not-a-curie")
    assert response.status_code == 422 and "curie" in response.json()["detail"]


def test_kg_search(client: TestClient) -> None:
    out = client.get("/v1/kg/search", params={"q": "Warfarine", "limit": 5}).json()
    assert "ANSM:warfarine" in [n["id"] for n in out["results"]] and out["kg_version"] > 0
    out = client.get(
        "/v1/kg/search", params={"q": "seizure", "category": "biolink:PhenotypicFeature"}
    ).json()
    assert out["results"][0]["id"] == "HP:0001250"
    assert (
        client.get("/v1/kg/search", params={"q": "x", "category": "biolink:Pizza"}).status_code
        == 422
    )
    assert client.get("/v1/kg/search", params={"q": ""}).status_code == 422
    assert client.get("/v1/kg/search", params={"q": "???"}).json()["results"] == []


def test_kg_edges(client: TestClient) -> None:
    params = {"subject": "ANSM:ibuprofene", "predicate": "biolink:member_of"}
    out = client.get("/v1/kg/edges", params=params).json()
    assert "ANSM:anti-inflammatoires-non-steroidiens" in [e["object"] for e in out["edges"]]
    assert all(e["subject"] == "ANSM:ibuprofene" for e in out["edges"])
    assert "src:ansm-thesaurus" in out["citations"]
    params = {"object": "ANSM:anticoagulants-oraux", "status": ["asserted"], "limit": 3}
    out = client.get("/v1/kg/edges", params=params).json()
    assert len(out["edges"]) == 3 and all(e["status"] == "asserted" for e in out["edges"])
    for bad in (
        {"predicate": "biolink:member_of"},  # neither subject nor object
        {"subject": "ANSM:ibuprofene", "predicate": "biolink:likes"},
        {"subject": "ANSM:ibuprofene", "status": ["maybe"]},
        {"subject": "ANSM:ibuprofene", "min_confidence": 2},
        {"subject": "no curie"},
    ):
        assert client.get("/v1/kg/edges", params=bad).status_code == 422, bad


def test_ingest_fhir_ndjson_and_bundle(client: TestClient, population: Path) -> None:
    ndjson = b"".join(
        (population / f"{t}.ndjson").read_bytes()
        for t in ("Patient", "Condition", "MedicationRequest", "AllergyIntolerance")
    )
    response = client.post(
        "/v1/ingest/fhir?events=true",
        content=ndjson + b"{not json\n",
        headers={**auth(INGEST), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert len(out["patients"]) >= 5 and out["items"]["medications"] > 10
    assert out["links"]["linked"] > 0
    assert [p["kind"] for p in out["problems"]] == ["bad-json"]
    assert out["problems"][0]["position"].startswith("body:")  # not the temporary file
    assert all(p["patient_id"].startswith("anon-") for p in out["patients"])
    assert out["events_total"] == len(out["events"]) > 0
    # the same as a Bundle
    entries = [{"resource": r} for r in _lines(ndjson)]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    response = client.post(
        "/v1/ingest/fhir",
        json=bundle,
        headers={**auth(INGEST), "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == out["items"] and response.json()["events"] == []


def test_ingest_fhir_errors(client: TestClient) -> None:
    headers = {**auth(INGEST), "Content-Type": "application/fhir+json"}
    post = client.post
    assert post("/v1/ingest/fhir", json={"resourceType": "Bundle"}).status_code == 403  # clinician
    assert post("/v1/ingest/fhir", content=b"{", headers=headers).status_code == 400
    response = post("/v1/ingest/fhir", json={"resourceType": "Patient"}, headers=headers)
    assert response.status_code == 422 and "not a FHIR Bundle" in response.json()["detail"]
    response = post(
        "/v1/ingest/fhir", content=b"x", headers={**headers, "Content-Type": "text/csv"}
    )
    assert response.status_code == 415
    ndjson = {**headers, "Content-Type": "application/x-ndjson"}
    response = post("/v1/ingest/fhir", content=b"nope\n[1]\n", headers=ndjson)
    assert response.status_code == 422 and "body" in response.json()["detail"]
    assert "/tmp" not in response.json()["detail"]


def test_healthz_and_metrics(client: TestClient, built_kg: GraphStore) -> None:
    response = client.get("/healthz", headers={"Authorization": ""})
    assert response.json() == {"status": "ok", "kg_version": built_kg.version()}
    assert client.get("/metrics").status_code == 403
    text = client.get("/metrics", headers=auth(ADMIN)).text
    assert (
        'evocdss_http_requests_total{method="POST",route="/v1/ask/medication-check",status="200"}'
        in text
    )
    assert "evocdss_http_request_duration_seconds_bucket" in text
    assert f"evocdss_kg_version {float(built_kg.version())}" in text


def test_openapi_describes_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json", headers={"Authorization": ""}).json()
    paths = spec["paths"]
    assert {
        "/cds-services",
        "/cds-services/order-sign",
        "/cds-services/order-select",
        "/cds-services/patient-view",
        "/cds-services/{service_id}/feedback",
        "/v1/kg/nodes/{curie}",
        "/v1/kg/search",
        "/v1/kg/edges",
        "/v1/ingest/fhir",
        "/healthz",
        "/metrics",
    } <= set(paths)
    for kind in client.app.state.ctx.reasoner.kinds:
        assert f"/v1/ask/{kind}" in paths
    ask = paths["/v1/ask/medication-check"]["post"]
    assert ask["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Query")
    assert ask["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/MedicationAnswer"
    )
    assert {"400", "401", "403", "413", "422", "429"} <= set(ask["responses"])
    explain = paths["/v1/ask/explain"]["post"]
    assert explain["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ExplainQuery"
    )
    sign = paths["/cds-services/order-sign"]["post"]
    assert {"200", "412", "422"} <= set(sign["responses"])
    assert sign["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CdsResponse"
    )
    ingest = paths["/v1/ingest/fhir"]["post"]["requestBody"]["content"]
    assert {"application/fhir+json", "application/x-ndjson"} <= set(ingest)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"HTTPBearer": []} in ask["security"]


def _lines(ndjson: bytes) -> list[dict]:
    import json

    return [json.loads(x) for x in ndjson.splitlines() if x.strip()]
