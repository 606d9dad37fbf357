"""`evocdss trials ...`: load ClinicalTrials.gov records into the KG; and `eval_trials`, the
body of `evocdss eval trials` (mounted by ``api.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.commands.common import JsonOpt, StoreOpt, print_json
from kg import open_store
from kg.settings import get_settings

app = typer.Typer(help="Clinical trials: load records into the KG.", no_args_is_help=True)


@app.callback()
def trials() -> None:
    """Clinical trials: load records into the KG."""


@app.command("load")
def load(
    path: Annotated[
        Path, typer.Argument(help="A .jsonl/.json (CT.gov API v2)/.xml file or folder.")
    ],
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Load trials and their parsed eligibility criteria into the KG (one atomic write)."""
    from ingest.build import write_batch
    from ingest.criteria import Criterion, coverage
    from ingest.trials import load_trials

    if not path.exists():
        raise ValueError(f"no such trials file or folder: {path}")
    s = open_store(store or get_settings().store_url, create=True)
    try:
        batch = load_trials(path, s)
        result = write_batch(s, batch)
    finally:
        s.close()
    criteria = [
        Criterion(n.properties["type"], n.properties["index"], "", n.properties["checks"])
        for n in batch.nodes
        if n.category == "biolink:EligibilityCriterion"
    ]
    report = {
        **batch.report(),
        "trials": sum(n.category == "biolink:ClinicalTrial" for n in batch.nodes),
        "criteria": len(criteria),
        "parse_coverage": round(coverage(criteria), 4),
        "kg_version": result.version,
    }
    if json:
        print_json(report)
        return
    typer.echo(
        f"loaded {report['trials']} trials, {report['criteria']} criteria "
        f"(parse coverage {report['parse_coverage']:.1%}); KG version {result.version}"
    )
    for kind, issue in report["issues"].items():
        typer.echo(f"  issue {kind}: {issue['count']} (e.g. {', '.join(issue['examples'][:2])})")


def eval_trials(
    dataset: Annotated[
        Path, typer.Option("--dataset", help="Folder laid out like shared/data/trials.")
    ],
    json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write trials.json and trials.md here.")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Trial matching benchmark: NDCG@10/P@10, Recall@100 and criterion accuracy vs baselines
    (loads the dataset's trials into the store first if they are missing)."""
    from evaluation.trials import evaluate_trials, markdown

    if not (dataset / "trials.jsonl").exists():
        raise ValueError(f"{dataset} has no trials.jsonl: not a trials dataset folder")
    s = open_store(store or get_settings().store_url, create=False)
    try:
        result = evaluate_trials(dataset, s, out)
    finally:
        s.close()
    if json:
        print_json(result)
    else:
        typer.echo(markdown(result), nl=False)
