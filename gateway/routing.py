"""WebSocket routes served by daphne through Channels."""

from collections.abc import Awaitable
from typing import Any

from channels.routing import URLRouter
from django.urls import URLPattern, path

from gateway.consumers import InterventionConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws", InterventionConsumer.as_asgi()),
]

_router = URLRouter(websocket_urlpatterns)


def websocket_application(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
    """Channels' URLRouter over ``websocket_urlpatterns``, except that ``/ws`` goes straight to its
    consumer: a socket lives for hours, and every routing layer it passes through stays suspended on
    the socket's task with its own copy of the scope (~1.5 KiB per idle socket for the router and
    ``as_asgi``). A plain function returning the consumer's coroutine adds no layer at all."""
    if scope.get("path") == "/ws" and not scope.get("root_path"):
        return InterventionConsumer()(scope, receive, send)
    return _router(scope, receive, send)  # type: ignore[no-any-return]
