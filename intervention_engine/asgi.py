"""ASGI entry point served by daphne: HTTP through Django, WebSocket through Channels."""

import ipaddress
import os
from collections.abc import Awaitable
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")

# Django must be set up before the routing (and the models it imports) is loaded.
django_asgi_app = get_asgi_application()

from gateway import daphne_protocol  # noqa: E402

# daphne builds its WebSocket factory after importing this module: sockets get the lighter protocol,
# and autobahn's debug lines are formatted only if written.
daphne_protocol.install()

from gateway.routing import websocket_application  # noqa: E402


def arrived_on_loopback(scope: dict[str, Any]) -> bool:
    """Whether the connection reached us on a loopback address (``scope["server"]``: the local end of the
    socket, so a server bound to 0.0.0.0 still tells a local client from a remote one). A unix socket has
    no port and is local."""
    server = scope.get("server")
    if not server or server[1] is None:
        return True
    try:
        address = ipaddress.ip_address(str(server[0]))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


LOOPBACK_ONLY = (
    b"This server signs with the checkout's development SECRET_KEY and serves loopback only. "
    b"Set SECRET_KEY (and ENVIRONMENT=production) to serve other machines.\n"
)


async def refuse_off_loopback(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": LOOPBACK_ONLY})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect; closing before accepting refuses the handshake (403)
        await send({"type": "websocket.close", "code": 1008})


def application(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
    """Channels' ProtocolTypeRouter for our two protocols, as a plain function: it returns the chosen
    application's coroutine instead of awaiting it in one of its own, which would stay suspended for
    as long as each socket lives."""
    if settings.SECRET_KEY_GENERATED and not arrived_on_loopback(scope):
        # Anyone who can read the repository's checkout could otherwise forge its tickets and links.
        return refuse_off_loopback(scope, receive, send)
    if scope["type"] == "websocket":
        return websocket_application(scope, receive, send)
    return django_asgi_app(scope, receive, send)


# Tells asgiref (daphne's guarantee_single_callable) that this non-async function is an ASGI 3 app.
application._asgi_single_callable = True  # type: ignore[attr-defined]
