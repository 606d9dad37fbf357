"""ICD-10-CM (CDC/NCHS, public domain) from the ``simple-icd-10-cm`` package: codes and hierarchy.

Node ids:

- categories and subcategories keep their dotted code: ``ICD10CM:E11``, ``ICD10CM:E11.9``,
  ``ICD10CM:S62.90XA`` (codes with a 7th character are subcategories too);
- blocks keep their range: ``ICD10CM:E08-E13``. In 39 places a block holds a single category
  and the release names the block after it (block ``B99`` holds category ``B99``); such a block
  becomes ``ICD10CM:B99-B99`` so that the category keeps its own code;
- chapters are numbered in the release (``4``), which would make poor ids; a chapter takes the
  range it covers instead, as UMLS and BioPortal name them: chapter 4 is ``ICD10CM:E00-E89``.

Chapter-level categories: symptoms and abnormal findings (R00-R99) and factors influencing
health status (Z00-Z99) are ``biolink:ClinicalFinding``, external causes (V00-Y99) are events,
not conditions (``biolink:NamedThing``); everything else is ``biolink:Disease``.
"""

from __future__ import annotations

import re
from datetime import datetime
from importlib.metadata import version

from ingest.source import SourceBatch
from kg.model import Citation, Edge, Node, Synonym
from kg.settings import Settings
from kg.vocab import SUBCLASS_OF

CITATION_ID = "src:icd10cm"

#: Biolink category by chapter number where it is not ``biolink:Disease``.
CHAPTER_CATEGORIES = {
    "18": "biolink:ClinicalFinding",  # R00-R99 symptoms, signs and abnormal findings
    "20": "biolink:NamedThing",  # V00-Y99 external causes of morbidity
    "21": "biolink:ClinicalFinding",  # Z00-Z99 factors influencing health status
}

_CHAPTER_RANGE = re.compile(r"\(([A-Z0-9]{3}-[A-Z0-9]{3})\)$")
_RELEASE_FILE = re.compile(r"([A-Z][a-z]+)-(\d{1,2})-(\d{4})\.xml$")


def load_icd10cm(settings: Settings | None = None) -> SourceBatch:
    """ICD-10-CM chapters, blocks, categories and subcategories with ``subclass_of`` edges
    from each code to its parent (about 98.5k nodes and edges)."""
    from simple_icd_10_cm import simple_icd_10_cm as icd

    batch = SourceBatch(name="icd10cm", citation=_citation(icd))
    ids: dict[str, str] = {}  # code in the release -> node id of the last node listed with it
    chapter = ""
    seen: set[str] = set()
    for code in icd.get_all_codes():
        is_second = code in seen  # a category listed after the homonymous block that holds it
        seen.add(code)
        if icd.is_chapter(code):
            chapter = code
            kind, description = "chapter", icd.get_description(code)
            node_id = "ICD10CM:" + _chapter_range(code, description)
            parent = ""
        elif icd.is_block(code) and not is_second:
            kind = "block"
            description = icd.get_description(code, prioritize_blocks=True)
            local = code if "-" in code else f"{code}-{code}"
            if local != code:
                batch.issue("block-named-like-its-category", f"{code} -> ICD10CM:{local}")
            node_id = "ICD10CM:" + local
            parent = ids[icd.get_parent(code, prioritize_blocks=True)]
        else:
            kind = "category" if icd.is_category(code) else "subcategory"
            description = icd.get_description(code)
            node_id = "ICD10CM:" + code
            parent = ids[icd.get_parent(code)]
        ids[code] = node_id
        if not description:
            batch.issue("missing-description", code)
        billable = kind in ("category", "subcategory") and icd.is_leaf(code)
        properties: dict[str, object] = {"billable": billable, "kind": kind}
        if kind == "chapter":
            properties["chapter"] = code
        terms = icd.get_inclusion_term(code, prioritize_blocks=kind == "block")
        synonyms = tuple(Synonym(t) for t in dict.fromkeys(terms) if t != description)
        batch.nodes.append(
            Node(
                id=node_id,
                category=CHAPTER_CATEGORIES.get(chapter, "biolink:Disease"),
                name=description or code,
                synonyms=synonyms,
                properties=properties,
            )
        )
        if parent:
            batch.edges.append(Edge(node_id, SUBCLASS_OF, parent, citations=(CITATION_ID,)))
    return batch


def _chapter_range(number: str, description: str) -> str:
    match = _CHAPTER_RANGE.search(description)
    if not match:
        raise ValueError(f"ICD-10-CM chapter {number} has no code range in {description!r}")
    return match.group(1)


def _citation(icd: object) -> Citation:
    """The release the package ships, read from its data file name (e.g. April 1, 2026)."""
    tabular = getattr(icd, "_classification_data_package_file_name", "")
    match = _RELEASE_FILE.search(tabular)
    if not match:
        raise ValueError(f"cannot tell the ICD-10-CM release from the data file {tabular!r}")
    released = datetime.strptime(" ".join(match.groups()), "%B %d %Y").date()
    fiscal_year = released.year + (released.month >= 10)  # the FY starts on October 1
    return Citation(
        id=CITATION_ID,
        kind="database",
        title="ICD-10-CM: International Classification of Diseases, Tenth Revision, "
        "Clinical Modification (CDC/NCHS)",
        version=f"FY{fiscal_year} ({released:%B} {released.day}, {released.year} update)",
        date=released.isoformat(),
        url="https://www.cdc.gov/nchs/icd/icd-10-cm/",
        license="public domain",
        details={"package": f"simple-icd-10-cm {version('simple-icd-10-cm')}", "file": tabular},
    )
