"""The gateway under a real daphne: the lighter WebSocket protocol (gateway/daphne_protocol.py) and
the direct /ws route, end to end over TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from bench.ws_common import daphne_process
from gateway import realtime
from gateway.daphne_protocol import LeanWebSocketProtocol
from gateway.tickets import ws_ticket_issue


def test_the_asgi_module_makes_daphne_build_the_lighter_protocol() -> None:
    from daphne.ws_protocol import WebSocketFactory

    import intervention_engine.asgi  # noqa: F401

    assert WebSocketFactory.protocol is LeanWebSocketProtocol


def test_autobahn_options_are_read_from_the_factory_not_copied_per_socket() -> None:
    from daphne.ws_protocol import WebSocketFactory

    factory = WebSocketFactory(None, server="daphne")
    factory.setProtocolOptions(maxMessagePayloadSize=4096, autoPingTimeout=7)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    protocol.makeConnection(StringTransport())  # type: ignore[no-untyped-call]

    assert isinstance(protocol, LeanWebSocketProtocol)
    assert protocol.maxMessagePayloadSize == 4096
    assert protocol.autoPingTimeout == 7
    assert not {"maxMessagePayloadSize", "autoPingTimeout", "versions"} & set(vars(protocol))
    # an instance may still be given its own value
    protocol.autoPingTimeout = 3
    assert protocol.autoPingTimeout == 3
    assert factory.autoPingTimeout == 7


def test_autobahn_debug_arguments_are_computed_only_when_a_line_is_written() -> None:
    from autobahn.twisted import websocket as twisted_websocket
    from autobahn.websocket import protocol

    import intervention_engine.asgi  # noqa: F401

    for module in (protocol, twisted_websocket):
        deferred = module.hlval(42)
        assert not isinstance(deferred, str)
        assert "42" in f"{deferred}"
    assert "maxFramePayloadSize" in str(protocol.pformat({"maxFramePayloadSize": 1}))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def daphne_url(tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    # The deployed settings and the default flood guard: the gateway as it runs, not as benchmarked.
    deployed = {"DJANGO_SETTINGS_MODULE": "intervention_engine.settings", "WS_MAX_MESSAGES_PER_SECOND": "20"}
    with daphne_process(extra_env=deployed, log_path=log) as (port, _process):
        yield f"127.0.0.1:{port}"
    # Nothing failed in the application but the unknown path (Channels' URLRouter refuses it by raising).
    failures = [line for line in log.read_text().splitlines() if "Exception inside application" in line]
    assert all("No route found" in line for line in failures), failures
    assert "took too long to shut down" not in log.read_text()


async def _receive(ws: Any) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    frame: dict[str, Any] = message.json()
    return frame


@pytest.mark.asyncio
async def test_a_socket_works_end_to_end_after_its_handshake_is_forgotten(daphne_url) -> None:
    user = f"u-daphne-{time.monotonic_ns()}"
    origin = {"Origin": f"http://{daphne_url}"}
    async with aiohttp.ClientSession() as session:
        # given an open socket (the protocol has dropped its handshake data and HTTP request by now)
        ticket, _ = ws_ticket_issue(user_id=user, session_id="s-1", rooms=["campaign.7"])
        async with session.ws_connect(f"ws://{daphne_url}/ws?ticket={ticket}", headers=origin) as ws:
            # then it answers, joins rooms and gets pushes, large ones too
            await ws.send_json({"type": "ping"})
            assert await _receive(ws) == {"type": "pong"}
            await ws.send_json({"type": "join_room", "room": "campaign.7"})
            assert await _receive(ws) == {"type": "room_joined", "room": "campaign.7"}
            await realtime.asend_to_user(user, {"type": "notice", "body": "x" * 100_000})
            assert (await _receive(ws))["body"] == "x" * 100_000
            await realtime.asend_to_room("campaign.7", {"n": 1})
            assert await _receive(ws) == {"type": "room_message", "room": "campaign.7", "data": {"n": 1}}
            # and daphne still enforces its own frame limit (1 MiB), read from the factory
            await ws.send_str("x" * (1024 * 1024 + 1))
            closing = await asyncio.wait_for(ws.receive(), 5)
            assert closing.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            )

        # and a reused ticket, a foreign origin and an unknown path are still refused at the handshake
        for url, headers in (
            (f"ws://{daphne_url}/ws?ticket={ticket}", origin),
            (
                f"ws://{daphne_url}/ws?ticket={ws_ticket_issue(user_id=user, session_id='s')[0]}",
                {"Origin": "https://evil.com"},
            ),
            (f"ws://{daphne_url}/nope", origin),
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(url, headers=headers)


async def _closed_with(ws: Any) -> int | None:
    """Read until the server's close frame; its code as the client received it."""
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code  # type: ignore[no-any-return]


@pytest.mark.asyncio
async def test_a_flood_and_an_oversized_frame_reach_the_client_as_1008_and_1009(daphne_url) -> None:
    # (autobahn's own close accepts only 1000 and 3000-4999: these used to arrive as 1011, with a
    # traceback in daphne's log, which the fixture now refuses)
    origin = {"Origin": f"http://{daphne_url}"}
    async with aiohttp.ClientSession() as session:
        # given an open socket that sends far more than 20 messages in a second
        ticket, _ = ws_ticket_issue(user_id=f"u-flood-{time.monotonic_ns()}", session_id="s")
        async with session.ws_connect(f"ws://{daphne_url}/ws?ticket={ticket}", headers=origin) as ws:
            for _ in range(60):
                await ws.send_json({"type": "ping"})
            # then it is closed for policy
            assert await _closed_with(ws) == 1008

        # given another that sends one frame over WS_MAX_FRAME_BYTES (16 KiB; daphne's own limit is 1 MiB)
        ticket, _ = ws_ticket_issue(user_id=f"u-big-{time.monotonic_ns()}", session_id="s")
        async with session.ws_connect(f"ws://{daphne_url}/ws?ticket={ticket}", headers=origin) as ws:
            await ws.send_str("x" * (17 * 1024))
            # then it is closed as too big
            assert await _closed_with(ws) == 1009


@pytest.mark.asyncio
async def test_it_refuses_an_oversized_frame_from_its_header_before_reading_the_payload(daphne_url) -> None:
    # given an open socket, spoken to byte by byte
    host, port = daphne_url.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    ticket, _ = ws_ticket_issue(user_id=f"u-header-{time.monotonic_ns()}", session_id="s")
    writer.write(
        (
            f"GET /ws?ticket={ticket} HTTP/1.1\r\nHost: {daphne_url}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://{daphne_url}\r\n\r\n"
        ).encode()
    )
    handshake = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert handshake.startswith(b"HTTP/1.1 101"), handshake

    # when a text frame announces 512 KiB (over WS_MAX_FRAME_BYTES, under daphne's 1 MiB) and sends 8 bytes
    mask = b"\x01\x02\x03\x04"
    writer.write(b"\x81\xff" + (512 * 1024).to_bytes(8, "big") + mask + b"x" * 8)
    await writer.drain()

    # then the server closes with 1009 at once, without waiting for the rest of the payload
    first = await asyncio.wait_for(reader.readexactly(4), 5)
    writer.close()
    assert first[0] == 0x88  # a close frame
    assert int.from_bytes(first[2:4], "big") == 1009
