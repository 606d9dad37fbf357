"""`POST /v1/ingest/fhir` feeds the online learners live, through the same replay as `evocdss
learn`: same proposals, cited; the same records twice are counted once, also after a restart
and when posted at the same time.

Records: the clinosim population of ``tests/test_learners_signals.py`` (kept under
``var/test-clinosim``); one year of records leaves no room for a washout, so the learners run
with ``signal_washout_days=0`` (set through ``Settings``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from ingest.fhir import StoreCodeLinker, read_ndjson
from kg import open_store
from kg.model import Node
from kg.settings import Settings
from kg.store import GraphStore
from kg.vocab import HAS_ADVERSE_EVENT
from learners.live import LiveLearners
from learners.signals import SignalConfig
from learners.state import StateBusy, load_state, state_path
from learners.stream import LEARNERS, learn, open_state, read_events

REPO = Path(__file__).resolve().parents[1]
CLINOSIM_ARGS = ("-p", "250", "-s", "3", "--start", "2024-01-01", "--end", "2024-12-31")
RESOURCES = ("Patient", "MedicationRequest", "Condition", "Observation")
INGEST, CURATOR = "live-ingest-key-000000001", "live-curator-key-00000001"
ATORVASTATIN, AST_HIGH = "RXNORM:83367", "EVO:lab-LOINC-1920-8-high"
NDJSON = {"Authorization": f"Bearer {INGEST}", "Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def records() -> Path:
    """clinosim's FHIR R4 bulk output (the one tests/test_learners_signals.py keeps)."""
    key = hashlib.sha1(f"{version('clinosim')} {CLINOSIM_ARGS}".encode()).hexdigest()[:12]
    root = REPO / "var" / "test-clinosim"
    root.mkdir(parents=True, exist_ok=True)
    done = root / key
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (done / "fhir_r4" / "Patient.ndjson").exists():
            partial = root / f"{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            command = [sys.executable, "-m", "clinosim.simulator.cli", "simulate", "-o"]
            command += [str(partial), *CLINOSIM_ARGS, "--format", "fhir-r4"]
            subprocess.run(command, check=True, capture_output=True)
            shutil.rmtree(done, ignore_errors=True)
            partial.rename(done)
    return done / "fhir_r4"


@pytest.fixture(scope="module")
def kg_nodes(records: Path, built_kg: GraphStore) -> list[Node]:
    patients = read_ndjson(records, linker=StoreCodeLinker(built_kg), salt="nodes")
    curies = {i.link.curie for p in patients for i in p.items() if i.link.curie}
    return list(built_kg.get_nodes(curies).values())


def small_kg(path: Path, nodes: list[Node]) -> GraphStore:
    """A small writable KG with the records' nodes (the session's built KG stays untouched)."""
    s = open_store(f"sqlite:///{path}")
    s.upsert(nodes=nodes, actor="test")
    return s


def body(records: Path, names: tuple[str, ...] = RESOURCES) -> bytes:
    return b"".join((records / f"{n}.ndjson").read_bytes() for n in names)


def live_settings(settings: Settings, tmp: Path) -> Settings:
    """No pseudonym salt: the learners keep their own, so pseudonyms survive restarts."""
    return settings.model_copy(
        update={
            "api_keys": SecretStr(f"{INGEST}:ingest,{CURATOR}:curator"),
            "api_audit_log": tmp / "audit.log",
            "api_feedback_db": tmp / "feedback.sqlite",
            "api_max_body_bytes": 64 * 1024 * 1024,
            "learners_dir": tmp / "learners",
            "pseudonym_salt": "",
            "signal_washout_days": 0.0,
        }
    )


@pytest.fixture
def live(
    settings: Settings, kg_nodes: list[Node], tmp_path: Path
) -> Iterator[tuple[GraphStore, Settings]]:
    store = small_kg(tmp_path / "kg.sqlite", kg_nodes)
    yield store, live_settings(settings, tmp_path)
    store.close()


