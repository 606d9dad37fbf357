"""Signal learner, record stream, proposals and their curation, on a clinosim population.

The population (catchment 250, seed 3, year 2024: 164 patients) is generated once and kept
under ``var/test-clinosim`` keyed by the clinosim version and arguments. One year of records
leaves no room for a washout, so these tests learn with ``washout_days=0``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from api.commands import learn as learn_cli
from ingest.fhir import StoreCodeLinker, read_ndjson
from ingest.patient import Event
from kg import open_store
from kg.model import Edge, Node
from kg.settings import Settings
from kg.store import GraphStore
from kg.vocab import HAS_ADVERSE_EVENT, Status
from learners.proposals import ProposalError, accept, list_proposals, reject, show
from learners.signals import (
    SignalConfig,
    SignalLearner,
    disproportionality,
    lab_finding_key,
)
from learners.state import load_state, new_state, save_state, state_path
from learners.stream import LEARNERS, LearnSummary, learn, read_events

REPO = Path(__file__).resolve().parents[1]
CLINOSIM_ARGS = ("-p", "250", "-s", "3", "--start", "2024-01-01", "--end", "2024-12-31")
CONFIG = SignalConfig(washout_days=0)
SALT = "test-learners"
ATORVASTATIN, AST_HIGH = "RXNORM:83367", "EVO:lab-LOINC-1920-8-high"
MODEL_CITATION = re.compile(r"^model:signal-bcpnn@2:\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d$")


@pytest.fixture(scope="module")
def records() -> Path:
    """clinosim's FHIR R4 bulk output (generated once, then reused from var/test-clinosim)."""
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
    """The KG nodes the records' codes name (drugs, diagnoses), taken from the built KG."""
    patients = read_ndjson(records, linker=StoreCodeLinker(built_kg), salt="nodes")
    curies = {i.link.curie for p in patients for i in p.items() if i.link.curie}
    return list(built_kg.get_nodes(curies).values())


def small_kg(path: Path, nodes: list[Node]) -> GraphStore:
    """A small writable KG with ``nodes`` (the session's built KG stays untouched)."""
    s = open_store(f"sqlite:///{path}")
    s.upsert(nodes=nodes, actor="test")
    return s


@pytest.fixture
def store(tmp_path: Path, kg_nodes: list[Node]) -> GraphStore:
    s = small_kg(tmp_path / "kg.sqlite", kg_nodes)
    yield s
    s.close()


@pytest.fixture(scope="module")
def learned(
    records: Path, kg_nodes: list[Node], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Settings, LearnSummary]:
    """One full pass over the records: (KG file, settings, summary); tests read it or copy it."""
    root = tmp_path_factory.mktemp("learned")
    s = small_kg(root / "kg.sqlite", kg_nodes)
    settings = Settings(home=root / "home", pseudonym_salt=SALT)
    summary = learn(records, s, settings, signal_config=CONFIG)
    s.close()
    return root / "kg.sqlite", settings, summary


@pytest.fixture
def learned_copy(
    learned: tuple[Path, Settings, LearnSummary], tmp_path: Path
) -> tuple[GraphStore, Settings]:
    """A writable copy of ``learned``: its KG and its learner state."""
    kg, settings, _ = learned
    shutil.copy(kg, tmp_path / "kg.sqlite")
    shutil.copytree(settings.home, tmp_path / "home")
    s = open_store(f"sqlite:///{tmp_path / 'kg.sqlite'}", create=False)
    yield s, Settings(home=tmp_path / "home", pseudonym_salt=SALT)
    s.close()


def adverse_edges(store: GraphStore) -> list:
    return store.edges(predicate=HAS_ADVERSE_EVENT)


def test_disproportionality_statistics() -> None:
    from scipy.stats import gamma

    s = disproportionality(n11=20, n_drug=100, n_event=50, n=1000)
    assert s.expected == pytest.approx(5.0)
    assert s.prr == pytest.approx((20 / 100) / (30 / 900))
    assert s.ror == pytest.approx((20 * 870) / (80 * 30))
    assert s.ic == pytest.approx(math.log2(20.5 / 5.5))
    for n11, expected in ((3, 0.4), (5, 1.0), (20, 5.0), (100, 60.0)):
        exact = math.log2(gamma.ppf(0.025, n11 + 0.5, scale=1 / (expected + 0.5)))
        approx = disproportionality(n11, *_margins(expected)).ic025
        assert approx == pytest.approx(exact, abs=0.15), (n11, expected)
    assert disproportionality(3, 3, 3, 1000).is_signal(3)
    assert not disproportionality(2, 2, 2, 1000).is_signal(3)  # too few cases
    assert not disproportionality(30, 100, 300, 1000).is_signal(3)  # as often as expected
    zero = disproportionality(0, 10, 10, 100)  # a zero cell: Haldane-Anscombe, still finite
    assert math.isfinite(zero.prr) and math.isfinite(zero.ror) and zero.ic < 0


