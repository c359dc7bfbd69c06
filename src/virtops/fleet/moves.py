"""Which hosts of a fleet can take a VM: the migration's pre-flight (ops/migrate.py) asked of every
candidate at once, each answering yes or with the pre-flight's sentences why not."""
from __future__ import annotations

from virtops.base.errors import VirtopsError
from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import Lease, gather_each
from virtops.host import Host


def destinations(source: Host, name: str, candidates: list[RegisteredHost], copy_storage: bool = False,
                 lease: Lease | None = None, deadline: float | None = None) -> list[dict]:
    """{"host", "ok", "reasons"} per candidate, in their order: reasons are the sentences that
    refuse the move of VM `name` from `source` to it (none when ok)."""
    from virtops.ops.migrate import MigrateRequest, preflight

    def reasons(registered: RegisteredHost, dest: Host) -> list[str]:
        try:
            preflight(source.conn, dest.conn, MigrateRequest(name, copy_storage=copy_storage), registered.name)
        except VirtopsError as err:
            return [each.message for each in getattr(err, "errors", None) or [err]]
        return []

    answers = gather_each(candidates, reasons, deadline, lease=lease).answers
    return [{"host": answer.host.name, "ok": answer.ok and not answer.value,
             "reasons": answer.value if answer.ok else [answer.error]} for answer in answers]
