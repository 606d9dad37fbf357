"""The GraphStore contract, run against every store (SQLite and a real Neo4j 5), directly and
through the reasoner's per-version read cache (``kg.cache.CachedStore``)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from kg import Citation, Edge, Node, Status, Synonym, edge_id
from kg.cache import CachedStore
from kg.errors import (
    InvalidCurie,
    InvalidStatus,
    MissingCitation,
    NotFound,
    StatusConflict,
    UnknownPredicate,
)
from kg.store import GraphStore
from kg.traverse import neighbourhood, paths

SRC = Citation("src:test", "database", "Test source", version="1", url="https://example.org")
GUIDE = Citation("src:guide", "guideline", "A guideline", version="2024", license="CC-BY-4.0")


@pytest.fixture(params=["direct", "cached"])
def store(empty_store: GraphStore, request: pytest.FixtureRequest) -> GraphStore:
    """Each store as it is, and behind the read cache: the contract holds through both."""
    return CachedStore(empty_store) if request.param == "cached" else empty_store


def drugs() -> list[Node]:
    return [
        Node("TEST:warfarin", "biolink:Drug", "Warfarine", (Synonym("warfarin", "en"),)),
        Node("TEST:ibuprofen", "biolink:Drug", "Ibuprofène", (Synonym("ibuprofen", "en"),)),
        Node("TEST:aspirin", "biolink:Drug", "Acide acétylsalicylique", (Synonym("aspirin"),)),
        Node("TEST:nsaids", "biolink:DrugClass", "Anti-inflammatoires non stéroïdiens"),
        Node("TEST:vka", "biolink:DrugClass", "Antivitamines K", xrefs=("ATC:B01AA",)),
    ]


def facts() -> list[Edge]:
    return [
        Edge("TEST:ibuprofen", "biolink:member_of", "TEST:nsaids", ("src:test",)),
        Edge("TEST:aspirin", "biolink:member_of", "TEST:nsaids", ("src:test",)),
        Edge("TEST:warfarin", "biolink:member_of", "TEST:vka", ("src:test",)),
        Edge(
            "TEST:nsaids",
            "biolink:interacts_with",
            "TEST:vka",
            ("src:test",),
            qualifiers={"severity": "avoid", "management": "surveiller l'INR", "lang": "fr"},
        ),
    ]


def load(store: GraphStore) -> int:
    return store.upsert(citations=[SRC], nodes=drugs(), edges=facts(), actor="tester").version


def test_round_trip_of_nodes_edges_and_citations(store: GraphStore) -> None:
    load(store)
    node = store.get_node("TEST:vka")
    assert node is not None and node.name == "Antivitamines K" and node.xrefs == ("ATC:B01AA",)
    assert store.get_node("TEST:warfarin").synonyms == (Synonym("warfarin", "en"),)
    assert store.get_node("TEST:missing") is None
    assert set(store.get_nodes(["TEST:vka", "TEST:nsaids", "TEST:nope"])) == {
        "TEST:vka",
        "TEST:nsaids",
    }
    assert store.get_citations(["src:test"])["src:test"] == SRC
    eid = edge_id("TEST:nsaids", "biolink:interacts_with", "TEST:vka")
    edge = store.get_edge(eid)
    assert edge is not None and edge.qualifiers["severity"] == "avoid"
    assert edge.citations == ("src:test",) and edge.status == Status.ASSERTED
    assert edge.created is not None and edge.created == edge.updated


def test_reupserting_the_same_batch_writes_nothing(store: GraphStore) -> None:
    version = load(store)
    again = store.upsert(citations=[SRC], nodes=drugs(), edges=facts(), actor="tester")
    assert again.changed == 0
    assert store.version() == version == again.version
    assert len(store.changes()) == version


def test_an_edge_without_citation_is_refused_and_nothing_is_written(store: GraphStore) -> None:
    with pytest.raises(MissingCitation):
        store.upsert(
            nodes=drugs(),
            edges=[Edge("TEST:warfarin", "biolink:member_of", "TEST:vka")],
            actor="tester",
        )
    with pytest.raises(MissingCitation, match="src:unknown"):
        store.upsert(
            citations=[SRC],
            nodes=drugs(),
            edges=[*facts(), Edge("TEST:aspirin", "biolink:treats", "TEST:x", ("src:unknown",))],
            actor="tester",
        )
    assert store.version() == 0
    assert store.get_node("TEST:warfarin") is None
    assert store.get_citations() == {}


def test_bad_identifiers_and_predicates_are_refused(store: GraphStore) -> None:
    with pytest.raises(InvalidCurie, match="malformed CURIE"):
        store.upsert(citations=[SRC], nodes=[Node("warfarin", "biolink:Drug", "w")], actor="t")
    with pytest.raises(UnknownPredicate, match="biolink:likes"):
        store.upsert(
            citations=[SRC],
            nodes=drugs(),
            edges=[Edge("TEST:aspirin", "biolink:likes", "TEST:vka", ("src:test",))],
            actor="t",
        )
    assert store.version() == 0


def test_malformed_edge_ids_and_negative_limits_mean_the_same_in_every_store(
    store: GraphStore,
) -> None:
    load(store)
    eid = edge_id("TEST:nsaids", "biolink:interacts_with", "TEST:vka")
    for malformed in (eid.upper(), "E" + "z" * 16, "E" + " " * 16, eid[:-1], "", "x"):
        assert store.get_edge(malformed) is None  # as for an unknown id: no ValueError
    assert store.get_edge(eid) is not None
    for read in (
        lambda: store.search("a", limit=-1),
        lambda: store.edges(limit=-1),
        lambda: store.changes(limit=-1),
    ):
        with pytest.raises(ValueError, match="limit must be at least 0"):
            read()
    assert store.search("a", limit=0) == [] and store.edges(limit=0) == []


def test_search_ignores_case_accents_and_ranks_exact_first(store: GraphStore) -> None:
    load(store)
    assert [n.id for n in store.search("WARFARINE")] == ["TEST:warfarin"]
    assert [n.id for n in store.search("ibuprofene")] == ["TEST:ibuprofen"]
    assert [n.id for n in store.search("acetylsalicylique")] == ["TEST:aspirin"]
    assert [n.id for n in store.search("anti inflammatoires")] == ["TEST:nsaids"]
    assert [n.id for n in store.search("a", category="biolink:DrugClass")] == [
        "TEST:vka",
        "TEST:nsaids",
    ]
    hits = [n.id for n in store.search("a")]
    assert hits.index("TEST:aspirin") < hits.index("TEST:nsaids")  # shorter name first
    assert store.search("  ") == []
    assert store.search("zzz") == []


def test_edges_by_pattern_with_status_and_confidence(store: GraphStore) -> None:
    load(store)
    store.upsert(
        citations=[GUIDE],
        edges=[
            Edge(
                "TEST:aspirin",
                "biolink:interacts_with",
                "TEST:warfarin",
                ("src:guide",),
                status=Status.PROPOSED,
                confidence=0.4,
            )
        ],
        actor="learner",
    )
    members = store.edges(predicate="biolink:member_of", object="TEST:nsaids")
    assert [e.subject for e in members] == ["TEST:aspirin", "TEST:ibuprofen"]
    assert len(store.edges(predicate="biolink:interacts_with")) == 2
    trusted = store.edges(predicate="biolink:interacts_with", statuses=[Status.ASSERTED])
    assert [e.subject for e in trusted] == ["TEST:nsaids"]
    assert len(store.edges(predicate="biolink:interacts_with", min_confidence=0.5)) == 1
    assert len(store.edges(limit=2)) == 2
    assert store.edges(subject="TEST:none") == []


def test_neighbors_respect_direction_predicates_and_the_hub_cap(store: GraphStore) -> None:
    load(store)
    members = [Node(f"TEST:m{i:03d}", "biolink:Drug", f"member {i}") for i in range(300)]
    store.upsert(
        nodes=members,
        edges=[Edge(m.id, "biolink:member_of", "TEST:nsaids", ("src:test",)) for m in members],
        actor="tester",
    )
    out = store.neighbors(["TEST:warfarin"], direction="out")
    assert {(e.predicate, e.object) for e in out} == {("biolink:member_of", "TEST:vka")}
    incoming = store.neighbors(["TEST:nsaids"], direction="in", per_node=25)
    first = sorted(store.edges(object="TEST:nsaids"), key=lambda e: (e.predicate, e.subject))[:25]
    assert {e.id for e in incoming} == {e.id for e in first}  # the cap keeps the first ones
    several = store.neighbors(["TEST:nsaids", "TEST:warfarin", "TEST:nope"], per_node=25)
    assert {e.id for e in several} == {e.id for e in incoming + out} | {
        e.id for e in store.neighbors(["TEST:nsaids"], direction="out")
    } | {e.id for e in store.neighbors(["TEST:warfarin"], direction="in")}
    # more nodes than one Neo4j query takes at this cap (it keeps a query to 5,000 rows)
    memberships = store.neighbors([m.id for m in members], direction="out", per_node=25)
    assert {(e.subject, e.object) for e in memberships} == {(m.id, "TEST:nsaids") for m in members}
    both = store.neighbors(["TEST:nsaids"], per_node=25, predicates=["biolink:interacts_with"])
    assert [e.object for e in both] == ["TEST:vka"]
    with pytest.raises(ValueError, match="direction"):
        store.neighbors(["TEST:nsaids"], direction="sideways")


def test_edges_between_a_set_of_nodes(store: GraphStore) -> None:
    load(store)
    among = store.edges_between(["TEST:ibuprofen", "TEST:nsaids", "TEST:vka", "TEST:nope"])
    assert {(e.subject, e.object) for e in among} == {
        ("TEST:ibuprofen", "TEST:nsaids"),
        ("TEST:nsaids", "TEST:vka"),
    }
    only = store.edges_between(
        ["TEST:ibuprofen", "TEST:nsaids", "TEST:vka"], predicates=["biolink:interacts_with"]
    )
    assert [e.object for e in only] == ["TEST:vka"]
    assert store.edges_between(["TEST:vka"], statuses=["proposed"]) == []


def test_bounded_paths_explain_class_level_interactions(store: GraphStore) -> None:
    load(store)
    found = paths(store, "TEST:ibuprofen", "TEST:warfarin", max_hops=3)
    assert len(found) == 1
    assert found[0].nodes == ("TEST:ibuprofen", "TEST:nsaids", "TEST:vka", "TEST:warfarin")
    assert [e.predicate for e in found[0].edges] == [
        "biolink:member_of",
        "biolink:interacts_with",
        "biolink:member_of",
    ]
    assert paths(store, "TEST:ibuprofen", "TEST:warfarin", max_hops=2) == []
    near = neighbourhood(store, "TEST:ibuprofen", hops=2, per_node=10)
    assert {e.object for e in near} == {"TEST:nsaids", "TEST:vka"}


def test_status_changes_are_logged_with_actor_and_reason(store: GraphStore) -> None:
    version = load(store)
    eid = edge_id("TEST:nsaids", "biolink:interacts_with", "TEST:vka")
    after = store.set_status(eid, Status.RETRACTED, actor="dr.curator", reason="superseded")
    assert after.status == Status.RETRACTED and store.get_edge(eid).status == Status.RETRACTED
    assert store.version() == version + 1
    (change,) = store.changes(since=version)
    assert (change.actor, change.action, change.key, change.reason) == (
        "dr.curator",
        "set_status",
        eid,
        "superseded",
    )
    assert change.before["status"] == Status.ASSERTED and change.after["status"] == "retracted"
    assert [c.action for c in store.changes(key=eid)] == ["add_edge", "set_status"]
    with pytest.raises(InvalidStatus):
        store.set_status(eid, "maybe", actor="x", reason="y")
    with pytest.raises(InvalidStatus, match="reason"):
        store.set_status(eid, Status.CURATED, actor="x", reason="")
    with pytest.raises(NotFound):
        store.set_status("Enope", Status.CURATED, actor="x", reason="y")
    # a decision made on a stale read: the status it expected is gone, nothing changes
    with pytest.raises(StatusConflict, match="is retracted, not proposed"):
        store.set_status(eid, Status.CURATED, actor="x", reason="y", expected=Status.PROPOSED)
    assert store.get_edge(eid).status == Status.RETRACTED and store.version() == version + 1
    again = store.set_status(eid, Status.CURATED, actor="x", reason="y", expected="retracted")
    assert again.status == Status.CURATED and store.version() == version + 2


def test_decisions_and_upserts_of_one_edge_at_once_never_deadlock(store: GraphStore) -> None:
    """Curators deciding (with ``expected``) while a loader rewrites the edge: each write
    succeeds or is a StatusConflict, nothing else (Neo4j took the two locks in both orders)."""
    load(store)
    edge = facts()[0]
    errors: list[BaseException] = []
    stop = time.monotonic() + 3

    def curate() -> None:
        while time.monotonic() < stop:
            now = store.get_edge(edge.id).status
            after = Status.CURATED if now != Status.CURATED else Status.PROPOSED
            try:
                store.set_status(edge.id, after, actor="dr", reason="review", expected=now)
            except StatusConflict:
                pass
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)
                return

    def reload() -> None:
        n = 0
        while time.monotonic() < stop:
            n += 1
            try:
                store.upsert(edges=[replace(edge, confidence=n % 10 / 10)], actor="loader")
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)
                return

    threads = [threading.Thread(target=f) for f in (curate, curate, reload)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_upsert_retracts_edges_in_the_same_transaction(store: GraphStore) -> None:
    version = load(store)
    vka = edge_id("TEST:nsaids", "biolink:interacts_with", "TEST:vka")
    member = edge_id("TEST:warfarin", "biolink:member_of", "TEST:vka")
    new = Edge("TEST:aspirin", "biolink:interacts_with", "TEST:vka", ("src:guide",))
    with pytest.raises(NotFound, match="Enope"):
        store.upsert(citations=[GUIDE], edges=[new], actor="x", reason="y", retract=["Enope"])
    with pytest.raises(InvalidStatus, match="reason"):
        store.upsert(citations=[GUIDE], edges=[new], actor="x", retract=[vka])
    assert store.version() == version and store.get_edge(new.id) is None

    result = store.upsert(
        citations=[GUIDE],
        edges=[new],
        actor="ontology",
        reason="v2: class rule replaced",
        retract=[vka, member, vka],
    )
    assert (result.edges_created, result.edges_updated) == (1, 2)
    assert store.get_edge(vka).status == store.get_edge(member).status == Status.RETRACTED
    assert store.get_edge(new.id).status == Status.ASSERTED
    log = store.changes(since=version)
    assert result.version == store.version() == log[-1].seq
    retracted = [c for c in log if c.action == "set_status"]
    assert [c.key for c in retracted] == [vka, member]
    assert {(c.actor, c.reason, c.after["status"]) for c in retracted} == {
        ("ontology", "v2: class rule replaced", Status.RETRACTED)
    }
    again = store.upsert(edges=[new], actor="ontology", reason="again", retract=[vka])
    assert again.changed == 0 and store.version() == result.version


def test_upsert_merges_citations_and_keeps_curator_decisions(store: GraphStore) -> None:
    load(store)
    eid = edge_id("TEST:nsaids", "biolink:interacts_with", "TEST:vka")
    store.set_status(eid, Status.REJECTED, actor="dr.curator", reason="not in 2024 guideline")
    result = store.upsert(
        citations=[GUIDE],
        edges=[
            Edge(
                "TEST:nsaids",
                "biolink:interacts_with",
                "TEST:vka",
                ("src:guide",),
                qualifiers={"mechanism": "additive bleeding risk"},
            )
        ],
        actor="loader",
    )
    assert result.edges_updated == 1
    edge = store.get_edge(eid)
    assert edge.citations == ("src:test", "src:guide")
    assert edge.status == Status.REJECTED
    assert edge.qualifiers["severity"] == "avoid" and "mechanism" in edge.qualifiers
    proposed = Edge("TEST:aspirin", "biolink:treats", "TEST:vka", ("src:guide",), Status.PROPOSED)
    store.upsert(edges=[proposed], actor="learner")
    store.upsert(edges=[Edge(*proposed.key, ("src:test",))], actor="loader")
    assert store.get_edge(proposed.id).status == Status.ASSERTED


def test_stats_count_by_category_predicate_and_status(store: GraphStore) -> None:
    version = load(store)
    stats = store.stats()
    assert (stats.nodes, stats.edges, stats.citations, stats.version) == (5, 4, 1, version)
    assert stats.nodes_by_category == {"biolink:Drug": 3, "biolink:DrugClass": 2}
    assert stats.edges_by_predicate == {"biolink:interacts_with": 1, "biolink:member_of": 3}
    assert stats.edges_by_status == {"asserted": 4}


def test_export_arrays_index_nodes_and_predicates(store: GraphStore) -> None:
    load(store)
    arrays = store.export_arrays()
    assert len(arrays.node_ids) == 5 and len(arrays.src) == len(arrays.dst) == 4
    triples = {
        (arrays.node_ids[s], arrays.predicates[p], arrays.node_ids[o])
        for s, p, o in zip(arrays.src, arrays.predicate, arrays.dst, strict=True)
    }
    assert triples == {e.key for e in facts()}
    only = store.export_arrays(predicates=["biolink:interacts_with"])
    assert only.predicates == ["biolink:interacts_with"] and len(only.src) == 1
    assert arrays.version == store.version()


def test_iterating_everything_in_a_stable_order(store: GraphStore) -> None:
    load(store)
    assert [n.id for n in store.iter_nodes()] == sorted(n.id for n in drugs())
    edges = [e.id for e in store.iter_edges()]
    assert sorted(edges) == sorted(e.id for e in facts())
    assert [e.id for e in store.iter_edges()] == edges


def test_readers_see_a_batch_all_or_nothing_while_it_is_written(store: GraphStore) -> None:
    load(store)
    n = 2000
    members = [Node(f"TEST:c{i:04d}", "biolink:Drug", f"compound {i}") for i in range(n)]
    batch = [Edge(m.id, "biolink:member_of", "TEST:vka", ("src:test",)) for m in members]
    seen: set[int] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(store.stats().edges)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        store.upsert(nodes=members, edges=batch, actor="writer")
    finally:
        done.set()
        reader.join()
    seen.add(store.stats().edges)
    assert seen <= {4, 4 + n} and 4 + n in seen


def test_the_cache_pins_one_version_per_request_and_follows_writes(store: GraphStore) -> None:
    cached = store if isinstance(store, CachedStore) else CachedStore(store)
    version = load(cached)
    vka = ("TEST:vka",)
    assert [e.subject for e in cached.neighbors(vka, predicates=["biolink:member_of"])] == [
        "TEST:warfarin"
    ]
    phenprocoumon = Node("TEST:phenprocoumon", "biolink:Drug", "Phenprocoumone")
    joins = Edge("TEST:phenprocoumon", "biolink:member_of", "TEST:vka", ("src:test",))
    with cached.pinned() as pinned:
        assert pinned == version
        written = cached.upsert(nodes=[phenprocoumon], edges=[joins], actor="tester").version
        assert cached.version() == version  # the request keeps the version it started with
    assert cached.version() == written > version
    members = cached.neighbors(vka, predicates=["biolink:member_of"])
    assert {e.subject for e in members} == {"TEST:warfarin", "TEST:phenprocoumon"}
    assert cached.get_node("TEST:phenprocoumon") == phenprocoumon
    cached.set_status(joins.id, Status.RETRACTED, actor="tester", reason="test")
    trusted = cached.neighbors(vka, predicates=["biolink:member_of"], statuses=["asserted"])
    assert [e.subject for e in trusted] == ["TEST:warfarin"]
