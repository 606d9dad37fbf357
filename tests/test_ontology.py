"""The ontology on the real KG: base hierarchies, curator edits checked by HermiT, publish into
the KG, diffs, histories, reverts, the Protégé round trip and the CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kg import open_store
from kg.model import Citation
from kg.settings import Settings
from kg.store import GraphStore
from kg.vocab import INTERACTS_WITH, Status
from ontology.axioms import Axiom, disjoint
from ontology.changes import PUBLISHED, REFUSED, ChangeSet
from ontology.publish import Refused, editor, import_file, init_ontology, publish, revert
from ontology.versions import Repository

STATINS = "ANSM:inhibiteurs-de-l-hmg-coa-reductase-statines"
PPIS = "ANSM:antisecretoires-inhibiteurs-de-la-pompe-a-protons"
NSAIDS = "ANSM:anti-inflammatoires-non-steroidiens"
GUIDELINE = Citation(
    "guideline:evocdss-test-statin-ppi",
    "guideline",
    "Curation workflow test guideline (not clinical advice)",
    version="1",
    date="2026-01-15",
)
MEDS = [{"text": "atorvastatin"}, {"text": "omeprazole"}]


@pytest.fixture(scope="module")
def base(built_kg: GraphStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 of the ontology built from the real KG (HermiT runs in the bench)."""
    root = tmp_path_factory.mktemp("onto-base") / "ontology"
    init_ontology(Repository(root=root), built_kg, reason=False)
    return root


@pytest.fixture(scope="module")
def world(
    built_kg: GraphStore, base: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Repository, GraphStore]]:
    """A writable copy of the KG and of ontology version 1, shared by this module's scenario."""
    tmp = tmp_path_factory.mktemp("onto-world")
    built_kg.backup_to(tmp / "kg.sqlite")  # type: ignore[attr-defined]
    shutil.copytree(base, tmp / "ontology")
    store = open_store(f"sqlite:///{tmp / 'kg.sqlite'}")
    yield Repository(root=tmp / "ontology"), store
    store.close()


def ask(store: GraphStore, settings: Settings) -> list:
    from reasoner.engine import Reasoner

    payload = {"id": "q", "patient": {"medications": MEDS}}
    answer = Reasoner(store, settings).ask("medication-check", payload)
    return [p for p in answer.problems if p.type == "drug-interaction"], answer


def test_base_ontology_holds_the_sources_hierarchies(base: Path) -> None:
    axioms = Repository(root=base).load(1).axioms
    classes = {a.terms[0] for a in axioms if a.kind == "class"}
    assert sum(c.startswith("HP:") for c in classes) > 19_000
    assert sum(c.startswith("ANSM:") for c in classes) > 1_000
    assert {"ICD10CM:E00-E89", "ICD10CM:E08-E13", "ICD10CM:E11"} <= classes
    assert "ICD10CM:E11.9" not in classes
    assert Axiom("subclass", ("ANSM:ibuprofene", NSAIDS)) in axioms
    assert Axiom("subclass", ("HP:0001250", "HP:0012638")) in axioms
    assert Axiom("label", (NSAIDS, "anti-inflammatoires non stéroïdiens", "fr")) in axioms
    assert Axiom("label", (NSAIDS, "NSAIDs", "en")) in axioms
    assert disjoint("biolink:Drug", "biolink:PhenotypicFeature") in axioms


