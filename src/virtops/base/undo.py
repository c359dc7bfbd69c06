"""The one undo primitive of multi-step operations: each step that changed the host registers its
inverse; if a later step fails, the inverses run newest first and the final sentence says what
happened to each: removed again, or left on the host because its inverse failed too."""
from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Callable, Iterator

import libvirt

from virtops.base.errors import HostUnreachable, VirtopsError, one_sentence


class Undo:
    def __init__(self) -> None:
        self.steps: list[tuple[Callable[[], object], str]] = []
        self.left: list[str] = []  # after run(): the steps whose inverse failed, with the reason
        # Set by base/leftovers.recorded_undo: what is left is recorded, and the same command run
        # again removes it, so the sentence says that instead of "remove that by hand".
        self.run_again_cleans = False

    def add(self, inverse: Callable[[], object], what: str) -> None:
        """`what` is the step done, in the past tense: "defined network n1". An inverse registered
        before its step (a daemon may do a step without answering) returns False when it finds the
        step was never done: then it is not counted as undone."""
        self.steps.append((inverse, what))
        _fault_point()

    def run(self) -> tuple[list[str], list[str]]:
        """Run every inverse, newest first, whatever fails: (undone, left with the reason)."""
        undone, left = [], []
        for inverse, what in reversed(self.steps):
            try:
                if _while_daemon_restarts(inverse) is not False:
                    undone.append(what)
            except (libvirt.libvirtError, VirtopsError, OSError) as err:
                reason = one_sentence((err.get_error_message() if isinstance(err, libvirt.libvirtError) else None) or str(err))
                left.append(f"{what} ({reason.rstrip('.')})")
        self.left = left
        return undone, left


DAEMON_RESTART_WAIT_S = 20


def _while_daemon_restarts(inverse: Callable[[], object]) -> object:
    """An inverse whose daemon is gone (restarting, as it often is when a step failed midway) is
    tried again until it answers, for a while: undoing beats leaving work for later."""
    deadline = time.monotonic() + DAEMON_RESTART_WAIT_S
    while True:
        try:
            return inverse()
        except HostUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# The fault hook of the convergence tests (tests/lab/test_convergence.py): with VIRTOPS_FAULT_KILL_AT=N
# the process kills itself (SIGKILL, as kill -9 would) when the Nth step of its multi-step operations
# is registered, that is just before that step acts: a kill between any two steps, deterministically.
_registered = 0


def _fault_point() -> None:
    global _registered
    _registered += 1
    if os.environ.get("VIRTOPS_FAULT_KILL_AT") == str(_registered):
        os.kill(os.getpid(), signal.SIGKILL)


def outcome(undone: list[str], left: list[str], run_again_cleans: bool = False) -> str:
    """The end of the failure's sentence: e.g. "nothing was kept (undone: started network n1,
    defined network n1)." or, when an inverse failed, what is left and that it needs a hand."""
    if not left:  # undone is empty when the failed step was the first and never took effect
        return f"nothing was kept (undone: {', '.join(undone)})." if undone else "nothing was kept."
    done = f"undone: {', '.join(undone)}; " if undone else ""
    if run_again_cleans:
        return f"{done}NOT undone: {', '.join(left)}; run the same command again to remove that and finish the job."
    return f"{done}NOT undone: {', '.join(left)}; check the host and remove that by hand."


@contextlib.contextmanager
def undo_on_failure() -> Iterator[Undo]:
    """Undo the registered steps if the block fails; the error then says what was undone and what
    was left (never "nothing was kept" when something was)."""
    undo = Undo()
    try:
        yield undo
    except VirtopsError as err:
        if not undo.steps:
            raise
        raise VirtopsError(f"{err.text.rstrip('.')}; {outcome(*undo.run(), undo.run_again_cleans)}",
                           field=err.field) from err
    except BaseException:
        undo.run()  # an interrupt or a bug: undo all the same, and let it through as it is
        raise
