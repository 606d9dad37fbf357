"""Patient facts from a free-text note: age, sex, conditions, medications and labs, with
negation ("denies smoking") and history ("history of MI") — each fact citing the sentence it
came from (its index in ``note_sentences`` and its text)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ingest.criteria import LABS, NUMBER, UNIT, Lexicon, mark_context, to_canonical
from ingest.patient import (
    Code,
    ConditionItem,
    LinkResult,
    LinkStatus,
    MedicationItem,
    ObservationItem,
    PatientContext,
    Source,
)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])")
NUMBERED = re.compile(r"^\s*\d+\.\s+")
AGE = re.compile(
    r"\b(\d{1,3})[- ](?:years?|yrs?|yo)[- ]?(?:old)?|\baged? (\d{1,3})\b|\b(\d{1,3}) ?y/?o\b|"
    r"\b(\d{1,2})[- ]months?[- ]old\b|\b(\d{1,2})[- ](?:weeks?|days?)[- ]old\b",
    re.I,
)
FEMALE = re.compile(r"\b(woman|female|girl|lady|she|her|mother|pregnant|g\d ?p\d)\b", re.I)
MALE = re.compile(r"\b(man|male|boy|gentleman|he|his|him)\b", re.I)
NO_MEDS = re.compile(
    r"\b(takes|taking|on) no (medications?|drugs)|no (current )?medications?", re.I
)
LAB_VALUE = re.compile(
    rf"^\W{{0,3}}(?:level |count |of |was |is |at |=|:)*\s*{NUMBER}\s*{UNIT}", re.I
)


def note_sentences(text: str) -> list[str]:
    """The note's sentences (a note already numbered "0. ...\\n1. ..." keeps its numbering)."""
    lines = [x for x in text.splitlines() if x.strip()]
    if lines and all(NUMBERED.match(x) for x in lines):
        return [NUMBERED.sub("", x).strip() for x in lines]
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


@dataclass(frozen=True)
class NoteFact:
    """One fact of the note and the sentence it came from."""

    kind: str  # age | sex | condition | drug | lab | no-medications | consent
    text: str
    sentence: int
    sentence_text: str
    value: Any = None
    unit: str = ""
    nodes: tuple[str, ...] = ()
    negated: bool = False
    history: bool = False

    @property
    def path(self) -> str:
        """Where the fact is in the payload (``note_sentences[i]``), for citations."""
        return f"note_sentences[{self.sentence}]"

    def label(self) -> str:
        state = " (negated)" if self.negated else " (history)" if self.history else ""
        value = f" = {self.value}{' ' + self.unit if self.unit else ''}" if self.value else ""
        return f"note sentence {self.sentence}: {self.kind} {self.text!r}{value}{state}"


@dataclass
class NoteFacts:
    """Every fact extracted from one note."""

    sentences: list[str]
    facts: list[NoteFact] = field(default_factory=list)

    def first(self, kind: str) -> NoteFact | None:
        return next((f for f in self.facts if f.kind == kind), None)

    def of_kind(self, *kinds: str) -> list[NoteFact]:
        return [f for f in self.facts if f.kind in kinds]

    def to_patient_context(self, patient_id: str, reference: date) -> PatientContext:
        """The facts as a ``PatientContext`` (negated conditions are ``refuted``, history ones
        ``resolved``; each item's source names its sentence)."""
        age, sex = self.first("age"), self.first("sex")
        ctx = PatientContext(
            patient_id=patient_id,
            age=int(age.value) if age else None,
            sex=sex.value if sex else "unknown",
            reference_date=reference,
        )
        for f in self.facts:
            source = Source("note", patient_id, element=f.path)
            node = f.nodes[0] if f.nodes else None
            link = LinkResult(LinkStatus.LINKED if node else LinkStatus.UNLINKED, node, node)
            status = "refuted" if f.negated else "resolved" if f.history else "active"
            common = {"codes": (), "text": f.text, "link": link, "source": source}
            if f.kind == "condition":
                ctx.conditions.append(ConditionItem(status=status, **common))
            elif f.kind == "drug" and not f.negated:
                ctx.medications.append(MedicationItem(status=status, kind="statement", **common))
            elif f.kind == "lab":
                code = Code("evocdss:lab", f.text, f.text)
                ctx.observations.append(
                    ObservationItem(
                        status="final",
                        category="laboratory",
                        value=f.value,
                        unit=f.unit,
                        **{**common, "codes": (code,)},
                    )
                )
        return ctx


def extract_facts(text: str | list[str], lexicon: Lexicon) -> NoteFacts:
    """Age, sex, conditions, medications and labs of a note, each with its sentence."""
    sentences = text if isinstance(text, list) else note_sentences(text)
    out = NoteFacts(list(sentences))
    female = male = 0
    for i, sentence in enumerate(sentences):

        def add(kind: str, fact_text: str, i: int = i, sentence: str = sentence, **kw: Any) -> None:
            out.facts.append(NoteFact(kind, fact_text, i, sentence, **kw))

        if out.first("age") is None and (m := AGE.search(sentence)):
            years, months = m.group(1) or m.group(2) or m.group(3), m.group(4)
            value = float(years) if years else float(months) / 12 if months else 0.05
            add("age", m.group(0), value=round(value, 2), unit="years")
        female += len(FEMALE.findall(sentence))
        male += len(MALE.findall(sentence))
        if NO_MEDS.search(sentence):
            add("no-medications", NO_MEDS.search(sentence).group(0))  # type: ignore[union-attr]
        if re.search(r"informed consent|comply", sentence, re.I):
            add("consent", sentence)
        for pattern, lab, _unit in LABS:
            for m in pattern.finditer(sentence):
                v = LAB_VALUE.match(sentence[m.end() :])
                if v:
                    number = v.group(1)
                    value = float(number.replace(",", ""))
                    converted = to_canonical(lab, value, v.group(2) or "")
                    if converted is not None:
                        add("lab", lab, value=converted[0], unit=converted[1])
                    break
        for mention in mark_context(sentence, lexicon.find(sentence)):
            add(
                mention.kind,
                mention.text,
                nodes=mention.nodes,
                negated=mention.negated,
                history=mention.history,
            )
    if female or male:
        first = sentences.index(next(s for s in sentences if FEMALE.search(s) or MALE.search(s)))
        out.facts.append(
            NoteFact(
                "sex",
                "female" if female >= male else "male",
                first,
                sentences[first],
                value="female" if female >= male else "male",
            )
        )
    return out
