"""The ASGI application with this checkout's generated development key serves loopback only."""

# asgiref's ApplicationCommunicator (the raw ASGI test driver, which lets a test choose scope["server"])
# has no type hints.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from intervention_engine.asgi import application

pytestmark = pytest.mark.asyncio


def scope_of(kind: str, *, server: tuple[str, int | None], path: str = "/health/live") -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:3003")],
        "client": ("127.0.0.1", 50000),
        "server": server,
    }
    if kind == "http":
        scope.update(method="GET", scheme="http", http_version="1.1", asgi={"version": "3.0"})
    else:
        scope.update(scheme="ws", subprotocols=[], asgi={"version": "3.0"})
    return scope


async def http_get(server: tuple[str, int | None]) -> tuple[int, bytes]:
    communicator = ApplicationCommunicator(application, scope_of("http", server=server))
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(10)
    body = await communicator.receive_output(10)
    await communicator.wait(10)
    return start["status"], body["body"]


async def test_it_refuses_a_request_that_arrived_on_a_network_address(settings) -> None:
    # given no SECRET_KEY: the checkout's generated key (the test run's own situation)
    settings.SECRET_KEY_GENERATED = True

    # when a request arrives on a non-loopback address of a server bound to 0.0.0.0, and one on loopback
    refused = await http_get(("192.0.2.10", 3003))
    served = await http_get(("127.0.0.1", 3003))
    mapped = await http_get(("::ffff:127.0.0.1", 3003))

    # then
    assert refused[0] == 403
    assert b"development SECRET_KEY" in refused[1]
    assert served == (200, b'{"status": "ok"}')
    assert mapped[0] == 200


async def test_it_refuses_a_websocket_that_arrived_on_a_network_address(settings) -> None:
    # given
    settings.SECRET_KEY_GENERATED = True
    communicator = ApplicationCommunicator(
        application, scope_of("websocket", server=("10.1.2.3", 3003), path="/ws")
    )

    # when
    await communicator.send_input({"type": "websocket.connect"})
    answer = await communicator.receive_output(10)

    # then the handshake is refused
    assert answer == {"type": "websocket.close", "code": 1008}


async def test_it_serves_every_address_with_a_configured_key(settings) -> None:
    # given SECRET_KEY set in the environment
    settings.SECRET_KEY_GENERATED = False

    # when / then
    assert (await http_get(("192.0.2.10", 3003)))[0] == 200
