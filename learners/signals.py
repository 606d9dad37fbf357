"""Online drug-safety signals: disproportionality of events that follow drug starts.

The unit is a drug **exposure**: the first order of a drug (a ``MedicationRequest`` linked to a
KG drug node) for a patient opens a window of ``window_days`` days (a new-user design: orders
within ``washout_days`` of the patient's first order or observation in the stream are taken as
ongoing therapy and open nothing). An **event** is a KG-linked
condition (ICD-10-CM) or phenotype (HPO), or an abnormal lab result (a LOINC-coded laboratory
observation interpreted as high or low), counted only at its first occurrence for the patient
(incident, not prevalent). Codes that record a contact with health services rather than a
clinical event (``non_events``: ICD-10-CM chapter 21, Z00-Z99, such as "Encounter for routine
postpartum follow-up") are not events. An event *follows* an exposure when it occurs between
``min_lag_days`` and ``window_days`` days after the drug start; the lag leaves out what was
found in the same encounter as the order (mostly the drug's indication).

Per (drug, event) pair the learner keeps the 2×2 table over exposures online: ``n11``
exposures to the drug followed by the event, ``n1.`` exposures to the drug, ``n.1`` exposures
to any drug followed by the event, ``N`` exposures. From it: PRR, ROR and the BCPNN information
component ``IC = log2((n11 + 0.5) / (E11 + 0.5))``, ``E11 = n1. n.1 / N`` (Norén et al. 2006),
with the lower end of its 95% credibility interval from the usual closed-form approximation of
the Gamma posterior quantile, ``IC025 = IC - 3.3 (n11 + 0.5)^-1/2 - 2 (n11 + 0.5)^-3/2``
(Norén, Hopstadius, Bate 2013). A pair is a **signal** when ``IC025 > 0`` and ``n11 >=
min_count``; the learner then writes a ``proposed`` ``biolink:has_adverse_event`` edge citing
its model version and data window. An ADWIN detector per signal follows, at each closed window
of the drug, whether the event followed (1) or not (0); when the rate drops, or when the
signal stops being disproportionate, the edge is retracted with the reason. Pairs a curator
rejected are never proposed again.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from river import drift

from ingest.patient import (
    LAB_CATEGORIES,
    LAB_PREFIX,
    Event,
    MedicationItem,
    lab_finding_key,
    lab_finding_name,
)
from kg.errors import StatusConflict
from kg.model import Citation, Edge, Node, edge_id
from kg.store import GraphStore
from kg.vocab import HAS_ADVERSE_EVENT, Status

DAY = 86_400.0

#: Item statuses that say the item did not happen.
VOID_STATUSES = frozenset({"entered-in-error", "refuted", "cancelled", "draft"})


@dataclass(frozen=True, slots=True)
class SignalConfig:
    """Thresholds of the signal learner; they are part of its model citation."""

    window_days: float = 90.0
    min_lag_days: float = 1.0
    washout_days: float = 90.0
    min_count: int = 3
    lab_categories: tuple[str, ...] = LAB_CATEGORIES
    non_events: tuple[str, ...] = ("ICD10CM:Z",)  # node id prefixes that are never events
    fade_delta: float = 0.002  # ADWIN confidence: smaller retires more cautiously

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError(f"min_count must be at least 1, not {self.min_count}")
        if not 0 <= self.min_lag_days < self.window_days:
            raise ValueError(
                f"window_days ({self.window_days}) must be above min_lag_days "
                f"({self.min_lag_days}), which must be at least 0"
            )
        if self.washout_days < 0:
            raise ValueError(f"washout_days must be at least 0, not {self.washout_days}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_days": self.window_days,
            "min_lag_days": self.min_lag_days,
            "washout_days": self.washout_days,
            "min_count": self.min_count,
            "lab_categories": list(self.lab_categories),
            "non_events": list(self.non_events),
            "fade_delta": self.fade_delta,
        }


@dataclass(frozen=True, slots=True)
class Disproportionality:
    """The statistics of one 2×2 table: counts, PRR, ROR, expected count and IC with its 95%
    credibility interval."""

    n11: int
    n_drug: int
    n_event: int
    n: int
    expected: float
    prr: float
    ror: float
    ic: float
    ic025: float
    ic975: float

    def is_signal(self, min_count: int) -> bool:
        return self.n11 >= min_count and self.ic025 > 0

    def qualifiers(self) -> dict[str, Any]:
        return {
            "n11": self.n11,
            "n_drug": self.n_drug,
            "n_event": self.n_event,
            "n_exposures": self.n,
            "expected": round(self.expected, 4),
            "prr": round(self.prr, 4),
            "ror": round(self.ror, 4),
            "ic": round(self.ic, 4),
            "ic025": round(self.ic025, 4),
            "ic975": round(self.ic975, 4),
        }


def disproportionality(n11: int, n_drug: int, n_event: int, n: int) -> Disproportionality:
    """PRR, ROR and BCPNN IC (with IC025/IC975) of a 2×2 table given by its corner and margins.

    PRR and ROR take the Haldane-Anscombe correction (+0.5 on every cell) when a cell is 0,
    so they stay finite.
    """
    cells = (n11, n_drug - n11, n_event - n11, n - n_drug - n_event + n11)
    a, b, c, d = (x + 0.5 for x in cells) if 0 in cells else cells
    expected = n_drug * n_event / n if n else 0.0
    prr = (a / (a + b)) / (c / (c + d))
    ror = (a * d) / (b * c)
    ic = math.log2((n11 + 0.5) / (expected + 0.5))
    shrunk = n11 + 0.5
    ic025 = ic - 3.3 * shrunk**-0.5 - 2.0 * shrunk**-1.5
    ic975 = ic + 2.4 * shrunk**-0.5 - 0.5 * shrunk**-1.5
    return Disproportionality(n11, n_drug, n_event, n, expected, prr, ror, ic, ic025, ic975)


def confidence_from_ic025(ic025: float) -> float:
    """``1 - 2^-IC025`` (0 when IC025 <= 0): the lower bound of the share of the event among
    exposed patients that the drug would explain (attributable fraction, 1 - E/O)."""
    return round(max(0.0, 1.0 - 2.0**-ic025), 4)


def lab_finding_node(key: str, lab_name: str) -> Node:
    """The KG node of a learner-minted abnormal-lab finding."""
    code, _, direction = key.removeprefix(LAB_PREFIX).rpartition("-")
    return Node(
        id=key,
        category="biolink:ClinicalFinding",
        name=lab_finding_name(key, lab_name),
        xrefs=(f"LOINC:{code}",),
        properties={"loinc": code, "direction": direction, "minted_by": "learners.signals"},
    )


@dataclass(slots=True)
class Exposure:
    """One patient's first exposure to a drug, and the events that followed it so far."""

    patient: str
    drug: str
    start: float
    hits: set[str] = field(default_factory=set)


