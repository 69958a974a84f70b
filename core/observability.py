"""Structured logs and Prometheus metrics shared by every process (web, workers, consumer, relay)."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, multiprocess

_SHOPPER_IN_PATH = re.compile(r"(/users/|[?&]user_id=)[^/?&#\s]+")


def redact_shopper_ids(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Logs name no shopper: a ``user_id`` field, a ``/users/{id}`` path and a ``user_id=`` query
    parameter (the request log's ``request`` field) are written as ``…``, so erasing a shopper leaves
    nothing of theirs in the logs (docs/privacy.md). Request, intervention and delivery ids still tie a
    log line to the records."""
    if isinstance(event.get("user_id"), str):
        event["user_id"] = "…"
    for name in ("request", "path"):
        value = event.get(name)
        if isinstance(value, str):
            event[name] = _SHOPPER_IN_PATH.sub(r"\1…", value)
    return event


def configure_logging(*, level: str, fmt: str) -> dict[str, Any]:
    """Route stdlib and structlog records through one renderer; returns Django's LOGGING dict.

    JSON in production so logs can be shipped and queried by field (request_id, intervention_id,
    delivery_id…; shopper ids are redacted); a readable console renderer when LOG_FORMAT=console.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redact_shopper_ids,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": shared,
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            "kafka": {"level": "WARNING"},
            "daphne": {"level": "INFO"},
            # One INFO line per task published, received, started and finished is thousands of lines a
            # second at send rates, and a sixth of an enqueue's CPU; failures still log as errors, and the
            # counts are metrics.
            "django_structlog.celery.receivers": {"level": "WARNING"},
        },
    }


def metrics_registry() -> CollectorRegistry:
    """The registry /metrics serves.

    With PROMETHEUS_MULTIPROC_DIR set (the local stack sets it), every process on the node writes its
    samples there and this collects them all, so one scrape sees the web, worker, consumer and relay.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


logging.captureWarnings(True)
