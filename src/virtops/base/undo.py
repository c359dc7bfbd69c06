"""Multi-step operations undo their own partial work: collect an undo step after each step that
changed the host; if anything fails, run them newest first and re-raise the original error."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import libvirt

from virtops.base.errors import VirtopsError


@contextlib.contextmanager
def undo_on_failure() -> Iterator[list[Callable[[], object]]]:
    undo: list[Callable[[], object]] = []
    try:
        yield undo
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except (libvirt.libvirtError, VirtopsError, OSError):
                pass  # keep undoing the rest; the original error is the one to report
        raise
