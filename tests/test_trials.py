"""Clinical trial matching: ingest of three formats, criterion parsing, note facts, matching
with cited verdict chains, and the benchmark on a small slice of shared/data/trials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.build import write_batch
from ingest.criteria import (
    Lexicon,
    coverage,
    lexicon_for,
    parse_criteria,
    parse_criterion,
    split_criteria,
    to_canonical,
)
from ingest.notes import extract_facts, note_sentences
from ingest.trials import from_ctgov_xml, load_trials, read_trials
from kg import open_store
from kg.settings import Settings
from kg.store import GraphStore
from reasoner.trials import Expander, Judge, TrialPatient, facts_from_patient, trial_match

TRIALS_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "trials"

V2_STUDY = {
    "protocolSection": {
        "identificationModule": {
            "nctId": "NCT09900001",
            "briefTitle": "Apixaban-Free Blood Pressure Control in Essential Hypertension",
            "officialTitle": "A Randomized Trial of Intensive Blood Pressure Control",
        },
        "statusModule": {
            "overallStatus": "RECRUITING",
            "lastUpdatePostDateStruct": {"date": "2024-03-01", "type": "ACTUAL"},
        },
        "conditionsModule": {"conditions": ["Hypertension", "Obesity"]},
        "designModule": {"phases": ["PHASE3"]},
        "armsInterventionsModule": {"interventions": [{"type": "DRUG", "name": "Amlodipine"}]},
        "eligibilityModule": {
            "eligibilityCriteria": (
                "Inclusion Criteria:\n\n"
                "* Clinical diagnosis of hypertension\n"
                "* Hemoglobin >= 9 g/dL\n"
                "* ANC > 1.5 × 10^9/L\n"
                "* Creatinine clearance > 60 mL/min\n\n"
                "Exclusion Criteria:\n\n"
                "* Use of anticoagulants within 6 months before screening\n"
                "* History of myocardial infarction\n"
                "* Pregnant or breast-feeding women\n"
                "* Platelets < 100,000/mm3"
            ),
            "sex": "ALL",
            "minimumAge": "18 Years",
            "maximumAge": "80 Years",
        },
    }
}

XML_STUDY = """<?xml version="1.0" encoding="UTF-8"?>
<clinical_study rank="1">
  <id_info><org_study_id>DM-2019-04</org_study_id><nct_id>NCT09900002</nct_id></id_info>
  <brief_title>Metformin Add-on Therapy in Type 2 Diabetes Mellitus</brief_title>
  <overall_status>Completed</overall_status>
  <phase>Phase 2</phase>
  <condition>Type 2 diabetes mellitus</condition>
  <intervention><intervention_type>Drug</intervention_type>
    <intervention_name>Metformin</intervention_name></intervention>
  <eligibility>
    <criteria>
      <textblock>
        Inclusion Criteria:

          -  Type 2 diabetes mellitus diagnosed at least 6 months ago

          -  HbA1c between 7% and 10%

        Exclusion Criteria:

          -  Serum creatinine &gt; 1.5 mg/dL

          -  No insulin therapy in the past 3 months
      </textblock>
    </criteria>
    <gender>Female</gender>
    <minimum_age>40 Years</minimum_age>
    <maximum_age>75 Years</maximum_age>
  </eligibility>
  <last_update_posted type="Actual">May 2, 2021</last_update_posted>
