"""`evocdss kg ...` as a user runs it: a real process, a real SQLite KG, exit codes and output."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kg import Citation, Edge, Node, Status, Synonym, edge_id, open_store
from kg.store import GraphStore

SRC = Citation("src:ansm", "database", "ANSM thesaurus", "2020-01", license="Licence Ouverte")


def evocdss(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def kg_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kg.sqlite'}"
    store = open_store(url)
    store.upsert(
        citations=[SRC],
        nodes=[
            Node("ANSM:warfarine", "biolink:Drug", "warfarine", (Synonym("warfarin", "en"),)),
            Node("ANSM:avk", "biolink:DrugClass", "antivitamines K"),
        ],
        edges=[Edge("ANSM:warfarine", "biolink:member_of", "ANSM:avk", ("src:ansm",))],
        actor="loader",
    )
    eid = edge_id("ANSM:warfarine", "biolink:member_of", "ANSM:avk")
    store.set_status(eid, Status.CURATED, actor="dr.house", reason="checked against SmPC")
    store.close()
    return url


def test_help_lists_the_command_groups() -> None:
    result = evocdss("--help")
    assert result.returncode == 0 and "kg" in result.stdout


def test_stats_json_counts_the_kg(kg_url: str) -> None:
    result = evocdss("kg", "stats", "--store", kg_url, "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["nodes"] == 2 and stats["edges"] == 1 and stats["version"] == 5
    assert stats["edges_by_status"] == {"curated": 1}
    table = evocdss("kg", "stats", "--store", kg_url)
    assert "KG version 5" in table.stdout and "biolink:member_of" in table.stdout


def test_show_gives_node_edges_and_their_citations(kg_url: str) -> None:
    result = evocdss("kg", "show", "ANSM:warfarine", "--store", kg_url, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["node"]["synonyms"] == [["warfarin", "en"]]
    assert [e["object"] for e in shown["outgoing"]] == ["ANSM:avk"]
    assert shown["citations"]["src:ansm"]["license"] == "Licence Ouverte"
    assert (
        "antivitamines K" not in evocdss("kg", "show", "ANSM:warfarine", "--store", kg_url).stderr
    )


def test_history_shows_who_changed_an_edge_and_why(kg_url: str) -> None:
    result = evocdss(
        "kg",
        "history",
        "ANSM:warfarine",
        "biolink:member_of",
        "ANSM:avk",
        "--store",
        kg_url,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    changes = json.loads(result.stdout)["changes"]
    assert [(c["actor"], c["action"]) for c in changes] == [
        ("loader", "add_edge"),
        ("dr.house", "set_status"),
    ]
    assert changes[1]["reason"] == "checked against SmPC"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("kg", "show", "warfarine"), "malformed CURIE"),
        (("kg", "show", "ANSM:nothing"), "no node ANSM:nothing"),
        (("kg", "history", "ANSM:warfarine", "biolink:loves", "ANSM:avk"), "unknown predicate"),
        (("kg", "export", "/nonexistent/dir/out.ttl"), "does not exist"),
        (("kg", "export", "out", "--format", "xml"), "unknown format"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(
    kg_url: str, args: tuple[str, ...], message: str
) -> None:
    result = evocdss(*args, "--store", kg_url)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////nonexistent/dir/kg.sqlite", "does not exist"),
        ("postgres://localhost/kg", "unsupported store URL"),
        ("neo4j://127.0.0.1:9", "cannot reach"),
    ],
)
def test_unreachable_stores_are_reported_in_one_line(url: str, message: str) -> None:
    result = evocdss("kg", "stats", "--store", url)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_stats_on_a_missing_kg_says_how_to_build_it(tmp_path: Path) -> None:
    result = evocdss("kg", "stats", "--store", f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert result.returncode == 2 and "evocdss kg build" in result.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_turtle_export_carries_prov_provenance(kg_url: str, tmp_path: Path) -> None:
    from rdflib import Graph, Namespace, URIRef
    from rdflib.namespace import RDF

    out = tmp_path / "kg.ttl"
    result = evocdss("kg", "export", str(out), "--format", "ttl", "--store", kg_url)
    assert result.returncode == 0, result.stderr
    g = Graph().parse(out, format="turtle")
    prov = Namespace("http://www.w3.org/ns/prov#")
    evo = Namespace("https://w3id.org/evocdss/")
    subject = URIRef(evo["id/ANSM_warfarine"])
    member_of = URIRef("https://w3id.org/biolink/vocab/member_of")
    assert (subject, member_of, URIRef(evo["id/ANSM_avk"])) in g
    (stmt,) = g.subjects(RDF.subject, subject)
    assert g.value(stmt, evo["vocab/status"]).toPython() == "curated"
    source = g.value(stmt, prov.wasDerivedFrom)
    assert source == URIRef(evo["citation/src:ansm"])
    assert str(g.value(source, URIRef("http://purl.org/dc/terms/title"))) == "ANSM thesaurus"


def test_kgx_export_writes_nodes_and_edges_tsv(kg_url: str, tmp_path: Path) -> None:
    result = evocdss("kg", "export", str(tmp_path / "kg"), "--format", "kgx", "--store", kg_url)
    assert result.returncode == 0, result.stderr
    with (tmp_path / "kg_edges.tsv").open() as f:
        (edge,) = list(csv.DictReader(f, delimiter="\t"))
    assert (edge["subject"], edge["predicate"], edge["object"], edge["status"]) == (
        "ANSM:warfarine",
        "biolink:member_of",
        "ANSM:avk",
        "curated",
    )
    assert edge["citations"] == "src:ansm" and edge["primary_knowledge_source"] == "ANSM thesaurus"
    with (tmp_path / "kg_nodes.tsv").open() as f:
        nodes = {row["id"]: row for row in csv.DictReader(f, delimiter="\t")}
    assert nodes["ANSM:warfarine"]["synonym"] == "warfarin@en"


def test_build_if_absent_loads_the_sources_a_stopped_build_left_out(tmp_path: Path) -> None:
    """`make run` builds with --if-absent: a build stopped after its first source must not
    leave the KG without the others for good."""
    from ingest.build import build_kg

    url = f"sqlite:///{tmp_path / 'kg.sqlite'}"
    bogus = evocdss("kg", "build", "--sources", "ansm,bogus", "--store", url)
    assert bogus.returncode == 2 and "unknown source 'bogus'" in bogus.stderr
    assert not (tmp_path / "kg.sqlite").exists()
    store = open_store(url)
    build_kg(store, ["ansm"])  # then the build was stopped
    version = store.version()
    store.close()
    args = ("kg", "build", "--if-absent", "--sources", "ansm,rxnorm", "--store", url, "--json")
    rest = evocdss(*args)
    assert rest.returncode == 0, rest.stderr
    assert "lacks rxnorm: loading them" in rest.stderr
    assert [s["name"] for s in json.loads(rest.stdout)["sources"]] == ["rxnorm"]
    again = evocdss(*args)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert open_store(url, create=False).version() > version


def test_a_full_build_holds_every_source(built_kg: GraphStore) -> None:
    from ingest.build import missing_sources

    assert missing_sources(built_kg) == []


def test_a_source_whose_loader_writes_a_new_citation_is_loaded_again(tmp_path: Path) -> None:
    from ingest.ansm import CITATION_ID, MATCHING_CITATION_ID, THERAPEUTIC_CITATION_ID
    from ingest.build import missing_sources

    store = open_store(f"sqlite:///{tmp_path / 'kg.sqlite'}")
    older = [Citation(cid, "database", "t") for cid in (CITATION_ID, MATCHING_CITATION_ID)]
    store.upsert(citations=older, actor="an older build")  # before the therapeutic classes
    assert missing_sources(store, ["ansm", "rxnorm"]) == ["ansm", "rxnorm"]
    store.upsert(citations=[Citation(THERAPEUTIC_CITATION_ID, "curator", "t")], actor="build")
    assert missing_sources(store, ["ansm"]) == []


def test_turtle_states_only_trusted_edges_and_never_leaves_half_a_file(
    kg_url: str, tmp_path: Path
) -> None:
    from rdflib import Graph, URIRef

    store = open_store(kg_url, create=False)
    odd = Citation("src:odd 2024", "database", "Odd", details={"release": "2024-01"})
    store.upsert(
        citations=[odd],
        nodes=[Node("TEST:a{1}", "biolink:Drug", "a"), Node("TEST:b", "biolink:Drug", "b")],
        edges=[Edge("TEST:a{1}", "biolink:interacts_with", "TEST:b", ("src:odd 2024",))],
        actor="loader",
    )
    rejected = edge_id("TEST:a{1}", "biolink:interacts_with", "TEST:b")
    store.set_status(rejected, Status.REJECTED, actor="dr.house", reason="no such interaction")
    store.close()
    out = tmp_path / "kg.ttl"
    out.write_text("the previous export\n")
    result = evocdss("kg", "export", str(out), "--format", "ttl", "--store", kg_url)
    assert result.returncode == 0, result.stderr
    g = Graph().parse(out, format="turtle")
    a = URIRef("https://w3id.org/evocdss/id/TEST_a%7B1%7D")
    interacts = URIRef("https://w3id.org/biolink/vocab/interacts_with")
    assert (a, interacts, None) not in g  # rejected: only its statement, with the status
    assert g.query(f"ASK {{ ?s <{RDF_SUBJECT}> <{a}> }}").askAnswer
    details = URIRef("https://w3id.org/evocdss/vocab/details")
    (release,) = [json.loads(o)["release"] for o in g.objects(None, details) if "release" in o]
    assert release == "2024-01" and not list(tmp_path.glob(".*.tmp"))


RDF_SUBJECT = "http://www.w3.org/1999/02/22-rdf-syntax-ns#subject"


def test_a_store_error_is_one_line(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.sqlite"  # a SQLite file that is no KG
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE nodes (x)")
    result = evocdss("kg", "stats", "--store", f"sqlite:///{other}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "no such column" in result.stderr
