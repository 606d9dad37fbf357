"""The graphs link prediction learns from: typed nodes, a target relation, structure relations.

Two tasks:

- ``ddi``: ``biolink:interacts_with`` among ANSM substances and classes, at the level ANSM
  states it (a class-level interaction is one pair, see ``ingest.ansm``), with ANSM
  ``biolink:member_of`` as structure. The relation is symmetric: a pair is held as (a, b) with
  a < b, so both stored directions of an interaction always fall in the same split.
- ``disease-phenotype``: ``biolink:has_phenotype`` from OMIM/Orphanet/DECIPHER diseases to HP
  terms (excluded "NOT" annotations, ``negated: true``, are known negatives, never positives),
  with HP ``biolink:subclass_of`` and ``biolink:gene_associated_with_condition`` as structure.

Pairs a rule already implies are neither negatives nor proposals: a substance that is a member
of a class inherits the class's interactions (``ingest.ansm``), and a disease annotated with a
term also has every ancestor of the term (HPO's true path rule).

Nodes are ordered by type, then id, so per-type embedding tables concatenate into one matrix
indexed by node number. A pair (a, b) has the integer key ``a * n + b``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kg.vocab import (
    CLOSE_MATCH,
    GENE_TO_DISEASE,
    HAS_PHENOTYPE,
    INTERACTS_WITH,
    MEMBER_OF,
    SAME_AS,
    SUBCLASS_OF,
    TRUSTED_STATUSES,
    Status,
)

if TYPE_CHECKING:
    from kg.model import GraphArrays
    from kg.store import GraphStore


SUBSTANCE, DRUG_CLASS, PHARMACOLOGIC_CLASS = "substance", "drug_class", "pharmacologic_class"
DISEASE, PHENOTYPE, GENE = "disease", "phenotype", "gene"
DISEASE_PREFIXES = ("OMIM:", "ORPHA:", "DECIPHER:")


@dataclass(frozen=True)
class LinkTask:
    """What to predict: ``predicate`` from ``subject_types`` to ``object_types`` nodes."""

    name: str
    title: str
    predicate: str
    symmetric: bool
    structure: tuple[str, ...]
    subject_types: tuple[str, ...]
    object_types: tuple[str, ...]

    def node_type(self, curie: str, category: str) -> str | None:
        """The node type of a KG node in this task's graph, or None when it is not part of it."""
        if self.name == "ddi":
            if curie.startswith("ANSM:"):
                return DRUG_CLASS if category == "biolink:DrugClass" else SUBSTANCE
            return PHARMACOLOGIC_CLASS if category == "biolink:DrugClass" else None
        if curie.startswith("HP:"):
            return PHENOTYPE
        if curie.startswith(DISEASE_PREFIXES):
            return DISEASE
        if curie.startswith("NCBIGene:"):
            return GENE
        return None


DDI = LinkTask(
    name="ddi",
    title="drug-drug interactions (ANSM substances and classes)",
    predicate=INTERACTS_WITH,
    symmetric=True,
    structure=(MEMBER_OF, SUBCLASS_OF),
    subject_types=(SUBSTANCE, DRUG_CLASS),
    object_types=(SUBSTANCE, DRUG_CLASS),
)
DISEASE_PHENOTYPE = LinkTask(
    name="disease-phenotype",
    title="disease-phenotype annotations (HPO)",
    predicate=HAS_PHENOTYPE,
    symmetric=False,
    structure=(SUBCLASS_OF, GENE_TO_DISEASE),
    subject_types=(DISEASE,),
    object_types=(PHENOTYPE,),
)
TASKS = {t.name: t for t in (DDI, DISEASE_PHENOTYPE)}


