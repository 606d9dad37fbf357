"""Heterogeneous GNN link prediction on the KG; proposals written as ``proposed`` edges.

The encoder is a PyG ``HeteroConv`` with one ``SAGEConv`` per (type, relation, type) and its
reverse, over learned node embeddings; with ``name_features``, each node's embedding also gets a
learned projection of its name's vectors (MiniLM sentence embedding and character n-grams: ANSM
names carry mechanism in endings such as -azole, -mycine, -statine). The decoder scores a pair
``(a, b)`` as ``sum(h_a * r * h_b)`` (a DistMult-style diagonal form: symmetric, so a drug
interaction scores the same both ways, and every disease x phenotype pair of the KG scores as
one matrix product when proposing).

A model may be an ensemble of ``members`` such encoder-decoders, each with its own
initialisation and dropout, trained side by side on the same epochs (the same hidden edges,
negatives and pair features, computed once per epoch); its score is the mean of the members'
logits.

Training is full-batch. Each epoch a fraction of the training edges is hidden from message
passing and becomes the supervision set, so the model learns to find edges it cannot see, as at
prediction time; each supervised positive meets type-aware corrupted negatives, drawn as the
evaluation and the proposals draw them: never a known pair nor one a rule implies from the
training edges (a member of a class inherits its interactions). Scores are
calibrated (Platt) on a held-out calibration split before any threshold applies. Once
calibrated, the model scores with every edge it knows visible (training and calibration edges),
so a drug whose only known interactions fell in the calibration split is not scored as unknown.

With ``propensity``, a pair's score is the decoder's less that weight times the two ends'
propensities: a node's mean decoder score against a fixed sample of the nodes the task pairs it
with (its tendency to score high with anything). Scores of different drugs then compare better:
a hub's random pairs score lower, which is what pooled AUROC and a threshold need.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from kg.model import Citation, Edge
from kg.vocab import Status
from learners.calibration import PlattScaler, score_metrics
from learners.linkgraph import (
    TASKS,
    EdgeSplit,
    LinkGraph,
    LinkTask,
    PathCounts,
    contains,
    corrupt,
    load_graph,
    split_edges,
)

if TYPE_CHECKING:
    import torch

    from kg.store import GraphStore

#: 1.1: names; 1.2: scoring sees calibration edges; 1.3: no implied negatives; 1.4: propensity
MODEL_VERSION = "1.4"
ACTOR = "learner:linkpred"
MAX_CALIBRATION = 3000  # calibration positives scored (a sample when the split is larger)
NAME_NGRAM_DIM = 128  # dimensions of a node name's character n-gram vector
NAME_NEIGHBOURS = 10  # most similar names per node (``TrainConfig.name_paths``)
PROPENSITY_PARTNERS = 256  # sampled partners a node's propensity is the mean score against


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the GNN (the tuned settings per task are in ``evaluation.linkpred``)."""

    dim: int = 64
    layers: int = 2
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 0.0
    dropout: float = 0.1  # between layers
    input_dropout: float = 0.0  # on the learned node embeddings
    hidden_fraction: float = 0.3  # of training edges hidden from message passing each epoch
    hidden_nodes: float = 0.0  # of nodes whose edges are all hidden (learns cold-start nodes)
    negatives: int = 4  # corrupted negatives per supervised positive
    calibration_negatives: int = 4  # negatives per calibration positive
    path_counts: bool = False  # add ``PathCounts`` pair features to the decoder
    threads: int = 1  # torch threads: the machine is shared; 2 threads ran slower under load
    members: int = 1  # GNNs in the ensemble (their logits are averaged)
    name_features: bool = False  # add a learned projection of each node's name embedding
    name_paths: bool = False  # ``PathCounts`` also through nodes with similar names
    propensity: float = 0.0  # weight of the ends' propensities subtracted from a pair's score
    seed: int = 0


def model_name(task: LinkTask) -> str:
    return f"gnn-{task.name}"


