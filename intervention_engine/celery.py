"""The Celery application: Redis broker, django-celery-beat schedules, one queue per channel."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")

app = Celery("intervention_engine")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each channel has its own queue so a slow provider never holds up on-site delivery or the others.
app.conf.task_queues = [Queue(name) for name in ("default", "realtime", "email", "sms", "push")]
app.autodiscover_tasks()
# Fixed schedules of the decision path (django-celery-beat's DatabaseScheduler adds these to its own rows).
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    "delivery-release-due": {"task": "delivery.tasks.interventions_release_due_task", "schedule": 5.0},
    "delivery-expire": {"task": "delivery.tasks.interventions_expire_task", "schedule": 30.0},
    "delivery-allocations-refresh": {"task": "delivery.tasks.allocations_refresh_task", "schedule": 60.0},
    "delivery-send-runs-reconcile": {"task": "delivery.tasks.send_runs_reconcile_task", "schedule": 60.0},
}