def test_ingest_learns_proposes_and_never_counts_twice(
    live: tuple[GraphStore, Settings], records: Path, kg_nodes: list[Node], tmp_path: Path
) -> None:
    store, settings = live
    curator = {"Authorization": f"Bearer {CURATOR}"}
    with TestClient(create_app(store, settings), headers=curator) as client:
        response = client.post("/v1/ingest/fhir", content=body(records), headers=NDJSON)
        assert response.status_code == 200, response.text
        out = response.json()
        learned = out["learned"]
        assert learned["events_learned"] == out["events_total"] > 20_000
        assert learned["events_skipped"] == 0 and learned["patients"] == 164
        assert learned["learners"] == {"signals": "signal-bcpnn@2"}
        signals = learned["proposals"]["signals"]
        assert signals["proposed"] >= 3 and signals["citation"].startswith("model:signal-bcpnn@2:")

        # the proposals are in the KG, cited by the learner's model with its data window
        edges = client.get(
            "/v1/kg/edges",
            params={"subject": ATORVASTATIN, "predicate": HAS_ADVERSE_EVENT, "status": "proposed"},
        ).json()
        (statin,) = [e for e in edges["edges"] if e["object"] == AST_HIGH]
        (cid,) = statin["citations"]
        assert cid == signals["citation"] and edges["citations"][cid]["kind"] == "model"
        assert edges["citations"][cid]["details"]["washout_days"] == 0
        assert statin["qualifiers"]["n11"] >= 3 and statin["qualifiers"]["ic025"] > 0
        lab = client.get(f"/v1/kg/nodes/{AST_HIGH}").json()["node"]
        assert lab["category"] == "biolink:ClinicalFinding"

        # the same records again: all skipped, nothing written
        kg_version = store.version()
        again = client.post("/v1/ingest/fhir", content=body(records), headers=NDJSON).json()
        assert again["learned"]["events_learned"] == 0
        assert again["learned"]["events_skipped"] == out["events_total"]
        assert again["learned"]["proposals"] == {} and store.version() == kg_version
        assert again["patients"] == out["patients"]  # the same pseudonyms

    saved = load_state(state_path(settings), LEARNERS)
    assert saved.position.to_dict() == learned["position"]
    assert saved.position.events == out["events_total"]

    # a restart resumes from the saved state (and its pseudonym salt): still nothing twice
    with TestClient(create_app(store, settings)) as client:
        third = client.post("/v1/ingest/fhir", content=body(records), headers=NDJSON).json()
        assert third["learned"]["events_learned"] == 0 and store.version() == kg_version
        assert third["learned"]["position"] == learned["position"]

    # `evocdss learn` on the same records proposes exactly the same edges
    folder = tmp_path / "records"
    folder.mkdir()
    for name in RESOURCES:
        shutil.copy(records / f"{name}.ndjson", folder)
    cli_store = small_kg(tmp_path / "cli.sqlite", kg_nodes)
    cli_settings = Settings(home=tmp_path / "cli", pseudonym_salt=saved.salt)
    summary = learn(folder, cli_store, cli_settings, signal_config=SignalConfig(washout_days=0))
    assert summary.events_learned == out["events_total"]

    def content(s: GraphStore) -> list:
        edges = s.edges(predicate=HAS_ADVERSE_EVENT)
        return sorted((e.subject, e.object, e.status, e.confidence, e.citations) for e in edges)

    assert content(cli_store) == content(store) != []
    cli_store.close()


def test_parallel_posts_are_learned_once(live: tuple[GraphStore, Settings], records: Path) -> None:
    store, settings = live
    payload = body(records, ("Patient", "MedicationRequest", "Condition"))
    with TestClient(create_app(store, settings)) as client:

        def post(_: int) -> dict:
            response = client.post("/v1/ingest/fhir", content=payload, headers=NDJSON)
            assert response.status_code == 200, response.text
            return response.json()

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(post, range(2))
    total = first["events_total"]
    assert total == second["events_total"] > 1_000
    learned = sorted(r["learned"]["events_learned"] for r in (first, second))
    assert learned == [0, total]
    assert load_state(state_path(settings), LEARNERS).position.events == total


def test_pseudonyms_stay_the_same_across_restarts_before_any_ingest(
    live: tuple[GraphStore, Settings],
) -> None:
    """Without a configured salt the learners' own is used, saved at the first start: the
    audit log's pseudonyms of one patient do not change when the server restarts."""
    store, settings = live
    salts = []
    for _ in range(2):
        with TestClient(create_app(store, settings)) as client:
            salts.append(client.app.state.ctx.salt)
    assert salts[0] == salts[1] == load_state(state_path(settings), LEARNERS).salt

    # a state that has learned nothing takes the thresholds `evocdss learn` asks for
    strict = open_state(state_path(settings), settings, signal_config=SignalConfig(min_count=9))
    assert strict.learners["signals"].config.min_count == 9 and strict.salt == salts[0]