def _torch(threads: int, seed: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return torch


def _encoder_class() -> tuple[type, type]:
    import torch

    with warnings.catch_warnings():  # PyG's import calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from torch_geometric.nn import HeteroConv, SAGEConv

    class HeteroEncoder(torch.nn.Module):
        """Learned embeddings per node type, then ``layers`` rounds of HeteroConv(SAGEConv)."""

        def __init__(
            self,
            sizes: dict[str, int],
            edge_types: list[tuple[str, str, str]],
            cfg: TrainConfig,
            names: dict[str, torch.Tensor] | None = None,
        ):
            super().__init__()
            self.types = list(sizes)
            self.embeddings = torch.nn.ModuleDict(
                {t: torch.nn.Embedding(n, cfg.dim) for t, n in sizes.items()}
            )
            for emb in self.embeddings.values():
                torch.nn.init.normal_(emb.weight, std=0.1)
            self.name_projection = (
                torch.nn.ModuleDict(
                    {t: torch.nn.Linear(v.shape[1], cfg.dim, bias=False) for t, v in names.items()}
                )
                if names
                else None
            )
            for t, v in (names or {}).items():  # not in the state dict: rebuilt from the graph
                self.register_buffer(f"names_{t}", v, persistent=False)
            self.convs = torch.nn.ModuleList(
                HeteroConv({et: SAGEConv(cfg.dim, cfg.dim) for et in edge_types}, aggr="sum")
                for _ in range(cfg.layers)
            )
            self.relation = torch.nn.Parameter(torch.ones(cfg.dim))
            self.dropout = cfg.dropout
            self.input_dropout = cfg.input_dropout
            self.pair_mlp = (
                torch.nn.Sequential(
                    torch.nn.Linear(cfg.dim + PathCounts.width(cfg.name_paths), cfg.dim),
                    torch.nn.ReLU(),
                    torch.nn.Linear(cfg.dim, 1),
                )
                if cfg.path_counts
                else None
            )

        def inputs(self, t: str) -> torch.Tensor:
            """Node inputs of type ``t``: the learned embedding, plus the projected name
            embedding when the model has name features."""
            x = self.embeddings[t].weight
            if self.name_projection is not None:
                x = x + self.name_projection[t](getattr(self, f"names_{t}"))
            return x

        def forward(self, edge_index_dict: dict) -> torch.Tensor:
            x = {
                t: torch.nn.functional.dropout(
                    self.inputs(t), p=self.input_dropout, training=self.training
                )
                for t in self.types
            }
            for i, conv in enumerate(self.convs):
                h = conv(x, edge_index_dict)
                h = {t: h.get(t, x[t]) for t in self.types}
                if i < len(self.convs) - 1:
                    h = {
                        t: torch.nn.functional.dropout(
                            v.relu(), p=self.dropout, training=self.training
                        )
                        for t, v in h.items()
                    }
                x = h
            return torch.cat([x[t] for t in self.types])

        def decode(
            self, h: torch.Tensor, pairs: torch.Tensor, features: torch.Tensor | None = None
        ) -> torch.Tensor:
            product = h[pairs[:, 0]] * h[pairs[:, 1]]
            score = (product * self.relation).sum(-1)
            if self.pair_mlp is not None:
                score = score + self.pair_mlp(torch.cat([product, features], dim=-1)).squeeze(-1)
            return score

    class Ensemble(torch.nn.Module):
        """``len(members)`` encoder-decoders; a pair's score is the mean of their scores."""

        def __init__(self, members: list[HeteroEncoder]):
            super().__init__()
            self.members = torch.nn.ModuleList(members)

        def forward(self, edge_index_dict: dict) -> torch.Tensor:
            """Node embeddings of every member (members x nodes x dim)."""
            return torch.stack([m(edge_index_dict) for m in self.members])

        def member_scores(
            self, h: torch.Tensor, pairs: torch.Tensor, features: torch.Tensor | None = None
        ) -> torch.Tensor:
            """Each member's scores of ``pairs`` (members x pairs)."""
            return torch.stack(
                [m.decode(h_m, pairs, features) for m, h_m in zip(self.members, h, strict=True)]
            )

        def decode(
            self, h: torch.Tensor, pairs: torch.Tensor, features: torch.Tensor | None = None
        ) -> torch.Tensor:
            return self.member_scores(h, pairs, features).mean(0)

    return HeteroEncoder, Ensemble


def _edge_index_dict(graph: LinkGraph, target_edges: np.ndarray) -> dict:
    """Message-passing edges by (type, relation, type): structure plus ``target_edges``, each
    relation also reversed (``rev_``); a symmetric relation between one type pairs both ways."""
    import torch

    offsets = {t: int(np.flatnonzero(graph.node_types == i)[0]) for i, t in enumerate(graph.types)}
    relations = {**graph.structure, graph.task.predicate: target_edges}
    grouped: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for predicate, pairs in relations.items():
        name = predicate.split(":")[-1]
        symmetric = predicate == graph.task.predicate and graph.task.symmetric
        st, ot = graph.node_types[pairs[:, 0]], graph.node_types[pairs[:, 1]]
        for i, j in np.unique(np.stack([st, ot], axis=1), axis=0).tolist():
            part = pairs[(st == i) & (ot == j)]
            s, o = graph.types[i], graph.types[j]
            local = np.stack([part[:, 0] - offsets[s], part[:, 1] - offsets[o]])
            forward = (s, name, o)
            backward = (o, name, s) if symmetric else (o, f"rev_{name}", s)
            grouped.setdefault(forward, []).append(local)
            grouped.setdefault(backward, []).append(local[::-1])
    return {
        et: torch.as_tensor(np.concatenate(parts, axis=1).copy(), dtype=torch.long)
        for et, parts in sorted(grouped.items())
    }


def _new_model(graph: LinkGraph, config: TrainConfig) -> Any:
    """An untrained ensemble of ``config.members`` encoders sized for ``graph``'s node types
    and edge types (each member initialised from the torch generator in turn)."""
    sizes = {t: int((graph.node_types == i).sum()) for i, t in enumerate(graph.types)}
    encoder, ensemble = _encoder_class()
    edge_types = _all_edge_types(graph)
    names = _names_by_type(graph) if config.name_features else None
    return ensemble([encoder(sizes, edge_types, config, names) for _ in range(config.members)])


def _names_by_type(graph: LinkGraph) -> dict[str, torch.Tensor]:
    """``name_vectors`` of the graph's nodes, split by node type (rows in node order)."""
    import torch

    vectors = torch.as_tensor(name_vectors(graph))
    return {t: vectors[torch.as_tensor(graph.node_types == i)] for i, t in enumerate(graph.types)}


def _path_counts(graph: LinkGraph, edges: np.ndarray, config: TrainConfig) -> PathCounts:
    """``PathCounts`` on ``edges``, through similar names too when ``config.name_paths``."""
    similar = name_neighbours(graph) if config.name_paths else None
    return PathCounts(graph, edges, similar)


def name_neighbours(graph: LinkGraph, k: int = NAME_NEIGHBOURS) -> Any:
    """Each node's ``k`` nodes with the most similar names (cosine of ``name_vectors``) as a
    symmetric sparse matrix weighted by the (positive) cosine."""
    return _name_neighbours(_names(graph), k)


@lru_cache(maxsize=4)
def _name_neighbours(names: tuple[str, ...], k: int) -> Any:
    import scipy.sparse as sp

    n = len(names)
    v = _name_vectors(names)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    k = min(k, n - 1)
    rows, cols, weights = [], [], []
    for start in range(0, n if k > 0 else 0, 4096):  # blocks of rows: n x n may not fit
        sim = v[start : start + 4096] @ v.T
        block = np.arange(start, start + len(sim))
        sim[block - start, block] = -1.0  # not its own neighbour
        top = np.argpartition(-sim, k, axis=1)[:, :k]
        rows.append(np.repeat(block, k))
        cols.append(top.ravel())
        weights.append(np.maximum(np.take_along_axis(sim, top, axis=1).ravel(), 0.0))
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    m = sp.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    return m.maximum(m.T).astype(np.float32).tocsr()


def name_vectors(graph: LinkGraph) -> np.ndarray:
    """Features of the nodes' names (nodes x ``384 + NAME_NGRAM_DIM``; zero for a node without
    a name): the MiniLM sentence embedding and the character n-gram vector (``char_ngrams``),
    computed once per list of names."""
    return _name_vectors(_names(graph))


def _names(graph: LinkGraph) -> tuple[str, ...]:
    """The graph's node names, one per node (the cache key of the name features)."""
    if len(graph.names) != graph.num_nodes:
        raise ValueError("name features need the graph's node names (graph.names)")
    return tuple(graph.names)


@lru_cache(maxsize=4)
def _name_vectors(names: tuple[str, ...]) -> np.ndarray:
    from ingest.embeddings import embed

    vectors = np.hstack([embed(list(names)), char_ngrams(list(names))])
    vectors[[not n for n in names]] = 0.0
    return vectors


def char_ngrams(texts: list[str], dim: int = NAME_NGRAM_DIM) -> np.ndarray:
    """Unit-length TF-IDF vectors of the texts' character 2- to 4-grams (within words; word
    endings such as -azole, -mycine, -statine), reduced to ``dim`` dimensions by SVD."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not any(texts):
        return np.zeros((len(texts), dim), dtype=np.float32)
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    x = tfidf.fit_transform(texts)
    with warnings.catch_warnings():  # a handful of texts: explained variance divides by 0
        warnings.simplefilter("ignore", RuntimeWarning)
        z = TruncatedSVD(min(dim, x.shape[1] - 1), random_state=0).fit_transform(x)
    z = np.pad(z, ((0, 0), (0, dim - z.shape[1])))
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _all_edge_types(graph: LinkGraph) -> list[tuple[str, str, str]]:
    """Every edge type the graph can have, so a model fits any subset of its edges."""
    full = _edge_index_dict(graph, graph.positives)
    return sorted(full)


@dataclass
class LinkPredictor:
    """A trained GNN for one task, its calibration and what it was trained on."""

    graph: LinkGraph
    train_edges: np.ndarray
    calibration_edges: np.ndarray
    model: Any
    config: TrainConfig
    calibrator: PlattScaler = field(default_factory=PlattScaler)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    trained_at: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    visible_edges: np.ndarray | None = None
    """Target edges that message passing and pair features read when scoring: the training
    and calibration edges once calibrated, the training edges before (``None``)."""
    _embeddings: Any = None
    _path_counts: Any = None
    _propensities: Any = None

    @property
    def task(self) -> LinkTask:
        return self.graph.task

    @property
    def name(self) -> str:
        return model_name(self.task)

    def see(self, edges: np.ndarray | None) -> None:
        """Score with ``edges`` as the visible target edges from now on (``None``: the
        training edges)."""
        self.visible_edges = edges
        self._embeddings = self._path_counts = self._propensities = None

    def _visible(self) -> np.ndarray:
        return self.train_edges if self.visible_edges is None else self.visible_edges

    def embeddings(self) -> torch.Tensor:
        """Node embeddings of each member (members x nodes x dim) with message passing over
        the visible edges (cached)."""
        if self._embeddings is None:
            import torch

            self.model.eval()
            with torch.no_grad():
                self._embeddings = self.model(_edge_index_dict(self.graph, self._visible()))
        return self._embeddings

    def path_counts(self) -> PathCounts | None:
        """Pair features on the visible edges (cached), when the model uses them."""
        if self.config.path_counts and self._path_counts is None:
            self._path_counts = _path_counts(self.graph, self._visible(), self.config)
        return self._path_counts

    def scores(self, pairs: np.ndarray) -> np.ndarray:
        """Scores (logits) of node-number pairs; any shape ending in 2: the decoder's score less
        ``config.propensity`` times the two ends' ``propensities``."""
        import torch

        pairs = np.asarray(pairs, dtype=np.int64)
        flat = pairs.reshape(-1, 2)
        counts = self.path_counts()
        features = torch.as_tensor(counts(flat)) if counts else None
        with torch.no_grad():
            out = self.model.decode(self.embeddings(), torch.as_tensor(flat), features).numpy()
        if self.config.propensity:
            out = out - self.config.propensity * self.propensities()[flat].sum(1)
        return out.reshape(pairs.shape[:-1])

    def propensities(self) -> np.ndarray:
        """Each node's mean decoder score against a fixed sample of ``PROPENSITY_PARTNERS``
        nodes the task pairs it with, as a subject (as an object for nodes of object types
        only; 0 for other nodes); cached with the embeddings."""
        if self._propensities is None:
            task, graph = self.task, self.graph
            subjects = graph.nodes_of(task.subject_types)
            objects = graph.nodes_of(task.object_types)
            rng = np.random.default_rng(0)
            values = np.zeros(graph.num_nodes)
            ends = [(subjects, objects, True)]  # (nodes, their partners, nodes are subjects)
            if not task.symmetric:
                ends.insert(0, (objects, subjects, False))
            for nodes, partners, as_subject in ends:
                sample = rng.choice(
                    partners, min(PROPENSITY_PARTNERS, len(partners)), replace=False
                )
                for start in range(0, len(nodes), 256):
                    rows = nodes[start : start + 256]
                    if as_subject:
                        values[rows] = _decoded_block(self, rows, sample).mean(1)
                    else:
                        values[rows] = _decoded_block(self, sample, rows).mean(0)
            self._propensities = values
        return self._propensities

    def probabilities(self, pairs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of pairs."""
        return self.calibrator(self.scores(pairs))

    def citation(self) -> Citation:
        """The model citation that proposed edges cite."""
        return Citation(
            id=f"model:{self.name}@{MODEL_VERSION}:kg{self.graph.kg_version}",
            kind="model",
            title=f"evocdss heterogeneous GraphSAGE link predictor: {self.task.title}",
            version=MODEL_VERSION,
            date=self.trained_at[:10],
            details={
                "model": self.name,
                "task": self.task.name,
                "predicate": self.task.predicate,
                "training_kg_version": self.graph.kg_version,
                "training_data": self.graph.source,
                "train_edges": len(self.train_edges),
                "calibration_edges": len(self.calibration_edges),
                "edges_visible_when_scoring": len(self._visible()),
                "calibration": self.calibrator.to_dict(),
                "metrics_on_calibration_split": self.metrics,
                "config": asdict(self.config),
                "trained_at": self.trained_at,
                "train_seconds": round(self.seconds, 1),
                "code": "learners/linkpred.py",
            },
        )


def train_linkpred(
    graph: LinkGraph,
    split: EdgeSplit | None = None,
    config: TrainConfig | None = None,
) -> LinkPredictor:
    """Train the GNN on ``split.train`` and calibrate it on ``split.calibration``
    (default split: 90% train, 10% calibration, no test)."""
    config = config or TrainConfig()
    split = split or split_edges(graph, calibration=0.1, test=0.0, seed=config.seed)
    torch = _torch(config.threads, config.seed)
    model = _new_model(graph, config)
    predictor = LinkPredictor(graph, split.train, split.calibration, model, config)
    started = time.perf_counter()
    predictor.history = _fit(predictor, split.train, split.train, config.epochs, config, torch)
    predictor.seconds = time.perf_counter() - started
    calibrate(predictor)
    return predictor


def _fit(
    predictor: LinkPredictor,
    graph_edges: np.ndarray,
    supervised: np.ndarray,
    epochs: int,
    config: TrainConfig,
    torch: Any,
    *,
    lr: float | None = None,
) -> list[dict[str, Any]]:
    """Full-batch training: each epoch hides ``hidden_fraction`` of ``supervised`` from message
    passing (the rest of ``graph_edges`` stays) and learns to score those hidden edges. The loss
    is the sum of the members' losses, so each member learns as if it were trained alone."""
    graph, model = predictor.graph, predictor.model
    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=lr or config.lr, weight_decay=config.weight_decay
    )
    train_blocked = graph.blocked_given(graph_edges)
    supervised_keys = graph.keys(supervised)
    rest = graph_edges[~np.isin(graph.keys(graph_edges), supervised_keys)]
    known_negatives = graph.negatives
    history = []
    model.train()
    for epoch in range(epochs):
        hidden = rng.random(len(supervised)) < config.hidden_fraction
        if config.hidden_nodes:
            cold = rng.random(graph.num_nodes) < config.hidden_nodes
            hidden |= cold[supervised].any(axis=1)
            rest_visible = ~cold[rest].any(axis=1)
        else:
            rest_visible = np.ones(len(rest), dtype=bool)
        visible = np.concatenate([rest[rest_visible], supervised[~hidden]])
        targets = supervised[hidden]
        negatives = corrupt(graph, targets, config.negatives, rng, blocked=train_blocked).reshape(
            -1, 2
        )
        h = model(_edge_index_dict(graph, visible))
        counts = _path_counts(graph, visible, config) if config.path_counts else None

        def decode(pairs: np.ndarray, h: Any = h, counts: PathCounts | None = counts) -> Any:
            features = torch.as_tensor(counts(pairs)) if counts else None
            return model.member_scores(h, torch.as_tensor(pairs), features)

        pos = decode(targets)
        neg = decode(negatives)
        if len(known_negatives):
            neg = torch.cat([neg, decode(known_negatives)], dim=1)
        per_member = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.cat([pos, neg], dim=1),
            torch.cat([torch.ones_like(pos), torch.zeros_like(neg)], dim=1),
            reduction="none",
        ).mean(1)
        loss = per_member.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({"epoch": epoch, "loss": loss.item()})
    model.eval()
    predictor.see(None)
    return history


