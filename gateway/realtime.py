"""The server-side API of the WebSocket gateway: the ONLY module that talks to the channel layer.

Tasks, services and endpoints push to browsers through these functions — to one connection, to a
user (every open tab), to a room, or to everyone — never through ``group_send`` of their own.
Callers inside a transaction must call them from ``transaction.on_commit`` (STYLE rule 6), so a
browser never hears of a row that could still roll back.

The channel layer is allowed to drop messages (capacity, expiry, a process restart): PostgreSQL is the
replay log. An on-site intervention stays ``pending`` until the browser acks it, and a reconnecting
browser's ``resume`` replays every pending, unexpired one after its last ``seq`` (``onsite_replay``).
Reads and writes used by the consumer live here too, next to the frames they produce, so that the
consumer stays a thin parser (delivery/services.py belongs to the decision path).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.utils import timezone

from core.errors import ApplicationError, NotFoundError
from core.observability import get_logger
from interventions.models import Intervention
from interventions.selectors import (
    interventions_onsite_of_user,
    interventions_onsite_pending,
    interventions_onsite_replay,
)

logger = get_logger(__name__)

# Every socket joins this group, so broadcast() reaches everyone.
BROADCAST_GROUP = "ws.all"
# At most this many interventions per resume answer; a full page ends with "complete": false.
REPLAY_LIMIT = 100
ENGAGEMENT_EVENTS = frozenset({"displayed", "clicked", "dismissed"})
ROOM_NAME_MAX_LENGTH = 80
ROOM_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"
_ROOM_NAME = re.compile(ROOM_NAME_PATTERN)


# --- Addressing -------------------------------------------------------------------------------------------


def user_group(user_id: str) -> str:
    """A user's group name: hashed, because channel-layer group names are restricted to a short ASCII
    alphabet while user ids are arbitrary strings from the shop."""
    return "user." + hashlib.sha256(user_id.encode()).hexdigest()[:40]


def room_allowed(room: str) -> bool:
    """Rooms a client may join: a safe name starting with an allowed prefix (``WS_ROOM_PREFIXES``).

    A prefix ending with "." is a namespace (``campaign.42``); any other prefix is an exact name
    (``broadcast``). User groups live in another namespace (``user.``), so no room name reaches them.
    """
    if not _ROOM_NAME.match(room):
        return False
    for prefix in settings.WS_ROOM_PREFIXES:
        if prefix.endswith("."):
            if room.startswith(prefix) and len(room) > len(prefix):
                return True
        elif room == prefix:
            return True
    return False


def room_group(room: str) -> str:
    return f"room.{room}"


# --- Sending ---------------------------------------------------------------------------------------------


def _frame_event(frame: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ws.frame", "frame": frame}


async def asend_to_connection(channel_name: str, message: dict[str, Any]) -> None:
    await get_channel_layer().send(channel_name, _frame_event(message))


async def asend_to_user(user_id: str, message: dict[str, Any]) -> None:
    await get_channel_layer().group_send(user_group(user_id), _frame_event(message))


async def asend_to_room(room: str, message: dict[str, Any]) -> None:
    """Send ``{"type": "room_message", "room": room, "data": message}`` to the room's members."""
    frame = {"type": "room_message", "room": room, "data": message}
    await get_channel_layer().group_send(room_group(room), _frame_event(frame))


async def abroadcast(message: dict[str, Any]) -> None:
    await get_channel_layer().group_send(BROADCAST_GROUP, _frame_event(message))


def send_to_connection(channel_name: str, message: dict[str, Any]) -> None:
    async_to_sync(asend_to_connection)(channel_name, message)


def send_to_user(user_id: str, message: dict[str, Any]) -> None:
    async_to_sync(asend_to_user)(user_id, message)


def send_to_room(room: str, message: dict[str, Any]) -> None:
    async_to_sync(asend_to_room)(room, message)


def broadcast(message: dict[str, Any]) -> None:
    async_to_sync(abroadcast)(message)


# --- On-site interventions ------------------------------------------------------------------------------


