"""API keys and roles, body and rate limits, the start-up check, and keys never logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from api.app import create_app
from api.audit import AuditLog, read_audit
from api.security import ApiKeys, ConfigError, key_id, require_role
from api.server import serve
from kg.settings import Settings
from kg.store import GraphStore

CLINICIAN = "sec-clinician-key-00000001"
CURATOR = "sec-curator-key-000000001"
INGEST = "sec-ingest-key-0000000001"
ADMIN = "sec-admin-key-00000000001"
KEYS = f"{CLINICIAN}:clinician,{CURATOR}:curator,{INGEST}:ingest,{ADMIN}:admin"
ASK = {"id": "q", "patient": {"medications": [{"code": "RXNORM:11289"}]}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_settings(base: Settings, tmp: Path, **update: object) -> Settings:
    return base.model_copy(
        update={
            "api_keys": SecretStr(KEYS),
            "api_audit_log": tmp / "audit.log",
            "api_feedback_db": tmp / "feedback.sqlite",
            "learners_dir": tmp / "learners",
            **update,
        }
    )


@pytest.fixture(scope="module")
def secured(
    built_kg: GraphStore, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Settings]]:
    app_settings = make_settings(settings, tmp_path_factory.mktemp("api"), api_max_body_bytes=4096)
    app = create_app(built_kg, app_settings)

    @app.post("/test/curate", dependencies=[Depends(require_role("curator"))])
    def curate() -> dict:
        return {"ok": True}

    with TestClient(app) as c:
        yield c, app_settings


def test_no_key_wrong_key_and_wrong_scheme_are_401(secured: tuple) -> None:
    client, _ = secured
    for headers, error in (
        ({}, False),
        (bearer("not-a-configured-key-123"), True),
        ({"Authorization": f"Basic {CLINICIAN}"}, True),
        ({"Authorization": "Bearer "}, True),
    ):
        response = client.post("/v1/ask/medication-check", json=ASK, headers=headers)
        assert response.status_code == 401, headers
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer") and ('error="invalid_token"' in challenge) == error
    assert client.get("/healthz").status_code == 200  # no key needed


def test_roles(secured: tuple) -> None:
    client, _ = secured
    allowed = {
        ("POST", "/v1/ask/medication-check"): {CLINICIAN, CURATOR, ADMIN},
        ("GET", "/cds-services"): {CLINICIAN, ADMIN},
        ("GET", "/v1/kg/nodes/HP:0001250"): {CLINICIAN, CURATOR, ADMIN},
        ("GET", "/metrics"): {ADMIN},
        ("POST", "/test/curate"): {CURATOR, ADMIN},
    }
    for (method, path), keys in allowed.items():
        for key in (CLINICIAN, CURATOR, INGEST, ADMIN):
            response = client.request(method, path, json=ASK, headers=bearer(key))
            expected = 200 if key in keys else 403
            assert response.status_code == expected, (method, path, key, response.text)
            if expected == 403:
                assert "role" in response.json()["detail"]
    ingest = {"Content-Type": "application/fhir+json"}
    for key, status in ((INGEST, 200), (ADMIN, 200), (CLINICIAN, 403), (CURATOR, 403)):
        response = client.post(
            "/v1/ingest/fhir", json={"resourceType": "Bundle"}, headers={**bearer(key), **ingest}
        )
        assert response.status_code == status


def test_body_limit_is_413(secured: tuple) -> None:
    client, _ = secured
    big = {"id": "x" * 5000}
    response = client.post("/v1/ask/medication-check", json=big, headers=bearer(CLINICIAN))
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"id": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/v1/ask/medication-check",
        content=chunks(),
        headers={**bearer(CLINICIAN), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_rate_limit_is_429_per_key(
    built_kg: GraphStore, settings: Settings, tmp_path: Path
) -> None:
    app = create_app(
        built_kg, make_settings(settings, tmp_path, api_rate_per_second=0.5, api_rate_burst=3)
    )
    with TestClient(app) as client:
        codes = [
            client.get("/cds-services", headers=bearer(CLINICIAN)).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/cds-services", headers=bearer(CLINICIAN))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert client.get("/cds-services", headers=bearer(ADMIN)).status_code == 200  # own bucket


def test_keys_config(settings: Settings, tmp_path: Path) -> None:
    base = settings.model_copy(update={"api_keys": SecretStr("")})
    with pytest.raises(ConfigError, match="no API key configured"):
        ApiKeys.from_settings(base)
    assert ApiKeys.from_settings(base.model_copy(update={"api_open_access": True})).open_access
    secret = "short-secret"
    for entry, message in (
        (f"{secret}:clinician", "at least 16"),
        ("abcdefghijklmnopqrstu:wizard", "unknown role"),
        ("clinician:abcdefghijklmnopqrstu", "unknown role"),  # the wrong way round
        ("abcdefghijklmnopqrstu", "key:role"),
    ):
        with pytest.raises(ConfigError, match=message) as info:
            ApiKeys.from_settings(base.model_copy(update={"api_keys": SecretStr(entry)}))
        assert secret not in str(info.value) and "abcdefghijklmnopqrstu" not in str(info.value)
    keys_file = tmp_path / "keys"
    keys_file.write_text(  # as Windows Notepad saves it: with a byte order mark
        f"{CURATOR}:curator\n# keys\n\nwith:colons:in-key-0001:ingest\n", encoding="utf-8-sig"
    )
    keys = ApiKeys.from_settings(
        base.model_copy(
            update={"api_keys": SecretStr(f"{ADMIN}:admin"), "api_keys_file": keys_file}
        )
    )
    assert keys.lookup(CURATOR).role == "curator" and keys.lookup(ADMIN).role == "admin"
    assert keys.lookup("with:colons:in-key-0001").role == "ingest"
    assert keys.lookup(CURATOR).key_id == key_id(CURATOR) != CURATOR[:12]
    assert keys.lookup(CURATOR + "x") is None and keys.lookup("") is None
    twice = f"{CURATOR}:curator,{CURATOR}:curator"  # the same role twice is fine
    assert ApiKeys.from_settings(base.model_copy(update={"api_keys": SecretStr(twice)}))
    with pytest.raises(ConfigError, match=f"line 1 of {keys_file}.*entry 2 of EVOCDSS") as info:
        ApiKeys.from_settings(  # which role would apply depended on the order of the entries
            base.model_copy(
                update={
                    "api_keys": SecretStr(f"{ADMIN}:admin,{CURATOR}:admin"),
                    "api_keys_file": keys_file,
                }
            )
        )
    assert CURATOR not in str(info.value)
    missing = base.model_copy(update={"api_keys_file": tmp_path / "nope"})
    with pytest.raises(ConfigError, match="does not exist"):
        ApiKeys.from_settings(missing)


def test_rate_and_body_limits_must_be_positive(settings: Settings) -> None:
    for field in ("api_rate_per_second", "api_rate_burst", "api_max_body_bytes"):
        with pytest.raises(ValidationError, match=field):
            Settings.model_validate({**settings.model_dump(), field: 0})


def test_odd_methods_and_unknown_paths_stay_out_of_metrics_and_audit(secured: tuple) -> None:
    client, app_settings = secured
    for n in range(3):
        client.request(f"X{n}", f"/v1/patients/MRN-{n}")
    metrics = client.get("/metrics", headers=bearer(ADMIN)).text
    assert 'method="X0"' not in metrics and 'method="other"' in metrics
    records = read_audit(app_settings.audit_log_path)[-4:-1]
    assert {(r["method"], r["route"]) for r in records} == {("other", "unmatched")}
    assert "MRN" not in app_settings.audit_log_path.read_text()


def test_open_access_serves_without_a_key(
    built_kg: GraphStore, settings: Settings, tmp_path: Path
) -> None:
    app_settings = make_settings(settings, tmp_path, api_keys=SecretStr(""), api_open_access=True)
    with TestClient(create_app(built_kg, app_settings)) as client:
        assert client.get("/metrics").status_code == 200


def test_serve_refuses_to_start_without_keys(settings: Settings, tmp_path: Path) -> None:
    no_keys = make_settings(settings, tmp_path, api_keys=SecretStr(""))
    with pytest.raises(ConfigError, match="EVOCDSS_API_KEYS"):
        serve("127.0.0.1", 0, no_keys)


def test_keys_are_never_logged(secured: tuple, caplog: pytest.LogCaptureFixture) -> None:
    client, app_settings = secured
    with caplog.at_level(logging.DEBUG):
        client.post("/v1/ask/medication-check", json=ASK, headers=bearer(CLINICIAN))
        client.post("/v1/ask/medication-check", json=ASK, headers=bearer("guess-guess-guess-1"))
        client.get("/metrics", headers=bearer(INGEST))
    audit = app_settings.audit_log_path.read_text()
    for key in (CLINICIAN, CURATOR, INGEST, ADMIN, "guess-guess-guess-1"):
        assert key not in audit and key not in caplog.text
    records = read_audit(app_settings.audit_log_path)
    assert {r["key"] for r in records} >= {key_id(CLINICIAN), key_id(INGEST), None}
    assert [r["status"] for r in records[-3:]] == [200, 401, 403]
    assert records[-3]["route"] == "/v1/ask/medication-check"
    assert app_settings.audit_log_path.stat().st_mode & 0o077 == 0  # owner only


def test_audit_log_follows_log_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    audit = AuditLog(path)
    audit.write({"n": 1})
    path.rename(tmp_path / "audit.log.1")  # what logrotate does before it signals nobody
    audit.write({"n": 2})
    path.unlink()  # and a rotation that deletes the file
    audit.write({"n": 3})
    audit.close()
    assert read_audit(tmp_path / "audit.log.1") == [{"n": 1}]
    assert read_audit(path) == [{"n": 3}]
    assert (path.stat().st_mode & 0o777) == 0o600


def test_cors_preflight_of_a_listed_origin_needs_no_key(
    built_kg: GraphStore, settings: Settings, tmp_path: Path
) -> None:
    ehr = "https://ehr.example.org"
    preflight = {"Origin": ehr, "Access-Control-Request-Method": "POST"}
    preflight["Access-Control-Request-Headers"] = "authorization,content-type"
    url = "/cds-services/order-sign"
    with TestClient(create_app(built_kg, make_settings(settings, tmp_path))) as client:
        assert client.options(url, headers=preflight).status_code == 401  # no CORS configured
    listed = make_settings(settings, tmp_path, api_cors_origins=f" {ehr} ,https://other.org")
    with TestClient(create_app(built_kg, listed)) as client:
        answer = client.options(url, headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == ehr
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        stranger = client.options(url, headers={**preflight, "Origin": "https://evil.org"})
        assert stranger.status_code == 400
        call = client.get("/cds-services", headers={"Origin": ehr})  # still needs a key
        assert call.status_code == 401
        call = client.get("/cds-services", headers={"Origin": ehr, **bearer(CLINICIAN)})
        assert call.status_code == 200 and call.headers["access-control-allow-origin"] == ehr