def calibrate(predictor: LinkPredictor) -> None:
    """Fit the Platt scaler on the calibration split (at most ``MAX_CALIBRATION`` positives,
    each with ``calibration_negatives`` corrupted negatives) scored with only the training edges
    visible, record its metrics, then let the predictor see the calibration edges too."""
    cal = predictor.calibration_edges
    if len(cal) == 0:
        raise ValueError("no calibration edges: calibration needs a held-out split")
    predictor.see(None)
    rng = np.random.default_rng(predictor.config.seed + 1)
    if len(cal) > MAX_CALIBRATION:
        cal = cal[rng.choice(len(cal), MAX_CALIBRATION, replace=False)]
    k = predictor.config.calibration_negatives
    negatives = corrupt(predictor.graph, cal, k, rng)
    ranked = corrupt(predictor.graph, cal, 100, rng)
    pos, neg = predictor.scores(cal), predictor.scores(negatives).reshape(-1)
    predictor.calibrator = PlattScaler.fit(
        np.r_[pos, neg], np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    )
    metrics = score_metrics(pos, neg, predictor.scores(ranked))
    predictor.metrics = {
        **{k_: round(v, 4) for k_, v in metrics.items()},
        "positives": len(cal),
        "negatives_per_positive": k,
        "ranking_negatives": 100,
    }
    predictor.trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    predictor.see(np.concatenate([predictor.train_edges, predictor.calibration_edges]))