def test_an_unusable_learner_state_is_a_409(
    live: tuple[GraphStore, Settings], records: Path
) -> None:
    store, settings = live
    path = state_path(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pickle")
    with TestClient(create_app(store, settings)) as client:
        response = client.post(
            "/v1/ingest/fhir", content=body(records, ("Patient",)), headers=NDJSON
        )
    assert response.status_code == 409
    assert "unreadable" in response.json()["detail"] and "--reset" in response.json()["detail"]
    assert path.read_bytes() == b"not a pickle"


def test_json_too_deep_or_numbers_too_long_are_400(live: tuple[GraphStore, Settings]) -> None:
    store, settings = live
    fhir_json = {"Authorization": f"Bearer {INGEST}", "Content-Type": "application/fhir+json"}
    deep, long_number = b"[" * 100_000, b'{"x": ' + b"1" * 5000 + b"}"
    with TestClient(create_app(store, settings)) as client:
        for payload in (deep, long_number):
            for headers in (fhir_json, NDJSON):
                response = client.post("/v1/ingest/fhir", content=payload, headers=headers)
                assert response.status_code in (400, 422), (headers, response.text[:200])


HOLD_STATE = """
import sys
from pathlib import Path
from learners.state import locked
with locked(Path(sys.argv[1]), wait=5):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_by_another_process(path: Path) -> Iterator[None]:
    """Another process (as `evocdss learn` would) holds the learner state at ``path``."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_STATE, str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate("", timeout=30)


def test_a_state_held_by_another_process_is_a_503_then_learned(
    live: tuple[GraphStore, Settings], records: Path
) -> None:
    store, settings = live
    path = state_path(settings)
    payload = body(records, ("Patient", "MedicationRequest", "Condition"))
    with TestClient(create_app(store, settings)) as client:
        client.app.state.ctx.learners.lock_wait = 0.3
        with held_by_another_process(path):
            busy = client.post("/v1/ingest/fhir", content=payload, headers=NDJSON)
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
            assert "in use by another process" in busy.json()["detail"]
            assert load_state(path, LEARNERS).position.events == 0  # nothing learned
        done = client.post("/v1/ingest/fhir", content=payload, headers=NDJSON).json()
    assert done["learned"]["events_learned"] == done["events_total"] > 1_000
    assert load_state(path, LEARNERS).position.events == done["events_total"]


def test_cli_learn_waits_for_a_held_state_then_exits_2(
    live: tuple[GraphStore, Settings], records: Path, tmp_path: Path
) -> None:
    store, settings = live
    path = tmp_path / "state.pkl"
    with held_by_another_process(path):
        with pytest.raises(StateBusy, match="in use by another process"):
            learn(records, store, settings, state_file=path, lock_wait=0.3)
        result = subprocess.run(
            [sys.executable, "-m", "api.cli", "learn", "--records", str(records),
             "--state", str(path), "--store", store.url, "--wait", "0.3"],
            cwd=REPO, capture_output=True, text=True, timeout=300,
            env={**os.environ, "EVOCDSS_HOME": str(tmp_path)},
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "in use by another process" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not path.exists()


class FailingWrite:
    """The KG as another writer holds it: the first write fails as SQLite's lock does."""

    def __init__(self, store: GraphStore) -> None:
        self.store, self.failed = store, False

    def upsert(self, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database is locked")
        return self.store.upsert(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_batch_whose_kg_write_fails_is_learned_when_sent_again(
    live: tuple[GraphStore, Settings], records: Path
) -> None:
    store, settings = live
    learners = LiveLearners(settings)
    events, _ = read_events(records, store, learners.salt)
    with pytest.raises(sqlite3.OperationalError):
        learners.learn(events, FailingWrite(store), learners.salt)
    assert load_state(state_path(settings), LEARNERS).position.events == 0  # as it started
    again = learners.learn(events, store, learners.salt)
    assert again.events_learned == len(events) > 20_000
    assert again.flushed["signals"]["proposed"] >= 3
    assert load_state(state_path(settings), LEARNERS).position.events == len(events)
