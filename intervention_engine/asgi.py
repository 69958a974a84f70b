"""ASGI entry point served by daphne: HTTP through Django, WebSocket through Channels."""

import os
from collections.abc import Awaitable
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")

# Django must be set up before the routing (and the models it imports) is loaded.
django_asgi_app = get_asgi_application()

from gateway import daphne_protocol  # noqa: E402

# daphne builds its WebSocket factory after importing this module: sockets get the lighter protocol,
# and autobahn's debug lines are formatted only if written.
daphne_protocol.install()

from gateway.routing import websocket_application  # noqa: E402


def application(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
    """Channels' ProtocolTypeRouter for our two protocols, as a plain function: it returns the chosen
    application's coroutine instead of awaiting it in one of its own, which would stay suspended for
    as long as each socket lives."""
    if scope["type"] == "websocket":
        return websocket_application(scope, receive, send)
    return django_asgi_app(scope, receive, send)


# Tells asgiref (daphne's guarantee_single_callable) that this non-async function is an ASGI 3 app.
application._asgi_single_callable = True  # type: ignore[attr-defined]
