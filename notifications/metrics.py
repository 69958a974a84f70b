from prometheus_client import Counter, Histogram

ENQUEUED = Counter("ie_notification_enqueued_total", "Deliveries published to a channel queue")
REQUEUED = Counter("ie_notification_requeued_total", "Queued deliveries published again by the sweep")
SKIPPED = Counter("ie_notification_claim_skipped_total", "Send tasks that found nothing to claim")
OUTCOMES = Counter("ie_notification_outcomes_total", "Send outcomes", ["channel", "outcome"])
PROVIDER_CALLS = Counter("ie_notification_provider_calls_total", "Provider calls", ["provider", "outcome"])
PROVIDER_LATENCY = Histogram(
    "ie_notification_provider_latency_seconds",
    "Provider call latency",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
