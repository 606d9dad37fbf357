"""The drug vocabulary of ``drug-named-entity-recognition``: ~20k drugs and chemicals, their
107k English (and some foreign) name variants, DrugBank and MeSH ids, MeSH tree numbers.

Node ids: ``DRUGBANK:DBxxxxx`` where the entry has a DrugBank id; else ``MESH:Dxxxxxx`` where
the MeSH id is the entry's own; else a minted ``EVO:drug-<slug of its name>``.

The package's ``mesh_id`` is often not the entry's own descriptor but one of its MeSH
*pharmacological actions*: warfarin carries D012378 (Rodenticides), aspirin D058633
(Antipyretics), 121 antibiotics D000900 (Anti-Bacterial Agents). A MeSH id is taken as the
entry's own only when no other entry carries it, or when the entry is the one pharmacological
action class (MeSH tree D27) that carries it. An id shared with exactly one D27 entry becomes a
``member_of`` edge to that class; a shared id with no single D27 holder is reported.

Classes: an entry whose tree numbers sit under another entry's tree number is a member (drugs)
or subclass (classes) of the nearest such entry: warfarin ``member_of`` 4-hydroxycoumarins
``subclass_of`` coumarins ``subclass_of`` benzopyrans. Tree positions that no entry holds are
skipped. Entries with only D27 tree numbers (pharmacological actions and uses such as
Anticoagulants) and entries above others in the tree without a DrugBank id (chemical groups
such as Coumarins) are ``biolink:DrugClass``; DrugBank, MedlinePlus and NHS entries are
``biolink:Drug``; the remaining MeSH chemicals (enzymes, proteins...) ``biolink:ChemicalEntity``.
"""

from __future__ import annotations

import bz2
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ingest.source import SourceBatch
from kg.model import Citation, Edge, Node, Synonym
from kg.settings import Settings
from kg.vocab import MEMBER_OF, SUBCLASS_OF, normalize_text

PACKAGE = "drug-named-entity-recognition"
CITATION_ID = "src:drug-ner"
DRUG = "biolink:Drug"
DRUG_CLASS = "biolink:DrugClass"
CHEMICAL = "biolink:ChemicalEntity"
ACTIONS_TREE = "D27"  # MeSH "Chemical Actions and Uses": pharmacological actions and uses


@dataclass(frozen=True)
class VocabularyEntry:
    """One drug of the vocabulary with its node id, display name and name variants."""

    key: str
    id: str
    name: str
    category: str
    variants: tuple[str, ...]
    brands: tuple[str, ...]
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class DrugVocabulary:
    """The vocabulary's entries by package key, and every folded name variant -> node id."""

    entries: dict[str, VocabularyEntry]
    by_id: dict[str, VocabularyEntry]
    name_index: dict[str, str]
    #: package key -> the MeSH pharmacological action id it carries instead of its own id.
    action_ids: dict[str, str]
    #: pharmacological action MeSH id -> package key of the one D27 entry that carries it.
    action_classes: dict[str, str]
    #: package key -> key of the entry it was merged into (two keys, one node id).
    merged: dict[str, str]

    def entry(self, key: str) -> VocabularyEntry:
        """The entry of a package key (merged keys lead to the entry they were merged into)."""
        return self.entries[self.merged.get(key, key)]

    def lookup(self, name: str) -> VocabularyEntry | None:
        """The entry with this name or name variant (case, accents, punctuation ignored)."""
        node_id = self.name_index.get(normalize_text(name))
        return self.by_id[node_id] if node_id else None


def _raw() -> dict[str, Any]:
    """The package's bundled dictionary, read without importing the package (its import loads
    the dictionary too and sets up network look-ups we do not use)."""
    spec = find_spec("drug_named_entity_recognition")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{PACKAGE} is not installed")
    with bz2.open(Path(spec.origin).parent / "drug_ner_dictionary.pkl.bz2", "rb") as data:
        return pickle.load(data)


def _is_action(data: dict[str, Any]) -> bool:
    trees = data.get("mesh_tree") or ()
    return bool(trees) and all(t.startswith(ACTIONS_TREE) for t in trees)


def _slug(text: str) -> str:
    return normalize_text(text).replace(" ", "-")


