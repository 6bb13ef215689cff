"""Prometheus metrics of one app (own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from bisect import bisect_left
from contextlib import contextmanager
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from server import gcpolicy

disable_created_metrics()  # the *_created series only add noise to every scrape

_OP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class WsCounters(Collector):
    """WebSocket traffic counters: plain attributes on the hot path, Prometheus families on scrape."""

    def __init__(self) -> None:
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = self.entries = 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        msgs = CounterMetricFamily("wsfs_ws_messages", "WebSocket messages", labels=["direction"])
        msgs.add_metric(["in"], self.messages_in)
        msgs.add_metric(["out"], self.messages_out)
        size = CounterMetricFamily("wsfs_ws_bytes", "WebSocket payload bytes", labels=["direction"])
        size.add_metric(["in"], self.bytes_in)
        size.add_metric(["out"], self.bytes_out)
        yield msgs
        yield size
        yield CounterMetricFamily("wsfs_change_entries", "Change entries delivered to subscribers", value=self.entries)


class _Count:
    """One labelled counter's value: a plain attribute bumped on the loop (no lock)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class PlainCounter(Collector):
    """A labelled Prometheus counter whose `inc` is an attribute add, not a locked update: bumped
    per request from the event loop (prometheus_client's `Counter.inc` takes a lock and walks a
    `ValueClass`; three or four of them per small write). `labels` returns the same child each time."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()):
        self.name, self.doc, self.label_names = name, doc, list(labels)
        self._children: dict[tuple[str, ...], _Count] = {}

    def labels(self, *values: str) -> _Count:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Count()
        return child

    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)

    def total(self) -> float:
        """The sum over every label set."""
        return sum(child.value for child in list(self._children.values()))

    def collect(self) -> Iterator[CounterMetricFamily]:
        fam = CounterMetricFamily(self.name, self.doc, labels=self.label_names)
        for values, child in list(self._children.items()):
            fam.add_metric(list(values), child.value)
        yield fam


class _Observed:
    """One labelled histogram's buckets and sum (see `PlainHistogram`)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class PlainHistogram(Collector):
    """A labelled Prometheus histogram observed with one bisect and two adds (no lock): for the
    per-operation timings of the loop. Exported as prometheus_client's `Histogram` would be
    (`le` inclusive, cumulative buckets, `_sum`, `_count`)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]):
        self.name, self.doc, self.label_names, self.bounds = name, doc, list(labels), tuple(buckets)
        self._children: dict[tuple[str, ...], _Observed] = {}

    def labels(self, *values: str) -> _Observed:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Observed(self.bounds)
        return child

    def collect(self) -> Iterator[HistogramMetricFamily]:
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.label_names)
        for values, child in list(self._children.items()):
            cumulative, buckets = 0, []
            for bound, n in zip(self.bounds, child.counts):
                cumulative += n
                buckets.append((repr(float(bound)), cumulative))
            buckets.append(("+Inf", cumulative + child.counts[-1]))
            fam.add_metric(list(values), buckets, child.sum)
        yield fam


class GcPauses(Collector):
    """`wsfs_gc_pause_seconds`: the garbage collector's pauses per generation, where `wsfs serve`
    times them (`gcpolicy.install`); nothing in a process that does not."""

    def collect(self) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        p = gcpolicy.pauses
        if p is None:
            return
        cpu = CounterMetricFamily("wsfs_gc_cpu_seconds", "CPU time of garbage collections (the pause when the "
                                  "process is not preempted)", labels=["generation"])
        fam = HistogramMetricFamily("wsfs_gc_pause_seconds", "Garbage collector pauses", labels=["generation"])
        fam_cpu = HistogramMetricFamily("wsfs_gc_pause_cpu_seconds", "CPU time of each garbage collection "
                                        "(a long pause with little CPU was a wait for a core)", labels=["generation"])
        for gen in range(3):
            fam.add_metric([str(gen)], _cumulative(p.buckets[gen], p.count[gen]), p.total[gen])
            fam_cpu.add_metric([str(gen)], _cumulative(p.cpu_buckets[gen], p.count[gen]), p.cpu[gen])
            cpu.add_metric([str(gen)], p.cpu[gen])
        yield fam
        yield fam_cpu
        yield cpu


def _cumulative(per_bucket: list[int], count: int) -> list[tuple[str, float]]:
    """Prometheus' cumulative buckets from counts per bucket (`gcpolicy.PAUSE_BUCKETS`), `+Inf` last."""
    cumulative, buckets = 0, []
    for bound, n in zip(gcpolicy.PAUSE_BUCKETS, per_bucket):
        cumulative += n
        buckets.append((repr(bound), cumulative))
    buckets.append(("+Inf", count))
    return buckets


