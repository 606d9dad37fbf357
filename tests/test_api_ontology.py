"""Curation over HTTP on the real KG: change sets checked by HermiT, publish (409 when HermiT
refuses), diff, history, revert, OWL round trip, and the review of learners' proposals, with
roles, 404s and 422s naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.security import key_id
from kg import open_store
from kg.model import Citation, Edge
from kg.settings import Settings
from kg.store import GraphStore
from kg.vocab import Status
from ontology.axioms import Axiom
from ontology.publish import editor, init_ontology
from ontology.terms import iri
from ontology.versions import Repository

CLINICIAN = "onto-clinician-key-000001"
CURATOR = "onto-curator-key-0000001"
KEYS = f"{CLINICIAN}:clinician,{CURATOR}:curator"
STATINS = "ANSM:inhibiteurs-de-l-hmg-coa-reductase-statines"
PPIS = "ANSM:antisecretoires-inhibiteurs-de-la-pompe-a-protons"
NEW = "EVO:test-lipid-drugs"
GUIDELINE = {
    "id": "guideline:evocdss-test-statin-ppi",
    "title": "Curation API test guideline (not clinical advice)",
}
ASK = {"id": "q", "patient": {"medications": [{"text": "atorvastatin"}, {"text": "omeprazole"}]}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def world(
    built_kg: GraphStore, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, GraphStore, Path]]:
    """An app over a writable copy of the KG, with ontology version 1 built from it."""
    home = tmp_path_factory.mktemp("curation")
    built_kg.backup_to(home / "kg.sqlite")  # type: ignore[attr-defined]
    store = open_store(f"sqlite:///{home / 'kg.sqlite'}")
    init_ontology(Repository(root=home / "ontology"), store, reason=False)
    app_settings = settings.model_copy(update={"home": home, "api_keys": SecretStr(KEYS)})
    app = create_app(store, app_settings)
    app.state.ctx.reasoner.linker.use_embeddings = False
    with TestClient(app, headers=bearer(CURATOR)) as client:
        yield client, store, home
    store.close()


def interactions(client: TestClient) -> tuple[list[dict], dict]:
    response = client.post("/v1/ask/medication-check", json=ASK, headers=bearer(CLINICIAN))
    assert response.status_code == 200, response.text
    answer = response.json()
    return [p for p in answer["problems"] if p["type"] == "drug-interaction"], answer


def new_changeset(client: TestClient, reason: str) -> str:
    response = client.post("/v1/ontology/changesets", json={"reason": reason})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def edit(client: TestClient, cs: str, body: dict, code: int = 201) -> dict:
    response = client.post(f"/v1/ontology/changesets/{cs}/edits", json=body)
    assert response.status_code == code, response.text
    return response.json()


def test_curator_publishes_a_rule_the_reasoner_uses_then_reverts_it(
    world: tuple[TestClient, GraphStore, Path],
) -> None:
    client, store, home = world
    curator = key_id(CURATOR)
    assert interactions(client)[0] == []

    cs = new_changeset(client, "statins x PPIs from the test guideline")
    made = edit(
        client,
        cs,
        {
            "op": "add_class",
            "class": NEW,
            "label": "Lipid drugs",
            "parent": "biolink:Drug",
            "reason": "group",
        },
    )
    assert made["author"] == curator and ["class", NEW] in made["added"]
    edit(
        client,
        cs,
        {
            "op": "add_synonym",
            "class": NEW,
            "text": "降脂药",
            "lang": "zh",
            "reason": "Chinese synonym",
        },
    )
    edit(client, cs, {"op": "add_subclass", "sub": STATINS, "sup": NEW, "reason": "lipids"})
    rule = {
        "op": "add_rule",
        "a": STATINS,
        "b": PPIS,
        "severity": "precaution",
        "management": "Monitor creatine kinase.",
        "guideline": GUIDELINE,
        "section": "4.2",
        "date": "2026-01-15",
        "reason": "the guideline states it",
    }
    assert edit(client, cs, rule)["source"] == GUIDELINE["id"]
    shown = client.get(f"/v1/ontology/changesets/{cs}", headers=bearer(CLINICIAN)).json()
    assert shown["status"] == "draft" and shown["author"] == curator
    assert [e["op"] for e in shown["edits"]] == [
        "add_class",
        "add_synonym",
        "add_subclass",
        "add_rule",
    ]
    assert shown["citations"][GUIDELINE["id"]]["kind"] == "guideline"
    assert CURATOR not in (home / "ontology" / "changesets" / f"{cs}.json").read_text()

    check = client.post(f"/v1/ontology/changesets/{cs}/check").json()
    assert check["ok"] and check["unsatisfiable"] == [] and check["scope"] == "module"
    response = client.post(f"/v1/ontology/changesets/{cs}/publish")
    assert response.status_code == 201, response.text
    manifest = response.json()
    assert (manifest["version"], manifest["author"]) == (2, curator)
    assert manifest["kg_version"] == store.version() and manifest["kg"]["edges"] > 2
    again = client.post(f"/v1/ontology/changesets/{cs}/publish")
    assert again.status_code == 409 and "only drafts publish" in again.json()["detail"]
    late = edit(
        client,
        cs,
        {"op": "add_label", "class": NEW, "text": "x", "lang": "fr", "reason": "late"},
        409,
    )
    assert "only drafts take edits" in late["detail"]

    (problem,), answer = interactions(client)
    assert problem["severity"] == "precaution"
    assert {STATINS, PPIS} <= set(problem["entities"])
    sources = {s for c in problem["citations"] for s in answer["citations"][c].get("sources", [])}
    assert GUIDELINE["id"] in sources

    d = client.get("/v1/ontology/diff/1/2", headers=bearer(CLINICIAN)).json()
    (added_rule,) = [r for r in d["added"] if r["axiom"][0] == "rule"]
    assert (added_rule["author"], added_rule["changeset"], added_rule["version"]) == (
        curator,
        cs,
        2,
    )
    assert added_rule["source"] == GUIDELINE["id"] and d["removed"] == []
    history = client.get(f"/v1/ontology/history/{STATINS}", headers=bearer(CLINICIAN)).json()
    assert [h["op"] for h in history] == ["init", "add_subclass", "add_rule"]
    assert (history[-1]["author"], history[-1]["source"]) == (curator, GUIDELINE["id"])
    versions = client.get("/v1/ontology/versions", headers=bearer(CLINICIAN)).json()
    assert [(v["version"], v["changeset"]) for v in versions] == [(1, "base"), (2, cs)]

    # an incoherent change set: a class under two disjoint classes is refused, nothing published
    bad = new_changeset(client, "a drug class that is a phenotype")
    edit(
        client,
        bad,
        {
            "op": "add_class",
            "class": "EVO:test-bad",
            "label": "Bad",
            "parent": "biolink:Drug",
            "reason": "mistake",
        },
    )
    edit(
        client,
        bad,
        {"op": "add_subclass", "sub": "EVO:test-bad", "sup": "HP:0001250", "reason": "mistake"},
    )
    version = store.version()
    refused = client.post(f"/v1/ontology/changesets/{bad}/publish")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert "refused" in body["detail"] and not body["check"]["ok"]
    (unsat,) = body["check"]["unsatisfiable"]
    assert unsat["class"] == "EVO:test-bad"
    assert "disjoint(biolink:Drug, biolink:PhenotypicFeature)" in unsat["axioms"]
    assert store.version() == version and store.get_node("EVO:test-bad") is None
    assert [v["version"] for v in client.get("/v1/ontology/versions").json()] == [1, 2]
    assert client.get(f"/v1/ontology/changesets/{bad}").json()["status"] == "refused"

    rule_edge = store.edges(STATINS, "biolink:interacts_with", PPIS)[0]
    response = client.post(f"/v1/ontology/changesets/{cs}/revert", json={"reason": "withdrawn"})
    assert response.status_code == 201, response.text
    reverted = response.json()
    assert reverted["version"] == 3 and reverted["reverts"] == cs
    assert interactions(client)[0] == []
    assert store.get_edge(rule_edge.id).status == Status.RETRACTED
    (retraction,) = [c for c in store.changes(key=rule_edge.id) if c.action == "set_status"]
    assert retraction.reason.startswith("ontology v3") and retraction.after["status"] == "retracted"
    back = client.get("/v1/ontology/diff/2/3").json()
    assert {r["author"] for r in back["removed"]} == {curator}
    assert [r["axiom"] for r in back["removed"]] == [r["axiom"] for r in d["added"]]
    undo = client.get("/v1/ontology/diff/2/1").json()  # from 2 back to 1: the rule goes
    assert [r["axiom"] for r in undo["removed"]] == [r["axiom"] for r in d["added"]]
    assert undo["added"] == [] and {r["author"] for r in undo["removed"]} == {curator}


def test_roles_unknown_ids_and_bad_bodies(world: tuple[TestClient, GraphStore, Path]) -> None:
    client, _, _ = world
    clinician = bearer(CLINICIAN)
    assert (
        client.post("/v1/ontology/changesets", json={"reason": "x"}, headers=clinician).status_code
        == 403
    )
    cs = new_changeset(client, "checks")
    body = {"op": "add_subclass", "sub": STATINS, "sup": PPIS, "reason": "x"}
    response = client.post(f"/v1/ontology/changesets/{cs}/edits", json=body, headers=clinician)
    assert response.status_code == 403
    assert (
        client.post(f"/v1/ontology/changesets/{cs}/publish", headers=clinician).status_code == 403
    )

    for path in (
        "/v1/ontology/changesets/cs-nope",
        "/v1/ontology/changesets/cs-" + "a" * 300,  # longer than a file name may be
        "/v1/ontology/diff/1/99",
        "/v1/ontology/history/EVO:nothing",
        "/v1/ontology/versions/99/owl",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post("/v1/ontology/changesets/cs-nope/check").status_code == 404
    unknown = edit(client, cs, {**body, "sup": "EVO:nothing"}, 404)
    assert unknown["detail"] == "sup: no class EVO:nothing in the ontology"
    dup = edit(
        client,
        cs,
        {
            "op": "add_class",
            "class": STATINS,
            "label": "x",
            "parent": "biolink:Drug",
            "reason": "x",
        },
        409,
    )
    assert dup["detail"].startswith("class:")
    for body_, says in (
        ({"op": "add_subclass", "sub": STATINS, "sup": STATINS}, "subclass of itself"),
        ({"op": "add_disjoint", "a": STATINS, "b": STATINS}, "disjoint with itself"),
        ({"op": "rename", "class": STATINS, "label": "statins"}, "already labelled"),
    ):
        assert says in edit(client, cs, {**body_, "reason": "x"}, 422)["detail"]

    def bad(body: dict) -> set[str]:
        detail = edit(client, cs, body, 422)["detail"]
        return {loc[-1] for loc in (d["loc"] for d in detail)}

    rule = {
        "op": "add_rule",
        "a": STATINS,
        "b": PPIS,
        "severity": "fatal",
        "management": "m",
        "guideline": {"id": "guideline:x"},
        "section": "1",
        "date": "15/01/2026",
        "reason": "x",
    }
    assert bad(rule) == {"severity", "title", "date"}
    assert "date" in bad({**rule, "date": "2026-13-45"})
    assert bad({**body, "sub": "not a curie"}) == {"sub"}
    assert bad({**body, "reason": " "}) == {"reason"}
    assert bad(
        {"op": "add_label", "class": STATINS, "text": "x", "lang": "EN!", "reason": "x"}
    ) == {"lang"}
    assert bad({**body, "op": "merge"}) == {"body"}
    assert bad({**body, "known": ["sub"]}) == {"known"}
    empty = client.post(f"/v1/ontology/changesets/{cs}/publish")
    assert empty.status_code == 409 and "has no edits" in empty.json()["detail"]


def test_owl_round_trip_through_import(world: tuple[TestClient, GraphStore, Path]) -> None:
    """Download a version's OWL, add a label as Protégé would, upload it: a draft change set."""
    client, _, _ = world
    owl = client.get("/v1/ontology/versions/1/owl", headers=bearer(CLINICIAN))
    assert owl.status_code == 200 and owl.headers["content-type"] == "application/rdf+xml"
    text = owl.text
    start = text.index(f"<owl:Class rdf:about={quoteattr(iri('HP:0001250'))}>")
    end = text.index(">", start) + 1
    edited = text[:end] + '\n    <rdfs:label xml:lang="zh">癫痫发作</rdfs:label>' + text[end:]
    response = client.post(
        "/v1/ontology/import",
        params={"reason": "edited in Protégé"},
        content=edited.encode(),
        headers={"Content-Type": "application/rdf+xml"},
    )
    assert response.status_code == 201, response.text
    (made,) = response.json()["edits"]
    assert made["added"] == [["label", "HP:0001250", "癫痫发作", "zh"]] and made["removed"] == []
    assert made["author"] == key_id(CURATOR) and made["source"].startswith("upload:sha256-")
    wrong = client.post(
        "/v1/ontology/import",
        params={"reason": "x"},
        content=b"x",
        headers={"Content-Type": "text/plain"},
    )
    assert wrong.status_code == 415
    garbage = client.post(
        "/v1/ontology/import",
        params={"reason": "x"},
        content=b"@prefix",
        headers={"Content-Type": "text/turtle"},
    )
    assert garbage.status_code == 422 and garbage.json()["detail"].startswith("body:")
    for unrelated in (b"", b"@prefix x: <http://x/> . x:a x:b x:c ."):
        refused = client.post(
            "/v1/ontology/import",
            params={"reason": "wrong file"},
            content=unrelated,
            headers={"Content-Type": "text/turtle"},
        )
        assert refused.status_code == 422 and "none of the ontology's classes" in refused.text
    # nothing an upload names is fetched (port 9 is discard: a fetch would fail differently)
    remote = "http://127.0.0.1:9/internal"
    owl_imports = (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:owl="http://www.w3.org/2002/07/owl#"><owl:Ontology rdf:about="http://x/o">'
        f'<owl:imports rdf:resource="{remote}"/></owl:Ontology></rdf:RDF>'
    )
    for content, media, says in (
        (f'{{"@context": "{remote}", "@id": "http://x/a"}}', "application/ld+json", "not fetched"),
        (f'{{"@context": [{{"@import": "{remote}"}}]}}', "application/ld+json", "not fetched"),
        (owl_imports, "application/rdf+xml", "owl:imports are not followed"),
    ):
        fetch = client.post(
            "/v1/ontology/import",
            params={"reason": "x"},
            content=content.encode(),
            headers={"Content-Type": media},
        )
        assert fetch.status_code == 422 and says in fetch.text, fetch.text


