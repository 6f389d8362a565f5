"""Prometheus metrics (``GET /metrics``): gateway traffic and connection health.

Labels name connections and their types, never keys. The gateway updates counters in memory
(label children cached per connection and source, so a request costs a few dictionary lookups);
health is read from the gateway's directory and the tester's last statuses at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STATUSES = ("active", "inactive", "error", "testing", "unknown")

# What the health collector needs: (name, type, is_active, status) of every connection.
HealthSource = Callable[[], Iterable[tuple[str, str, bool, str]]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ump_gateway_requests",
            "Gateway calls by connection, source and outcome.",
            ["connection", "connection_type", "source", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ump_gateway_errors",
            "Failed gateway calls by connection and error kind.",
            ["connection", "kind"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "ump_gateway_tokens",
            "Tokens reported by upstreams, by connection and direction.",
            ["connection", "direction"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ump_gateway_request_duration_seconds",
            "Gateway call latency by connection.",
            ["connection"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "ump_gateway_time_to_first_token_seconds",
            "Time to first streamed token.",
            ["connection"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, bool], tuple[Any, ...]] = {}

    def watch_health(self, source: HealthSource) -> None:
        self.registry.register(_HealthCollector(source))

    def observe(
        self,
        name: str,
        connection_type: str,
        source: str,
        *,
        latency_ms: float,
        ttft_ms: float | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        error_kind: str | None,
    ) -> None:
        key = (name, source, error_kind is None)  # a renamed connection gets new children
        children = self._children.get(key)
        if children is None:
            outcome = "success" if error_kind is None else "error"
            children = self._children[key] = (
                self.requests.labels(name, connection_type, source, outcome),
                self.latency.labels(name),
                self.ttft.labels(name),
                self.tokens.labels(name, "prompt"),
                self.tokens.labels(name, "completion"),
            )
        requests, latency, ttft, prompt, completion = children
        requests.inc()
        latency.observe(latency_ms / 1000)
        if ttft_ms is not None:
            ttft.observe(ttft_ms / 1000)
        if prompt_tokens:
            prompt.inc(prompt_tokens)
        if completion_tokens:
            completion.inc(completion_tokens)
        if error_kind is not None:
            self.errors.labels(name, error_kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _HealthCollector(Collector):
    def __init__(self, source: HealthSource) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "ump_connection_up",
            "1 when the connection is active and not in error.",
            labels=["connection", "connection_type"],
        )
        status = GaugeMetricFamily(
            "ump_connection_status",
            "1 for the connection's current status.",
            labels=["connection", "connection_type", "status"],
        )
        for name, kind, is_active, current in self._source():
            up.add_metric([name, kind], 1.0 if is_active and current != "error" else 0.0)
            for value in STATUSES:
                status.add_metric([name, kind, value], 1.0 if value == current else 0.0)
        yield up
        yield status