def fine_tune(
    predictor: LinkPredictor,
    graph: LinkGraph,
    new_edges: np.ndarray,
    *,
    epochs: int = 20,
    replay: float = 2.0,
    lr: float | None = None,
) -> LinkPredictor:
    """Warm-start update: a new predictor on ``graph`` (which holds the new edges) that starts
    from ``predictor``'s weights (nodes matched by id; new nodes start fresh), trained a few
    epochs on ``new_edges`` plus a replay sample of ``replay`` x as many old training edges,
    then recalibrated on the same calibration edges (mapped by id)."""
    config = predictor.config
    torch = _torch(config.threads, config.seed)
    model = _new_model(graph, config)
    _copy_weights(predictor, graph, model, torch)
    old_train = _remap(predictor.graph, graph, predictor.train_edges)
    calibration = _remap(predictor.graph, graph, predictor.calibration_edges)
    new_edges = graph.canonical(new_edges)
    rng = np.random.default_rng(config.seed + 2)
    n_replay = min(len(old_train), round(replay * len(new_edges)))
    replayed = old_train[rng.choice(len(old_train), size=n_replay, replace=False)]
    train_edges = np.unique(np.concatenate([old_train, new_edges]), axis=0)
    updated = LinkPredictor(graph, train_edges, calibration, model, config)
    started = time.perf_counter()
    supervised = np.unique(np.concatenate([new_edges, replayed]), axis=0)
    updated.history = _fit(
        updated, train_edges, supervised, epochs, config, torch, lr=lr or config.lr / 2
    )
    updated.seconds = time.perf_counter() - started
    calibrate(updated)
    return updated


