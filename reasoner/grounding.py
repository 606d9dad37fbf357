"""Optional LLM rephrasing of a composed answer, and the grounding check that guards it.

The deterministic verbaliser writes one sentence per finding, each ending with its marker
``[n]``. An LLM (any LangChain chat model) may rephrase that text. Its output is accepted only
if every sentence carries markers of findings, and every content word of the sentence appears
in those findings' claims (or in a short list of connecting words): the model can reorder,
merge and shorten, but it cannot add a drug, a condition, a number or a recommendation that no
cited finding states. Otherwise the deterministic text stands and the rejection is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kg.vocab import normalize_text
from reasoner.answer import Finding

MARKER = re.compile(r"\[(\d+)\]")
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

#: Words a rephrasing may add without a finding stating them (no negations, no modal verbs:
#: those change what a finding says).
CONNECTIVES = frozenset(
    {
        "a",
        "about",
        "after",
        "again",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "between",
        "both",
        "but",
        "by",
        "clinician",
        "combined",
        "did",
        "do",
        "does",
        "each",
        "either",
        "for",
        "from",
        "further",
        "given",
        "had",
        "has",
        "have",
        "having",
        "here",
        "how",
        "however",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "note",
        "of",
        "on",
        "once",
        "one",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "overall",
        "own",
        "patient",
        "patients",
        "please",
        "same",
        "so",
        "some",
        "such",
        "summary",
        "taken",
        "takes",
        "taking",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "together",
        "too",
        "under",
        "until",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "with",
        "you",
        "your",
    }
)

PROMPT = (
    "Rephrase the following clinical decision-support findings for a clinician, in at most "
    "{n} sentences. Keep every bracketed citation marker like [1] on the sentence that uses "
    "that finding. Do not add any fact, drug, condition, number or advice that the findings "
    "do not state.\n\nFindings:\n{findings}"
)


@dataclass
class GroundingResult:
    """The outcome of checking a rephrased text against the findings it cites."""

    accepted: bool
    text: str
    problems: list[str] = field(default_factory=list)


def verbalise(findings: list[Finding]) -> str:
    """The deterministic text: one sentence per finding, with its marker."""
    return " ".join(f"{f.claim.rstrip('.')} [{i}]." for i, f in enumerate(findings, 1))


def _words(text: str) -> set[str]:
    return set(normalize_text(MARKER.sub(" ", text)).split())


def check_grounding(text: str, findings: list[Finding]) -> GroundingResult:
    """Accept ``text`` only if each sentence is supported by the findings it marks."""
    problems: list[str] = []
    sentences = [s.strip() for s in SENTENCE.split(text) if s.strip()]
    if not sentences:
        problems.append("the rephrased text is empty")
    for sentence in sentences:
        marks = [int(m) for m in MARKER.findall(sentence)]
        if not marks:
            problems.append(f"no citation marker: {sentence!r}")
            continue
        bad = [m for m in marks if not 1 <= m <= len(findings)]
        if bad:
            problems.append(f"marker(s) {bad} cite no finding: {sentence!r}")
            continue
        allowed = set().union(*(_words(findings[m - 1].claim) for m in marks)) | CONNECTIVES
        extra = sorted(w for w in _words(sentence) if w not in allowed)
        if extra:
            problems.append(f"words no cited finding states ({', '.join(extra)}): {sentence!r}")
    return GroundingResult(accepted=not problems, text=text, problems=problems)


def rephrase(llm: Any, findings: list[Finding]) -> GroundingResult:
    """Ask ``llm`` (a LangChain chat model) to rephrase the findings; check its output.

    Returns the LLM text when grounded, else the deterministic text with the problems found.
    """
    from langchain_core.messages import HumanMessage

    if not findings:
        return GroundingResult(accepted=True, text="")
    listing = "\n".join(f"[{i}] {f.claim}" for i, f in enumerate(findings, 1))
    prompt = PROMPT.format(n=max(1, len(findings)), findings=listing)
    reply = llm.invoke([HumanMessage(prompt)])
    text = reply.content if isinstance(reply.content, str) else str(reply.content)
    result = check_grounding(text.strip(), findings)
    if result.accepted:
        return result
    return GroundingResult(accepted=False, text=verbalise(findings), problems=result.problems)
