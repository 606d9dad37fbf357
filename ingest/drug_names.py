"""French drug names (ANSM INNs) to English: accent folding, INN suffix rules, salt word order,
and a curated table for what rules cannot do. Pure functions, reused by entity linking.

``english_candidates('acide acétylsalicylique')`` yields the folded name itself, then rule-made
English forms with the rules that made them ('acetylsalicylic acid', 'acetylsalicylate' ...);
``match_english`` returns the first candidate that a name index (folded English name -> id)
knows. A match of the folded French name itself is ``exact``; anything a rule made is ``rule``.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from kg.vocab import normalize_text

#: The curated French -> English table shipped with the loaders.
CURATED_TABLE = Path(__file__).parent / "data" / "ansm_english_names.tsv"

#: French salt and anion words -> English (after folding).
SALT_WORDS = {
    "acetate": "acetate",
    "bicarbonate": "bicarbonate",
    "bromure": "bromide",
    "carbonate": "carbonate",
    "chlorhydrate": "hydrochloride",
    "chlorure": "chloride",
    "citrate": "citrate",
    "dinitrate": "dinitrate",
    "docusate": "docusate",
    "fluorure": "fluoride",
    "fumarate": "fumarate",
    "gluconate": "gluconate",
    "hydroxyde": "hydroxide",
    "iodure": "iodide",
    "lactate": "lactate",
    "mononitrate": "mononitrate",
    "nitrate": "nitrate",
    "nitroprussiate": "nitroprusside",
    "oxybate": "oxybate",
    "oxyde": "oxide",
    "phosphate": "phosphate",
    "picosulfate": "picosulfate",
    "ricinoleate": "ricinoleate",
    "sulfate": "sulfate",
    "trisilicate": "trisilicate",
}

#: French cation adjectives ('héparine sodique') -> the English cation ('heparin sodium').
CATION_ADJECTIVES = {
    "calcique": "calcium",
    "disodique": "disodium",
    "magnesique": "magnesium",
    "potassique": "potassium",
    "sodique": "sodium",
}

#: Words that qualify a salt or form and may be dropped to reach the base substance.
SALT_QUALIFIERS = frozenset({*CATION_ADJECTIVES.values(), "trometamol", "tromethamine"})

_PAREN = re.compile(r"^(?P<outer>[^()]+?)\s*\(\s*(?P<inner>[^()]+?)\s*\)\s*(?P<rest>.*)$")
DROP_PARENTHESIS = "drop (...)"
_SALT_OF = re.compile(r"^(?P<head>.+?) (?:de|d) (?P<tail>.+)$")
_MAX_CANDIDATES = 256


@dataclass(frozen=True)
class Candidate:
    """An English form of a French name and the rule that made it (``exact`` for none)."""

    text: str
    rule: str


@dataclass(frozen=True)
class NameMatch:
    """A French name matched to an id of a name index, through ``candidate``."""

    french: str
    target: str
    candidate: str
    rule: str

    @property
    def exact(self) -> bool:
        return self.rule == "exact"


@dataclass(frozen=True)
class CuratedName:
    """A row of the curated table: English names (preferred first), the vocabulary name to
    cross-link to (``""``: the first English name the vocabulary knows; ``"-"``: none), an
    optional Biolink category and a comment."""

    french: str
    english: tuple[str, ...]
    link: str
    category: str
    comment: str

    def link_names(self) -> tuple[str, ...]:
        """The names to try, in order, when cross-linking to the vocabulary."""
        if self.link == "-":
            return ()
        return (self.link,) if self.link else self.english


def fold(text: str) -> str:
    """Case, accents, ligatures and punctuation folded: 'Œstrogènes conjugués' ->
    'oestrogenes conjugues'."""
    return normalize_text(text.replace("œ", "oe").replace("Œ", "Oe").replace("æ", "ae"))


def _word_forms(word: str) -> list[tuple[str, str]]:
    """(form, rule) pairs for one folded French word, the word itself first."""
    forms = [(word, "")]
    if word in CATION_ADJECTIVES:
        forms.append((CATION_ADJECTIVES[word], "cation"))
    elif word in SALT_WORDS and SALT_WORDS[word] != word:
        forms.append((SALT_WORDS[word], "salt"))
    elif word.endswith("ique") and len(word) > 6:
        forms.append((word[:-4] + "ic", "-ique>-ic"))
    elif word.endswith("e") and len(word) > 4:
        forms.append((word[:-1], "-e"))  # warfarine, ibuprofene, trihexyphenidyle, topotecane
    if word.endswith("s") and len(word) > 5:
        forms.append((word[:-1], "plural"))
    return forms


def _reorderings(name: str) -> Iterator[tuple[str, str]]:
    """Whole-name rewrites of a folded name: acids, 'X de Y' salts, cation adjectives."""
    words = name.split()
    if len(words) >= 2 and words[0] == "acide":
        rest = " ".join(words[1:])
        stem = rest[:-4] if rest.endswith("ique") else rest
        yield f"{stem}ic acid", "acide X-ique>X-ic acid"
        yield f"{stem}ate", "acide X-ique>X-ate"
        return
    salt = _SALT_OF.match(name)
    if salt:
        yield f"{salt['tail']} {salt['head']}", "X de Y>Y X"
    if len(words) >= 2 and words[-1] in CATION_ADJECTIVES:
        cation = CATION_ADJECTIVES[words[-1]]
        base = " ".join(words[:-1])
        yield f"{cation} {base}", "X sodique>sodium X"


def _parenthesised(raw: str) -> Iterator[tuple[str, str]]:
    """'sodium (chlorure de)' -> 'chlorure de sodium'; 'abciximab (c 7e3b fab)' -> 'abciximab'."""
    m = _PAREN.match(raw.strip())
    if not m:
        return
    outer, inner, rest = m["outer"], m["inner"], m["rest"]
    inner_folded = fold(inner)
    if inner_folded.endswith((" de", " d")) or inner_folded in ("de", "d"):
        yield fold(f"{inner} {outer} {rest}"), "(X de)>X de"
    elif len(inner_folded.split()) == 1 and not rest:
        yield fold(f"{inner} {outer}"), "(X)>X"
    yield fold(f"{outer} {rest}"), DROP_PARENTHESIS


def english_candidates(french: str) -> list[Candidate]:
    """English forms of a French drug name, most literal first (at most a few hundred)."""
    bases: list[tuple[str, str]] = [(fold(french), "")]
    bases.extend(_parenthesised(french))
    for name, rule in list(bases):
        bases.extend((text, "+".join(filter(None, (rule, r)))) for text, r in _reorderings(name))
    best: dict[str, tuple[int, int, Candidate]] = {}
    for order, (name, base_rule) in enumerate(bases):
        choices = [_word_forms(w) for w in name.split()]
        for combo in itertools.islice(itertools.product(*choices), _MAX_CANDIDATES):
            text = " ".join(form for form, _ in combo)
            rules = [r for _, r in combo if r]
            rule = "+".join(filter(None, (base_rule, *dict.fromkeys(rules)))) or "exact"
            # Dropping words loses meaning: try it after every rewrite that keeps them.
            changes = len(rules) + (1 if base_rule else 0) + 10 * (DROP_PARENTHESIS in rule)
            if text and (text not in best or (changes, order) < best[text][:2]):
                best[text] = (changes, order, Candidate(text, rule))
    return [c for _, _, c in sorted(best.values(), key=lambda t: (t[0], t[1]))]


def other_members_of(french: str) -> str | None:
    """The class an ANSM "autres X" class stands beside: 'autres hypnotiques' -> 'hypnotiques',
    'fibrates (autres)' -> 'fibrates'; ANSM uses it for two different members of X."""
    words = fold(french).split()
    if len(words) >= 2 and words[0] == "autres":
        return " ".join(words[1:])
    if len(words) >= 2 and words[-1] == "autres":
        return " ".join(words[:-1])
    return None


def without_salt(english: str) -> str:
    """The base substance of an English salt name: 'heparin sodium' -> 'heparin'."""
    return " ".join(w for w in english.split() if w not in SALT_QUALIFIERS)


def match_english(french: str, index: Mapping[str, str]) -> NameMatch | None:
    """The first English candidate of ``french`` that ``index`` (folded name -> id) knows; the
    salt-free base ('dalteparin' for 'daltéparine sodique') is the last resort."""
    candidates = english_candidates(french)
    for cand in candidates:
        if cand.text in index:
            return NameMatch(french, index[cand.text], cand.text, cand.rule)
    for cand in candidates:
        base = without_salt(cand.text)
        if base and base != cand.text and base in index:
            return NameMatch(french, index[base], base, f"{cand.rule}+drop salt")
    return None


def load_curated(path: Path = CURATED_TABLE) -> dict[str, CuratedName]:
    """The curated table (TSV: french, english names separated by ';', link, category,
    comment; '#' lines are comments) by folded French name."""
    table: dict[str, CuratedName] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        for row in rows:
            english = tuple(e.strip() for e in row["english"].split(";") if e.strip())
            table[fold(row["french"])] = CuratedName(
                french=row["french"].strip(),
                english=english,
                link=(row.get("link") or "").strip(),
                category=(row.get("category") or "").strip(),
                comment=(row.get("comment") or "").strip(),
            )
    return table
