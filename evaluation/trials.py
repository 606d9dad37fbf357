"""Trial-matching benchmark over the layout of ``shared/data/trials``.

(a) re-ranking each patient's judged trials: NDCG@10 (gain = qrels score) and P@10 (eligible
= score 2); (b) first-stage retrieval over the whole trial file: Recall@100 of trials with
score >= 1; (c) criterion-level verdicts against the expert labels, with per-class precision
and recall. Baselines in the same run: BM25 (bm25s, the patient text as the query) for (a) and
(b), the majority class for (c). Also: p50 latency per patient, parse coverage, and the share
of verdicts whose citations all resolve.

Expert classes -> verdicts: included -> met, not included -> not met (inclusion criteria);
excluded -> met (the patient meets the exclusion criterion, so is excluded), not excluded ->
not met (exclusion criteria); not enough information -> unknown; not applicable -> not
applicable.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ingest.build import write_batch
from ingest.criteria import lexicon_for, parse_criterion
from ingest.notes import extract_facts, note_sentences
from ingest.trials import load_trials, read_trials
from kg.store import GraphStore
from reasoner.trials import (
    VERDICTS,
    Expander,
    Judge,
    TrialMatchAnswer,
    facts_from_note,
    trial_index,
    trial_match,
)

EXPERT_TO_VERDICT = {
    "included": "met",
    "not included": "not met",
    "excluded": "met",
    "not excluded": "not met",
    "not enough information": "unknown",
    "not applicable": "not applicable",
}


def ndcg_at(ranked: list[str], gains: dict[str, int], k: int = 10) -> float:
    dcg = sum(gains.get(t, 0) / math.log2(i + 2) for i, t in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def precision_at(ranked: list[str], gains: dict[str, int], k: int = 10) -> float:
    return sum(gains.get(t, 0) == 2 for t in ranked[:k]) / k


def read_dataset(dataset: Path) -> tuple[dict[str, str], dict[str, dict[str, int]], list[dict]]:
    """Patients (id -> text), qrels (patient -> trial -> score), criterion labels."""
    patients = {}
    for line in (dataset / "patients.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            patients[row["id"]] = row["text"]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (dataset / "qrels.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels[row["patient_id"]][row["nct_id"]] = int(row["score"])
    labels_file = dataset / "criteria_labels.jsonl"
    labels = [json.loads(x) for x in labels_file.read_text().splitlines() if x.strip()]
    return patients, dict(qrels), labels


def ensure_trials(store: GraphStore, trials_file: Path) -> dict[str, Any]:
    """Load the trial file into ``store`` unless its trials are there already."""
    records = read_trials(trials_file)
    if not records:
        raise ValueError(f"{trials_file}: no trials")
    if all(store.get_node(f"NCT:{r.nct_id}") for r in (records[0], records[-1])):
        return {"loaded": False, "trials": len(records)}
    start = time.perf_counter()
    batch = load_trials(trials_file, store)
    write_batch(store, batch)
    return {
        "loaded": True,
        "trials": len(records),
        "seconds": round(time.perf_counter() - start, 1),
        "issues": {k: v.count for k, v in batch.issues.items()},
    }


def parse_coverage(store: GraphStore) -> dict[str, Any]:
    """Share of the KG's criteria with at least one structured check, by check kind."""
    total = structured = 0
    kinds: Counter[str] = Counter()
    for node in store.iter_nodes():
        if node.category != "biolink:EligibilityCriterion":
            continue
        total += 1
        checks = node.properties.get("checks", [])
        structured += bool(checks)
        kinds.update({c["kind"] for c in checks})
    return {
        "criteria": total,
        "structured": structured,
        "coverage": round(structured / total, 4) if total else 0.0,
        "by_check_kind": dict(kinds.most_common()),
    }


def citations_resolve(answer: TrialMatchAnswer, store: GraphStore, payload: dict) -> bool:
    """Every criterion verdict cites refs that resolve (KG edges exist, patient paths exist)."""
    for trial in answer.trials:
        for c in trial.criteria:
            if not c.citations:
                return False
            for key in c.citations:
                ref = answer.citations[key]
                if ref.kind == "kg_edge" and store.get_edge(ref.edge["id"]) is None:
                    return False
                if ref.kind == "patient_fact" and _resolve(payload, ref.path) is None:
                    return False
    return True


def _resolve(payload: dict, path: str) -> Any:
    value: Any = payload.get("patient", payload)
    try:
        for part in path.replace("]", "").split("."):
            name, _, index = part.partition("[")
            value = value[name]
            if index:
                value = value[int(index)]
    except (KeyError, IndexError, TypeError):
        return None
    return value


