"""`evocdss eval linkpred` (GNN against Adamic-Adar and KGE on the KG) and
`evocdss linkpred propose` (the GNN's calibrated predictions as proposals for curators)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.commands.common import JsonOpt, StoreOpt, print_json, store_for

app = typer.Typer(
    help="GNN link prediction: propose new KG edges for curators to review.",
    no_args_is_help=True,
)
METRICS = ("auroc", "auprc", "hits@10", "mrr", "train_seconds")
TaskOpt = Annotated[str, typer.Option("--task", help="ddi or disease-phenotype.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of splits, sampling and training.")]


def eval_linkpred(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report (JSON) and ROC/PR PNGs here.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the first split (the next splits take the next seeds).")
    ] = 0,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="ddi or disease-phenotype (default: both).")
    ] = None,
    temporal: Annotated[
        bool, typer.Option(help="Also run the DDI time split on ANSM releases.")
    ] = True,
    incremental: Annotated[
        bool, typer.Option(help="Also compare a warm-start update with a full retrain.")
    ] = True,
    quick: Annotated[
        bool, typer.Option("--quick", help="A fifth of the epochs: a smoke run, not the figures.")
    ] = False,
    splits: Annotated[
        int, typer.Option(min=1, help="Random train/calibration/test splits to average over.")
    ] = 3,
) -> None:
    """Train the GNN, Adamic-Adar and a KGE model on the same held-out splits of the KG and
    compare AUROC, AUPRC, Hits@10 and MRR per task (mean and spread over the splits), with
    training times."""
    from evaluation.linkpred import evaluate_linkpred

    err = Console(stderr=True)
    kg = store_for(store)
    if not kg.stats().edges:
        raise ValueError(f"the KG at {kg.url} is empty: run `evocdss kg build` first")
    report = evaluate_linkpred(
        kg,
        out,
        seed,
        tasks=task or None,
        temporal=temporal,
        incremental=incremental,
        quick=quick,
        splits=splits,
        progress=lambda msg: err.print(f"[dim]{msg}[/]"),
    )
    if out is not None:
        (out / "linkpred.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    print_report(report, Console())


@app.command("propose")
def propose(
    task: TaskOpt = "ddi",
    threshold: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="Calibrated probability to propose at.")
    ] = 0.9,
    limit: Annotated[int, typer.Option(min=1, help="At most this many pairs.")] = 50,
    seed: SeedOpt = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A fifth of the epochs: a smoke run.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the GNN on the KG as it is, calibrate it on held-out edges, and write the pairs it
    predicts above ``--threshold`` as `proposed` edges citing the model (review them with
    `evocdss proposals list`)."""
    from evaluation.linkpred import CONFIGS, config_for
    from learners.linkpred import propose as write_proposals
    from learners.linkpred import train_from_store

    if task not in CONFIGS:
        raise ValueError(f"unknown link prediction task {task!r}: use one of {', '.join(CONFIGS)}")
    kg = store_for(store)
    err = Console(stderr=True)
    with err.status(f"training the {task} GNN on KG version {kg.version()}..."):
        model = train_from_store(kg, task, config_for(task, seed, quick))
        edges = write_proposals(kg, model, threshold, limit)
    rows = [
        {"edge": e.id, "subject": e.subject, "predicate": e.predicate, "object": e.object}
        | {"probability": e.confidence, "citations": list(e.citations)}
        for e in edges
    ]
    if as_json:
        print_json(
            {
                "model": model.citation().id,
                "training_kg_version": model.graph.kg_version,
                "kg_version": kg.version(),
                "proposed": rows,
            }
        )
        return
    for r in rows:
        triple = f"{r['subject']} {r['predicate']} {r['object']}"
        typer.echo(f"{r['edge']}  {triple}  p={r['probability']}")
    typer.echo(
        f"{len(rows)} edge(s) proposed by {model.citation().id}. "
        "Next: `evocdss proposals list` to review them."
    )


def print_report(report: dict[str, Any], console: Console) -> None:
    """The comparison tables of an ``evaluate_linkpred`` report."""
    console.print(
        f"[bold]Link prediction[/] on KG version {report['kg_version']} "
        f"(seed {report['seed']}, {report['wall_seconds']:.0f} s); per task: the mean over "
        f"{report['splits']} random split(s)"
    )
    sections = [(name, entry["models"]) for name, entry in report["tasks"].items()]
    if "temporal_ddi" in report:
        t = report["temporal_ddi"]
        label = f"ddi time split ({'+'.join(t['train_releases'])} -> new in {t['test_release']})"
        sections.append((label, t["models"]))
    for name, entry in report["tasks"].items():
        if "incremental" in entry:
            inc = entry["incremental"]
            models = {k: inc[k] for k in ("before_update", "warm_start", "full_retrain")}
            sections.append((f"{name} update with {inc['new_edges']} new edges", models))
    for title, models in sections:
        table = Table(title=title, title_justify="left")
        table.add_column("model")
        for m in METRICS:
            table.add_column(m, justify="right")
        for model, values in models.items():
            table.add_row(
                model,
                *(
                    f"{values[m]:.3f}" if m != "train_seconds" else f"{values[m]:.1f}"
                    for m in METRICS
                ),
            )
        console.print(table)
    for name, entry in report["tasks"].items():
        cal, scored, test = entry["calibration"], entry["test_positives_scored"], entry["split"]
        sample = "all" if scored == test["test"] else f"a random {scored:,} of {test['test']:,}"
        by_split = "; ".join(
            f"{model} "
            + " / ".join(f"{run['models'][model]['auroc']:.3f}" for run in entry["by_split"])
            + f" (sd {values['auroc_sd']:.3f})"
            for model, values in entry["models"].items()
        )
        console.print(
            f"{name}: AUROC by split: {by_split}. Per split, {sample} held-out edges scored, "
            f"each against {entry['ranking_negatives']} corrupted negatives, the same for every "
            "model (AUROC/AUPRC: mean over the balanced draws of one negative per edge); "
            f"calibration (Platt, first split): Brier {cal['brier']:.3f}, ECE {cal['ece']:.3f}"
        )
    for key, ok in report.get("targets", {}).items():
        console.print(f"{'[green]met' if ok else '[red]missed'}[/] {key}")
    if report["plots"]:
        console.print("curves: " + ", ".join(report["plots"]))