def _mesh_ownership(
    canon: dict[str, dict[str, Any]],
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(key -> its own MeSH id, key -> the action id it carries instead, action id -> key of
    the one D27 entry that carries it): see the module docstring."""
    holders: dict[str, list[str]] = defaultdict(list)
    for key, data in canon.items():
        if data.get("mesh_id"):
            holders[data["mesh_id"]].append(key)
    action_classes: dict[str, str] = {}
    for mesh_id, keys in holders.items():
        actions = [k for k in keys if _is_action(canon[k])]
        if len(actions) == 1:
            action_classes[mesh_id] = actions[0]
    own: dict[str, str] = {}
    actions_of: dict[str, str] = {}
    for mesh_id, keys in holders.items():
        for key in keys:
            if len(keys) == 1 or action_classes.get(mesh_id) == key:
                own[key] = mesh_id
            else:
                actions_of[key] = mesh_id
    return own, actions_of, action_classes


def _category(data: dict[str, Any], parents: set[str]) -> str:
    if data.get("drugbank_id") or data.get("medline_plus_id") or data.get("nhs_url"):
        return DRUG
    if _is_action(data) or any(t in parents for t in data.get("mesh_tree", ())):
        return DRUG_CLASS
    return CHEMICAL


@lru_cache(maxsize=1)
def drug_vocabulary() -> DrugVocabulary:
    """The parsed vocabulary (cached: the drugs, ANSM and entity-linking code share it)."""
    raw = _raw()
    canon: dict[str, dict[str, Any]] = raw["drug_canonical_to_data"]
    variants: dict[str, list[str]] = defaultdict(list)
    for variant, keys in raw["drug_variant_to_canonical"].items():
        for key in keys:
            variants[key].append(variant)
    brand_flags: dict[str, dict[str, Any]] = raw["drug_variant_to_variant_data"]
    own_mesh, action_ids, action_classes = _mesh_ownership(canon)

    keys_by_id: dict[str, list[str]] = defaultdict(list)
    for key, data in canon.items():
        if data.get("drugbank_id"):
            keys_by_id[f"DRUGBANK:{data['drugbank_id']}"].append(key)
        elif key in own_mesh:
            keys_by_id[f"MESH:{own_mesh[key]}"].append(key)
        else:
            keys_by_id[f"EVO:drug-{_slug(key)}"].append(key)
    parents = {t.rsplit(".", 1)[0] for d in canon.values() for t in d.get("mesh_tree", ())}
    entries: dict[str, VocabularyEntry] = {}
    merged: dict[str, str] = {}
    for node_id, keys in keys_by_id.items():
        keys.sort(key=lambda k: (len(k), k))  # 'epoetin alfa' rather than 'epoetin alfa,'
        key, data = keys[0], canon[keys[0]]
        merged.update((k, key) for k in keys[1:])
        names = sorted(
            {v for k in keys for v in (*variants.get(k, ()), *canon[k].get("synonyms", ()))}
        )
        entries[key] = VocabularyEntry(
            key=key,
            id=node_id,
            name=data.get("name") or key,
            category=_category(data, parents),
            variants=tuple(names),
            brands=tuple(n for n in names if brand_flags.get(n, {}).get("is_brand")),
            data=data,
        )
    by_id = {e.id: e for e in entries.values()}
    name_index: dict[str, str] = {}
    # Display names win over variants, so a variant never steals another drug's own name.
    for entry in entries.values():
        name_index.setdefault(normalize_text(entry.name), entry.id)
    for entry in entries.values():
        for variant in entry.variants:
            name_index.setdefault(normalize_text(variant), entry.id)
    return DrugVocabulary(entries, by_id, name_index, action_ids, action_classes, merged)


def _citation() -> Citation:
    pkg_version = version(PACKAGE)
    return Citation(
        id=CITATION_ID,
        kind="database",
        title="Drug Named Entity Recognition dictionary (Fast Data Science)",
        version=pkg_version,
        url="https://github.com/fastdatascience/drug_named_entity_recognition",
        license=(
            "MIT (package); DrugBank Open Data CC0; Wikipedia text CC BY-SA 3.0 and GFDL; "
            "MeSH and MedlinePlus from the U.S. National Library of Medicine; PubChem open access"
        ),
        details={
            "package": f"{PACKAGE}=={pkg_version}",
            "upstream": "DrugBank Open Data, MeSH, MedlinePlus, NHS, PubChem, Wikipedia",
        },
    )


def _synonyms(entry: VocabularyEntry) -> tuple[Synonym, ...]:
    """Name variants; those with non-ASCII letters are often foreign spellings (``paracétamol``,
    ``acetaminofén``), tagged ``und`` (undetermined language) rather than ``en``."""
    own = normalize_text(entry.name)
    return tuple(
        Synonym(v, "en" if v.isascii() else "und")
        for v in entry.variants
        if normalize_text(v) != own
    )


def _node(entry: VocabularyEntry, batch: SourceBatch, vocab: DrugVocabulary) -> Node:
    data = entry.data
    xrefs = []
    if data.get("drugbank_id"):
        xrefs.append(f"DRUGBANK:{data['drugbank_id']}")
    if data.get("mesh_id") and entry.key not in vocab.action_ids:
        xrefs.append(f"MESH:{data['mesh_id']}")
    if data.get("medline_plus_id"):
        xrefs.append(f"MEDLINEPLUS:{data['medline_plus_id']}")
    properties: dict[str, Any] = {}
    if data.get("mesh_tree"):
        properties["mesh_tree"] = list(data["mesh_tree"])
    if entry.key in vocab.action_ids:
        properties["mesh_pharmacological_action"] = f"MESH:{vocab.action_ids[entry.key]}"
    if entry.brands:
        properties["brands"] = list(entry.brands)
    if data.get("wikipedia_url"):
        properties["wikipedia_url"] = data["wikipedia_url"]
    if data.get("nhs_url"):
        batch.issue("malformed-nhs-url", f"{entry.name}: {data['nhs_url']}")
    if not data.get("name"):
        batch.issue("missing-name", f"{entry.key} ({entry.id}): named after its key")
    return Node(
        id=entry.id,
        category=entry.category,
        name=entry.name,
        synonyms=_synonyms(entry),
        xrefs=tuple(xrefs),
        properties=properties,
    )


def _class_edges(vocab: DrugVocabulary, batch: SourceBatch) -> list[Edge]:
    """Membership and subclass edges from MeSH tree numbers and pharmacological actions."""
    tree_owner = {t: e.id for e in vocab.entries.values() for t in e.data.get("mesh_tree", ())}
    edges: dict[tuple[str, str], Edge] = {}

    def link(entry: VocabularyEntry, parent_id: str, basis: str, detail: str) -> None:
        if parent_id == entry.id or (entry.id, parent_id) in edges:
            return
        predicate = SUBCLASS_OF if entry.category == DRUG_CLASS else MEMBER_OF
        edges[(entry.id, parent_id)] = Edge(
            entry.id, predicate, parent_id, (CITATION_ID,), qualifiers={basis: detail}
        )

    for entry in vocab.entries.values():
        for tree in entry.data.get("mesh_tree", ()):
            parts = tree.split(".")
            for depth in range(len(parts) - 1, 0, -1):
                owner = tree_owner.get(".".join(parts[:depth]))
                if owner and owner != entry.id:
                    link(entry, owner, "mesh_tree", tree)
                    break
        action = vocab.action_ids.get(entry.key)
        if action is None:
            continue
        holder = vocab.action_classes.get(action)
        if holder is None:
            batch.issue(
                "mesh-action-without-class",
                f"{entry.name}: MESH:{action} is shared, and no single D27 entry carries it",
            )
        else:
            link(entry, vocab.entry(holder).id, "mesh_pharmacological_action", f"MESH:{action}")
    return list(edges.values())


def load_drugs(settings: Settings | None = None) -> SourceBatch:
    """Drug nodes with names, brands, xrefs and MeSH classes (``member_of`` / ``subclass_of``)."""
    vocab = drug_vocabulary()
    batch = SourceBatch(name="drugs", citation=_citation())
    batch.nodes.extend(_node(entry, batch, vocab) for entry in vocab.entries.values())
    for key, into in vocab.merged.items():
        batch.issue("duplicate-entry", f"{key!r} merged into {into!r} ({vocab.entry(into).id})")
    for key, mesh_id in vocab.action_ids.items():
        batch.issue("mesh-id-is-not-own", f"{key}: MESH:{mesh_id}")
    batch.edges.extend(_class_edges(vocab, batch))
    return batch
