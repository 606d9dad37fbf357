"""Eligibility criteria as structure: split a trial's criteria text into inclusion and exclusion
items, and turn each item into checks (age, sex, conditions, drugs, labs with canonical units,
time windows, pregnancy, consent), with negation. What cannot be structured stays as text and
is marked for review.

Concept mentions are found with a ``Lexicon``: the KG's disease, phenotype and drug names
(exact, normalised, longest match first), so a mention carries the KG node ids it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kg.store import GraphStore
from kg.vocab import normalize_text

LEXICON_CATEGORIES = {
    "biolink:Disease": "condition",
    "biolink:PhenotypicFeature": "condition",
    "biolink:Drug": "drug",
    "biolink:SmallMolecule": "drug",
    "biolink:DrugClass": "drug",
}
#: Names too generic to be a clinical mention on their own.
_STOP_WORDS = """
all other normal patient patients disease diseases syndrome disorder disorders
history age male female women men study trial treatment therapy use test tests level
levels stage type drug drugs agent agents water oxygen blood serum day days year
years month months week weeks time severe mild moderate acute chronic known active
current control new positive negative signs sign symptoms symptom death weight form
abnormal abnormality increased decreased high low medical condition conditions left
right bilateral unilateral episodic position healthy progressive generalized
recurrent onset elevated
"""
STOP_NAMES = frozenset(_STOP_WORDS.split())
MAX_TOKENS = 8


@dataclass(frozen=True)
class Mention:
    """A span of text that names KG nodes (``kind`` is ``condition`` or ``drug``)."""

    text: str
    start: int
    end: int
    kind: str
    nodes: tuple[str, ...]
    negated: bool = False
    history: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "kind": self.kind,
            "nodes": list(self.nodes),
            "negated": self.negated,
            "history": self.history,
        }


@dataclass
class Lexicon:
    """Normalised KG names -> node ids (by kind), for finding mentions in free text."""

    names: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    @classmethod
    def from_store(cls, store: GraphStore) -> Lexicon:
        """Every disease, phenotype and drug name and synonym of the KG (English or bare)."""
        found: dict[str, tuple[str, list[str]]] = {}
        for node in store.iter_nodes():
            kind = LEXICON_CATEGORIES.get(node.category)
            if kind is None:
                continue
            texts = [node.name, *(s.text for s in node.synonyms if s.lang == "en")]
            for text in texts:
                norm = normalize_text(text)
                if not _usable(text, norm):
                    continue
                entry = found.setdefault(norm, (kind, []))
                if entry[0] != kind and kind == "condition":
                    entry = found[norm] = (kind, [])
                if entry[0] == kind and node.id not in entry[1]:
                    entry[1].append(node.id)
        return cls({k: (kind, tuple(ids[:20])) for k, (kind, ids) in found.items()})

    def find(self, text: str) -> list[Mention]:
        """Mentions in ``text``, longest match first, not overlapping."""
        tokens = [(m.group(0), m.start(), m.end()) for m in re.finditer(r"[^\W_]+", text)]
        norms = [normalize_text(t[0]) for t in tokens]
        out: list[Mention] = []
        i = 0
        while i < len(tokens):
            for n in range(min(MAX_TOKENS, len(tokens) - i), 0, -1):
                key = " ".join(norms[i : i + n])
                hit = self.names.get(key) or (
                    self.names.get(key[:-1]) if key.endswith("s") and len(key) > 4 else None
                )
                if hit:
                    start, end = tokens[i][1], tokens[i + n - 1][2]
                    out.append(Mention(text[start:end], start, end, hit[0], hit[1]))
                    i += n
                    break
            else:
                i += 1
        return out


def _usable(text: str, norm: str) -> bool:
    if not norm or norm in STOP_NAMES or norm.isdigit():
        return False
    if len(norm) < 4:
        return text.isupper() and len(norm) >= 3
    return len(norm.split()) <= MAX_TOKENS


_LEXICONS: dict[tuple[str, int], Lexicon] = {}


def lexicon_for(store: GraphStore) -> Lexicon:
    """The store's lexicon, built once per KG version."""
    key = (store.url, store.version())
    if key not in _LEXICONS:
        _LEXICONS.clear()
        _LEXICONS[key] = Lexicon.from_store(store)
    return _LEXICONS[key]


