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
