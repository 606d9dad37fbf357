"""Knowledge-graph-embedding baselines (PyG ``torch_geometric.nn.kge``) on a task's graph."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from learners.linkgraph import LinkGraph

KGE_MODELS = ("distmult", "rotate")


@dataclass
class KGEScorer:
    """A trained KGE model scoring pairs with the task's relation."""

    graph: LinkGraph
    model: Any
    relation: int
    name: str
    seconds: float

    def scores(self, pairs: np.ndarray) -> np.ndarray:
        """Scores of node-number pairs (any shape ending in 2); both orders averaged for a
        symmetric relation."""
        import torch

        pairs = np.asarray(pairs, dtype=np.int64)
        flat = torch.as_tensor(pairs.reshape(-1, 2))
        rel = torch.full((len(flat),), self.relation, dtype=torch.long)
        self.model.eval()
        with torch.no_grad():
            out = self.model(flat[:, 0], rel, flat[:, 1])
            if self.graph.task.symmetric:
                out = (out + self.model(flat[:, 1], rel, flat[:, 0])) / 2
        return out.numpy().reshape(pairs.shape[:-1])


def train_kge(
    graph: LinkGraph,
    train_edges: np.ndarray,
    *,
    model: str = "distmult",
    dim: int = 64,
    epochs: int = 100,
    batch_size: int = 1024,
    lr: float = 0.01,
    seed: int = 0,
    threads: int = 1,
) -> KGEScorer:
    """Train DistMult or RotatE on the training edges of the task's relation (both directions
    when it is symmetric) and the graph's structure relations."""
    import warnings

    import torch

    with warnings.catch_warnings():  # PyG's import calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from torch_geometric.nn.kge import DistMult, RotatE

    if model not in KGE_MODELS:
        raise ValueError(f"unknown KGE model {model!r}: use one of {', '.join(KGE_MODELS)}")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    relations = [graph.task.predicate, *graph.structure]
    triples = []
    for r, predicate in enumerate(relations):
        pairs = train_edges if predicate == graph.task.predicate else graph.structure[predicate]
        if predicate == graph.task.predicate and graph.task.symmetric:
            pairs = np.concatenate([pairs, pairs[:, ::-1]])
        triples.append(np.column_stack([pairs[:, 0], np.full(len(pairs), r), pairs[:, 1]]))
    heads, rels, tails = torch.as_tensor(np.concatenate(triples)).T
    cls = DistMult if model == "distmult" else RotatE
    kge = cls(graph.num_nodes, len(relations), dim)
    optimizer = torch.optim.Adam(kge.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    kge.train()
    for _ in range(epochs):
        order = torch.randperm(len(heads), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = kge.loss(heads[batch], rels[batch], tails[batch])
            loss.backward()
            optimizer.step()
    return KGEScorer(graph, kge, 0, f"kge-{model}", time.perf_counter() - started)
