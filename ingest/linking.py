"""Entity linking: from what a clinician types or an EHR sends to a KG node.

In order: codes (``RXNORM:11289``, ``HP:0001250``, ``E11.9``, ``DB00682``, ``D014859``), then
exact names and synonyms (case-, accent- and language-insensitive: "warfarine", "Warfarin" and
"Coumadin" meet), then embedding similarity with the shipped MiniLM model, with a threshold
under which the answer is "unknown" rather than a guess. A match is then canonicalised along
``same_as`` / ``close_match`` edges to the node the reasoner works with (for a drug, the ANSM
substance that carries the interactions), keeping the node that matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kg.model import Node
from kg.settings import Settings, get_settings
from kg.store import GraphStore
from kg.vocab import CLOSE_MATCH, SAME_AS, normalize_text

#: What a ``--category`` names: the Biolink categories it covers, and the preferred id prefixes
#: (the first one found among equivalents is the canonical node).
GROUPS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "drug": (
        frozenset(
            {
                "biolink:Drug",
                "biolink:DrugClass",
                "biolink:SmallMolecule",
                "biolink:ChemicalEntity",
                "biolink:Food",
                "biolink:Device",
            }
        ),
        ("ANSM", "RXNORM", "DRUGBANK", "MESH", "EVO"),
    ),
    "phenotype": (frozenset({"biolink:PhenotypicFeature"}), ("HP",)),
    "disease": (frozenset({"biolink:Disease"}), ("OMIM", "ORPHA", "ICD10CM")),
}
EQUIVALENCE = (SAME_AS, CLOSE_MATCH)
CANONICAL_PREFIX = {
    p.upper(): p for p in ("RXNORM", "HP", "OMIM", "ORPHA", "ICD10CM", "DRUGBANK", "MESH", "ANSM")
} | {"NCBIGENE": "NCBIGene"}
BARE_CODES = [
    (re.compile(r"^DB\d{5}$"), "DRUGBANK"),
    (re.compile(r"^[CD]\d{6,9}$"), "MESH"),
    (re.compile(r"^HP_\d{7}$"), "HP"),
    (re.compile(r"^[A-TV-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$"), "ICD10CM"),
]
DEFAULT_THRESHOLD = 0.75


def equivalent_ids(store: GraphStore, node_id: str, hops: int = 2) -> set[str]:
    """``node_id`` and the nodes ``same_as`` / ``close_match`` edges lead to within ``hops``."""
    seen = {node_id}
    frontier = [node_id]
    for _ in range(hops):
        edges = store.neighbors(frontier, predicates=EQUIVALENCE, per_node=50)
        frontier = [x for e in edges for x in (e.subject, e.object) if x not in seen]
        seen.update(frontier)
    return seen


@dataclass(frozen=True)
class Link:
    """The outcome of linking one mention."""

    text: str
    node: Node | None
    method: str  # code | exact | embedding | unknown
    score: float
    matched: str | None = None
    """The node whose code or name matched (``node`` is its canonical equivalent)."""
    matched_name: str | None = None
    equivalents: tuple[str, ...] = ()
    candidates: tuple[tuple[str, str, float], ...] = ()
    """Near misses (node id, name, score), shown when nothing passed the threshold."""

    @property
    def known(self) -> bool:
        return self.node is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "node": None if self.node is None else self.node.data(),
            "method": self.method,
            "score": round(self.score, 4),
            "matched": self.matched,
            "matched_name": self.matched_name,
            "equivalents": list(self.equivalents),
            "candidates": [
                {"id": i, "name": n, "score": round(s, 4)} for i, n, s in self.candidates
            ],
        }


@dataclass
class EntityLinker:
    """Links mentions to KG nodes: codes, then exact names, then embeddings (optional)."""

    store: GraphStore
    settings: Settings = field(default_factory=get_settings)
    threshold: float = DEFAULT_THRESHOLD
    use_embeddings: bool = True
    _indexes: dict[str, Any] = field(default_factory=dict, repr=False)
    _links: dict[tuple[str, str | None], Link] = field(default_factory=dict, repr=False)
    _version: int = -1

    def link(self, text: str, category: str | None = None) -> Link:
        """Link ``text`` (a name or a code) within ``category`` (drug, phenotype, disease).

        Results are remembered until the KG version changes."""
        if category is not None and category not in GROUPS:
            raise ValueError(f"unknown category {category!r}: use {', '.join(GROUPS)}")
        text = text.strip()
        if not text:
            raise ValueError("nothing to link: the text is empty")
        version = self.store.version()
        if version != self._version:
            self._links.clear()
            self._version = version
        key = (text, category)
        if key not in self._links:
            if len(self._links) > 100_000:
                self._links.clear()
            self._links[key] = self._link(text, category)
        return self._links[key]

    def _link(self, text: str, category: str | None) -> Link:
        node = self._by_code(text, category)
        if node is not None:
            return self._canonical(text, node, "code", 1.0, category)
        node = self._by_name(text, category)
        if node is not None:
            return self._canonical(text, node, "exact", 1.0, category)
        if not self.use_embeddings:
            return Link(text, None, "unknown", 0.0)
        near = self.index(category or "drug").nearest(text) if category else self._nearest_any(text)
        if near and near[0][2] >= self.threshold:
            best = self.store.get_node(near[0][0])
            if best is not None:
                return self._canonical(text, best, "embedding", near[0][2], category, near[0][1])
        return Link(text, None, "unknown", near[0][2] if near else 0.0, candidates=tuple(near))

    def _nearest_any(self, text: str) -> list[tuple[str, str, float]]:
        hits = [h for group in GROUPS for h in self.index(group).nearest(text)]
        return sorted(hits, key=lambda h: -h[2])[:5]

    def _by_code(self, text: str, category: str | None) -> Node | None:
        curie = None
        if ":" in text and " " not in text:
            prefix, _, local = text.partition(":")
            curie = f"{CANONICAL_PREFIX.get(prefix.upper(), prefix)}:{local}"
        else:
            for pattern, prefix in BARE_CODES:
                if pattern.match(text.upper()):
                    local = text.upper().removeprefix("HP_")
                    curie = f"{prefix}:{local}"
                    break
        if curie is None:
            return None
        node = self.store.get_node(curie)
        return node if node is not None and self._in_group(node, category) else None

    def _by_name(self, text: str, category: str | None) -> Node | None:
        norm = normalize_text(text)
        exact = [
            n
            for n in self.store.search(text, limit=100)
            if self._in_group(n, category) and norm in _norm_names(n)
        ]
        return min(exact, key=lambda n: self._rank(n, category)) if exact else None

    @staticmethod
    def _in_group(node: Node, category: str | None) -> bool:
        return category is None or node.category in GROUPS[category][0]

    @staticmethod
    def _rank(node: Node, category: str | None) -> tuple[int, str]:
        prefix = node.id.split(":", 1)[0]
        order = GROUPS[category][1] if category else tuple(p for g in GROUPS.values() for p in g[1])
        return (order.index(prefix) if prefix in order else len(order), node.id)

    def _canonical(
        self,
        text: str,
        node: Node,
        method: str,
        score: float,
        category: str | None,
        matched_name: str | None = None,
    ) -> Link:
        """Follow equivalence edges from ``node`` (two hops) to the preferred node."""
        seen = equivalent_ids(self.store, node.id)
        nodes = self.store.get_nodes(sorted(seen)).values()
        best = min(
            (n for n in nodes if self._in_group(n, category)), key=lambda n: self._rank(n, category)
        )
        return Link(
            text,
            best,
            method,
            score,
            matched=node.id,
            matched_name=matched_name or node.name,
            equivalents=tuple(sorted(seen - {best.id})),
        )

    def index(self, group: str) -> Any:
        """The embedding index of a group's names (built or refreshed on first use)."""
        from ingest.embeddings import cache_path, load_or_build

        if group not in self._indexes:
            categories = GROUPS[group][0]

            def names() -> list[tuple[str, str]]:
                return [
                    (n.id, text)
                    for n in self.store.iter_nodes()
                    if n.category in categories and _embeddable(n, group)
                    for text in _index_names(n)
                ]

            cache = cache_path(self.settings.home, self.store.url, group)
            self._indexes[group] = load_or_build(cache, self.store.version(), names)
        return self._indexes[group]


def _norm_names(node: Node) -> set[str]:
    return {normalize_text(node.name), *(normalize_text(s.text) for s in node.synonyms)}


#: The id prefixes whose names are embedded, per group: the vocabulary the reasoner works with
#: (for drugs, the ANSM substances and classes that carry the interactions); other nodes are
#: reached by code or exact name, then canonicalised.
EMBEDDED_PREFIXES = {"drug": ("ANSM:",), "phenotype": ("HP:",), "disease": ("OMIM:", "ORPHA:")}


def _embeddable(node: Node, group: str) -> bool:
    return node.id.startswith(EMBEDDED_PREFIXES[group])


def _index_names(node: Node) -> list[str]:
    """The name and up to two English synonyms: enough to catch paraphrases cheaply."""
    english = [s.text for s in node.synonyms if s.lang == "en" and s.text != node.name]
    return [node.name, *english[:2]]
