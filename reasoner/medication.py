"""Medication check: a plan of sub-questions over the KG, each finding cited.

1. Which substances are the listed medications? (entity linking; codes checked against names)
2. Which drug classes do they belong to? (``member_of`` edges)
3. Do any two interact, directly or through their classes? (``interacts_with`` edges)
4. Is a substance listed twice, or two of one therapeutic class? (duplicate therapy)
5. Is the patient allergic to one of them, or to one of their classes?
6. Is one of the patient's conditions or phenotypes a known adverse event of one of them?
   (``has_adverse_event`` edges of the substance or of a code ``same_as`` it, such as the
   RxNorm code the signal learner saw in the orders: drug-safety signals found in patient
   records, once a curator has reviewed them; unreviewed ones are labelled as such)

Problems come most severe first; a medication the KG does not know is reported, never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from itertools import combinations

from pydantic import BaseModel, Field

from ingest.fhir import names_agree
from ingest.linking import EntityLinker, Link
from kg.model import Edge, Node
from kg.vocab import MEMBER_OF, SAME_AS, TRUSTED_STATUSES
from reasoner.answer import Answer, Card, CardSource, Evidence, Finding, Step
from reasoner.inputs import Coded, Query
from reasoner.tools import (
    adverse_events,
    display_name,
    interactions,
    memberships,
    severity_rank,
    therapeutic_classes,
)

LINKER_MODEL = ("evocdss-entity-linker", "1")
INDICATOR = {
    "contraindicated": "critical",
    "avoid": "warning",
    "precaution": "warning",
    "consider": "info",
    "info": "info",
}
#: How a typed name separates the parts of a combination ("oxycodone/acetaminophen").
PARTS_RE = re.compile(r"\s*/\s*|\s+\+\s+")


@dataclass
class Resolved:
    """One listed medication (or allergy) and the KG node it resolved to, if any."""

    index: int
    item: Coded
    fact: str
    node: Node | None = None
    link: Link | None = None
    reason: str = ""
    via: Edge | None = None
    """For an ingredient of a combination product: its ``member_of`` edge to the product."""


class Problem(BaseModel):
    """A problem of the medication list; ``inputs`` are indexes of the medications involved."""

    type: str
    severity: str
    inputs: list[int]
    entities: list[str]
    citations: list[str]
    summary: str
    proposed: bool = False
    detail: str = Field(default="", exclude=True)
    source: str = Field(default="", exclude=True)


class MedicationAnswer(Answer):
    problems: list[Problem] = Field(default_factory=list)


@dataclass
class MedicationCheck:
    """Runs the medication-check plan for one query."""

    linker: EntityLinker
    evidence: Evidence = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.linker.store
        self.evidence = Evidence(self.store)

    def resolve(self, items: list[Coded], path: str) -> list[Resolved]:
        """Link each item to a drug node; a code whose name disagrees with the text is not
        trusted, and neither is a name the KG does not know."""
        out = []
        for i, item in enumerate(items):
            fact = self.evidence.patient(f"{path}[{i}]", item.label(), item.model_dump())
            res = Resolved(i, item, fact)
            link = self.linker.link(item.code, "drug") if item.code else None
            if link is not None and link.known and item.text:
                names = self._names(link)
                if not names_agree(item.text, names):
                    res.reason = (
                        f"code {item.code} names {link.node.name!r}, which disagrees with "
                        f"{item.text!r}: not checked on a guess"
                    )
                    out.append(res)
                    continue
            if (link is None or not link.known) and item.text:
                link = self.linker.link(item.text, "drug")
                parts = [p for p in PARTS_RE.split(item.text) if p]
                if link.method == "embedding" and len(parts) > 1:
                    out += self._link_parts(res, parts)
                    continue
            if link is not None and link.known:
                res.node, res.link = link.node, link
            else:
                res.reason = f"{item.label()!r} is not a drug the KG knows"
            out.append(res)
        return out

    def _link_parts(self, res: Resolved, parts: list[str]) -> list[Resolved]:
        """A combination typed as "a/b" or "a + b": one entry per part when every part is a drug
        the KG knows, else an unknown medication (never the nearest single substance)."""
        links = [self.linker.link(p, "drug") for p in parts]
        if all(lk.known for lk in links):
            return [replace(res, node=lk.node, link=lk) for lk in links]
        res.reason = f"{res.item.label()!r} names {len(parts)} drugs the KG does not all know"
        return [res]

    def _ingredients(self, meds: list[Resolved]) -> list[Resolved]:
        """Each combination product (a drug class named "a + b") replaced by its ingredients,
        the members of its node, each keeping the ``member_of`` edge that makes it one."""
        combos = [m.node.id for m in meds if _is_combination(m.node)]
        edges = self.store.neighbors(
            combos, predicates=[MEMBER_OF], direction="in", statuses=sorted(TRUSTED_STATUSES)
        )
        parts = self.store.get_nodes({e.subject for e in edges})
        out = []
        for m in meds:
            members = [e for e in edges if e.object == m.node.id]
            out += [replace(m, node=parts[e.subject], via=e) for e in members] or [m]
        return out

    def _names(self, link: Link) -> list[str]:
        ids = [link.node.id, *link.equivalents]
        return [x for n in self.store.get_nodes(ids).values() for x in _all_names(n)]

    def _link_cites(self, res: Resolved) -> list[str]:
        link = res.link
        label = f"{res.item.label()!r} -> {link.node.id} ({link.method}, score {link.score:.2f})"
        cites = [res.fact, self.evidence.model(*LINKER_MODEL, label, link.to_dict())]
        return cites + ([self.evidence.edge(res.via)] if res.via else [])

    def run(self, query: Query) -> MedicationAnswer:
        meds = self.resolve(query.patient.medications, "medications")
        allergies = self.resolve(query.patient.allergies, "allergies")
        steps: list[Step] = []
        problems: list[Problem] = []

        # 1. what the medications are
        step = Step(
            question="Which substances are the listed medications?",
            tool="entity_linking",
            inputs={"medications": [i.label() for i in query.patient.medications]},
        )
        for m in meds:
            if m.node is None:
                step.findings.append(
                    Finding(claim=f"Medication {m.index + 1}: {m.reason}.", citations=[m.fact])
                )
                kind = "code-name-conflict" if "disagrees" in m.reason else "unknown-drug"
                problems.append(
                    Problem(
                        type=kind,
                        severity="info",
                        inputs=[m.index],
                        entities=[],
                        citations=[m.fact],
                        summary=m.reason[:140],
                        detail=m.reason,
                    )
                )
            else:
                verb = "contains" if sum(x.index == m.index for x in meds) > 1 else "is"
                step.findings.append(
                    Finding(
                        claim=f"Medication {m.index + 1} ({m.item.label()}) {verb} "
                        f"{display_name(m.node)} ({m.node.id}).",
                        citations=self._link_cites(m),
                    )
                )
        known = self._ingredients([m for m in meds if m.node is not None])
        for m in known:
            if m.via:
                step.findings.append(
                    Finding(
                        claim=f"Medication {m.index + 1} contains {display_name(m.node)} "
                        f"({m.node.id}), a member of {display_name(m.link.node)}.",
                        citations=self._link_cites(m),
                    )
                )
        n_known, n_meds = len({m.index for m in known}), len(query.patient.medications)
        step.conclusion = f"{n_known} of {n_meds} medications are known to the KG."
        steps.append(step)

        # 2. classes
        member = memberships(self.store, sorted({m.node.id for m in known}))
        step = Step(
            question="Which drug classes do they belong to?",
            tool="class_memberships",
            inputs={"nodes": sorted(member)},
        )
        names = self.store.get_nodes(
            {e.object for es in member.values() for e in es} | {m.node.id for m in known}
        )
        for m in known:
            for e in member.get(m.node.id, []):
                step.findings.append(
                    Finding(
                        claim=f"{display_name(m.node)} is a member of {_name(names, e.object)}.",
                        citations=[self.evidence.edge(e)],
                    )
                )
        step.conclusion = f"{len(step.findings)} class memberships found."
        steps.append(step)

        # 3. interactions
        entities = {n: [n, *(e.object for e in es)] for n, es in member.items()}
        found = interactions(self.store, [x for ids in entities.values() for x in ids])
        step = Step(
            question="Do any two of them interact, directly or through their classes?",
            tool="interactions",
            inputs={"entities": sorted({x for ids in entities.values() for x in ids})},
        )
        reported: set[tuple[int, int, str]] = set()
        for a, b in combinations(known, 2):
            if a.index == b.index or a.node.id == b.node.id:
                continue
            hits = _pair_edges(found, entities[a.node.id], entities[b.node.id])
            hits = [h for h in hits if (a.index, b.index, h[0].id) not in reported]
            if not hits:
                continue
            problem, finding = self._interaction(a, b, hits, member, names)
            reported.add((a.index, b.index, self.evidence.refs[problem.citations[-1]].edge["id"]))
            problems.append(problem)
            step.findings.append(finding)
        step.conclusion = (
            f"{len(step.findings)} interacting pair(s)." if step.findings else "No interaction."
        )
        steps.append(step)

        # 4. duplicates
        interacting = {(a, b) for a, b, _ in reported}
        steps.append(self._duplicate_step(known, member, names, interacting, problems))

        # 5. allergies
        if allergies:
            steps.append(self._allergy_step(known, allergies, member, problems))

        # 6. adverse events
        if events := self._events(query):
            steps.append(self._adverse_event_step(known, events, problems))

        problems.sort(key=lambda p: (severity_rank(p.severity), p.proposed, p.inputs))
        findings = [f for s in steps for f in s.findings]
        serious = [p for p in problems if p.type not in ("unknown-drug", "unknown-allergy")]
        text = (
            f"{len(serious)} problem(s) in {n_meds} medication(s): "
            + "; ".join(f"{p.severity}: {p.summary.rstrip('.')}" for p in serious)
            + "."
            if serious
            else f"No problem found among {n_known} known medication(s)."
        )
        for kind, what in (("unknown-drug", "medication(s)"), ("unknown-allergy", "allergy(ies)")):
            if unknown := sum(p.type == kind for p in problems):
                text += f" {unknown} {what} could not be checked (unknown to the KG)."
        return MedicationAnswer(
            id=query.id,
            kind="medication-check",
            answer=text,
            cards=[self._card(p) for p in problems],
            steps=steps,
            citations=self.evidence.refs,
            kg_version=self.store.version(),
            problems=problems,
            models=[{"name": LINKER_MODEL[0], "version": LINKER_MODEL[1]}] if findings else [],
        )

    def _source_labels(self, key: str) -> str:
        """The labels of the sources a cited edge rests on."""
        return ", ".join(self.evidence.refs[s].label for s in self.evidence.refs[key].sources)

    def _events(self, query: Query) -> dict[str, list[tuple[str, str, object]]]:
        """The patient's coded conditions and phenotypes: code -> [(path, label, value)] of
        the patient facts that state it."""
        events: dict[str, list[tuple[str, str, object]]] = {}
        for i, c in enumerate(query.patient.conditions):
            if c.code:
                fact = (f"conditions[{i}]", c.label(), c.model_dump())
                events.setdefault(c.code, []).append(fact)
        for i, term in enumerate(query.patient.phenotypes):
            events.setdefault(term, []).append((f"phenotypes[{i}]", term, term))
        return events

    def _adverse_event_step(
        self,
        known: list[Resolved],
        events: dict[str, list[tuple[str, str, object]]],
        problems: list[Problem],
    ) -> Step:
        """One problem per (medication, patient condition or phenotype) that is a known adverse
        event of the medication's substance: it may cause or worsen it (a prescribing cascade
        starts when a new drug treats it)."""
        drugs = sorted({m.node.id for m in known})
        step = Step(
            question="Is one of the patient's conditions or phenotypes a known adverse event "
            "of one of them?",
            tool="adverse_events",
            inputs={"drugs": drugs, "events": sorted(events)},
        )
        aliases: dict[str, dict[str, Edge]] = {d: {} for d in drugs}  # the learner's RxNorm ids
        for e in self.store.neighbors(
            drugs, predicates=[SAME_AS], statuses=sorted(TRUSTED_STATUSES)
        ):
            for node, alias in ((e.subject, e.object), (e.object, e.subject)):
                if node in aliases:
                    aliases[node][alias] = e
        ids = [*drugs, *(a for d in drugs for a in aliases[d])]
        found = adverse_events(self.store, ids, list(events))
        names = self.store.get_nodes({e.object for e in found})
        for edge in sorted(found, key=lambda e: (e.status not in TRUSTED_STATUSES, e.id)):
            proposed = edge.status not in TRUSTED_STATUSES
            event = _name(names, edge.object)
            for m in known:
                same = aliases[m.node.id].get(edge.subject)
                if edge.subject != m.node.id and same is None:
                    continue
                facts = [self.evidence.patient(*fact) for fact in events[edge.object]]
                via = [self.evidence.edge(same)] if same else []
                cites = [*self._link_cites(m), *via, *facts, self.evidence.edge(edge)]
                label = f"{display_name(m.node)} may cause or worsen {event}"
                claim = (
                    f"The patient has {event} ({edge.object}), "
                    + ("an unreviewed signal" if proposed else "a reviewed adverse event")
                    + f" of {display_name(m.node)} (medication {m.index + 1}): consider whether "
                    "the drug causes or worsens it before treating it with another drug."
                )
                problems.append(
                    Problem(
                        type="adverse-event",
                        severity="consider",
                        inputs=[m.index],
                        entities=list(dict.fromkeys([m.node.id, edge.subject, edge.object])),
                        citations=cites,
                        summary=(("Unreviewed: " if proposed else "") + label)[:140],
                        proposed=proposed,
                        detail=claim,
                        source=self._source_labels(cites[-1]),
                    )
                )
                step.findings.append(Finding(claim=claim, citations=cites, proposed=proposed))
        step.conclusion = (
            f"{len(step.findings)} known adverse event(s) among the patient's findings."
            if step.findings
            else "None of the patient's findings is a known adverse event of these drugs."
        )
        return step

    def _interaction(
        self,
        a: Resolved,
        b: Resolved,
        hits: list[tuple[Edge, str, str]],
        member: dict[str, list[Edge]],
        names: dict[str, Node],
    ) -> tuple[Problem, Finding]:
        hits.sort(
            key=lambda h: (h[0].status not in TRUSTED_STATUSES, severity_rank(_severity_of(h[0])))
        )
        edge, ea, eb = hits[0]
        q = edge.qualifiers
        severity = _severity_of(edge)
        via = []
        cites = [*self._link_cites(a), *self._link_cites(b)]
        for res, ent in ((a, ea), (b, eb)):
            if res.via and ent != res.via.object:
                via.append(f"{display_name(res.node)} is in {display_name(res.link.node)}")
            if ent != res.node.id:
                m = next(e for e in member[res.node.id] if e.object == ent)
                cites.append(self.evidence.edge(m))
                via.append(f"{display_name(res.node)} is a member of {_name(names, ent)}")
        cites.append(self.evidence.edge(edge))
        proposed = edge.status not in TRUSTED_STATUSES
        label = f"{display_name(a.node)} + {display_name(b.node)}"
        path = "; ".join(
            [*via, f"{_name(names, edge.subject)} interacts with {_name(names, edge.object)}"]
        )
        mechanism = q.get("mechanism", "")
        management = q.get("management", "")
        claim = f"{label}: {severity}" + (" (proposed, not yet reviewed)" if proposed else "")
        claim += f". {path}."
        if mechanism:
            claim += f" Mechanism: {mechanism}."
        if management:
            claim += f" Management: {management}."
        source = self._source_labels(cites[-1])
        problem = Problem(
            type="drug-interaction",
            severity=severity,
            inputs=[a.index, b.index],
            entities=list(dict.fromkeys([a.node.id, ea, eb, b.node.id])),
            citations=cites,
            summary=(("Unreviewed: " if proposed else "") + f"{label} ({severity})")[:140],
            proposed=proposed,
            detail=claim,
            source=source,
        )
        return problem, Finding(claim=claim, citations=cites, proposed=proposed)

    def _duplicate_step(
        self,
        known: list[Resolved],
        member: dict[str, list[Edge]],
        names: dict[str, Node],
        interacting: set[tuple[int, int]],
        problems: list[Problem],
    ) -> Step:
        """One problem per substance listed more than once, and per therapeutic class
        (``THERAPEUTIC_CLASS``) with two different substances listed, unless every pair of them
        was already reported as interacting (ANSM's "NSAIDs + other NSAIDs")."""
        step = Step(
            question="Is a substance listed twice, or two substances of one therapeutic class?",
            tool="duplicate_therapy",
            inputs={"nodes": [m.node.id for m in known]},
        )
        by_node: dict[str, dict[int, Resolved]] = {}
        for m in known:
            by_node.setdefault(m.node.id, {}).setdefault(m.index, m)
        for node_id, meds in by_node.items():
            if len(meds) > 1:
                group = list(meds.values())
                both = "both" if len(group) == 2 else "all"
                claim = (
                    f"Medications {_and([str(m.index + 1) for m in group])} {both} contain "
                    f"{display_name(group[0].node)}: duplicate therapy."
                )
                cites = [k for m in group for k in self._link_cites(m)]
                self._duplicate(step, problems, group, [node_id], claim, cites)
        emitted: list[set[int]] = []
        classes = sorted({e.object for edges in member.values() for e in edges})
        for cls, marker in therapeutic_classes(self.store, classes).items():
            in_class = {}
            for m in known:
                edge = next((e for e in member.get(m.node.id, []) if e.object == cls), None)
                if edge is not None and m.index not in in_class:
                    in_class[m.index] = (m, edge)
            indexes = set(in_class)
            if len({m.node.id for m, _ in in_class.values()}) < 2 or any(
                indexes <= e for e in emitted
            ):
                continue
            pairs = {(a, b) for a in indexes for b in indexes if a < b}
            if pairs <= interacting:
                continue
            emitted.append(indexes)
            group = [m for m, _ in in_class.values()]
            what = _and([f"{i + 1} ({display_name(m.node)})" for i, (m, _) in in_class.items()])
            both = "both" if len(in_class) == 2 else "all"
            claim = f"Medications {what} are {both} {display_name(names[cls])}: duplicate therapy."
            cites = [
                k
                for m, e in in_class.values()
                for k in (*self._link_cites(m), self.evidence.edge(e))
            ]
            cites.append(self.evidence.edge(marker))
            entities = [cls, *dict.fromkeys(m.node.id for m in group)]
            self._duplicate(step, problems, group, entities, claim, cites)
        step.conclusion = "Duplicates found." if step.findings else "No duplicate."
        return step

    @staticmethod
    def _duplicate(
        step: Step,
        problems: list[Problem],
        group: list[Resolved],
        entities: list[str],
        claim: str,
        cites: list[str],
    ) -> None:
        step.findings.append(Finding(claim=claim, citations=cites))
        problems.append(
            Problem(
                type="duplicate-therapy",
                severity="precaution",
                inputs=sorted({m.index for m in group}),
                entities=entities,
                citations=cites,
                summary=claim[:140],
                detail=claim,
            )
        )

    def _allergy_step(
        self,
        known: list[Resolved],
        allergies: list[Resolved],
        member: dict[str, list[Edge]],
        problems: list[Problem],
    ) -> Step:
        step = Step(
            question="Is the patient allergic to one of them, or to one of their classes?",
            tool="class_memberships",
            inputs={"allergies": [a.item.label() for a in allergies]},
        )
        seen: set[tuple[int, int]] = set()
        for al in allergies:
            if al.node is None:
                step.findings.append(
                    Finding(claim=f"Allergy {al.index + 1}: {al.reason}.", citations=[al.fact])
                )
                problems.append(
                    Problem(
                        type="unknown-allergy",
                        severity="info",
                        inputs=[],
                        entities=[],
                        citations=[al.fact],
                        summary=f"Allergy {al.index + 1}: {al.reason}"[:140],
                        detail=al.reason,
                    )
                )
                continue
            for m in known:
                via = [e for e in member[m.node.id] if e.object == al.node.id]
                if (m.node.id != al.node.id and not via) or (m.index, al.index) in seen:
                    continue
                seen.add((m.index, al.index))
                cites = [*self._link_cites(m), *self._link_cites(al)]
                cites += [self.evidence.edge(e) for e in via]
                claim = (
                    f"The patient is allergic to {display_name(al.node)}, and medication "
                    f"{m.index + 1} {'contains' if m.via else 'is'} {display_name(m.node)}"
                    + (f", a member of {display_name(al.node)}" if via else "")
                    + "."
                )
                step.findings.append(Finding(claim=claim, citations=cites))
                problems.append(
                    Problem(
                        type="allergy",
                        severity="contraindicated",
                        inputs=[m.index],
                        entities=[m.node.id, al.node.id],
                        citations=cites,
                        summary=f"Allergy: {display_name(m.node)} ({display_name(al.node)})"[:140],
                        detail=claim,
                    )
                )
        step.conclusion = (
            "Allergy conflicts found." if any(p.type == "allergy" for p in problems) else "None."
        )
        return step

    def _card(self, p: Problem) -> Card:
        label = p.source or "evocdss medication check"
        url = ""
        if p.type == "drug-interaction":
            edge_ref = self.evidence.refs[p.citations[-1]]
            url = next((self.evidence.refs[s].url for s in edge_ref.sources), "")
        summary = p.summary if len(p.summary) <= 140 else p.summary[:139] + "…"
        return Card(
            summary=summary,
            indicator=INDICATOR.get(p.severity, "info") if not p.proposed else "info",
            detail=p.detail or None,
            source=CardSource(label=label, url=url),
        )


def _severity_of(edge: Edge) -> str:
    return edge.qualifiers.get("severity", "consider")


def _pair_edges(
    found: dict[str, list[Edge]], left: list[str], right: list[str]
) -> list[tuple[Edge, str, str]]:
    """Interaction edges between an entity of ``left`` and one of ``right``, with the two ends
    (left end first); each undirected pair of ends once."""
    right_set = set(right)
    out: dict[frozenset[str], tuple[Edge, str, str]] = {}
    for a in left:
        for e in found.get(a, []):
            b = e.object if e.subject == a else e.subject
            if b in right_set:
                key = frozenset((a, b, e.qualifiers.get("severity", "")))
                best = out.get(key)
                if best is None or severity_rank(_severity_of(e)) < severity_rank(
                    _severity_of(best[0])
                ):
                    out[key] = (e, a, b)
    return sorted(out.values(), key=lambda h: (severity_rank(_severity_of(h[0])), h[0].id))


def _name(names: dict[str, Node], node_id: str) -> str:
    node = names.get(node_id)
    return display_name(node) if node else node_id


def _is_combination(node: Node) -> bool:
    """A combination product: the KG makes it a drug class named "a + b" whose members are its
    ingredients."""
    return node.category == "biolink:DrugClass" and " + " in node.name


def _all_names(node: Node) -> list[str]:
    return [node.name, *(s.text for s in node.synonyms)]


def _and(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(filter(None, [", ".join(items[:-1]), items[-1]]))
