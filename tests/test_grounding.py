"""The optional LLM may only rephrase cited findings: LangChain fake chat models as the LLM."""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from reasoner.answer import Finding
from reasoner.grounding import check_grounding, rephrase, verbalise

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
