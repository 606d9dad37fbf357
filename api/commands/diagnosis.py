"""`evocdss eval diagnosis`: phenotype-driven diagnosis against the hpo3 enrichment baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.commands.common import JsonOpt, StoreOpt, print_json, store_for


def eval_diagnosis(
    cases: Annotated[
        Path, typer.Option("--cases", help="JSON lines like shared/data/phenopackets/dev.jsonl.")
    ],
    json: JsonOpt = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write diagnosis.json, diagnosis.md, diagnosis_ranks.png here."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N cases.")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Diagnosis ranking benchmark: top-1/3/10, MRR, latency and coverage, ours vs hpo3's
    hypergeometric enrichment on the same cases."""
    from evaluation.diagnosis import evaluate_diagnosis, markdown

    s = store_for(store)
    try:
        result = evaluate_diagnosis(s, cases, out, limit, progress=not json)
    finally:
        s.close()
    if json:
        print_json({k: v for k, v in result.items() if k != "per_case"})
    else:
        typer.echo(markdown(result), nl=False)
        if out is not None:
            typer.echo(f"Wrote {', '.join(result['files'])}.")
