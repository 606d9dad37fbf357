"""`evocdss ontology ...`: curator edits as change sets, HermiT checks, publish, diff, history,
revert, Protégé round trips and RDF exports; and `evocdss sparql`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from api.commands.common import JsonOpt, StoreOpt, print_json, store_for
from kg.errors import KGError
from kg.model import Citation
from kg.settings import get_settings

app = typer.Typer(
    help="Curate the ontology: change sets, HermiT checks, versions, diffs, RDF.",
    no_args_is_help=True,
)

F = TypeVar("F", bound=Callable[..., Any])
Author = Annotated[str, typer.Option("--author", help="Who makes the edit.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded with the edit).")]
Source = Annotated[str, typer.Option("--source", help="Citation id of the edit's source.")]
Lang = Annotated[str, typer.Option("--lang", help="Language tag: en, fr, zh ...")]
Full = Annotated[bool, typer.Option("--full", help="Reason over the whole ontology.")]


def _repo() -> Any:
    from ontology.versions import Repository

    return Repository(get_settings())


def _errors(func: F) -> F:
    """User errors become one line on stderr and exit code 2; nothing is half-written."""
    from ontology.changes import EditError
    from ontology.versions import VersionError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (EditError, VersionError, KGError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


def _edit(cs_id: str, action: Callable[[Any], Any]) -> None:
    """Apply an edit to a draft change set and save it."""
    from ontology.publish import editor

    repo = _repo()
    changes = repo.changeset(cs_id)
    edit = action(editor(repo, changes))
    repo.save(changes)
    typer.echo(f"{changes.id}: {edit.op} +{len(edit.added)} -{len(edit.removed)} axioms")


@app.command("init")
@_errors
def init(
    store: StoreOpt = None,
    no_reason: Annotated[bool, typer.Option("--no-reason", help="Skip HermiT (~30 s).")] = False,
    if_absent: Annotated[
        bool, typer.Option("--if-absent", help="Do nothing if the ontology exists.")
    ] = False,
) -> None:
    """Build version 1 of the ontology from the KG (drug classes, HPO, ICD-10-CM)."""
    from ontology.publish import init_ontology

    repo = _repo()
    if if_absent and repo.head():
        typer.echo(f"ontology version {repo.head()} exists at {repo.root}")
        return
    v = init_ontology(repo, store_for(store), reason=not no_reason)
    typer.echo(f"ontology version {v.number}: {len(v.axioms):,} axioms")


@app.command("new")
@_errors
def new(author: Author, reason: Reason) -> None:
    """Start a draft change set; prints its id."""
    from ontology.changes import ChangeSet

    changes = ChangeSet.new(author, reason)
    _repo().save(changes)
    typer.echo(changes.id)


@app.command("add-class")
@_errors
def add_class(
    cs: str,
    cls: str,
    label: Annotated[str, typer.Option("--label")],
    parent: Annotated[str, typer.Option("--parent")],
    reason: Reason,
    category: Annotated[str, typer.Option("--category")] = "biolink:DrugClass",
    lang: Lang = "en",
    source: Source = "",
) -> None:
    """Add a class with a label under a parent."""
    _edit(
        cs,
        lambda ed: ed.add_class(
            cls, label, parent=parent, category=category, lang=lang, reason=reason, source=source
        ),
    )


@app.command("rename")
@_errors
def rename(
    cs: str,
    cls: str,
    label: Annotated[str, typer.Option("--label")],
    reason: Reason,
    lang: Lang = "en",
    source: Source = "",
) -> None:
    """Change a class's label in a language (the old one stays as a synonym)."""
    _edit(cs, lambda ed: ed.rename_class(cls, label, lang=lang, reason=reason, source=source))


@app.command("deprecate")
@_errors
def deprecate(
    cs: str,
    cls: str,
    reason: Reason,
    replaced_by: Annotated[str | None, typer.Option("--replaced-by")] = None,
    source: Source = "",
) -> None:
    """Deprecate a class (its id stays), pointing to its replacement."""
    _edit(
        cs,
        lambda ed: ed.deprecate_class(cls, replaced_by=replaced_by, reason=reason, source=source),
    )


