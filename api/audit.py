"""What happened to every request: the append-only audit log, metrics, and no leaks on errors.

Each request appends one JSON line to ``<home>/audit.log``: time, key id (a hash prefix, never
the key), method, route (the template, e.g. ``/v1/kg/nodes/{curie}``), the patient's pseudonym
when the request concerned a patient, the KG version, status and duration. No patient data,
query string or body ever goes into it, nor into any log line: an unexpected error is logged
by its type only and answered with a 500 that names the request's audit id.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics

log = logging.getLogger("evocdss.api")


#: HTTP methods recorded by name; any other (a client may send any token) is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AuditLog:
    """Appends JSON lines to a file opened in append mode (owner-readable only). The file is
    opened at the first write, and again when it has been moved or deleted (log rotation), so
    no record goes to a rotated-away file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = None
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is not None and self._identity != _identity(self.path):
                self._file.close()
                self._file = None
            if self._file is None:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
                stat = os.fstat(fd)
                self._identity = (stat.st_dev, stat.st_ino)
            self._file.write(line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``; None if there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The audit records in ``path``, oldest first."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Recorder:
    """Outermost ASGI middleware: audit record and metrics for every request; a 500 without
    details for any exception that escaped the routes."""

    def __init__(
        self, app: ASGIApp, audit: AuditLog, metrics: Metrics, kg_version: Callable[[], int]
    ) -> None:
        self.app = app
        self.audit = audit
        self.metrics = metrics
        self.kg_version = kg_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        request_id = uuid.uuid4().hex
        status = 500
        started = False

        async def watch(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # the answer must not leak what went wrong
            log.error("request %s failed: %s", request_id, type(exc).__name__)
            status = 500
            if not started:
                await _internal_error(send, request_id)
        seconds = time.perf_counter() - start
        route = scope.get("route")
        template = getattr(route, "path", None)
        method = scope["method"] if scope["method"] in METHODS else "other"
        version = state.get("kg_version")
        if version is None:
            try:
                version = self.kg_version()
            except Exception:  # the store being down must not lose the record
                version = None
        self.audit.write(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "id": request_id,
                "key": state.get("key_id"),
                "method": method,
                "route": template or "unmatched",
                "patient": state.get("patient"),
                "patients": state.get("patients"),
                "kg_version": version,
                "status": status,
                "ms": round(seconds * 1000, 2),
            }
        )
        self.metrics.observe(method, template or "other", status, seconds, version)


async def _internal_error(send: Send, request_id: str) -> None:
    body = json.dumps(
        {"detail": f"internal error; the audit log has request {request_id}"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
