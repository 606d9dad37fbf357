"""GNN link prediction on the real KG: graphs, splits, training, calibration, proposals, updates
and the `evocdss eval linkpred` command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evaluation.linkpred import CONFIGS, _metrics, adamic_adar
from kg import open_store
from kg.store import GraphStore
from kg.vocab import MEMBER_OF, Status
from learners.calibration import PlattScaler, auprc, auroc, ranking_metrics, roc_curve
from learners.linkgraph import (
    DDI,
    DISEASE_PHENOTYPE,
    LinkGraph,
    PathCounts,
    build_graph,
    contains,
    corrupt,
    load_graph,
    split_edges,
)
from learners.linkpred import (
    MODEL_VERSION,
    NAME_NGRAM_DIM,
    LinkPredictor,
    _block_scores,
    _decoded_block,
    _edge_index_dict,
    _new_model,
    fine_tune,
    name_neighbours,
    name_vectors,
    propose,
    train_linkpred,
    update,
)

QUICK = replace(CONFIGS["ddi"], epochs=60)


@pytest.fixture(scope="module")
def ddi(built_kg: GraphStore) -> LinkGraph:
    return load_graph(built_kg, DDI)


@pytest.fixture(scope="module")
def disease_phenotype(built_kg: GraphStore) -> LinkGraph:
    return load_graph(built_kg, DISEASE_PHENOTYPE)


@pytest.fixture(scope="module")
def predictor(ddi: LinkGraph) -> LinkPredictor:
    """The DDI GNN trained on 80% of the interactions (10% calibration, 10% held out)."""
    return train_linkpred(ddi, split_edges(ddi, seed=0), QUICK)


@pytest.fixture
def kg_copy(built_kg: GraphStore, tmp_path: Path) -> Iterator[GraphStore]:
    """A private copy of the built KG for tests that write."""
    path = built_kg.backup_to(tmp_path / "kg.sqlite")  # type: ignore[attr-defined]
    store = open_store(f"sqlite:///{path}")
    yield store
    store.close()


def test_metrics_on_known_cases() -> None:
    assert auroc(np.array([3.0, 2.0]), np.array([1.0, 0.0])) == 1.0
    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert auroc(np.ones(3), np.ones(5)) == 0.5  # ties count half
    assert auroc(np.array([2.0, 0.0]), np.array([1.0])) == 0.5
    assert auprc(np.array([3.0, 2.0]), np.array([1.0, 0.0])) == 1.0
    assert auprc(np.array([2.0, 0.0]), np.array([1.0])) == pytest.approx((1 + 2 / 3) / 2)
    fpr, tpr, _ = roc_curve(np.array([2.0, 0.0]), np.array([1.0]))
    assert fpr.tolist() == [0, 0, 1, 1] and tpr.tolist() == [0, 0.5, 0.5, 1]
    # ranks 1, 3 (two negatives above) and 1.5 (one tie): hits@1 counts the first only
    ranked = ranking_metrics(
        np.array([5.0, 1.0, 2.0]),
        np.array([[1.0, 0.0], [2.0, 3.0], [2.0, 0.0]]),
        ks=(1, 2),
    )
    assert ranked == pytest.approx(
        {"hits@1": 1 / 3, "hits@2": 2 / 3, "mrr": (1 + 1 / 3 + 1 / 1.5) / 3}
    )


def test_adamic_adar_weighs_common_neighbours_by_degree() -> None:
    ids = [f"ANSM:{x}" for x in "abcde"]
    a, b, c, d, e = ids
    graph = build_graph(
        DDI, dict.fromkeys(ids, "substance"), [(a, c), (b, c), (a, d), (b, d), (d, e)], {}
    )
    at = {x: i for i, x in enumerate(graph.node_ids)}
    score = adamic_adar(graph, graph.positives)
    got = score(np.array([[at[a], at[b]], [at[a], at[e]], [at[c], at[e]]]))
    assert got == pytest.approx([1 / np.log(2) + 1 / np.log(3), 1 / np.log(3), 0.0])


def test_auroc_and_auprc_are_means_over_balanced_draws() -> None:
    rng = np.random.default_rng(0)
    pos, ranked = rng.normal(1, 1, 40), rng.normal(0, 1, (40, 7))
    pairs = {"positives": np.arange(40), "negatives": np.arange(40, 80), "ranked": ranked}
    values = np.r_[pos, rng.normal(0, 1, 40)]

    def score(x: np.ndarray) -> np.ndarray:
        return ranked if x.ndim == 2 else values[x]

    got = _metrics(score, pairs)
    draws = range(ranked.shape[1])
    assert got["auroc"] == pytest.approx(np.mean([auroc(pos, ranked[:, j]) for j in draws]), 1e-3)
    assert got["auprc"] == pytest.approx(np.mean([auprc(pos, ranked[:, j]) for j in draws]), 1e-3)
    assert got["auroc_single_draw"] == pytest.approx(auroc(pos, values[40:]), 1e-3)
    assert got["hits@10"] == 1.0  # 7 negatives: every positive is in the top 10


def test_ensemble_scores_are_the_mean_of_its_members(ddi: LinkGraph) -> None:
    import torch

    split = split_edges(ddi, seed=0)
    pairs = np.concatenate(
        [split.test[:30], corrupt(ddi, split.test[:30], 1, np.random.default_rng(2)).reshape(-1, 2)]
    )
    for path_counts in (True, False):
        config = replace(
            CONFIGS["ddi"], epochs=5, members=3, path_counts=path_counts, propensity=0.0
        )
        model = train_linkpred(ddi, split, config)
        h, counts = model.embeddings(), model.path_counts()
        features = torch.as_tensor(counts(pairs)) if counts else None
        with torch.no_grad():
            each = [
                m.decode(h[k], torch.as_tensor(pairs), features).numpy()
                for k, m in enumerate(model.model.members)
            ]
        assert len(each) == 3 and not np.allclose(each[0], each[1])  # own initialisation
        assert np.allclose(model.scores(pairs), np.mean(each, axis=0), atol=1e-5)
        rows, cols = pairs[:5, 0], pairs[:7, 1]
        grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)
        assert np.allclose(_block_scores(model, rows, cols), model.scores(grid), atol=1e-4)
    # a warm start copies every member: with no new edge and no epoch, nothing changes
    same = fine_tune(model, ddi, np.zeros((0, 2), dtype=np.int64), epochs=0)
    assert np.allclose(same.scores(pairs), model.scores(pairs), atol=1e-5)


def test_scores_take_off_both_ends_propensities(ddi: LinkGraph, predictor: LinkPredictor) -> None:
    assert predictor.config.propensity > 0  # the DDI settings use it
    decoder_only = replace(predictor, config=replace(predictor.config, propensity=0.0))
    pairs = split_edges(ddi, seed=0).test[:40]
    p = predictor.propensities()
    expected = decoder_only.scores(pairs) - predictor.config.propensity * p[pairs].sum(1)
    assert np.allclose(predictor.scores(pairs), expected, atol=1e-5)
    rows, cols = pairs[:6, 0], pairs[:9, 1]  # the proposals' block scores agree
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)
    assert np.allclose(_block_scores(predictor, rows, cols), predictor.scores(grid), atol=1e-4)
    # a propensity estimates the node's mean score against every partner, from a sample
    drugs = ddi.nodes_of(ddi.task.subject_types)
    every = np.array([_decoded_block(predictor, drugs[i : i + 1], drugs).mean() for i in range(60)])
    assert np.corrcoef(every, p[drugs[:60]])[0, 1] > 0.95
    # drugs with many known interactions score higher with anything than drugs with none
    degree = np.bincount(predictor.train_edges.ravel(), minlength=ddi.num_nodes)[drugs]
    assert p[drugs[degree >= 20]].mean() > p[drugs[degree == 0]].mean() + 0.5


def test_propensities_of_both_ends_of_an_asymmetric_task(disease_phenotype: LinkGraph) -> None:
    graph = disease_phenotype
    config = replace(CONFIGS["disease-phenotype"], epochs=2, propensity=0.5)
    model = train_linkpred(graph, split_edges(graph, seed=0), config)
    p = model.propensities()
    diseases = graph.nodes_of(graph.task.subject_types)
    terms = graph.nodes_of(graph.task.object_types)
    as_subject = _decoded_block(model, diseases[:50], terms).mean(1)
    as_object = _decoded_block(model, diseases, terms[:50]).mean(0)
    assert np.corrcoef(as_subject, p[diseases[:50]])[0, 1] > 0.95
    assert np.corrcoef(as_object, p[terms[:50]])[0, 1] > 0.95
    pairs = split_edges(graph, seed=0).test[:20]
    grid = np.stack(np.meshgrid(pairs[:4, 0], pairs[:5, 1], indexing="ij"), axis=-1)
    assert np.allclose(
        _block_scores(model, pairs[:4, 0], pairs[:5, 1]), model.scores(grid), atol=1e-4
    )


def test_training_negatives_skip_what_the_training_edges_imply() -> None:
    """A member of a class inherits the class's interactions: given the training edges, the
    pairs they imply are no negatives (as in evaluation and proposals); the pairs implied only
    by held-out edges stay unknown, so nothing leaks from them."""
    a, b, c, d, k = (f"ANSM:{x}" for x in "abcdk")
    typed = dict.fromkeys((a, b, c, d), "substance") | {k: "drug_class"}
    graph = build_graph(DDI, typed, [(k, b), (c, d)], {MEMBER_OF: [(a, k)]})
    at = {x: i for i, x in enumerate(graph.node_ids)}

    def key(x: str, y: str) -> int:
        return int(graph.keys(np.array([[at[x], at[y]]]))[0])

    train, held_out = np.array([[at[k], at[b]]]), np.array([[at[c], at[d]]])
    blocked = graph.blocked_given(train)
    assert {key(k, b), key(a, b)} <= set(blocked.tolist())  # a is in class k: a-b is implied
    assert key(c, d) not in blocked and key(a, d) not in blocked
    assert set(graph.blocked_given(np.concatenate([train, held_out])).tolist()) == set(
        graph.blocked.tolist()
    )
    rng = np.random.default_rng(0)
    negatives = corrupt(graph, train.repeat(50, axis=0), 3, rng, blocked=blocked).reshape(-1, 2)
    assert not contains(blocked, graph.keys(negatives)).any()


def test_path_counts_of_pairs_match_the_grid_and_count_paths() -> None:
    ids = [f"ANSM:{x}" for x in "abcdek"]
    a, b, c, d, e, k = ids
    typed = dict.fromkeys(ids, "substance") | {k: "drug_class"}
    target = [(a, c), (b, c), (a, d), (b, d), (d, e)]
    graph = build_graph(DDI, typed, target, {MEMBER_OF: [(a, k), (e, k)]})
    at = {x: i for i, x in enumerate(graph.node_ids)}
    counts = PathCounts(graph, graph.positives)
    rows, cols = np.arange(graph.num_nodes), np.arange(graph.num_nodes)
    grid = counts.grid(rows, cols)
    pairs = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    assert np.allclose(counts(pairs).reshape(grid.shape), grid)
    assert np.allclose(grid, grid.transpose(1, 0, 2))  # symmetric in a, b
    column = PathCounts.names(False).index
    common = np.expm1(grid[..., column("t2")])  # common neighbours on the interactions
    assert common[at[a], at[b]] == pytest.approx(2) and common[at[a], at[e]] == pytest.approx(1)
    # e shares class k with a, which interacts with c: one S-S-T path ("drugs like e interact
    # with c"); and k reaches d through two members that interact with it (S-T)
    assert np.expm1(grid[at[e], at[c], column("sst")]) == pytest.approx(1)
    assert np.expm1(grid[at[k], at[d], column("st")]) == pytest.approx(2)


def test_name_features_are_built_from_the_node_names(ddi: LinkGraph) -> None:
    from ingest.embeddings import embed

    at = {x: i for i, x in enumerate(ddi.node_ids)}
    assert ddi.names[at["ANSM:warfarine"]] == "warfarine"
    vectors = name_vectors(ddi)
    assert vectors.shape == (ddi.num_nodes, 384 + NAME_NGRAM_DIM)
    warfarin, simva, atorva = (
        at[f"ANSM:{x}"] for x in ("warfarine", "simvastatine", "atorvastatine")
    )
    assert np.allclose(vectors[warfarin, :384], embed(["warfarine"])[0], atol=1e-5)
    ngrams = vectors[:, 384:]  # unit length: the "-statine" ending makes statins close
    assert ngrams[simva] @ ngrams[atorva] > ngrams[simva] @ ngrams[warfarin] + 0.3
    with pytest.raises(ValueError, match="names"):
        name_vectors(replace(ddi, names=[]))


def test_name_features_change_the_node_inputs(ddi: LinkGraph) -> None:
    """The encoder adds a projection of each node's name vector to its learned embedding: with
    the same weights, other names give other embeddings; without name features, names are
    ignored."""
    import torch

    assert CONFIGS["ddi"].name_features
    shuffled = replace(ddi, names=ddi.names[::-1])
    edges = _edge_index_dict(ddi, ddi.positives)

    def encode(graph: LinkGraph, name_features: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = _new_model(graph, replace(CONFIGS["ddi"], name_features=name_features)).eval()
        with torch.no_grad():
            return model(edges)

    assert not torch.allclose(encode(ddi, True), encode(shuffled, True))
    assert torch.equal(encode(ddi, False), encode(shuffled, False))


def test_path_counts_through_similar_names() -> None:
    import scipy.sparse as sp

    ids = [f"ANSM:{x}" for x in "abcd"]
    a, b, c, d = ids
    graph = build_graph(DDI, dict.fromkeys(ids, "substance"), [(a, c), (b, d)], {})
    at = {x: i for i, x in enumerate(graph.node_ids)}
    similar = sp.csr_matrix(([0.5, 0.5], ([at[a], at[b]], [at[b], at[a]])), shape=(4, 4))
    counts = PathCounts(graph, graph.positives, similar)
    nodes = np.arange(4)
    grid = counts.grid(nodes, nodes)
    assert counts.size == grid.shape[-1] == PathCounts.width(True)
    assert np.allclose(grid, grid.transpose(1, 0, 2))
    # a's name is like b's, and b interacts with d: one N-T path of weight 0.5 from a to d
    nt = PathCounts.names(True).index("nt")
    assert np.expm1(grid[at[a], at[d], nt]) == pytest.approx(0.5)
    assert np.expm1(grid[at[a], at[c], nt]) == pytest.approx(0)  # a-c itself is T, not N-T
    assert PathCounts(graph, graph.positives).size == PathCounts.width(False)


def test_name_neighbours_link_drugs_named_alike(ddi: LinkGraph, predictor: LinkPredictor) -> None:
    at = {x: i for i, x in enumerate(ddi.node_ids)}
    similar = name_neighbours(ddi)
    assert abs(similar - similar.T).max() == 0 and similar.diagonal().sum() == 0
    row = similar[at["ANSM:simvastatine"]]
    assert at["ANSM:atorvastatine"] in row.indices and at["ANSM:warfarine"] not in row.indices
    # the DDI model's pair features count paths through them
    assert CONFIGS["ddi"].name_paths
    assert predictor.path_counts().size == PathCounts.width(True)


def test_ddi_graph_holds_each_ansm_pair_once(ddi: LinkGraph) -> None:
    assert len(ddi.positives) >= 1500  # 1,584 pairs in ANSM 2020-01
    assert (ddi.positives[:, 0] < ddi.positives[:, 1]).all()
    assert {"substance", "drug_class"} <= set(ddi.types)
    index = {x: i for i, x in enumerate(ddi.node_ids)}
    warfarin, aspirin = index["ANSM:warfarine"], index["ANSM:acide-acetylsalicylique"]
    assert ddi.is_blocked(np.array([[aspirin, warfarin], [warfarin, aspirin]])).all()
    # a member of a class inherits the class's interactions: such pairs are never negatives
    assert ddi.info["implied_pairs"] > 10_000


def test_negated_annotations_are_negatives_not_positives(disease_phenotype: LinkGraph) -> None:
    graph = disease_phenotype
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


def test_calibrated_model_sees_the_calibration_edges(
    ddi: LinkGraph, predictor: LinkPredictor
) -> None:
    """Calibration scores its pairs unseen; afterwards the model scores (and proposes) with
    them visible, so a drug known only through calibration edges is not scored as unknown."""
    split = split_edges(ddi, seed=0)
    visible = predictor.visible_edges
    assert visible is not None and len(visible) == len(split.train) + len(split.calibration)
    assert predictor.citation().details["edges_visible_when_scoring"] == len(visible)
    seen, seen_degree = predictor.path_counts()(split.calibration), predictor.path_counts().deg_t
    predictor.see(None)
    try:
        unseen, unseen_degree = (
            predictor.path_counts()(split.calibration),
            predictor.path_counts().deg_t,
        )
    finally:
        predictor.see(visible)
    degree_sum = PathCounts.names(CONFIGS["ddi"].name_paths).index("degree_sum_t")
    assert (seen[:, degree_sum] > unseen[:, degree_sum]).all()
    # drugs whose every known interaction is in the calibration split: unknown before
    only_in_calibration = np.setdiff1d(split.calibration, split.train)
    assert len(only_in_calibration) > 0
    assert (unseen_degree[only_in_calibration] == 0).all()
    assert (seen_degree[only_in_calibration] > 0).all()


def test_proposals_are_cited_proposed_and_new(
    predictor: LinkPredictor, kg_copy: GraphStore
) -> None:
    before = {e.key for e in kg_copy.edges(predicate=DDI.predicate)}
    edges = propose(kg_copy, predictor, threshold=0.5, limit=10)
    assert 0 < len(edges) <= 20  # 10 pairs, both directions
    citation = predictor.citation()
    assert citation.id == f"model:gnn-ddi@{MODEL_VERSION}:kg{predictor.graph.kg_version}"
    stored = kg_copy.get_citations([citation.id])[citation.id]
    assert stored.kind == "model"
    assert stored.details["training_kg_version"] == predictor.graph.kg_version
    for e in edges:
        assert e.key not in before and (e.object, e.predicate, e.subject) not in before
        got = kg_copy.get_edge(e.id)
        assert got is not None and got.status == Status.PROPOSED
        assert got.citations == (citation.id,) and 0.5 <= got.confidence <= 1
        assert {"score", "model", "threshold"} <= set(got.qualifiers)
    # a curator rejects one: the training data has it as a negative (not a positive), and
    # nothing already in the KG is proposed again
    kg_copy.set_status(edges[0].id, Status.REJECTED, actor="dr.test", reason="not in SmPC")
    graph = load_graph(kg_copy, DDI)
    at = {x: i for i, x in enumerate(graph.node_ids)}
    rejected = graph.canonical(np.array([[at[edges[0].subject], at[edges[0].object]]]))
    assert rejected.tolist()[0] in graph.negatives.tolist()
    assert rejected.tolist()[0] not in graph.positives.tolist()
    assert graph.is_blocked(rejected).all()
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


def test_eval_linkpred_command(kg_copy: GraphStore, tmp_path: Path) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from api.cli import app as root
    from api.commands.linkpred import print_report

    out = tmp_path / "out"
    args = ["eval", "linkpred", "--store", kg_copy.url, "--task", "ddi", "--quick"]
    result = CliRunner().invoke(root, [*args, "--splits", "2", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ddi = report["tasks"]["ddi"]
    assert set(ddi["models"]) == {"gnn", "adamic_adar", "kge-rotate"}
    for m in ddi["models"].values():
        assert 0 <= m["auroc"] <= 1 and 0 <= m["hits@10"] <= 1 and m["mrr"] > 0
    # two different random splits, reported one by one and as their mean and spread
    assert [run["seed"] for run in ddi["by_split"]] == [0, 1]
    for model, mean in ddi["models"].items():
        aurocs = [run["models"][model]["auroc"] for run in ddi["by_split"]]
        assert mean["auroc"] == pytest.approx(np.mean(aurocs), abs=1e-4)
        assert mean["auroc_sd"] == pytest.approx(np.std(aurocs, ddof=1), abs=1e-4)
    assert ddi["models"]["gnn"]["auroc_sd"] > 0  # the splits differ, so do the figures
    incremental = ddi["incremental"]
    assert incremental["new_edges"] + incremental["old_edges"] == ddi["split"]["train"]
    assert incremental["warm_start"]["train_seconds"] < incremental["full_retrain"]["train_seconds"]
    assert report["temporal_ddi"]["test_pairs_with_both_ends_in_train"] > 50
    assert (out / "linkpred-ddi.png").stat().st_size > 10_000
    assert json.loads((out / "linkpred.json").read_text())["seed"] == 0
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert "kge-rotate" in text and "ddi update with" in text and "ddi time split" in text
    assert f"{ddi['models']['gnn']['auroc']:.3f}" in text
    assert f"{ddi['by_split'][1]['models']['gnn']['auroc']:.3f}" in text


def test_propose_then_curate_with_the_proposals_commands(
    built_kg: GraphStore, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from api.cli import app as root

    built_kg.backup_to(tmp_path / "kg.sqlite")  # type: ignore[attr-defined]
    url = ["--store", f"sqlite:///{tmp_path / 'kg.sqlite'}"]
    args = ["linkpred", "propose", *url, "--quick", "--threshold", "0.5", "--limit", "3"]
    result = CliRunner().invoke(root, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 1 <= len(report["proposed"]) <= 6  # a pair is proposed in both directions
    listed = CliRunner().invoke(
        root, ["proposals", "list", "--predicate", DDI.predicate, "--json", *url]
    )
    listed_ids = {e["id"] for e in json.loads(listed.stdout)}
    assert {row["edge"] for row in report["proposed"]} <= listed_ids
    first = report["proposed"][0]
    shown = json.loads(
        CliRunner().invoke(root, ["proposals", "show", first["edge"], "--json", *url]).stdout
    )
    citation = shown["citations"][report["model"]]
    assert citation["kind"] == "model" and citation["version"] == MODEL_VERSION
    assert citation["details"]["training_kg_version"] == report["training_kg_version"]
    assert report["kg_version"] > report["training_kg_version"]  # the proposals are a change
    assert shown["edge"]["status"] == "proposed" and "score" in shown["edge"]["qualifiers"]
    rejected = CliRunner().invoke(
        root, ["proposals", "reject", first["edge"], "--reason", "no such interaction", *url]
    )
    assert rejected.exit_code == 0, rejected.output
    store = open_store(url[1])
    try:
        graph = load_graph(store, DDI)
    finally:
        store.close()
    at = {x: i for i, x in enumerate(graph.node_ids)}
    pair = graph.canonical(np.array([[at[first["subject"]], at[first["object"]]]]))
    assert pair.tolist()[0] in graph.negatives.tolist()


def test_bad_input_exits_2_with_one_line(built_kg: GraphStore) -> None:
    def evocdss(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "api.cli", *args, "--store", built_kg.url]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    for result in (
        evocdss("eval", "linkpred", "--task", "protein-folding"),
        evocdss("linkpred", "propose", "--task", "protein-folding"),
    ):
        assert result.returncode == 2, result.stderr
        assert "unknown link prediction task" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert evocdss("linkpred", "propose", "--threshold", "2").returncode == 2
    assert evocdss("eval", "linkpred", "--splits", "0").returncode == 2
