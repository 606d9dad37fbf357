"""Replay patient records (FHIR R4 bulk NDJSON) in time order through the online learners.

``learn`` reads the records, links their codes to the KG, skips what the saved state says was
learned already, feeds every other event to every learner (``learn_event``), saves the state
every ``checkpoint_every`` events, and at the end lets each learner write what it found
(``flush``) and saves the state. A run that stops half-way resumes from its last checkpoint
without counting anything twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ingest.fhir import StoreCodeLinker, iter_events, read_ndjson
from ingest.patient import Event, Problem
from kg.settings import Settings
from kg.store import GraphStore
from learners.signals import SignalConfig, SignalLearner
from learners.state import (
    LearnerState,
    StreamPosition,
    id_hash,
    load_state,
    locked,
    new_state,
    save_state,
    state_path,
)

#: Called with (events done, events to do) as a replay goes.
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 2_000


class RecordLearner(Protocol):
    """What the stream needs of a learner of patient records."""

    name: str
    version: int

    def learn_event(self, event: Event) -> None: ...

    def feedback(self, store: GraphStore) -> None: ...

    def flush(self, store: GraphStore) -> Any:
        """Write what was found into the KG; returns an object with ``to_dict()``."""
        ...


LEARNERS: dict[str, type] = {"signals": SignalLearner}


def event_id(event: Event) -> str:
    """A stable id of an event: patient pseudonym, resource and element (not the file path,
    so the same records read from another folder have the same ids)."""
    s = event.item.source
    rid = s.resource_id or f"{Path(s.file).name}:{s.line}:{s.entry}"
    return f"{event.patient_id}|{event.kind}|{s.resource_type}/{rid}|{s.element}"


def read_events(
    records: str | Path | Iterable[str | Path], store: GraphStore, salt: str
) -> tuple[list[Event], list[Problem]]:
    """The records' events, oldest first, with their codes linked to the KG (the read's
    problems are returned too). Raises ``ValueError`` for input that is not FHIR."""
    patients = read_ndjson(records, linker=StoreCodeLinker(store), salt=salt)
    return list(iter_events(patients)), patients.all_problems()


@dataclass
class ReplayResult:
    """What one replay did: events read, skipped as already learned, and learned."""

    read: int = 0
    skipped: int = 0
    learned: int = 0
    patients: set[str] = field(default_factory=set)


def replay(
    events: list[Event],
    state: LearnerState,
    *,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
    checkpoint_every: int = 20_000,
    strict: bool = True,
) -> ReplayResult:
    """Feed ``events`` (oldest first) to every learner of ``state``, skipping those its
    position says were learned; ``checkpoint`` is called every ``checkpoint_every`` events.

    Raises ``ValueError`` when ``strict`` and the events before the saved position are neither
    absent (new records that continue the stream) nor exactly the ones learned. Live batches
    (``strict=False``) skip events at or before the position without that check: they were
    learned already, or came too late to be learned in time order.
    """
    position = state.position
    learners = list(state.learners.values())
    result = ReplayResult(read=len(events))
    skipped = StreamPosition()
    todo = []
    for event in events:
        eid = event_id(event)
        if position.learned(eid, event.time):
            skipped.events += 1
            skipped.digest = (skipped.digest + id_hash(eid)) & ((1 << 64) - 1)
        else:
            todo.append((eid, event))
    if (
        strict
        and skipped.events
        and (skipped.events, skipped.digest) != (position.events, position.digest)
    ):
        raise ValueError(
            f"these records hold {skipped.events} events up to the saved position "
            f"({position.last_time}), not the {position.events} the learners learned there, so "
            "learning them would double count or miss some: give all the records learned so far "
            "with the new ones, or start over with --reset"
        )
    result.skipped = skipped.events
    total = len(todo)
    for done, (eid, event) in enumerate(todo, start=1):
        for learner in learners:
            learner.learn_event(event)
        position.advance(eid, event.time)
        result.patients.add(event.patient_id)
        if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
            progress(done, total)
        if checkpoint is not None and done % checkpoint_every == 0 and done < total:
            checkpoint()
    result.learned = total
    return result


def settings_signal_config(settings: Settings) -> SignalConfig | None:
    """The signal thresholds ``settings`` give (``signal_*``), or None when none is set."""
    given = {
        "min_count": settings.signal_min_count,
        "window_days": settings.signal_window_days,
        "washout_days": settings.signal_washout_days,
    }
    given = {k: v for k, v in given.items() if v is not None}
    return SignalConfig(**given) if given else None


def open_state(
    path: Path,
    settings: Settings,
    *,
    reset: bool = False,
    signal_config: SignalConfig | None = None,
) -> LearnerState:
    """The learner state saved at ``path``, or a fresh one (also with ``reset``).

    ``signal_config`` (default: the ``signal_*`` settings) sets the signal learner's thresholds
    when the state starts afresh or has learned nothing yet; a saved learner keeps its own, and
    asking for others raises ``ValueError``, as does a state saved by another version of a
    learner.
    """
    signal_config = signal_config or settings_signal_config(settings)
    state = None if reset else load_state(path, LEARNERS)
    if state is None:
        return new_state({"signals": SignalLearner(signal_config)}, settings)
    missing = sorted(set(LEARNERS) - set(state.learners))
    if missing:
        raise ValueError(
            f"learner state {path} has no {', '.join(missing)} learner: start over with --reset"
        )
    saved = state.learners["signals"].config
    if signal_config is not None and signal_config != saved and not state.position.events:
        state.learners["signals"] = SignalLearner(signal_config)  # nothing learned to lose
    elif signal_config is not None and signal_config != saved:
        raise ValueError(
            f"the saved signal learner ({path}) uses {saved.to_dict()}: start over with --reset "
            "to change its settings"
        )
    return state


@dataclass
class LearnSummary:
    """What ``learn`` did, for the CLI and for scripts."""

    records: str
    store: str
    state_path: str
    events_read: int
    events_skipped: int
    events_learned: int
    patients: int
    read_problems: int
    flushed: dict[str, dict[str, Any]]
    position: dict[str, Any]
    learners: dict[str, str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def learn(
    records: str | Path,
    store: GraphStore,
    settings: Settings,
    *,
    state_file: Path | None = None,
    reset: bool = False,
    signal_config: SignalConfig | None = None,
    progress: Progress | None = None,
    checkpoint_every: int = 20_000,
    lock_wait: float = 30.0,
) -> LearnSummary:
    """Replay ``records`` through the learners, write what they found into ``store``, and
    save their state (default ``<home>/learners/state.pkl``); see the module docstring.

    ``signal_config`` (default: the ``signal_*`` settings) sets the signal learner's
    thresholds when the state starts afresh; a saved learner keeps its own (asking for others
    raises ``ValueError``). The state is held for the whole run; another process holding it
    for over ``lock_wait`` seconds raises ``StateBusy``.
    """
    started = time.perf_counter()
    path = state_file or state_path(settings)
    with locked(path, wait=lock_wait):
        state = open_state(path, settings, reset=reset, signal_config=signal_config)
        for learner in state.learners.values():
            learner.feedback(store)
        events, problems = read_events(records, store, state.salt)
        result = replay(
            events,
            state,
            progress=progress,
            checkpoint=lambda: save_state(state, path),
            checkpoint_every=checkpoint_every,
        )
        flushed = {name: lrn.flush(store).to_dict() for name, lrn in state.learners.items()}
        save_state(state, path)
    return LearnSummary(
        records=str(records),
        store=store.url,
        state_path=str(path),
        events_read=result.read,
        events_skipped=result.skipped,
        events_learned=result.learned,
        patients=len(result.patients),
        read_problems=len(problems),
        flushed=flushed,
        position=state.position.to_dict(),
        learners=state.versions(),
        seconds=round(time.perf_counter() - started, 2),
    )
