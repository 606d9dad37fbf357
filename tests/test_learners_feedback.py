"""Alert feedback: the override model, card tiers and its prequential evaluation, on the
problems the real medication check finds."""

from __future__ import annotations

import json
import pickle
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kg.settings import Settings
from kg.store import GraphStore
from learners.evaluate import alert_prequential, read_feedback
from learners.feedback import (
    TIERS,
    FeedbackRecord,
    OverrideModel,
    load_model,
    prioritise,
    save_model,
    train_from,
)
from reasoner.engine import Reasoner

T0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def problems(built_kg: GraphStore, settings: Settings) -> list:
    """Warfarin, ibuprofen, aspirin, simvastatin and clarithromycin with an ibuprofen allergy:
    contraindicated, avoid and precaution problems."""
    meds = ["warfarin", "ibuprofen", "aspirin", "simvastatin", "clarithromycin"]
    payload = {
        "id": "q",
        "patient": {
            "medications": [{"text": m} for m in meds],
            "allergies": [{"text": "ibuprofen"}],
        },
    }
    found = Reasoner(built_kg, settings).ask("medication-check", payload).problems
    assert {p.severity for p in found} == {"contraindicated", "avoid", "precaution"}
    return found


def feedback(problems: list, outcome, n: int) -> list[FeedbackRecord]:
    """``n`` decisions on the problems in turn; ``outcome(problem, i)`` says which."""
    return [
        FeedbackRecord(
            card_type=p.type,
            severity=p.severity,
            entities=tuple(p.entities),
            outcome=outcome(p, i),
            override_reason="not relevant for this patient"
            if outcome(p, i) == "overridden"
            else "",
            time=T0 + timedelta(minutes=i),
            hook="order-sign",
        )
        for i in range(n)
        for p in [problems[i % len(problems)]]
    ]


def test_contraindicated_is_never_suppressed(problems: list) -> None:
    model = train_from(feedback(problems, lambda p, i: "overridden", 400))
    ranked = prioritise(problems, model, hook="order-sign")
    assert all(p > 0.9 for _, p, _ in ranked)
    for problem, _, tier in ranked:
        expected = "interruptive" if problem.severity == "contraindicated" else "suppressed"
        assert tier == expected, (problem.summary, tier)
    order = [tier for _, _, tier in ranked]
    assert order == sorted(order, key=TIERS.index) and order[:3] == ["interruptive"] * 3


def test_no_suppression_without_enough_feedback(problems: list) -> None:
    untrained = prioritise(problems)
    assert {(p, tier) for _, p, tier in untrained} == {(0.5, "interruptive")}
    assert [p.severity for p, _, _ in untrained][:3] == ["contraindicated"] * 3
    young = train_from(feedback(problems, lambda p, i: "overridden", 20))
    assert young.seen < young.min_records
    ranked = prioritise(problems, young)
    assert max(p for _, p, _ in ranked) > young.passive_at  # the model would demote them...
    assert {tier for _, _, tier in ranked} == {"interruptive"}  # ...but has too few decisions


def test_the_model_learns_which_cards_are_overridden(problems: list) -> None:
    """Precaution-level cards are overridden 8 times in 10, avoid-level ones 2 in 10."""
    rate = {"contraindicated": 1, "avoid": 2, "precaution": 8}

    def outcome(problem, i: int) -> str:
        return "overridden" if (i * 7) % 10 < rate[problem.severity] else "accepted"

    records = feedback(problems, outcome, 700)
    report = alert_prequential(records)
    assert report["records"] == 700
    assert report["log_loss"]["learner"] < report["log_loss"]["baseline"] - 0.1
    assert report["auc"]["learner"] > report["auc"]["baseline"] + 0.2
    model = train_from(records)
    ranked = {p.summary: (q, tier) for p, q, tier in prioritise(problems, model)}
    precaution = [ranked[p.summary] for p in problems if p.severity == "precaution"]
    avoid = [ranked[p.summary] for p in problems if p.severity == "avoid"]
    assert min(q for q, _ in precaution) > 0.65 > 0.35 > max(q for q, _ in avoid)
    assert {t for _, t in precaution} == {"passive"} and {t for _, t in avoid} == {"interruptive"}


def test_feedback_records_files_and_models(problems: list, tmp_path: Path) -> None:
    records = feedback(problems, lambda p, i: "overridden" if i % 2 else "accepted", 40)
    assert [FeedbackRecord.from_dict(r.to_dict()) for r in records] == records
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    assert read_feedback(path) == records
    with pytest.raises(ValueError, match="use accepted or overridden"):
        FeedbackRecord("allergy", "contraindicated", (), "ignored")
    path.write_text(json.dumps(records[0].to_dict()) + "\n" + '{"card_type": "allergy"}\n')
    with pytest.raises(ValueError, match=r"feedback\.jsonl:2: not a feedback record"):
        read_feedback(path)
    model = train_from(records)
    save_model(model, tmp_path / "models" / "alert.pkl")
    loaded = load_model(tmp_path / "models" / "alert.pkl")
    assert isinstance(loaded, OverrideModel) and loaded.seen == 40
    assert [q for _, q, _ in prioritise(problems, loaded)] == [
        q for _, q, _ in prioritise(problems, model)
    ]
    assert load_model(tmp_path / "none.pkl") is None


def test_a_model_saved_by_another_version_is_refused(
    problems: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = feedback(problems, lambda p, i: "overridden" if i % 2 else "accepted", 10)
    path = tmp_path / "alert.pkl"
    save_model(train_from(records), path)
    monkeypatch.setattr(OverrideModel, "version", OverrideModel.version + 1)
    with pytest.raises(ValueError, match=r"holds a alert-override@1 model, not alert-override@2"):
        load_model(path)
    bare = tmp_path / "bare.pkl"  # a pickled model without its version, as format 1 wrote it
    bare.write_bytes(pickle.dumps(train_from(records)))
    with pytest.raises(ValueError, match=r"bare\.pkl is not an alert-override@2 model"):
        load_model(bare)


def test_concurrent_saves_of_one_model_file_do_not_collide(problems: list, tmp_path: Path) -> None:
    """Two servers sharing a home save the model at the same time (a rolling restart)."""
    models = [train_from(feedback(problems, lambda p, i: "overridden", n)) for n in (3, 5)]
    path = tmp_path / "alert.pkl"
    errors: list[BaseException] = []

    def save_many(model: OverrideModel) -> None:
        try:
            for _ in range(150):
                save_model(model, path)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert load_model(path).seen in (3, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["alert.pkl"]