# --- negation and history -------------------------------------------------------------------

NEGATION = re.compile(
    r"\b(no|not|non|without|denie[sd]|deny|denying|negative for|absence of|free of|never|"
    r"none|neither|nor|ruled out|rules out|unremarkable for)\b",
    re.I,
)
HISTORY = re.compile(r"\b(history of|h/o|previous(ly)?|prior|past|formerly|had been)\b", re.I)
SCOPE_END = re.compile(r"[.;:]|\b(but|however|although|except|presents?|with|who|which)\b", re.I)


def mark_context(text: str, mentions: list[Mention]) -> list[Mention]:
    """Set ``negated`` / ``history`` on mentions inside a negation or history scope (a trigger
    before the mention in the same clause, as NegEx does)."""
    out = []
    for m in mentions:
        before = text[max(0, m.start - 80) : m.start]
        clause = SCOPE_END.split(before)[-1] if SCOPE_END.search(before) else before
        negated = bool(NEGATION.search(clause))
        history = bool(HISTORY.search(clause))
        out.append(
            Mention(m.text, m.start, m.end, m.kind, m.nodes, negated=negated, history=history)
        )
    return out


# --- labs, units ----------------------------------------------------------------------------

#: Lab name pattern -> (canonical lab name, canonical unit).
LABS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"creatinine clearance|crcl|cr\s?cl", re.I), "creatinine clearance", "mL/min"),
    (re.compile(r"\begfr\b|glomerular filtration rate|\bgfr\b", re.I), "eGFR", "mL/min/1.73m2"),
    (
        re.compile(r"absolute neutrophil count|\banc\b|neutrophils?(?: count)?", re.I),
        "absolute neutrophil count",
        "10^9/L",
    ),
    (re.compile(r"platelets?(?: count)?|\bplt\b", re.I), "platelet count", "10^9/L"),
    (
        re.compile(r"white blood cells?(?: count)?|\bwbc\b|leukocytes?", re.I),
        "white blood cell count",
        "10^9/L",
    ),
    (re.compile(r"h(a)?emoglobin a1c|hba1c|\ba1c\b|glycated h(a)?emoglobin", re.I), "HbA1c", "%"),
    (re.compile(r"h(a)?emoglobin|\bhgb\b|\bhb\b", re.I), "hemoglobin", "g/dL"),
    (re.compile(r"(serum )?creatinine|\bscr\b", re.I), "creatinine", "mg/dL"),
    (re.compile(r"(total )?bilirubin", re.I), "bilirubin", "mg/dL"),
    (re.compile(r"\balt\b|alanine aminotransferase|\bsgpt\b", re.I), "ALT", "U/L"),
    (re.compile(r"\bast\b|aspartate aminotransferase|\bsgot\b", re.I), "AST", "U/L"),
    (re.compile(r"\binr\b", re.I), "INR", "ratio"),
    (re.compile(r"(fasting )?(plasma |blood )?glucose", re.I), "glucose", "mg/dL"),
    (re.compile(r"\bpotassium\b", re.I), "potassium", "mmol/L"),
    (re.compile(r"\bsodium\b", re.I), "sodium", "mmol/L"),
    (re.compile(r"\bbmi\b|body mass index", re.I), "BMI", "kg/m2"),
    (re.compile(r"\blvef\b|(left ventricular )?ejection fraction", re.I), "LVEF", "%"),
    (re.compile(r"systolic (blood )?pressure|\bsbp\b", re.I), "systolic blood pressure", "mmHg"),
    (re.compile(r"\bpsa\b|prostate.specific antigen", re.I), "PSA", "ng/mL"),
]
NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:[.,]\d+)?)"
UNIT = (
    r"(x\s?10\^?\s?\d+\s?/\s?[lµu]l?|×\s?10\^?\s?\d+\s?/\s?[lµu]l?|10\^?\d+\s?/\s?l|"
    r"cells?\s?/\s?(?:mm3|mm\^3|µl|ul|mcl)|/\s?(?:mm3|mm\^3|µl|ul|mcl)|"
    r"ml\s?/\s?min(?:\s?/\s?1[.,]73\s?m2?)?|mg\s?/\s?dl|g\s?/\s?dl|g\s?/\s?l|mmol\s?/\s?l|"
    r"[µu]mol\s?/\s?l|mmol\s?/\s?mol|u\s?/\s?l|iu\s?/\s?l|ng\s?/\s?ml|kg\s?/\s?m2|mm\s?hg|%|"
    r"x\s?uln|×\s?uln|times (?:the )?(?:upper limit of normal|uln)|uln)?"
)
COMPARATORS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"≥|>=|=>|greater than or equal to|at least|no less than|not less than", re.I),
        ">=",
    ),
    (
        re.compile(r"≤|<=|=<|less than or equal to|at most|no more than|not more than|up to", re.I),
        "<=",
    ),
    (re.compile(r">|greater than|more than|above|over|exceeding|higher than", re.I), ">"),
    (re.compile(r"<|less than|below|under|lower than", re.I), "<"),
]
COMPARATOR = (
    r"(≥|>=|=>|≤|<=|=<|>|<|greater than or equal to|less than or equal to|greater than|"
    r"less than|more than|at least|at most|no less than|not less than|no more than|"
    r"not more than|above|below|over|under|exceeding|higher than|lower than|up to)"
)
LAB_VALUE = re.compile(rf"^[^.;\d]{{0,40}}?{COMPARATOR}\s*(?:of\s*)?{NUMBER}\s*{UNIT}", re.I)


