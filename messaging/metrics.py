from prometheus_client import Counter, Gauge

OUTBOX_PUBLISHED = Counter("ie_outbox_published_total", "Outbox messages published to Kafka")
OUTBOX_FAILED = Counter("ie_outbox_publish_failures_total", "Outbox publish attempts that failed")
OUTBOX_BACKLOG = Gauge(
    "ie_outbox_backlog", "Unpublished outbox messages seen by the relay", multiprocess_mode="max"
)
