"""Read the next training batch in a background thread while the current one trains.

With `train.num_workers = 0` the DataLoader reads each batch only when asked, so the
step waits for it: ~4 ms of a ~23 ms default-config step on 2 cores, most of it random
gathers of windows from a block of series (memory latency; numpy releases the GIL). One
thread reading ahead hides most of that. Worker processes (`num_workers > 0`) read ahead
by themselves and are not wrapped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()  # the producer's "no more items"


class _Failed:
    """An exception raised while reading, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of `items` in order, up to `depth` of them read ahead by one thread.

    An exception raised while reading is raised here, at the item it replaced. Closing the
    generator early (a `break`, an exception in the consumer) stops the thread after the
    item it is reading, so nothing keeps running or holding memory.
    """
    if depth < 1:
        raise ValueError(f"depth: expected an integer >= 1, received {depth!r}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            put(_Failed(error))

    thread = threading.Thread(target=produce, name="sstcast-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