def _margins(expected: float) -> tuple[int, int, int]:
    """(n_drug, n_event, n) whose expected count is ``expected`` (n = 10,000)."""
    return 100, round(expected * 100), 10_000


def test_learn_proposes_cited_edges(learned: tuple[Path, Settings, LearnSummary]) -> None:
    kg, home, summary = learned
    store = open_store(f"sqlite:///{kg}", create=False)
    assert summary.patients == 164 and summary.events_learned == summary.events_read > 20_000
    assert summary.events_skipped == 0
    edges = adverse_edges(store)
    assert len(edges) == summary.flushed["signals"]["proposed"] >= 3
    assert (ATORVASTATIN, AST_HIGH) in {(e.subject, e.object) for e in edges}  # statins: ALT/AST
    learner = load_state(state_path(home), LEARNERS).learners["signals"]
    assert {(s.drug, s.event) for s in learner.signals()} == {(e.subject, e.object) for e in edges}
    for e in edges:
        assert e.status == Status.PROPOSED and 0 < e.confidence <= 1
        q = e.qualifiers
        assert q["ic025"] > 0 and q["n11"] >= CONFIG.min_count
        assert q["prr"] > 1 and q["ror"] > 1 and q["ic"] > q["ic025"]
        assert q["first_seen"] <= q["last_seen"] and q["window"].startswith("1-90 days")
        (cid,) = e.citations
        citation = store.get_citations([cid])[cid]
        assert MODEL_CITATION.match(cid) and citation.kind == "model"
        assert citation.version == "2" and citation.date == cid.rsplit("..", 1)[1]
        assert citation.details["min_count"] == 3 and "IC025" in citation.details["statistic"]
        assert store.get_node(e.subject).category == "biolink:Drug"
        assert store.get_node(e.object) is not None
        (change,) = store.changes(key=e.id)
        assert (change.action, change.actor) == ("add_edge", "learner:signal-bcpnn@2")
    ast = store.get_node(AST_HIGH)
    assert ast.category == "biolink:ClinicalFinding" and ast.xrefs == ("LOINC:1920-8",)
    assert ast.name.startswith("Aspartate aminotransferase") and "above" in ast.name
    # pairs below threshold never become edges, with cases or without
    below = [p for p in learner.n_pair if not learner.stats(*p).is_signal(3)]
    assert len(below) > 100
    assert not {(e.subject, e.object) for e in edges} & set(below)
    store.close()