@app.command("label")
@_errors
def label(
    cs: str,
    cls: str,
    text: str,
    reason: Reason,
    lang: Lang = "en",
    synonym: Annotated[bool, typer.Option("--synonym", help="Add a synonym.")] = False,
    source: Source = "",
) -> None:
    """Add a label (or with --synonym a synonym) in a language."""
    if synonym:
        _edit(cs, lambda ed: ed.add_synonym(cls, text, lang, reason=reason, source=source))
    else:
        _edit(cs, lambda ed: ed.add_label(cls, text, lang, reason=reason, source=source))


@app.command("subclass")
@_errors
def subclass(
    cs: str,
    sub: str,
    sup: str,
    reason: Reason,
    remove: Annotated[bool, typer.Option("--remove")] = False,
    source: Source = "",
) -> None:
    """Add (or --remove) SUB SubClassOf SUP."""
    if remove:
        _edit(cs, lambda ed: ed.remove_subclass(sub, sup, reason=reason, source=source))
    else:
        _edit(cs, lambda ed: ed.add_subclass(sub, sup, reason=reason, source=source))


@app.command("disjoint")
@_errors
def disjoint(
    cs: str,
    a: str,
    b: str,
    reason: Reason,
    remove: Annotated[bool, typer.Option("--remove")] = False,
    source: Source = "",
) -> None:
    """Add (or --remove) DisjointClasses(A, B)."""
    if remove:
        _edit(cs, lambda ed: ed.remove_disjoint(a, b, reason=reason, source=source))
    else:
        _edit(cs, lambda ed: ed.add_disjoint(a, b, reason=reason, source=source))


@app.command("rule")
@_errors
def rule(
    cs: str,
    a: str,
    b: str,
    severity: Annotated[str, typer.Option("--severity")],
    management: Annotated[str, typer.Option("--management")],
    source_id: Annotated[str, typer.Option("--source-id", help="Guideline citation id.")],
    source_title: Annotated[str, typer.Option("--source-title")],
    section: Annotated[str, typer.Option("--section")],
    date: Annotated[str, typer.Option("--date", help="Guideline date, YYYY-MM-DD.")],
    reason: Reason,
    source_url: Annotated[str, typer.Option("--source-url")] = "",
    mechanism: Annotated[str, typer.Option("--mechanism")] = "",
) -> None:
    """Add a class-level interaction rule a guideline states (members of A x members of B)."""

    def action(ed: Any) -> Any:
        cit = Citation(source_id, "guideline", source_title, date=date, url=source_url)
        return ed.add_rule(
            a,
            b,
            severity=severity,
            management=management,
            mechanism=mechanism,
            source=ed.cite(cit),
            section=section,
            date=date,
            reason=reason,
        )

    _edit(cs, action)


@app.command("show")
@_errors
def show(cs: str) -> None:
    """A change set as JSON: its edits, status and reports."""
    print_json(_repo().changeset(cs).to_dict())


@app.command("check")
@_errors
def check(cs: str, full: Full = False, as_json: JsonOpt = False) -> None:
    """Reason over the latest version with the change set applied (HermiT); exit 1 if it is
    inconsistent or incoherent, listing the unsatisfiable classes and why."""
    from ontology.publish import check_changes

    repo = _repo()
    result = check_changes(repo, repo.changeset(cs), scope="full" if full else "module")
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(f"{'coherent' if result.ok else 'INCOHERENT'} ({result.seconds:.1f} s)")
        for u in result.unsatisfiable:
            typer.echo(f"  {u.cls}: " + ", ".join(str(a) for a in u.axioms))
    if not result.ok:
        raise typer.Exit(1)


