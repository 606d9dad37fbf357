"""CDS Hooks cards issued and clinicians' feedback on them (accepted / overridden, with reason).

Both live in one SQLite file (``Settings.feedback_path``). Every card a service returns is
recorded with what it was about (problem type, severity, KG entities, KG version), so that the
learners can read feedback joined with its card through ``iter_feedback`` without patient data.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kg.settings import get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    uuid TEXT PRIMARY KEY, service TEXT NOT NULL, hook_instance TEXT NOT NULL,
    issued REAL NOT NULL, kg_version INTEGER NOT NULL, indicator TEXT NOT NULL,
    summary TEXT NOT NULL, problem_type TEXT NOT NULL, severity TEXT NOT NULL,
    entities TEXT NOT NULL, suggestions TEXT NOT NULL, proposed INTEGER NOT NULL,
    override_reasons TEXT
);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, card TEXT NOT NULL REFERENCES cards (uuid),
    service TEXT NOT NULL, outcome TEXT NOT NULL, outcome_time TEXT NOT NULL,
    accepted TEXT NOT NULL, reason_code TEXT, reason_system TEXT, reason_display TEXT,
    comment TEXT, received REAL NOT NULL, key_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_card ON feedback (card);
"""


# --- the request body (CDS Hooks 2.0 feedback) ---------------------------------------------


class Coding(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(min_length=1, max_length=200)
    system: str | None = Field(default=None, max_length=500)
    display: str | None = Field(default=None, max_length=500)


class OverrideReasonIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=2000)


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=100)


class FeedbackItem(BaseModel):
    """The outcome of one card."""

    model_config = ConfigDict(extra="allow")

    card: str = Field(min_length=1, max_length=100, description="The card's uuid.")
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list, max_length=50)
    overrideReason: OverrideReasonIn | None = None
    outcomeTimestamp: datetime

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackItem:
        if self.outcome == "accepted" and self.overrideReason is not None:
            raise ValueError("an accepted card has no overrideReason")
        if self.outcome == "overridden" and self.acceptedSuggestions:
            raise ValueError("an overridden card has no acceptedSuggestions")
        return self


class FeedbackRequest(BaseModel):
    """``POST /cds-services/{id}/feedback``: outcomes of cards the service returned."""

    model_config = ConfigDict(extra="allow")

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_outcome_per_card(self) -> FeedbackRequest:
        seen: set[str] = set()
        for i, item in enumerate(self.feedback):
            if item.card in seen:
                raise ValueError(f"feedback[{i}]: card {item.card!r} is already in this request")
            seen.add(item.card)
        return self


