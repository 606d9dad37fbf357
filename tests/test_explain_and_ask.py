"""Explain answers, and `evocdss ask` / `evocdss link` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kg import Status, edge_id
from kg.store import GraphStore
from reasoner.engine import Reasoner

MEMBER = {
    "subject": "ANSM:ibuprofene",
    "predicate": "biolink:member_of",
    "object": "ANSM:anti-inflammatoires-non-steroidiens",
}


def test_explaining_an_edge_gives_its_sources_status_and_history(
    built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer = Reasoner(built_kg).ask("explain", {"id": "e1", "edge": MEMBER})
    (step,) = answer.steps
    assert "asserted" in step.findings[0].claim and "ANSM" in step.findings[0].claim
    assert any("evocdss-build add_edge" in f.claim for f in step.findings[1:])
    assert assert_cited(answer, built_kg, {}) >= 2
    missing = Reasoner(built_kg).ask("explain", {"id": "e2", "edge": {**MEMBER, "object": "HP:1"}})
    assert "does not hold" in missing.answer and missing.steps[0].findings == []


def test_explaining_two_entities_finds_the_class_level_path(
    built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer = Reasoner(built_kg).ask(
        "explain", {"id": "e3", "entities": ["ANSM:ibuprofene", "ANSM:warfarine"]}
    )
    assert answer.paths and len(answer.paths[0]) == 3
    first = answer.steps[0].findings[0].claim
    assert "member of" in first and "interacts with" in first
    assert_cited(answer, built_kg, {})


def test_explain_refuses_malformed_input(built_kg: GraphStore) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="either an edge"):
        Reasoner(built_kg).ask("explain", {"id": "x"})
    with pytest.raises(ValidationError, match="malformed CURIE"):
        Reasoner(built_kg).ask("explain", {"id": "x", "entities": ["warfarin", "ANSM:x"]})


def evocdss(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ask_answers_each_line_in_order_and_reports_bad_lines(
    built_kg: GraphStore, tmp_path: Path
) -> None:
    lines = [
        json.dumps(
            {"id": "a", "patient": {"medications": [{"text": "warfarin"}, {"text": "ibuprofen"}]}}
        ),
        "{not json",
        json.dumps({"id": "b", "patient": {"medications": [{"dose": 3}]}}),
        json.dumps({"id": "c", "patient": {"medications": [{"code": "RXNORM:1191"}]}}),
    ]
    out = tmp_path / "answers.jsonl"
    result = evocdss(
        "ask", "medication-check", "--input", "-", "--output", str(out),
        "--store", built_kg.url, stdin="\n".join(lines),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = [json.loads(x) for x in out.read_text().splitlines()]
    assert [a.get("id") for a in answers] == ["a", None, None, "c"]
    assert answers[0]["problems"][0]["severity"] == "avoid"
    assert answers[1]["line"] == 2 and "Expecting" in answers[1]["error"]
    assert answers[2]["line"] == 3 and "dose" in answers[2]["error"]
    assert "2 line(s) had errors" in result.stderr


def test_ask_keeps_one_answer_per_line_for_odd_lines(built_kg: GraphStore, tmp_path: Path) -> None:
    """A line separator inside a JSON string is no line end; a line nested too deep is an error
    for that line only."""
    lines = [
        json.dumps({"id": "a\u2028b", "patient": {"medications": [{"text": "warfarin"}]}}),
        "[" * 100_000,
        json.dumps({"id": "c", "patient": {"medications": [{"text": "aspirin"}]}}),
    ]
    given = tmp_path / "odd.jsonl"
    given.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    args = ("ask", "medication-check", "--input", str(given), "--output", str(out))
    result = evocdss(*args, "--store", built_kg.url)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [a.get("id") for a in answers] == ["a\u2028b", None, "c"]
    assert answers[1]["line"] == 2 and "recursion" in answers[1]["error"]


def test_ask_and_link_refuse_what_they_cannot_do(built_kg: GraphStore) -> None:
    bad_kind = evocdss("ask", "horoscope", "--input", "-", "--store", built_kg.url, stdin="")
    assert bad_kind.returncode == 2 and "unknown kind" in bad_kind.stderr
    missing = evocdss("ask", "explain", "--input", "/no/such.jsonl", "--store", built_kg.url)
    assert missing.returncode == 2 and "no input file" in missing.stderr
    linked = evocdss("link", "Coumadin", "--category", "drug", "--json", "--store", built_kg.url)
    assert json.loads(linked.stdout)["node"]["id"] == "ANSM:warfarine"
    unknown = evocdss("link", "zzqxv", "--no-embeddings", "--store", built_kg.url)
    assert unknown.returncode == 2 and "unknown" in unknown.stderr


def test_a_curator_decision_shows_in_the_explanation(
    built_kg: GraphStore, assert_cited: Callable
) -> None:
    edge = {**MEMBER, "subject": "ANSM:ketoprofene"}
    eid = edge_id(edge["subject"], edge["predicate"], edge["object"])
    built_kg.set_status(eid, Status.CURATED, actor="dr.curator", reason="checked in SmPC 2024")
    answer = Reasoner(built_kg).ask("explain", {"id": "e4", "edge": edge})
    assert "curated" in answer.steps[0].findings[0].claim
    assert (
        "dr.curator set_status -> curated (checked in SmPC 2024)"
        in answer.steps[0].findings[-1].claim
    )
    assert_cited(answer, built_kg, {})
