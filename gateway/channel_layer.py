"""The gateway's channel layer: channels_redis's pub/sub layer, made cheap per socket and per (dis)connect.

``channels_redis.pubsub.RedisPubSubChannelLayer`` gives every socket its own Redis subscription (its
channel name), an ``asyncio.Queue`` and a task blocked on it, and sends each SUBSCRIBE / UNSUBSCRIBE as
its own command under one lock. With 10,000 idle sockets that is ~3 KiB of queue and ~2 KiB of task and
coroutine per socket, and a mass disconnect queues 20,000 unsubscribes one after the other. This
subclass keeps the layer's API and wire format (group sends are one PUBLISH, any process may send to
any channel or group) and changes three things:

- **Process-local channel names.** ``new_channel()`` names are ``<prefix>specific.<process token>!<id>``.
  The process subscribes once to ``<prefix>specific.<process token>``; ``send()`` to such a name
  publishes there with the full name in front of the payload, and the receiving process routes it.
  No per-socket Redis subscription.
- **Mailboxes.** A consumer may register a callable instead of reading a queue
  (``new_mailbox(callback)``): the layer's single receiving task hands it each message's bytes as they
  arrive (``gateway.consumers`` runs them in order). An idle socket then costs the layer one dict
  entry. ``receive()`` still works for any channel, as in the base layer.
- **Batched (un)subscriptions.** Group joins and leaves are applied locally at once and their
  SUBSCRIBE / UNSUBSCRIBE commands go out once per event-loop iteration, all names of a run in one
  command, in the order they were asked for. A mass disconnect of 10,000 sockets is a handful of
  UNSUBSCRIBE commands.

Like the base layer, nothing persists a message: PostgreSQL is the replay log (docs/websocket.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close

from core.observability import get_logger

logger = get_logger(__name__)

Mailbox = Callable[[bytes], None]

# At most this many channel names per SUBSCRIBE / UNSUBSCRIBE command.
_NAMES_PER_COMMAND = 1000


class GatewayChannelLayer(RedisPubSubChannelLayer):
    """``RedisPubSubChannelLayer`` whose per-event-loop layer is ``GatewayLoopLayer``."""

    def _get_layer(self) -> GatewayLoopLayer:
        loop = asyncio.get_running_loop()
        layer: GatewayLoopLayer | None = self._layers.get(loop)
        if layer is None:
            layer = GatewayLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer


class GatewayLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards: list[_BatchingShard] = [_BatchingShard(shard.host, self) for shard in self._shards]
        self.local_prefix = f"{self.prefix}specific.{uuid.uuid4().hex}"
        self.mailboxes: dict[str, Mailbox] = {}
        self._local_subscribed = False

    # --- Process-local channels -------------------------------------------------------------------------

    def _is_local_name(self, channel: str) -> bool:
        return (
            channel.startswith(self.local_prefix)
            and channel[len(self.local_prefix) : len(self.local_prefix) + 1] == "!"
        )

    async def _ensure_local_subscription(self) -> None:
        if not self._local_subscribed:
            self._local_subscribed = True
            try:
                await self._get_shard(self.local_prefix).subscribe(self.local_prefix)
            except BaseException:
                self._local_subscribed = False  # the next socket tries again
                raise

    async def new_channel(self, prefix: str = "specific.") -> str:
        channel = f"{self.local_prefix}!{uuid.uuid4().hex}"
        self.channels[channel] = asyncio.Queue()
        await self._ensure_local_subscription()
        return channel

    async def new_mailbox(self, mailbox: Mailbox) -> str:
        """A process-local channel whose messages are handed to ``mailbox`` (the serialized bytes)."""
        channel = f"{self.local_prefix}!{uuid.uuid4().hex[:16]}"
        self.mailboxes[channel] = mailbox
        await self._ensure_local_subscription()
        return channel

    def close_mailbox(self, channel: str) -> None:
        self.mailboxes.pop(channel, None)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        bang = channel.find("!")
        if bang < 0:
            await super().send(channel, message)
            return
        # "<process channel>!<id>": published on the process channel, the full name in front.
        target = channel[:bang]
        data = channel.encode() + b"\n" + self.channel_layer.serialize(message)
        await self._get_shard(target).publish(target, data)

    async def receive(self, channel: str) -> Any:
        if not self._is_local_name(channel):
            return await super().receive(channel)
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue()
        await self._ensure_local_subscription()
        try:
            data = await queue.get()
        except (TimeoutError, asyncio.CancelledError, GeneratorExit):
            # As in the base layer: a cancelled receive means the consumer is gone.
            self.channels.pop(channel, None)
            raise
        return self.channel_layer.deserialize(data)

    # --- Routing of what the subscription connection receives ---------------------------------------------

    def route(self, name: str, data: bytes) -> None:
        if name == self.local_prefix:
            head, _, payload = data.partition(b"\n")
            self._deliver(head.decode(), payload)
            return
        members = self.groups.get(name)
        if members is not None:
            for channel in tuple(members):
                self._deliver(channel, data)
            return
        queue = self.channels.get(name)
        if queue is not None:
            queue.put_nowait(data)

    def _deliver(self, channel: str, data: bytes) -> None:
        mailbox = self.mailboxes.get(channel)
        if mailbox is not None:
            try:
                mailbox(data)
            except Exception:
                logger.exception("ws_mailbox_failed", channel=channel)
            return
        queue = self.channels.get(channel)
        if queue is not None:
            queue.put_nowait(data)

    # --- Groups --------------------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        group_channel = self._get_group_channel_name(group)
        members = self.groups.get(group_channel)
        if members is None:
            members = self.groups[group_channel] = set()
        members.add(channel)
        # Subscribes if this is the first local member: the base layer's shard remembers what it has.
        await self._get_shard(group_channel).subscribe(group_channel)

    async def group_discard(self, group: str, channel: str) -> None:
        group_channel = self._get_group_channel_name(group)
        members = self.groups.get(group_channel)
        if members is None or channel not in members:
            return
        members.discard(channel)
        if not members:
            del self.groups[group_channel]
            # Not awaited: the UNSUBSCRIBE goes out with this loop iteration's batch, in order after
            # any earlier SUBSCRIBE of the same name; a message published meanwhile finds no member.
            self._get_shard(group_channel).unsubscribe_soon(group_channel)

    async def flush(self) -> None:
        self.mailboxes = {}
        self._local_subscribed = False
        await super().flush()


class _BatchingShard(RedisSingleShardConnection):
    """The base shard (one pub/sub connection, one receiving task, publishes under a lock) with
    SUBSCRIBE / UNSUBSCRIBE gathered per loop iteration and sent as a few multi-name commands."""

    def __init__(self, host: dict[str, Any], channel_layer: GatewayLoopLayer) -> None:
        super().__init__(host, channel_layer)
        self._ops: list[tuple[bool, str]] = []
        self._batch: asyncio.Future[None] | None = None
        self._flushing: set[asyncio.Future[None]] = set()  # the loop keeps only weak references

    async def subscribe(self, channel: str) -> None:
        if channel in self._subscribed_to and not self._ops:
            return
        await self._enqueue(True, channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._enqueue(False, channel)

    def unsubscribe_soon(self, channel: str) -> None:
        future = self._enqueue(False, channel)
        # The outcome is logged by _flush; nobody waits for it.
        future.add_done_callback(_ignore_result)

    def _enqueue(self, subscribe: bool, channel: str) -> asyncio.Future[None]:
        self._ops.append((subscribe, channel))
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
            task = asyncio.ensure_future(self._flush(self._batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return self._batch

    async def _flush(self, batch: asyncio.Future[None]) -> None:
        await asyncio.sleep(0)  # let the rest of this loop iteration add its names
        async with self._lock:
            ops, self._ops, self._batch = self._ops, [], None
            try:
                self._ensure_redis()
                self._ensure_receiver()
                for subscribe, names in _runs(ops, self._subscribed_to):
                    for start in range(0, len(names), _NAMES_PER_COMMAND):
                        chunk = names[start : start + _NAMES_PER_COMMAND]
                        if subscribe:
                            await self._pubsub.subscribe(*chunk)
                        else:
                            await self._pubsub.unsubscribe(*chunk)
            except Exception as exc:
                logger.warning("ws_layer_subscription_failed", error=str(exc), operations=len(ops))
                # Not known to be subscribed: a later join of these names sends SUBSCRIBE again.
                self._subscribed_to.difference_update(name for subscribe, name in ops if subscribe)
                batch.set_exception(exc)
            else:
                batch.set_result(None)

    def _receive_message(self, message: dict[str, Any] | None) -> None:
        if message is not None:
            name = message["channel"]
            if isinstance(name, bytes):
                name = name.decode()
            self.channel_layer.route(name, message["data"])


def _runs(ops: list[tuple[bool, str]], subscribed: set[str]) -> list[tuple[bool, list[str]]]:
    """Consecutive operations of one kind, skipping those that change nothing; updates ``subscribed``
    to the state after all of them."""
    runs: list[tuple[bool, list[str]]] = []
    for subscribe, name in ops:
        if (name in subscribed) == subscribe:
            continue
        if subscribe:
            subscribed.add(name)
        else:
            subscribed.discard(name)
        if runs and runs[-1][0] == subscribe:
            runs[-1][1].append(name)
        else:
            runs.append((subscribe, [name]))
    return runs


def _ignore_result(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
