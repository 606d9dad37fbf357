"""The optional LLM may only rephrase cited findings: LangChain fake chat models as the LLM."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from kg.settings import Settings
from kg.store import GraphStore
from reasoner.answer import Answer, Finding
from reasoner.engine import Reasoner
from reasoner.grounding import check_grounding, rephrase, verbalise

THREE = {
    "id": "q",
    "patient": {"medications": [{"text": "warfarin"}, {"text": "aspirin"}, {"text": "ibuprofen"}]},
}

FINDINGS = [
    Finding(claim="Ibuprofen is a member of NSAIDs", citations=["kg:E1"]),
    Finding(
        claim="NSAIDs interact with oral anticoagulants: avoid (increased bleeding risk)",
        citations=["kg:E2"],
    ),
    Finding(claim="Warfarin is a member of oral anticoagulants", citations=["kg:E3"]),
]


def test_the_deterministic_text_marks_every_finding_and_passes_the_check() -> None:
    text = verbalise(FINDINGS)
    assert text.count("[") == 3 and text.endswith("[3].")
    assert check_grounding(text, FINDINGS).accepted


def test_a_faithful_rephrasing_is_accepted() -> None:
    llm = FakeListChatModel(
        responses=[
            "Ibuprofen and warfarin: NSAIDs interact with oral anticoagulants, avoid "
            "(increased bleeding risk) [1][2][3]."
        ]
    )
    result = rephrase(llm, FINDINGS)
    assert result.accepted, result.problems
    assert result.text.startswith("Ibuprofen and warfarin")


def test_an_invented_claim_is_rejected_and_the_deterministic_text_stands() -> None:
    llm = FakeListChatModel(
        responses=[
            "Ibuprofen is a member of NSAIDs [1]. Warfarin also causes liver failure, so stop "
            "it today [3]."
        ]
    )
    result = rephrase(llm, FINDINGS)
    assert not result.accepted
    assert any("liver" in p and "stop" in p for p in result.problems)
    assert result.text == verbalise(FINDINGS)


def test_negations_and_unmarked_sentences_are_rejected() -> None:
    negated = check_grounding("NSAIDs do not interact with oral anticoagulants [2].", FINDINGS)
    assert not negated.accepted and "not" in negated.problems[0]
    unmarked = check_grounding("Ibuprofen is a member of NSAIDs.", FINDINGS)
    assert not unmarked.accepted and "no citation marker" in unmarked.problems[0]
    dangling = check_grounding("Ibuprofen is a member of NSAIDs [7].", FINDINGS)
    assert not dangling.accepted and "cite no finding" in dangling.problems[0]


@pytest.fixture(scope="module")
def composed(built_kg: GraphStore, settings: Settings) -> Answer:
    """The deterministic medication check of warfarin, aspirin and ibuprofen on the real KG."""
    return Reasoner(built_kg, settings).ask("medication-check", THREE)


def findings_of(answer: Answer) -> list[Finding]:
    return [f for s in answer.steps for f in s.findings]


def mark(answer: Answer, claim_start: str) -> str:
    """The marker ``[n]`` of the finding whose claim starts with ``claim_start``."""
    claims = [f.claim for f in findings_of(answer)]
    return f"[{next(i for i, c in enumerate(claims, 1) if c.startswith(claim_start))}]"


def ask_with(built_kg: GraphStore, settings: Settings, reply: str, kind: str, payload: dict):
    llm = FakeListChatModel(responses=[reply])
    return Reasoner(built_kg, settings, llm=llm).ask(kind, payload)


def test_the_verbaliser_s_own_text_of_a_real_answer_passes_the_check(composed: Answer) -> None:
    findings = findings_of(composed)
    assert check_grounding(verbalise(findings), findings).accepted


def test_a_faithful_rephrasing_in_other_word_forms_replaces_the_answer(
    built_kg: GraphStore, settings: Settings, composed: Answer
) -> None:
    wa, wi = mark(composed, "Warfarin + Aspirin"), mark(composed, "Warfarin + Ibuprofen")
    ai = mark(composed, "Aspirin + Ibuprofen")
    assert check_grounding(f"Aspirin and NSAIDs interact {ai}.", findings_of(composed)).accepted
    reply = (
        f"Warfarin and aspirin are contraindicated together {wa}. Warfarin + Ibuprofen: avoid "
        f"{wi}. Aspirin and NSAIDs interact; Aspirin + Ibuprofen: avoid {ai}."
    )
    answer = ask_with(built_kg, settings, reply, "medication-check", THREE)
    assert answer.answer == reply, answer.generated_by.label


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("Medication 1 is Warfarin [1]. Medication 2 is Aspirin [2].", "no longer states"),
        (
            "Warfarin + Aspirin: avoid {wa}{wi}.",
            "relations no cited finding states (aspirin avoid)",
        ),
        (
            "Aspirin is a member of oral anticoagulants {wa}.",
            "relations no cited finding states (aspirin member oral)",
        ),
    ],
)
def test_a_rephrasing_that_drops_downgrades_or_invents_a_relation_is_rejected(
    built_kg: GraphStore, settings: Settings, composed: Answer, reply: str, problem: str
) -> None:
    marks = {
        "wa": mark(composed, "Warfarin + Aspirin"),
        "wi": mark(composed, "Warfarin + Ibuprofen"),
    }
    answer = ask_with(built_kg, settings, reply.format(**marks), "medication-check", THREE)
    assert answer.answer == composed.answer
    assert problem in answer.generated_by.label


def test_an_explanation_that_drops_the_best_path_is_rejected(
    built_kg: GraphStore, settings: Settings
) -> None:
    payload = {"id": "e", "entities": ["ANSM:ibuprofene", "ANSM:warfarine"]}
    composed = Reasoner(built_kg, settings).ask("explain", payload)
    reply = "Ibuprofen is a member of NSAIDs (ANSM:anti-inflammatoires-non-steroidiens) [1]."
    answer = ask_with(built_kg, settings, reply, "explain", payload)
    assert answer.answer == composed.answer
    assert (
        "no longer states" in answer.generated_by.label and "warfarin" in answer.generated_by.label
    )
