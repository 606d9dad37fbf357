"""Signal learner throughput on clinosim records, in-process.

    python bench/signals.py [--records DIR] [--store sqlite:///var/kg.sqlite] [--repeat 5] [--json]

Reads FHIR R4 NDJSON (default: generates a clinosim population of catchment 250, seed 3, year
2024 into a temporary folder), links it to the KG, then times (best of ``--repeat``) a fresh
``SignalLearner`` learning every event, and the whole replay (event ids, stream position). The
baseline, timed in the same run, is a loop that only iterates the events; target: >= 5,000
events/s for the learner.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kg import open_store
from kg.settings import Settings, get_settings
from learners.signals import SignalLearner
from learners.state import new_state
from learners.stream import read_events, replay

TARGET_EVENTS_PER_S = 5_000.0
CLINOSIM = ["-p", "250", "-s", "3", "--start", "2024-01-01", "--end", "2024-12-31"]


def best_rate(run, events: list, repeat: int) -> float:
    """Events per second of ``run(events)``, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run(events)
        best = min(best, time.perf_counter() - started)
    return len(events) / best


def iterate(events: list) -> None:
    for _ in events:
        pass


def learn_all(events: list) -> None:
    learner = SignalLearner()
    for event in events:
        learner.learn_event(event)


def replay_all(events: list) -> None:
    replay(events, new_state({"signals": SignalLearner()}, Settings(pseudonym_salt="bench")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path)
    parser.add_argument("--store", default=get_settings().store_url)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    store = open_store(args.store, create=False)
    with tempfile.TemporaryDirectory() as tmp:
        records = args.records
        if records is None:
            print(f"generating clinosim {' '.join(CLINOSIM)} ...", file=sys.stderr)
            command = [sys.executable, "-m", "clinosim.simulator.cli", "simulate", "-o", tmp]
            subprocess.run(
                [*command, *CLINOSIM, "--format", "fhir-r4"], check=True, capture_output=True
            )
            records = Path(tmp) / "fhir_r4"
        events, _ = read_events(records, store, "bench")
    baseline = best_rate(iterate, events, args.repeat)
    learner = best_rate(learn_all, events, args.repeat)
    stream = best_rate(replay_all, events, args.repeat)
    results = {
        "events": len(events),
        "patients": len({e.patient_id for e in events}),
        "baseline_iterate_events_per_s": round(baseline),
        "signal_learner_events_per_s": round(learner),
        "replay_events_per_s": round(stream),
        "learner_over_baseline_time": round(baseline / learner, 1),
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "target_met": learner >= TARGET_EVENTS_PER_S,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{results['events']:,} events of {results['patients']} patients: signal learner "
        f"{learner:,.0f} events/s (target {TARGET_EVENTS_PER_S:,.0f}: "
        f"{'met' if results['target_met'] else 'MISSED'}), whole replay {stream:,.0f} events/s; "
        f"baseline (iterate only) {baseline:,.0f} events/s, the learner takes "
        f"{results['learner_over_baseline_time']}x its time"
    )


if __name__ == "__main__":
    main()
