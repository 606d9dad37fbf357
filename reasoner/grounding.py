"""Optional LLM rephrasing of a composed answer, and the grounding check that guards it.

The deterministic verbaliser writes one sentence per finding, each ending with its marker
``[n]``. An LLM (any LangChain chat model) may rephrase that text. Its output is accepted only
if every sentence carries markers of findings (a sentence without one belongs to the next marked
sentence), every content word of the sentence (compared as a simple stem) appears in those
findings' claims or in a short list of connecting words, every relation the sentence states (a
membership, an interaction, a severity) holds with its neighbouring words in one clause of a cited
claim, and every key point of the answer (e.g. each problem's drugs and severity) is still stated
in a sentence citing its finding: the model can reorder, merge and shorten, but it cannot add,
misattach or drop what the answer says. Otherwise the deterministic text stands and the rejection
is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kg.vocab import normalize_text
from reasoner.answer import Answer, Finding
from reasoner.tools import SEVERITIES

MARKER = re.compile(r"\[(\d+)\]")
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
CLAUSE = re.compile(r"[.;!?](?=\s|$)")
SUFFIXES = ("ions", "ion", "ing", "ed", "s", "e")

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


def stem(word: str) -> str:
    """A simple stem: endings stripped while three letters remain ('interacts' -> 'interact')."""
    while True:
        cut = next((word[: -len(x)] for x in SUFFIXES if word.endswith(x)), word)
        if cut == word or len(cut) < 3:
            return word
        word = cut


#: Words that relate their neighbours: a rephrasing must keep them together as a claim does.
RELATIONS = frozenset(stem(w) for w in ("member", "interact", *SEVERITIES))


@dataclass(frozen=True)
class KeyPoint:
    """What a rephrasing must keep: the words of ``text`` that finding ``finding`` (1-based)
    states, in one sentence citing it; without a finding, the words any finding states."""

    text: str
    finding: int | None = None


def key_points(answer: Answer, findings: list[Finding]) -> list[KeyPoint]:
    """Each problem of ``answer`` (its drugs and severity, as its finding states them), or for an
    answer without problems what its composed text says."""
    problems = getattr(answer, "problems", None)
    if not problems:
        return [KeyPoint(answer.answer)]
    cites = [f.citations for f in findings]
    return [
        KeyPoint(p.summary, cites.index(p.citations) + 1 if p.citations in cites else None)
        for p in problems
    ]


def _content(text: str) -> list[str]:
    """The stems of the words of ``text`` in order, without markers and connecting words."""
    words = normalize_text(MARKER.sub(" ", text)).split()
    return [stem(w) for w in words if w not in CONNECTIVES]


def _clauses(text: str) -> list[list[str]]:
    return [c for c in map(_content, CLAUSE.split(MARKER.sub(" ", text))) if c]


def _sentences(text: str) -> list[str]:
    """The sentences of ``text``; one without a marker belongs to the next marked one."""
    out: list[str] = []
    pending = ""
    for part in SENTENCE.split(text):
        pending = f"{pending} {part.strip()}".strip()
        if MARKER.search(part):
            out.append(pending)
            pending = ""
    return [*out, pending] if pending else out


def _misrelated(sentence: str, cited: list[Finding]) -> list[str]:
    """The relations of ``sentence`` (a relation word and its neighbours) no cited clause states."""
    claimed = [set(c) for f in cited for c in _clauses(f.claim)]
    bad = []
    for clause in _clauses(sentence):
        for i, word in enumerate(clause):
            near = clause[max(i - 1, 0) : i + 2]
            if word in RELATIONS and not any(set(near) <= c for c in claimed):
                bad.append(" ".join(near))
    return bad


def _sentence_problems(sentence: str, marks: list[int], findings: list[Finding]) -> list[str]:
    """Why ``sentence``, citing findings ``marks``, is not grounded (empty when it is)."""
    if not marks:
        return [f"no citation marker: {sentence!r}"]
    bad = [m for m in marks if not 1 <= m <= len(findings)]
    if bad:
        return [f"marker(s) {bad} cite no finding: {sentence!r}"]
    cited = [findings[m - 1] for m in marks]
    allowed = {w for f in cited for w in _content(f.claim)}
    problems = []
    extra = sorted({w for w in _content(sentence) if w not in allowed})
    if extra:
        problems.append(f"words no cited finding states ({', '.join(extra)}): {sentence!r}")
    wrong = _misrelated(sentence, cited)
    if wrong:
        problems.append(f"relations no cited finding states ({'; '.join(wrong)}): {sentence!r}")
    return problems


def _dropped(point: KeyPoint, marked: list[tuple[str, list[int]]], findings: list[Finding]) -> str:
    """The words of ``point`` the text no longer states (empty when it still does)."""
    if point.finding is None:
        source = " ".join(f.claim for f in findings)
        scopes = [" ".join(s for s, _ in marked)]
    else:
        source = findings[point.finding - 1].claim
        scopes = [s for s, marks in marked if point.finding in marks]
    wanted = set(_content(point.text)) & set(_content(source))
    missing = min((wanted - set(_content(s)) for s in scopes), key=len, default=wanted)
    return ", ".join(sorted(missing))


def check_grounding(
    text: str, findings: list[Finding], points: list[KeyPoint] | None = None
) -> GroundingResult:
    """Accept ``text`` only if each sentence is supported by the findings it marks and it still
    states every key point."""
    problems: list[str] = []
    marked = [(s, [int(m) for m in MARKER.findall(s)]) for s in _sentences(text)]
    if not marked:
        problems.append("the rephrased text is empty")
    for sentence, marks in marked:
        problems += _sentence_problems(sentence, marks, findings)
    for point in points or []:
        missing = _dropped(point, marked, findings)
        if missing:
            where = f" with marker [{point.finding}]" if point.finding else ""
            problems.append(f"no longer states ({missing}) of {point.text!r}{where}")
    return GroundingResult(accepted=not problems, text=text, problems=problems)


def rephrase(
    llm: Any, findings: list[Finding], points: list[KeyPoint] | None = None
) -> GroundingResult:
    """Ask ``llm`` (a LangChain chat model) to rephrase the findings; check its output, which
    must also keep the key ``points``.

    Returns the LLM text when grounded, else the deterministic text with the problems found.
    """
    from langchain_core.messages import HumanMessage

    if not findings:
        return GroundingResult(accepted=True, text="")
    listing = "\n".join(f"[{i}] {f.claim}" for i, f in enumerate(findings, 1))
    prompt = PROMPT.format(n=max(1, len(findings)), findings=listing)
    reply = llm.invoke([HumanMessage(prompt)])
    text = reply.content if isinstance(reply.content, str) else str(reply.content)
    result = check_grounding(text.strip(), findings, points)
    if result.accepted:
        return result
    return GroundingResult(accepted=False, text=verbalise(findings), problems=result.problems)
