"""Settings for Intervention Engine, read from the environment.

One module for every environment: nothing differs between development, test and production except
what the environment says. ``ENVIRONMENT=production`` turns on the production safety rails
(``SECRET_KEY`` required, secure cookies, HSTS); see docs/configuration.md for every variable.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

ENVIRONMENT: str = env.str("ENVIRONMENT", default="development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"ENVIRONMENT must be development, test or production, not {ENVIRONMENT!r}")
IS_PRODUCTION = ENVIRONMENT == "production"

DEBUG: bool = env.bool("DEBUG", default=not IS_PRODUCTION)


def _checkout_secret_key(path: Path) -> str:
    """This checkout's own development key, created once at ``path`` (never committed: var/ is ignored).

    Several processes start together (web, worker, beat…) and must share the key, so the first one to link
    its candidate file in place wins and every other reads that one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return path.read_text().strip()


# Production requires SECRET_KEY. Elsewhere, without one, each checkout generates its own key
# (var/secret_key): nothing signed with a key from the repository can be forged. That key is for this
# machine only: `python -m stack run` refuses a non-loopback BIND_HOST with it, and the ASGI application
# refuses any connection that did not arrive on a loopback address (intervention_engine/asgi.py).
SECRET_KEY: str = env.str("SECRET_KEY", default="")
SECRET_KEY_GENERATED: bool = not SECRET_KEY
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when ENVIRONMENT=production "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    _secret_key_file = Path(env.str("SECRET_KEY_FILE", default=str(VAR_DIR / "secret_key")))
    try:
        SECRET_KEY = _checkout_secret_key(_secret_key_file)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"No SECRET_KEY, and the development key could not be kept in {_secret_key_file} ({exc}): "
            "set SECRET_KEY or SECRET_KEY_FILE"
        ) from exc
elif IS_PRODUCTION and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters in production")

PORT: int = env.int("PORT", default=3003)
PUBLIC_URL: str = env.str("PUBLIC_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_URL])
WS_ALLOWED_ORIGINS: list[str] = env.list(
    "WS_ALLOWED_ORIGINS",
    default=[f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}"],
)
# WebSocket gateway (docs/websocket.md): ticket lifetime, frame and flood limits, room naming rule.
WS_TICKET_TTL_SECONDS: int = env.int("WS_TICKET_TTL_SECONDS", default=60)
WS_MAX_FRAME_BYTES: int = env.int("WS_MAX_FRAME_BYTES", default=16 * 1024)
WS_MAX_MESSAGES_PER_SECOND: int = env.int("WS_MAX_MESSAGES_PER_SECOND", default=20)
WS_ROOM_PREFIXES: list[str] = env.list("WS_ROOM_PREFIXES", default=["broadcast", "campaign."])
WS_MAX_ROOMS_PER_CONNECTION: int = env.int("WS_MAX_ROOMS_PER_CONNECTION", default=20)
# A socket refreshes its presence on every ping; a crashed process's sockets vanish after this long.
WS_PRESENCE_TTL_SECONDS: int = env.int("WS_PRESENCE_TTL_SECONDS", default=75)
# /demo/ (a demo shop driving the whole loop) is on in development only unless asked for.
DEMO_ENABLED: bool = env.bool("DEMO_ENABLED", default=DEBUG)

INSTALLED_APPS = [
    "daphne",
    # The stock admin, with the product's site (branding, dashboard): intervention_engine/admin_site.py.
    "intervention_engine.admin_site.InterventionEngineAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "django_structlog",
    # Bottom layer first; see docs/architecture.md for the import direction.
    "core",
    "messaging",
    "api",
    "personalization",
    "campaigns",
    "interventions",
    "notifications",
    "tracking",
    "gateway",
    "delivery",
]

MIDDLEWARE = [
    # Outermost, so it sees every error response under /api/ (see api/middleware.py).
    "api.middleware.JsonApiErrorsMiddleware",
    # Before anything reads the client address or scheme: forwarding headers only from TRUSTED_PROXIES.
    "intervention_engine.proxies.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # daphne serves no files itself; WhiteNoise serves the admin's and the browser client's static assets.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
]

ROOT_URLCONF = "intervention_engine.urls"
ASGI_APPLICATION = "intervention_engine.asgi.application"
WSGI_APPLICATION = "intervention_engine.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Stores -------------------------------------------------------------------------------------------

# The local stack (python -m stack) exports these when it starts embedded servers; nothing here
# starts a server. The defaults point at the embedded servers' default ports for convenience.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5433/intervention_engine")
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL: str = env.str("REDIS_URL", default="redis://127.0.0.1:6390/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "ie",
        "TIMEOUT": 300,
    }
}

