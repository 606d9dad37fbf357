"""The medication check on the real KG: interactions through classes, severities, citations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from kg.settings import Settings
from kg.store import GraphStore
from kg.vocab import THERAPEUTIC_CLASS
from reasoner.engine import Reasoner
from reasoner.medication import MedicationAnswer


@pytest.fixture(scope="module")
def reasoner(built_kg: GraphStore, settings: Settings) -> Reasoner:
    return Reasoner(built_kg, settings)


def check(reasoner: Reasoner, *meds: dict, allergies: tuple[dict, ...] = ()) -> tuple:
    payload = {"id": "q", "patient": {"medications": list(meds), "allergies": list(allergies)}}
    answer = reasoner.ask("medication-check", payload)
    assert isinstance(answer, MedicationAnswer)
    return answer, payload


@pytest.mark.parametrize(
    "meds",
    [
        ({"text": "warfarin"}, {"text": "ibuprofen"}),
        ({"code": "RXNORM:11289"}, {"code": "RXNORM:5640"}),
        ({"code": "RXNORM:11289", "text": "Coumadin"}, {"text": "Ibuprofène"}),
    ],
)
def test_warfarin_and_ibuprofen_interact_through_their_classes(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable, meds: tuple
) -> None:
    answer, payload = check(reasoner, *meds)
    (problem,) = answer.problems
    assert (problem.type, problem.severity, problem.inputs) == ("drug-interaction", "avoid", [0, 1])
    assert problem.entities == [
        "ANSM:warfarine",
        "ANSM:anticoagulants-oraux",
        "ANSM:anti-inflammatoires-non-steroidiens",
        "ANSM:ibuprofene",
    ]
    edges = [answer.citations[c] for c in problem.citations if c.startswith("kg:")]
    assert [e.edge["predicate"] for e in edges] == [
        "biolink:member_of",
        "biolink:member_of",
        "biolink:interacts_with",
    ]
    assert all(answer.citations[s].id == "src:ansm-thesaurus" for s in edges[-1].sources)
    assert edges[-1].edge["qualifiers"]["severity"] == "avoid"
    assert answer.cards[0].indicator == "warning" and "ANSM" in answer.cards[0].source.label
    assert "member of" in answer.steps[2].findings[0].claim
    assert assert_cited(answer, built_kg, payload) > 5
    assert answer.kg_version == built_kg.version()
    assert "machine-generated" in answer.generated_by.label


def test_the_most_severe_statement_of_a_pair_wins_and_problems_are_ordered(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer, payload = check(
        reasoner, {"text": "ibuprofen"}, {"text": "aspirin"}, {"text": "warfarin"}
    )
    assert [(p.inputs, p.severity) for p in answer.problems] == [
        ([1, 2], "contraindicated"),
        ([0, 1], "avoid"),
        ([0, 2], "avoid"),
    ]
    assert answer.cards[0].indicator == "critical"
    assert all(len(c.summary) <= 140 for c in answer.cards)
    assert_cited(answer, built_kg, payload)


def test_unknown_drugs_and_code_name_conflicts_are_reported_not_dropped(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer, payload = check(
        reasoner,
        {"text": "warfarin"},
        {"text": "zzqxv"},
        {"code": "RXNORM:3002", "text": "alendronate"},
    )
    kinds = {p.type: p for p in answer.problems}
    assert kinds["unknown-drug"].inputs == [1]
    assert kinds["code-name-conflict"].inputs == [2]
    assert "cyclophosphamide" in kinds["code-name-conflict"].summary.lower()
    assert answer.answer.startswith("1 problem(s) in 3 medication(s): ")
    assert answer.answer.endswith(
        "a guess. 1 medication(s) could not be checked (unknown to the KG)."
    )
    assert_cited(answer, built_kg, payload)


def test_duplicates_and_allergies(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer, payload = check(
        reasoner,
        {"text": "ibuprofen"},
        {"code": "RXNORM:5640"},
        allergies=({"text": "NSAIDs"},),
    )
    types = [(p.type, p.severity, p.inputs) for p in answer.problems]
    assert ("duplicate-therapy", "precaution", [0, 1]) in types
    assert ("allergy", "contraindicated", [0]) in types and (
        "allergy",
        "contraindicated",
        [1],
    ) in types
    assert types[0][1] == "contraindicated"
    assert_cited(answer, built_kg, payload)


def test_bad_payloads_raise_validation_errors(reasoner: Reasoner) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="give a code"):
        reasoner.ask("medication-check", {"id": "x", "patient": {"medications": [{}]}})
    with pytest.raises(ValueError, match="unknown kind"):
        reasoner.ask("horoscope", {"id": "x"})


def test_combination_products_are_checked_per_ingredient(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer, payload = check(
        reasoner, {"text": "sulfamethoxazole + trimethoprim"}, {"text": "methotrexate"}
    )
    top = answer.problems[0]
    assert (top.severity, top.inputs) == ("contraindicated", [0, 1])
    assert top.entities == ["ANSM:trimethoprime", "ANSM:methotrexate"]
    edges = [answer.citations[c].edge for c in top.citations if c.startswith("kg:")]
    assert {
        "subject": "ANSM:trimethoprime",
        "predicate": "biolink:member_of",
        "object": "ANSM:sulfamethoxazole-trimethoprime",
    }.items() <= edges[0].items()
    assert_cited(answer, built_kg, payload)
    for allergy in ({"text": "trimethoprim"}, {"code": "ANSM:sulfamides-antibacteriens"}):
        answer, payload = check(reasoner, {"text": "co-trimoxazole"}, allergies=(allergy,))
        assert [(p.type, p.inputs) for p in answer.problems] == [("allergy", [0])]
        assert_cited(answer, built_kg, payload)


def test_the_same_drug_twice_is_a_duplicate_not_an_interaction(reasoner: Reasoner) -> None:
    answer, _ = check(reasoner, {"text": "warfarin"}, {"text": "Coumadin"})
    assert [(p.type, p.inputs) for p in answer.problems] == [("duplicate-therapy", [0, 1])]
    assert answer.answer.endswith("duplicate therapy.") and ".." not in answer.answer


def test_two_substances_of_one_therapeutic_class_are_duplicate_therapy(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    statins = "ANSM:inhibiteurs-de-l-hmg-coa-reductase-statines"
    answer, payload = check(reasoner, {"text": "atorvastatin"}, {"text": "simvastatin"})
    (problem,) = answer.problems
    assert (problem.type, problem.severity, problem.inputs) == (
        "duplicate-therapy",
        "precaution",
        [0, 1],
    )
    assert problem.entities[0] == statins and problem.summary == (
        "Medications 1 (Atorvastatin) and 2 (Simvastatin) are both statins: duplicate therapy."
    )
    cited = [answer.citations[k].edge for k in problem.citations if answer.citations[k].edge]
    assert {(e["predicate"], e["object"]) for e in cited} >= {
        ("biolink:member_of", statins),
        ("biolink:subclass_of", THERAPEUTIC_CLASS),
    }
    assert_cited(answer, built_kg, payload)
    answer, _ = check(
        reasoner, {"text": "omeprazole"}, {"text": "pantoprazole"}, {"text": "esomeprazole"}
    )
    assert [(p.type, p.inputs) for p in answer.problems] == [("duplicate-therapy", [0, 1, 2])]
    # ANSM states "NSAIDs + other NSAIDs" itself: the interaction, not also a duplicate
    answer, _ = check(reasoner, {"text": "ibuprofen"}, {"text": "naproxen"})
    assert [p.type for p in answer.problems] == ["drug-interaction"]
    answer, _ = check(reasoner, *[{"text": "atorvastatin"}] * 50)  # one problem, not 1,225 pairs
    assert [(p.type, len(p.inputs)) for p in answer.problems] == [("duplicate-therapy", 50)]


def test_unknown_allergies_are_reported_not_dropped(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer, payload = check(
        reasoner,
        {"text": "warfarin"},
        allergies=({"text": "zzfoo allergen"}, {"code": "RXNORM:3002", "text": "penicillin"}),
    )
    assert [(p.type, p.severity) for p in answer.problems] == [("unknown-allergy", "info")] * 2
    assert answer.answer.endswith("2 allergy(ies) could not be checked (unknown to the KG).")
    assert_cited(answer, built_kg, payload)


def test_proposed_interactions_say_unreviewed_in_the_text(
    reasoner: Reasoner, built_kg: GraphStore
) -> None:
    from kg.model import Citation, Edge

    model = Citation("model:test-proposer@1", "model", "test proposer", version="1")
    edge = Edge(
        "ANSM:paracetamol",
        "biolink:interacts_with",
        "ANSM:amoxicilline",
        (model.id,),
        "proposed",
        0.6,
        qualifiers={"severity": "contraindicated"},
    )
    built_kg.upsert(citations=[model], edges=[edge], actor="test-learner", reason="test")
    try:
        answer, _ = check(reasoner, {"text": "acetaminophen"}, {"text": "amoxicillin"})
    finally:
        built_kg.set_status(edge.id, "rejected", actor="test", reason="test cleanup")
    (problem,) = answer.problems
    assert problem.proposed and problem.summary.startswith("Unreviewed: ")
    assert "contraindicated: Unreviewed: Acetaminophen + Amoxicillin" in answer.answer
    assert answer.cards[0].summary == problem.summary and answer.cards[0].indicator == "info"


def test_a_combination_typed_with_a_slash_links_each_part(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    answer, payload = check(reasoner, {"text": "acetaminophen/oxycodone"}, {"text": "alprazolam"})
    (problem,) = answer.problems
    assert (problem.type, problem.severity, problem.inputs) == (
        "drug-interaction",
        "contraindicated",
        [0, 1],
    )
    assert (problem.entities[0], problem.entities[-1]) == ("ANSM:oxycodone", "ANSM:alprazolam")
    assert answer.answer.startswith("1 problem(s) in 2 medication(s)")
    assert_cited(answer, built_kg, payload)


def test_a_condition_that_is_a_reviewed_adverse_event_of_a_drug_is_a_problem(
    reasoner: Reasoner, built_kg: GraphStore, assert_cited: Callable
) -> None:
    from kg.model import Citation, Edge

    # as the drug-safety signal learner proposes them; a curator accepts the first
    model = Citation("model:test-signals@1", "model", "test signal learner", version="1")
    # the learner's drug is the order's RxNorm code, RXNORM:17767 (same_as ANSM:amlodipine)
    edema = Edge("RXNORM:17767", "biolink:has_adverse_event", "ICD10CM:R60.0", (model.id,))
    cough = Edge("ANSM:lisinopril", "biolink:has_adverse_event", "HP:0012735", (model.id,))
    proposals = [replace(e, status="proposed", confidence=0.4) for e in (edema, cough)]
    built_kg.upsert(citations=[model], edges=proposals, actor="test-learner", reason="signal")
    built_kg.set_status(edema.id, "curated", actor="curator", reason="known effect")
    patient = {
        "medications": [{"text": "amlodipine"}, {"text": "furosemide"}, {"text": "lisinopril"}],
        "conditions": [{"code": "ICD10CM:R60.0", "text": "ankle swelling"}],
        "phenotypes": ["HP:0012735"],
    }
    payload = {"id": "q", "patient": patient}
    try:
        answer = reasoner.ask("medication-check", payload)
        no_condition = {"id": "q", "patient": {**patient, "conditions": []}}
        alone = reasoner.ask("medication-check", no_condition)
    finally:
        for e in (edema, cough):
            built_kg.set_status(e.id, "rejected", actor="test", reason="test cleanup")
    assert isinstance(answer, MedicationAnswer)
    events = [p for p in answer.problems if p.type == "adverse-event"]
    assert [(p.inputs, p.entities, p.proposed) for p in events] == [
        ([0], ["ANSM:amlodipine", "RXNORM:17767", "ICD10CM:R60.0"], False),
        ([2], ["ANSM:lisinopril", "HP:0012735"], True),
    ]
    reviewed, unreviewed = events
    assert "patient:conditions[0]" in reviewed.citations
    cited = [answer.citations[c].edge for c in reviewed.citations if c.startswith("kg:")]
    assert [(e["subject"], e["predicate"]) for e in cited] == [
        ("RXNORM:17767", "biolink:same_as"),
        ("RXNORM:17767", "biolink:has_adverse_event"),
    ]
    assert cited[-1]["id"] == edema.id
    assert reviewed.summary == "Amlodipine may cause or worsen Localized edema"
    assert unreviewed.summary.startswith("Unreviewed: ") and "patient:phenotypes[0]" in (
        unreviewed.citations
    )
    step = answer.steps[-1]
    assert step.tool == "adverse_events" and len(step.findings) == 2
    assert "consider whether the drug causes or worsens it" in step.findings[0].claim
    assert assert_cited(answer, built_kg, payload) > 5
    # without the condition, only the phenotype's (unreviewed) signal remains
    assert [p.entities[1] for p in alone.problems if p.type == "adverse-event"] == ["HP:0012735"]