@dataclass
class LinkGraph:
    """A task's graph as index arrays.

    ``positives`` are the trusted target edges (asserted, curated, inferred; canonical a < b for
    a symmetric task); ``negatives`` are known non-edges (rejected edges, negated annotations);
    ``blocked`` are keys of pairs that must never be sampled as negatives nor proposed: every
    target edge in the KG whatever its status, and the pairs a rule implies.
    """

    task: LinkTask
    node_ids: list[str]
    node_types: np.ndarray  # index into ``types`` per node
    types: list[str]
    positives: np.ndarray  # (n, 2)
    structure: dict[str, np.ndarray]  # predicate -> (m, 2)
    negatives: np.ndarray  # (k, 2)
    blocked: np.ndarray  # sorted unique int64 keys
    kg_version: int
    source: str
    info: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # per node ("" when unknown)

    @property
    def num_nodes(self) -> int:
        return len(self.node_ids)

    def nodes_of(self, types: tuple[str, ...]) -> np.ndarray:
        """Node numbers of the given types."""
        wanted = [self.types.index(t) for t in types if t in self.types]
        return np.flatnonzero(np.isin(self.node_types, wanted))

    def keys(self, pairs: np.ndarray) -> np.ndarray:
        """Integer keys of pairs (canonical order first for a symmetric task)."""
        pairs = self.canonical(pairs)
        return pairs[:, 0].astype(np.int64) * self.num_nodes + pairs[:, 1]

    def canonical(self, pairs: np.ndarray) -> np.ndarray:
        """Pairs as stored: (min, max) for a symmetric task, as given otherwise."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return np.sort(pairs, axis=1) if self.task.symmetric else pairs

    def blocked_given(self, edges: np.ndarray, implied: np.ndarray | None = None) -> np.ndarray:
        """Keys of the pairs that are no negatives when only ``edges`` of the target edges are
        known (as in training): those edges, the known negatives and the pairs a rule implies
        from those edges (``implied``, when already computed)."""
        edges = self.canonical(edges)
        if implied is None:
            implied = implied_pairs(self, edges)
        return np.unique(self.keys(np.concatenate([edges, self.negatives, implied])))

    def is_blocked(self, pairs: np.ndarray) -> np.ndarray:
        """Whether each pair is a known or implied edge (never a negative, never proposed)."""
        return contains(self.blocked, self.keys(pairs))


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Membership of ``keys`` in the sorted array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def load_graph(store: GraphStore, task: LinkTask) -> LinkGraph:
    """The task's graph from the KG: trusted edges as positives and structure, every other
    status (proposed, rejected, retracted) blocked from proposals, rejected ones as negatives."""
    links = (SAME_AS, CLOSE_MATCH) if task.name == "ddi" else ()
    arrays = store.export_arrays(
        predicates=[*task.structure, *links], statuses=sorted(TRUSTED_STATUSES)
    )
    typed = {
        curie: t
        for curie, cat in zip(arrays.node_ids, arrays.node_categories, strict=True)
        if (t := task.node_type(curie, cat)) is not None
    }
    structure: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s, p, o in zip(arrays.src, arrays.predicate, arrays.dst, strict=True):
        a, b = arrays.node_ids[s], arrays.node_ids[o]
        if a in typed and b in typed and arrays.predicates[p] in task.structure:
            structure[arrays.predicates[p]].append((a, b))
    if task.name == "ddi":
        structure[MEMBER_OF].extend(_pharmacologic_classes(arrays, typed))
        structure[SUBCLASS_OF] = _above(structure[MEMBER_OF], structure[SUBCLASS_OF])
    target, negatives, other = [], [], []
    negated = 0
    for e in store.edges(predicate=task.predicate):
        if e.subject not in typed or e.object not in typed:
            continue
        if e.qualifiers.get("negated"):
            negatives.append((e.subject, e.object))
            negated += 1
        elif e.status in TRUSTED_STATUSES:
            target.append((e.subject, e.object))
        elif e.status == Status.REJECTED:
            negatives.append((e.subject, e.object))
        else:
            other.append((e.subject, e.object))
    info = {"negated": negated, "untrusted": len(other)}
    graph = build_graph(
        task,
        typed,
        target,
        dict(structure),
        negatives=negatives,
        also_blocked=other,
        kg_version=arrays.version,
        source=f"KG version {arrays.version}",
        info=info,
    )
    nodes = store.get_nodes(graph.node_ids)
    graph.names = [nodes[x].name if x in nodes else "" for x in graph.node_ids]
    return graph


def _pharmacologic_classes(arrays: GraphArrays, typed: dict[str, str]) -> list[tuple[str, str]]:
    """(ANSM substance or class, drug-vocabulary class) for each class the ANSM node's linked
    drug (``same_as``/``close_match``) is a member of, or that it is linked to itself."""
    ids, preds = arrays.node_ids, arrays.predicates
    linked: dict[str, set[str]] = defaultdict(set)
    classes: dict[str, set[str]] = defaultdict(set)
    for s, p, o in zip(arrays.src, arrays.predicate, arrays.dst, strict=True):
        a, b, predicate = ids[s], ids[o], preds[p]
        if predicate in (SAME_AS, CLOSE_MATCH):
            for x, y in ((a, b), (b, a)):
                if typed.get(x) in (SUBSTANCE, DRUG_CLASS) and not y.startswith("ANSM:"):
                    linked[x].add(y)
        elif predicate == MEMBER_OF and typed.get(b) == PHARMACOLOGIC_CLASS:
            classes[a].add(b)
    return sorted(
        {
            (x, c)
            for x, ys in linked.items()
            for y in ys
            for c in classes.get(y, set()) | ({y} if typed.get(y) == PHARMACOLOGIC_CLASS else set())
        }
    )


def _above(
    members: list[tuple[str, str]], subclass: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The ``subclass`` edges on the way up from the classes that ``members`` reach."""
    parents: dict[str, list[str]] = defaultdict(list)
    for child, parent in subclass:
        parents[child].append(parent)
    reached, stack = set(), [c for _, c in members]
    while stack:
        c = stack.pop()
        if c not in reached:
            reached.add(c)
            stack.extend(parents.get(c, ()))
    return [(c, p) for c, p in subclass if c in reached]