def _remap(old: LinkGraph, new: LinkGraph, pairs: np.ndarray) -> np.ndarray:
    """Pairs of ``old``'s node numbers as ``new``'s (pairs with a node ``new`` lacks dropped)."""
    index = {x: i for i, x in enumerate(new.node_ids)}
    mapped = np.array([index.get(x, -1) for x in old.node_ids], dtype=np.int64)
    out = mapped[pairs] if len(pairs) else pairs.reshape(0, 2)
    return new.canonical(out[(out >= 0).all(axis=1)])


def _embedding_type(key: str) -> str | None:
    """The node type of an embedding table's weight in a state dict (None for other weights)."""
    parts = key.split(".")
    return parts[-2] if len(parts) >= 3 and parts[-3] == "embeddings" else None


def _copy_weights(predictor: LinkPredictor, graph: LinkGraph, model: Any, torch: Any) -> None:
    """Copy every weight of ``predictor``'s model into ``model`` (member by member); embedding
    rows by node id."""
    old_state = predictor.model.state_dict()
    new_state = model.state_dict()
    old_index = {x: i for i, x in enumerate(predictor.graph.node_ids)}
    for key, value in old_state.items():
        if key not in new_state:
            continue
        node_type = _embedding_type(key)
        if node_type is None:
            if new_state[key].shape == value.shape:
                new_state[key] = value
            continue
        new_nodes = [
            x
            for x, ti in zip(graph.node_ids, graph.node_types, strict=True)
            if graph.types[ti] == node_type
        ]
        old_offset = int(
            np.flatnonzero(predictor.graph.node_types == predictor.graph.types.index(node_type))[0]
        )
        rows = torch.as_tensor([old_index.get(x, -1) for x in new_nodes])
        keep = rows >= 0
        new_state[key][keep] = value[rows[keep] - old_offset]
    model.load_state_dict(new_state)


