import threading
import time

import pytest

from pipeline.model.prefetch import prefetched


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "sstcast-prefetch"]


def test_items_arrive_in_order_and_are_read_ahead_of_the_consumer():
    read = []

    def items():
        for i in range(6):
            read.append(i)
            yield {"i": i}

    got = []
    for item in prefetched(items(), depth=2):
        got.append(item["i"])
        # The consumer holds this item and reads nothing: only a producer running ahead can
        # read the next one. Waited for, not slept for, so a busy host cannot make it flaky.
        want = min(6, len(got) + 1)
        deadline = time.monotonic() + 10
        while len(read) < want and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(read) >= want
    assert got == list(range(6))
    assert not _prefetch_threads()


def test_an_error_while_reading_is_raised_at_the_item_it_replaced():
    def items():
        yield 1
        yield 2
        raise OSError("store went away")

    got = []
    with pytest.raises(OSError, match="store went away"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]
    assert not _prefetch_threads()


def test_closing_early_stops_the_thread_without_reading_everything():
    read = []

    def items():
        for i in range(1000):
            read.append(i)
            yield i

    gen = prefetched(items(), depth=1)
    assert next(gen) == 0
    gen.close()
    assert not _prefetch_threads()
    assert len(read) <= 3  # the item taken, one queued, one in the producer's hands


def test_a_depth_below_one_is_refused_with_the_value():
    with pytest.raises(ValueError, match=r"depth: expected an integer >= 1, received 0"):
        next(prefetched([1], depth=0))