def build_graph(
    task: LinkTask,
    typed: dict[str, str],
    target: list[tuple[str, str]],
    structure: dict[str, list[tuple[str, str]]],
    *,
    negatives: list[tuple[str, str]] = (),  # type: ignore[assignment]
    also_blocked: list[tuple[str, str]] = (),  # type: ignore[assignment]
    kg_version: int = 0,
    source: str = "",
    info: dict[str, Any] | None = None,
) -> LinkGraph:
    """A ``LinkGraph`` from edges given by node id; nodes that touch no edge are left out."""
    used = {x for pairs in (target, *structure.values()) for pair in pairs for x in pair}
    types = sorted({typed[x] for x in used})
    node_ids = sorted(used, key=lambda x: (types.index(typed[x]), x))
    index = {x: i for i, x in enumerate(node_ids)}

    def as_array(pairs: list[tuple[str, str]]) -> np.ndarray:
        kept = [(index[a], index[b]) for a, b in pairs if a in index and b in index and a != b]
        return np.array(kept, dtype=np.int64).reshape(-1, 2)

    graph = LinkGraph(
        task=task,
        node_ids=node_ids,
        node_types=np.array([types.index(typed[x]) for x in node_ids], dtype=np.int64),
        types=types,
        positives=np.zeros((0, 2), dtype=np.int64),
        structure={p: np.unique(as_array(v), axis=0) for p, v in structure.items()},
        negatives=as_array(list(negatives)),
        blocked=np.zeros(0, dtype=np.int64),
        kg_version=kg_version,
        source=source,
        info=dict(info or {}),
    )
    positives = np.unique(graph.canonical(as_array(target)), axis=0)
    graph.positives = positives
    graph.negatives = np.unique(graph.canonical(graph.negatives), axis=0)
    implied = implied_pairs(graph, positives)
    graph.blocked = np.union1d(
        graph.blocked_given(positives, implied), graph.keys(as_array(list(also_blocked)))
    )
    graph.info.update(
        {
            "nodes": graph.num_nodes,
            "nodes_by_type": {t: int((graph.node_types == i).sum()) for i, t in enumerate(types)},
            "positives": len(positives),
            "known_negatives": len(graph.negatives),
            "implied_pairs": len(np.setdiff1d(graph.keys(implied), graph.keys(positives))),
            "structure_edges": {p: len(v) for p, v in graph.structure.items()},
        }
    )
    return graph


def implied_pairs(graph: LinkGraph, positives: np.ndarray) -> np.ndarray:
    """Pairs that follow from ``positives`` by the task's rule (see the module docstring)."""
    if graph.task.name == "ddi":
        return _propagated_interactions(graph, positives)
    return _true_path_annotations(graph, positives)


