"""``SQLiteStore``: the default embedded store, one file in WAL mode, zero set-up."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from functools import lru_cache
from pathlib import Path

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

SCHEMA = """
CREATE TABLE IF NOT EXISTS citations (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY, category TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS names (
    norm TEXT NOT NULL, node TEXT NOT NULL, rank INTEGER NOT NULL, PRIMARY KEY (norm, node)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS names_node ON names (node);
CREATE TABLE IF NOT EXISTS edges (
    rid INTEGER PRIMARY KEY, eid INTEGER NOT NULL,
    subject TEXT NOT NULL, predicate TEXT NOT NULL, object TEXT NOT NULL,
    status TEXT NOT NULL, confidence REAL NOT NULL,
    qualifiers TEXT NOT NULL, citations TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS edges_eid ON edges (eid);
CREATE INDEX IF NOT EXISTS edges_spo ON edges (subject, predicate, object);
CREATE INDEX IF NOT EXISTS edges_ops ON edges (object, predicate, subject);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY, time REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    key TEXT NOT NULL, before TEXT, after TEXT, reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_key ON changes (key);
"""

#: Indexes dropped while a bulk write fills an empty edge table, and rebuilt (sorted) after it.
BULK_INDEXES = {
    "edges_eid": "CREATE UNIQUE INDEX edges_eid ON edges (eid)",
    "edges_spo": "CREATE INDEX edges_spo ON edges (subject, predicate, object)",
    "edges_ops": "CREATE INDEX edges_ops ON edges (object, predicate, subject)",
    "changes_key": "CREATE INDEX changes_key ON changes (key)",
}
BULK_MIN_EDGES = 50_000

EDGE_COLUMNS = (
    "subject, predicate, object, status, confidence, qualifiers, citations, created, updated"
)
MAX_VARS = 5000


def _edge(row: Sequence) -> Edge:
    s, p, o, status, conf, quals, cits, created, updated = row
    return Edge(s, p, o, tuple(json.loads(cits)), status, conf, json.loads(quals), created, updated)


@lru_cache(maxsize=4096)
def _citations_json(citations: tuple[str, ...]) -> str:
    return dumps(citations)


def _eid(edge_id: str) -> int:
    """The integer form of an edge id (its 64-bit hash, signed as SQLite wants)."""
    value = int(edge_id[1:], 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def _edge_rows(edges: list[Edge], created: float | None = None) -> tuple[list[tuple], list[str]]:
    """Rows of the edges table and the content JSON of each edge, encoded once; ``created``
    stamps new edges."""
    rows, contents = [], []
    for e in edges:
        quals = dumps(e.qualifiers)
        cits = _citations_json(e.citations)
        rows.append(
            (
                _eid(e.id),
                e.subject,
                e.predicate,
                e.object,
                e.status,
                e.confidence,
                quals,
                cits,
                created or e.created,
                created or e.updated,
            )
        )
        contents.append(e.content_json(quals, cits))
    return rows, contents


def _in(values: Sequence) -> str:
    return ",".join("?" * len(values))


class _Connection(sqlite3.Connection):
    """A connection the store can hold weakly: it closes when its thread ends."""


class SQLiteStore:
    """A ``GraphStore`` in one SQLite file (WAL; one connection per thread, closed when the
    thread ends or the store closes)."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if not self.path.parent.is_dir():
            raise StoreUnavailable(
                f"cannot open {self.url}: folder {self.path.parent} does not exist"
            )
        if not create and not self.path.exists():
            raise StoreUnavailable(
                f"no KG at {self.path}: build one with `evocdss kg build` or set EVOCDSS_KG_URL"
            )
        self._local = threading.local()
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._conn().executescript(SCHEMA)

    # -- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, factory=_Connection
                )
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open {self.url}: {exc}") from exc
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA cache_size=-262144")
            conn.execute("PRAGMA temp_store=MEMORY")
            self._local.conn = conn
            with self._lock:
                self._conns.add(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one snapshot."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:  # an error inside may have ended it: don't mask that error
                conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in list(self._conns):
                conn.close()
            self._conns.clear()
        self._local = threading.local()

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
        with self._write() as conn:
            cdiff = diff_citations(self._citations_in(conn, [c.id for c in citations]), citations)
            conn.executemany(
                "INSERT OR REPLACE INTO citations VALUES (?, ?)",
                [(c.id, dumps(c.to_dict())) for c in cdiff.created + cdiff.updated],
            )
            self._log(conn, cdiff, now, actor, reason)
            counts["cw"] = len(cdiff.created) + len(cdiff.updated)
            cited = {cid for e in edges for cid in e.citations}
            known = {c.id for c in citations} | set(self._citations_in(conn, list(cited)))
            check_cited(edges, known)
            for chunk in chunked(nodes):
                ndiff = diff_nodes(self._nodes_in(conn, [n.id for n in chunk]), chunk)
                self._put_nodes(conn, ndiff)
                self._log(conn, ndiff, now, actor, reason)
                counts["nc"] += len(ndiff.created)
                counts["nu"] += len(ndiff.updated)
                if progress:
                    progress(len(chunk))
            bulk = len(edges) >= BULK_MIN_EDGES and self._edge_table_empty(conn)
            if bulk:
                for name in BULK_INDEXES:
                    conn.execute(f"DROP INDEX {name}")
            for chunk in chunked(edges):
                existing = {} if bulk else self._edges_in(conn, [e.id for e in chunk])
                ediff = diff_edges(existing, chunk, now)
                self._put_edges(conn, ediff, now, actor, reason)
                counts["ec"] += len(ediff.created)
                counts["eu"] += len(ediff.updated)
                if progress:
                    progress(len(chunk))
            if bulk:
                for sql in BULK_INDEXES.values():
                    conn.execute(sql)
            if retract:
                changed = self._set_statuses(conn, retract, Status.RETRACTED, now, actor, reason)
                counts["eu"] += len(changed)
            version = self._version(conn)
        return WriteResult(
            nodes_created=counts["nc"],
            nodes_updated=counts["nu"],
            edges_created=counts["ec"],
            edges_updated=counts["eu"],
            citations_written=counts["cw"],
            version=version,
        )

    @staticmethod
    def _edge_table_empty(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT 1 FROM edges LIMIT 1").fetchone() is None

    def _put_edges(
        self, conn: sqlite3.Connection, diff: Diff, now: float, actor: str, reason: str
    ) -> None:
        """Insert created edges and update changed ones, logging each (created first)."""
        rows, contents = _edge_rows(diff.created, created=now)
        conn.executemany(f"INSERT INTO edges (eid, {EDGE_COLUMNS}) VALUES ({_in(range(10))})", rows)
        conn.executemany(
            "INSERT INTO changes (time, actor, action, key, before, after, reason) "
            "VALUES (?, ?, 'add_edge', ?, NULL, ?, ?)",
            [(now, actor, e.id, c, reason) for e, c in zip(diff.created, contents, strict=True)],
        )
        rows, _ = _edge_rows(diff.updated)
        conn.executemany(
            "UPDATE edges SET status = ?, confidence = ?, qualifiers = ?, citations = ?, "
            "updated = ? WHERE eid = ?",
            [(r[4], r[5], r[6], r[7], r[9], r[0]) for r in rows],
        )
        self._log(conn, diff, now, actor, reason)

    def _put_nodes(self, conn: sqlite3.Connection, diff: Diff) -> None:
        if diff.updated:
            ids = [n.id for n in diff.updated]
            for part in chunked(ids, MAX_VARS):
                conn.execute(f"DELETE FROM names WHERE node IN ({_in(part)})", part)
        rows = diff.created + diff.updated
        conn.executemany(
            "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?)",
            [(n.id, n.category, n.name, dumps(n.data())) for n in rows],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO names VALUES (?, ?, ?)",
            [(key, n.id, rank) for n in rows for key, rank in name_keys(n)],
        )

    @staticmethod
    def _log(
        conn: sqlite3.Connection,
        diff: Diff | list[PendingChange],
        now: float,
        actor: str,
        reason: str,
    ) -> None:
        pending = diff.changes if isinstance(diff, Diff) else diff
        conn.executemany(
            "INSERT INTO changes (time, actor, action, key, before, after, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    now,
                    actor,
                    c.action,
                    c.key,
                    None if c.before is None else dumps(c.before),
                    None if c.after is None else dumps(c.after),
                    reason,
                )
                for c in pending
            ],
        )

    def set_status(
        self, edge_id: str, status: str, *, actor: str, reason: str, expected: str | None = None
    ) -> Edge:
        check_status_change(status, reason)
        with self._write() as conn:
            changed = self._set_statuses(
                conn, [edge_id], status, time.time(), actor, reason, expected
            )
            return changed[0] if changed else self._edges_in(conn, [edge_id])[edge_id]

    def _set_statuses(
        self,
        conn: sqlite3.Connection,
        edge_ids: list[str],
        status: str,
        now: float,
        actor: str,
        reason: str,
        expected: str | None = None,
    ) -> list[Edge]:
        """Give edges a status, logging each change; returns the edges that changed (after).
        An unknown id raises ``NotFound``, one not of status ``expected`` (when given)
        ``StatusConflict`` (the caller's transaction rolls back)."""
        existing = self._edges_in(conn, edge_ids)
        after, changes = status_changes(existing, edge_ids, status, now, expected)
        conn.executemany(
            "UPDATE edges SET status = ?, updated = ? WHERE eid = ?",
            [(status, now, _eid(e.id)) for e in after],
        )
        self._log(conn, changes, now, actor, reason)
        return after

    # -- reads --------------------------------------------------------------------------------

    def _citations_in(self, conn: sqlite3.Connection, ids: list[str]) -> dict[str, Citation]:
        out: dict[str, Citation] = {}
        for part in chunked(ids, MAX_VARS):
            for cid, data in conn.execute(
                f"SELECT id, data FROM citations WHERE id IN ({_in(part)})", part
            ):
                out[cid] = Citation.from_dict(json.loads(data))
        return out

    def _nodes_in(self, conn: sqlite3.Connection, ids: list[str]) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for part in chunked(ids, MAX_VARS):
            for nid, data in conn.execute(
                f"SELECT id, data FROM nodes WHERE id IN ({_in(part)})", part
            ):
                out[nid] = Node.from_data(json.loads(data))
        return out

    def _edges_in(self, conn: sqlite3.Connection, ids: list[str]) -> dict[str, Edge]:
        out: dict[str, Edge] = {}
        eids = [_eid(i) for i in ids if EDGE_ID.fullmatch(i)]
        for part in chunked(eids, MAX_VARS):
            for row in conn.execute(
                f"SELECT {EDGE_COLUMNS} FROM edges WHERE eid IN ({_in(part)})", part
            ):
                edge = _edge(row)
                out[edge.id] = edge
        return out

    def get_node(self, curie: str) -> Node | None:
        return self._nodes_in(self._conn(), [curie]).get(curie)

    def get_nodes(self, curies: Iterable[str]) -> dict[str, Node]:
        return self._nodes_in(self._conn(), list(dict.fromkeys(curies)))

    def get_citations(self, ids: Iterable[str] | None = None) -> dict[str, Citation]:
        conn = self._conn()
        if ids is not None:
            return self._citations_in(conn, list(dict.fromkeys(ids)))
        rows = conn.execute("SELECT data FROM citations ORDER BY id")
        return {c.id: c for c in (Citation.from_dict(json.loads(d)) for (d,) in rows)}

    def get_edge(self, edge_id: str) -> Edge | None:
        return self._edges_in(self._conn(), [edge_id]).get(edge_id)

    def search(self, text: str, *, category: str | None = None, limit: int = 20) -> list[Node]:
        check_limit(limit)
        norm = normalize_text(text)
        if not norm:
            return []
        conn = self._conn()
        where = "n.norm >= ? AND n.norm < ?"
        params: list = [norm, norm + "\U0010ffff"]
        if category:
            where += " AND d.category = ?"
            params.append(category)
        rows = conn.execute(
            "SELECT d.data, min(CASE WHEN n.norm = ? AND n.rank = 0 THEN 0 ELSE n.rank + 1 END) "
            "AS grp, min(length(n.norm)) AS len "
            f"FROM names n JOIN nodes d ON d.id = n.node WHERE {where} "
            "GROUP BY d.id ORDER BY grp, len, d.id LIMIT ?",
            [norm, *params, limit],
        )
        return [Node.from_data(json.loads(data)) for data, _, _ in rows]

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
        clauses, params = [], []
        for column, value in (("subject", subject), ("predicate", predicate), ("object", object)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if statuses is not None:
            clauses.append(f"status IN ({_in(statuses)})")
            params.extend(statuses)
        if min_confidence > 0:
            clauses.append("confidence >= ?")
            params.append(min_confidence)
        sql = f"SELECT {EDGE_COLUMNS} FROM edges"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY subject, predicate, object"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_edge(row) for row in self._conn().execute(sql, params)]

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
        extra, params = "", []
        if predicates is not None:
            extra += f" AND predicate IN ({_in(predicates)})"
            params.extend(predicates)
        if statuses is not None:
            extra += f" AND status IN ({_in(statuses)})"
            params.extend(statuses)
        queries = []
        if direction in ("out", "both"):
            queries.append(
                f"SELECT {EDGE_COLUMNS} FROM edges WHERE subject = ?{extra} "
                "ORDER BY subject, predicate, object LIMIT ?"
            )
        if direction in ("in", "both"):
            queries.append(
                f"SELECT {EDGE_COLUMNS} FROM edges WHERE object = ?{extra} "
                "ORDER BY object, predicate, subject LIMIT ?"
            )
        seen: dict[str, Edge] = {}
        with self._read() as conn:
            for node in dict.fromkeys(nodes):
                for sql in queries:
                    for row in conn.execute(sql, [node, *params, per_node]):
                        edge = _edge(row)
                        seen.setdefault(edge.id, edge)
        return list(seen.values())

    def edges_between(
        self,
        nodes: Sequence[str],
        *,
        predicates: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[Edge]:
        ids = list(dict.fromkeys(nodes))[: MAX_VARS // 2]
        if len(ids) < len(set(nodes)):
            raise ValueError(f"edges_between takes at most {MAX_VARS // 2} nodes")
        sql = (
            f"SELECT {EDGE_COLUMNS} FROM edges WHERE subject IN ({_in(ids)}) "
            f"AND object IN ({_in(ids)})"
        )
        params: list = [*ids, *ids]
        if predicates is not None:
            sql += f" AND predicate IN ({_in(predicates)})"
            params.extend(predicates)
        if statuses is not None:
            sql += f" AND status IN ({_in(statuses)})"
            params.extend(statuses)
        rows = self._conn().execute(sql + " ORDER BY subject, predicate, object", params)
        return [_edge(row) for row in rows]

    def changes(
        self, since: int = 0, *, key: str | None = None, limit: int | None = None
    ) -> list[Change]:
        check_limit(limit)
        sql = (
            "SELECT seq, time, actor, action, key, before, after, reason FROM changes WHERE seq > ?"
        )
        params: list = [since]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            Change(
                seq,
                t,
                actor,
                action,
                k,
                None if before is None else json.loads(before),
                None if after is None else json.loads(after),
                reason,
            )
            for seq, t, actor, action, k, before, after, reason in self._conn().execute(sql, params)
        ]

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]

    def version(self) -> int:
        return self._version(self._conn())

    def stats(self) -> Stats:
        with self._read() as conn:

            def grouped(sql: str) -> dict[str, int]:
                return dict(conn.execute(sql).fetchall())

            return Stats(
                version=self._version(conn),
                nodes=conn.execute("SELECT count(*) FROM nodes").fetchone()[0],
                edges=conn.execute("SELECT count(*) FROM edges").fetchone()[0],
                citations=conn.execute("SELECT count(*) FROM citations").fetchone()[0],
                nodes_by_category=grouped(
                    "SELECT category, count(*) FROM nodes GROUP BY category ORDER BY category"
                ),
                edges_by_predicate=grouped(
                    "SELECT predicate, count(*) FROM edges GROUP BY predicate ORDER BY predicate"
                ),
                edges_by_status=grouped(
                    "SELECT status, count(*) FROM edges GROUP BY status ORDER BY status"
                ),
            )

    def export_arrays(
        self, *, predicates: Sequence[str] | None = None, statuses: Sequence[str] | None = None
    ) -> GraphArrays:
        import numpy as np

        clauses, params = [], []
        if predicates is not None:
            clauses.append(f"predicate IN ({_in(predicates)})")
            params.extend(predicates)
        if statuses is not None:
            clauses.append(f"status IN ({_in(statuses)})")
            params.extend(statuses)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._read() as conn:
            nodes = conn.execute("SELECT id, category FROM nodes ORDER BY id").fetchall()
            index = {nid: i for i, (nid, _) in enumerate(nodes)}
            pred_names = sorted(
                p for (p,) in conn.execute(f"SELECT DISTINCT predicate FROM edges{where}", params)
            )
            pred_index = {p: i for i, p in enumerate(pred_names)}
            rows = conn.execute(
                f"SELECT subject, predicate, object FROM edges{where} ORDER BY rowid", params
            ).fetchall()
            version = self._version(conn)
        rows = [r for r in rows if r[0] in index and r[2] in index]
        return GraphArrays(
            node_ids=[nid for nid, _ in nodes],
            node_categories=[cat for _, cat in nodes],
            predicates=pred_names,
            src=np.fromiter((index[s] for s, _, _ in rows), dtype=np.int64, count=len(rows)),
            dst=np.fromiter((index[o] for _, _, o in rows), dtype=np.int64, count=len(rows)),
            predicate=np.fromiter(
                (pred_index[p] for _, p, _ in rows), dtype=np.int64, count=len(rows)
            ),
            version=version,
        )

    def backup_to(self, path: Path | str) -> Path:
        """A consistent copy of the store at ``path``, taken while it is in use (SQLite's online
        backup through the store's own connection: copying the file would miss the write-ahead
        log, and closing another descriptor of the file drops this process's locks on it)."""
        dest = Path(path)
        with closing(sqlite3.connect(dest)) as out:
            self._conn().backup(out)
        return dest

    def iter_nodes(self) -> Iterator[Node]:
        conn = sqlite3.connect(self.path)
        try:
            for (data,) in conn.execute("SELECT data FROM nodes ORDER BY id"):
                yield Node.from_data(json.loads(data))
        finally:
            conn.close()

    def iter_edges(self) -> Iterator[Edge]:
        conn = sqlite3.connect(self.path)
        try:
            for row in conn.execute(f"SELECT {EDGE_COLUMNS} FROM edges"):
                yield _edge(row)
        finally:
            conn.close()
