"""Store-independent write planning: validate a batch and diff it against what is stored.

Stores fetch the existing records for a chunk, call these functions, and persist the result in
the same transaction, so every store has the same upsert semantics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, TypeVar

from kg.errors import InvalidStatus, MissingCitation, NotFound, StatusConflict
from kg.model import Citation, Edge, Node, merge_edge
from kg.vocab import STATUSES

T = TypeVar("T")

CHUNK = 20_000


@dataclass(slots=True)
class PendingChange:
    """A change-log entry before the store gives it a seq."""

    action: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(slots=True)
class Diff:
    """Records to insert and to update, with their change-log entries."""

    created: list[Any] = field(default_factory=list)
    updated: list[Any] = field(default_factory=list)
    changes: list[PendingChange] = field(default_factory=list)


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Yield lists of at most ``size`` items."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def dedupe_edges(edges: Iterable[Edge]) -> list[Edge]:
    """Validate edges and merge repeats of the same (subject, predicate, object) in one batch."""
    by_id: dict[str, Edge] = {}
    for edge in edges:
        edge.validate()
        eid = edge.id
        by_id[eid] = merge_edge(by_id[eid], edge) if eid in by_id else edge
    return list(by_id.values())


def dedupe_nodes(nodes: Iterable[Node]) -> list[Node]:
    """Validate nodes; the last of repeated ids wins."""
    by_id: dict[str, Node] = {}
    for node in nodes:
        by_id[node.validate().id] = node
    return list(by_id.values())


def check_cited(edges: Iterable[Edge], known: set[str]) -> None:
    """Raise unless every citation id cited by ``edges`` is in ``known``."""
    for edge in edges:
        for cid in edge.citations:
            if cid not in known:
                raise MissingCitation(
                    f"edge {edge.subject} {edge.predicate} {edge.object} cites {cid!r}, which is "
                    "neither in this batch nor in the store: add the Citation first"
                )


def diff_citations(existing: dict[str, Citation], incoming: list[Citation]) -> Diff:
    """New and changed citations."""
    diff = Diff()
    for cit in incoming:
        old = existing.get(cit.id)
        if old is None:
            diff.created.append(cit)
            diff.changes.append(PendingChange("add_citation", cit.id, None, cit.to_dict()))
        elif old != cit:
            diff.updated.append(cit)
            diff.changes.append(
                PendingChange("update_citation", cit.id, old.to_dict(), cit.to_dict())
            )
    return diff


def diff_nodes(existing: dict[str, Node], incoming: list[Node]) -> Diff:
    """New nodes and nodes whose content changed (a node is replaced by its new content)."""
    diff = Diff()
    for node in incoming:
        old = existing.get(node.id)
        if old is None:
            diff.created.append(node)
            diff.changes.append(PendingChange("add_node", node.id, None, node.data()))
        elif old.data() != node.data():
            diff.updated.append(node)
            diff.changes.append(PendingChange("update_node", node.id, old.data(), node.data()))
    return diff


def diff_edges(existing: dict[str, Edge], incoming: list[Edge], now: float) -> Diff:
    """New edges, and existing edges whose merged content changed (stamped ``now``).

    Only updates get change entries here: the store stamps each created edge with ``now`` and
    logs it as ``add_edge`` with its content while writing it, so bulk loads encode it once.
    """
    diff = Diff()
    for edge in incoming:
        old = existing.get(edge.id)
        if old is None:
            diff.created.append(edge)
            continue
        merged = merge_edge(old, edge)
        if merged.content() != old.content():
            merged = replace(merged, created=old.created, updated=now)
            diff.updated.append(merged)
            diff.changes.append(
                PendingChange("update_edge", merged.id, old.content(), merged.content())
            )
    return diff


def retractions(ids: Iterable[str], reason: str) -> list[str]:
    """The distinct edge ids an upsert retracts (retracting needs a reason)."""
    out = list(dict.fromkeys(ids))
    if out and not reason.strip():
        raise InvalidStatus("retracting edges needs a reason")
    return out


def check_status_change(status: str, reason: str) -> None:
    """Raise ``InvalidStatus`` for an unknown status or a change without a reason."""
    if status not in STATUSES:
        raise InvalidStatus(f"unknown status {status!r}: use one of {sorted(STATUSES)}")
    if not reason.strip():
        raise InvalidStatus("a status change needs a reason")


def status_changes(
    existing: dict[str, Edge],
    ids: list[str],
    status: str,
    now: float,
    expected: str | None = None,
) -> tuple[list[Edge], list[PendingChange]]:
    """The edges among ``ids`` whose status changes (after the change) and their change-log
    entries; an id not in ``existing`` raises ``NotFound``, and one whose status is not
    ``expected`` (when given) ``StatusConflict``."""
    missing = [i for i in ids if i not in existing]
    if missing:
        raise NotFound(f"no edge {missing[0]}")
    stale = [existing[i] for i in ids if expected is not None and existing[i].status != expected]
    if stale:
        edge = stale[0]
        raise StatusConflict(
            f"edge {edge.id} is {edge.status}, not {expected}: another change came first"
        )
    before = [existing[i] for i in ids if existing[i].status != status]
    after = [replace(e, status=status, updated=now) for e in before]
    changes = [
        PendingChange("set_status", e.id, b.content(), e.content())
        for b, e in zip(before, after, strict=True)
    ]
    return after, changes