def _propagated_interactions(graph: LinkGraph, positives: np.ndarray) -> np.ndarray:
    """(member of A or A) x (member of B or B) for each interaction A-B."""
    members: dict[int, list[int]] = defaultdict(list)
    for member, cls in graph.structure.get(MEMBER_OF, np.zeros((0, 2), np.int64)):
        members[int(cls)].append(int(member))
    out = []
    for a, b in positives:
        left = np.array([a, *members.get(int(a), [])], dtype=np.int64)
        right = np.array([b, *members.get(int(b), [])], dtype=np.int64)
        if len(left) * len(right) > 1:
            out.append(np.stack(np.meshgrid(left, right), axis=-1).reshape(-1, 2))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)
    return graph.canonical(pairs[pairs[:, 0] != pairs[:, 1]])


def _true_path_annotations(graph: LinkGraph, positives: np.ndarray) -> np.ndarray:
    """(disease, ancestor of term) for each annotation (disease, term)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for child, parent in graph.structure.get(SUBCLASS_OF, np.zeros((0, 2), np.int64)):
        parents[int(child)].append(int(parent))
    ancestors: dict[int, np.ndarray] = {}

    def up(term: int) -> np.ndarray:
        if term not in ancestors:
            seen: set[int] = set()
            stack = list(parents.get(term, ()))
            while stack:
                t = stack.pop()
                if t not in seen:
                    seen.add(t)
                    stack.extend(parents.get(t, ()))
            ancestors[term] = np.fromiter(seen, dtype=np.int64, count=len(seen))
        return ancestors[term]

    lifted = [up(int(term)) for term in positives[:, 1]]
    counts = np.fromiter((len(x) for x in lifted), dtype=np.int64, count=len(lifted))
    if counts.sum() == 0:
        return np.zeros((0, 2), dtype=np.int64)
    diseases = np.repeat(positives[:, 0], counts)
    return np.stack([diseases, np.concatenate(lifted)], axis=1)


@dataclass(frozen=True)
class EdgeSplit:
    """Target edges split at random into train, calibration (validation) and test."""

    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "calibration": len(self.calibration),
            "test": len(self.test),
        }


def split_edges(
    graph: LinkGraph, *, calibration: float = 0.1, test: float = 0.1, seed: int = 0
) -> EdgeSplit:
    """A random split of the positives; a symmetric pair is one row, so both directions of an
    interaction land in the same part."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(graph.positives))
    n_cal, n_test = round(calibration * len(order)), round(test * len(order))
    part = graph.positives[order]
    return EdgeSplit(
        train=part[n_cal + n_test :], calibration=part[:n_cal], test=part[n_cal : n_cal + n_test]
    )


def corrupt(
    graph: LinkGraph,
    pairs: np.ndarray,
    per_pair: int,
    rng: np.random.Generator,
    *,
    blocked: np.ndarray | None = None,
) -> np.ndarray:
    """``per_pair`` negatives for each pair (n x per_pair x 2): one end replaced by a random node
    of the types that end allows (the object end; either end for a symmetric task), never a
    pair in ``blocked`` (default: the graph's blocked keys) nor a self-pair."""
    blocked = graph.blocked if blocked is None else blocked
    subjects, objects = (
        graph.nodes_of(graph.task.subject_types),
        graph.nodes_of(graph.task.object_types),
    )
    n = len(pairs)
    out = np.repeat(np.asarray(pairs, dtype=np.int64)[:, None, :], per_pair, axis=1)
    todo = np.ones((n, per_pair), dtype=bool)
    side = (
        rng.integers(0, 2, size=(n, per_pair))
        if graph.task.symmetric
        else np.ones((n, per_pair), int)
    )
    for _ in range(50):
        rows, cols = np.nonzero(todo)
        if len(rows) == 0:
            break
        s = side[rows, cols]
        pool = np.where(s == 1, 1, 0)
        draw_obj = objects[rng.integers(0, len(objects), size=len(rows))]
        draw_subj = subjects[rng.integers(0, len(subjects), size=len(rows))]
        out[rows, cols, pool] = np.where(s == 1, draw_obj, draw_subj)
        candidate = out[rows, cols]
        bad = (candidate[:, 0] == candidate[:, 1]) | contains(blocked, graph.keys(candidate))
        todo[rows, cols] = bad
    if todo.any():
        raise RuntimeError(
            f"could not draw {per_pair} negatives for {int(todo.any(1).sum())} pairs"
        )
    return graph.canonical(out.reshape(-1, 2)).reshape(n, per_pair, 2)


