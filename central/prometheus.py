"""Prometheus exposition of `laps-central ingest` (`[metrics] prometheus_port`).

    laps_central_ingest_messages_total{outcome}   counter: messages this process committed, by
                                                  outcome "stored", "duplicate", "quarantined"
                                                  (rate() = ingest rate)
    laps_central_ingest_commits_total             counter: store transactions
    laps_central_ingest_store_errors_total        counter: commits that failed and were retried
    laps_central_ingest_lag_seconds               summary: segment end (device clock) -> commit
    laps_central_ingest_lag_last_max_seconds      gauge: the largest lag in the last commit
    laps_central_ingest_queued_messages           gauge: received, not yet committed
    laps_central_ingest_workers / _connected_workers  gauges
    laps_central_store_segments                   gauge: segments in the store (all processes)
    laps_central_store_quarantined_messages       gauge: quarantined messages in the store
    laps_central_store_size_bytes                 gauge: the SQLite file with its -wal and -shm

The `_total` counters count since this process started (per process, as Prometheus expects);
the store gauges are what the store holds, whoever wrote it. A custom collector reads the
workers and the store at scrape time; the registry is this process's own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from edge.prometheus import MetricsServer

if TYPE_CHECKING:  # pragma: no cover
    from central.ingest import IngestWorker
    from central.store_protocol import CentralStore


class IngestCollector:
    """Reads the ingest workers of this process and their store at scrape time."""

    def __init__(self, workers: Sequence["IngestWorker"], store: "CentralStore") -> None:
        self.workers = list(workers)
        self.store = store

    def collect(self) -> Iterator[Metric]:
        ws = self.workers

        def total(key: str) -> int:
            return sum(w.stats[key] for w in ws)

        msgs = CounterMetricFamily("laps_central_ingest_messages_total",
                                   "Segment messages committed by this process, by outcome.", labels=["outcome"])
        msgs.add_metric(["stored"], total("stored"))
        msgs.add_metric(["duplicate"], total("duplicates"))
        msgs.add_metric(["quarantined"], total("quarantined"))
        yield msgs
        yield CounterMetricFamily("laps_central_ingest_commits_total", "Store transactions committed.",
                                  value=total("commits"))
        yield CounterMetricFamily("laps_central_ingest_store_errors_total",
                                  "Commits that failed (disk full, I/O) and were retried.", value=total("store_errors"))
        lag = SummaryMetricFamily("laps_central_ingest_lag_seconds",
                                  "Seconds from a segment's end (device clock) to its commit in the store.",
                                  count_value=sum(w.lag_count for w in ws), sum_value=sum(w.lag_sum_s for w in ws))
        yield lag
        last = [w.lag_last_max_s for w in ws if w.lag_last_max_s is not None]
        if last:
            yield GaugeMetricFamily("laps_central_ingest_lag_last_max_seconds",
                                    "The largest segment lag in the last commit of any worker.", value=max(last))
        yield GaugeMetricFamily("laps_central_ingest_queued_messages", "Messages received and not yet committed.",
                                value=sum(w.queued() for w in ws))
        yield GaugeMetricFamily("laps_central_ingest_workers", "Ingest workers in this process.", value=len(ws))
        yield GaugeMetricFamily("laps_central_ingest_connected_workers", "Workers connected to the broker.",
                                value=sum(1 for w in ws if w.connected))
        counters = self.store.counters()
        yield GaugeMetricFamily("laps_central_store_segments", "Segments in the store.",
                                value=counters.get("stored", 0))
        yield GaugeMetricFamily("laps_central_store_quarantined_messages", "Messages quarantined in the store.",
                                value=counters.get("quarantined", 0))
        yield GaugeMetricFamily("laps_central_store_size_bytes",
                                "Bytes of the store: the SQLite file with -wal and -shm, or the PostgreSQL database.",
                                value=self.store.size_bytes())


def serve_ingest_metrics(host: str, port: int, workers: Sequence["IngestWorker"], store: "CentralStore",
                         origin: str = "") -> MetricsServer | None:
    """Expose the ingest on host:port (None when port is 0)."""
    if port == 0:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(workers, store))
    return MetricsServer(registry, host, port, f"config {origin}: metrics" if origin else "metrics")