def train_from_store(
    store: GraphStore, task: str = "ddi", config: TrainConfig | None = None
) -> LinkPredictor:
    """Train and calibrate the GNN of ``task`` on the KG as it is now."""
    if task not in TASKS:
        raise ValueError(f"unknown link prediction task {task!r}: use one of {', '.join(TASKS)}")
    return train_linkpred(load_graph(store, TASKS[task]), config=config)


def update(predictor: LinkPredictor, store: GraphStore, **kwargs: Any) -> LinkPredictor:
    """Warm-start ``predictor`` on the KG as it is now: the trusted target edges it was not
    trained on (nor calibrated on) are the new edges (see ``fine_tune``)."""
    graph = load_graph(store, predictor.task)
    seen = np.concatenate(
        [
            _remap(predictor.graph, graph, predictor.train_edges),
            _remap(predictor.graph, graph, predictor.calibration_edges),
        ]
    )
    new_edges = graph.positives[~np.isin(graph.keys(graph.positives), graph.keys(seen))]
    return fine_tune(predictor, graph, new_edges, **kwargs)


def candidates(
    predictor: LinkPredictor, threshold: float, limit: int, blocked: np.ndarray
) -> list[tuple[int, int, float, float]]:
    """The best-scoring unblocked pairs with calibrated p >= threshold, best first:
    (a, b, score, p) in node numbers."""
    graph = predictor.graph
    subjects = graph.nodes_of(graph.task.subject_types)
    objects = graph.nodes_of(graph.task.object_types)
    min_score = _score_at(predictor.calibrator, threshold)
    found: list[tuple[float, int, int]] = []
    for start in range(0, len(subjects), 256):
        rows = subjects[start : start + 256]
        a = np.repeat(rows[:, None], len(objects), axis=1)
        b = np.repeat(objects[None, :], len(rows), axis=0)
        values = _block_scores(predictor, rows, objects)
        ok = (values >= min_score) & (a != b)
        if graph.task.symmetric:
            ok &= a < b
        a, b, values = a[ok], b[ok], values[ok]
        keep = ~contains(blocked, graph.keys(np.stack([a, b], axis=1)))
        found.extend(zip(values[keep].tolist(), a[keep].tolist(), b[keep].tolist(), strict=True))
        found = sorted(found, reverse=True)[:limit]
    return [(a, b, s, float(predictor.calibrator(np.array([s]))[0])) for s, a, b in found]


