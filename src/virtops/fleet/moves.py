"""Which hosts of a fleet can take a VM: the migration's pre-flight (ops/migrate.py) asked of every
candidate at once, each answering yes or with the pre-flight's sentences why not."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, ContextManager

from virtops.base.errors import VirtopsError
from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import gather_each
from virtops.host import Host

if TYPE_CHECKING:
    from virtops.fleet.gather import Lease


def destinations(source: Host | Callable[[], ContextManager[Host]], name: str, candidates: list[RegisteredHost],
                 copy_storage: bool = False, lease: Lease | None = None, deadline: float | None = None,
                 words: Callable[[VirtopsError], str] = lambda err: err.message) -> list[dict]:
    """{"host", "ok", "reasons"} per candidate, in their order: reasons are the sentences that
    refuse the move of VM `name` from `source` to it (none when ok), in the asking face's `words`.
    The candidates are asked at once; a face that keeps one call at a time per connection passes a
    source that lends one."""
    from virtops.ops.migrate import MigrateRequest, preflight

    def reasons(registered: RegisteredHost, dest: Host) -> list[str]:
        try:
            with _source(source) as lent:
                preflight(lent.conn, dest.conn, MigrateRequest(name=name, copy_storage=copy_storage), registered.name)
        except VirtopsError as err:
            return [words(each) for each in getattr(err, "errors", None) or [err]]
        return []

    answers = gather_each(candidates, reasons, deadline, lease=lease).answers
    return [{"host": answer.host.name, "ok": answer.ok and not answer.value,
             "reasons": answer.value if answer.ok else [words(answer.failure) if answer.failure else answer.error]}
            for answer in answers]


def _source(source: Host | Callable[[], ContextManager[Host]]) -> ContextManager[Host]:
    return contextlib.nullcontext(source) if isinstance(source, Host) else source()
