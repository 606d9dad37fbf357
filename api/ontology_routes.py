"""Curating the ontology over HTTP, under ``/v1/ontology``: what ``evocdss ontology ...`` does.

A curator opens a change set, adds edits to it, checks it with HermiT and publishes it as the
next version, which updates the KG in one atomic write; HermiT's refusal is a 409 naming the
unsatisfiable classes and the axioms that make them so, and nothing is published. Versions,
diffs, class histories and exports are readable by clinicians too. The author of a change set
and of each edit is the caller's key id, never the key.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from api.cds_models import ErrorOut, error_responses
from api.context import Ctx
from api.ontology_models import (
    ChangeSetOut,
    CheckOut,
    DiffOut,
    EditIn,
    EditOut,
    HistoryRow,
    ReasonIn,
    RefusedOut,
    VersionOut,
)
from api.security import Principal, require_role
from ontology.axioms import Axiom
from ontology.changes import DRAFT, ChangeSet, EditError, Editor
from ontology.publish import Refused, check_changes, editor, import_file, publish, revert
from ontology.rdf_export import export
from ontology.versions import Repository, VersionError

Curator = Annotated[Principal, Depends(require_role("curator"))]
Reader = Annotated[Principal, Depends(require_role("clinician", "curator"))]
CHANGESET_ID = re.compile(r"cs-[0-9a-z-]{1,60}")  # as ChangeSet.new makes them
CONFLICT = {409: {"model": ErrorOut, "description": "The change set is not in a state for this."}}
REFUSED = {409: {"model": RefusedOut, "description": "HermiT refused: nothing was published."}}
#: Request body media types an import reads, and the file suffix that tells the parser.
IMPORT_TYPES = {
    "application/rdf+xml": ".owl",
    "text/turtle": ".ttl",
    "application/n-triples": ".nt",
    "application/ld+json": ".jsonld",
}
EXPORT_TYPES = {"turtle": "text/turtle", "json-ld": "application/ld+json"}
Full = Annotated[bool, Query(description="Reason over the whole ontology (~30 s), not a module.")]


def repository(request: Request, ctx: Ctx) -> Repository:
    """The app's ontology repository (one per app: it caches the versions it loaded)."""
    repo = getattr(request.app.state, "ontology", None)
    if repo is None:
        repo = request.app.state.ontology = Repository(ctx.settings)
    return repo


Repo = Annotated[Repository, Depends(repository)]


