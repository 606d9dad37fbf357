"""ClinicalTrials.gov records into the KG: trial nodes (``NCT:...``), criterion nodes
(``EVO:criterion-<nct>-<i|e><n>``, with parsed checks) linked by ``biolink:has_criterion``, and
trial -> condition links where a condition names a KG disease. Reads the API v2 JSON
(``protocolSection``), the classic XML (``<clinical_study>``) and the JSONL of the HINT
benchmark; every edge cites the record's own ``Citation`` (``src:ctgov:<nct>``).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.criteria import Criterion, Lexicon, parse_criteria
from ingest.source import SourceBatch
from kg.model import Citation, Edge, Node
from kg.store import GraphStore
from kg.vocab import normalize_text

NCT_RE = re.compile(r"^NCT\d{8}$")
LICENSE = "public domain (US)"
SOURCE = Citation(
    id="src:ctgov",
    kind="database",
    title="ClinicalTrials.gov study records",
    url="https://clinicaltrials.gov",
    license=LICENSE,
)


@dataclass
class TrialRecord:
    """One study as read from any of the three formats."""

    nct_id: str
    title: str = ""
    conditions: list[str] = field(default_factory=list)
    icd10: list[str] = field(default_factory=list)
    interventions: list[str] = field(default_factory=list)
    criteria: str = ""
    min_age: str = ""
    max_age: str = ""
    sex: str = ""
    phase: str = ""
    status: str = ""
    date: str = ""
    format: str = ""

    def text(self) -> str:
        """What first-stage retrieval indexes: title, conditions, interventions, criteria."""
        return " ".join([self.title, *self.conditions, *self.interventions, self.criteria]).strip()


def from_ctgov_v2(study: dict[str, Any]) -> TrialRecord:
    """A study of the ClinicalTrials.gov API v2 (``protocolSection``...)."""
    section = study.get("protocolSection", study)
    ident = section.get("identificationModule", {})
    elig = section.get("eligibilityModule", {})
    status = section.get("statusModule", {})
    design = section.get("designModule", {})
    arms = section.get("armsInterventionsModule", {})
    return TrialRecord(
        nct_id=ident.get("nctId", ""),
        title=ident.get("briefTitle") or ident.get("officialTitle", ""),
        conditions=list(section.get("conditionsModule", {}).get("conditions", [])),
        interventions=[i.get("name", "") for i in arms.get("interventions", [])],
        criteria=elig.get("eligibilityCriteria") or "",
        min_age=elig.get("minimumAge", ""),
        max_age=elig.get("maximumAge", ""),
        sex=elig.get("sex", ""),
        phase=", ".join(design.get("phases", [])),
        status=status.get("overallStatus", ""),
        date=status.get("lastUpdatePostDateStruct", {}).get("date", ""),
        format="ctgov-v2-json",
    )


def from_ctgov_xml(text: str) -> TrialRecord:
    """A study of the classic ClinicalTrials.gov XML (``<clinical_study>``)."""
    root = ET.fromstring(text)

    def get(path: str) -> str:
        return (root.findtext(path) or "").strip()

    return TrialRecord(
        nct_id=get("id_info/nct_id"),
        title=get("brief_title") or get("official_title"),
        conditions=[(c.text or "").strip() for c in root.findall("condition")],
        interventions=[get_text(i, "intervention_name") for i in root.findall("intervention")],
        criteria=get("eligibility/criteria/textblock"),
        min_age=get("eligibility/minimum_age"),
        max_age=get("eligibility/maximum_age"),
        sex=get("eligibility/gender") or get("eligibility/sex"),
        phase=get("phase"),
        status=get("overall_status"),
        date=get("last_update_posted") or get("lastchanged_date"),
        format="ctgov-xml",
    )


def get_text(element: ET.Element, path: str) -> str:
    return (element.findtext(path) or "").strip()


def from_hint(row: dict[str, Any]) -> TrialRecord:
    """A line of the HINT benchmark JSONL (``nct_id``, ``criteria``, ``conditions``...)."""
    return TrialRecord(
        nct_id=row.get("nct_id") or "",
        title=row.get("title") or "",
        conditions=list(row.get("conditions") or []),
        icd10=list(row.get("icd10") or []),
        interventions=list(row.get("interventions") or []),
        criteria=row.get("criteria") or "",
        phase=row.get("phase") or "",
        status=row.get("status") or "",
        format="hint-jsonl",
    )


def read_trials(path: Path) -> list[TrialRecord]:
    """Every study in a file (``.jsonl``, ``.json``, ``.xml``) or a folder of such files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".xml"))
        return [r for f in files for r in read_trials(f)]
    if not path.exists():
        raise FileNotFoundError(f"no such trials file: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".xml":
        try:
            return [from_ctgov_xml(text)]
        except ET.ParseError as exc:
            raise ValueError(f"{path}: not well-formed XML: {exc}") from None
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = json.loads(text)
        rows = data.get("studies", [data]) if isinstance(data, dict) else list(data)
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: record {i} is a JSON {type(row).__name__}, not an object")
    return [from_ctgov_v2(r) if "protocolSection" in r else from_hint(r) for r in rows]


def trial_citation(record: TrialRecord) -> Citation:
    """The record's own citation: every edge of the trial cites it."""
    return Citation(
        id=f"src:ctgov:{record.nct_id}",
        kind="database",
        title=f"ClinicalTrials.gov {record.nct_id}: {record.title or 'study record'}",
        version=record.format,
        date=record.date,
        url=f"https://clinicaltrials.gov/study/{record.nct_id}",
        license=LICENSE,
    )


def criterion_id(nct_id: str, criterion: Criterion) -> str:
    return f"EVO:criterion-{nct_id}-{criterion.code}"


def module_criterion(record: TrialRecord) -> Criterion | None:
    """The structured age/sex limits of the eligibility module, as inclusion criterion 0."""
    parts = []
    if record.min_age or record.max_age:
        low = record.min_age or "N/A"
        high = record.max_age or "N/A"
        parts.append(f"Age {low} to {high}")
    sex = record.sex.lower()
    if sex in ("female", "male"):
        parts.append(f"Sex: {sex}")
    if not parts:
        return None
    checks: list[dict[str, Any]] = []
    low_years, high_years = _years(record.min_age), _years(record.max_age)
    if low_years is not None or high_years is not None:
        checks.append({"kind": "age", "min": low_years, "max": high_years})
    if sex in ("female", "male"):
        checks.append({"kind": "sex", "sex": sex})
    return Criterion("inclusion", 0, "; ".join(parts), checks)


def _years(value: str) -> float | None:
    m = re.match(r"(\d+(?:\.\d+)?)\s*(year|month|week|day)", value.strip(), re.I)
    if not m:
        return None
    per = {"year": 1, "month": 12, "week": 52, "day": 365}[m.group(2).lower()]
    return round(float(m.group(1)) / per, 3)


def load_trials(path: Path, store: GraphStore | None = None) -> SourceBatch:
    """Trial and criterion nodes, ``has_criterion`` edges and trial -> condition links
    (``biolink:related_to``, role ``condition``) for the records at ``path``. With a ``store``
    the criteria's concepts and the conditions are linked to its KG nodes."""
    from ingest.criteria import lexicon_for

    lexicon = lexicon_for(store) if store is not None else None
    batch = SourceBatch("ctgov", SOURCE)
    seen: set[str] = set()
    for record in read_trials(path):
        if not NCT_RE.match(record.nct_id):
            batch.issue("bad-nct-id", record.nct_id or record.title[:80])
            continue
        if record.nct_id in seen:
            batch.issue("duplicate-record", record.nct_id)
            continue
        seen.add(record.nct_id)
        add_trial(batch, record, lexicon, store)
    return batch


def add_trial(
    batch: SourceBatch, record: TrialRecord, lexicon: Lexicon | None, store: GraphStore | None
) -> None:
    """Append one record's nodes and edges to ``batch``."""
    citation = trial_citation(record)
    batch.extra_citations.append(citation)
    trial = f"NCT:{record.nct_id}"
    if not record.criteria.strip():
        batch.issue("no-criteria-text", record.nct_id)
    criteria = parse_criteria(record.criteria, lexicon)
    if record.criteria.strip() and not any(c.type == "exclusion" for c in criteria):
        batch.issue("no-exclusion-section", record.nct_id)
    if record.criteria.strip() and not criteria:
        batch.issue("criteria-not-split", record.nct_id)
    module = module_criterion(record)
    if module is not None:
        criteria.insert(0, module)
    for limit in (record.min_age, record.max_age):
        if limit and limit.upper() != "N/A" and _years(limit) is None:
            batch.issue("unreadable-age-limit", f"{record.nct_id}: {limit}")
    batch.nodes.append(
        Node(
            trial,
            "biolink:ClinicalTrial",
            record.title or record.nct_id,
            properties={
                "conditions": record.conditions,
                "icd10": record.icd10,
                "interventions": record.interventions,
                "phase": record.phase,
                "status": record.status,
                "min_age": record.min_age,
                "max_age": record.max_age,
                "sex": record.sex,
                "criteria_text": record.criteria,
                "format": record.format,
            },
        )
    )
    for criterion in criteria:
        node_id = criterion_id(record.nct_id, criterion)
        batch.nodes.append(
            Node(
                node_id,
                "biolink:EligibilityCriterion",
                criterion.text[:200],
                properties=criterion.to_dict(),
            )
        )
        batch.edges.append(Edge(trial, "biolink:has_criterion", node_id, citations=(citation.id,)))
    for target in condition_links(record, lexicon, store, batch):
        batch.edges.append(
            Edge(
                trial,
                "biolink:related_to",
                target,
                citations=(citation.id,),
                qualifiers={"role": "condition"},
            )
        )


def condition_links(
    record: TrialRecord, lexicon: Lexicon | None, store: GraphStore | None, batch: SourceBatch
) -> list[str]:
    """KG nodes the record's conditions name (whole-name matches) and its ICD-10-CM codes."""
    if lexicon is None or store is None:
        return []
    targets: list[str] = []
    for condition in record.conditions:
        hit = lexicon.names.get(normalize_text(condition))
        if hit and hit[0] == "condition":
            targets += hit[1][:3]
        else:
            batch.issue("condition-not-linked", f"{record.nct_id}: {condition}")
    codes = [f"ICD10CM:{c}" for c in record.icd10]
    known = store.get_nodes(codes)
    for code in codes:
        if code in known:
            targets.append(code)
        else:
            batch.issue("icd10-code-not-in-kg", f"{record.nct_id}: {code}")
    return list(dict.fromkeys(targets))
