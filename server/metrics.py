"""Prometheus metrics of one app (own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

disable_created_metrics()  # the *_created series only add noise to every scrape

_OP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.ws_connections = Gauge("wsfs_ws_connections", "Open WebSocket connections", registry=r)
        self.subscriptions = Gauge("wsfs_subscriptions", "Live change subscriptions", registry=r)
        self.open_workspaces = Gauge("wsfs_open_workspaces", "Workspace stores currently open", registry=r)
        self.ws_messages = Counter("wsfs_ws_messages", "WebSocket messages", ["direction"], registry=r)
        self.ws_bytes = Counter("wsfs_ws_bytes", "WebSocket payload bytes", ["direction"], registry=r)
        self.ws_errors = Counter("wsfs_ws_errors", "Error frames sent", ["code"], registry=r)
        self.change_entries = Counter("wsfs_change_entries", "Change entries delivered to subscribers", registry=r)
        self.http_requests = Counter("wsfs_http_requests", "HTTP requests", ["method", "status"], registry=r)
        self.http_bytes = Counter("wsfs_http_bytes", "HTTP body bytes", ["direction"], registry=r)
        self.commits = Counter("wsfs_commits", "Store commits made by this server", registry=r)
        self.op_seconds = Histogram(
            "wsfs_op_seconds", "Store operation latency, queueing included", ["op"], buckets=_OP_BUCKETS, registry=r
        )
        self.ws_in = self.ws_messages.labels("in")
        self.ws_out = self.ws_messages.labels("out")
        self.ws_bytes_in = self.ws_bytes.labels("in")
        self.ws_bytes_out = self.ws_bytes.labels("out")

    @contextmanager
    def timed(self, op: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.op_seconds.labels(op).observe(time.perf_counter() - t0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
