"""The consumer's garbage collection between batches: cycles are still freed, and the process's collector
is given back as it was."""

from __future__ import annotations

import gc
import weakref

from delivery.management.commands.consume_events import BatchCollector


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> tuple[_Node, weakref.ref[_Node]]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


def test_it_frees_cyclic_garbage_between_batches_with_automatic_collection_off():
    # given the collector started (as the consume_events command does)
    collector = BatchCollector(full_every_seconds=3600)
    collector.start()
    try:
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0

        # when a batch leaves a reference cycle behind and ends
        node, young = _cycle()
        del node
        collector.between_batches()

        # then the cycle is gone
        assert young() is None

        # and a cycle that had reached the oldest generation before it became garbage outlives the young
        # collections, and goes at the next full one, once its time has come
        node, old = _cycle()
        gc.collect(1)  # still referenced: moved to the oldest generation
        del node
        collector.between_batches()
        assert old() is not None
        collector.full_every_seconds = 0
        collector.between_batches()
        assert old() is None
    finally:
        collector.stop()

    # and the process's collector is back as it was: on, nothing frozen
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
