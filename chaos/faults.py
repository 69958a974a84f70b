"""What the fault drills share: servers of their own that they may stop, a TCP cut in front of the broker,
and reading a whole topic back."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def say(message: str) -> None:
    print(message, flush=True)


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``. :meth:`cut` makes the address dead as a
    crashed server's is (every connection reset, new ones refused) until :meth:`restore`.

    The test broker keeps its data in memory, so stopping the process would also lose every topic; cut
    here, clients see exactly a broker that went down, and the log is still there when it comes back."""

    def __init__(self, *, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    start = restore

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets -= {source, sink}


@contextlib.contextmanager
def broker_behind_proxy(data_dir: Path) -> Iterator[tuple[str, TcpProxy]]:
    """A tansu broker of the drill's own, reachable (and advertised) only through a :class:`TcpProxy`;
    yields (bootstrap address, proxy)."""
    from bench.ws_common import free_port
    from stack.servers import EmbeddedKafka

    proxy = TcpProxy(port=free_port(), target=free_port())
    proxy.start()
    broker = EmbeddedKafka(
        data_dir=data_dir, port=proxy.target, port_hint="(a free port)", say=say, advertised_port=proxy.port
    )
    try:
        broker.start()
        yield f"127.0.0.1:{proxy.port}", proxy
    finally:
        proxy.cut()
        broker.stop()


def topic_read_all(name: str, *, idle: float = 3.0, timeout: float = 60.0) -> list[Any]:
    """Every message of every partition of ``name``, from the beginning until nothing new came for
    ``idle`` seconds (the test broker's high watermark can lag behind: it is not a reliable end)."""
    import time

    from confluent_kafka import Consumer, TopicPartition

    from messaging.kafka import client_config

    consumer = Consumer(
        {**client_config(), "group.id": f"chaos-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(name, timeout=10).topics[name]
        consumer.assign([TopicPartition(name, p, 0) for p in metadata.partitions])
        found: list[Any] = []
        last = started = time.monotonic()
        while time.monotonic() - last < idle and time.monotonic() - started < timeout:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    found.append(message)
                    last = time.monotonic()
        return found
    finally:
        consumer.close()
