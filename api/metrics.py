"""Prometheus metrics of the HTTP API (one registry per app, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request counts and latencies by route, cards by service and indicator, KG version."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "evocdss_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "evocdss_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cards = Counter(
            "evocdss_cds_cards",
            "CDS Hooks cards returned, by service and indicator.",
            ["service", "indicator"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "evocdss_cds_feedback",
            "CDS Hooks feedback received, by service and outcome.",
            ["service", "outcome"],
            registry=self.registry,
        )
        self.kg_version = Gauge(
            "evocdss_kg_version", "The KG version the last request used.", registry=self.registry
        )

    def observe(
        self, method: str, route: str, status: int, seconds: float, version: int | None
    ) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if version is not None:
            self.kg_version.set(version)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
