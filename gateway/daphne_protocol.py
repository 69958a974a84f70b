"""daphne's WebSocket protocol, lighter per idle socket (issue 5, docs/performance.md), and able to send
the protocol close codes the consumer uses.

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
its factory. It also stops autobahn from formatting debug lines that are never written
(``defer_autobahn_debug_formatting``), which is CPU per handshake and per frame, not memory.
"""

from __future__ import annotations

import pprint
from collections.abc import Callable
from typing import Any

from autobahn import util
from autobahn.websocket.protocol import WebSocketServerProtocol
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from django.conf import settings
from twisted.web.http import HTTPChannel


class _FactoryOption:
    """An autobahn option read from the factory. A non-data descriptor: autobahn's ``hasattr`` sees
    it (so does not copy the option), and a value given to one instance lands in that instance's
    ``__dict__`` and wins, as usual."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return getattr(instance.factory, self.name)


class _FrameLimit(_FactoryOption):
    """The frame limit: daphne's (the factory's) or ``WS_MAX_FRAME_BYTES``, whichever is smaller.

    autobahn compares a frame's declared length with this as soon as the frame header is read
    (``onMessageFrameBegin``) and closes with 1009 before buffering any of the payload; the consumer's own
    check would only see a frame after the whole of it had been read into memory."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        ours = settings.WS_MAX_FRAME_BYTES
        theirs = getattr(instance.factory, self.name)
        return min(theirs, ours) if theirs > 0 else ours


# Close codes RFC 6455 lets an endpoint send besides 1000 (1004-1006 and 1015 are never sent).
_PROTOCOL_CLOSE_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})


class LeanWebSocketProtocol(WebSocketProtocol):
    def serverClose(self, code: int | None = None) -> None:
        """Close with the code the application chose. autobahn's public ``sendClose`` accepts only 1000
        and 3000-4999, so daphne's own ``serverClose`` raised on the consumer's 1008 (flood) and 1009
        (frame too big): the client got 1011 and the log a traceback. Those codes go out as they are,
        through the close frame autobahn itself uses for them (daphne does the same for its 1011)."""
        if code in _PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            super().serverClose(code)

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
# Only the frame limit: autobahn applies the message limit to what it sends as well, and pushes may be
# larger than what a client may send. A message in many small frames is still bounded by daphne's limit.
LeanWebSocketProtocol.maxFramePayloadSize = _FrameLimit("maxFramePayloadSize")
# autobahn fails a connection by dropping TCP by default, so a client refused for a frame too big would
# see 1006 and retry blindly; a close frame tells it 1009 (or the protocol error it made), and autobahn
# still drops the connection if the closing handshake does not finish (closeHandshakeTimeout).
LeanWebSocketProtocol.failByDrop = False


class _Deferred:
    """A debug-log argument computed only if the line is formatted."""

    __slots__ = ("args", "function")

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function, self.args = function, args

    def __format__(self, spec: str) -> str:
        return format(self.function(*self.args), spec)

    def __str__(self) -> str:
        return str(self.function(*self.args))


def _deferred(function: Callable[..., Any]) -> Callable[..., _Deferred]:
    return lambda *args: _Deferred(function, *args)


def defer_autobahn_debug_formatting() -> None:
    """autobahn computes the arguments of its debug log lines even when debug logging is off (the
    line itself is then dropped): it pretty-prints ~40 options on every handshake (about 40 % of a
    handshake's CPU in bench/ws_idle), and colours names with click for every frame sent or read
    (``hltype``/``hlval``: ~10 % of the daphne profile while 3,000 sockets connect, and as much per
    frame pushed). They are now computed only if a line is written."""
    from autobahn.twisted import websocket as twisted_websocket
    from autobahn.websocket import protocol

    protocol.pformat = _deferred(pprint.pformat)  # type: ignore[attr-defined,assignment]
    for module in (protocol, twisted_websocket):
        module.hltype = _deferred(util.hltype)  # type: ignore[attr-defined]
        module.hlval = _deferred(util.hlval)  # type: ignore[attr-defined]


def install() -> None:
    """Make daphne's WebSocket factory build ``LeanWebSocketProtocol``; autobahn's debug lines are
    formatted only if written."""
    WebSocketFactory.protocol = LeanWebSocketProtocol
    defer_autobahn_debug_formatting()
