"""Learner state on disk: the learners, where they are in the record stream, and the salt of
the patient pseudonyms they saw, so that a restart resumes without counting anything twice.

The position is the number of events learned, the time of the last one, the ids of the events
learned at that time (ties), and an order-free digest of every id learned (the sum of their
64-bit hashes). A replay skips what the position says was learned and checks that what it
skipped is exactly that.

The file is a pickle written by this program under ``<home>/learners`` (write-then-rename, so
a crash leaves the previous state); only load files you wrote. A process that learns holds the
state (``locked``: an advisory lock on ``<file>.lock``) from reading it to saving it, so that
``evocdss learn`` and the workers of a server never overwrite each other's events.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kg.settings import Settings

STATE_FORMAT = 2  # 2: the state records the version of each learner it holds
MASK = (1 << 64) - 1


def state_path(settings: Settings) -> Path:
    """Where the learners' state lives by default: ``<learners_dir>/state.pkl`` (default
    ``<home>/learners/state.pkl``)."""
    return settings.learners_path / "state.pkl"


class StateBusy(OSError):
    """Another process is learning with the same state file."""


@contextmanager
def locked(path: Path, wait: float) -> Iterator[None]:
    """Hold the learner state at ``path`` for this process while the block runs, waiting at
    most ``wait`` seconds for another holder to finish (then ``StateBusy``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    with path.with_name(path.name + ".lock").open("a") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateBusy(
                        f"learner state {path} is in use by another process (evocdss learn or "
                        "a server): try again when it has finished"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def id_hash(event_id: str) -> int:
    """The 64-bit hash of an event id that the position's digest sums."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest())


@dataclass
class StreamPosition:
    """How far the learners got in the time-ordered record stream."""

    events: int = 0
    last_time: datetime | None = None
    at_last_time: set[str] = field(default_factory=set)
    digest: int = 0

    def learned(self, event_id: str, when: datetime) -> bool:
        """Whether the event at ``when`` with this id was learned already."""
        if self.last_time is None or when > self.last_time:
            return False
        return when < self.last_time or event_id in self.at_last_time

    def advance(self, event_id: str, when: datetime) -> None:
        """Record that the event was learned (events come oldest first)."""
        if when != self.last_time:
            self.last_time = when
            self.at_last_time = set()
        self.at_last_time.add(event_id)
        self.events += 1
        self.digest = (self.digest + id_hash(event_id)) & MASK

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "last_time": self.last_time.isoformat() if self.last_time else None,
            "digest": f"{self.digest:016x}",
        }


@dataclass
class LearnerState:
    """The learners by name, their stream position and the pseudonym salt of their patients."""

    learners: dict[str, Any]
    salt: str
    position: StreamPosition = field(default_factory=StreamPosition)
    format: int = STATE_FORMAT
    created: float = field(default_factory=time.time)
    saved: float = 0.0
    learner_versions: dict[str, int] = field(default_factory=dict)
    """Each learner's version when the state was saved (a class's version is not pickled)."""

    def versions(self) -> dict[str, str]:
        return {name: f"{lrn.name}@{lrn.version}" for name, lrn in self.learners.items()}


def new_state(learners: dict[str, Any], settings: Settings) -> LearnerState:
    """A fresh state; the salt is the configured pseudonym salt, else a random one kept in the
    state (patient pseudonyms must stay the same across runs for the learners to resume)."""
    return LearnerState(learners=learners, salt=settings.pseudonym_salt or secrets.token_hex(16))


def load_state(path: Path, current: dict[str, type]) -> LearnerState | None:
    """The state saved at ``path`` (None if there is none). ``current`` maps learner names to
    their classes: a state saved by another version of a learner is refused."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as f:
            state = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ValueError(
            f"learner state {path} is unreadable ({exc}): start over with --reset"
        ) from None
    if not isinstance(state, LearnerState) or state.format != STATE_FORMAT:
        raise ValueError(f"learner state {path} has another format: start over with --reset")
    for name, cls in current.items():
        saved = state.learner_versions.get(name)
        if name in state.learners and saved != cls.version:
            raise ValueError(
                f"learner state {path} was saved by {name}@{saved}, this is "
                f"{name}@{cls.version}: start over with --reset"
            )
    return state


def save_state(state: LearnerState, path: Path) -> None:
    """Write the state atomically (a crash leaves the previous file)."""
    state.saved = time.time()
    state.learner_versions = {name: lrn.version for name, lrn in state.learners.items()}
    write_pickle(state, path)


def write_pickle(obj: Any, path: Path) -> None:
    """Pickle ``obj`` to ``path`` atomically: written to a file of its own beside it, synced,
    then renamed over it (a crash leaves the previous file; concurrent writers do not collide,
    the last rename wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as f:
        try:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            os.unlink(f.name)
            raise
    os.replace(f.name, path)
