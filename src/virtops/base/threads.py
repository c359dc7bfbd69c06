"""Threads started by hand for the listings' concurrent libvirt calls (libvirt releases the GIL
during each): concurrent.futures would cost a listing about 5 ms of start-up, for it imports
logging. The threading module itself (with functools and collections, 2 ms) is imported only when
a second thread is started: a lock is _thread's."""
from __future__ import annotations

import _thread

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Callable


class Indexes:
    """Hands out 0, 1, ... n-1 once each to whichever thread asks, then None."""

    def __init__(self, n: int):
        self._next, self._n, self._lock = 0, n, _thread.allocate_lock()

    def __call__(self) -> int | None:
        with self._lock:
            i = self._next
            if i >= self._n:
                return None
            self._next = i + 1
            return i


def run_threads(target: Callable, args: list) -> None:
    """target(arg) for each arg in its own thread (the first in this one); returns when all are
    done, re-raising the first failure."""
    errors: list[BaseException] = []

    def run(arg) -> None:
        try:
            target(arg)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            errors.append(err)

    threads = []
    if len(args) > 1:
        import threading

        threads = [threading.Thread(target=run, args=(arg,), daemon=True) for arg in args[1:]]
    for thread in threads:
        thread.start()
    run(args[0])
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
