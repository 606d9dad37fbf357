"""The record learners of a running server: batches of events (``POST /v1/ingest/fhir``) go
through the same ``replay`` as ``evocdss learn``, one batch at a time, and the state is saved
after each batch with the same format, version checks and stream position.

Events at or before the learners' position are skipped (learned already, or too late to learn
in time order), so the same records sent twice are counted once. A batch that fails (its KG
write or its save) is forgotten, so the same batch sent again is learned. A batch holds the
state file (``learners.state.locked``) from reading to saving; when another process (``evocdss
learn``, another worker) saved the state since this one last read or wrote it, it is read
again first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.patient import Event
from kg.settings import Settings
from kg.store import GraphStore
from learners.state import LearnerState, StateBusy, locked, save_state, state_path
from learners.stream import open_state, replay


@dataclass
class LiveResult:
    """What the learners did with one batch."""

    events_read: int
    events_skipped: int
    events_learned: int
    patients: int
    flushed: dict[str, dict[str, Any]]
    position: dict[str, Any]
    learners: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class LiveLearners:
    """One learner state in memory, updated under a lock and saved after each batch.

    A state that cannot be used (unreadable, saved by another learner version) does not stop
    the server: ``learn`` raises its ``ValueError`` until it is fixed (``evocdss learn
    --reset``).
    """

    def __init__(self, settings: Settings, path: Path | None = None, lock_wait: float = 10.0):
        self.settings = settings
        self.path = path or state_path(settings)
        self.lock_wait = lock_wait
        self._lock = threading.Lock()
        self._state: LearnerState | None = None
        self._error: str | None = None
        self._stamp: int | None = None
        self._open()
        if self._state is not None and self._stamp is None:
            self._keep_salt()

    @property
    def salt(self) -> str | None:
        """The pseudonym salt of the learners' patients (None when the state is unusable)."""
        return self._state.salt if self._state is not None else None

    def learn(self, events: list[Event], store: GraphStore, salt: str) -> LiveResult:
        """Learn ``events`` (oldest first, patients pseudonymised with ``salt``), write what
        the learners found into ``store`` and save the state. Raises ``ValueError`` when the
        state is unusable or was made with another pseudonym salt, ``StateBusy`` when another
        process holds it for over ``lock_wait`` seconds."""
        with self._lock, locked(self.path, wait=self.lock_wait):
            if self._stamp != _stamp(self.path):
                self._open()
            state = self._state
            if state is None:
                raise ValueError(self._error or f"learner state {self.path} is unusable")
            if salt != state.salt:
                raise ValueError(
                    f"the learner state {self.path} pseudonymises patients with another salt "
                    "than this server: set EVOCDSS_PSEUDONYM_SALT to the one it was made with, "
                    "or restart the server to take the state's own"
                )
            try:
                for learner in state.learners.values():
                    learner.feedback(store)
                result = replay(events, state, strict=False)
                flushed = {}
                if result.learned:
                    flushed = {n: lrn.flush(store).to_dict() for n, lrn in state.learners.items()}
                    save_state(state, self.path)
                    self._stamp = _stamp(self.path)
            except BaseException:
                self._open()  # forget the failed batch: the saved state is where it resumes
                raise
            return LiveResult(
                events_read=result.read,
                events_skipped=result.skipped,
                events_learned=result.learned,
                patients=len(result.patients),
                flushed=flushed,
                position=state.position.to_dict(),
                learners=state.versions(),
            )

    def _keep_salt(self) -> None:
        """Save the fresh state at once, so that its pseudonym salt (and so the patients'
        pseudonyms in the audit log and the learners) is the same after a restart."""
        try:
            with locked(self.path, wait=self.lock_wait):
                if not self.path.exists():
                    save_state(self._state, self.path)
        except StateBusy:  # another process is writing the state: its salt is the one kept
            return
        self._open()

    def _open(self) -> None:
        self._stamp = _stamp(self.path)
        try:
            self._state, self._error = open_state(self.path, self.settings), None
        except ValueError as exc:
            self._state, self._error = None, str(exc)


def _stamp(path: Path) -> int | None:
    """The file's modification time (ns), None when there is no file."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
