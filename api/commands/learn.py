"""`evocdss learn` (replay patient records through the online learners), `evocdss proposals
list|show|accept|reject` (curate what they propose) and `eval_learners`, the body of
`evocdss eval learners` (mounted by ``api.cli``).

Mount ``app`` without a name (``cli.app.add_typer(learn.app)``) to get ``learn`` and the
``proposals`` group at the top level.
"""

from __future__ import annotations

import getpass
import json as jsonlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.commands.common import JsonOpt, StoreOpt, print_json, store_for
from kg.settings import get_settings

app = typer.Typer(help="Online learners and their proposals.", no_args_is_help=True)
proposals_app = typer.Typer(
    help="Review what the learners propose: accept (curated) or reject.", no_args_is_help=True
)
app.add_typer(proposals_app, name="proposals")

out = Console(soft_wrap=True)
err = Console(stderr=True)

RecordsOpt = Annotated[
    Path, typer.Option("--records", help="FHIR R4 bulk NDJSON: a .ndjson file or a folder of them.")
]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


ActorOpt = Annotated[str, typer.Option("--actor", help="Who decides (default: the OS user).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the change log).")]


def _records(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"no records at {path}: give a FHIR R4 .ndjson file or a folder of them")
    return path


@app.command("learn")
def learn(
    records: RecordsOpt,
    store: StoreOpt = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Learner state file (default: <home>/learners/state.pkl)."),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Forget the saved state and learn from scratch.")
    ] = False,
    min_count: Annotated[
        int | None,
        typer.Option(min=1, help="Signals need at least this many cases (default 3)."),
    ] = None,
    window_days: Annotated[
        float | None,
        typer.Option(min=1, help="Days after a drug start an event counts (default 90)."),
    ] = None,
    washout_days: Annotated[
        float | None,
        typer.Option(
            min=0, help="Days in care before an order counts as a new start (default 90)."
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait while another process holds the state."),
    ] = 30.0,
    json: JsonOpt = False,
) -> None:
    """Replay records in time order through the online learners; write their proposals.

    Thresholds apply to a fresh state (first run or --reset); a saved learner keeps its own.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from learners.signals import SignalConfig
    from learners.stream import learn as learn_records

    _records(records)
    given = {"min_count": min_count, "window_days": window_days, "washout_days": washout_days}
    given = {k: v for k, v in given.items() if v is not None}
    config = SignalConfig(**given) if given else None
    s = store_for(store)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )
    try:
        with bar:
            task = bar.add_task("reading and linking records", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, description="learning", completed=done, total=total)

            try:
                summary = learn_records(
                    records,
                    s,
                    get_settings(),
                    state_file=state,
                    reset=reset,
                    signal_config=config,
                    progress=tick,
                    lock_wait=wait,
                )
            except Exception:
                bar.remove_task(task)  # the error is the one line left, not a stopped bar
                raise
    finally:
        s.close()
    data = summary.to_dict()
    if json:
        print_json(data)
        return
    signals = data["flushed"].get("signals", {})
    out.print(
        f"learned {data['events_learned']:,} events of {data['patients']:,} patients "
        f"({data['events_skipped']:,} already learned, {data['read_problems']:,} read problems) "
        f"in {data['seconds']:.1f} s"
    )
    out.print(
        f"signals: {signals.get('proposed', 0)} proposed, {signals.get('updated', 0)} updated, "
        f"{signals.get('retired', 0)} retired, {signals.get('rejected_skipped', 0)} left out "
        f"(rejected by a curator), {signals.get('already_known', 0)} already in the KG"
    )
    out.print(
        f"state {data['state_path']} at event {data['position']['events']:,} "
        f"({data['position']['last_time']}). Next: `evocdss proposals list`"
    )


@proposals_app.command("list")
def proposals_list(
    status: Annotated[str, typer.Option(help="proposed, curated, rejected, retracted ...")] = (
        "proposed"
    ),
    predicate: Annotated[
        str | None, typer.Option(help="e.g. biolink:has_adverse_event (default: any)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many edges.")] = 50,
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Edges with a status (default: proposed), most confident first."""
    from kg.vocab import STATUSES
    from learners.proposals import list_proposals

    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: use one of {', '.join(sorted(STATUSES))}")
    s = store_for(store)
    try:
        edges = list_proposals(s, status=status, predicate=predicate, limit=limit)
        names = s.get_nodes({x for e in edges for x in (e.subject, e.object)})
    finally:
        s.close()
    if json:
        print_json([e.to_dict() for e in edges])
        return
    if not edges:
        out.print(f"no {status} edges" + (f" with predicate {predicate}" if predicate else ""))
        return
    one_predicate = len({e.predicate for e in edges}) == 1
    shared = f"{edges[0].predicate} " if one_predicate else ""
    table = Table(title=f"{status} {shared}edges (up to {limit})", title_justify="left")
    columns = ["subject", "object"] if one_predicate else ["subject", "predicate", "object"]
    table.add_column("id", no_wrap=True, min_width=17)
    for col in (*columns, "conf", "n11", "IC025"):
        table.add_column(col, overflow="fold")
    for e in edges:
        ends = {
            "subject": _label(e.subject, names),
            "predicate": e.predicate.removeprefix("biolink:"),
            "object": _label(e.object, names),
        }
        table.add_row(
            e.id,
            *(ends[c] for c in columns),
            f"{e.confidence:.2f}",
            str(e.qualifiers.get("n11", "")),
            str(e.qualifiers.get("ic025", "")),
        )
    out.print(table)