def criterion_level(store: GraphStore, labels: list[dict]) -> dict[str, Any]:
    """(c) verdicts on the expert-labelled criteria, against the majority-class baseline."""
    lexicon = lexicon_for(store)
    expander = Expander(store)
    gold, predicted, coverage = [], [], 0
    for label in labels:
        facts = extract_facts(note_sentences(label["note"]), lexicon)
        criterion = parse_criterion(label["criterion_text"], label["criterion_type"], 1, lexicon)
        coverage += criterion.structured
        verdict = Judge(expander, facts_from_note(facts)).judge(criterion.to_dict())
        gold.append(EXPERT_TO_VERDICT[label["expert_eligibility"]])
        predicted.append(verdict.verdict)
    n = len(gold)
    majority, majority_n = Counter(gold).most_common(1)[0] if gold else ("", 0)
    per_class = {}
    for v in VERDICTS:
        tp = sum(g == p == v for g, p in zip(gold, predicted, strict=True))
        n_pred, n_gold = predicted.count(v), gold.count(v)
        per_class[v] = {
            "gold": n_gold,
            "predicted": n_pred,
            "precision": round(tp / n_pred, 4) if n_pred else None,
            "recall": round(tp / n_gold, 4) if n_gold else None,
        }
    confusion = Counter(f"{g} -> {p}" for g, p in zip(gold, predicted, strict=True))
    return {
        "labels": n,
        "accuracy": round(sum(g == p for g, p in zip(gold, predicted, strict=True)) / n, 4)
        if n
        else 0.0,
        "majority_baseline": {"class": majority, "accuracy": round(majority_n / n, 4) if n else 0},
        "per_class": per_class,
        "confusion": dict(confusion.most_common()),
        "parse_coverage": round(coverage / n, 4) if n else 0.0,
        "mapping": EXPERT_TO_VERDICT,
    }


def evaluate_trials(
    dataset_dir: Path, store: GraphStore, out_dir: Path | None = None
) -> dict[str, Any]:
    """Run the whole benchmark (loading the trial file into ``store`` if needed); write
    ``trials.json`` and ``trials.md`` into ``out_dir`` when given."""
    dataset = Path(dataset_dir)
    if not (dataset / "trials.jsonl").exists():
        raise FileNotFoundError(f"no trials.jsonl in {dataset}")
    load = ensure_trials(store, dataset / "trials.jsonl")
    patients, qrels, labels = read_dataset(dataset)
    index = trial_index(store)
    known = set(index.ids)
    rerank: dict[str, list[float]] = defaultdict(list)
    recall: dict[str, list[float]] = defaultdict(list)
    latencies, resolved, verdicts = [], 0, 0
    for pid, judged in sorted(qrels.items()):
        if pid not in patients:
            continue
        loaded = [t for t in judged if f"NCT:{t}" in known]
        gains = {t: judged[t] for t in loaded}
        payload: dict[str, Any] = {"id": pid, "note": patients[pid], "trials": loaded}
        answer = trial_match(store, payload)
        ours = [t.nct_id for t in sorted(answer.trials, key=lambda t: t.rank)]
        bm25 = index.scores(patients[pid])
        base = sorted(loaded, key=lambda t: (-bm25[f"NCT:{t}"], t))
        for name, ranked in (("system", ours), ("bm25", base)):
            rerank[f"{name}_ndcg@10"].append(ndcg_at(ranked, gains))
            rerank[f"{name}_p@10"].append(precision_at(ranked, gains))
        resolved += citations_resolve(answer, store, payload)
        verdicts += 1
        relevant = {f"NCT:{t}" for t, s in judged.items() if s >= 1}
        if relevant:
            start = time.perf_counter()
            full = trial_match(store, {"id": pid, "note": patients[pid], "top": 100})
            latencies.append(time.perf_counter() - start)
            got = {f"NCT:{t.nct_id}" for t in full.trials}
            top_bm25 = {t for t, _ in index.search(patients[pid], 100)}
            recall["system_recall@100"].append(len(relevant & got) / len(relevant))
            recall["bm25_recall@100"].append(len(relevant & top_bm25) / len(relevant))
    result = {
        "dataset": str(dataset),
        "kg_version": store.version(),
        "trials_load": load,
        "patients": len(rerank["system_ndcg@10"]),
        "rerank": {k: round(statistics.fmean(v), 4) for k, v in rerank.items() if v},
        "retrieval": {k: round(statistics.fmean(v), 4) for k, v in recall.items() if v},
        "criteria": criterion_level(store, labels),
        "latency_p50_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "citations_resolve": round(resolved / verdicts, 4) if verdicts else None,
        "parse_coverage": parse_coverage(store),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "trials.json").write_text(json.dumps(result, indent=2))
        (out / "trials.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """A short Markdown report of ``evaluate_trials``'s result."""
    r, c = result["rerank"], result["criteria"]
    lines = [
        "# Trial matching",
        "",
        f"KG version {result['kg_version']}, {result['patients']} patients.",
        "",
        "| metric | system | baseline |",
        "|---|---|---|",
        f"| NDCG@10 (re-rank) | {r.get('system_ndcg@10')} | {r.get('bm25_ndcg@10')} (BM25) |",
        f"| P@10 (re-rank) | {r.get('system_p@10')} | {r.get('bm25_p@10')} (BM25) |",
        f"| Recall@100 | {result['retrieval'].get('system_recall@100')} | "
        f"{result['retrieval'].get('bm25_recall@100')} (BM25) |",
        f"| criterion accuracy | {c['accuracy']} | {c['majority_baseline']['accuracy']} "
        f"(majority: {c['majority_baseline']['class']}) |",
        "",
        f"p50 latency per patient: {result['latency_p50_seconds']} s; parse coverage "
        f"{result['parse_coverage']['coverage']}; citations resolve: "
        f"{result['citations_resolve']}.",
    ]
    return "\n".join(lines) + "\n"