class ChunkObjectCounters(Collector):
    """A cluster node's chunk objects in S3 (requests, bytes, its local cache), copied in at each scrape
    from the node's own counters (`server/cluster/chunkobjects.py`); nothing on a single node."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.cache_bytes = 0

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        if not self.counts:
            return
        calls = CounterMetricFamily("wsfs_cluster_chunk_requests", "S3 requests for chunk objects", labels=["op"])
        for op in ("put", "get", "delete"):
            calls.add_metric([op], self.counts.get(op, 0))
        moved = CounterMetricFamily("wsfs_cluster_chunk_bytes", "Chunk bytes sent to (out) and read from (in) S3",
                                    labels=["direction"])
        moved.add_metric(["out"], self.counts.get("put_bytes", 0))
        moved.add_metric(["in"], self.counts.get("get_bytes", 0))
        yield calls
        yield moved
        yield GaugeMetricFamily("wsfs_cluster_chunk_cache_bytes", "Chunk bytes in this node's on-disk cache",
                                value=self.cache_bytes)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.ws_connections = Gauge("wsfs_ws_connections", "Open WebSocket connections", registry=r)
        self.subscriptions = Gauge("wsfs_subscriptions", "Live change subscriptions", registry=r)
        self.open_workspaces = Gauge("wsfs_open_workspaces", "Workspace stores currently open", registry=r)
        # The per-message counters are plain ints bumped on the hot path (a
        # prometheus_client Counter takes a lock per inc) and exported at scrape time.
        self.ws = WsCounters()
        r.register(self.ws)
        self.ws_errors = Counter("wsfs_ws_errors", "Error frames sent", ["code"], registry=r)
        # what every small write bumps: plain attributes, exported at scrape time (event loop only)
        self.http_requests = PlainCounter("wsfs_http_requests", "HTTP requests", ("method", "status"))
        self.http_bytes = PlainCounter("wsfs_http_bytes", "HTTP body bytes", ("direction",))
        self.http_in = self.http_bytes.labels("in")
        self.http_out = self.http_bytes.labels("out")
        self.commits = PlainCounter("wsfs_commits", "Store commits made by this server")
        # where write jobs ran: a small write on the loop, anything else (or one queued behind a
        # job that was not small) in the writer pool (server/writers.py)
        self.write_jobs = PlainCounter("wsfs_write_jobs", "Write jobs run, by where they ran", ("where",))
        self.jobs_on_loop = self.write_jobs.labels("loop")
        self.jobs_in_pool = self.write_jobs.labels("pool")
        self.op_seconds = PlainHistogram("wsfs_op_seconds", "Store operation latency, queueing included", ("op",),
                                         _OP_BUCKETS)
        for collector in (self.http_requests, self.http_bytes, self.commits, self.write_jobs, self.op_seconds):
            r.register(collector)

        self._ops: dict[str, Any] = {}
        # cluster mode (server/cluster/): ownership and durable acknowledgements
        self.cluster_owned = Gauge("wsfs_cluster_owned_workspaces", "Workspaces this node owns", registry=r)
        self.cluster_ack_seconds = Histogram(
            "wsfs_cluster_ack_seconds", "Commit to durable acknowledgement (replication sync + fence check)",
            buckets=_OP_BUCKETS, registry=r)
        self.cluster_ack_failures = Counter("wsfs_cluster_ack_failures", "Writes committed but refused (503 EAGAIN)",
                                            registry=r)
        self.cluster_proxied = Gauge("wsfs_cluster_proxied", "Requests and sockets proxied to other nodes", registry=r)
        r.register(GcPauses())
        self.chunk_objects = ChunkObjectCounters()
        r.register(self.chunk_objects)

    def op(self, op: str) -> Any:
        """`op_seconds` for one op (its labelled child, looked up once: `labels` takes a lock)."""
        child = self._ops.get(op)
        if child is None:
            child = self._ops[op] = self.op_seconds.labels(op)
        return child

    @contextmanager
    def timed(self, op: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.op(op).observe(time.perf_counter() - t0)

    def work(self) -> int:
        """Requests and commits served so far (HTTP requests, WebSocket messages in, store commits): what
        tells the garbage-collection policy a second was busy (`gcpolicy.tick`)."""
        return int(self.http_requests.total() + self.ws.messages_in + self.commits.total())

    def render(self) -> bytes:
        return generate_latest(self.registry)