class FrameFacts(Protocol):
    """What a frame reads from an intervention: a model instance, or the row the decision path has just
    committed (which it pushes without reading it back)."""

    @property
    def id(self) -> Any: ...
    @property
    def seq(self) -> int | None: ...
    @property
    def campaign_id(self) -> int: ...
    @property
    def variant_id(self) -> int | None: ...
    @property
    def content(self) -> dict[str, Any]: ...
    @property
    def expires_at(self) -> datetime | None: ...


def intervention_frame(intervention: FrameFacts) -> dict[str, Any]:
    """The SPEC §3.6 ``intervention`` frame. Content was rendered when the intervention was decided."""
    content = intervention.content or {}
    return {
        "type": "intervention",
        "seq": intervention.seq,
        "intervention_id": str(intervention.id),
        "campaign_id": str(intervention.campaign_id),
        "variant_id": str(intervention.variant_id) if intervention.variant_id else None,
        "content": {
            "kind": content.get("kind") or "modal",
            "title": content.get("title") or content.get("subject") or "",
            "body": content.get("body") or content.get("body_text") or "",
            "cta_label": content.get("cta_label") or "",
            "cta_url": content.get("cta_url") or "",
            "image_url": content.get("image_url") or "",
            "discount_code": content.get("discount_code") or "",
        },
        "expires_at": intervention.expires_at.isoformat() if intervention.expires_at else None,
    }


def onsite_replay(*, user_id: str, last_seq: int, limit: int = REPLAY_LIMIT) -> list[dict[str, Any]]:
    """Frames for every pending, unexpired on-site intervention of ``user_id`` after ``last_seq``, in seq
    order. One query; the (user_id, seq) index serves it."""
    interventions = interventions_onsite_replay(user_id=user_id, after_seq=last_seq, limit=limit)
    return [intervention_frame(intervention) for intervention in interventions]


async def aintervention_push(*, intervention_ids: Iterable[uuid.UUID | str]) -> int:
    """Send each pending, unexpired on-site intervention to its user's open sockets; returns how many
    were sent. Anything else (already delivered, expired, another channel) is skipped: a late or
    repeated call is harmless, and a dropped one is healed by the client's ``resume``."""
    frames = await database_sync_to_async(_push_frames)(list(intervention_ids))
    await _group_send_many(frames)
    return len(frames)


def _push_frames(intervention_ids: list[uuid.UUID | str]) -> list[tuple[str, dict[str, Any]]]:
    interventions = interventions_onsite_pending(intervention_ids=intervention_ids)
    return [(intervention.user_id, intervention_frame(intervention)) for intervention in interventions]


def intervention_push(*, intervention_ids: Iterable[uuid.UUID | str]) -> int:
    """Synchronous ``aintervention_push``; call it from ``transaction.on_commit``."""
    ids = list(intervention_ids)
    if not ids:
        return 0
    frames = _push_frames(ids)
    if frames:
        async_to_sync(_group_send_many)(frames)
    return len(frames)


def onsite_rows_push(
    *,
    rows: Sequence[tuple[str, FrameFacts]],
    loop: asyncio.AbstractEventLoop | None = None,
) -> int:
    """Send ``(user_id, intervention)`` pairs the caller has just committed as pending on-site
    interventions, without reading them back; returns how many were sent. Call it from
    ``transaction.on_commit``. Those already expired are skipped, like ``intervention_push`` does.

    ``loop``: an event loop this (synchronous) thread keeps for its lifetime — the consumer's hand-off
    thread — so the channel layer's Redis connections are reused from one batch to the next;
    ``async_to_sync`` starts a loop, a thread and new connections on every call.
    """
    now = timezone.now()
    frames = [
        (user_id, intervention_frame(row))
        for user_id, row in rows
        if row.expires_at is None or row.expires_at > now
    ]
    if not frames:
        return 0
    if loop is None:
        async_to_sync(_group_send_many)(frames)
    else:
        loop.run_until_complete(_group_send_many(frames))
    return len(frames)