# --- what learners read --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedCard:
    """A card as issued: what the service recorded about it."""

    uuid: str
    service: str
    hook_instance: str
    kg_version: int
    indicator: str
    summary: str
    problem_type: str
    severity: str
    entities: tuple[str, ...]
    suggestions: tuple[str, ...]
    proposed: bool = False
    override_reasons: tuple[tuple[str, str], ...] = ()
    """The (system, code) of each override reason the card offers."""


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One feedback outcome joined with the card it is about."""

    seq: int
    card: IssuedCard
    outcome: str
    outcome_time: str
    accepted_suggestions: tuple[str, ...]
    override_code: str | None
    override_system: str | None
    override_display: str | None
    comment: str | None
    received: float
    key_id: str


class UnknownCard(LookupError):
    """Feedback names a card the service did not issue."""


class FeedbackConflict(ValueError):
    """Feedback gives a card another outcome than the one already stored for it."""


class FeedbackStore:
    """The SQLite file of cards and feedback (one connection, serialised by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._conn.executescript(SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(cards)")}
        if "override_reasons" not in columns:  # a file written before cards kept their reasons
            self._conn.execute("ALTER TABLE cards ADD COLUMN override_reasons TEXT")

    @property
    def _conn(self) -> sqlite3.Connection:
        """The connection, opened on first use after creation or ``close``."""
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._db = db
        return self._db

    def record_cards(self, cards: Iterable[IssuedCard]) -> None:
        """Remember cards as they are returned."""
        rows = [
            (
                c.uuid,
                c.service,
                c.hook_instance,
                time.time(),
                c.kg_version,
                c.indicator,
                c.summary,
                c.problem_type,
                c.severity,
                json.dumps(list(c.entities)),
                json.dumps(list(c.suggestions)),
                int(c.proposed),
                json.dumps([list(r) for r in c.override_reasons]),
            )
            for c in cards
        ]
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR IGNORE INTO cards VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            self._conn.execute("COMMIT")

    def record_feedback(self, service: str, request: FeedbackRequest, key_id: str) -> int:
        """Store every item of ``request`` or none; returns the number stored. A card has one
        outcome: an item repeating the stored one (a client's retry) is not stored again, and
        ``FeedbackConflict`` is raised for another outcome. Raises ``UnknownCard`` for a card
        this service did not issue and ``ValueError`` for a suggestion the card did not offer."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                stored = sum(self._insert(service, item, key_id) for item in request.feedback)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return stored

    def _insert(self, service: str, item: FeedbackItem, key_id: str) -> bool:
        row = self._conn.execute(
            "SELECT suggestions, override_reasons FROM cards WHERE uuid = ? AND service = ?",
            (item.card, service),
        ).fetchone()
        if row is None:
            raise UnknownCard(f"card {item.card!r} was not issued by service {service!r}")
        before = self._conn.execute(
            "SELECT outcome FROM feedback WHERE card = ? ORDER BY seq LIMIT 1", (item.card,)
        ).fetchone()
        if before is not None:
            if before[0] == item.outcome:
                return False
            raise FeedbackConflict(
                f"card {item.card!r} is already recorded as {before[0]}: a card takes one outcome"
            )
        offered = set(json.loads(row[0]))
        accepted = [s.id for s in item.acceptedSuggestions]
        stray = [s for s in accepted if s not in offered]
        if stray:
            raise ValueError(f"card {item.card!r} offered no suggestion {stray[0]!r}")
        reason = item.overrideReason.reason if item.overrideReason else None
        if reason is not None and row[1] is not None:  # None: issued before reasons were kept
            offered_reasons = json.loads(row[1])
            if not any(
                code == reason.code and reason.system in (None, system)
                for system, code in offered_reasons
            ):
                raise ValueError(
                    f"card {item.card!r} offered no override reason {reason.code!r}"
                    + (f" of system {reason.system!r}" if reason.system else "")
                )
        self._conn.execute(
            "INSERT INTO feedback (card, service, outcome, outcome_time, accepted, reason_code, "
            "reason_system, reason_display, comment, received, key_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                item.card,
                service,
                item.outcome,
                item.outcomeTimestamp.isoformat(),
                json.dumps(accepted),
                reason.code if reason else None,
                reason.system if reason else None,
                reason.display if reason else None,
                item.overrideReason.userComment if item.overrideReason else None,
                time.time(),
                key_id,
            ),
        )
        return True

    def iter_feedback(self, since: int = 0) -> Iterator[FeedbackRecord]:
        """Feedback with ``seq > since``, oldest first, each joined with its card."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.seq, c.uuid, c.service, c.hook_instance, c.kg_version, c.indicator, "
                "c.summary, c.problem_type, c.severity, c.entities, c.suggestions, c.proposed, "
                "f.outcome, f.outcome_time, f.accepted, f.reason_code, f.reason_system, "
                "f.reason_display, f.comment, f.received, f.key_id "
                "FROM feedback f JOIN cards c ON c.uuid = f.card WHERE f.seq > ? ORDER BY f.seq",
                (since,),
            ).fetchall()
        for r in rows:
            card = IssuedCard(
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                tuple(json.loads(r[9])),
                tuple(json.loads(r[10])),
                bool(r[11]),
            )
            yield FeedbackRecord(r[0], card, r[12], r[13], tuple(json.loads(r[14])), *r[15:21])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def iter_feedback(path: Path | None = None, *, since: int = 0) -> Iterator[FeedbackRecord]:
    """Every feedback record (``seq > since``) of the feedback file at ``path`` (default:
    ``Settings.feedback_path``), oldest first; nothing when the file does not exist yet."""
    path = Path(path) if path is not None else get_settings().feedback_path
    if not path.exists():
        return
    store = FeedbackStore(path)
    try:
        yield from store.iter_feedback(since)
    finally:
        store.close()
