"""HTTP load benchmark: CDS Hooks ``order-sign`` with 10 draft medications, against ``/healthz``.

    python bench/http_load.py [--kg var/kg.sqlite] [--duration 20] [--concurrency 4] [--json]

Starts the API (uvicorn, one worker) on a free loopback port as a subprocess over the KG file,
then runs a closed-loop load generator on this machine: ``--concurrency`` threads, each with
one keep-alive connection (``http.client``), send requests back to back for ``--duration``
seconds (at most ``--max-requests``). First ``/healthz`` (the baseline: the HTTP stack alone),
then ``order-sign`` with random lists of 10 drugs (RxNorm codes and names of drugs the KG
knows; every list differs up to 10,000 requests). Reports requests/s, p50/p99 latency, the
server's CPU time per request (and the requests/s one core could serve at that cost, which
other load on the machine does not change) and the ratios to the baseline. Targets: >= 200
requests/s with p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kg import open_store  # noqa: E402

TARGETS = {"requests_per_s": 200.0, "p99_ms": 50.0}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MAX_BODIES = 10_000  # distinct drug lists; cycled if a run sends more


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drug_pool(kg: Path) -> list[tuple[str, str]]:
    """(RxNorm code, name) of the RxNorm drugs linked to an ANSM substance."""
    store = open_store(f"sqlite:///{kg}", create=False)
    codes = [
        e.subject
        for e in store.edges(predicate="biolink:same_as")
        if e.subject.startswith("RXNORM:") and e.object.startswith("ANSM:")
    ]
    nodes = store.get_nodes(codes)
    store.close()
    return sorted({(c.split(":", 1)[1], nodes[c].name) for c in codes if c in nodes})


def order_sign(i: int, drugs: list[tuple[str, str]]) -> bytes:
    entries = [
        {
            "resource": {
                "resourceType": "MedicationRequest",
                "id": f"draft-{j}",
                "status": "draft",
                "intent": "order",
                "subject": {"reference": "Patient/bench"},
                "medicationCodeableConcept": {
                    "coding": [{"system": RXNORM, "code": code, "display": name}],
                    "text": name,
                },
            }
        }
        for j, (code, name) in enumerate(drugs)
    ]
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    body = {
        "hook": "order-sign",
        "hookInstance": f"bench-{i}",
        "context": {
            "userId": "Practitioner/bench",
            "patientId": "bench",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": entries},
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "bench", "birthDate": "1950-01-01"},
            "medications": empty,
            "allergies": empty,
            "conditions": empty,
        },
    }
    return json.dumps(body).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    port: int,
    path: str,
    headers: dict[str, str],
    bodies: list[bytes] | None,
    duration: float,
    concurrency: int,
    max_requests: int,
) -> dict:
    """Closed-loop load: each thread sends its next request when the previous one answered.
    The client is the standard library's (lighter than httpx, which would dominate here)."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + duration

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                t = time.perf_counter()
                if bodies is None:
                    conn.request("GET", path, headers=headers)
                else:
                    conn.request("POST", path, body=bodies[n % len(bodies)], headers=headers)
                response = conn.getresponse()
                response.read()
                spent = time.perf_counter() - t
                with lock:
                    latencies.append(spent)
                    if response.status != 200:
                        errors.append(response.status)
        finally:
            conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kg", type=Path, default=ROOT / "var" / "kg.sqlite")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--baseline-duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--warm-up", type=int, default=300, help="order-sign calls before timing")
    parser.add_argument("--meds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.kg.is_file():
        sys.exit(f"error: no KG at {args.kg}: build one with `evocdss kg build`")

    pool = drug_pool(args.kg)
    rng = random.Random(7)
    bodies = [order_sign(i, rng.sample(pool, args.meds)) for i in range(MAX_BODIES)]
    warm_bodies = [order_sign(-i, rng.sample(pool, args.meds)) for i in range(args.warm_up)]
    key = secrets.token_urlsafe(24)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "EVOCDSS_API_KEYS": f"{key}:clinician,{key}-admin:admin",
            "EVOCDSS_API_RATE_PER_SECOND": "1000000",
            "EVOCDSS_API_RATE_BURST": "1000000",
            "EVOCDSS_API_AUDIT_LOG": f"{tmp}/audit.log",
            "EVOCDSS_API_FEEDBACK_DB": f"{tmp}/feedback.sqlite",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "api.server", "--port", str(port), "--kg", str(args.kg)],
            cwd=ROOT,
            env=env,
        )
        try:
            _wait_ready(f"http://127.0.0.1:{port}", server)
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            hook = "/cds-services/order-sign"
            c = args.concurrency
            warm = load(port, hook, headers, warm_bodies, 120, c, args.warm_up)
            cpu = cpu_seconds(server.pid)
            health = load(
                port, "/healthz", headers, None, args.baseline_duration, c, args.max_requests
            )
            health["server_cpu_ms_per_request"] = _cpu_ms(server.pid, cpu, health)
            cpu = cpu_seconds(server.pid)
            sign = load(port, hook, headers, bodies, args.duration, c, args.max_requests)
            sign["server_cpu_ms_per_request"] = _cpu_ms(server.pid, cpu, sign)
        finally:
            server.terminate()
            server.wait(timeout=30)
    results = {
        "kg": str(args.kg),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "concurrency": args.concurrency,
        "medications_per_request": args.meds,
        "warm_up": {"requests": warm["requests"], "errors": warm["errors"]},
        "healthz": health,
        "order_sign": sign,
        "order_sign_capacity_per_core": round(1000 / sign["server_cpu_ms_per_request"], 1),
        "ratio_to_healthz": {
            "requests_per_s": round(sign["requests_per_s"] / health["requests_per_s"], 3),
            "p50": round(sign["p50_ms"] / health["p50_ms"], 1),
        },
        "meets_targets": {
            "requests_per_s": sign["requests_per_s"] >= TARGETS["requests_per_s"],
            "p99_ms": sign["p99_ms"] <= TARGETS["p99_ms"],
        },
    }
    print(json.dumps(results, indent=2 if args.json else None))


def _cpu_ms(pid: int, before: float, run: dict) -> float:
    return round((cpu_seconds(pid) - before) / run["requests"] * 1000, 3)


def _wait_ready(base: str, server: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: the server exited with code {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit("error: the server did not answer /healthz in time")


if __name__ == "__main__":
    main()
