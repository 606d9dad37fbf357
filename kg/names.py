"""Search keys of a node: its normalised names and the word-starts inside them."""

from __future__ import annotations

from collections.abc import Iterator

from kg.model import Node
from kg.vocab import normalize_text


def name_keys(node: Node) -> Iterator[tuple[str, int]]:
    """Yield (key, rank): rank 0 for a whole name or synonym, 1 for the tail of a name that
    starts at one of its later words (so 'seiz' finds 'generalized seizure')."""
    names = dict.fromkeys(
        n for n in (normalize_text(t) for t in (node.name, *(s.text for s in node.synonyms))) if n
    )
    tails: dict[str, None] = {}
    for norm in names:
        words = norm.split(" ")
        for i in range(1, len(words)):
            tails.setdefault(" ".join(words[i:]))
    yield from ((n, 0) for n in names)
    yield from ((t, 1) for t in tails if t not in names)
