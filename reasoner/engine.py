"""The reasoner's front door: ``Reasoner.ask(kind, payload)`` validates the payload, runs the
kind's plan over the KG and returns a cited ``Answer``; an optional LLM may rephrase it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ingest.linking import EntityLinker
from kg.settings import Settings, get_settings
from kg.store import GraphStore
from reasoner.answer import Answer
from reasoner.explain import ExplainQuery, explain
from reasoner.inputs import Query
from reasoner.medication import MedicationCheck


@dataclass
class Reasoner:
    """Answers queries of every kind over one store (caches are per KG version)."""

    store: GraphStore
    settings: Settings = field(default_factory=get_settings)
    llm: Any = None
    """Optional LangChain chat model: it may only rephrase the composed answer (grounded)."""

    def __post_init__(self) -> None:
        self.linker = EntityLinker(self.store, self.settings)
        self._kinds: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "medication-check": self.medication_check,
            "explain": self.explain,
            "trial-match": self.trial_match,
            "diagnosis": self.diagnosis,
        }

    @property
    def kinds(self) -> list[str]:
        return list(self._kinds)

    def ask(self, kind: str, payload: dict[str, Any]) -> Answer:
        """Answer one query; raises ``ValueError`` (incl. pydantic's) for a bad kind or payload."""
        if kind not in self._kinds:
            raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(self._kinds)}")
        answer = self._kinds[kind](payload)
        if self.llm is not None:
            answer = self._rephrase(answer)
        return answer

    def medication_check(self, payload: dict[str, Any]) -> Answer:
        return MedicationCheck(self.linker).run(Query.model_validate(payload))

    def explain(self, payload: dict[str, Any]) -> Answer:
        return explain(self.store, ExplainQuery.model_validate(payload))

    def diagnosis(self, payload: dict[str, Any]) -> Answer:
        from reasoner.differential import DiagnosisQuery, diagnosis

        return diagnosis(self.store, DiagnosisQuery.model_validate(payload))

    def trial_match(self, payload: dict[str, Any]) -> Answer:
        from reasoner.trials import trial_match

        return trial_match(self, payload)

    def _rephrase(self, answer: Answer) -> Answer:
        from reasoner.grounding import key_points, rephrase

        findings = [f for s in answer.steps for f in s.findings]
        result = rephrase(self.llm, findings, key_points(answer, findings))
        llm_name = getattr(self.llm, "model_name", None) or type(self.llm).__name__
        generated = answer.generated_by.model_copy(update={"llm": llm_name})
        if result.accepted:
            return answer.model_copy(update={"answer": result.text, "generated_by": generated})
        note = "LLM rephrasing rejected by the grounding check: " + "; ".join(result.problems)
        return answer.model_copy(
            update={
                "generated_by": generated.model_copy(
                    update={"label": f"{generated.label} ({note[:300]})"}
                )
            }
        )