def test_curated_rule_is_published_and_reasoner_uses_it_then_revert(
    world: tuple[Repository, GraphStore], settings: Settings
) -> None:
    repo, store = world
    assert ask(store, settings)[0] == []  # a real pair of ANSM classes with no interaction

    cs = ChangeSet.new("alice", "statins x PPIs from the test guideline")
    ed = editor(repo, cs)
    source = ed.cite(GUIDELINE)
    ed.add_class(
        "EVO:test-lipid-drugs", "Lipid drugs", parent="biolink:Drug", reason="group", source=source
    )
    ed.add_label("EVO:test-lipid-drugs", "hypolipémiants", "fr", reason="French label")
    ed.add_synonym("EVO:test-lipid-drugs", "降脂药", "zh", reason="Chinese synonym")
    ed.add_subclass(STATINS, "EVO:test-lipid-drugs", reason="statins lower lipids", source=source)
    ed.add_rule(
        STATINS,
        PPIS,
        severity="precaution",
        management="Monitor creatine kinase.",
        source=source,
        section="4.2",
        date="2026-01-15",
        reason="the guideline states it",
    )
    manifest = publish(repo, store, cs)
    assert manifest["version"] == 2 and manifest["check"]["ok"]
    assert manifest["check"]["scope"] == "module" and manifest["check"]["classes"] > 10
    assert cs.status == PUBLISHED and (repo.folder(2) / "ontology.owl").exists()

    edge = store.edges(STATINS, "biolink:interacts_with", PPIS)[0]
    assert edge.status == Status.CURATED and edge.qualifiers["severity"] == "precaution"
    assert edge.qualifiers["source_section"] == "4.2"
    assert set(edge.citations) == {GUIDELINE.id, "ontology:evocdss-v2", "curator:alice"}
    kinds = {c.kind for c in store.get_citations(edge.citations).values()}
    assert kinds == {"guideline", "ontology", "curator"}
    node = store.get_node("EVO:test-lipid-drugs")
    assert node is not None and ("降脂药", "zh") in {(s.text, s.lang) for s in node.synonyms}
    # HermiT entails that every statin is a lipid drug: inferred memberships
    inferred = store.edges("ANSM:atorvastatine", "biolink:member_of", "EVO:test-lipid-drugs")
    assert inferred and inferred[0].status == Status.INFERRED

    (problem,), answer = ask(store, settings)
    assert problem.severity == "precaution"
    assert STATINS in problem.entities and PPIS in problem.entities
    sources = {s for c in problem.citations for s in answer.citations[c].sources}
    assert GUIDELINE.id in sources

    # an incoherent change set is refused with its reasons, and nothing is published
    bad = ChangeSet.new("bob", "statins are seizures")
    editor(repo, bad).add_subclass(STATINS, "HP:0001250", reason="a mistake")
    with pytest.raises(Refused) as refused:
        publish(repo, store, bad)
    (unsat,) = refused.value.result.unsatisfiable
    assert unsat.cls == STATINS
    assert "ANSM:atorvastatine" in refused.value.result.inherited
    assert disjoint("biolink:Drug", "biolink:PhenotypicFeature") in unsat.axioms
    assert Axiom("subclass", (STATINS, "HP:0001250")) in unsat.axioms
    assert repo.head() == 2 and repo.changeset(bad.id).status == REFUSED
    assert not store.edges(STATINS, "biolink:subclass_of", "HP:0001250")

    d = repo.diff(1, 2)
    rule = next(r for r in d["added"] if r["axiom"][0] == "rule")
    assert (rule["author"], rule["changeset"], rule["version"]) == ("alice", cs.id, 2)
    assert d["removed"] == []
    history = repo.history(STATINS)
    assert history[0]["op"] == "init"
    assert [h["op"] for h in history[1:]] == ["add_subclass", "add_rule"]
    assert history[-1]["source"] == GUIDELINE.id and history[-1]["author"] == "alice"

    revert(repo, store, cs.id, author="carol", reason="guideline withdrawn")
    assert repo.head() == 3
    assert ask(store, settings)[0] == []
    edge = store.get_edge(edge.id)
    assert edge is not None and edge.status == Status.RETRACTED
    assert store.get_edge(inferred[0].id).status == Status.RETRACTED
    back = repo.diff(2, 3)
    assert {r["author"] for r in back["removed"]} == {"carol"}
    assert set(repo.load(3).axioms) == set(repo.load(1).axioms)


def test_protege_round_trip(base: Path, tmp_path: Path) -> None:
    """Export a version, edit the OWL file as Protégé would (owlready2), import it back."""
    import owlready2

    from ontology.terms import iri

    shutil.copytree(base, tmp_path / "ontology")
    repo = Repository(root=tmp_path / "ontology")
    world = owlready2.World()
    onto = world.get_ontology((repo.folder(1) / "ontology.owl").as_uri()).load()
    ibu, nsaids = world[iri("ANSM:ibuprofene")], world[iri(NSAIDS)]
    ibu.label.append(owlready2.locstr("布洛芬", "zh"))
    ibu.is_a.remove(nsaids)
    edited = tmp_path / "edited.owl"
    onto.save(str(edited), format="rdfxml")
    world.close()

    cs = import_file(repo, edited, author="dana", reason="edited in Protégé")
    assert cs.added == {Axiom("label", ("ANSM:ibuprofene", "布洛芬", "zh"))}
    assert cs.removed == {Axiom("subclass", ("ANSM:ibuprofene", NSAIDS))}
    assert repo.changeset(cs.id).edits[0].author == "dana"