@proposals_app.command("show")
def proposals_show(
    edge_id: Annotated[str, typer.Argument(help="Edge id, e.g. E0123456789abcdef")],
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """An edge with its statistics, resolved citations and change history."""
    from learners.proposals import show

    s = store_for(store)
    try:
        data = show(s, edge_id)
    finally:
        s.close()
    if json:
        print_json(data)
        return
    e = data["edge"]
    out.print(
        f"[bold]{e['id']}[/] {e['subject']} ({data['subject_name']}) {e['predicate']} "
        f"{e['object']} ({data['object_name']})",
        highlight=False,
    )
    out.print(f"status {e['status']}, confidence {e['confidence']:.2f}")
    for key, value in e["qualifiers"].items():
        out.print(f"  {key}: {value}", highlight=False)
    for cid, cit in data["citations"].items():
        out.print(f"cites {cid}: {cit['title']} (version {cit['version']}, {cit['date']})")
    table = Table(title="history", title_justify="left")
    for col in ("seq", "time (UTC)", "actor", "action", "status", "reason"):
        table.add_column(col)
    for c in data["history"]:
        when = datetime.fromtimestamp(c["time"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        status = (c["after"] or {}).get("status", "")
        table.add_row(str(c["seq"]), when, c["actor"], c["action"], status, c["reason"])
    out.print(table)


@proposals_app.command("accept")
def proposals_accept(
    edge_id: Annotated[str, typer.Argument(help="Edge id of a proposed edge")],
    reason: ReasonOpt,
    actor: ActorOpt = "",
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Accept a proposed edge: it becomes curated."""
    from learners.proposals import accept

    _decide(accept, edge_id, actor, reason, store, json)


@proposals_app.command("reject")
def proposals_reject(
    edge_id: Annotated[str, typer.Argument(help="Edge id of a proposed edge")],
    reason: ReasonOpt,
    actor: ActorOpt = "",
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Reject a proposed edge: the learners will not propose it again."""
    from learners.proposals import reject

    _decide(reject, edge_id, actor, reason, store, json)


def _decide(
    decide: Any, edge_id: str, actor: str, reason: str, store: str | None, json: bool
) -> None:
    s = store_for(store)
    try:
        edge = decide(s, edge_id, actor or _user(), reason)
        version = s.version()
    finally:
        s.close()
    if json:
        print_json({"edge": edge.to_dict(), "kg_version": version})
        return
    out.print(
        f"{edge.id} {edge.subject} {edge.predicate} {edge.object} is now {edge.status} "
        f"(KG version {version})",
        highlight=False,
    )


def eval_learners(
    records: RecordsOpt,
    json: JsonOpt = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write learners.json and learners.png here.")
    ] = None,
    feedback: Annotated[
        Path | None,
        typer.Option("--feedback", help="Card feedback records (JSON lines) for the alert model."),
    ] = None,
    washout_days: Annotated[
        float | None,
        typer.Option(help="Signal learner: days in care before an order is a new start."),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Prequential metrics of each learner against a trivial baseline (predict, then learn)."""
    from learners.evaluate import evaluate_learners, plot_prequential, read_feedback
    from learners.signals import SignalConfig

    _records(records)
    if out_dir is not None and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is not a folder")
    records_fb = read_feedback(feedback) if feedback else None
    s = store_for(store)
    try:
        result = evaluate_learners(
            records,
            get_settings(),
            store=s,
            feedback=records_fb,
            signal_config=None if washout_days is None else SignalConfig(washout_days=washout_days),
        )
    finally:
        s.close()
    if out_dir is not None:
        (out_dir / "learners.json").write_text(
            jsonlib.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        plot_prequential(result, out_dir / "learners.png")
    if json:
        print_json(result)
        return
    for name, report in result["learners"].items():
        if "log_loss" not in report:
            out.print(f"{name}: {report.get('note', 'nothing to evaluate')}")
            continue
        ll, auc = report["log_loss"], report["auc"]
        out.print(
            f"{name}: log-loss {ll['learner']:.4f} vs baseline {ll['baseline']:.4f}; "
            f"AUC {auc['learner']} vs {auc['baseline']} ({report['task']})"
        )
    if out_dir is not None:
        out.print(f"wrote {out_dir / 'learners.json'} and {out_dir / 'learners.png'}")


def _label(curie: str, names: dict) -> str:
    node = names.get(curie)
    return f"{curie} {node.name[:40]}" if node else curie
