"""The one undo primitive of multi-step operations: each step that changed the host registers its
inverse; if a later step fails, the inverses run newest first and the final sentence says what
happened to each: removed again, or left on the host because its inverse failed too."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import libvirt

from virtops.base.errors import VirtopsError, one_sentence


class Undo:
    def __init__(self) -> None:
        self.steps: list[tuple[Callable[[], object], str]] = []

    def add(self, inverse: Callable[[], object], what: str) -> None:
        """`what` is the step done, in the past tense: "defined network n1"."""
        self.steps.append((inverse, what))

    def run(self) -> tuple[list[str], list[str]]:
        """Run every inverse, newest first, whatever fails: (undone, left with the reason)."""
        undone, left = [], []
        for inverse, what in reversed(self.steps):
            try:
                inverse()
                undone.append(what)
            except (libvirt.libvirtError, VirtopsError, OSError) as err:
                reason = one_sentence((err.get_error_message() if isinstance(err, libvirt.libvirtError) else None) or str(err))
                left.append(f"{what} ({reason.rstrip('.')})")
        return undone, left


def outcome(undone: list[str], left: list[str]) -> str:
    """The end of the failure's sentence: e.g. "nothing was kept (undone: started network n1,
    defined network n1)." or, when an inverse failed, what is left and that it needs a hand."""
    if not left:
        return f"nothing was kept (undone: {', '.join(undone)})."
    done = f"undone: {', '.join(undone)}; " if undone else ""
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
        raise VirtopsError(f"{err.message.rstrip('.')}; {outcome(*undo.run())}") from err
    except BaseException:
        undo.run()  # an interrupt or a bug: undo all the same, and let it through as it is
        raise