def normalize_unit(unit: str) -> str:
    u = re.sub(r"\s+", "", unit.lower()).replace("×", "x").replace("µ", "u").replace("mcl", "ul")
    if "uln" in u or "upperlimit" in u:
        return "xULN"
    return u


def to_canonical(lab: str, value: float, unit: str) -> tuple[float, str] | None:
    """``value unit`` of ``lab`` in the lab's canonical unit, or None when the unit does not
    convert (an unknown unit, or a multiple of the upper limit of normal)."""
    canonical = next((c for _, name, c in LABS if name == lab), "")
    u = normalize_unit(unit)
    if not u or u == normalize_unit(canonical):
        return value, canonical
    if u == "xULN":
        return None
    if canonical == "10^9/L":
        if re.fullmatch(r"x?10\^?9/l|x10\^?3/ul|x10\^?3/mm3|10\^?3/ul", u):
            return value, canonical
        if re.fullmatch(r"(cells?)?/(mm3|mm\^3|ul)", u):
            return value / 1000, canonical
    if canonical == "g/dL" and u == "g/l":
        return value / 10, canonical
    if canonical == "g/dL" and u == "mmol/l":
        return round(value * 1.611, 3), canonical
    if lab == "creatinine" and u in ("umol/l",):
        return round(value / 88.4, 3), canonical
    if lab == "bilirubin" and u in ("umol/l",):
        return round(value / 17.1, 3), canonical
    if lab == "glucose" and u == "mmol/l":
        return round(value * 18.0, 1), canonical
    if canonical in ("mL/min", "mL/min/1.73m2") and u.startswith("ml/min"):
        return value, canonical
    if canonical == "U/L" and u == "iu/l":
        return value, canonical
    if canonical == "%" and u == "mmol/mol":
        return round(value / 10.929 + 2.15, 2), canonical
    return None


