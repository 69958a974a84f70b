"""Structured logs and Prometheus metrics shared by every process (web, workers, consumer, relay).

Logs are written for the person reading them: readable console lines in development, JSON elsewhere (both
from LOG_FORMAT, whose default follows ENVIRONMENT); one line per HTTP request (``request_finished``, with
method, path, status, duration and request id — the request's start and daphne's access log are not
printed); and periodic housekeeping speaks only when it did something (``housekeeping_log``), so an idle
stack is quiet.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, multiprocess

if TYPE_CHECKING:  # settings import this module: no Django import at runtime
    from django.http import HttpRequest, HttpResponse

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

    JSON (``fmt="json"``) so logs can be shipped and queried by field (request_id, intervention_id,
    delivery_id…; shopper ids are redacted); a readable console renderer for ``fmt="console"``.
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
            # counts are metrics. The same goes for Celery's own lines ("Task … received", "… succeeded")
            # and beat's "Sending due task" every few seconds: a periodic task says what it did through
            # housekeeping_log instead, and only when it did something.
            "django_structlog.celery.receivers": {"level": "WARNING"},
            "celery.worker.strategy": {"level": "WARNING"},
            "celery.app.trace": {"level": "WARNING"},
            "celery.beat": {"level": "WARNING"},
            # "Not Found: /x" repeats the request's own line; 5xx errors still log here.
            "django.request": {"level": "ERROR"},
        },
    }


def default_log_format(*, environment: str) -> str:
    """Readable lines for a person at a terminal in development; JSON for machines everywhere else."""
    return "console" if environment == "development" else "json"


def housekeeping_log(*, logger: Any, event: str, **counts: int) -> None:
    """One INFO line with what a periodic task did (``counts``), or nothing when every count is zero."""
    if any(counts.values()):
        logger.info(event, **counts)


# --- The one line per HTTP request (django-structlog's request_finished, through its signals) ----------


def request_started(*, request: HttpRequest, **_: Any) -> None:
    request._log_started_at = time.monotonic()  # type: ignore[attr-defined]


def request_finished(
    *, request: HttpRequest, response: HttpResponse, log_kwargs: dict[str, Any], **_: Any
) -> None:
    """method, path and duration on ``request_finished`` (it already has the status and request id)."""
    started = getattr(request, "_log_started_at", None)
    log_kwargs.pop("request", None)  # "GET /path", split below
    log_kwargs["method"] = request.method
    log_kwargs["path"] = request.get_full_path()
    if started is not None:
        log_kwargs["duration_ms"] = round((time.monotonic() - started) * 1000, 1)


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
