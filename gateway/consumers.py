"""The ``/ws`` socket: authenticate at the handshake, keep subscriptions, relay frames (SPEC §3.6).

Thin by design (STYLE rule 5): it parses frames, enforces the transport limits, and calls the gateway's
services in gateway.realtime / gateway.tickets / gateway.presence. See docs/websocket.md for the
protocol, the close codes and the reasons behind them.

Refusals at the handshake close before accepting, so daphne answers the upgrade with HTTP 403 and no
socket ever opens; the ASGI close code tells tests (and logs) why: 4401 for the ticket, 4403 for the
Origin. After the handshake: 1009 for an oversized frame, 1008 for a flood; a malformed message gets an
``error`` frame and the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import RedisError

from core.errors import ApplicationError
from core.observability import get_logger
from gateway import presence, realtime, stats
from gateway.channel_layer import GatewayChannelLayer
from gateway.tickets import TicketRefused, aws_ticket_redeem, ticket_fingerprint

logger = get_logger(__name__)

CLOSE_TICKET = 4401
CLOSE_ORIGIN = 4403
CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_UNAVAILABLE = 1011
# How many intervention ids a socket remembers having sent, to drop a push that a resume already sent.
_SENT_MEMORY = 512
_MAX_ACK_BATCH = 100
# A disconnect's clean-up waits at most this long for Redis, well within daphne's application close
# timeout (10 s), after which daphne would cancel it half-done.
_CLEANUP_SECONDS = 5.0


def origin_allowed(origin: str) -> bool:
    """Exact match of scheme, host and port against WS_ALLOWED_ORIGINS: no prefix or suffix matching,
    so ``https://shop.example.com.evil.com`` never passes for ``https://shop.example.com``."""
    return origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in settings.WS_ALLOWED_ORIGINS}


# Clean-ups of consumers whose handler failed (the loop keeps only weak references to tasks).
_cleanups: set[asyncio.Future[None]] = set()


