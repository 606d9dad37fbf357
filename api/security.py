"""Who may call the HTTP API: API keys mapped to roles, a per-key rate limit and a body limit.

Keys come from ``EVOCDSS_API_KEYS`` (``key:role,key:role``) and/or ``EVOCDSS_API_KEYS_FILE``
(one ``key:role`` per line). A request sends ``Authorization: Bearer <key>``; the key is compared
in constant time with every configured key (SHA-256 digests, ``hmac.compare_digest``) and is
never logged: logs and the audit trail know a key only by its ``key_id``, a prefix of its hash.

``Guard`` is the ASGI middleware that, in order, refuses bodies over the size limit (413),
requests without a valid key (401 with ``WWW-Authenticate: Bearer``) and keys over their rate
(429 with ``Retry-After``); routes then ask for roles with ``require_role`` (403).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kg.settings import Settings

ROLES = ("clinician", "curator", "ingest", "admin")
MIN_KEY_LENGTH = 16
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

#: Documents the bearer scheme in OpenAPI; ``Guard`` does the checking.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Bearer <key>`.")


class ConfigError(ValueError):
    """The API's security configuration is unusable (the server must not start)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the key's id (a hash prefix, safe to log) and its role."""

    key_id: str
    role: str


def key_id(key: str) -> str:
    """The loggable id of a key: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class ApiKeys:
    """The configured keys; ``lookup`` finds a key's principal in constant time."""

    def __init__(self, pairs: list[tuple[str, str]], *, open_access: bool = False) -> None:
        self._keys = [
            (hashlib.sha256(k.encode()).digest(), Principal(key_id(k), r)) for k, r in pairs
        ]
        self.open_access = open_access and not pairs

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Read ``api_keys`` and ``api_keys_file``; raises ``ConfigError`` (naming the entry,
        never the key) when an entry is malformed, when one key is given two roles, or when there
        is no key and open access is not allowed."""
        pairs: list[tuple[str, str]] = []
        first_seen: dict[str, tuple[str, str]] = {}  # key -> (role, where)

        def add(entry: str, where: str) -> None:
            key, role = _parse_entry(entry, where)
            seen_role, seen_where = first_seen.setdefault(key, (role, where))
            if seen_role != role:  # a key has one role; the message names places, not the key
                raise ConfigError(
                    f"{where} gives role {role!r} to the key that {seen_where} gives role "
                    f"{seen_role!r}: give each key one role"
                )
            pairs.append((key, role))

        keys = settings.api_keys
        raw = keys.get_secret_value() if isinstance(keys, SecretStr) else str(keys)
        for n, entry in enumerate(raw.split(","), 1):
            if entry.strip():
                add(entry, f"entry {n} of EVOCDSS_API_KEYS")
        if settings.api_keys_file is not None:
            path = Path(settings.api_keys_file)
            if not path.is_file():
                raise ConfigError(f"EVOCDSS_API_KEYS_FILE {path} does not exist")
            for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    add(line, f"line {n} of {path}")
        if not pairs and not settings.api_open_access:
            raise ConfigError(
                "no API key configured: set EVOCDSS_API_KEYS='<key>:<role>,...' or "
                "EVOCDSS_API_KEYS_FILE (or EVOCDSS_API_OPEN_ACCESS=true for local development)"
            )
        return cls(pairs, open_access=settings.api_open_access)

    def lookup(self, presented: str) -> Principal | None:
        """The principal of ``presented``, comparing its digest with every key's digest."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for stored, principal in self._keys:
            if hmac.compare_digest(digest, stored) and found is None:
                found = principal
        return found


def _parse_entry(entry: str, where: str) -> tuple[str, str]:
    key, sep, role = entry.strip().rpartition(":")
    role = role.strip()
    if not sep or not key:
        raise ConfigError(f"{where} is not of the form key:role")
    if role not in ROLES:  # not echoed: an entry written role:key would print the key
        raise ConfigError(
            f"{where} has an unknown role: use key:role, role one of {', '.join(ROLES)}"
        )
    if len(key) < MIN_KEY_LENGTH or key != key.strip():
        raise ConfigError(
            f"{where}: keys must be at least {MIN_KEY_LENGTH} characters without outer spaces"
        )
    return key, role


class RateLimiter:
    """A token bucket per key: ``rate`` tokens per second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0 when allowed, else the seconds until one is free."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def principal(request: Request) -> Principal:
    """The caller that ``Guard`` authenticated."""
    found = request.scope.get("state", {}).get("principal")
    if found is None:  # a route outside the guard's protection asked for a role
        raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
    return found


def require_role(*roles: str) -> Callable[..., Principal]:
    """A dependency that lets through callers with one of ``roles`` (``admin`` always): 403
    otherwise. Routes that change knowledge use ``require_role("curator")``."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}: use {', '.join(ROLES)}")
    allowed = frozenset({*roles, "admin"})

    async def check(request: Request, _: Annotated[Any, Depends(bearer_scheme)]) -> Principal:
        caller = principal(request)
        if caller.role not in allowed:
            raise HTTPException(
                403, f"role {caller.role!r} may not do this; needs {' or '.join(sorted(allowed))}"
            )
        return caller

    return check


class Guard:
    """ASGI middleware: body size limit (413), API key (401), rate limit (429)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, limiter: RateLimiter, max_body: int) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _reply(send, 413, f"request body over {self.max_body} bytes")
            return
        public = scope["path"] in PUBLIC_PATHS
        if not public:
            caller = self._authenticate(scope)
            if isinstance(caller, str):
                await _reply(send, 401, caller, {"www-authenticate": _challenge(caller)})
                return
            state["principal"] = caller
            state["key_id"] = caller.key_id
            wait = self.limiter.acquire(caller.key_id)
            if wait:
                retry = str(max(1, math.ceil(wait)))
                await _reply(send, 429, "rate limit exceeded", {"retry-after": retry})
                return
        await self.app(scope, self._limited(receive), send)

    def _authenticate(self, scope: Scope) -> Principal | str:
        header = _header(scope, b"authorization")
        if header is None:
            if self.keys.open_access:
                return Principal("open-access", "admin")
            return "missing API key: send Authorization: Bearer <key>"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "malformed Authorization header: send Authorization: Bearer <key>"
        found = self.keys.lookup(token.strip())
        return found if found is not None else "invalid API key"

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body

        async def wrapped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body over {limit} bytes")
            return message

        return wrapped


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _challenge(reason: str) -> str:
    if reason.startswith("missing"):
        return 'Bearer realm="evocdss"'
    return 'Bearer realm="evocdss", error="invalid_token"'


async def _reply(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
