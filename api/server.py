"""Serve the HTTP API with uvicorn (one worker process).

    python -m api.server [--host 127.0.0.1] [--port 8000] [--kg var/kg.sqlite]

``evocdss serve`` calls ``serve``. Uvicorn's access log is off: it would print query strings,
which may hold what a clinician typed; the audit log (``<home>/audit.log``) records every
request without them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kg.errors import KGError
from kg.settings import Settings, get_settings


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Build the app and serve it until interrupted; raises ``api.security.ConfigError`` (no API
    key configured) or ``kg.errors.StoreUnavailable`` (no KG) before listening."""
    import uvicorn

    from api.app import create_app

    app = create_app(settings=settings or get_settings())
    warm_up(app)
    store = app.state.ctx.store
    sys.stderr.write(
        f"evocdss: serving http://{host}:{port} over {store.url} (KG version {store.version()})\n"
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=1,
        access_log=False,
        server_header=False,
        log_level="warning",
    )


def warm_up(app: Any) -> None:
    """Load what the first requests would otherwise wait for: the drug-name embedding index
    (built once per KG version, then cached on disk) and the sentence encoder."""
    linker = app.state.ctx.reasoner.linker
    sys.stderr.write("evocdss: loading the drug-name index (built once per KG version)...\n")
    linker.index("drug").nearest("paracetamol")


def main(argv: list[str] | None = None) -> None:
    """Command line of ``python -m api.server``: errors are one line and exit code 2."""
    parser = argparse.ArgumentParser(description="Serve the evocdss HTTP API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--kg", help="SQLite KG file (default: EVOCDSS_KG_URL or var/kg.sqlite)")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.kg:
        settings = settings.model_copy(update={"kg_url": f"sqlite:///{args.kg}"})
    try:
        serve(args.host, args.port, settings)
    except (KGError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
