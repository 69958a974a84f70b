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
# Stage latencies are milliseconds on a quiet path: their buckets start at 1 ms, so that a p50 read off them
# (bench.ws_latency does) says which stage a frame's time went to.
_STAGE_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 5)
QUEUE_SECONDS = Histogram(
    "ie_consumer_queue_seconds",
    "From a message's Kafka timestamp to the start of its batch: the broker hop plus the wait behind the "
    "batch in progress",
    buckets=_STAGE_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "ie_consumer_batch_seconds",
    "Time to process one batch (validation to commit)",
    buckets=_STAGE_BUCKETS,
)
DECISION_LATENCY = Histogram(
    "ie_decision_latency_seconds",
    "From the event's occurred_at / predicted_at to the commit of its decision",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PUSH_SECONDS = Histogram(
    "ie_onsite_push_seconds",
    "From the commit of a decision batch to its on-site frames handed to the channel layer",
    buckets=_STAGE_BUCKETS,
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
