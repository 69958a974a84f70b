"""Prometheus metrics of the Kafka decision path (one consumer process or many: multiprocess-safe).

Counters and histograms aggregate across processes by themselves under PROMETHEUS_MULTIPROC_DIR; the
lag gauge keeps the latest value per process and partition ("max" across processes: one partition
is owned by one process at a time).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "ie_events_consumed_total", "Kafka messages consumed by the decision path", ["topic", "type"]
)
EVENTS_DLQ = Counter("ie_events_dlq_total", "Messages sent to the dead-letter topic", ["reason"])
DECISIONS = Counter(
    "ie_decisions_total", "Interventions decided (created, scheduled or suppressed)", ["outcome"]
)
SUPPRESSED = Counter("ie_interventions_suppressed_total", "Interventions suppressed", ["reason"])
CANCELLED = Counter("ie_interventions_cancelled_total", "Pending interventions cancelled by exit events")
CONVERSIONS = Counter("ie_conversions_total", "Orders recorded", ["attributed"])
DUPLICATES = Counter("ie_events_duplicate_total", "Decisions skipped because the event was already decided")
BATCH_SIZE = Histogram(
    "ie_consumer_batch_size",
    "Messages per consumed batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000),
)
BATCH_SECONDS = Histogram(
    "ie_consumer_batch_seconds",
    "Time to process one batch (validation to commit)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DECISION_LATENCY = Histogram(
    "ie_decision_latency_seconds",
    "From the event's occurred_at / predicted_at to the commit of its decision",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONSUMER_LAG = Gauge(
    "ie_consumer_lag",
    "Messages behind the end of the partition, per topic and partition",
    ["topic", "partition"],
    multiprocess_mode="max",
)
BATCH_FAILURES = Counter(
    "ie_consumer_batch_failures_total", "Batches whose transaction failed and were retried"
)
