"""The /ws protocol through Channels' WebsocketCommunicator, against the real Redis channel layer and
PostgreSQL (SPEC §3.6, docs/websocket.md)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core import signing
from django.db import connections

from gateway import presence, realtime
from gateway.tickets import ticket_fingerprint, ws_ticket_issue
from intervention_engine.asgi import application
from interventions.models import Delivery, Intervention
from tracking.models import TrackingEvent

pytestmark = pytest.mark.asyncio
# The consumer reaches PostgreSQL from database_sync_to_async's worker thread, which cannot see a test
# transaction: tests touching interventions commit for real (and only those, flushing is slow).
with_db = pytest.mark.django_db(transaction=True)

ORIGIN = "https://shop.example.com"


@pytest.fixture(autouse=True)
def ws_settings(settings):
    settings.WS_ALLOWED_ORIGINS = [ORIGIN, "http://127.0.0.1:3003"]
    settings.WS_MAX_MESSAGES_PER_SECOND = 20
    return settings


def a_user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def communicator(*, ticket: str | None, origin: str = ORIGIN) -> WebsocketCommunicator:
    path = "/ws" if ticket is None else f"/ws?ticket={ticket}"
    headers = [(b"origin", origin.encode())] if origin else []
    return WebsocketCommunicator(application, path, headers=headers)


async def handshake(comm: WebsocketCommunicator) -> tuple[bool, int | str | None]:
    """Connect and hang up; returns (accepted, close code)."""
    result: tuple[bool, int | str | None] = await comm.connect()
    # A server would now drop the TCP connection; tell the consumer so it stops listening.
    await comm.disconnect()
    return result


class Socket:
    """An open, authenticated socket for ``user_id``."""

    def __init__(self, user_id: str, comm: WebsocketCommunicator) -> None:
        self.user_id = user_id
        self.comm = comm

    async def send(self, message: dict[str, Any]) -> None:
        await self.comm.send_json_to(message)

    async def receive(self, timeout: float = 3) -> dict[str, Any]:
        frame: dict[str, Any] = await self.comm.receive_json_from(timeout=timeout)
        return frame

    async def roundtrip(self) -> None:
        """Wait until everything sent before has been handled (frames are handled in order)."""
        await self.send({"type": "ping"})
        while (await self.receive())["type"] != "pong":
            pass

    async def nothing_more(self) -> bool:
        nothing: bool = await self.comm.receive_nothing(timeout=0.3)
        return nothing


@pytest.fixture(autouse=True)
async def close_worker_connections() -> AsyncIterator[None]:
    # The worker thread keeps its connection (CONN_MAX_AGE); close it so the test database can be dropped.
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
async def open_socket() -> AsyncIterator[Callable[..., Any]]:
    opened: list[WebsocketCommunicator] = []

    async def open_(
        user_id: str | None = None, session_id: str = "s-1", rooms: tuple[str, ...] = ()
    ) -> Socket:
        user_id = user_id or a_user()
        ticket, _ = await database_sync_to_async(ws_ticket_issue)(
            user_id=user_id, session_id=session_id, rooms=rooms
        )
        comm = communicator(ticket=ticket)
        connected, code = await comm.connect()
        assert connected, code
        opened.append(comm)
        return Socket(user_id, comm)

    yield open_
    for comm in opened:
        await comm.disconnect()


# --- Handshake ---------------------------------------------------------------------------------------


async def test_it_accepts_a_fresh_ticket_from_an_allowed_origin(open_socket) -> None:
    # given a ticket for u-1 / when the browser connects with it
    socket = await open_socket()

    # then the socket is open and answers a ping
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}


async def test_it_refuses_a_missing_ticket() -> None:
    assert await handshake(communicator(ticket=None)) == (False, 4401)


async def test_it_refuses_a_tampered_ticket() -> None:
    # given a valid ticket whose payload is swapped for another user's
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id="u-victim", session_id="s")
    other, _ = await database_sync_to_async(ws_ticket_issue)(user_id="u-attacker", session_id="s")
    forged = other.split(":", 1)[0] + ":" + ticket.split(":", 1)[1]

    # when it is used / then it is refused
    assert await handshake(communicator(ticket=forged)) == (False, 4401)
    assert await handshake(communicator(ticket=ticket[:-2] + "xx")) == (False, 4401)


async def test_it_refuses_an_expired_ticket(monkeypatch) -> None:
    # given a ticket signed two minutes ago (TTL is 60 s)
    real_time = time.time
    # django.core.signing reads the clock through its own "time" module.
    signing_clock = signing.time  # type: ignore[attr-defined]
    monkeypatch.setattr(signing_clock, "time", lambda: real_time() - 120)
    ticket, _ = ws_ticket_issue(user_id=a_user(), session_id="s")
    monkeypatch.setattr(signing_clock, "time", real_time)

    # when / then
    assert await handshake(communicator(ticket=ticket)) == (False, 4401)


async def test_it_refuses_a_reused_ticket() -> None:
    # given a ticket already used once
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id=a_user(), session_id="s")
    first = communicator(ticket=ticket)
    assert (await first.connect())[0]

    # when it is presented again
    second = await handshake(communicator(ticket=ticket))

    # then it is refused
    assert second == (False, 4401)
    await first.disconnect()


async def test_it_logs_a_fingerprint_of_a_refused_ticket_never_the_ticket(caplog) -> None:
    # given a ticket used once, then replayed
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id=a_user(), session_id="s")
    first = communicator(ticket=ticket)
    assert (await first.connect())[0]
    caplog.set_level(logging.INFO)

    # when the replay is refused
    assert await handshake(communicator(ticket=ticket)) == (False, 4401)

    # then the refusal is logged with the ticket's fingerprint, and the ticket appears nowhere
    assert "ticket_reused" in caplog.text
    assert ticket_fingerprint(ticket) in caplog.text
    assert ticket not in caplog.text
    assert ticket.split(":")[-1] not in caplog.text  # not even its signature
    await first.disconnect()


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example.com.evil.com",
        "https://evil.com",
        "http://shop.example.com",
        "https://shop.example.com:8443",
        "null",
        "",
    ],
)
async def test_it_refuses_a_foreign_or_look_alike_origin(origin: str) -> None:
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id=a_user(), session_id="s")

    result = await handshake(communicator(ticket=ticket, origin=origin))

    assert result == (False, 4403)


async def test_it_does_not_burn_a_ticket_on_a_refused_origin() -> None:
    # given a ticket first presented from a foreign origin
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id=a_user(), session_id="s")
    assert await handshake(communicator(ticket=ticket, origin="https://evil.com")) == (False, 4403)

    # when the real page uses it / then it still works
    comm = communicator(ticket=ticket)
    assert (await comm.connect())[0]
    await comm.disconnect()


async def test_it_refuses_the_handshake_when_redis_cannot_record_the_ticket(settings, redis_server) -> None:
    # given the gateway's Redis is down (the channel layer's Redis is another, still up)
    url, process = redis_server
    settings.REDIS_URL = url
    process.terminate()
    process.wait(10)
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id=a_user(), session_id="s")

    # when a browser connects / then it is refused (fail closed), not accepted unchecked
    assert await handshake(communicator(ticket=ticket)) == (False, 1011)


async def test_a_disconnect_completes_when_redis_went_away(settings, redis_server, caplog) -> None:
    from gateway import stats

    # given an open socket, then the gateway's Redis stops
    url, process = redis_server
    settings.REDIS_URL = url
    connections_before = stats.STATS.connections
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id=a_user(), session_id="s")
    comm = communicator(ticket=ticket)
    assert (await comm.connect())[0]
    await Socket("", comm).roundtrip()
    process.terminate()
    process.wait(10)

    # when the browser hangs up / then the clean-up finishes (presence will lapse by itself) instead of
    # hanging until daphne kills it
    with caplog.at_level(logging.WARNING):
        await comm.disconnect(timeout=6)
    assert stats.STATS.connections == connections_before
    assert "ws_presence_remove_failed" in caplog.text


# --- Transport limits and malformed messages ---------------------------------------------------------


async def test_it_closes_1009_on_an_oversized_frame(open_socket, settings) -> None:
    settings.WS_MAX_FRAME_BYTES = 1024
    socket = await open_socket()

    await socket.comm.send_to(text_data='{"type":"ping","pad":"' + "x" * 2000 + '"}')

    assert await socket.comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 1009}


async def test_it_closes_1008_on_a_flood(open_socket, settings) -> None:
    settings.WS_MAX_MESSAGES_PER_SECOND = 5
    socket = await open_socket()

    for _ in range(12):
        await socket.send({"type": "ping"})
    outputs = [await socket.comm.receive_output(timeout=3) for _ in range(6)]

    # then the burst allowance is answered and the socket is closed with 1008
    assert [o.get("text") for o in outputs[:5]] == ['{"type":"pong"}'] * 5
    assert outputs[5] == {"type": "websocket.close", "code": 1008}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": "subscribe_everything"}', "unknown_type"),
        ('{"type": "resume", "last_seq": "x"}', "invalid_message"),
        ('{"type": "ack"}', "invalid_message"),
        ('{"type": "engagement", "intervention_id": "x", "event": "purchased"}', "invalid_message"),
    ],
)
async def test_it_answers_a_malformed_message_with_an_error_and_stays_open(open_socket, raw, code) -> None:
    socket = await open_socket()

    await socket.comm.send_to(text_data=raw)

    assert await socket.receive() == {"type": "error", "code": code}
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}


# --- Rooms and addressing ----------------------------------------------------------------------------


async def test_it_lets_a_socket_join_a_room_its_ticket_names_and_receive_its_messages(open_socket) -> None:
    socket, outsider = await open_socket(rooms=("campaign.42",)), await open_socket()
    await socket.send({"type": "join_room", "room": "campaign.42"})
    assert await socket.receive() == {"type": "room_joined", "room": "campaign.42"}

    await realtime.asend_to_room("campaign.42", {"headline": "Flash sale"})

    assert await socket.receive() == {
        "type": "room_message",
        "room": "campaign.42",
        "data": {"headline": "Flash sale"},
    }
    assert await outsider.nothing_more()


@pytest.mark.parametrize(
    "room", ["user.abc", "campaign.", "broadcastx", "other", "campaign.42/../x", "Campaign.1", 42, ""]
)
async def test_it_refuses_rooms_outside_the_naming_rule(open_socket, room) -> None:
    socket = await open_socket(rooms=("campaign.42", "broadcast"))

    await socket.send({"type": "join_room", "room": room})

    assert await socket.receive() == {"type": "error", "code": "room_forbidden"}


async def test_it_refuses_to_join_another_users_group(open_socket) -> None:
    # given a victim and an attacker who knows the victim's group name
    victim, attacker = await open_socket(), await open_socket()
    await attacker.send({"type": "join_room", "room": realtime.user_group(victim.user_id)})
    assert await attacker.receive() == {"type": "error", "code": "room_forbidden"}

    # when the victim gets a message / then only the victim sees it
    await realtime.asend_to_user(victim.user_id, {"type": "notice", "text": "private"})
    assert await victim.receive() == {"type": "notice", "text": "private"}
    assert await attacker.nothing_more()


async def test_it_refuses_a_room_the_ticket_does_not_name(open_socket) -> None:
    # given a socket whose ticket names campaign.1 only
    socket = await open_socket(rooms=("campaign.1",))

    # when it tries another room that the naming rule allows
    await socket.send({"type": "join_room", "room": "campaign.2"})

    # then it is refused, and messages to that room do not reach it
    assert await socket.receive() == {"type": "error", "code": "room_forbidden"}
    await realtime.asend_to_room("campaign.2", {"x": 1})
    assert await socket.nothing_more()


async def test_it_stops_room_messages_after_leave_room(open_socket) -> None:
    socket = await open_socket(rooms=("broadcast",))
    await socket.send({"type": "join_room", "room": "broadcast"})
    await socket.receive()

    await socket.send({"type": "leave_room", "room": "broadcast"})
    assert await socket.receive() == {"type": "room_left", "room": "broadcast"}
    await realtime.asend_to_room("broadcast", {"x": 1})

    assert await socket.nothing_more()
    await socket.send({"type": "leave_room", "room": "broadcast"})
    assert await socket.receive() == {"type": "error", "code": "not_in_room"}


async def test_it_sends_to_every_tab_of_a_user_and_to_one_connection(open_socket) -> None:
    user = a_user()
    tab1, tab2 = await open_socket(user), await open_socket(user, session_id="s-2")

    await realtime.asend_to_user(user, {"type": "notice", "n": 1})
    assert await tab1.receive() == {"type": "notice", "n": 1}
    assert await tab2.receive() == {"type": "notice", "n": 1}

    # one connection only: the server learns channel names from its own consumers; find tab2's
    consumer_channels = await _channels_of(user)
    for channel in consumer_channels:
        await realtime.asend_to_connection(channel, {"type": "notice", "n": 2, "to": channel})
    got1, got2 = await tab1.receive(), await tab2.receive()
    assert got1["to"] != got2["to"]


async def _channels_of(user_id: str) -> list[str]:
    from core.redis import redis_async

    members = await redis_async().zrange(f"ie:presence:user:{user_id}", 0, -1)
    return list(members)


async def test_it_broadcasts_to_everyone(open_socket) -> None:
    a, b = await open_socket(), await open_socket()

    await realtime.abroadcast({"type": "notice", "text": "maintenance at 2am"})

    assert await a.receive() == {"type": "notice", "text": "maintenance at 2am"}
    assert await b.receive() == {"type": "notice", "text": "maintenance at 2am"}


# --- Presence -----------------------------------------------------------------------------------------


async def test_it_tracks_presence_across_connect_ping_and_disconnect(open_socket) -> None:
    user, offline = a_user(), a_user()
    socket = await open_socket(user)
    await socket.roundtrip()

    online = await database_sync_to_async(presence.online_user_ids)([user, offline])
    assert online == {user}

    await socket.comm.disconnect()
    await asyncio.sleep(0.1)
    assert not await database_sync_to_async(presence.is_online)(user)


async def test_it_lets_a_crashed_process_presence_lapse(settings) -> None:
    # given a socket registered by a process that then died without cleaning up (TTL 1 s)
    settings.WS_PRESENCE_TTL_SECONDS = 1
    user = a_user()
    await presence.apresence_refresh(user_id=user, channel_name="specific.dead-process!abc")
    assert await database_sync_to_async(presence.is_online)(user)

    # when the TTL passes / then the user is offline
    await asyncio.sleep(1.2)
    assert not await database_sync_to_async(presence.is_online)(user)


# --- Interventions: push, ack, engagement, resume -------------------------------------------------------


@with_db
async def test_it_pushes_a_pending_onsite_intervention_to_the_users_sockets(
    open_socket, onsite_intervention
) -> None:
    socket = await open_socket()
    intervention = await database_sync_to_async(onsite_intervention)(user_id=socket.user_id, seq=1)

    sent = await database_sync_to_async(realtime.intervention_push)(intervention_ids=[intervention.id])

    frame = await socket.receive()
    assert sent == 1
    assert frame == {
        "type": "intervention",
        "seq": 1,
        "intervention_id": str(intervention.id),
        "campaign_id": str(intervention.campaign_id),
        "variant_id": str(intervention.variant_id),
        "content": {
            "kind": "modal",
            "title": "Your cart misses you",
            "body": "Come back for 10% off",
            "cta_label": "Back to cart",
            "cta_url": "/cart",
            "image_url": "",
            "discount_code": "SAVE10",
        },
        "expires_at": intervention.expires_at.isoformat(),
    }


@with_db
async def test_it_never_pushes_expired_or_delivered_interventions(open_socket, onsite_intervention) -> None:
    socket = await open_socket()
    make = database_sync_to_async(onsite_intervention)
    expired = await make(user_id=socket.user_id, seq=1, expires_in=timedelta(seconds=-1))
    delivered = await make(user_id=socket.user_id, seq=2, status="delivered")

    sent = await realtime.aintervention_push(intervention_ids=[expired.id, delivered.id])

    assert sent == 0
    assert await socket.nothing_more()


@with_db
async def test_it_marks_delivered_on_ack_once(open_socket, onsite_intervention) -> None:
    socket = await open_socket()
    intervention = await database_sync_to_async(onsite_intervention)(user_id=socket.user_id, seq=1)

    await socket.send({"type": "ack", "intervention_id": str(intervention.id)})
    await socket.send({"type": "ack", "intervention_id": str(intervention.id)})
    await socket.roundtrip()

    state = await database_sync_to_async(_state)(intervention.id)
    assert state["status"] == "delivered"
    assert state["delivery"] == "delivered"
    assert state["events"] == [("delivered", "websocket")]


@with_db
async def test_it_refuses_to_ack_another_users_intervention(open_socket, onsite_intervention) -> None:
    socket = await open_socket()
    someone_elses = await database_sync_to_async(onsite_intervention)(user_id=a_user(), seq=1)

    await socket.send({"type": "ack", "intervention_id": str(someone_elses.id)})

    assert await socket.receive() == {"type": "error", "code": "unknown_intervention"}
    assert (await database_sync_to_async(_state)(someone_elses.id))["status"] == "pending"


@with_db
async def test_it_records_engagement_from_the_socket(open_socket, onsite_intervention) -> None:
    socket = await open_socket()
    intervention = await database_sync_to_async(onsite_intervention)(user_id=socket.user_id, seq=1)

    for event in ("displayed", "clicked", "clicked", "dismissed"):
        await socket.send({"type": "engagement", "intervention_id": str(intervention.id), "event": event})
    await socket.roundtrip()

    events = (await database_sync_to_async(_state)(intervention.id))["events"]
    assert sorted(events) == [
        ("clicked", "websocket"),
        ("dismissed", "websocket"),
        ("displayed", "websocket"),
    ]


@with_db
async def test_it_resumes_in_order_without_duplicates_or_expired(open_socket, onsite_intervention) -> None:
    # given seq 1 acked, 2 expired, 3 and 5 pending, 4 for another user, 6 delivered
    user = a_user()
    make = database_sync_to_async(onsite_intervention)
    acked = await make(user_id=user, seq=1)
    await make(user_id=user, seq=2, expires_in=timedelta(seconds=-5))
    third = await make(user_id=user, seq=3, title="third")
    await make(user_id=a_user(), seq=4)
    fifth = await make(user_id=user, seq=5, title="fifth")
    await make(user_id=user, seq=6, status="delivered")
    socket = await open_socket(user)
    await socket.send({"type": "ack", "intervention_id": str(acked.id)})
    await socket.roundtrip()

    # when the client resumes after seq 0, and a push of seq 5 races in afterwards
    await socket.send({"type": "resume", "last_seq": 0})
    first, second, answer = await socket.receive(), await socket.receive(), await socket.receive()
    await realtime.aintervention_push(intervention_ids=[fifth.id])

    # then it gets 3 then 5, each once, and the answer says the replay is complete up to 5
    assert [(first["seq"], first["intervention_id"]), (second["seq"], second["intervention_id"])] == [
        (3, str(third.id)),
        (5, str(fifth.id)),
    ]
    assert answer == {"type": "replayed", "last_seq": 5, "complete": True}
    assert await socket.nothing_more()


@with_db
async def test_it_resumes_only_after_last_seq(open_socket, onsite_intervention) -> None:
    user = a_user()
    make = database_sync_to_async(onsite_intervention)
    for seq in (1, 2, 3):
        await make(user_id=user, seq=seq)
    socket = await open_socket(user)

    await socket.send({"type": "resume", "last_seq": 2})

    assert (await socket.receive())["seq"] == 3
    assert await socket.receive() == {"type": "replayed", "last_seq": 3, "complete": True}
    assert await socket.nothing_more()


@with_db
async def test_it_answers_a_full_replay_page_as_incomplete(open_socket, onsite_intervention) -> None:
    # given one more pending intervention than a replay page holds
    user = a_user()
    make = database_sync_to_async(onsite_intervention)
    for seq in range(1, realtime.REPLAY_LIMIT + 2):
        await make(user_id=user, seq=seq)
    socket = await open_socket(user)

    # when the client resumes from the start, then from where the first answer ended
    await socket.send({"type": "resume", "last_seq": 0})
    first_page = [await socket.receive() for _ in range(realtime.REPLAY_LIMIT + 1)]
    await socket.send({"type": "resume", "last_seq": realtime.REPLAY_LIMIT})
    second_page = [await socket.receive(), await socket.receive()]

    # then the first answer says more may follow, the second that the replay is complete
    assert [f["seq"] for f in first_page[:-1]] == list(range(1, realtime.REPLAY_LIMIT + 1))
    assert first_page[-1] == {"type": "replayed", "last_seq": realtime.REPLAY_LIMIT, "complete": False}
    assert second_page[0]["seq"] == realtime.REPLAY_LIMIT + 1
    assert second_page[1] == {"type": "replayed", "last_seq": realtime.REPLAY_LIMIT + 1, "complete": True}
    assert await socket.nothing_more()


def _state(intervention_id: uuid.UUID) -> dict[str, Any]:
    intervention = Intervention.objects.get(id=intervention_id)
    delivery = Delivery.objects.get(intervention=intervention, channel="onsite")
    events = list(
        TrackingEvent.objects.filter(intervention=intervention).order_by("id").values_list("type", "source")
    )
    return {"status": intervention.status, "delivery": delivery.status, "events": events}


# --- Many sockets at once ------------------------------------------------------------------------------


async def test_it_cleans_up_after_many_sockets_hang_up_at_once(open_socket) -> None:
    from core.redis import redis_async
    from gateway import stats
    from gateway.channel_layer import GatewayChannelLayer

    # given 40 sockets of 20 users (two tabs each), all in a room
    connections_before = stats.STATS.connections
    users = [a_user() for _ in range(20)]
    sockets = [
        await open_socket(user, session_id=f"s-{tab}", rooms=("campaign.mass",))
        for user in users
        for tab in (1, 2)
    ]
    for socket in sockets:
        await socket.send({"type": "join_room", "room": "campaign.mass"})
        assert await socket.receive() == {"type": "room_joined", "room": "campaign.mass"}
    assert stats.STATS.connections == connections_before + 40
    assert await database_sync_to_async(presence.online_user_ids)(users) == set(users)

    # when every one of them hangs up in the same moment
    await asyncio.gather(*(socket.comm.disconnect() for socket in sockets))

    # then nobody is online any more, the counters are back, and the process holds no subscription of
    # theirs (user groups and the room), in Redis or in memory
    assert await database_sync_to_async(presence.online_user_ids)(users) == set()
    assert stats.STATS.connections == connections_before
    assert "campaign.mass" not in stats.STATS.rooms
    layer = get_channel_layer()
    if not isinstance(layer, GatewayChannelLayer):  # WS_CHANNEL_LAYER=core
        return
    names = [layer._get_layer()._get_group_channel_name(realtime.user_group(u)) for u in users]
    names.append(layer._get_layer()._get_group_channel_name(realtime.room_group("campaign.mass")))
    await asyncio.sleep(0.05)
    assert all(count == 0 for _, count in await redis_async().pubsub_numsub(*names))
    assert not any(name in layer._get_layer().groups for name in names)


async def test_a_socket_whose_handler_fails_still_leaves_its_groups_counters_and_presence(
    monkeypatch,
) -> None:
    from gateway import stats
    from gateway.consumers import InterventionConsumer

    # given an open socket
    user = a_user()
    connections_before = stats.STATS.connections
    ticket, _ = await database_sync_to_async(ws_ticket_issue)(user_id=user, session_id="s")
    comm = communicator(ticket=ticket)
    assert (await comm.connect())[0]
    await Socket(user, comm).roundtrip()

    # when one of its handlers fails (daphne then closes the socket with 1011)
    async def broken(self: Any, message: dict[str, Any]) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(InterventionConsumer.handlers, "ping", broken)
    await comm.send_json_to({"type": "ping"})
    with pytest.raises(RuntimeError):
        await comm.receive_output(timeout=0.5)

    # then it is cleaned up as if it had disconnected
    deadline = time.monotonic() + 3
    while await database_sync_to_async(presence.is_online)(user):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert stats.STATS.connections == connections_before


async def test_a_user_stays_online_until_their_last_tab_closes(open_socket) -> None:
    user = a_user()
    tab1, tab2 = await open_socket(user), await open_socket(user, session_id="s-2")

    await tab1.comm.disconnect()
    assert await database_sync_to_async(presence.is_online)(user)
    await realtime.asend_to_user(user, {"type": "notice", "n": 1})
    assert await tab2.receive() == {"type": "notice", "n": 1}

    await tab2.comm.disconnect()
    assert not await database_sync_to_async(presence.is_online)(user)


async def test_pushes_arriving_during_a_slow_message_wait_their_turn_in_order(
    open_socket, monkeypatch
) -> None:
    # given a socket busy with a message that takes a while (an ack waiting for the database)
    user = a_user()
    socket = await open_socket(user)
    release = asyncio.Event()
    handled: list[str] = []

    async def slow_ack(self: Any, message: dict[str, Any]) -> None:
        handled.append("ack started")
        await release.wait()
        handled.append("ack done")

    from gateway.consumers import InterventionConsumer

    monkeypatch.setitem(InterventionConsumer.handlers, "ack", slow_ack)
    await socket.send({"type": "ack", "intervention_id": "x"})
    while not handled:
        await asyncio.sleep(0.01)

    # when pushes arrive meanwhile
    for n in range(3):
        await realtime.asend_to_user(user, {"type": "notice", "n": n})
    await asyncio.sleep(0.2)

    # then none is sent before the slow message is done, and then all are, in order
    assert await socket.nothing_more()
    release.set()
    assert [(await socket.receive())["n"] for _ in range(3)] == [0, 1, 2]
    assert handled == ["ack started", "ack done"]
