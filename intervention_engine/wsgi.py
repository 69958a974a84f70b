"""WSGI entry point (HTTP only; WebSocket needs the ASGI server)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")

application = get_wsgi_application()