# The WebSocket gateway's channel layer (docs/websocket.md). "pubsub" (default): group sends are one Redis
# PUBLISH and each daphne process receives by subscription — measured ~2x the pushes/s of "core", which
# polls a list per process and runs a Lua script per member. Neither persists a message across a Redis
# or process restart; PostgreSQL is the replay log (the client's resume), so that is acceptable here.
WS_CHANNEL_LAYER: str = env.str("WS_CHANNEL_LAYER", default="pubsub")
CHANNEL_LAYER_MAX_CONNECTIONS: int = env.int("CHANNEL_LAYER_MAX_CONNECTIONS", default=1000)
if WS_CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's pub/sub layer with process-local channel names, mailboxes and batched
            # (un)subscriptions: see gateway/channel_layer.py.
            "BACKEND": "gateway.channel_layer.GatewayChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "ie:ws"},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's asyncio pool fails fast past max_connections (default 100); a reconnect storm
                # of thousands of sockets joins groups concurrently, so the bound is raised.
                "hosts": [{"address": REDIS_URL, "max_connections": CHANNEL_LAYER_MAX_CONNECTIONS}],
                "prefix": "ie:ws",
                "capacity": env.int("WS_CHANNEL_CAPACITY", default=1000),
                "expiry": 60,
            },
        }
    }

KAFKA_BOOTSTRAP_SERVERS: str = env.str("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:19092")
KAFKA_CONSUMER_GROUP: str = env.str("KAFKA_CONSUMER_GROUP", default="intervention-engine")
# Session timeout drives how long a consumer-group join waits; a few seconds keeps restarts quick.
KAFKA_SESSION_TIMEOUT_MS: int = env.int("KAFKA_SESSION_TIMEOUT_MS", default=6000)
KAFKA_FETCH_WAIT_MAX_MS: int = env.int("KAFKA_FETCH_WAIT_MAX_MS", default=5)
KAFKA_TOPIC_PARTITIONS: int = env.int("KAFKA_TOPIC_PARTITIONS", default=6)
# Decision path: messages per shopper per (local) day across every campaign and channel; 0 = no budget.
SHOPPER_DAILY_MESSAGE_BUDGET: int = env.int("SHOPPER_DAILY_MESSAGE_BUDGET", default=3)
# Budget of one message's render: loop iterations in all its fields, and CPU time of the rendering thread per
# field (time waiting for a core is not counted). A template over it is refused on save and fails that one
# decision (suppressed as render_error; a send run's member is retried first); see docs/templates.md.
TEMPLATE_MAX_LOOP_ITERATIONS: int = env.int("TEMPLATE_MAX_LOOP_ITERATIONS", default=10_000)
TEMPLATE_RENDER_TIMEOUT_MS: int = env.int("TEMPLATE_RENDER_TIMEOUT_MS", default=100)
# A template that ran out of time is not rendered again in that process for this long (each try would
# cost the whole timeout): its decisions are suppressed as render_error at once.
TEMPLATE_SLOW_COOLOFF_SECONDS: float = env.float("TEMPLATE_SLOW_COOLOFF_SECONDS", default=60.0)
# Most messages the consumer takes per batch (one transaction each): the first one, plus what is already
# fetched. The poll timeout bounds the wait for that first message (and how long a stop waits when idle).
KAFKA_CONSUMER_BATCH_SIZE: int = env.int("KAFKA_CONSUMER_BATCH_SIZE", default=500)
KAFKA_CONSUMER_POLL_TIMEOUT: float = env.float("KAFKA_CONSUMER_POLL_TIMEOUT", default=0.05)
# Topic names are the contract (SPEC §3); a prefix exists only to isolate test runs on a shared broker.
KAFKA_TOPIC_PREFIX: str = env.str("KAFKA_TOPIC_PREFIX", default="")
KAFKA_TOPICS: dict[str, str] = {
    name: f"{KAFKA_TOPIC_PREFIX}{name}"
    for name in (
        "cart-events-enriched",
        "prediction-results",
        "intervention-events",
        "conversion-events",
        "intervention-engine.dlq",
    )
}

# --- Celery -------------------------------------------------------------------------------------------

CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND: str | None = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_DEFAULT_QUEUE = "default"
# Tasks are acknowledged after they run, and re-queued if the worker dies: every task is written to be
# safe to run twice (it claims its row with a conditional update), so redelivery never duplicates work.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=4)
# A message not acknowledged within this many seconds is redelivered by the Redis transport. Nothing
# schedules a countdown/ETA longer than this: long delays are rows in PostgreSQL picked up by beat.
CELERY_VISIBILITY_TIMEOUT: int = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Notifications: email, SMS, push providers (docs/notifications.md) ---------------------------------