def parse_labs(text: str) -> list[dict[str, Any]]:
    """Lab thresholds in a criterion: ``hemoglobin >= 9 g/dL`` and the like, canonicalised."""
    out: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for pattern, lab, _unit in LABS:
        for m in pattern.finditer(text):
            v = LAB_VALUE.match(text[m.end() :])
            if not v:
                continue
            op = next(o for p, o in COMPARATORS if p.fullmatch(v.group(1).strip()))
            if any(a <= m.start() < b for a, b in spans):
                continue
            spans.append((m.start(), m.end() + v.end()))
            number = v.group(2)
            value = float(
                number.replace(",", "")
                if re.search(r",\d{3}$", number)
                else number.replace(",", ".")
            )
            unit = (v.group(3) or "").strip()
            check: dict[str, Any] = {"kind": "lab", "lab": lab, "op": op, "value": value}
            check["unit"] = unit
            converted = to_canonical(lab, value, unit)
            if converted is not None:
                check["canonical_value"], check["canonical_unit"] = converted
            elif normalize_unit(unit) == "xULN":
                check["canonical_value"], check["canonical_unit"] = value, "xULN"
            out.append(check)
            break
    return out


# --- age, sex, windows, pregnancy, consent --------------------------------------------------

AGE_RANGE = re.compile(
    r"(?:age[ds]?|aged)?\s*(?:between\s*)?(\d{1,3})\s*(?:years?|yrs?)?\s*(?:-|–|to|and)\s*"
    r"(\d{1,3})\s*(?:years?|yrs?)",
    re.I,
)
AGE_MIN = re.compile(
    r"(?:(?:≥|>=|>|at least|older than|over|above|minimum(?: age)? of)\s*(\d{1,3})\s*"
    r"(?:years?|yrs?)|(\d{1,3})\s*(?:years?|yrs?)(?: of age)?\s*(?:or|and)\s*(?:older|over|above))",
    re.I,
)
AGE_MAX = re.compile(
    r"(?:(?:≤|<=|<|younger than|under|below|less than|up to)\s*(\d{1,3})\s*(?:years?|yrs?)|"
    r"(\d{1,3})\s*(?:years?|yrs?)(?: of age)?\s*(?:or|and)\s*(?:younger|under|below))",
    re.I,
)
AGE_WORD = re.compile(r"\bage|aged|years? old|years? of age|\byrs\b|adults?\b", re.I)
WINDOW = re.compile(
    r"(?:within|in|during|over)\s*(?:the\s*)?(?:last|past|previous|preceding|prior)?\s*"
    r"(\d+|one|two|three|four|five|six|twelve)\s*(days?|weeks?|months?|years?)|"
    r"<\s*(\d+)\s*(days?|weeks?|months?|years?)",
    re.I,
)
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "twelve": 12}
DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
PREGNANCY = re.compile(r"pregnan|breast.?feed|lactat|nursing|child.?bearing|contracepti", re.I)
CONSENT = re.compile(r"informed consent|consent form|\bconsent\b|comply|complian|willing", re.I)
FEMALE = re.compile(r"\b(female|women|woman|girls?)\b", re.I)
MALE = re.compile(r"\b(male|men|man|boys?)\b", re.I)


def parse_age(text: str) -> dict[str, Any] | None:
    """Age bounds (years) where the text speaks of age."""
    if not AGE_WORD.search(text):
        return None
    if m := AGE_RANGE.search(text):
        return {"kind": "age", "min": float(m.group(1)), "max": float(m.group(2))}
    low, high = AGE_MIN.search(text), AGE_MAX.search(text)
    if not (low or high):
        return None
    check: dict[str, Any] = {"kind": "age", "min": None, "max": None}
    if low:
        check["min"] = float(low.group(1) or low.group(2))
    if high:
        check["max"] = float(high.group(1) or high.group(2))
    return check


def parse_sex(text: str) -> dict[str, Any] | None:
    female, male = bool(FEMALE.search(text)), bool(MALE.search(text))
    if PREGNANCY.search(text) or not (female or male):
        return None
    sex = "all" if female and male else "female" if female else "male"
    return {"kind": "sex", "sex": sex}