class InterventionConsumer(AsyncWebsocketConsumer):
    """One per socket. With 10,000 idle sockets per process every attribute counts (issue 5,
    docs/performance.md): state is created when first needed, the handshake headers are dropped once
    checked, and channel-layer messages arrive through a mailbox instead of a queue and a task."""

    user_id: str = ""
    session_id: str = ""
    opened = False
    # Rooms joined and interventions sent (ids, oldest first), created on first use.
    rooms: set[str] | None = None
    # The rooms the ticket allows (an instance attribute only when it names some).
    allowed_rooms: frozenset[str] = frozenset()
    sent: OrderedDict[str, None] | None = None
    # Flood guard: a token bucket of WS_MAX_MESSAGES_PER_SECOND (rate and burst), filled on first use.
    tokens: float = -1.0
    stamp: float = 0.0
    # Channel-layer messages waiting for their turn, and the task running them while the socket idles.
    inbox: list[bytes] | None = None
    drainer: asyncio.Future[None] | None = None
    busy = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' loop, without its two long-lived tasks per socket: the socket's own task reads
        daphne's messages; the channel layer (gateway.channel_layer) hands this socket's messages to
        ``_mailbox``, which runs them in a short-lived task only when the socket is idle. Handlers
        still run one at a time, in arrival order per source."""
        layer = get_channel_layer(self.channel_layer_alias)
        if not isinstance(layer, GatewayChannelLayer):
            await super().__call__(scope, receive, send)
            return
        self.scope = scope
        self.channel_layer = layer
        self.base_send = send
        self.channel_name = await layer.new_mailbox(self._mailbox)
        try:
            while True:
                message = await receive()
                while self.drainer is not None:
                    await self.drainer
                self.busy = True
                try:
                    await self.dispatch(message)
                finally:
                    self.busy = False
                if self.inbox:
                    await self._drain()
        except StopConsumer:
            pass
        except Exception:
            if self.opened:
                # A handler failed (daphne closes the socket with 1011 and sends no disconnect): leave
                # the groups, the counters and presence all the same. (Cancelled at shutdown instead,
                # presence lapses by its TTL.)
                task = asyncio.ensure_future(self.disconnect(CLOSE_UNAVAILABLE))
                _cleanups.add(task)
                task.add_done_callback(_cleanups.discard)
            raise
        finally:
            layer.close_mailbox(self.channel_name)
            if self.drainer is not None:
                self.drainer.cancel()

    def _mailbox(self, data: bytes) -> None:
        if self.inbox is None:
            self.inbox = [data]
        else:
            self.inbox.append(data)
        if not self.busy and self.drainer is None:
            self.drainer = asyncio.ensure_future(self._drain_in_background())

    async def _drain_in_background(self) -> None:
        try:
            await self._drain()
        except Exception:
            logger.exception("ws_handler_failed", user_id=self.user_id)
            await self.close(code=CLOSE_UNAVAILABLE)
        finally:
            self.drainer = None

    async def _drain(self) -> None:
        self.busy = True
        try:
            while self.inbox:
                data = self.inbox.pop(0)
                await self.dispatch(self.channel_layer.deserialize(data))
            self.inbox = None
        finally:
            self.busy = False

    async def connect(self) -> None:
        headers = self.scope.get("headers") or []
        origin = next((value for name, value in headers if name == b"origin"), b"").decode("latin-1")
        if isinstance(headers, list):
            # Only the Origin was needed. Every copy of the scope (and daphne's protocol) shares this
            # list; emptied, it stops holding ~1.3 KiB of header tuples per idle socket.
            headers.clear()
        if not origin_allowed(origin):
            logger.info("ws_refused", reason="origin", origin=origin[:200])
            await self.close(code=CLOSE_ORIGIN)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        ticket = (query.get("ticket") or [""])[0]
        try:
            claims = await aws_ticket_redeem(ticket=ticket)
        except TicketRefused as exc:
            logger.info("ws_refused", reason=exc.code, ticket=ticket_fingerprint(ticket) if ticket else "")
            await self.close(code=CLOSE_TICKET)
            return
        except RedisError as exc:
            # Fail closed: a ticket whose single use cannot be recorded is not accepted. The client's
            # backoff brings it back when Redis is.
            logger.warning("ws_refused", reason="redis_unavailable", error=str(exc))
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        self.user_id, self.session_id = claims.user_id, claims.session_id
        if claims.rooms:
            self.allowed_rooms = claims.rooms
        self.opened = True
        await self.channel_layer.group_add(realtime.user_group(self.user_id), self.channel_name)
        await self.channel_layer.group_add(realtime.BROADCAST_GROUP, self.channel_name)
        await self.accept()
        await presence.apresence_refresh(user_id=self.user_id, channel_name=self.channel_name)
        stats.connection_opened(user_id=self.user_id)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Channels' version, without its hop to a worker thread to close stale database connections
        (this socket never holds one, see ``dispatch``): 10,000 sockets hanging up at once queued
        10,000 hops on the thread pool."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        if not self.opened:
            return
        self.opened = False
        rooms = self.rooms or set()
        await self.channel_layer.group_discard(realtime.user_group(self.user_id), self.channel_name)
        await self.channel_layer.group_discard(realtime.BROADCAST_GROUP, self.channel_name)
        for room in rooms:
            await self.channel_layer.group_discard(realtime.room_group(room), self.channel_name)
        stats.connection_closed(user_id=self.user_id, rooms=rooms)
        try:
            async with asyncio.timeout(_CLEANUP_SECONDS):
                await presence.apresence_remove(user_id=self.user_id, channel_name=self.channel_name)
        except (TimeoutError, RedisError) as exc:
            # The socket's presence lapses by itself after WS_PRESENCE_TTL_SECONDS.
            logger.warning("ws_presence_remove_failed", user_id=self.user_id, error=repr(exc))

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch, without its hop to a worker thread before every message to close stale
        database connections: this socket touches the database only through database_sync_to_async,
        which does that itself, so the hop only cost a thread round trip per pushed frame (it halved
        the pushes per second in bench/ws_push)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def take_token(self) -> bool:
        rate = float(settings.WS_MAX_MESSAGES_PER_SECOND)
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = rate
        else:
            self.tokens = min(rate, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    # --- Client → server ----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        stats.STATS.messages_in += 1
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > settings.WS_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        if not self.take_token():
            logger.info("ws_flood_closed", user_id=self.user_id)
            await self.close(code=CLOSE_POLICY)
            return
        try:
            message = json.loads(text_data if text_data is not None else (bytes_data or b""))
        except (ValueError, UnicodeDecodeError):
            await self.send_error("invalid_json")
            return
        if not isinstance(message, dict):
            await self.send_error("invalid_message")
            return
        handler = self.handlers.get(str(message.get("type")))
        if handler is None:
            await self.send_error("unknown_type")
            return
        try:
            await handler(self, message)
        except ApplicationError as exc:
            await self.send_error(exc.code)

    async def on_ping(self, message: dict[str, Any]) -> None:
        await presence.apresence_refresh(user_id=self.user_id, channel_name=self.channel_name)
        await self.send_json({"type": "pong"})

    async def on_ack(self, message: dict[str, Any]) -> None:
        ids = message.get("intervention_ids") or [message.get("intervention_id")]
        if not isinstance(ids, list) or not ids or len(ids) > _MAX_ACK_BATCH:
            raise ApplicationError("ack needs intervention_id", code="invalid_message")
        if not all(isinstance(i, str) and i for i in ids):
            raise ApplicationError("ack needs intervention_id", code="invalid_message")
        await database_sync_to_async(realtime.onsite_ack)(user_id=self.user_id, intervention_ids=ids)

    async def on_engagement(self, message: dict[str, Any]) -> None:
        intervention_id, event = message.get("intervention_id"), message.get("event")
        if not isinstance(intervention_id, str) or event not in realtime.ENGAGEMENT_EVENTS:
            raise ApplicationError("engagement needs intervention_id and event", code="invalid_message")
        await database_sync_to_async(realtime.onsite_engagement_record)(
            user_id=self.user_id, intervention_id=intervention_id, event=str(event)
        )

    async def on_resume(self, message: dict[str, Any]) -> None:
        last_seq = message.get("last_seq", 0)
        if last_seq is None:
            last_seq = 0
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            raise ApplicationError("resume needs last_seq", code="invalid_message")
        # Messages to one consumer are handled one at a time, so no push interleaves with the replay;
        # a push of the same intervention arriving later is dropped by send_intervention.
        frames = await database_sync_to_async(realtime.onsite_replay)(user_id=self.user_id, last_seq=last_seq)
        for frame in frames:
            await self.send_intervention(frame)
        # Every push this socket sent before the replay was committed before its query: a seq below it
        # that was not replayed is not pending any more (acked elsewhere, expired), so the client may
        # show what it holds for a hole. A full page says more may follow: resume again from there.
        complete = len(frames) < realtime.REPLAY_LIMIT
        last = frames[-1]["seq"] if frames else last_seq
        await self.send_json({"type": "replayed", "last_seq": last, "complete": complete})

    async def on_join_room(self, message: dict[str, Any]) -> None:
        room = message.get("room")
        # The ticket names the rooms this socket may join; the naming rule still keeps user groups apart.
        if not isinstance(room, str) or room not in self.allowed_rooms or not realtime.room_allowed(room):
            raise ApplicationError("room not allowed", code="room_forbidden")
        if self.rooms is None:
            self.rooms = set()
        if room not in self.rooms:
            if len(self.rooms) >= settings.WS_MAX_ROOMS_PER_CONNECTION:
                raise ApplicationError("too many rooms", code="too_many_rooms")
            await self.channel_layer.group_add(realtime.room_group(room), self.channel_name)
            self.rooms.add(room)
            stats.room_joined(room=room)
        await self.send_json({"type": "room_joined", "room": room})

    async def on_leave_room(self, message: dict[str, Any]) -> None:
        room = message.get("room")
        if not isinstance(room, str) or not self.rooms or room not in self.rooms:
            raise ApplicationError("not in that room", code="not_in_room")
        await self.channel_layer.group_discard(realtime.room_group(room), self.channel_name)
        self.rooms.discard(room)
        stats.room_left(room=room)
        await self.send_json({"type": "room_left", "room": room})

    handlers = {
        "ping": on_ping,
        "ack": on_ack,
        "engagement": on_engagement,
        "resume": on_resume,
        "join_room": on_join_room,
        "leave_room": on_leave_room,
    }

    # --- Server → client (channel-layer events) -------------------------------------------------------

    async def ws_frame(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def ws_intervention(self, event: dict[str, Any]) -> None:
        await self.send_intervention(event["frame"])

    async def send_intervention(self, frame: dict[str, Any]) -> None:
        """Send an intervention unless it expired in transit or this socket already has it."""
        expires_at = frame.get("expires_at")
        if expires_at and datetime.fromisoformat(expires_at).timestamp() <= time.time():
            return
        intervention_id = frame["intervention_id"]
        if self.sent is None:
            self.sent = OrderedDict()
        elif intervention_id in self.sent:
            return
        self.sent[intervention_id] = None
        if len(self.sent) > _SENT_MEMORY:
            self.sent.popitem(last=False)
        await self.send_json(frame)

    async def send_error(self, code: str) -> None:
        await self.send_json({"type": "error", "code": code})

    async def send_json(self, frame: dict[str, Any]) -> None:
        stats.STATS.messages_out += 1
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))