@app.command("publish")
@_errors
def publish(cs: str, store: StoreOpt = None, full: Full = False, as_json: JsonOpt = False) -> None:
    """Check a draft change set with HermiT, publish it as the next version and update the KG;
    a refused change set exits 1 with the unsatisfiable classes and their axioms."""
    from ontology.publish import Refused
    from ontology.publish import publish as do_publish

    try:
        manifest = do_publish(_repo(), store_for(store), cs, scope="full" if full else "module")
    except Refused as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        print_json(manifest)
    else:
        typer.echo(
            f"published version {manifest['version']} ({manifest['seconds']} s); "
            f"KG version {manifest['kg_version']}"
        )


@app.command("revert")
@_errors
def revert(cs: str, author: Author, reason: Reason, store: StoreOpt = None) -> None:
    """Publish the inverse of a published change set."""
    from ontology.publish import revert as do_revert

    manifest = do_revert(_repo(), store_for(store), cs, author=author, reason=reason)
    typer.echo(f"published version {manifest['version']} reverting {cs}")


@app.command("diff")
@_errors
def diff(v1: int, v2: int, as_json: JsonOpt = False) -> None:
    """Axioms added and removed between two versions, with who, when and why."""
    d = _repo().diff(v1, v2)
    if as_json:
        print_json(d)
        return
    for sign, key in (("+", "added"), ("-", "removed")):
        for row in d[key]:
            who = f"{row.get('author', '')} {row.get('changeset', '')}: {row.get('reason', '')}"
            typer.echo(f"{sign} {' '.join(row['axiom'])}  [{who.strip()}]")


@app.command("history")
@_errors
def history(cls: str, as_json: JsonOpt = False) -> None:
    """Who changed a class, when, why and on what source."""
    rows = _repo().history(cls)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(
            f"v{r['version']} {r['op']} by {r['author']} ({r['changeset']}): {r['reason']}"
            f"{' [' + r['source'] + ']' if r['source'] else ''}"
            f" +{len(r['added'])} -{len(r['removed'])}"
        )


@app.command("versions")
@_errors
def versions(as_json: JsonOpt = False) -> None:
    """Published versions with their change set, author and reason."""
    repo = _repo()
    rows = [repo.manifest(n) for n in repo.numbers()]
    keep = ("version", "changeset", "author", "reason", "time", "kg_version")
    rows = [{k: m.get(k) for k in keep} for m in rows]
    if as_json:
        print_json(rows)
        return
    for m in rows:
        typer.echo(f"v{m['version']} {m['changeset']} by {m['author']}: {m['reason']}")


@app.command("import")
@_errors
def import_(path: Path, author: Author, reason: Reason) -> None:
    """Turn an OWL file edited in Protégé into a draft change set; prints its id."""
    from ontology.publish import import_file

    changes = import_file(_repo(), path, author=author, reason=reason)
    typer.echo(f"{changes.id}: +{len(changes.added)} -{len(changes.removed)} axioms")


@app.command("export")
@_errors
def export(
    out: Path,
    fmt: Annotated[str, typer.Option("--format", help="turtle or json-ld")] = "turtle",
    with_kg: Annotated[bool, typer.Option("--with-kg", help="Add the KG slice.")] = False,
    store: StoreOpt = None,
) -> None:
    """Write the latest version with PROV-O provenance (and the KG slice) as Turtle/JSON-LD."""
    from ontology.rdf_export import export as do_export

    n = do_export(_repo(), out, fmt=fmt, store=store_for(store) if with_kg else None)
    typer.echo(f"wrote {n:,} triples to {out}")


@_errors
def sparql(
    query: Annotated[str, typer.Argument(help="A SPARQL SELECT query (or @file).")],
    store: StoreOpt = None,
    no_kg: Annotated[bool, typer.Option("--no-kg", help="The ontology only.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """SPARQL over the latest ontology (with provenance) and the KG slice: drug memberships,
    interactions, and every curated or inferred edge."""
    from ontology.rdf_export import combined_graph
    from ontology.rdf_export import sparql as run

    if query.startswith("@"):
        query = Path(query[1:]).read_text(encoding="utf-8")
    graph = combined_graph(_repo(), None if no_kg else store_for(store))
    rows = run(graph, query)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo("\t".join(row.values()))
