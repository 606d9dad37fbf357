"""Store benchmark: bulk upsert, point look-ups and degree-capped two-hop neighbourhoods.

    python bench/kg_store.py [--edges 1000000] [--neo4j auto|none|bolt://...] [--json]

Prints edges/s and p50/p99 latencies per store, the targets for SQLite, and the Neo4j/SQLite
ratio of each figure when a Neo4j URL is given (same process, same synthetic graph).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kg import Citation, Edge, Node, open_store
from kg.store import GraphStore
from kg.traverse import neighbourhood

PREDICATES = ["biolink:has_phenotype", "biolink:subclass_of", "biolink:interacts_with"]
CITATION = Citation("src:bench", "database", "synthetic benchmark graph")
TARGETS = {"load_edges_per_s": 50_000, "lookup_p99_ms": 1.0, "two_hop_p99_ms": 20.0}


def synthetic_graph(n_edges: int, seed: int = 7) -> tuple[list[Node], list[Edge]]:
    """A graph with ``n_edges // 10`` nodes and skewed degrees (a few hubs, many leaves)."""
    rng = random.Random(seed)
    n_nodes = max(n_edges // 10, 100)
    nodes = [Node(f"BENCH:{i}", "biolink:PhenotypicFeature", f"term {i}") for i in range(n_nodes)]
    seen: set[tuple[int, int, int]] = set()
    edges: list[Edge] = []
    while len(edges) < n_edges:
        s = int(rng.paretovariate(1.2)) % n_nodes if rng.random() < 0.3 else rng.randrange(n_nodes)
        o = rng.randrange(n_nodes)
        p = rng.randrange(len(PREDICATES))
        if s == o or (s, p, o) in seen:
            continue
        seen.add((s, p, o))
        edges.append(
            Edge(
                f"BENCH:{s}",
                PREDICATES[p],
                f"BENCH:{o}",
                ("src:bench",),
                confidence=round(rng.random(), 3),
                qualifiers={"frequency": round(rng.random(), 2)},
            )
        )
    return nodes, edges


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000


def run(
    store: GraphStore, nodes: list[Node], edges: list[Edge], batch: int = 0, seed: int = 11
) -> dict:
    """Load the graph (in upserts of ``batch`` edges, or one), then time look-ups and hops."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    store.upsert(citations=[CITATION], nodes=nodes, actor="bench")
    step = batch or len(edges)
    for i in range(0, len(edges), step):
        store.upsert(edges=edges[i : i + step], actor="bench")
    load_s = time.perf_counter() - t0
    ids = [e.id for e in rng.sample(edges, 10_000)]
    lookups = []
    for eid in ids:
        t = time.perf_counter()
        assert store.get_edge(eid) is not None
        lookups.append(time.perf_counter() - t)
    hops = []
    for node in rng.sample(nodes, 1000):
        t = time.perf_counter()
        neighbourhood(store, node.id, hops=2, per_node=50)
        hops.append(time.perf_counter() - t)
    lp50, lp99 = percentiles(lookups)
    hp50, hp99 = percentiles(hops)
    return {
        "edges": len(edges),
        "edges_per_upsert": step,
        "load_s": round(load_s, 2),
        "load_edges_per_s": round(len(edges) / load_s),
        "lookup_p50_ms": round(lp50, 3),
        "lookup_p99_ms": round(lp99, 3),
        "two_hop_p50_ms": round(hp50, 3),
        "two_hop_p99_ms": round(hp99, 3),
    }


@contextmanager
def neo4j_server(url: str) -> Iterator[str]:
    """Use ``url``, or with 'auto' start an embedded Neo4j with a heap for one big write."""
    if url != "auto":
        yield url
        return
    launcher = Path(__file__).resolve().parents[1] / "tools" / "neo4j" / "neo4j-embedded"
    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "NEO4J_EMBEDDED_JAVA_OPTS": "-Xms2g -Xmx12g -XX:+ExitOnOutOfMemoryError",
        }
        env["NEO4J_EMBEDDED_PAGECACHE_MB"] = "2048"
        pidfile = f"{tmp}/pid"
        subprocess.run(
            [launcher, "start", "--port", str(port), "--data", f"{tmp}/db", "--pidfile", pidfile],
            check=True,
            env=env,
        )
        try:
            yield f"bolt://127.0.0.1:{port}"
        finally:
            subprocess.run([launcher, "stop", "--pidfile", pidfile], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument(
        "--neo4j",
        default="auto",
        help="Bolt URL of an EMPTY Neo4j to compare; 'auto' starts one (tools/neo4j); 'none'",
    )
    parser.add_argument(
        "--neo4j-batch",
        type=int,
        default=100_000,
        help="edges per Neo4j upsert (one transaction each; 1M in one exceeds its memory pool)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    nodes, edges = synthetic_graph(args.edges)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.sqlite")
        results["sqlite"] = run(store, nodes, edges)
        store.close()
    if args.neo4j != "none":
        with neo4j_server(args.neo4j) as url:
            store = open_store(url)
            results["neo4j"] = run(store, nodes, edges, batch=args.neo4j_batch)
            store.close()
        results["neo4j_over_sqlite"] = {
            k: round(results["neo4j"][k] / results["sqlite"][k], 2)
            for k in results["sqlite"]
            if k not in ("edges", "edges_per_upsert")
        }
    results["sqlite_meets_targets"] = {
        "load_edges_per_s": results["sqlite"]["load_edges_per_s"] >= TARGETS["load_edges_per_s"],
        "lookup_p99_ms": results["sqlite"]["lookup_p99_ms"] <= TARGETS["lookup_p99_ms"],
        "two_hop_p99_ms": results["sqlite"]["two_hop_p99_ms"] <= TARGETS["two_hop_p99_ms"],
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, figures in results.items():
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