@dataclass(slots=True)
class PatientState:
    """What the learner remembers of a patient: when it was first seen in care (its first
    order or observation), drugs started, open exposures, events seen."""

    observed_since: float | None = None
    started: set[str] = field(default_factory=set)
    open: dict[str, Exposure] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


@dataclass(slots=True)
class SignalState:
    """A live signal: when it was first detected and last supported, and its fade detector."""

    first_seen: float
    last_seen: float
    detector: drift.ADWIN


@dataclass(frozen=True, slots=True)
class Signal:
    """A (drug, event) pair over threshold, with its statistics."""

    drug: str
    event: str
    stats: Disproportionality
    first_seen: str
    last_seen: str

    @property
    def edge_id(self) -> str:
        return edge_id(self.drug, HAS_ADVERSE_EVENT, self.event)


@dataclass
class FlushResult:
    """What one flush wrote: edges proposed (new or re-proposed), updated, retracted, and pairs
    left alone because a curator rejected them or the KG already holds them."""

    proposed: int = 0
    updated: int = 0
    retired: int = 0
    rejected_skipped: int = 0
    already_known: int = 0
    citation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "proposed": self.proposed,
            "updated": self.updated,
            "retired": self.retired,
            "rejected_skipped": self.rejected_skipped,
            "already_known": self.already_known,
            "citation": self.citation,
        }


