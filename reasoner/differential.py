"""The ``diagnosis`` query kind: a cited differential diagnosis and the next questions to ask.

The plan has four sub-questions, each answered by a tool over the KG's HPO knowledge:

1. Which of the patient's phenotypes does the KG know? (``resolve_phenotypes``)
2. Which diseases best explain them? (``rank_diseases``: ``reasoner.diagnosis.diagnose``)
3. What argues against the leading candidates? (``contradicting_findings``)
4. Which findings would best separate the leaders? (``next_questions``)

Every finding cites the patient facts, the ``has_phenotype`` edges and the ranking model's
output it rests on; the answer text is composed from the findings only.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from kg.store import GraphStore
from reasoner.answer import Answer, Card, CardSource, Evidence, Finding, ModelInfo, Step
from reasoner.diagnosis import MODEL_NAME, MODEL_VERSION, DiagnosisIndex, diagnose
from reasoner.inputs import Query

HPO_ID = re.compile(r"^HP:\d{7}$")
SEXES = {"male": "MALE", "female": "FEMALE"}
CARD_SOURCE = CardSource(
    label="evocdss phenotype ranking over the Human Phenotype Ontology annotations",
    url="https://hpo.jax.org/",
)


class DiagnosisQuery(Query):
    """A patient's observed and excluded HPO terms (``patient.phenotypes`` and
    ``patient.excluded_phenotypes``), optionally ``sex``; how many candidates and questions."""

    top: int = Field(default=10, ge=1, le=50)
    next_questions: int = Field(default=5, ge=0, le=20)

    @field_validator("patient")
    @classmethod
    def _hpo_terms(cls, patient: Any) -> Any:
        for key in ("phenotypes", "excluded_phenotypes"):
            for i, term in enumerate(getattr(patient, key)):
                if not HPO_ID.match(term):
                    raise ValueError(f"patient.{key}[{i}]: {term!r} is not an HPO id (HP:0000000)")
        if not patient.phenotypes:
            raise ValueError("patient.phenotypes: give at least one observed HPO term")
        return patient


class PhenotypeMatch(BaseModel):
    """How a patient term bears on a candidate disease (through which annotation)."""

    phenotype: str
    name: str
    match: str = Field(
        description="exact | implied | subsumed | related | excluded_in_disease | "
        "absent_in_patient | inheritance_vs_sex (the annotation is the disease's X-linked "
        "recessive or Y-linked inheritance; the patient is female)"
    )
    annotation: str
    annotation_name: str
    frequency: float
    frequency_raw: str = ""
    log_lr: float
    edges: list[str]
    lent_by: str | None = Field(
        default=None,
        description="The disease whose annotation is lent to the candidate: the Orphanet entry "
        "of the same name (its edges then include the same_as edge) or of the same gene, an "
        "allelic OMIM disorder of the same gene (its edges then include the two gene edges), or "
        "an OMIM disease of the same numbered series (its edges then include the similar_to "
        "edge).",
    )
    shared_ancestor: str | None = None
    shared_ancestor_name: str | None = None
    citations: list[str]


class Unexplained(BaseModel):
    phenotype: str
    name: str
    citations: list[str]


class Candidate(BaseModel):
    rank: int
    disease: str
    name: str
    score: float
    posterior: float = Field(description="Share of the posterior among all ranked diseases.")
    score_parts: dict[str, float]
    supporting: list[PhenotypeMatch]
    contradicting: list[PhenotypeMatch]
    unexplained: list[Unexplained]
    citations: list[str]


class NextQuestion(BaseModel):
    phenotype: str
    name: str
    expected_information_gain: float
    probability_present: float
    why: str
    citations: list[str]


class DiagnosisAnswer(Answer):
    differential: list[Candidate] = Field(default_factory=list)
    next_questions: list[NextQuestion] = Field(default_factory=list)
    unknown_phenotypes: list[str] = Field(default_factory=list)


def diagnosis(store: GraphStore, query: DiagnosisQuery) -> DiagnosisAnswer:
    """Answer a diagnosis query over ``store`` (its index is cached per KG version)."""
    index = DiagnosisIndex.from_store(store)
    evidence = Evidence(store)
    patient = query.patient
    raw = {
        "phenotypes": patient.phenotypes,
        "excluded_phenotypes": patient.excluded_phenotypes,
        "sex": SEXES.get((patient.sex or "").lower(), ""),
    }
    result = diagnose(index, raw, evidence, query.top, query.next_questions)
    differential = [Candidate.model_validate(c) for c in result["differential"]]
    questions = [NextQuestion.model_validate(q) for q in result["next_questions"]]
    steps = [
        _resolve_step(index, patient.phenotypes, result["unknown_phenotypes"], evidence),
        _rank_step(differential, len(index.diseases)),
        _against_step(differential),
        _questions_step(questions),
    ]
    return DiagnosisAnswer(
        id=query.id,
        kind="diagnosis",
        answer=_text(differential, questions, result["unknown_phenotypes"]),
        cards=_cards(differential, questions),
        steps=steps,
        citations=evidence.refs,
        kg_version=index.version,
        models=[ModelInfo(name=MODEL_NAME, version=MODEL_VERSION)],
        differential=differential,
        next_questions=questions,
        unknown_phenotypes=result["unknown_phenotypes"],
    )


def _resolve_step(
    index: DiagnosisIndex, terms: list[str], unknown: list[str], evidence: Evidence
) -> Step:
    step = Step(
        question="Which of the patient's phenotypes does the KG know?",
        tool="resolve_phenotypes",
        inputs={"phenotypes": terms},
    )
    for i, term in enumerate(terms):
        t = index.resolve(term)
        name = index.term_names[t] if t is not None else ""
        fact = evidence.patient(f"phenotypes[{i}]", name or term, term)
        if t is None:
            claim = f"{term} is not a term of the KG's HPO release: it is not used."
        elif index.terms[t] != term:
            claim = f"{term} is an old id of {index.terms[t]} {name}."
        else:
            claim = f"The patient has {name} ({term})."
        step.findings.append(Finding(claim=claim, citations=[fact]))
    step.conclusion = f"{len(terms) - len(unknown)} of {len(terms)} phenotypes are known."
    return step


def _rank_step(differential: list[Candidate], ranked: int) -> Step:
    step = Step(
        question="Which diseases best explain the phenotypes?",
        tool="rank_diseases",
        inputs={"model": f"{MODEL_NAME}@{MODEL_VERSION}", "ranked_diseases": ranked},
    )
    for c in differential:
        names = ", ".join(m.name for m in c.supporting[:3])
        more = f" and {len(c.supporting) - 3} more" if len(c.supporting) > 3 else ""
        claim = (
            f"{c.name} ({c.disease}) ranks {c.rank} (posterior {c.posterior:.3f}): "
            f"it explains {len(c.supporting)} of the patient's findings"
            + (f" ({names}{more})" if names else "")
            + "."
        )
        cites = c.citations + [k for m in c.supporting for k in m.citations]
        step.findings.append(Finding(claim=claim, citations=list(dict.fromkeys(cites))))
    step.conclusion = (
        f"Leading candidate: {differential[0].name} ({differential[0].disease})."
        if differential
        else "No disease is annotated with these phenotypes."
    )
    return step


def _against_step(differential: list[Candidate]) -> Step:
    step = Step(
        question="What argues against the leading candidates?",
        tool="contradicting_findings",
        inputs={"candidates": [c.disease for c in differential]},
    )
    for c in differential:
        for m in c.contradicting:
            if m.match == "absent_in_patient":
                claim = (
                    f"{m.name} is absent in the patient but seen in {m.frequency:.0%} of "
                    f"{c.name} ({c.disease})."
                )
            elif m.match == "inheritance_vs_sex":
                claim = (
                    f"{c.name} ({c.disease}) has {m.annotation_name.lower()}, and the patient "
                    "is female: it rarely affects females."
                )
            else:
                claim = f"{c.name} ({c.disease}) is known not to show {m.annotation_name}."
            step.findings.append(Finding(claim=claim, citations=m.citations))
    step.conclusion = f"{len(step.findings)} contradicting findings."
    return step


def _questions_step(questions: list[NextQuestion]) -> Step:
    step = Step(
        question="Which findings would best separate the leading candidates?",
        tool="next_questions",
        inputs={"criterion": "expected information gain over the leaders' posterior"},
    )
    for q in questions:
        claim = f"Ask about {q.name} ({q.phenotype}): {q.why}"
        step.findings.append(Finding(claim=claim, citations=q.citations))
    step.conclusion = (
        f"Ask first about {questions[0].name}." if questions else "No question separates them."
    )
    return step


def _text(differential: list[Candidate], questions: list[NextQuestion], unknown: list) -> str:
    if not differential:
        return "No disease in the KG is annotated with these phenotypes."
    lead = "; ".join(f"{c.name} ({c.disease}, {c.posterior:.0%})" for c in differential[:3])
    parts = [f"Leading candidates: {lead}."]
    if questions:
        parts.append("Next to ask: " + ", ".join(q.name for q in questions[:3]) + ".")
    if unknown:
        parts.append(f"Not used (unknown to the KG): {', '.join(unknown)}.")
    return " ".join(parts)


def _cards(differential: list[Candidate], questions: list[NextQuestion]) -> list[Card]:
    if not differential:
        return []
    lead = differential[0]
    detail = "\n".join(
        f"{c.rank}. {c.name} ({c.disease}), posterior {c.posterior:.2f}; "
        f"explains {len(c.supporting)} finding(s)"
        for c in differential[:5]
    )
    cards = [
        Card(
            summary=_clip(f"Consider {lead.name} ({lead.disease})"),
            indicator="info",
            detail=detail + "\n\nMachine-generated ranking; confirm clinically.",
            source=CARD_SOURCE,
        )
    ]
    if questions:
        cards.append(
            Card(
                summary=_clip("Ask about: " + ", ".join(q.name for q in questions[:3])),
                indicator="info",
                detail="\n".join(f"- {q.name}: {q.why}" for q in questions),
                source=CARD_SOURCE,
            )
        )
    return cards


def _clip(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