def _block_scores(predictor: LinkPredictor, rows: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Scores of every (row, object) pair (len(rows) x len(objects)), as ``scores`` gives them."""
    values = _decoded_block(predictor, rows, objects)
    if predictor.config.propensity:
        p = predictor.propensities()
        values = values - predictor.config.propensity * (p[rows][:, None] + p[objects][None, :])
    return values


def _decoded_block(predictor: LinkPredictor, rows: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Decoder scores of every (row, object) pair: one matrix product per member when the
    decoder is bilinear, else with the pair features of the whole block."""
    import torch

    h, counts = predictor.embeddings(), predictor.path_counts()
    with torch.no_grad():
        if counts is None:
            relation = torch.stack([m.relation for m in predictor.model.members])
            right = h[:, torch.as_tensor(objects)] * relation[:, None, :]
            return (h[:, torch.as_tensor(rows)] @ right.transpose(1, 2)).mean(0).numpy()
        grid = np.stack(np.meshgrid(rows, objects, indexing="ij"), axis=-1).reshape(-1, 2)
        features = counts.grid(rows, objects).reshape(-1, counts.size)
        out = predictor.model.decode(h, torch.as_tensor(grid), torch.as_tensor(features))
    return out.numpy().reshape(len(rows), len(objects))


def _score_at(calibrator: PlattScaler, p: float) -> float:
    """The raw score whose calibrated probability is ``p``."""
    if calibrator.slope <= 0:
        return float("inf") if p > calibrator(np.array([0.0]))[0] else float("-inf")
    p = min(max(p, 1e-12), 1 - 1e-12)
    return (np.log(p / (1 - p)) - calibrator.intercept) / calibrator.slope


def propose(
    store: GraphStore, model: LinkPredictor, threshold: float = 0.9, limit: int = 100
) -> list[Edge]:
    """Write up to ``limit`` predicted pairs with calibrated p >= ``threshold`` as ``proposed``
    edges citing the model (a drug interaction as both directions, like ANSM's), best first.

    A pair already in the KG with the predicate, whatever its status (a rejected edge is a
    curator's negative), or implied by a rule (class membership, HPO true path) is never
    proposed. Returns the edges written.
    """
    current = load_graph(store, model.task)
    index = {x: i for i, x in enumerate(model.graph.node_ids)}
    mapped = np.array([index.get(x, -1) for x in current.node_ids], dtype=np.int64)
    keys = current.blocked
    a, b = keys // current.num_nodes, keys % current.num_nodes
    present = (mapped[a] >= 0) & (mapped[b] >= 0)
    blocked = np.unique(
        np.concatenate(
            [model.graph.blocked, model.graph.keys(np.stack([mapped[a], mapped[b]], 1)[present])]
        )
    )
    found = candidates(model, threshold, limit, blocked)
    citation = model.citation()
    ids = model.graph.node_ids
    edges = []
    for i, j, score, p in found:
        qualifiers = {
            "score": round(score, 4),
            "model": f"{model.name}@{MODEL_VERSION}",
            "threshold": threshold,
        }
        pairs = [(ids[i], ids[j]), (ids[j], ids[i])] if model.task.symmetric else [(ids[i], ids[j])]
        for s, o in pairs:
            edges.append(
                Edge(
                    s,
                    model.task.predicate,
                    o,
                    (citation.id,),
                    status=Status.PROPOSED,
                    confidence=round(p, 4),
                    qualifiers=qualifiers,
                )
            )
    if edges:
        store.upsert(
            citations=[citation],
            edges=edges,
            actor=ACTOR,
            reason=f"{model.name} proposals with calibrated p >= {threshold}",
        )
    return edges


__all__ = [
    "LinkPredictor",
    "TrainConfig",
    "fine_tune",
    "propose",
    "train_from_store",
    "train_linkpred",
    "update",
]
