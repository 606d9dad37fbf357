"""GNN link prediction on the real KG: graphs, splits, training, calibration, proposals, updates
and the `evocdss eval linkpred` command."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kg import open_store
from kg.store import GraphStore
from kg.vocab import Status
from learners.calibration import PlattScaler, auroc, ranking_metrics
from learners.linkgraph import (
    DDI,
    DISEASE_PHENOTYPE,
    LinkGraph,
    corrupt,
    load_graph,
    split_edges,
)
from learners.linkpred import LinkPredictor, TrainConfig, propose, train_linkpred, update

QUICK = TrainConfig(
    epochs=120,
    dropout=0.5,
    hidden_fraction=0.5,
    hidden_nodes=0.1,
    input_dropout=0.5,
    weight_decay=1e-5,
    path_counts=True,
    threads=1,
)


@pytest.fixture(scope="module")
def ddi(built_kg: GraphStore) -> LinkGraph:
    return load_graph(built_kg, DDI)


@pytest.fixture(scope="module")
def predictor(ddi: LinkGraph) -> LinkPredictor:
    """The DDI GNN trained on 80% of the interactions (10% calibration, 10% held out)."""
    return train_linkpred(ddi, split_edges(ddi, seed=0), QUICK)


@pytest.fixture
def kg_copy(built_kg: GraphStore, tmp_path: Path) -> Iterator[GraphStore]:
    """A private copy of the built KG for tests that write."""
    source = Path(built_kg.path)  # type: ignore[attr-defined]
    path = tmp_path / "kg.sqlite"
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{path}{suffix}")
    store = open_store(f"sqlite:///{path}")
    yield store
    store.close()


def test_ddi_graph_holds_each_ansm_pair_once(ddi: LinkGraph) -> None:
    assert len(ddi.positives) >= 1500  # 1,584 pairs in ANSM 2020-01
    assert (ddi.positives[:, 0] < ddi.positives[:, 1]).all()
    assert {"substance", "drug_class"} <= set(ddi.types)
    index = {x: i for i, x in enumerate(ddi.node_ids)}
    warfarin, aspirin = index["ANSM:warfarine"], index["ANSM:acide-acetylsalicylique"]
    assert ddi.is_blocked(np.array([[aspirin, warfarin], [warfarin, aspirin]])).all()
    # a member of a class inherits the class's interactions: such pairs are never negatives
    assert ddi.info["implied_pairs"] > 10_000


def test_negated_annotations_are_negatives_not_positives(built_kg: GraphStore) -> None:
    graph = load_graph(built_kg, DISEASE_PHENOTYPE)
    assert graph.info["negated"] >= 500 and len(graph.positives) >= 250_000
    negated = set(map(tuple, graph.negatives.tolist()))
    assert not negated & set(map(tuple, graph.positives.tolist()))


def test_split_keeps_both_directions_of_an_interaction_together(ddi: LinkGraph) -> None:
    split = split_edges(ddi, seed=0)
    parts = [set(ddi.keys(p).tolist()) for p in (split.train, split.calibration, split.test)]
    reversed_test = set(ddi.keys(split.test[:, ::-1]).tolist())
    assert reversed_test == parts[2]
    assert not (parts[0] & parts[2] or parts[0] & parts[1] or parts[1] & parts[2])
    assert sum(map(len, parts)) == len(ddi.positives)


def test_gnn_ranks_held_out_interactions_far_above_chance(
    ddi: LinkGraph, predictor: LinkPredictor
) -> None:
    test = split_edges(ddi, seed=0).test
    rng = np.random.default_rng(1)
    negatives = corrupt(ddi, test, 1, rng).reshape(-1, 2)
    ranked = corrupt(ddi, test, 100, rng)
    assert not ddi.is_blocked(negatives).any()
    score = auroc(predictor.scores(test), predictor.scores(negatives))
    hits = ranking_metrics(predictor.scores(test), predictor.scores(ranked))["hits@10"]
    assert score > 0.75, score  # random: 0.5
    assert hits > 0.3, hits  # random: 10/101


def test_calibration_is_monotone_and_in_unit_interval(predictor: LinkPredictor) -> None:
    grid = np.linspace(-50, 50, 401)
    p = predictor.calibrator(grid)
    assert ((p >= 0) & (p <= 1)).all() and (np.diff(p) >= 0).all()
    assert predictor.calibrator.slope > 0
    refit = PlattScaler.fit(np.r_[grid, grid], np.r_[grid > 0, grid > 10])
    assert (np.diff(refit(grid)) >= 0).all()
    assert predictor.metrics["auroc"] > 0.7


def test_proposals_are_cited_proposed_and_new(
    predictor: LinkPredictor, kg_copy: GraphStore
) -> None:
    before = {e.key for e in kg_copy.edges(predicate=DDI.predicate)}
    edges = propose(kg_copy, predictor, threshold=0.5, limit=10)
    assert 0 < len(edges) <= 20  # 10 pairs, both directions
    citation = predictor.citation()
    assert citation.id == f"model:gnn-ddi@1.0:kg{predictor.graph.kg_version}"
    stored = kg_copy.get_citations([citation.id])[citation.id]
    assert stored.kind == "model"
    assert stored.details["training_kg_version"] == predictor.graph.kg_version
    for e in edges:
        assert e.key not in before and (e.object, e.predicate, e.subject) not in before
        got = kg_copy.get_edge(e.id)
        assert got is not None and got.status == Status.PROPOSED
        assert got.citations == (citation.id,) and 0.5 <= got.confidence <= 1
        assert {"score", "model", "threshold"} <= set(got.qualifiers)
    # a curator rejects one: it is a negative now, and nothing already in the KG comes back
    kg_copy.set_status(edges[0].id, Status.REJECTED, actor="dr.test", reason="not in SmPC")
    again = propose(kg_copy, predictor, threshold=0.5, limit=10)
    assert not {e.key for e in again} & ({e.key for e in edges} | before)


def test_warm_start_update_learns_the_edges_it_has_not_seen(
    predictor: LinkPredictor, built_kg: GraphStore
) -> None:
    updated = update(predictor, built_kg, epochs=10)
    held_out = split_edges(predictor.graph, seed=0).test
    assert len(updated.train_edges) >= len(predictor.train_edges) + len(held_out)
    assert updated.seconds < predictor.seconds
    assert updated.metrics["auroc"] > 0.7


def test_eval_linkpred_command(built_kg: GraphStore, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app as root

    shutil.copyfile(Path(built_kg.path), tmp_path / "kg.sqlite")  # type: ignore[attr-defined]
    url = f"sqlite:///{tmp_path / 'kg.sqlite'}"
    args = ["eval", "linkpred", "--store", url, "--task", "ddi", "--quick"]
    out = tmp_path / "out"
    result = CliRunner().invoke(root, [*args, "--json", "--no-incremental", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    models = report["tasks"]["ddi"]["models"]
    assert set(models) == {"gnn", "adamic_adar", "kge-rotate"}
    for m in models.values():
        assert 0 <= m["auroc"] <= 1 and 0 <= m["hits@10"] <= 1 and m["mrr"] > 0
    assert report["temporal_ddi"]["test_pairs_with_both_ends_in_train"] > 50
    assert (out / "linkpred-ddi.png").stat().st_size > 10_000
    assert json.loads((out / "linkpred.json").read_text())["seed"] == 0
    table = CliRunner().invoke(root, [*args, "--no-temporal", "--no-incremental"])
    assert table.exit_code == 0 and "adamic_adar" in table.stdout


def test_propose_command_writes_cited_proposals(built_kg: GraphStore, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app as root

    shutil.copyfile(Path(built_kg.path), tmp_path / "kg.sqlite")  # type: ignore[attr-defined]
    url = f"sqlite:///{tmp_path / 'kg.sqlite'}"
    args = ["linkpred", "propose", "--store", url, "--quick", "--threshold", "0.5", "--limit", "3"]
    result = CliRunner().invoke(root, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 1 <= len(report["proposed"]) <= 6  # a pair is proposed in both directions
    store = open_store(url)
    try:
        for row in report["proposed"]:
            edge = store.get_edge(row["edge"])
            assert edge is not None and edge.status == "proposed"
            assert edge.predicate == "biolink:interacts_with"
            (citation,) = store.get_citations(list(edge.citations)).values()
            assert citation.id == report["model"] and citation.kind == "model"
    finally:
        store.close()
    bad = CliRunner().invoke(root, ["linkpred", "propose", "--store", url, "--task", "x"])
    assert bad.exit_code != 0
