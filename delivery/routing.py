"""WebSocket routes served by daphne through Channels."""

from django.urls import URLPattern, path

from delivery.consumers import InterventionConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws", InterventionConsumer.as_asgi()),
]
