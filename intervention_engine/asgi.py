"""ASGI entry point served by daphne: HTTP through Django, WebSocket through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")

# Django must be set up before the routing (and the models it imports) is loaded.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from delivery.consumers import defer_autobahn_handshake_debug_formatting  # noqa: E402

defer_autobahn_handshake_debug_formatting()

from delivery.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
