"""Ontology benchmark on the full KG: HermiT over the whole ontology, and a curator's publish.

    python bench/ontology.py [--store sqlite:///var/kg.sqlite] [--json]

Works on a copy of the KG file and a temporary ontology home, so nothing real is written.
Times: building the base ontology from the KG; HermiT over the full ontology (~23k classes);
writing a version's files; publishing a change set (a class-level rule between two ANSM
classes) with HermiT over its module, and with HermiT over the full ontology. Target: a publish
under 60 s. The baseline, timed in the same run, is reading the KG's ``member_of`` edges.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kg import open_store
from kg.model import Citation
from kg.settings import get_settings
from ontology.changes import ChangeSet
from ontology.publish import editor, init_ontology, publish
from ontology.reasoning import check
from ontology.schema import base_axioms
from ontology.versions import Repository

TARGET_PUBLISH_S = 60.0
T = TypeVar("T")
STATINS = "ANSM:inhibiteurs-de-l-hmg-coa-reductase-statines"
PPIS = "ANSM:antisecretoires-inhibiteurs-de-la-pompe-a-protons"


def rule_change(repo: Repository, n: int) -> ChangeSet:
    cs = ChangeSet.new("bench", f"bench rule {n}")
    ed = editor(repo, cs)
    src = ed.cite(Citation(f"guideline:bench-{n}", "guideline", "Benchmark guideline"))
    ed.add_rule(
        STATINS,
        PPIS,
        severity=("precaution", "consider")[n % 2],
        management="bench",
        source=src,
        section=str(n),
        date="2026-01-01",
        reason="bench",
    )
    return cs


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=get_settings().store_url)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    source = Path(args.store.removeprefix("sqlite:///"))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(source, Path(tmp) / "kg.sqlite")
        store = open_store(f"sqlite:///{Path(tmp) / 'kg.sqlite'}", create=False)
        _, baseline = timed(lambda: store.edges(predicate="biolink:member_of"))
        axioms, t_base = timed(lambda: base_axioms(store))
        full, t_full = timed(lambda: check(axioms, scope="full"))
        repo = Repository(root=Path(tmp) / "ontology")
        _, t_init = timed(lambda: init_ontology(repo, store, reason=False))
        m_module, t_module = timed(lambda: publish(repo, store, rule_change(repo, 1)))
        m_full, t_pub_full = timed(lambda: publish(repo, store, rule_change(repo, 2), scope="full"))
        store.close()
    result = {
        "classes": full.classes,
        "axioms": len(axioms),
        "reasoned_axioms": full.axioms,
        "coherent": full.ok,
        "baseline_member_of_read_s": round(baseline, 2),
        "base_from_kg_s": round(t_base, 2),
        "hermit_full_s": round(t_full, 2),
        "init_version_1_s": round(t_init, 2),
        "publish_module_s": round(t_module, 2),
        "publish_module_hermit_s": m_module["check"]["seconds"],
        "publish_module_classes": m_module["check"]["classes"],
        "publish_full_s": round(t_pub_full, 2),
        "publish_full_hermit_s": m_full["check"]["seconds"],
        "target_publish_s": TARGET_PUBLISH_S,
        "hermit_full_vs_baseline": round(t_full / baseline, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")
    if max(t_module, t_pub_full) > TARGET_PUBLISH_S:
        sys.exit(1)


if __name__ == "__main__":
    main()