def router() -> APIRouter:
    """The /v1/ontology routes."""
    api = APIRouter(prefix="/v1/ontology", tags=["Ontology"])

    @api.post(
        "/changesets",
        status_code=201,
        response_model=ChangeSetOut,
        responses=error_responses(400, 422),
    )
    def new_changeset(body: ReasonIn, repo: Repo, who: Curator) -> dict[str, Any]:
        """Open a draft change set; its author is the caller's key id."""
        changes = ChangeSet.new(who.key_id, body.reason)
        repo.save(changes)
        return changes.to_dict()

    @api.get("/changesets", response_model=list[ChangeSetOut], responses=error_responses(422))
    def changesets(
        repo: Repo,
        _: Reader,
        status: Annotated[Literal["draft", "published", "refused"] | None, Query()] = None,
    ) -> list[dict[str, Any]]:
        """Change sets, oldest first (optionally of one status)."""
        found = repo.all_changesets()
        return [c.to_dict() for c in found if status is None or c.status == status]

    @api.get(
        "/changesets/{cs_id}", response_model=ChangeSetOut, responses=error_responses(404, 422)
    )
    def show_changeset(cs_id: str, repo: Repo, _: Reader) -> dict[str, Any]:
        """A change set: its edits (who, when, why, on what source), status and reports."""
        return _changeset(repo, cs_id).to_dict()

    @api.post(
        "/changesets/{cs_id}/edits",
        status_code=201,
        response_model=EditOut,
        responses={**error_responses(400, 404, 422), **CONFLICT},
    )
    def add_edit(cs_id: str, edit: EditIn, repo: Repo, who: Curator) -> dict[str, Any]:
        """Add an edit to a draft change set (the ``op`` field says which): add_class,
        rename, deprecate, add_label, add_synonym, add_subclass, remove_subclass,
        add_disjoint, remove_disjoint, add_rule (a class-level rule citing a guideline),
        remove_rule. Its author is the caller's key id."""
        with repo.lock():
            changes = _draft(repo, cs_id)
            ed = _editor(repo, changes)
            _check_classes(edit, ed.state)
            try:
                made = edit.apply(ed, who.key_id)
            except EditError as exc:
                raise HTTPException(422, f"{edit.op}: {exc}") from None
            repo.save(changes)
        return made.to_dict()

    @api.post(
        "/changesets/{cs_id}/check",
        response_model=CheckOut,
        responses=error_responses(404, 422),
    )
    def check(cs_id: str, repo: Repo, _: Curator, full: Full = False) -> dict[str, Any]:
        """Reason with HermiT over the latest version with the change set applied: whether it
        is consistent and coherent, and each unsatisfiable class with the axioms that cause
        it. Nothing is saved."""
        changes = _changeset(repo, cs_id)
        with _lookup():
            result = check_changes(repo, changes, scope="full" if full else "module")
        return result.to_dict()

    @api.post(
        "/changesets/{cs_id}/publish",
        status_code=201,
        response_model=VersionOut,
        responses={**error_responses(404, 422, 503), **REFUSED},
    )
    def publish_changeset(cs_id: str, ctx: Ctx, repo: Repo, _: Curator, full: Full = False) -> Any:
        """Check a draft change set with HermiT and publish it as the next version, updating
        the KG in one transaction. 409 when HermiT refuses it (the unsatisfiable classes and
        why), or when it is not a draft or no longer applies; nothing is published then."""
        _changeset(repo, cs_id)
        try:
            with _lookup():
                return publish(repo, ctx.store, cs_id, scope="full" if full else "module")
        except Refused as exc:
            return JSONResponse({"detail": str(exc), "check": exc.result.to_dict()}, 409)
        except (EditError, ValueError) as exc:
            raise HTTPException(409, str(exc)) from None

    @api.post(
        "/changesets/{cs_id}/revert",
        status_code=201,
        response_model=VersionOut,
        responses={**error_responses(400, 404, 422, 503), **REFUSED},
    )
    def revert_changeset(cs_id: str, body: ReasonIn, ctx: Ctx, repo: Repo, who: Curator) -> Any:
        """Publish the inverse of a published change set as the next version (author: the
        caller's key id)."""
        _changeset(repo, cs_id)
        try:
            with _lookup():
                return revert(repo, ctx.store, cs_id, author=who.key_id, reason=body.reason)
        except Refused as exc:
            return JSONResponse({"detail": str(exc), "check": exc.result.to_dict()}, 409)
        except (EditError, ValueError) as exc:
            raise HTTPException(409, str(exc)) from None

    @api.get("/versions", response_model=list[VersionOut], responses=error_responses())
    def versions(repo: Repo, _: Reader) -> list[dict[str, Any]]:
        """Published versions, oldest first: change set, author, reason, check and KG sync."""
        return [repo.manifest(n) for n in repo.numbers()]

    @api.get(
        "/versions/{number}/owl",
        response_class=FileResponse,
        responses={
            200: {"content": {"application/rdf+xml": {}}, "description": "OWL (RDF/XML)."},
            **error_responses(404, 422),
        },
    )
    def version_owl(number: int, repo: Repo, _: Reader) -> FileResponse:
        """A published version as the OWL file (RDF/XML) Protégé opens; edit it and send it
        back to ``POST /v1/ontology/import``."""
        with _lookup():
            repo.manifest(number)
        path = repo.folder(number) / "ontology.owl"
        return FileResponse(path, media_type="application/rdf+xml", filename=f"v{number}.owl")

    @api.get("/diff/{v1}/{v2}", response_model=DiffOut, responses=error_responses(404, 422))
    def diff(v1: int, v2: int, repo: Repo, _: Reader) -> dict[str, Any]:
        """Axioms added and removed from version v1 to v2, with who, when, why and source."""
        with _lookup():
            return repo.diff(v1, v2)

    @api.get("/history/{cls:path}", response_model=list[HistoryRow], responses=error_responses(404))
    def history(cls: str, repo: Repo, _: Reader) -> list[dict[str, Any]]:
        """Who changed a class, when, why and on what source, oldest first."""
        with _lookup():
            return repo.history(cls)

    @api.post(
        "/import",
        status_code=201,
        response_model=ChangeSetOut,
        responses=error_responses(404, 413, 415, 422),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {t: {"schema": {"type": "string"}} for t in IMPORT_TYPES},
            }
        },
    )
    async def import_owl(
        request: Request,
        repo: Repo,
        who: Curator,
        reason: Annotated[str, Query(min_length=1, max_length=2000, description="Why.")],
    ) -> dict[str, Any]:
        """Turn an OWL file (RDF/XML as Protégé saves it, Turtle, N-Triples or JSON-LD: the
        request body) into a draft change set against the latest version."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in IMPORT_TYPES:
            raise HTTPException(
                415, f"content type {media or 'none'!r}: send one of {', '.join(IMPORT_TYPES)}"
            )
        body = await request.body()
        changes = await run_in_threadpool(_import, repo, body, media, who.key_id, reason.strip())
        return changes.to_dict()

    @api.get(
        "/export",
        response_class=Response,
        responses={
            200: {"content": {t: {} for t in EXPORT_TYPES.values()}, "description": "RDF."},
            **error_responses(404, 422),
        },
    )
    def export_rdf(
        ctx: Ctx,
        repo: Repo,
        _: Reader,
        format: Annotated[Literal["turtle", "json-ld"], Query()] = "turtle",
        with_kg: Annotated[bool, Query(description="Add the KG slice.")] = False,
    ) -> Response:
        """The latest version with PROV-O provenance (and the KG slice) as Turtle or JSON-LD."""
        with tempfile.TemporaryDirectory() as tmp, _lookup():
            out = Path(tmp) / "ontology"
            export(repo, out, fmt=format, store=ctx.store if with_kg else None)
            return Response(out.read_bytes(), media_type=EXPORT_TYPES[format])

    return api


def _changeset(repo: Repository, cs_id: str) -> ChangeSet:
    if not CHANGESET_ID.fullmatch(cs_id):
        raise HTTPException(404, f"no change set {cs_id[:80]}")
    with _lookup():
        return repo.changeset(cs_id)


def _draft(repo: Repository, cs_id: str) -> ChangeSet:
    changes = _changeset(repo, cs_id)
    if changes.status != DRAFT:
        raise HTTPException(409, f"change set {cs_id} is {changes.status}: only drafts take edits")
    return changes


def _editor(repo: Repository, changes: ChangeSet) -> Editor:
    with _lookup():
        return editor(repo, changes)


@contextmanager
def _lookup() -> Iterator[None]:
    """A change set or version that does not exist is a 404."""
    try:
        yield
    except VersionError as exc:
        raise HTTPException(404, str(exc)) from None


def _import(repo: Repository, body: bytes, media: str, author: str, reason: str) -> ChangeSet:
    """A draft change set from an uploaded file; its source is the upload's digest."""
    source = f"upload:sha256-{hashlib.sha256(body).hexdigest()[:16]}"
    with tempfile.TemporaryDirectory() as tmp, _lookup():
        path = Path(tmp) / f"body{IMPORT_TYPES[media]}"
        path.write_bytes(body)
        try:
            return import_file(repo, path, author=author, reason=reason, source=source)
        except (EditError, ValueError) as exc:
            raise HTTPException(422, f"body: {str(exc).replace(str(path), 'the upload')}") from None
        except VersionError:
            raise
        except Exception as exc:  # the RDF parsers raise many kinds of errors
            raise HTTPException(422, f"body: not {media}: {exc}") from None


def _check_classes(edit: Any, state: set[Axiom]) -> None:
    """404 naming the field for a class the ontology lacks; 409 for a class added twice."""
    for name in edit.known:
        cls = getattr(edit, name)
        if cls is not None and Axiom("class", (cls,)) not in state:
            field = type(edit).model_fields[name].alias or name
            raise HTTPException(404, f"{field}: no class {cls} in the ontology")
    if edit.op == "add_class" and Axiom("class", (edit.cls,)) in state:
        raise HTTPException(409, f"class: {edit.cls} exists already")