def parse_window(text: str) -> dict[str, Any] | None:
    m = WINDOW.search(text)
    if not m:
        return None
    number, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    n = WORDS.get(number.lower()) or int(number)
    return {"kind": "window", "days": n * DAYS[unit.lower().rstrip("s")], "text": m.group(0)}


# --- criteria --------------------------------------------------------------------------------


@dataclass
class Criterion:
    """One eligibility criterion: its type, text and the checks parsed from it."""

    type: str  # inclusion | exclusion
    index: int  # 1-based within its type
    text: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def structured(self) -> bool:
        return bool(self.checks)

    @property
    def code(self) -> str:
        return f"{self.type[0]}{self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "index": self.index,
            "text": self.text,
            "checks": self.checks,
            "review": not self.checks,
        }


def parse_criterion(text: str, type_: str, index: int, lexicon: Lexicon | None) -> Criterion:
    """The checks of one criterion (none: kept as text, to review)."""
    checks: list[dict[str, Any]] = []
    if age := parse_age(text):
        checks.append(age)
    if sex := parse_sex(text):
        checks.append(sex)
    checks += parse_labs(text)
    if PREGNANCY.search(text):
        checks.append({"kind": "pregnancy"})
    if CONSENT.search(text):
        checks.append({"kind": "consent"})
    if lexicon is not None:
        has_lab = any(c["kind"] == "lab" for c in checks)
        for m in mark_context(text, lexicon.find(text)):
            if has_lab and any(p.fullmatch(m.text) for p, _, _ in LABS):
                continue
            checks.append({"kind": m.kind, **m.to_dict()})
    if checks and (window := parse_window(text)):
        checks.append(window)
    return Criterion(type_, index, text, checks)


HEADER = re.compile(
    r"^\W*(inclusion|exclusion)(?:\s+criteria)?(?:\s+includes?)?\s*[:\-]?\s*$"
    r"|\b(inclusion|exclusion)\s+criteria(?:\s+includes?)?\s*:"
    r"|^\W*(inclusion|exclusion)\s*:",
    re.I | re.M,
)
BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)]|[a-z][.)])\s+", re.I)


def split_criteria(text: str) -> list[tuple[str, str]]:
    """(type, text) of each criterion; text without section headers is all inclusion."""
    parts: list[tuple[str, str]] = []
    current = "inclusion"
    pos = 0
    for m in HEADER.finditer(text):
        parts.append((current, text[pos : m.start()]))
        current = next(g for g in m.groups() if g).lower()
        pos = m.end()
    parts.append((current, text[pos:]))
    out: list[tuple[str, str]] = []
    for type_, body in parts:
        for item in _items(body):
            out.append((type_, item))
    return out


def _items(body: str) -> list[str]:
    """Bulleted or paragraph items, wrapped lines joined; empty bullets and bare lead-ins
    ("Patients must have:") dropped."""
    items: list[list[str]] = []
    new = True
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            new = True
            continue
        bullet = BULLET.match(line)
        if bullet:
            line = line[bullet.end() :].strip()
            new = True
        if not line or line in "-*•":
            continue
        if new or not items:
            items.append([line])
        else:
            items[-1].append(line)
        new = False
    texts = [" ".join(i).strip() for i in items]
    return [t for t in texts if len(t) > 3 and not t.endswith(":")]


def parse_criteria(text: str, lexicon: Lexicon | None = None) -> list[Criterion]:
    """Every criterion of a trial's criteria text, with its checks."""
    counts = {"inclusion": 0, "exclusion": 0}
    out = []
    for type_, item in split_criteria(text):
        counts[type_] += 1
        out.append(parse_criterion(item, type_, counts[type_], lexicon))
    return out


def coverage(criteria: list[Criterion]) -> float:
    """Share of criteria with at least one structured check."""
    return sum(c.structured for c in criteria) / len(criteria) if criteria else 0.0
