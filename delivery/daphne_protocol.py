"""daphne's WebSocket protocol, lighter per idle socket (issue 5, docs/performance.md).

daphne serves each socket with an autobahn protocol object. Measured with tracemalloc and a census of
objects in a daphne process holding 2,000 sockets, three things it keeps for the socket's whole life
are not needed once the handshake is done:

- autobahn copies its ~30 configuration options (limits, timeouts, flags) from the factory onto every
  protocol instance, which pushes the instance's ``__dict__`` past 85 keys into a 3.3 KiB table.
  autobahn only copies an option the instance does not already have, so this class answers them from
  the factory instead (``_FactoryOption``): the dict stays at ~70 keys, 1.6 KiB.
- the handshake itself: the raw request bytes, the parsed headers and query parameters (which carry
  the ticket), the response bytes. Dropped once the socket is open.
- twisted's HTTP channel and request that carried the upgrade: the HTTP channel stays registered as
  the TCP transport's producer after daphne hands the transport to this protocol, and with it the
  whole HTTP request (headers, URI, body buffer). Unregistered once the socket is open.

The server picks the class up through the factory's ``protocol`` attribute (Twisted's way to choose
what a factory builds); ``install()`` sets it, from intervention_engine/asgi.py, before daphne builds
its factory.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.protocol import WebSocketServerProtocol
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.web.http import HTTPChannel


class _FactoryOption:
    """An autobahn option read from the factory unless this protocol instance was given its own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.own = f"_own_{name}"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        own = instance.__dict__.get(self.own, _UNSET)
        return getattr(instance.factory, self.name) if own is _UNSET else own

    def __set__(self, instance: Any, value: Any) -> None:
        factory = instance.__dict__.get("factory")
        if factory is not None and getattr(factory, self.name, _UNSET) is value:
            instance.__dict__.pop(self.own, None)
        else:
            instance.__dict__[self.own] = value


_UNSET = object()


class LeanWebSocketProtocol(WebSocketProtocol):
    def onOpen(self) -> None:
        super().onOpen()
        self.forget_handshake()

    def forget_handshake(self) -> None:
        """Drop what only the handshake needed (see the module docstring)."""
        self.http_request_data = b""
        self.http_response_data = ""
        self.http_status_line = ""
        self.http_headers: dict[str, str] = {}
        self.http_request_params: dict[str, list[str]] = {}
        self.http_request_uri = ""
        self._raw_query_string = b""
        self.clean_headers: list[tuple[bytes, bytes]] = []
        self.application_deferred = None
        request = getattr(self, "request", None)
        if request is not None:
            # daphne logs request.path when the socket closes; the rest goes.
            request.headers, request.params = {}, {}
        transport = self.transport
        if isinstance(getattr(transport, "producer", None), HTTPChannel):
            transport.unregisterProducer()


for _name in WebSocketServerProtocol.CONFIG_ATTRS:
    setattr(LeanWebSocketProtocol, _name, _FactoryOption(_name))


def install() -> None:
    """Make daphne's WebSocket factory build ``LeanWebSocketProtocol``."""
    WebSocketFactory.protocol = LeanWebSocketProtocol