def test_cli_edit_check_publish_diff_history_sparql_revert(
    built_kg: GraphStore, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from api.commands.ontology import app, sparql
    from kg.settings import get_settings
    from ontology.terms import iri

    shutil.copytree(base, tmp_path / "ontology")
    built_kg.backup_to(tmp_path / "kg.sqlite")  # type: ignore[attr-defined]
    monkeypatch.setenv("EVOCDSS_HOME", str(tmp_path))
    monkeypatch.setenv("EVOCDSS_KG_URL", f"sqlite:///{tmp_path / 'kg.sqlite'}")
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    try:
        assert "ontology version 1 exists" in run("init", "--if-absent")
        run("init", code=2)  # the ontology exists: refused, not rebuilt
        cs = run("new", "--author", "eve", "--reason", "statins x PPIs").strip()
        rule = ["rule", cs, STATINS, PPIS, "--severity", "precaution", "--management", "Monitor."]
        rule += ["--source-id", GUIDELINE.id, "--source-title", GUIDELINE.title]
        run(*rule, "--section", "4.2", "--date", "2026-01-15", "--reason", "guideline")
        assert "published version 2" in run("publish", cs)
        assert f"eve {cs}" in run("diff", "1", "2")
        assert "add_rule by eve" in run("history", STATINS)
        assert "no class EVO:nothing in any version" in run("history", "EVO:nothing", code=2)
        assert "v2 " in run("versions")

        bad = run("new", "--author", "eve", "--reason", "mistake").strip()
        run("subclass", bad, STATINS, "HP:0001250", "--reason", "oops")
        assert "INCOHERENT" in run("check", bad, code=1)
        run("publish", bad, code=1)
        assert "is refused" in run("subclass", bad, PPIS, STATINS, "--reason", "x", code=2)
        other = run("new", "--author", "eve", "--reason", "typo").strip()
        assert "no class" in run("subclass", other, "EVO:none", STATINS, "--reason", "x", code=2)

        sparql_app = typer_app(sparql)
        query = (
            "PREFIX evo: <https://w3id.org/evocdss/vocab/> "
            "PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> "
            "SELECT ?a ?b WHERE { ?st evo:status 'curated' ; rdf:subject ?a ; rdf:object ?b }"
        )
        result = runner.invoke(sparql_app, [query, "--json"])
        assert result.exit_code == 0, result.output
        pairs = {(r["a"], r["b"]) for r in json.loads(result.output)}
        assert (iri(STATINS), iri(PPIS)) in pairs and (iri(PPIS), iri(STATINS)) in pairs

        out = tmp_path / "ontology.ttl"
        assert "triples" in run("export", str(out))
        assert "prov:wasGeneratedBy" in out.read_text(encoding="utf-8")

        assert "published version 3" in run("revert", cs, "--author", "eve", "--reason", "undo")

        (tmp_path / "junk.owl").write_text("not an ontology", encoding="utf-8")
        (tmp_path / "empty.ttl").write_text("", encoding="utf-8")
        for name in ("junk.owl", "empty.ttl"):
            out = run("import", str(tmp_path / name), "--author", "eve", "--reason", "r", code=2)
            assert out.startswith("error: ") and len(out.splitlines()) == 1, out
    finally:
        get_settings.cache_clear()


def typer_app(func: object) -> object:
    """A one-command Typer app around a command function (as api/cli.py mounts it)."""
    import typer

    app = typer.Typer()
    app.command()(func)
    return app


def test_rename_deprecate_and_their_kg_nodes(base: Path, built_kg: GraphStore) -> None:
    """Edits validate against the ontology; renames keep the old label as a synonym and a
    deprecation keeps the id and points to the replacement, in the KG node too."""
    from ontology.changes import EditError
    from ontology.kg_sync import plan_sync

    repo = Repository(root=base)
    head = repo.load(1)
    cs = ChangeSet.new("erin", "tidy names")
    ed = editor(repo, cs)
    ed.rename_class(NSAIDS, "non-steroidal anti-inflammatory drugs", reason="house style")
    ed.deprecate_class("ANSM:autres-hypnotiques", replaced_by="ANSM:hypnotiques", reason="dup")
    ed.remove_disjoint("biolink:Gene", "biolink:Drug", reason="test")
    assert Axiom("synonym", (NSAIDS, "NSAIDs", "en")) in cs.added
    assert Axiom("label", (NSAIDS, "NSAIDs", "en")) in cs.removed
    with pytest.raises(EditError, match="already has a fr label"):
        ed.add_label(NSAIDS, "AINS", "fr", reason="x")
    with pytest.raises(EditError, match="unknown severity"):
        ed.add_rule(NSAIDS, PPIS, severity="bad", management="", source="", section="",
                    date="", reason="x")  # fmt: skip
    with pytest.raises(EditError, match=r"^every edit needs a reason$"):
        ed.add_synonym(NSAIDS, "AINS", "fr", reason=" ")
    # deprecated again with another replacement: it replaces the first
    ed.deprecate_class(
        "ANSM:autres-hypnotiques", replaced_by="ANSM:medicaments-sedatifs", reason="x"
    )
    assert Axiom("replaced_by", ("ANSM:autres-hypnotiques", "ANSM:hypnotiques")) not in cs.apply(
        set(head.axioms)
    )

    new = dict.fromkeys(cs.apply(set(head.axioms)), cs.id) | {
        a: c for a, c in head.axioms.items() if a not in cs.removed
    }
    sync = plan_sync(built_kg, head.axioms, new, set(), set(), number=2, changeset=cs.id,
                     authors={cs.id: "erin"}, sources={})  # fmt: skip
    nodes = {n.id: n for n in sync.nodes}
    old = nodes["ANSM:autres-hypnotiques"]
    assert (
        old.properties["deprecated"]
        and old.properties["replaced_by"] == "ANSM:medicaments-sedatifs"
    )
    renamed = {(s.text, s.lang) for s in nodes[NSAIDS].synonyms}
    assert ("non-steroidal anti-inflammatory drugs", "en") in renamed
    assert sync.edges == [] and sync.retract == []  # names and schema axioms are not edges


def test_edits_that_change_nothing_or_relate_a_class_to_itself_are_refused(
    world: tuple[Repository, GraphStore],
) -> None:
    """Renaming to the current label and self subclass/disjointness are EditErrors; a change
    set whose edits cancel out does not publish (HermiT would choke or a version repeat)."""
    from ontology.changes import EditError

    repo, store = world
    cs = ChangeSet.new("frank", "edits that say nothing")
    ed = editor(repo, cs)
    with pytest.raises(EditError, match="already labelled 'NSAIDs' in en"):
        ed.rename_class(NSAIDS, "NSAIDs", reason="typo check")
    with pytest.raises(EditError, match="subclass of itself"):
        ed.add_subclass(NSAIDS, NSAIDS, reason="x")
    with pytest.raises(EditError, match="disjoint with itself"):
        ed.add_disjoint(NSAIDS, NSAIDS, reason="x")
    ed.add_subclass("ANSM:ibuprofene", STATINS, reason="oops")
    ed.remove_subclass("ANSM:ibuprofene", STATINS, reason="undo oops")
    head = repo.head()
    with pytest.raises(ValueError, match="has no edits, or they cancel out"):
        publish(repo, store, cs)
    assert repo.head() == head


def test_undoing_a_rule_gives_the_sources_interaction_back(
    world: tuple[Repository, GraphStore],
) -> None:
    """A rule over an interaction ANSM states, then reverted: ANSM's edges keep their status
    and get their own severity back; they are not retracted with the rule."""
    repo, store = world
    a, b = "ANSM:abatacept", "ANSM:anti-tnf-alpha"
    ansm = [store.edges(s, INTERACTS_WITH, o)[0] for s, o in ((a, b), (b, a))]
    assert {e.qualifiers["severity"] for e in ansm} == {"avoid"}
    cs = ChangeSet.new("alice", "stricter per the test guideline")
    ed = editor(repo, cs)
    ed.add_rule(a, b, severity="contraindicated", management="Do not combine.",
                source=ed.cite(GUIDELINE), section="5", date="2026-01-15", reason="g")  # fmt: skip
    publish(repo, store, cs)
    assert store.get_edge(ansm[0].id).qualifiers["severity"] == "contraindicated"

    manifest = revert(repo, store, cs.id, author="bob", reason="entered by mistake")
    assert manifest["kg"]["retracted"] == 0
    for edge in ansm:
        after = store.get_edge(edge.id)
        assert after is not None and after.status != Status.RETRACTED
        assert after.qualifiers["severity"] == "avoid"


def test_removing_one_of_two_rules_on_a_pair_keeps_their_edges(
    world: tuple[Repository, GraphStore],
) -> None:
    """STATINS->PPIS and PPIS->STATINS make the same two edges: dropping one rule keeps them."""
    repo, store = world
    cs = ChangeSet.new("alice", "the pair both ways")
    ed = editor(repo, cs)
    source = ed.cite(GUIDELINE)
    for a, b in ((STATINS, PPIS), (PPIS, STATINS)):
        ed.add_rule(a, b, severity="precaution", management="Monitor.", source=source,
                    section="4.2", date="2026-01-15", reason="both ways")  # fmt: skip
    publish(repo, store, cs)
    (one,) = [x for x in cs.added if x.terms[:2] == (STATINS, PPIS)]
    drop = ChangeSet.new("bob", "one direction withdrawn")
    editor(repo, drop).replace_axioms(set(), {one}, op="import", reason="withdrawn")
    manifest = publish(repo, store, drop)
    assert manifest["kg"]["retracted"] == 0
    for s, o in ((STATINS, PPIS), (PPIS, STATINS)):
        assert [e.status for e in store.edges(s, INTERACTS_WITH, o)] == [Status.CURATED]