class SignalLearner:
    """Online disproportionality of (drug, subsequent event) pairs; see the module docstring.

    ``learn_event`` takes events in time order; ``predict_proba_one({"drug": d})`` gives, for
    each event seen so far, the probability that it follows an exposure to ``d``;
    ``signals()`` lists the pairs over threshold; ``flush(store)`` writes and retracts edges.
    """

    name = "signal-bcpnn"
    version = 2  # 2: contacts with health services (ICD-10-CM Z codes) are not events

    def __init__(self, config: SignalConfig | None = None) -> None:
        self.config = config or SignalConfig()
        self.window = self.config.window_days * DAY
        self.min_lag = self.config.min_lag_days * DAY
        self.washout = self.config.washout_days * DAY
        self.n = 0
        self.n_drug: Counter[str] = Counter()
        self.n_event: Counter[str] = Counter()
        self.n_pair: Counter[tuple[str, str]] = Counter()
        self.patients: dict[str, PatientState] = {}
        self.closing: list[tuple[float, int, str, str]] = []  # (close time, seq, patient, drug)
        self.active: dict[tuple[str, str], SignalState] = {}
        self.candidates: dict[str, set[str]] = {}  # drug -> events with n11 >= min_count
        self.epoch: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        self.retiring: dict[tuple[str, str], str] = {}
        self.written: set[tuple[str, str]] = set()
        self.rejected: set[tuple[str, str]] = set()
        self.lab_names: dict[str, str] = {}
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.closed: list[Exposure] = []
        self._seq = 0

    # -- learning -----------------------------------------------------------------------------

    def starts_exposure(self, event: Event) -> str | None:
        """The drug whose exposure ``event`` opens, or None: an order of a KG drug the patient
        was not given before, at least ``washout_days`` after the patient's first order or
        observation (earlier orders are taken as ongoing therapy, not new use)."""
        drug = _ordered_drug(event)
        if drug is None:
            return None
        state = self.patients.get(event.patient_id)
        if state is not None and drug in state.started:
            return None
        t = event.time.timestamp()
        since = state.observed_since if state and state.observed_since is not None else t
        return drug if t - since >= self.washout else None

    def learn_event(self, event: Event) -> None:
        """Update the tables with one event (events must come oldest first)."""
        t = event.time.timestamp()
        if self.closed:
            self.closed = []
        if self.closing and self.closing[0][0] < t:
            self._close_until(t)
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        item = event.item
        kind = event.kind
        if kind == "observation" or kind == "medication":
            state = self._patient(event.patient_id)
            if state.observed_since is None:
                state.observed_since = t
            if kind == "medication":
                drug = _ordered_drug(event)
                if drug is not None and drug not in state.started:
                    state.started.add(drug)
                    if t - state.observed_since >= self.washout:
                        self._start(state, event.patient_id, drug, t)
                return
            key = lab_finding_key(item, self.config.lab_categories)  # type: ignore[arg-type]
            if key is not None:
                if key not in self.lab_names:
                    self.lab_names[key] = item.text
                self._occur(event.patient_id, key, t)
        elif (
            kind in ("condition", "phenotype")
            and item.node_id is not None
            and item.status not in VOID_STATUSES
            and not getattr(item, "excluded", False)
            and not item.node_id.startswith(self.config.non_events)
        ):
            self._occur(event.patient_id, item.node_id, t)

    def _patient(self, patient: str) -> PatientState:
        state = self.patients.get(patient)
        if state is None:
            state = self.patients[patient] = PatientState()
        return state

    def _start(self, state: PatientState, patient: str, drug: str, t: float) -> None:
        state.open[drug] = Exposure(patient, drug, t)
        self.n += 1
        self.n_drug[drug] += 1
        self._seq += 1
        heapq.heappush(self.closing, (t + self.window, self._seq, patient, drug))

    def _occur(self, patient: str, event: str, t: float) -> None:
        state = self._patient(patient)
        if event in state.seen:
            return
        state.seen.add(event)
        for exposure in state.open.values():
            lag = t - exposure.start
            if self.min_lag <= lag <= self.window:
                exposure.hits.add(event)
                self.n_event[event] += 1
                pair = (exposure.drug, event)
                self.n_pair[pair] += 1
                if self.n_pair[pair] >= self.config.min_count:
                    self.candidates.setdefault(exposure.drug, set()).add(event)
                    self._check(pair, t)

    def _check(self, pair: tuple[str, str], t: float) -> None:
        signal = self.active.get(pair)
        if signal is not None:
            signal.last_seen = t
        elif pair not in self.rejected and self.stats(*pair).is_signal(self.config.min_count):
            self._activate(pair, t)

    def _activate(self, pair: tuple[str, str], t: float) -> None:
        self.active[pair] = SignalState(t, t, drift.ADWIN(delta=self.config.fade_delta, clock=1))
        self.retiring.pop(pair, None)

    def _close_until(self, t: float) -> None:
        """Close the exposures whose window ended before ``t``. Each closed window of a drug
        feeds the fade detectors of the drug's signals (1 if the event followed, else 0), and
        lets its other frequent pairs become signals as the margins moved."""
        while self.closing and self.closing[0][0] < t:
            close, _, patient, drug = heapq.heappop(self.closing)
            exposure = self.patients[patient].open.pop(drug)
            self.closed.append(exposure)
            for event in self.candidates.get(drug, ()):
                pair = (drug, event)
                signal = self.active.get(pair)
                if signal is None:
                    if pair not in self.rejected and self.stats(*pair).is_signal(
                        self.config.min_count
                    ):
                        self._activate(pair, close)
                    continue
                before = signal.detector.estimation
                signal.detector.update(1 if event in exposure.hits else 0)
                if signal.detector.drift_detected and signal.detector.estimation < before:
                    self._fade(pair, before, signal.detector.estimation, close)

    def _fade(self, pair: tuple[str, str], before: float, after: float, t: float) -> None:
        """Retire a signal whose rate dropped; its table restarts from here."""
        del self.active[pair]
        self.epoch[pair] = (self.n_pair[pair], self.n_drug[pair[0]], self.n_event[pair[1]], self.n)
        self.retiring[pair] = (
            f"signal faded: ADWIN saw the share of exposures followed by the event drop from "
            f"{before:.2f} to {after:.2f} (window closing {_date(t)}); evidence restarts here"
        )

    # -- reading ------------------------------------------------------------------------------

    def stats(self, drug: str, event: str) -> Disproportionality:
        """The pair's statistics (since its last fade, if it faded)."""
        pair = (drug, event)
        n11, n1, n_1, n = self.n_pair[pair], self.n_drug[drug], self.n_event[event], self.n
        if pair in self.epoch:
            o11, o1, o_1, on = self.epoch[pair]
            n11, n1, n_1, n = n11 - o11, n1 - o1, n_1 - o_1, n - on
        return disproportionality(n11, n1, n_1, n)

    def predict_proba_one(self, x: dict[str, str]) -> dict[str, float]:
        """For each event seen so far, the probability that it follows an exposure to
        ``x["drug"]``: the event's base rate times the shrunk observed/expected ratio."""
        drug = x["drug"]
        n1, n = self.n_drug[drug], self.n
        out = {}
        for event, n_1 in self.n_event.items():
            base = (n_1 + 0.5) / (n + 1)
            expected = n1 * n_1 / n if n else 0.0
            ratio = (self.n_pair[(drug, event)] + 0.5) / (expected + 0.5)
            out[event] = min(base * ratio, 1 - 1e-6)
        return out

    def signals(self) -> list[Signal]:
        """Pairs over threshold now, most disproportionate first (rejected pairs excluded)."""
        out = []
        for pair, state in self.active.items():
            stats = self.stats(*pair)
            if stats.is_signal(self.config.min_count):
                out.append(Signal(*pair, stats, _date(state.first_seen), _date(state.last_seen)))
        out.sort(key=lambda s: (-s.stats.ic025, s.drug, s.event))
        return out

    def data_window(self) -> str:
        """``first..last`` event date of everything learned (``-`` before any event)."""
        if self.first_time is None or self.last_time is None:
            return "-"
        return f"{_date(self.first_time)}..{_date(self.last_time)}"

    def citation(self) -> Citation:
        """The model citation of the edges this learner writes (version and data window)."""
        window = self.data_window()
        return Citation(
            id=f"model:{self.name}@{self.version}:{window}",
            kind="model",
            title="evocdss online disproportionality (BCPNN IC, PRR, ROR) of events after drug "
            "starts in patient records",
            version=str(self.version),
            date=window.split("..")[-1],
            details={
                "learner": f"learners.signals.SignalLearner@{self.version}",
                "statistic": "BCPNN information component IC = log2((n11+0.5)/(E11+0.5)); "
                "signal when IC025 > 0 and n11 >= min_count",
                "ic025": "IC - 3.3(n11+0.5)^-1/2 - 2(n11+0.5)^-3/2 (Norén et al. 2013)",
                "fade": "ADWIN per signal on closed exposure windows (river.drift.ADWIN)",
                "data_window": window,
                "exposures": self.n,
                "patients": len(self.patients),
                **self.config.to_dict(),
            },
        )

    # -- the KG -------------------------------------------------------------------------------

    def feedback(self, store: GraphStore) -> None:
        """Read the curators' rejections: rejected pairs are never proposed again."""
        self.rejected = {
            (e.subject, e.object)
            for e in store.edges(predicate=HAS_ADVERSE_EVENT, statuses=[Status.REJECTED])
        }
        for pair in self.rejected & self.active.keys():
            del self.active[pair]

    def flush(self, store: GraphStore, *, actor: str | None = None) -> FlushResult:
        """Write the current signals as ``proposed`` edges (with the lab finding nodes they
        need) and retract proposed edges whose signal faded or fell below threshold: those this
        learner wrote, and those the KG holds from an earlier state of it (``--reset``)."""
        actor = actor or f"learner:{self.name}@{self.version}"
        self.feedback(store)
        self._sweep()
        self.written |= self._proposed_in(store)
        result = FlushResult()
        signals = self.signals()
        ids = [s.edge_id for s in signals] + [
            edge_id(d, HAS_ADVERSE_EVENT, e) for d, e in self.written | set(self.retiring)
        ]
        existing = {i: e for i in dict.fromkeys(ids) if (e := store.get_edge(i)) is not None}
        citation = self.citation()
        result.citation = citation.id
        edges, nodes = [], {}
        for s in signals:
            old = existing.get(s.edge_id)
            if old is not None and old.status not in (Status.PROPOSED, Status.RETRACTED):
                result.already_known += 1
                continue
            if s.event.startswith(LAB_PREFIX):
                nodes[s.event] = lab_finding_node(s.event, self.lab_names.get(s.event, ""))
            edge = self._edge(s, citation.id)
            edges.append(edge)
            if old is None or old.status == Status.RETRACTED:
                result.proposed += 1
            elif (old.qualifiers, old.confidence) != (edge.qualifiers, edge.confidence):
                result.updated += 1
            self.written.add((s.drug, s.event))
        result.rejected_skipped = sum(
            self.stats(*pair).is_signal(self.config.min_count) for pair in self.rejected
        )
        if edges:
            store.upsert(
                citations=[citation],
                nodes=nodes.values(),
                edges=edges,
                actor=actor,
                reason=f"{len(edges)} drug-event signal(s) over records {self.data_window()}",
            )
        live = {(s.drug, s.event) for s in signals}
        for pair in sorted(self.written - live):
            eid = edge_id(pair[0], HAS_ADVERSE_EVENT, pair[1])
            old = existing.get(eid)
            if old is not None and old.status == Status.PROPOSED:
                reason = self.retiring.get(pair) or self._below_threshold(pair)
                with suppress(StatusConflict):  # a curator decided since it was read: theirs stands
                    store.set_status(
                        eid, Status.RETRACTED, actor=actor, reason=reason, expected=old.status
                    )
                    result.retired += 1
            self.written.discard(pair)
        self.retiring.clear()
        return result

    def _sweep(self) -> None:
        """Bring the live signals up to date with the margins: pairs that reached the
        threshold without a new case join, pairs that fell below it leave."""
        for pair in [p for p in self.active if not self.stats(*p).is_signal(self.config.min_count)]:
            del self.active[pair]
        t = self.last_time or 0.0
        for drug, events in self.candidates.items():
            for event in events:
                pair = (drug, event)
                if (
                    pair not in self.active
                    and pair not in self.rejected
                    and self.stats(*pair).is_signal(self.config.min_count)
                ):
                    self._activate(pair, t)

    def _proposed_in(self, store: GraphStore) -> set[tuple[str, str]]:
        """The pairs of the KG's proposed edges that cite a model of this learner."""
        mine = f"model:{self.name}@"
        return {
            (e.subject, e.object)
            for e in store.edges(predicate=HAS_ADVERSE_EVENT, statuses=[Status.PROPOSED])
            if any(c.startswith(mine) for c in e.citations)
        }

    def _below_threshold(self, pair: tuple[str, str]) -> str:
        s = self.stats(*pair)
        return (
            f"signal no longer disproportionate over records {self.data_window()}: "
            f"n11={s.n11}, IC025={s.ic025:.2f} (needs n11 >= {self.config.min_count} and "
            "IC025 > 0)"
        )

    def _edge(self, s: Signal, citation: str) -> Edge:
        return Edge(
            subject=s.drug,
            predicate=HAS_ADVERSE_EVENT,
            object=s.event,
            citations=(citation,),
            status=Status.PROPOSED,
            confidence=confidence_from_ic025(s.stats.ic025),
            qualifiers={
                **s.stats.qualifiers(),
                "window": f"{self.config.min_lag_days:g}-{self.config.window_days:g} days "
                "after the first order",
                "first_seen": s.first_seen,
                "last_seen": s.last_seen,
                "learner": f"{self.name}@{self.version}",
            },
        )


def _ordered_drug(event: Event) -> str | None:
    """The KG drug of a medication order event (None for statements, unlinked or void ones)."""
    item = event.item
    if (
        event.kind == "medication"
        and isinstance(item, MedicationItem)
        and item.kind == "request"
        and item.status not in VOID_STATUSES
    ):
        return item.node_id
    return None


def _date(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).date().isoformat()