</clinical_study>
"""

NOTE = (
    "A 62-year-old woman with hypertension and obesity presents for follow-up. "
    "She takes warfarin for atrial fibrillation. "
    "She denies smoking, diabetes mellitus or chest pain. "
    "Hemoglobin 11.2 g/dL, creatinine clearance 75 mL/min, platelets 210 x10^3/uL. "
    "She has a history of myocardial infarction."
)


@pytest.fixture(scope="module")
def trial_store(
    built_kg: GraphStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GraphStore]:
    """A writable copy of the built KG with the two hand-written samples loaded."""
    folder = tmp_path_factory.mktemp("trials")
    built_kg.backup_to(folder / "kg.sqlite")  # type: ignore[attr-defined]
    store = open_store(f"sqlite:///{folder / 'kg.sqlite'}")
    samples = folder / "samples"
    samples.mkdir()
    (samples / "NCT09900001.json").write_text(json.dumps(V2_STUDY))
    (samples / "NCT09900002.xml").write_text(XML_STUDY)
    write_batch(store, load_trials(samples, store))
    yield store
    store.close()


@pytest.fixture(scope="module")
def lexicon(built_kg: GraphStore) -> Lexicon:
    return lexicon_for(built_kg)


# --- ingest ---------------------------------------------------------------------------------


def test_v2_json_and_xml_become_trials_with_cited_criteria(trial_store: GraphStore) -> None:
    trial = trial_store.get_node("NCT:NCT09900001")
    assert trial is not None and trial.category == "biolink:ClinicalTrial"
    assert trial.properties["conditions"] == ["Hypertension", "Obesity"]
    edges = trial_store.edges(subject="NCT:NCT09900001", predicate="biolink:has_criterion")
    ids = {e.object for e in edges}
    assert "EVO:criterion-NCT09900001-i1" in ids and "EVO:criterion-NCT09900001-e4" in ids
    assert "EVO:criterion-NCT09900001-i0" in ids  # the eligibility module's age limits
    assert all(e.citations == ("src:ctgov:NCT09900001",) for e in edges)
    cite = trial_store.get_citations(["src:ctgov:NCT09900001"])["src:ctgov:NCT09900001"]
    assert cite.url == "https://clinicaltrials.gov/study/NCT09900001"
    assert cite.license == "public domain (US)" and cite.kind == "database"
    age = trial_store.get_node("EVO:criterion-NCT09900001-i0")
    assert age.properties["checks"] == [{"kind": "age", "min": 18.0, "max": 80.0}]
    exclusion = trial_store.get_node("EVO:criterion-NCT09900001-e1")
    assert exclusion.category == "biolink:EligibilityCriterion"
    assert exclusion.properties["type"] == "exclusion"
    conditions = trial_store.edges(subject="NCT:NCT09900001", predicate="biolink:related_to")
    assert "HP:0000822" in {e.object for e in conditions}  # Hypertension

    xml = trial_store.get_node("NCT:NCT09900002")
    assert xml.properties["sex"] == "Female" and xml.properties["format"] == "ctgov-xml"
    module = trial_store.get_node("EVO:criterion-NCT09900002-i0")
    assert {"kind": "sex", "sex": "female"} in module.properties["checks"]
    creatinine = trial_store.get_node("EVO:criterion-NCT09900002-e1")
    lab = next(c for c in creatinine.properties["checks"] if c["kind"] == "lab")
    assert (lab["lab"], lab["op"], lab["canonical_value"]) == ("creatinine", ">", 1.5)


def test_xml_reader_keeps_the_textblock() -> None:
    record = from_ctgov_xml(XML_STUDY)
    assert record.nct_id == "NCT09900002" and record.min_age == "40 Years"
    assert [t for t, _ in split_criteria(record.criteria)] == ["inclusion"] * 2 + ["exclusion"] * 2


@pytest.mark.skipif(not TRIALS_DATA.exists(), reason="shared/data/trials is absent")
def test_hint_jsonl_slice_loads(tmp_path: Path, lexicon: Lexicon, built_kg: GraphStore) -> None:
    lines = (TRIALS_DATA / "trials.jsonl").read_text().splitlines()[:40]
    path = tmp_path / "slice.jsonl"
    path.write_text("\n".join(lines))
    assert len(read_trials(path)) == 40
    batch = load_trials(path, built_kg)  # parsing only: nothing is written
    trials = [n for n in batch.nodes if n.category == "biolink:ClinicalTrial"]
    criteria = [n for n in batch.nodes if n.category == "biolink:EligibilityCriterion"]
    assert len(trials) == 40 and len(criteria) > 300
    assert len(batch.extra_citations) == 40
    assert sum(bool(n.properties["checks"]) for n in criteria) / len(criteria) > 0.5
    related = [e for e in batch.edges if e.predicate == "biolink:related_to"]
    assert any(e.object.startswith("ICD10CM:") for e in related)
    assert "condition-not-linked" in batch.issues  # visible, never silent
    assert "NCT00000614" in batch.issues["no-exclusion-section"].examples


# --- criteria -------------------------------------------------------------------------------


def test_short_section_headers_split_criteria() -> None:
    text = "Inclusion:\n - Hypertension\n\nExclusion:\n - History of stroke\n"
    text += "Exclusion criteria include:\n - Myocardial infarction\n"
    assert split_criteria(text) == [
        ("inclusion", "Hypertension"),
        ("exclusion", "History of stroke"),
        ("exclusion", "Myocardial infarction"),
    ]
    assert split_criteria("Inclusion criteria include:\n- Age 18 or over")[0][0] == "inclusion"


def test_lab_thresholds_are_normalised_to_canonical_units(lexicon: Lexicon) -> None:
    def lab(text: str) -> dict:
        return next(
            c for c in parse_criterion(text, "inclusion", 1, lexicon).checks if c["kind"] == "lab"
        )

    crcl = lab("Creatinine clearance > 60 mL/min")
    assert (crcl["lab"], crcl["op"], crcl["canonical_value"], crcl["canonical_unit"]) == (
        "creatinine clearance",
        ">",
        60.0,
        "mL/min",
    )
    anc = lab("ANC > 1.5 × 10^9/L")
    assert (anc["lab"], anc["canonical_value"], anc["canonical_unit"]) == (
        "absolute neutrophil count",
        1.5,
        "10^9/L",
    )
    hb = lab("hemoglobin >= 9 g/dL")
    assert (hb["op"], hb["canonical_value"]) == (">=", 9.0)
    assert lab("Haemoglobin ≥ 90 g/L")["canonical_value"] == 9.0
    assert lab("Platelets ≥ 100,000/mm3")["canonical_value"] == 100.0
    assert to_canonical("creatinine", 133, "µmol/L") == (1.505, "mg/dL")


def test_negation_windows_age_sex_and_class_mentions(lexicon: Lexicon) -> None:
    checks = parse_criterion("No anticoagulants within 6 months", "exclusion", 1, lexicon).checks
    drug = next(c for c in checks if c["kind"] == "drug")
    assert drug["negated"] and "MESH:D000925" in drug["nodes"]
    assert {"kind": "window", "days": 180, "text": "within 6 months"} in checks
    assert parse_criterion("Age 18 to 65 years", "inclusion", 1, None).checks == [
        {"kind": "age", "min": 18.0, "max": 65.0}
    ]
    under = parse_criterion("Participant is under 18 years old.", "exclusion", 1, None)
    assert under.checks == [{"kind": "age", "min": None, "max": 18.0}]
    assert {"kind": "sex", "sex": "all"} in parse_criterion(
        "Male and female", "inclusion", 1, None
    ).checks
    mi = parse_criterion("History of myocardial infarction", "exclusion", 1, lexicon).checks
    assert mi[0]["history"] and "HP:0001658" in mi[0]["nodes"]
    free = parse_criterion("Geographical inaccessibility for follow-up", "exclusion", 1, lexicon)
    assert not free.structured and free.to_dict()["review"]


def test_parse_coverage_of_a_real_criteria_text(lexicon: Lexicon) -> None:
    criteria = parse_criteria(
        V2_STUDY["protocolSection"]["eligibilityModule"]["eligibilityCriteria"], lexicon
    )
    assert [c.code for c in criteria] == ["i1", "i2", "i3", "i4", "e1", "e2", "e3", "e4"]
    assert coverage(criteria) == 1.0


# --- notes ----------------------------------------------------------------------------------


def test_note_facts_cite_their_sentences(lexicon: Lexicon) -> None:
    facts = extract_facts(NOTE, lexicon)
    assert len(facts.sentences) == 5
    age, sex = facts.first("age"), facts.first("sex")
    assert age.value == 62 and age.sentence == 0 and sex.value == "female"
    by_text = {f.text.lower(): f for f in facts.facts if f.kind in ("condition", "drug")}
    assert not by_text["hypertension"].negated
    assert by_text["diabetes mellitus"].negated and by_text["diabetes mellitus"].sentence == 2
    assert by_text["myocardial infarction"].history
    assert by_text["warfarin"].kind == "drug" and by_text["warfarin"].nodes
    labs = {f.text: f for f in facts.of_kind("lab")}
    assert labs["hemoglobin"].value == 11.2 and labs["platelet count"].value == 210.0
    assert labs["creatinine clearance"].path == "note_sentences[3]"
    ctx = facts.to_patient_context("p1", __import__("datetime").date(2025, 1, 1))
    assert ctx.age == 62 and any(c.status == "refuted" for c in ctx.conditions)


def test_numbered_notes_keep_their_numbering() -> None:
    assert note_sentences("0. A 58-year-old woman.\n1. She denies smoking.") == [
        "A 58-year-old woman.",
        "She denies smoking.",
    ]


# --- matching -------------------------------------------------------------------------------


def test_structured_patient_verdict_chains_are_cited(
    trial_store: GraphStore, assert_cited: object
) -> None:
    payload = {
        "id": "q1",
        "patient": {
            "age": 62,
            "sex": "female",
            "conditions": [{"text": "hypertension"}],
            "medications": [{"text": "warfarin"}],
            "labs": [{"name": "hemoglobin", "value": 11.2, "unit": "g/dL"}],
        },
        "trials": ["NCT09900001", "NCT09900002"],
    }
    answer = trial_match(trial_store, payload)
    assert answer.kind == "trial-match" and len(answer.trials) == 2
    assert assert_cited(answer, trial_store, payload) > 10  # type: ignore[operator]
    first = next(t for t in answer.trials if t.nct_id == "NCT09900001")
    verdicts = {c.id.rsplit("-", 1)[-1]: c for c in first.criteria}
    assert verdicts["i0"].verdict == "met"  # age 62 within 18..80
    assert verdicts["i1"].verdict == "met"  # hypertension
    assert verdicts["i2"].verdict == "met"  # hemoglobin 11.2 >= 9
    assert verdicts["i3"].verdict == "unknown"  # no ANC given
    anticoag = verdicts["e1"]
    assert anticoag.verdict == "met"  # warfarin is an anticoagulant: excluded
    refs = [answer.citations[k] for k in anticoag.citations]
    assert any(r.kind == "kg_edge" and r.edge["predicate"] == "biolink:member_of" for r in refs)
    assert any(r.kind == "patient_fact" and r.path == "medications[0]" for r in refs)
    assert verdicts["e3"].verdict == "not met"  # pregnancy: not stated -> assumed absent
    diabetes = next(t for t in answer.trials if t.nct_id == "NCT09900002")
    assert diabetes.rank == 2 and first.rank == 1


def test_note_patient_cites_sentences(trial_store: GraphStore, assert_cited: object) -> None:
    payload = {"id": "q2", "note": NOTE, "trials": ["NCT09900001"]}
    answer = trial_match(trial_store, payload)
    assert payload["note_sentences"][0].startswith("A 62-year-old woman")
    assert assert_cited(answer, trial_store, payload)  # type: ignore[operator]
    verdicts = {c.id.rsplit("-", 1)[-1]: c for c in answer.trials[0].criteria}
    assert verdicts["e2"].verdict == "met"  # history of myocardial infarction
    assert "patient:note_sentences[4]" in verdicts["e2"].citations
    assert verdicts["i4"].verdict == "met"  # creatinine clearance 75 > 60
    assert verdicts["e4"].verdict == "not met"  # platelets 210 is not < 100


def test_retrieval_without_trial_list_and_bad_input(trial_store: GraphStore) -> None:
    answer = trial_match(trial_store, {"id": "q3", "note": NOTE, "top": 5})
    assert "NCT09900001" in [t.nct_id for t in answer.trials][:5]
    with pytest.raises(ValueError, match="patient"):
        trial_match(trial_store, {"id": "q4"})
    with pytest.raises(ValueError, match="not loaded"):
        trial_match(trial_store, {"id": "q5", "note": NOTE, "trials": ["NCT00000000"]})


def test_age_and_sex_only_qualify_what_a_criterion_names(
    trial_store: GraphStore, lexicon: Lexicon
) -> None:
    def verdict(type_: str, text: str, **patient: object) -> tuple[str, bool]:
        facts = facts_from_patient(TrialPatient.model_validate(patient), lexicon)
        v = Judge(Expander(trial_store), facts).judge(
            parse_criterion(text, type_, 1, lexicon).to_dict()
        )
        return v.verdict, v.assumed

    asthma = {"age": 50, "sex": "female", "conditions": [{"text": "asthma"}]}
    breast = "Female patients with breast cancer"
    mi = "Women over 40 years of age with a history of myocardial infarction"
    assert verdict("inclusion", breast, **asthma) == ("unknown", False)
    assert verdict("exclusion", mi, **asthma) == ("not met", True)  # closed world
    assert verdict("inclusion", breast, **{**asthma, "sex": "male"}) == ("not met", False)
    had_mi = {**asthma, "conditions": [{"text": "myocardial infarction"}]}
    assert verdict("exclusion", mi, **had_mi) == ("met", False)


def test_sex_spellings_are_normalised_or_refused(trial_store: GraphStore) -> None:
    assert [TrialPatient(sex=x).sex for x in ("F", "woman", "M", " Man ")] == [
        "female",
        "female",
        "male",
        "male",
    ]
    payload = {"id": "s1", "patient": {"age": 50, "sex": "F"}, "trials": ["NCT09900002"]}
    verdicts = {
        c.id.rsplit("-", 1)[-1]: c for c in trial_match(trial_store, payload).trials[0].criteria
    }
    assert verdicts["i0"].verdict == "met", verdicts["i0"].reason  # female, 40..75
    with pytest.raises(ValueError, match="sex"):
        trial_match(trial_store, {**payload, "patient": {"sex": "x"}})


def test_no_trials_loaded_is_one_clear_error(built_kg: GraphStore) -> None:
    with pytest.raises(ValueError, match="no trials loaded: run evocdss trials load"):
        trial_match(built_kg, {"id": "n1", "note": NOTE})


def test_trial_match_over_http(
    trial_store: GraphStore, settings: Settings, tmp_path: Path, assert_cited: object
) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from api.app import create_app

    app_settings = settings.model_copy(
        update={
            "api_keys": SecretStr("trial-clinician-key-0001:clinician"),
            "api_audit_log": tmp_path / "audit.log",
            "api_feedback_db": tmp_path / "feedback.sqlite",
        }
    )
    headers = {"Authorization": "Bearer trial-clinician-key-0001"}
    payload = {"id": "h1", "note": NOTE, "trials": ["NCT09900001", "NCT09900002"]}
    with TestClient(create_app(trial_store, app_settings), headers=headers) as client:
        reply = client.post("/v1/ask/trial-match", json=payload)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["kind"] == "trial-match"
        assert answer["trials"][0]["nct_id"] == "NCT09900001"
        assert answer["kg_version"] == trial_store.version()
        # the sentence split the citations point into is part of the answer's inputs
        from reasoner.trials import TrialMatchAnswer

        parsed = TrialMatchAnswer.model_validate(answer)
        payload["note_sentences"] = note_sentences(NOTE)
        assert assert_cited(parsed, trial_store, payload)  # type: ignore[operator]

        bad = client.post("/v1/ask/trial-match", json={"id": "h2", "top": 0, "note": NOTE})
        assert bad.status_code == 422 and "top" in bad.text
        neither = client.post("/v1/ask/trial-match", json={"id": "h3"})
        assert neither.status_code == 422 and "patient" in neither.text
        sex = client.post("/v1/ask/trial-match", json={"id": "h4", "patient": {"sex": "x"}})
        assert sex.status_code == 422 and "unknown sex" in sex.text
        schema = client.get("/openapi.json").json()
        body = schema["paths"]["/v1/ask/trial-match"]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"]["$ref"].endswith("TrialMatchQuery")


# --- evaluation -----------------------------------------------------------------------------


@pytest.mark.skipif(not TRIALS_DATA.exists(), reason="shared/data/trials is absent")
def test_evaluation_on_a_small_slice(trial_store: GraphStore, tmp_path: Path) -> None:
    from evaluation.trials import evaluate_trials

    qrels = (TRIALS_DATA / "qrels.tsv").read_text().splitlines()
    patients = ["sigir-20141", "sigir-201411", "sigir-201419"]
    rows = [qrels[0], *(r for r in qrels[1:] if r.split("\t")[0] in patients)]
    judged = {r.split("\t")[1] for r in rows[1:]}
    labels = [
        x
        for x in (TRIALS_DATA / "criteria_labels.jsonl").read_text().splitlines()
        if json.loads(x)["patient_id"] == "sigir-20141"
    ]
    trials = [
        x
        for x in (TRIALS_DATA / "trials.jsonl").read_text().splitlines()
        if json.loads(x)["nct_id"] in judged
    ]
    people = [
        x
        for x in (TRIALS_DATA / "patients.jsonl").read_text().splitlines()
        if json.loads(x)["id"] in patients
    ]
    data = tmp_path / "slice"
    data.mkdir()
    (data / "qrels.tsv").write_text("\n".join(rows) + "\n")
    (data / "criteria_labels.jsonl").write_text("\n".join(labels) + "\n")
    (data / "trials.jsonl").write_text("\n".join(trials) + "\n")
    (data / "patients.jsonl").write_text("\n".join(people) + "\n")
    result = evaluate_trials(data, trial_store, tmp_path / "out")
    assert result["trials_load"]["loaded"] and result["patients"] == len(patients)
    assert 0 <= result["rerank"]["system_ndcg@10"] <= 1
    assert result["citations_resolve"] == 1.0
    crit = result["criteria"]
    assert (
        crit["labels"] == len(labels) and crit["accuracy"] >= crit["majority_baseline"]["accuracy"]
    )
    assert result["parse_coverage"]["coverage"] > 0.5
    assert (tmp_path / "out" / "trials.md").read_text().startswith("# Trial matching")


def test_cli_load_reports_counts(trial_store: GraphStore, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.commands.trials import app

    (tmp_path / "NCT09900002.xml").write_text(XML_STUDY)
    store = f"sqlite:///{trial_store.path}"  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, ["load", str(tmp_path), "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["trials"] == 1 and report["criteria"] == 5 and report["parse_coverage"] > 0.5
    missing = CliRunner().invoke(app, ["load", str(tmp_path / "nope.json"), "--store", store])
    assert missing.exit_code != 0


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.xml", "<clinical_study><brief_title>Broken & title</brief_title></clinical_study>"),
        ("null.jsonl", '{"nct_id": "NCT09900007", "title": "no criteria", "criteria": null}'),
        ("list.jsonl", '["NCT09900008"]'),
    ],
)
def test_cli_load_bad_records_fail_in_one_line(tmp_path: Path, name: str, content: str) -> None:
    from typer.testing import CliRunner

    from api.commands.trials import app

    (tmp_path / name).write_text(content + "\n")
    store = f"sqlite:///{tmp_path / 'kg.sqlite'}"
    result = CliRunner().invoke(app, ["load", str(tmp_path / name), "--store", store, "--json"])
    if name == "null.jsonl":  # a record without criteria text loads, with an issue
        assert result.exit_code == 0, result.output
        assert "no-criteria-text" in json.loads(result.output)["issues"]
        return
    assert result.exit_code != 0 and isinstance(result.exception, ValueError), result.output
    assert name in str(result.exception) and len(str(result.exception).splitlines()) == 1


def test_eval_on_an_empty_trials_file_is_one_clear_error(
    trial_store: GraphStore, tmp_path: Path
) -> None:
    from evaluation.trials import ensure_trials

    (tmp_path / "trials.jsonl").write_text("")
    with pytest.raises(ValueError, match="no trials"):
        ensure_trials(trial_store, tmp_path / "trials.jsonl")
