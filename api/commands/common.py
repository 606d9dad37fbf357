"""Options and helpers every command group shares."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from kg import open_store
from kg.settings import get_settings
from kg.store import GraphStore

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (default: EVOCDSS_KG_URL or sqlite:///var/kg.sqlite)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def store_for(url: str | None, *, create: bool = False) -> GraphStore:
    """Open the store named on the command line, or the configured one."""
    return open_store(url or get_settings().store_url, create=create)


def print_json(data: Any) -> None:
    """Print JSON for scripts (UTF-8, indented)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