# EMAIL_URL picks the transport, e.g. smtp://user:pass@127.0.0.1:1025 or smtps://… . Without it, development
# email is written as readable .eml files under var/mail. An ESP goes through django-anymail: set
# EMAIL_BACKEND=anymail.backends.<esp>.EmailBackend and its keys in ANYMAIL (JSON),
# e.g. {"POSTMARK_SERVER_TOKEN": "…"}.
EMAIL_URL: str = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=EMAIL_BACKEND)
EMAIL_TIMEOUT: int = env.int("EMAIL_TIMEOUT", default=10)
# A second transport for failover (provider "email_secondary"), same URL forms as EMAIL_URL.
EMAIL_SECONDARY_URL: str = env.str("EMAIL_SECONDARY_URL", default="")
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Shop <shop@localhost>")
UNSUBSCRIBE_MAILTO: str = env.str("UNSUBSCRIBE_MAILTO", default="unsubscribe@localhost")
ANYMAIL: dict[str, Any] = env.json("ANYMAIL", default={})
ANYMAIL.setdefault("WEBHOOK_SECRET", env.str("ANYMAIL_WEBHOOK_SECRET", default="") or None)
if not ANYMAIL["WEBHOOK_SECRET"]:
    del ANYMAIL["WEBHOOK_SECRET"]
# The one ESP whose tracking webhook is mounted (/api/v1/webhooks/anymail/<esp>/tracking/): the ESP of an
# anymail EMAIL_BACKEND unless named; empty mounts none. It acts on deliveries (bounces fail them, complaints
# withdraw consent), so it needs WEBHOOK_SECRET ("user:password", HTTP basic auth): production refuses to
# start without it, and elsewhere the webhook answers 403 until it is set.
_anymail_backend = re.fullmatch(r"anymail\.backends\.(\w+)\.EmailBackend", EMAIL_BACKEND)
ANYMAIL_TRACKING_ESP: str = env.str(
    "ANYMAIL_TRACKING_ESP", default=_anymail_backend.group(1) if _anymail_backend else ""
)
if IS_PRODUCTION and ANYMAIL_TRACKING_ESP and not ANYMAIL.get("WEBHOOK_SECRET"):
    raise ImproperlyConfigured(
        f"ANYMAIL_WEBHOOK_SECRET must be set when ENVIRONMENT=production and the {ANYMAIL_TRACKING_ESP} "
        "tracking webhook is mounted (anyone could otherwise post bounces and complaints)"
    )

TWILIO_ACCOUNT_SID: str = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN: str = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM: str = env.str("TWILIO_FROM", default="")
# Points the real twilio client at another server (a local one in tests); empty means Twilio itself.
TWILIO_API_BASE: str = env.str("TWILIO_API_BASE", default="")
TWILIO_SECONDARY_ACCOUNT_SID: str = env.str("TWILIO_SECONDARY_ACCOUNT_SID", default="")
TWILIO_SECONDARY_AUTH_TOKEN: str = env.str("TWILIO_SECONDARY_AUTH_TOKEN", default="")
TWILIO_SECONDARY_FROM: str = env.str("TWILIO_SECONDARY_FROM", default="")
TWILIO_SECONDARY_API_BASE: str = env.str("TWILIO_SECONDARY_API_BASE", default="")
TWILIO_TIMEOUT: float = env.float("TWILIO_TIMEOUT", default=10.0)
# Where Twilio posts delivery status (https://…/api/v1/webhooks/twilio/status); empty sends none.
TWILIO_STATUS_CALLBACK_URL: str = env.str("TWILIO_STATUS_CALLBACK_URL", default="")
# The public URL of the inbound-message webhook as configured on the Twilio number (signatures cover it).
TWILIO_INBOUND_URL: str = env.str("TWILIO_INBOUND_URL", default="")

FCM_CREDENTIALS_FILE: str = env.str("FCM_CREDENTIALS_FILE", default="")
FCM_PROJECT_ID: str = env.str("FCM_PROJECT_ID", default="")
# Overrides https://fcm.googleapis.com/v1/projects/{project}/messages:send (a local server in tests).
FCM_ENDPOINT: str = env.str("FCM_ENDPOINT", default="")
FCM_TIMEOUT: float = env.float("FCM_TIMEOUT", default=10.0)
# A second Firebase project (the app registered with both sender ids), for push failover: fcm_secondary.
FCM_SECONDARY_CREDENTIALS_FILE: str = env.str("FCM_SECONDARY_CREDENTIALS_FILE", default="")
FCM_SECONDARY_PROJECT_ID: str = env.str("FCM_SECONDARY_PROJECT_ID", default="")
FCM_SECONDARY_ENDPOINT: str = env.str("FCM_SECONDARY_ENDPOINT", default="")

