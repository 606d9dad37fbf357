"""The HTTP API: CDS Hooks 2.0 services and a REST API over one KG store.

``create_app`` builds the FastAPI app. Every route but ``/healthz`` (and the OpenAPI
documents) needs an API key; each request is audited (``api.audit``) and counted
(``/metrics``). Bad input is a 4xx naming the field (malformed JSON: 400), never a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from api import cds_hooks, ontology_routes, proposal_routes, rest
from api.audit import AuditLog, Recorder
from api.cds_models import error_responses
from api.context import ApiContext, Ctx
from api.feedback import FeedbackStore
from api.metrics import Metrics
from api.security import ApiKeys, Guard, Principal, RateLimiter, require_role
from kg import open_store
from kg.cache import CachedStore
from kg.errors import KGError, NotFound, StoreUnavailable
from kg.settings import Settings, get_settings
from kg.store import GraphStore
from reasoner.engine import Reasoner

DESCRIPTION = """Clinical decision support over a cited medical knowledge graph.

* **CDS Hooks 2.0**: `GET /cds-services`, `order-select`, `order-sign`, `patient-view` and
  feedback. Cards come with the full reasoning trace in `extension.evocdss`.
* **REST** under `/v1`: ask the reasoner, read the KG, read FHIR R4 records.
* **Curation** (role curator): `/v1/ontology` change sets checked by HermiT, versions, diffs
  and histories; `/v1/proposals` to accept or reject what the learners propose.

Send `Authorization: Bearer <API key>`; roles are clinician, curator, ingest and admin.
Every answer is machine-generated decision support for a clinician, not a decision.
"""

Admin = Annotated[Principal, Depends(require_role("admin"))]


def create_app(store: GraphStore | None = None, settings: Settings | None = None) -> FastAPI:
    """The API over ``store`` (default: the configured KG, which must exist).

    Raises ``api.security.ConfigError`` when no API key is configured (and open access is not
    allowed), and ``kg.errors.StoreUnavailable`` when the KG cannot be opened.
    """
    settings = settings or get_settings()
    keys = ApiKeys.from_settings(settings)
    own_store = store is None
    store = store if store is not None else open_store(settings.store_url, create=False)
    ctx = ApiContext(
        store=store,
        settings=settings,
        reasoner=Reasoner(CachedStore(store), settings),
        feedback=FeedbackStore(settings.feedback_path),
        metrics=Metrics(),
    )
    audit = AuditLog(settings.audit_log_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.feedback.close()
        audit.close()
        if own_store:
            store.close()

    app = FastAPI(
        title="evocdss",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(cds_hooks.router())
    app.include_router(rest.router(ctx.reasoner.kinds))
    app.include_router(ontology_routes.router())
    app.include_router(proposal_routes.router())

    @app.get(
        "/healthz",
        response_model=rest.Health,
        tags=["Operations"],
        responses=error_responses(503),
    )
    async def healthz(ctx: Ctx) -> rest.Health:
        """Liveness and the KG version (no API key needed)."""
        return rest.health(ctx)

    @app.get(
        "/metrics",
        tags=["Operations"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text."},
            **error_responses(),
        },
    )
    def metrics(ctx: Ctx, _: Admin) -> Response:
        """Prometheus metrics (role admin)."""
        return Response(ctx.metrics.exposition(), media_type=ctx.metrics.content_type)

    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(KGError, _kg_error)
    app.add_middleware(
        Guard,
        keys=keys,
        limiter=RateLimiter(settings.api_rate_per_second, settings.api_rate_burst),
        max_body=settings.api_max_body_bytes,
    )
    origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
    if origins:  # outside the guard: a browser's preflight carries no API key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(Recorder, audit=audit, metrics=ctx.metrics, kg_version=store.version)
    return app


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """Malformed JSON is a 400 that says where; schema violations a 422 naming each field."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", "not JSON")
        position = bad_json["loc"][-1] if bad_json.get("loc") else "?"
        return JSONResponse(
            {"detail": f"malformed JSON body: {reason} (at character {position})"}, 400
        )
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    return JSONResponse({"detail": detail}, 422)


async def _kg_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StoreUnavailable):
        return JSONResponse({"detail": "KG store unavailable"}, 503)
    if isinstance(exc, NotFound):
        return JSONResponse({"detail": str(exc)}, 404)
    return JSONResponse({"detail": str(exc)}, 422)


def _version() -> str:
    try:
        return version("evocdss")
    except PackageNotFoundError:
        return "0"