class PathCounts:
    """Pair features a message-passing encoder cannot compute: path counts between two nodes.

    On the target relation ``T`` (the visible target edges), the structure ``S`` and the whole
    graph ``A = T + S`` (all undirected): common neighbours (length-2 paths) and length-3 paths
    on ``T`` and on ``A``, Adamic-Adar on ``T``, the typed paths S-T and S-S-T (a node that
    shares a class with one end and is linked to the other: "drugs like a interact with b")
    and S-T-S, and the endpoints' degrees; all as log(1 + x), symmetric in a, b. Counts are
    computed for the pairs asked (sparse row products), never for all n x n pairs.

    Given ``similar`` (a symmetric weighted n x n matrix, e.g. nodes with similar names), two
    more: the weighted paths N-T (a node like one end is linked to the other) and N-T-N.
    """

    COUNTS = ("t2", "t3", "a2", "a3", "adamic_adar_t", "st", "sst", "sts")
    SIMILAR = ("nt", "ntn")  # added with ``similar``
    DEGREES = ("degree_sum_t", "degree_product_t", "degree_sum_a", "degree_product_a")

    @staticmethod
    def names(similar: bool) -> list[str]:
        """The features' names in column order, with or without the paths through ``similar``."""
        return [*PathCounts.COUNTS, *(PathCounts.SIMILAR if similar else ()), *PathCounts.DEGREES]

    @staticmethod
    def width(similar: bool) -> int:
        """Features per pair, with or without the paths through ``similar``."""
        return len(PathCounts.names(similar))

    def __init__(
        self, graph: LinkGraph, target_edges: np.ndarray, similar: Any | None = None
    ) -> None:
        import scipy.sparse as sp

        n = graph.num_nodes

        def undirected(pairs: np.ndarray) -> sp.csr_matrix:
            m = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
            return ((m + m.T) > 0).astype(np.float32).tocsr()

        t = undirected(target_edges)
        s = undirected(np.concatenate([np.zeros((0, 2), np.int64), *graph.structure.values()]))
        a = ((t + s) > 0).astype(np.float32).tocsr()
        self.deg_t = np.log1p(np.asarray(t.sum(1)).ravel())
        self.deg_a = np.log1p(np.asarray(a.sum(1)).ravel())
        inverse_log = np.where(self.deg_t > np.log1p(1), 1 / np.maximum(self.deg_t, 1e-9), 0.0)
        w = sp.diags(inverse_log.astype(np.float32)).tocsr()
        # each feature sums products of symmetric matrices, read at (a, b)
        self.features = [
            [(t, t)],
            [(t, t, t)],
            [(a, a)],
            [(a, a, a)],
            [(t, w, t)],
            [(s, t), (t, s)],
            [(s, s, t), (t, s, s)],
            [(s, t, s)],
        ]
        if similar is not None:
            self.features += [[(similar, t), (t, similar)], [(similar, t, similar)]]
        self.size = PathCounts.width(similar is not None)

    def __call__(self, pairs: np.ndarray) -> np.ndarray:
        """Features of pairs (n x ``size``) as float32."""
        a, b = pairs[:, 0], pairs[:, 1]

        def count(chain: tuple) -> np.ndarray:
            left = chain[0][a]
            for m in chain[1:-1]:
                left = left @ m
            return np.asarray(left.multiply(chain[-1][b]).sum(1)).ravel()

        return self._stack([sum(map(count, chains)) for chains in self.features], a, b)

    def grid(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Features of every (row, col) pair (len(rows) x len(cols) x ``size``)."""

        def count(chain: tuple) -> np.ndarray:
            left = chain[0][rows]
            for m in chain[1:-1]:
                left = left @ m
            return (left @ chain[-1][:, cols]).toarray()

        counts = [sum(map(count, chains)) for chains in self.features]
        return self._stack(counts, rows[:, None], cols[None, :])

    def _stack(self, counts: list[np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
        degrees = [
            self.deg_t[a] + self.deg_t[b],
            self.deg_t[a] * self.deg_t[b],
            self.deg_a[a] + self.deg_a[b],
            self.deg_a[a] * self.deg_a[b],
        ]
        return np.stack([*np.log1p(counts), *degrees], axis=-1).astype(np.float32)
