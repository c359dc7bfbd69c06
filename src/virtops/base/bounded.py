"""A call that may block for minutes inside the daemon (libvirt's `showmount` against a host that
drops its RPC packets waits about two minutes), given a bounded wait on our side."""
from __future__ import annotations

import threading
from typing import Any, Callable


def call_within(timeout_s: float, func: Callable[..., Any], *args: Any) -> Any:
    """`func(*args)`, or TimeoutError after `timeout_s`. The call cannot be cancelled inside the
    daemon: it finishes there on its own, in a thread nobody waits for (a daemon thread, so it
    never holds up the process's exit)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = func(*args)
        except BaseException as err:  # handed to the caller below
            outcome["error"] = err

    worker = threading.Thread(target=run, name=f"bounded-{getattr(func, '__name__', 'call')}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
