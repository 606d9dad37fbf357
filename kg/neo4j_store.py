"""``Neo4jStore``: the KG in Neo4j 5 over Bolt (the official driver), for hospitals at scale.

Nodes are ``(:Node {id, category, name, data})``; edges are ``[:REL {eid, predicate, ...}]``;
name search keys are ``(:Name {key, node, rank})``; the change log is ``(:Change {seq, ...})``
and the KG version lives on ``(:Meta {name: 'kg'})``, which every write locks first so that
writes are serialised and change-log sequence numbers have no gaps. Edges may point at ids
without a node yet: those endpoints are bare ``(:Node {id})`` stubs that reads ignore.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from kg.batch import (
    Diff,
    PendingChange,
    check_cited,
    check_status_change,
    chunked,
    dedupe_edges,
    dedupe_nodes,
    diff_citations,
    diff_edges,
    diff_nodes,
    retractions,
    status_changes,
)
from kg.errors import StoreUnavailable
from kg.model import (
    EDGE_ID,
    Change,
    Citation,
    Edge,
    GraphArrays,
    Node,
    Stats,
    WriteResult,
    check_limit,
    dumps,
)
from kg.names import name_keys
from kg.store import Progress
from kg.vocab import Status, normalize_text

SCHEMA = [
    "CREATE CONSTRAINT node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT citation_id IF NOT EXISTS FOR (c:Citation) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT change_seq IF NOT EXISTS FOR (c:Change) REQUIRE c.seq IS UNIQUE",
    "CREATE CONSTRAINT meta_name IF NOT EXISTS FOR (m:Meta) REQUIRE m.name IS UNIQUE",
    "CREATE INDEX change_key IF NOT EXISTS FOR (c:Change) ON (c.key)",
    "CREATE INDEX name_key IF NOT EXISTS FOR (k:Name) ON (k.key)",
    "CREATE INDEX name_node IF NOT EXISTS FOR (k:Name) ON (k.node)",
    "CREATE INDEX node_category IF NOT EXISTS FOR (n:Node) ON (n.category)",
    "CREATE INDEX rel_eid IF NOT EXISTS FOR ()-[r:REL]-() ON (r.eid)",
    "CREATE INDEX rel_predicate IF NOT EXISTS FOR ()-[r:REL]-() ON (r.predicate)",
]

EDGE_COLUMNS = {"s": "a.id", "p": "r.predicate", "o": "b.id"} | {  # what ``_edge`` reads
    k: f"r.{k}" for k in ("status", "confidence", "qualifiers", "citations", "created", "updated")
}
EDGE_RETURN = ", ".join(f"{expr} AS {name}" for name, expr in EDGE_COLUMNS.items())
CHUNK = 5_000


def _edge(rec: Any) -> Edge:
    return Edge(
        rec["s"],
        rec["p"],
        rec["o"],
        tuple(rec["citations"]),
        rec["status"],
        rec["confidence"],
        json.loads(rec["qualifiers"]),
        rec["created"],
        rec["updated"],
    )


def _filters(predicates: Sequence[str] | None, statuses: Sequence[str] | None) -> str:
    where = []
    if predicates is not None:
        where.append("r.predicate IN $predicates")
    if statuses is not None:
        where.append("r.status IN $statuses")
    return " AND ".join(where) or "true"


class Neo4jStore:
    """A ``GraphStore`` in Neo4j 5 (``neo4j://`` or ``bolt://`` URL)."""

    def __init__(self, url: str, *, user: str = "", password: str = "", database: str = "") -> None:
        import neo4j
        from neo4j.exceptions import AuthError, ServiceUnavailable

        from kg.settings import get_settings

        settings = get_settings()
        self.url = url
        password = password or settings.neo4j_password
        auth = (user or settings.neo4j_user, password) if password else None
        self._database = database or settings.neo4j_database
        self._driver = neo4j.GraphDatabase.driver(url, auth=auth, notifications_min_severity="OFF")
        try:
            self._driver.verify_connectivity()
        except (ServiceUnavailable, AuthError, OSError, ValueError) as exc:
            self._driver.close()
            raise StoreUnavailable(f"cannot reach {url}: {exc}") from exc
        with self._session() as session:
            for statement in SCHEMA:
                session.run(statement).consume()
            session.run("MERGE (m:Meta {name: 'kg'}) ON CREATE SET m.version = 0").consume()

    def _session(self) -> Any:
        return self._driver.session(database=self._database)

    def _query(self, cypher: str, **params: Any) -> list[Any]:
        records, _, _ = self._driver.execute_query(
            cypher, params, database_=self._database, routing_="r"
        )
        return records

    def close(self) -> None:
        self._driver.close()

    # -- writes -------------------------------------------------------------------------------

    def upsert(
        self,
        *,
        citations: Iterable[Citation] = (),
        nodes: Iterable[Node] = (),
        edges: Iterable[Edge] = (),
        actor: str,
        reason: str = "",
        progress: Progress | None = None,
        retract: Iterable[str] = (),
    ) -> WriteResult:
        citations = list({c.id: c for c in citations}.values())
        nodes = dedupe_nodes(nodes)
        edges = dedupe_edges(edges)
        retract = retractions(retract, reason)
        now = time.time()
        counts = dict.fromkeys(("nc", "nu", "ec", "eu", "cw"), 0)
        with self._session() as session, session.begin_transaction() as tx:
            log = _ChangeLog(tx, now, actor, reason)
            existing = self._citations_in(tx, [c.id for c in citations])
            cdiff = diff_citations(existing, citations)
            tx.run(
                "UNWIND $rows AS row MERGE (c:Citation {id: row.id}) SET c.data = row.data",
                rows=[
                    {"id": c.id, "data": dumps(c.to_dict())} for c in cdiff.created + cdiff.updated
                ],
            ).consume()
            log.add(cdiff.changes)
            counts["cw"] = len(cdiff.created) + len(cdiff.updated)
            cited = {cid for e in edges for cid in e.citations}
            check_cited(edges, {c.id for c in citations} | set(self._citations_in(tx, list(cited))))
            for chunk in chunked(nodes, CHUNK):
                ndiff = diff_nodes(self._nodes_in(tx, [n.id for n in chunk]), chunk)
                self._put_nodes(tx, ndiff)
                log.add(ndiff.changes)
                counts["nc"] += len(ndiff.created)
                counts["nu"] += len(ndiff.updated)
                if progress:
                    progress(len(chunk))
            for chunk in chunked(edges, CHUNK):
                ediff = diff_edges(self._edges_in(tx, [e.id for e in chunk]), chunk, now)
                self._put_edges(tx, ediff, now)
                log.add([PendingChange("add_edge", e.id, None, e.content()) for e in ediff.created])
                log.add(ediff.changes)
                counts["ec"] += len(ediff.created)
                counts["eu"] += len(ediff.updated)
                if progress:
                    progress(len(chunk))
            if retract:
                counts["eu"] += len(self._set_statuses(tx, log, retract, Status.RETRACTED, now))
            version = log.commit()
            tx.commit()
        return WriteResult(
            nodes_created=counts["nc"],
            nodes_updated=counts["nu"],
            edges_created=counts["ec"],
            edges_updated=counts["eu"],
            citations_written=counts["cw"],
            version=version,
        )

    @staticmethod
    def _put_nodes(tx: Any, diff: Diff) -> None:
        if diff.updated:
            tx.run(
                "MATCH (k:Name) WHERE k.node IN $ids DETACH DELETE k",
                ids=[n.id for n in diff.updated],
            ).consume()
        rows = diff.created + diff.updated
        tx.run(
            "UNWIND $rows AS row MERGE (n:Node {id: row.id}) "
            "SET n.category = row.category, n.name = row.name, n.data = row.data",
            rows=[
                {"id": n.id, "category": n.category, "name": n.name, "data": dumps(n.data())}
                for n in rows
            ],
        ).consume()
        tx.run(
            "UNWIND $rows AS row CREATE (:Name {key: row.key, node: row.node, rank: row.rank})",
            rows=[{"key": k, "node": n.id, "rank": r} for n in rows for k, r in name_keys(n)],
        ).consume()

    @staticmethod
    def _put_edges(tx: Any, diff: Diff, now: float) -> None:
        tx.run(
            "UNWIND $rows AS row "
            "MERGE (a:Node {id: row.s}) MERGE (b:Node {id: row.o}) "
            "CREATE (a)-[:REL {eid: row.eid, predicate: row.p, status: row.status, "
            "confidence: row.confidence, qualifiers: row.qualifiers, citations: row.citations, "
            "created: row.now, updated: row.now}]->(b)",
            rows=[
                {
                    "eid": e.id,
                    "s": e.subject,
                    "p": e.predicate,
                    "o": e.object,
                    "status": e.status,
                    "confidence": float(e.confidence),
                    "qualifiers": dumps(e.qualifiers),
                    "citations": list(e.citations),
                    "now": now,
                }
                for e in diff.created
            ],
        ).consume()
        tx.run(
            "UNWIND $rows AS row MATCH ()-[r:REL {eid: row.eid}]->() "
            "SET r.status = row.status, r.confidence = row.confidence, "
            "r.qualifiers = row.qualifiers, r.citations = row.citations, r.updated = row.updated",
            rows=[
                {
                    "eid": e.id,
                    "status": e.status,
                    "confidence": float(e.confidence),
                    "qualifiers": dumps(e.qualifiers),
                    "citations": list(e.citations),
                    "updated": e.updated,
                }
                for e in diff.updated
            ],
        ).consume()

    def set_status(
        self, edge_id: str, status: str, *, actor: str, reason: str, expected: str | None = None
    ) -> Edge:
        check_status_change(status, reason)
        now = time.time()
        with self._session() as session, session.begin_transaction() as tx:
            log = _ChangeLog(tx, now, actor, reason)  # the writers' lock, before any read
            changed = self._set_statuses(tx, log, [edge_id], status, now, expected)
            if not changed:
                return self._edges_in(tx, [edge_id])[edge_id]
            log.commit()
            tx.commit()
        return changed[0]

    def _set_statuses(
        self,
        tx: Any,
        log: _ChangeLog,
        edge_ids: list[str],
        status: str,
        now: float,
        expected: str | None = None,
    ) -> list[Edge]:
        """Give edges a status, logging each change; returns the edges that changed (after).
        An unknown id raises ``NotFound``, one not of status ``expected`` (when given)
        ``StatusConflict`` (the transaction is not committed)."""
        existing = self._edges_in(tx, edge_ids)
        after, changes = status_changes(existing, edge_ids, status, now, expected)
        tx.run(
            "UNWIND $eids AS eid MATCH ()-[r:REL {eid: eid}]->() "
            "SET r.status = $status, r.updated = $now",
            eids=[e.id for e in after],
            status=status,
            now=now,
        ).consume()
        log.add(changes)
        return after

    # -- reads --------------------------------------------------------------------------------

    @staticmethod
    def _citations_in(tx: Any, ids: list[str]) -> dict[str, Citation]:
        if not ids:
            return {}
        rows = tx.run("MATCH (c:Citation) WHERE c.id IN $ids RETURN c.data AS data", ids=ids).data()
        return {c.id: c for c in (Citation.from_dict(json.loads(r["data"])) for r in rows)}

    @staticmethod
    def _nodes_in(tx: Any, ids: list[str]) -> dict[str, Node]:
        if not ids:
            return {}
        rows = tx.run(
            "UNWIND $ids AS id MATCH (n:Node {id: id}) WHERE n.data IS NOT NULL "
            "RETURN n.data AS data",
            ids=ids,
        ).data()
        return {n.id: n for n in (Node.from_data(json.loads(r["data"])) for r in rows)}

    @staticmethod
    def _edges_in(tx: Any, ids: list[str]) -> dict[str, Edge]:
        ids = [i for i in ids if EDGE_ID.fullmatch(i)]
        if not ids:
            return {}
        rows = tx.run(
            f"UNWIND $ids AS eid MATCH (a)-[r:REL {{eid: eid}}]->(b) RETURN {EDGE_RETURN}",
            ids=ids,
        )
        return {e.id: e for e in (_edge(rec) for rec in rows)}

    def get_node(self, curie: str) -> Node | None:
        return self.get_nodes([curie]).get(curie)

    def get_nodes(self, curies: Iterable[str]) -> dict[str, Node]:
        with self._session() as session:
            return session.execute_read(self._nodes_in, list(dict.fromkeys(curies)))

    def get_citations(self, ids: Iterable[str] | None = None) -> dict[str, Citation]:
        if ids is not None:
            with self._session() as session:
                return session.execute_read(self._citations_in, list(dict.fromkeys(ids)))
        rows = self._query("MATCH (c:Citation) RETURN c.data AS data ORDER BY c.id")
        return {c.id: c for c in (Citation.from_dict(json.loads(r["data"])) for r in rows)}

    def get_edge(self, edge_id: str) -> Edge | None:
        with self._session() as session:
            return session.execute_read(self._edges_in, [edge_id]).get(edge_id)

    def search(self, text: str, *, category: str | None = None, limit: int = 20) -> list[Node]:
        check_limit(limit)
        norm = normalize_text(text)
        if not norm:
            return []
        rows = self._query(
            "MATCH (k:Name) WHERE k.key STARTS WITH $q "
            "MATCH (n:Node {id: k.node}) WHERE n.data IS NOT NULL "
            "AND ($category IS NULL OR n.category = $category) "
            "WITH n, min(CASE WHEN k.key = $q AND k.rank = 0 THEN 0 ELSE k.rank + 1 END) AS grp, "
            "min(size(k.key)) AS len "
            "RETURN n.data AS data ORDER BY grp, len, n.id LIMIT $limit",
            q=norm,
            category=category,
            limit=limit,
        )
        return [Node.from_data(json.loads(r["data"])) for r in rows]

    def edges(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        *,
        statuses: Sequence[str] | None = None,
        min_confidence: float = 0.0,
        limit: int | None = None,
    ) -> list[Edge]:
        check_limit(limit)
        where = ["($predicate IS NULL OR r.predicate = $predicate)"]
        if statuses is not None:
            where.append("r.status IN $statuses")
        if min_confidence > 0:
            where.append("r.confidence >= $min_confidence")
        a = "(a:Node {id: $subject})" if subject is not None else "(a:Node)"
        b = "(b:Node {id: $object})" if object is not None else "(b:Node)"
        cypher = (
            f"MATCH {a}-[r:REL]->{b} WHERE {' AND '.join(where)} "
            f"RETURN {EDGE_RETURN} ORDER BY s, p, o"
        )
        if limit is not None:
            cypher += " LIMIT $limit"
        rows = self._query(
            cypher,
            subject=subject,
            predicate=predicate,
            object=object,
            statuses=list(statuses or []),
            min_confidence=min_confidence,
            limit=limit,
        )
        return [_edge(r) for r in rows]

    def neighbors(
        self,
        nodes: Sequence[str],
        *,
        predicates: Sequence[str] | None = None,
        direction: str = "both",
        statuses: Sequence[str] | None = None,
        per_node: int = 100,
    ) -> list[Edge]:
        if direction not in ("out", "in", "both"):
            raise ValueError(f"direction must be out, in or both, not {direction!r}")
        where = _filters(predicates, statuses)
        parts = []  # one subquery per direction, each limited on its own
        if direction in ("out", "both"):
            parts.append(
                f"MATCH (n)-[r:REL]->(b) WHERE {where} WITH n AS a, r, b "
                f"RETURN {EDGE_RETURN} ORDER BY p, o LIMIT $k"
            )
        if direction in ("in", "both"):
            parts.append(
                f"MATCH (a)-[r:REL]->(n) WHERE {where} WITH a, r, n AS b "
                f"RETURN {EDGE_RETURN} ORDER BY p, s LIMIT $k"
            )
        # the rows come back collected in one record (per-record Bolt messages cost more than the
        # rows themselves), so each query takes only as many nodes as keep it to CHUNK rows
        cypher = (
            "UNWIND $nodes AS nid MATCH (n:Node {id: nid}) "
            f"CALL (n) {{ {' UNION ALL '.join(parts)} }} "
            f"RETURN collect([{', '.join(EDGE_COLUMNS)}]) AS rows"
        )
        per_query = max(1, CHUNK // (len(parts) * max(per_node, 1)))
        seen: dict[str, Edge] = {}
        for chunk in chunked(dict.fromkeys(nodes), per_query):
            rows = self._query(
                cypher,
                nodes=chunk,
                predicates=list(predicates or []),
                statuses=list(statuses or []),
                k=per_node,
            )
            for row in rows[0]["rows"]:
                edge = _edge(dict(zip(EDGE_COLUMNS, row, strict=True)))
                seen.setdefault(edge.id, edge)
        return list(seen.values())

    def edges_between(
        self,
        nodes: Sequence[str],
        *,
        predicates: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[Edge]:
        rows = self._query(
            "MATCH (a:Node)-[r:REL]->(b:Node) WHERE a.id IN $ids AND b.id IN $ids AND "
            f"{_filters(predicates, statuses)} RETURN {EDGE_RETURN} ORDER BY s, p, o",
            ids=list(dict.fromkeys(nodes)),
            predicates=list(predicates or []),
            statuses=list(statuses or []),
        )
        return [_edge(r) for r in rows]

    def changes(
        self, since: int = 0, *, key: str | None = None, limit: int | None = None
    ) -> list[Change]:
        check_limit(limit)
        cypher = (
            "MATCH (c:Change) WHERE c.seq > $since AND ($key IS NULL OR c.key = $key) "
            "RETURN c ORDER BY c.seq"
        )
        if limit is not None:
            cypher += " LIMIT $limit"
        out = []
        for rec in self._query(cypher, since=since, key=key, limit=limit):
            c = rec["c"]
            out.append(
                Change(
                    c["seq"],
                    c["time"],
                    c["actor"],
                    c["action"],
                    c["key"],
                    json.loads(c["before"]) if c.get("before") is not None else None,
                    json.loads(c["after"]) if c.get("after") is not None else None,
                    c["reason"],
                )
            )
        return out

    def version(self) -> int:
        return self._query("MATCH (m:Meta {name: 'kg'}) RETURN m.version AS v")[0]["v"]

    def stats(self) -> Stats:
        def grouped(cypher: str) -> dict[str, int]:
            return {r["k"]: r["n"] for r in self._query(cypher)}

        return Stats(
            version=self.version(),
            nodes=self._query("MATCH (n:Node) WHERE n.data IS NOT NULL RETURN count(n) AS n")[0][
                "n"
            ],
            edges=self._query("MATCH ()-[r:REL]->() RETURN count(r) AS n")[0]["n"],
            citations=self._query("MATCH (c:Citation) RETURN count(c) AS n")[0]["n"],
            nodes_by_category=grouped(
                "MATCH (n:Node) WHERE n.data IS NOT NULL "
                "RETURN n.category AS k, count(*) AS n ORDER BY k"
            ),
            edges_by_predicate=grouped(
                "MATCH ()-[r:REL]->() RETURN r.predicate AS k, count(*) AS n ORDER BY k"
            ),
            edges_by_status=grouped(
                "MATCH ()-[r:REL]->() RETURN r.status AS k, count(*) AS n ORDER BY k"
            ),
        )

    def export_arrays(
        self, *, predicates: Sequence[str] | None = None, statuses: Sequence[str] | None = None
    ) -> GraphArrays:
        import numpy as np

        version = self.version()
        nodes = self._query(
            "MATCH (n:Node) WHERE n.data IS NOT NULL RETURN n.id AS id, n.category AS c "
            "ORDER BY n.id"
        )
        index = {r["id"]: i for i, r in enumerate(nodes)}
        rows = self._query(
            f"MATCH (a:Node)-[r:REL]->(b:Node) WHERE {_filters(predicates, statuses)} "
            "AND a.data IS NOT NULL AND b.data IS NOT NULL "
            "RETURN a.id AS s, r.predicate AS p, b.id AS o",
            predicates=list(predicates or []),
            statuses=list(statuses or []),
        )
        pred_names = sorted({r["p"] for r in rows})
        pred_index = {p: i for i, p in enumerate(pred_names)}
        return GraphArrays(
            node_ids=[r["id"] for r in nodes],
            node_categories=[r["c"] for r in nodes],
            predicates=pred_names,
            src=np.array([index[r["s"]] for r in rows], dtype=np.int64),
            dst=np.array([index[r["o"]] for r in rows], dtype=np.int64),
            predicate=np.array([pred_index[r["p"]] for r in rows], dtype=np.int64),
            version=version,
        )

    def iter_nodes(self) -> Iterator[Node]:
        with self._session() as session:
            result = session.run(
                "MATCH (n:Node) WHERE n.data IS NOT NULL RETURN n.data AS data ORDER BY n.id"
            )
            for rec in result:
                yield Node.from_data(json.loads(rec["data"]))

    def iter_edges(self) -> Iterator[Edge]:
        with self._session() as session:
            result = session.run(f"MATCH (a)-[r:REL]->(b) RETURN {EDGE_RETURN} ORDER BY r.eid")
            for rec in result:
                yield _edge(rec)


class _ChangeLog:
    """Change-log entries of one Neo4j transaction, numbered after the locked KG version."""

    def __init__(self, tx: Any, now: float, actor: str, reason: str) -> None:
        self._tx = tx
        self._now = now
        self._actor = actor
        self._reason = reason
        # Taking the write lock on the Meta node serialises writers.
        self._version = tx.run(
            "MATCH (m:Meta {name: 'kg'}) SET m.lock = coalesce(m.lock, 0) + 1 RETURN m.version AS v"
        ).single()["v"]

    def add(self, changes: list[PendingChange]) -> None:
        if not changes:
            return
        rows = []
        for c in changes:
            self._version += 1
            rows.append(
                {
                    "seq": self._version,
                    "time": self._now,
                    "actor": self._actor,
                    "action": c.action,
                    "key": c.key,
                    "before": None if c.before is None else dumps(c.before),
                    "after": None if c.after is None else dumps(c.after),
                    "reason": self._reason,
                }
            )
        for part in chunked(rows, CHUNK):
            self._tx.run("UNWIND $rows AS row CREATE (c:Change) SET c = row", rows=part).consume()

    def commit(self) -> int:
        """Store the new KG version on the Meta node; returns it."""
        self._tx.run("MATCH (m:Meta {name: 'kg'}) SET m.version = $v", v=self._version).consume()
        return self._version