# Web Push (RFC 8030) with VAPID (RFC 8292): the application server's P-256 private key, base64url (raw
# 32 bytes or DER), and the contact it signs with. Outside production, without one, the key `bootstrap`
# generated in var/vapid_private_key is used (none: the webpush provider is unconfigured).
WEBPUSH_VAPID_PRIVATE_KEY: str = env.str("WEBPUSH_VAPID_PRIVATE_KEY", default="")
if not WEBPUSH_VAPID_PRIVATE_KEY and not IS_PRODUCTION and (VAR_DIR / "vapid_private_key").exists():
    WEBPUSH_VAPID_PRIVATE_KEY = (VAR_DIR / "vapid_private_key").read_text().strip()
WEBPUSH_VAPID_SUBJECT: str = env.str("WEBPUSH_VAPID_SUBJECT", default="mailto:push@example.com")
WEBPUSH_TTL_SECONDS: int = env.int("WEBPUSH_TTL_SECONDS", default=24 * 3600)
WEBPUSH_TIMEOUT: float = env.float("WEBPUSH_TIMEOUT", default=10.0)

# Ordered provider names per channel: the first is primary, the next are used when it fails transiently.
NOTIFICATION_PROVIDERS: dict[str, list[str]] = {
    "email": env.list("NOTIFICATION_PROVIDERS_EMAIL", default=["email"]),
    "sms": env.list("NOTIFICATION_PROVIDERS_SMS", default=["twilio"]),
    "push": env.list("NOTIFICATION_PROVIDERS_PUSH", default=["fcm"]),
}
# Sends per second per provider (token bucket in Redis), e.g. "twilio=100,fcm=500"; absent = unlimited.
NOTIFICATION_RATE_LIMITS: dict[str, float] = {
    name: float(rate)
    for name, rate in (
        item.split("=", 1) for item in env.list("NOTIFICATION_RATE_LIMITS", default=[]) if "=" in item
    )
}
NOTIFICATION_MAX_ATTEMPTS: int = env.int("NOTIFICATION_MAX_ATTEMPTS", default=6)
# Deliveries of one channel published together in one task (a task costs more CPU than a send).
NOTIFICATION_TASK_BATCH_SIZE: int = env.int("NOTIFICATION_TASK_BATCH_SIZE", default=20)
# Provider calls in flight at once per worker process, shared by its task threads (a batch's sends go
# out concurrently through this bounded pool).
NOTIFICATION_SEND_CONCURRENCY: int = env.int("NOTIFICATION_SEND_CONCURRENCY", default=32)
NOTIFICATION_BACKOFF_BASE_SECONDS: float = env.float("NOTIFICATION_BACKOFF_BASE_SECONDS", default=30.0)
NOTIFICATION_BACKOFF_MAX_SECONDS: float = env.float("NOTIFICATION_BACKOFF_MAX_SECONDS", default=3600.0)
# Retries due sooner than this go back to the broker with a countdown; later ones wait in PostgreSQL for
# beat. Always far below CELERY_VISIBILITY_TIMEOUT, so the Redis transport never redelivers an ETA task.
NOTIFICATION_COUNTDOWN_MAX_SECONDS: int = min(env.int("NOTIFICATION_COUNTDOWN_MAX_SECONDS", default=60), 300)
# A row still "sending" this long after its claim belongs to a worker that died mid-send.
NOTIFICATION_SENDING_TIMEOUT_SECONDS: int = env.int("NOTIFICATION_SENDING_TIMEOUT_SECONDS", default=120)
# A "queued" row nobody claimed this long after it was due lost its broker message (worker killed with
# prefetched messages, broker restart); beat enqueues it again — the claim makes the copy harmless.
NOTIFICATION_REQUEUE_AFTER_SECONDS: int = env.int("NOTIFICATION_REQUEUE_AFTER_SECONDS", default=60)
NOTIFICATION_SWEEP_INTERVAL_SECONDS: float = env.float("NOTIFICATION_SWEEP_INTERVAL_SECONDS", default=15.0)
# A running send run whose row has not moved this long lost its chain of tasks (a worker killed): the
# reconcile task (beat, every minute) steps it again. A step of 500 members takes about a second.
SEND_RUN_STALLED_AFTER_SECONDS: int = env.int("SEND_RUN_STALLED_AFTER_SECONDS", default=120)
# Chunks a send run's audience is split into (by member position): each is walked by its own chain of step
# tasks, so as many workers walk one run side by side. About the cores the workers of the default queue have.
SEND_RUN_WALKERS: int = max(1, env.int("SEND_RUN_WALKERS", default=2))
# A send run's member whose render ran out of TEMPLATE_RENDER_TIMEOUT_MS is decided again later (after the
# template's cool-off), up to this many attempts in all; then it is suppressed as render_timeout.
SEND_RUN_RENDER_ATTEMPTS: int = env.int("SEND_RUN_RENDER_ATTEMPTS", default=3)
# Beat runs the ledger's sweeps (django-celery-beat copies these entries into its table at start).
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "notifications-requeue-due": {
        "task": "notifications.deliveries_requeue_due",
        "schedule": NOTIFICATION_SWEEP_INTERVAL_SECONDS,
    },
    "notifications-settle-stuck": {
        "task": "notifications.deliveries_settle_stuck",
        "schedule": NOTIFICATION_SWEEP_INTERVAL_SECONDS * 2,
    },
}