class StaleRead:
    """The store as a curator saw it a moment ago: ``edge`` as it was read then."""

    def __init__(self, store: GraphStore, edge: Edge) -> None:
        self.store, self.edge = store, edge

    def get_edge(self, edge_id: str) -> Edge | None:
        edge, self.edge = self.edge, None
        return edge or self.store.get_edge(edge_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_accept_reject_and_rejections_are_never_proposed_again(
    records: Path, learned_copy: tuple[GraphStore, Settings]
) -> None:
    store, home = learned_copy
    edges = {(e.subject, e.object): e for e in list_proposals(store, limit=None)}
    target = edges[(ATORVASTATIN, AST_HIGH)]
    kept = next(e for k, e in edges.items() if k != (ATORVASTATIN, AST_HIGH))
    rejected = reject(store, target.id, "dr-curator", "transaminase rise already on the label")
    curated = accept(store, kept.id, "dr-curator", "plausible; confirmed in chart review")
    assert (rejected.status, curated.status) == (Status.REJECTED, Status.CURATED)
    for edge, status, reason in (
        (target, Status.REJECTED, "transaminase rise already on the label"),
        (kept, Status.CURATED, "plausible; confirmed in chart review"),
    ):
        last = store.changes(key=edge.id)[-1]
        assert (last.action, last.actor, last.reason) == ("set_status", "dr-curator", reason)
        assert (last.before["status"], last.after["status"]) == (Status.PROPOSED, status)
    with pytest.raises(ProposalError, match="is rejected, not proposed"):
        accept(store, target.id, "dr-other", "changed my mind")
    with pytest.raises(ProposalError, match="is curated, not proposed"):
        reject(store, kept.id, "dr-other", "no")
    with pytest.raises(ProposalError, match="needs a reason"):
        reject(store, next(iter(edges.values())).id, "dr-other", " ")
    with pytest.raises(ProposalError, match="no edge E0000000000000000"):
        accept(store, "E0000000000000000", "dr-other", "why not")
    shown = show(store, target.id)
    assert shown["edge"]["status"] == Status.REJECTED
    assert shown["object_name"].startswith("Aspartate aminotransferase")
    assert set(shown["citations"]) == set(target.citations)
    assert [c["action"] for c in shown["history"]] == ["add_edge", "set_status"]

    # Learning again from scratch: the rejected pair is a negative, the curated one is left alone
    history = {e.id: len(store.changes(key=e.id)) for e in (target, kept)}
    summary = learn(records, store, home, signal_config=CONFIG, reset=True)
    flushed = summary.flushed["signals"]
    assert flushed["rejected_skipped"] == 1 and flushed["already_known"] == 1
    assert flushed["proposed"] == 0
    assert {e.id: len(store.changes(key=e.id)) for e in (target, kept)} == history
    assert store.get_edge(target.id).status == Status.REJECTED
    learner = load_state(state_path(home), LEARNERS).learners["signals"]
    assert (ATORVASTATIN, AST_HIGH) in learner.rejected
    assert (ATORVASTATIN, AST_HIGH) not in {(s.drug, s.event) for s in learner.signals()}

    # two curators at once: the second read the edge before the first decision was written
    third = next(e for e in edges.values() if e.id not in {target.id, kept.id})
    reject(store, third.id, "dr-first", "not plausible")
    with pytest.raises(ProposalError, match="is rejected, not proposed"):
        accept(StaleRead(store, third), third.id, "dr-second", "plausible")
    assert store.get_edge(third.id).status == Status.REJECTED


def test_a_reset_with_stricter_thresholds_retires_the_old_proposals(
    records: Path, learned_copy: tuple[GraphStore, Settings]
) -> None:
    """The fresh learner answers for the proposals of the state it replaces."""
    store, home = learned_copy
    before = list_proposals(store, limit=None)
    assert len(before) >= 3
    strict = replace(CONFIG, min_count=1000)
    summary = learn(records, store, home, signal_config=strict, reset=True)
    flushed = summary.flushed["signals"]
    assert (flushed["proposed"], flushed["retired"]) == (0, len(before))
    assert list_proposals(store, limit=None) == []
    for edge in before:
        last = store.changes(key=edge.id)[-1]
        assert store.get_edge(edge.id).status == Status.RETRACTED
        assert "needs n11 >= 1000" in last.reason


class Crash(Exception):
    pass


def test_resume_after_a_crash_counts_nothing_twice(
    records: Path,
    tmp_path: Path,
    kg_nodes: list[Node],
    learned: tuple[Path, Settings, LearnSummary],
) -> None:
    """Half a pass, a crash, a restart: the same learner and the same KG as one full pass."""
    kg, once, full = learned
    stores = {"once": open_store(f"sqlite:///{kg}", create=False)}
    stores["resumed"] = small_kg(tmp_path / "resumed.sqlite", kg_nodes)
    resumed = Settings(home=tmp_path / "resumed", pseudonym_salt=SALT)

    def crash_half_way(done: int, total: int) -> None:
        if done >= total // 2:
            raise Crash

    with pytest.raises(Crash):
        learn(
            records,
            stores["resumed"],
            resumed,
            signal_config=CONFIG,
            progress=crash_half_way,
            checkpoint_every=5_000,
        )
    saved = load_state(state_path(resumed), LEARNERS).position.events
    assert 0 < saved < full.events_read // 2 and saved % 5_000 == 0
    assert adverse_edges(stores["resumed"]) == []  # nothing flushed before the crash
    again = learn(records, stores["resumed"], resumed, signal_config=CONFIG)
    assert (again.events_skipped, again.events_learned) == (saved, full.events_read - saved)

    a = load_state(state_path(once), LEARNERS)
    b = load_state(state_path(resumed), LEARNERS)
    assert a.position.to_dict() == b.position.to_dict()
    la, lb = a.learners["signals"], b.learners["signals"]
    assert (la.n, la.n_drug, la.n_event, la.n_pair) == (lb.n, lb.n_drug, lb.n_event, lb.n_pair)
    assert la.signals() == lb.signals()

    def content(s: GraphStore) -> list:
        return [(e.subject, e.object, e.confidence, e.qualifiers) for e in adverse_edges(s)]

    assert content(stores["once"]) == content(stores["resumed"]) != []

    # the same records once more: all known, nothing learned, the KG does not change
    kg_version = stores["resumed"].version()
    third = learn(records, stores["resumed"], resumed)
    assert (third.events_skipped, third.events_learned) == (full.events_read, 0)
    assert stores["resumed"].version() == kg_version
    assert third.flushed["signals"] | {"citation": ""} == {
        "proposed": 0,
        "updated": 0,
        "retired": 0,
        "rejected_skipped": 0,
        "already_known": 0,
        "citation": "",
    }

    # other records before the saved position: refused rather than double counted
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in ("Patient", "MedicationRequest", "Condition"):
        shutil.copy(records / f"{name}.ndjson", subset)
    with pytest.raises(ValueError, match="give all the records learned so far with the new ones"):
        learn(subset, stores["resumed"], resumed)
    with pytest.raises(ValueError, match=r"uses .*min_count.*--reset"):
        learn(records, stores["resumed"], resumed, signal_config=SignalConfig(min_count=5))
    for s in stores.values():
        s.close()


def test_contacts_with_health_services_are_not_events(records: Path, store: GraphStore) -> None:
    """ICD-10-CM chapter 21 codes (encounters, screening, history) record a contact with health
    services, not something that happened to the patient: never an adverse event."""
    events, _ = read_events(records, store, "contacts")
    counting_all = SignalLearner(replace(CONFIG, non_events=()))
    learner = SignalLearner(CONFIG)
    for event in events:
        counting_all.learn_event(event)
        learner.learn_event(event)
    contacts = {e for e in counting_all.n_event if e.startswith("ICD10CM:Z")}
    assert contacts  # the records have them, and they follow drug starts
    assert not any(e.startswith("ICD10CM:Z") for e in learner.n_event)
    others = {e: n for e, n in counting_all.n_event.items() if e not in contacts}
    assert others == dict(learner.n_event) and learner.n == counting_all.n


def test_a_state_saved_by_an_older_learner_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.pkl"
    current = SignalLearner.version
    with monkeypatch.context() as m:  # the learner as the release before this one had it
        m.setattr(SignalLearner, "version", current - 1)
        save_state(new_state({"signals": SignalLearner()}, Settings(pseudonym_salt="x")), path)
    with pytest.raises(ValueError, match=rf"saved by signals@{current - 1}, this is signals@"):
        load_state(path, LEARNERS)
    save_state(new_state({"signals": SignalLearner()}, Settings(pseudonym_salt="x")), path)
    assert load_state(path, LEARNERS).learner_versions == {"signals": current}


def test_a_fading_signal_is_retracted(records: Path, store: GraphStore) -> None:
    """After the records, the same population again (new pseudonyms, later dates), then twice
    more without the statin users' raised AST: ADWIN sees the rate drop and retires it."""
    events, _ = read_events(records, store, "fade")
    learner = SignalLearner(CONFIG)
    for event in events:
        learner.learn_event(event)
    assert learner.flush(store).proposed >= 3
    edge = store.get_edge(next(s.edge_id for s in learner.signals() if s.drug == ATORVASTATIN))
    assert edge.object == AST_HIGH and edge.status == Status.PROPOSED
    users = {
        e.patient_id for e in events if e.kind == "medication" and e.item.node_id == ATORVASTATIN
    }
    span = events[-1].time - events[0].time + timedelta(days=120)
    for copy, ast_removed in ((1, False), (2, True), (3, True)):
        for e in events:
            if ast_removed and e.patient_id in users and _event_key(e) == AST_HIGH:
                continue
            learner.learn_event(
                replace(e, time=e.time + copy * span, patient_id=f"{e.patient_id}-{copy}")
            )
        if copy == 1:
            assert (ATORVASTATIN, AST_HIGH) in learner.active
            assert learner.flush(store).retired == 0
    result = learner.flush(store)
    assert result.retired >= 1
    after = store.get_edge(edge.id)
    assert after.status == Status.RETRACTED
    last = store.changes(key=edge.id)[-1]
    assert (last.action, last.actor) == ("set_status", "learner:signal-bcpnn@2")
    assert last.reason.startswith("signal faded: ADWIN saw the share of exposures")
    assert learner.stats(ATORVASTATIN, AST_HIGH).n11 == 0  # its evidence restarts


def _event_key(event: Event) -> str | None:
    if event.kind == "observation":
        return lab_finding_key(event.item, CONFIG.lab_categories)
    return event.item.node_id


def test_cli_learn_list_show_accept_reject(
    records: Path, store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kg.settings import get_settings

    monkeypatch.setenv("EVOCDSS_HOME", str(tmp_path / "cli-home"))
    get_settings.cache_clear()
    app = typer.Typer()
    app.add_typer(learn_cli.app)
    run = CliRunner().invoke
    url = ["--store", store.url]
    try:
        result = run(
            app, ["learn", "--records", str(records), *url, "--washout-days", "0", "--json"]
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["flushed"]["signals"]["proposed"] >= 3
        assert summary["state_path"].startswith(str(tmp_path / "cli-home"))
        listed = json.loads(run(app, ["proposals", "list", *url, "--json"]).stdout)
        assert [e["confidence"] for e in listed] == sorted(
            (e["confidence"] for e in listed), reverse=True
        )
        first, second = listed[0]["id"], listed[1]["id"]
        shown = json.loads(run(app, ["proposals", "show", first, *url, "--json"]).stdout)
        assert shown["edge"]["id"] == first and shown["history"][0]["action"] == "add_edge"
        ok = run(
            app, ["proposals", "accept", first, "--reason", "seen it", "--actor", "dr-a", *url]
        )
        assert ok.exit_code == 0 and "is now curated" in ok.stdout
        ok = run(app, ["proposals", "reject", second, "--reason", "confounded", *url])
        assert ok.exit_code == 0 and "is now rejected" in ok.stdout
        assert store.changes(key=first)[-1].actor == "dr-a"
        assert store.changes(key=second)[-1].reason == "confounded"
        assert store.changes(key=second)[-1].actor  # the OS user
        again = run(app, ["proposals", "accept", first, "--reason", "twice", *url])
        assert again.exit_code != 0 and isinstance(again.exception, ValueError)
        assert "is curated, not proposed" in str(again.exception)
        missing = run(app, ["proposals", "reject", second, *url])  # no --reason
        assert missing.exit_code == 2
        assert run(app, ["proposals", "list", "--limit", "0", *url]).exit_code == 2
        for option, value in (("--min-count", "0"), ("--window-days", "-5")):
            bad = run(app, ["learn", "--records", str(records), *url, option, value])
            assert bad.exit_code == 2 and option in bad.output
        human = run(app, ["proposals", "list", "--status", "curated", *url])
        assert human.exit_code == 0 and first in human.stdout
    finally:
        get_settings.cache_clear()


def test_signal_thresholds_are_checked() -> None:
    for given, message in (
        ({"min_count": 0}, "min_count must be at least 1"),
        ({"window_days": 0.5}, r"window_days \(0.5\) must be above min_lag_days \(1.0\)"),
        ({"washout_days": -1}, "washout_days must be at least 0"),
    ):
        with pytest.raises(ValueError, match=message):
            SignalConfig(**given)


def test_eval_learners(records: Path, store: GraphStore, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("learners")(learn_cli.eval_learners)
    app.command("other")(lambda: None)  # two commands, so "learners" stays a sub-command
    out = tmp_path / "report"
    out.mkdir()
    args = ["learners", "--records", str(records), "--store", store.url, "--out", str(out)]
    cli = CliRunner().invoke(app, [*args, "--washout-days", "0", "--json"])
    assert cli.exit_code == 0, cli.output
    result = json.loads(cli.stdout)
    report = result["learners"]["signal-bcpnn@2"]
    assert report["exposures_scored"] > 100 and report["pairs_scored"] > 1_000
    assert 0 < report["log_loss"]["learner"] < 0.5 and 0 < report["log_loss"]["baseline"] < 0.5
    assert 0.5 < report["auc"]["learner"] <= 1
    assert result["learners"]["alert-override@1"] == {
        "records": 0,
        "note": "no feedback records given",
    }
    assert (out / "learners.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "learners.json").read_text()) == result