async def _group_send_many(frames: list[tuple[str, dict[str, Any]]]) -> None:
    """Every frame to its user's group, each user's in seq order.

    On the Redis pub/sub layer (the default) a group send is one PUBLISH: all of them go in one pipeline
    per Redis shard — one round trip and one socket write for a batch instead of one each (on this
    decision path the writes cost more CPU than the rest of the hand-off). Any other layer gets one
    ``group_send`` per frame, several users at once."""
    layer = get_channel_layer()
    if isinstance(layer, RedisPubSubChannelLayer):
        await _publish_pipelined(layer, frames)
        return
    by_user: dict[str, list[dict[str, Any]]] = {}
    for user_id, frame in frames:
        by_user.setdefault(user_id, []).append(frame)

    async def send(user_id: str, user_frames: list[dict[str, Any]]) -> None:
        group = user_group(user_id)
        for frame in user_frames:
            await layer.group_send(group, {"type": "ws.intervention", "frame": frame})

    users = list(by_user.items())
    for start in range(0, len(users), _CONCURRENT_SENDS):
        await asyncio.gather(*(send(u, f) for u, f in users[start : start + _CONCURRENT_SENDS]))


async def _publish_pipelined(
    layer: RedisPubSubChannelLayer, frames: list[tuple[str, dict[str, Any]]]
) -> None:
    """What ``group_send`` does for each frame (PUBLISH the serialized message on the group's channel,
    on the group's shard, under the shard's lock), with the PUBLISHes of one shard pipelined."""
    loop_layer = layer._get_layer()
    by_shard: dict[Any, list[tuple[str, bytes]]] = {}
    for user_id, frame in frames:
        name = loop_layer._get_group_channel_name(user_group(user_id))
        data = layer.serialize({"type": "ws.intervention", "frame": frame})
        by_shard.setdefault(loop_layer._get_shard(name), []).append((name, data))
    for shard, messages in by_shard.items():
        async with shard._lock:
            shard._ensure_redis()
            pipe = shard._redis.pipeline(transaction=False)
            for name, data in messages:
                pipe.publish(name, data)
            await pipe.execute()


# Concurrent group sends of one call: well under the layer's connection pool (CHANNEL_LAYER_MAX_CONNECTIONS).
_CONCURRENT_SENDS = 32


def _owned_onsite(*, user_id: str, intervention_ids: list[str]) -> list[Intervention]:
    valid: list[uuid.UUID] = []
    for raw in intervention_ids:
        try:
            valid.append(uuid.UUID(str(raw)))
        except ValueError:
            raise NotFoundError("No such intervention", code="unknown_intervention") from None
    found = interventions_onsite_of_user(user_id=user_id, intervention_ids=valid)
    if len(found) != len(set(valid)):
        # Someone else's intervention looks exactly like a missing one: no oracle for ids.
        raise NotFoundError("No such intervention", code="unknown_intervention")
    return found


def onsite_ack(*, user_id: str, intervention_ids: list[str], occurred_at: datetime | None = None) -> int:
    """The browser has the interventions: their on-site Delivery and the Intervention become delivered
    and ``delivery.delivered`` goes to the outbox (tracking_event_record, idempotent per intervention,
    so a re-sent ack records nothing twice). Returns how many were acked."""
    from tracking.services import tracking_event_record

    interventions = _owned_onsite(user_id=user_id, intervention_ids=intervention_ids)
    for intervention in interventions:
        tracking_event_record(
            intervention_id=intervention.id,
            type="delivered",
            source="websocket",
            channel="onsite",
            occurred_at=occurred_at,
            event_id=f"ws-delivered:{intervention.id}",
        )
    return len(interventions)


def onsite_engagement_record(*, user_id: str, intervention_id: str, event: str) -> None:
    """displayed / clicked / dismissed reported by the browser, once per intervention and event."""
    from tracking.services import tracking_event_record

    if event not in ENGAGEMENT_EVENTS:
        raise ApplicationError("Unknown engagement event", code="invalid_event")
    (intervention,) = _owned_onsite(user_id=user_id, intervention_ids=[intervention_id])
    tracking_event_record(
        intervention_id=intervention.id,
        type=event,
        source="websocket",
        channel="onsite",
        event_id=f"ws-{event}:{intervention.id}",
    )
