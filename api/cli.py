"""The `evocdss` command line: a sub-command group per job, `--json` wherever it prints results."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.commands.common import JsonOpt, StoreOpt, print_json, store_for
from kg.errors import KGError
from kg.model import edge_id
from kg.settings import get_settings

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    help="evocdss: a self-evolving, knowledge-graph-centric clinical decision support engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kg_app = typer.Typer(help="Inspect, build and export the knowledge graph.", no_args_is_help=True)
app.add_typer(kg_app, name="kg")
eval_app = typer.Typer(
    help="Evaluations: metrics against baselines, JSON/Markdown/PNG.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")

out = Console()
err = Console(stderr=True)


class CLIError(Exception):
    """A user error the CLI reports as one line with a non-zero exit code."""


def progress_bar() -> Progress:
    """A rich progress bar on stderr for long work."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@kg_app.command("stats")
def kg_stats(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Counts of nodes, edges and citations by category, predicate and status."""
    s = store_for(store)
    stats = s.stats()
    if as_json:
        print_json({"store": s.url, **stats.to_dict()})
        return
    out.print(
        f"[bold]KG version {stats.version}[/] at {s.url}: {stats.nodes:,} nodes, "
        f"{stats.edges:,} edges, {stats.citations:,} citations"
    )
    for title, counts in (
        ("nodes by category", stats.nodes_by_category),
        ("edges by predicate", stats.edges_by_predicate),
        ("edges by status", stats.edges_by_status),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column(title.split(" by ")[1])
        table.add_column("count", justify="right")
        for key, n in counts.items():
            table.add_row(key, f"{n:,}")
        out.print(table)


@kg_app.command("show")
def kg_show(
    curie: Annotated[str, typer.Argument(help="Node id, e.g. HP:0001250")],
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Edges shown per direction.")] = 25,
    as_json: JsonOpt = False,
) -> None:
    """A node with its names, cross-references and edges (with statuses and citations)."""
    from kg.vocab import check_curie

    check_curie(curie)
    s = store_for(store)
    node = s.get_node(curie)
    if node is None:
        raise CLIError(f"no node {curie} in the KG; try `evocdss kg search` or check the prefix")
    outgoing = s.neighbors([curie], direction="out", per_node=limit)
    incoming = s.neighbors([curie], direction="in", per_node=limit)
    cited = s.get_citations({c for e in outgoing + incoming for c in e.citations})
    if as_json:
        print_json(
            {
                "node": node.data(),
                "outgoing": [e.to_dict() for e in outgoing],
                "incoming": [e.to_dict() for e in incoming],
                "citations": {k: v.to_dict() for k, v in cited.items()},
                "kg_version": s.version(),
            }
        )
        return
    out.print(f"[bold]{node.id}[/] {node.name}  [dim]({node.category})[/]")
    if node.synonyms:
        out.print("synonyms: " + "; ".join(f"{x.text} [{x.lang}]" for x in node.synonyms[:20]))
    if node.xrefs:
        out.print("xrefs: " + ", ".join(node.xrefs[:20]))
    for title, edges in (("outgoing", outgoing), ("incoming", incoming)):
        table = Table(title=f"{title} edges (up to {limit})", title_justify="left")
        for col in ("subject", "predicate", "object", "status", "conf", "citations"):
            table.add_column(col)
        for e in edges:
            table.add_row(
                e.subject,
                e.predicate,
                e.object,
                e.status,
                f"{e.confidence:.2f}",
                ", ".join(e.citations),
            )
        out.print(table)


@kg_app.command("history")
def kg_history(
    subject: str,
    predicate: str,
    object: str,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every change of one edge: who, when, what before and after, and why."""
    from datetime import UTC, datetime

    from kg.vocab import check_curie, check_predicate

    check_curie(subject)
    check_predicate(predicate)
    check_curie(object)
    s = store_for(store)
    eid = edge_id(subject, predicate, object)
    changes = s.changes(key=eid)
    if not changes:
        raise CLIError(f"no history for {subject} {predicate} {object}: the KG never held it")
    if as_json:
        print_json({"edge_id": eid, "changes": [c.to_dict() for c in changes]})
        return
    table = Table(title=f"history of {eid}: {subject} {predicate} {object}", title_justify="left")
    for col in ("seq", "time (UTC)", "actor", "action", "status", "reason"):
        table.add_column(col)
    for c in changes:
        when = datetime.fromtimestamp(c.time, UTC).strftime("%Y-%m-%d %H:%M:%S")
        status = (c.after or {}).get("status", "")
        table.add_row(str(c.seq), when, c.actor, c.action, status, c.reason)
    out.print(table)


@kg_app.command("search")
def kg_search(
    text: str,
    category: Annotated[str | None, typer.Option(help="e.g. biolink:Drug")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many nodes.")] = 20,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find nodes by name or synonym (case, accents and punctuation ignored)."""
    s = store_for(store)
    nodes = s.search(text, category=category, limit=limit)
    if as_json:
        print_json([n.data() for n in nodes])
        return
    if not nodes:
        raise CLIError(f"nothing in the KG is named like {text!r}")
    for n in nodes:
        out.print(f"{n.id}\t{n.name}\t[dim]{n.category}[/]")


@kg_app.command("export")
def kg_export(
    dest: Annotated[Path, typer.Argument(help="Output file (ttl) or path prefix (kgx).")],
    format: Annotated[str, typer.Option("--format", help="ttl or kgx")] = "ttl",
    store: StoreOpt = None,
) -> None:
    """Export the KG: Turtle with PROV-O provenance per edge, or KGX nodes/edges TSV."""
    from kg.export import export_kgx, export_turtle

    if format not in ("ttl", "kgx"):
        raise CLIError(f"unknown format {format!r}: use ttl or kgx")
    if not dest.parent.is_dir():
        raise CLIError(f"folder {dest.parent} does not exist")
    s = store_for(store)
    total = s.stats().edges
    with progress_bar() as bar:
        task = bar.add_task(f"exporting {format}", total=total)

        def tick(n: int) -> None:
            bar.advance(task, n)

        if format == "ttl":
            export_turtle(s, dest, tick)
            written = [dest]
        else:
            written = list(export_kgx(s, dest, tick))
        bar.update(task, completed=total)
    err.print(f"wrote {', '.join(map(str, written))} (KG version {s.version()})")


@kg_app.command("build")
def kg_build(
    store: StoreOpt = None,
    sources: Annotated[
        str | None, typer.Option(help="Comma-separated sources (default: all, in build order).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the build report (JSON) here.")] = None,
    if_absent: Annotated[
        bool,
        typer.Option("--if-absent", help="Load only the sources the KG does not hold yet."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load the bundled sources into the KG (idempotent: a second run writes nothing)."""
    from ingest.build import SOURCES, build_kg, loader, missing_sources

    settings = get_settings()
    url = store or settings.store_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in sources.split(",")] if sources else list(SOURCES)
    for name in names:
        loader(name)  # an unknown name fails here, before a store file is made
    s = store_for(url, create=True)
    if if_absent:
        wanted, names = names, missing_sources(s, names)
        if not names:
            err.print(f"KG already built at {s.url} (version {s.version()}); nothing to do")
            return
        if len(names) < len(wanted):
            err.print(f"KG at {s.url} lacks {', '.join(names)}: loading them")
    with progress_bar() as bar:
        overall = bar.add_task("sources", total=len(names))

        def on_batch(name: str, batch: Any) -> Any:
            task = bar.add_task(f"writing {name}", total=len(batch.nodes) + len(batch.edges))
            bar.advance(overall)
            return lambda n: bar.advance(task, n)

        results = build_kg(s, names, settings, on_batch=on_batch)
    summary = {
        "store": s.url,
        "kg_version": s.version(),
        "sources": [
            {
                "name": r.name,
                "seconds": round(r.seconds, 1),
                "nodes_created": r.write.nodes_created,
                "nodes_updated": r.write.nodes_updated,
                "edges_created": r.write.edges_created,
                "edges_updated": r.write.edges_updated,
                **{k: v for k, v in r.report.items() if k != "source"},
            }
            for r in results
        ],
    }
    if report:
        report.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"KG build into {s.url}", title_justify="left")
    for col in ("source", "nodes", "edges", "new/changed edges", "issues", "seconds"):
        table.add_column(col, justify="left" if col in ("source", "issues") else "right")
    for r in results:
        issues = ", ".join(f"{k}: {v['count']}" for k, v in r.report["issues"].items()) or "-"
        table.add_row(
            r.name,
            f"{r.report['nodes']:,}",
            f"{r.report['edges']:,}",
            f"{r.write.edges_created:,}/{r.write.edges_updated:,}",
            issues,
            f"{r.seconds:.1f}",
        )
    out.print(table)
    out.print(
        f"KG version {s.version()}. Next: `evocdss kg stats`"
        + (f"; report in {report}" if report else "")
    )


@app.command("link")
def link(
    text: Annotated[str, typer.Argument(help="A name or a code, e.g. 'Coumadin' or RXNORM:11289")],
    category: Annotated[
        str | None, typer.Option(help="drug, phenotype or disease (default: any)")
    ] = None,
    embeddings: Annotated[
        bool, typer.Option(help="Fall back to embedding similarity when no name matches.")
    ] = True,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Link a mention to a KG node: codes, then exact names/synonyms, then embeddings."""
    from ingest.linking import EntityLinker

    linker = EntityLinker(store_for(store), get_settings(), use_embeddings=embeddings)
    result = linker.link(text, category)
    if as_json:
        print_json(result.to_dict())
        return
    if result.node is None:
        near = ", ".join(f"{i} {n!r} ({s:.2f})" for i, n, s in result.candidates[:3])
        raise CLIError(
            f"unknown: nothing in the KG is {text!r}" + (f"; nearest: {near}" if near else "")
        )
    via = (
        f" via {result.matched} {result.matched_name!r}" if result.matched != result.node.id else ""
    )
    out.print(
        f"{result.node.id}\t{result.node.name}\t[dim]{result.method} {result.score:.2f}{via}[/]"
    )


@app.command("ask")
def ask(
    kind: Annotated[str, typer.Argument(help="medication-check, diagnosis, explain, ...")],
    input: Annotated[Path, typer.Option("--input", help="JSON lines, one query each; - for stdin")],
    output: Annotated[
        Path | None, typer.Option("--output", help="Write answers here (default: stdout).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Answer one query per input line, in order; a bad line gets an error object, the rest run."""
    from pydantic import ValidationError

    from reasoner.engine import Reasoner

    reasoner = Reasoner(store_for(store), get_settings())
    if kind not in reasoner.kinds:
        raise CLIError(f"unknown kind {kind!r}: use one of {', '.join(reasoner.kinds)}")
    lines = sys.stdin if str(input) == "-" else _read_lines(input)
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    errors = 0
    try:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                result = reasoner.ask(kind, json.loads(line)).model_dump(mode="json")
            except (ValueError, ValidationError, RecursionError) as exc:
                errors += 1
                result = {"line": n, "error": _one_line(exc)}
            sink.write(json.dumps(result, ensure_ascii=False).translate(LINE_BREAKS) + "\n")
    finally:
        if output:
            sink.close()
    if errors:
        err.print(f"{errors} line(s) had errors; their output lines say why")


#: Characters some readers take for line ends: escaped, so that an answer stays on one line.
LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise CLIError(f"no input file {path}")
    return path.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 is JSON text


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve CDS Hooks and the REST API (FastAPI + uvicorn, one worker)."""
    from api.server import serve as run_server

    run_server(host, port, get_settings())


def _mount_commands() -> None:
    """Mount the command groups that live in ``api/commands``."""
    from api.commands import diagnosis, learn, linkpred, ontology, trials

    app.add_typer(learn.app)
    eval_app.command("learners")(learn.eval_learners)
    app.add_typer(trials.app, name="trials")
    app.add_typer(ontology.app, name="ontology")
    app.command("sparql")(ontology.sparql)
    eval_app.command("trials")(trials.eval_trials)
    eval_app.command("diagnosis")(diagnosis.eval_diagnosis)
    eval_app.command("linkpred")(linkpred.eval_linkpred)
    app.add_typer(linkpred.app, name="linkpred")


_mount_commands()


def main() -> None:
    """Entry point of the `evocdss` console script: user errors become one line and exit 2."""
    import logging

    # Library loggers (e.g. the Neo4j driver) must not add lines to our one-line errors.
    logging.getLogger("neo4j").setLevel(logging.CRITICAL)
    try:
        app()
    except (CLIError, KGError, ValueError, OSError, sqlite3.Error) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        if not type(exc).__module__.startswith("neo4j"):  # the driver's errors say what failed
            raise
        err.print(f"[red]error:[/] Neo4j: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