# --- Auth, i18n, static -----------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (development, tests) serve straight from the apps' static folders.
WHITENOISE_USE_FINDERS: bool = env.bool("WHITENOISE_USE_FINDERS", default=not IS_PRODUCTION)
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security (production) ----------------------------------------------------------------------------

SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=IS_PRODUCTION)
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=31536000 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = IS_PRODUCTION
SECURE_HSTS_PRELOAD = IS_PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Addresses or networks (CIDR) of the reverse proxies in front of daphne, e.g. "10.0.0.0/8". Only their
# X-Forwarded-For and X-Forwarded-Proto are believed (intervention_engine/proxies.py); anyone else's are
# dropped. Empty: no proxy, no forwarding header is trusted.
TRUSTED_PROXIES: list[str] = env.list("TRUSTED_PROXIES", default=[])
try:
    for _proxy in TRUSTED_PROXIES:
        ipaddress.ip_network(_proxy, strict=False)
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from exc
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The address logged with each request (django-structlog, through django-ipware) is the one the
# middleware settled, never a header.
IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
# Health checks and metrics are probed over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]

# --- API ----------------------------------------------------------------------------------------------

# Every API view authenticates with an API key and checks its scopes (view.required_scopes); a view that
# must be public (provider webhooks with their own signatures) says so explicitly.
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_SCHEMA_CLASS": "api.schema.ApiAutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.ApiPagination",
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# Requests per API key, e.g. "6000/min" (periods: s, min, h, day).
API_THROTTLE_RATE: str = env.str("API_THROTTLE_RATE", default="6000/min")
# Idempotency-Key answers are kept a day; beat deletes older ones hourly.
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "api-idempotency-purge": {"task": "api.idempotency_records_purge", "schedule": 3600.0},
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Intervention Engine API",
    "DESCRIPTION": "Trigger interventions, send tracking events, manage preferences, campaigns as code.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets are served from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" with different choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "InterventionStatusEnum": "interventions.models.Intervention.Status",
        "DeliveryStatusEnum": "interventions.models.Delivery.Status",
        "ChannelEnum": "personalization.models.Channel",
        "OnsiteChannelEnum": "campaigns.api.serializers.ONSITE_CHANNEL",
        "MessageChannelEnum": "campaigns.api.serializers.MESSAGE_CHANNELS",
        "OptOutChannelEnum": "personalization.api.serializers.OPT_OUT_CHANNELS",
        "PlatformEnum": "personalization.models.PushToken.Platform",
        "NativePlatformEnum": "personalization.api.serializers.NATIVE_PLATFORMS",
        "WebPlatformEnum": "personalization.api.serializers.WEB_PLATFORMS",
    },
}

# --- Observability ------------------------------------------------------------------------------------

from core.observability import configure_logging, default_log_format  # noqa: E402

LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
# console | json; readable lines in development, JSON in test and production.
LOG_FORMAT: str = env.str("LOG_FORMAT", default=default_log_format(environment=ENVIRONMENT))
LOGGING = configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# One line per request: request_finished (core.observability adds method, path and duration); the start is
# DEBUG.
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG

HEALTH_CHECK_TIMEOUT_SECONDS: float = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=2.0)
# A bearer token a scraper sends for /metrics, /ws/stats and readiness details (besides an API key with the
# "metrics" scope or a staff session); empty accepts none.
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