def test_proposals_are_listed_accepted_and_rejected_with_actor_and_reason(
    world: tuple[TestClient, GraphStore, Path],
) -> None:
    client, store, _ = world
    model = Citation("model:signals@test:2024-01..2024-06", "model", "test learner", version="t")
    proposed = [
        Edge(
            "ANSM:atorvastatine",
            "biolink:has_adverse_event",
            "HP:0003236",
            (model.id,),
            Status.PROPOSED,
            0.8,
        ),
        Edge(
            "ANSM:omeprazole",
            "biolink:has_adverse_event",
            "HP:0002017",
            (model.id,),
            Status.PROPOSED,
            0.6,
        ),
    ]
    store.upsert(citations=[model], edges=proposed, actor="test-learner", reason="signal")
    curator = key_id(CURATOR)

    assert client.get("/v1/proposals", headers=bearer(CLINICIAN)).status_code == 403
    listed = client.get("/v1/proposals", params={"source": "model:signals@test"}).json()
    assert [e["id"] for e in listed["proposals"]] == [e.id for e in proposed]
    assert listed["names"]["HP:0003236"]
    assert client.get("/v1/proposals", params={"source": "model:none"}).json()["proposals"] == []
    assert client.get("/v1/proposals", params={"status": "maybe"}).status_code == 422
    shown = client.get(f"/v1/proposals/{proposed[0].id}").json()
    assert shown["citations"][model.id]["kind"] == "model"
    assert [c["action"] for c in shown["history"]] == ["add_edge"]

    accepted = client.post(f"/v1/proposals/{proposed[0].id}/accept", json={"reason": "in label"})
    assert accepted.status_code == 200 and accepted.json()["edge"]["status"] == Status.CURATED
    rejected = client.post(f"/v1/proposals/{proposed[1].id}/reject", json={"reason": "noise"})
    assert rejected.status_code == 200 and rejected.json()["edge"]["status"] == Status.REJECTED
    for edge, status, reason in (
        (proposed[0], "curated", "in label"),
        (proposed[1], "rejected", "noise"),
    ):
        last = store.changes(key=edge.id)[-1]
        assert (last.action, last.actor, last.reason) == ("set_status", curator, reason)
        assert (last.before["status"], last.after["status"]) == ("proposed", status)

    again = client.post(f"/v1/proposals/{proposed[0].id}/reject", json={"reason": "changed"})
    assert again.status_code == 409 and "is curated, not proposed" in again.json()["detail"]
    assert (
        client.post("/v1/proposals/E0000000000000000/accept", json={"reason": "x"}).status_code
        == 404
    )
    assert client.post(f"/v1/proposals/{proposed[1].id}/accept", json={}).status_code == 422
    assert client.get("/v1/proposals/not-an-edge").status_code == 422


def test_publish_keeps_an_edit_saved_while_it_waited_for_the_lock(
    world: tuple[TestClient, GraphStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change set is read under the publish lock: an edit saved by the request that held
    the lock first is published with it, not dropped."""
    client, _, _ = world
    cs = new_changeset(client, "two synonyms")
    first = {"op": "add_synonym", "class": STATINS, "text": "test statin synonym one"}
    edit(client, cs, {**first, "lang": "en", "reason": "first"})
    repo = client.app.state.ontology
    lock = repo.lock

    @contextmanager
    def edited_first() -> Iterator[None]:
        changes = repo.changeset(cs)
        editor(repo, changes).add_synonym(STATINS, "test statin synonym two", "en", reason="second")
        repo.save(changes)
        with lock():
            yield

    monkeypatch.setattr(repo, "lock", edited_first)
    response = client.post(f"/v1/ontology/changesets/{cs}/publish")
    assert response.status_code == 201, response.text
    axioms = repo.load(response.json()["version"]).axioms
    assert Axiom("synonym", (STATINS, "test statin synonym two", "en")) in axioms
    assert len(repo.changeset(cs).edits) == 2
