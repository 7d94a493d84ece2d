"""A daemon process's start: what it holds once started is frozen out of the cyclic collector's reach."""

import gc
import weakref

from services.runtime.serve import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_what_the_started_process_holds_is_frozen_and_later_garbage_still_collected() -> None:
    held = _Node()
    try:
        frozen = freeze_startup_heap()
        assert frozen > 0
        assert gc.get_freeze_count() == frozen
        assert not any(obj is held for obj in gc.get_objects())  # out of the collector's reach
        later = _Node()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None  # what is made after the freeze is collected as before
    finally:
        gc.unfreeze()
