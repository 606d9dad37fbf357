"""Reasoner benchmark on the full KG, in-process.

    python bench/reasoner.py [--store sqlite:///var/kg.sqlite] [--cases PATH] [--json]

Medication check of random 10-drug lists (names and RxNorm codes drawn from the ANSM substances
the KG knows) with 5 random ICD-10-CM conditions (looked up for known adverse events; target
p99 <= 25 ms) and, when the diagnosis kind is available, diagnosis of the
phenopacket cases (target p50 <= 150 ms). The baseline, timed in the same run, is one KG point
look-up (``get_node``), so the ratio says how many look-ups a query costs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kg import open_store
from kg.settings import get_settings
from reasoner.engine import Reasoner

CASES = Path(__file__).resolve().parents[2] / "shared" / "data" / "phenopackets" / "dev.jsonl"
TARGETS = {"medication_p99_ms": 25.0, "diagnosis_p50_ms": 150.0}


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def timed(fn, items: list) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=get_settings().store_url)
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    store = open_store(args.store, create=False)
    reasoner = Reasoner(store)
    rng = random.Random(5)
    pool = []
    for edge in store.edges(predicate="biolink:same_as"):
        if edge.subject.startswith("RXNORM:") and edge.object.startswith("ANSM:"):
            node = store.get_node(edge.object)
            english = [s.text for s in node.synonyms if s.lang == "en"]
            pool.append({"code": edge.subject})
            if english:
                pool.append({"text": english[0]})
    icd = sorted(n.id for n in store.iter_nodes() if n.id.startswith("ICD10CM:"))
    queries = [
        {
            "id": f"q{i}",
            "patient": {
                "medications": rng.sample(pool, 10),
                "conditions": [{"code": c} for c in rng.sample(icd, 5)],
            },
        }
        for i in range(args.queries)
    ]
    reasoner.ask("medication-check", queries[0])  # warm-up: caches, first connections
    baseline = timed(
        store.get_node, [rng.choice(pool).get("code", "RXNORM:11289") for _ in range(1000)]
    )
    med = timed(lambda q: reasoner.ask("medication-check", q), queries)
    results = {
        "kg_version": store.version(),
        "lookup_p50_ms": round(pct(baseline, 50), 3),
        "medication_10_drugs": {
            "queries": len(med),
            "p50_ms": round(pct(med, 50), 2),
            "p99_ms": round(pct(med, 99), 2),
            "p99_over_lookup_p50": round(pct(med, 99) / pct(baseline, 50), 1),
        },
    }
    if "diagnosis" in reasoner.kinds and args.cases.exists():
        cases = [json.loads(x) for x in args.cases.read_text().splitlines()[:300]]
        payloads = [
            {
                "id": c["id"],
                "patient": {"phenotypes": c["present"], "excluded_phenotypes": c["excluded"]},
            }
            for c in cases
        ]
        reasoner.ask("diagnosis", payloads[0])
        dx = timed(lambda q: reasoner.ask("diagnosis", q), payloads)
        results["diagnosis"] = {
            "cases": len(dx),
            "p50_ms": round(pct(dx, 50), 2),
            "p95_ms": round(pct(dx, 95), 2),
            "p50_over_lookup_p50": round(pct(dx, 50) / pct(baseline, 50), 1),
        }
    results["meets_targets"] = {
        "medication_p99_ms": results["medication_10_drugs"]["p99_ms"]
        <= TARGETS["medication_p99_ms"],
        **(
            {"diagnosis_p50_ms": results["diagnosis"]["p50_ms"] <= TARGETS["diagnosis_p50_ms"]}
            if "diagnosis" in results
            else {}
        ),
    }
    print(json.dumps(results, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
