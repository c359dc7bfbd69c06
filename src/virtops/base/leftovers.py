"""What a killed run left half-made, and how the next run of the same command knows it as its own.

A multi-step command (net create, pool create, vm create with new disks) writes a record before its
first change: the host, the object, what the steps will make (with the UUIDs it will give them) and
its own pid with that process's start time. The record goes when the command ends having finished,
or having undone all its work; a kill -9, or an undo that could not finish (a daemon that went away
midway), leaves it. The same command run again finds the record of a process that is gone, removes
what that run made (only objects with the recorded UUID or name) and then does the job from the
start. So a half-made object is recognised as ours by the record, never by its name alone.

Records are small JSON files in $VIRTOPS_LOCK_DIR/runs (default /run/virtops/locks/runs, gone at
reboot like the processes they name; for a user who is not root, under $XDG_RUNTIME_DIR). They serve the commands run from this machine."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

from virtops.base.undo import Undo, undo_on_failure


def run_dir() -> Path:
    """Read at each use, so a test (or a second installation) can move it with the environment.
    Where /run/virtops is not ours to write (a user who is not root), the user's runtime directory."""
    given = os.environ.get("VIRTOPS_LOCK_DIR")
    if given:
        return Path(given)
    if os.geteuid() == 0 or os.access("/run/virtops", os.W_OK):
        return Path("/run/virtops/locks")
    return Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/virtops-{os.getuid()}") / "virtops" / "locks"


def _record_path(uri: str, key: str) -> Path:
    digest = hashlib.sha256(f"{uri}\n{key}".encode()).hexdigest()[:24]
    return run_dir() / "runs" / f"{digest}.json"


def process_start(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/PID/stat): with the pid, it names one
    process, so a reused pid is not taken for the run that died."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def left_by_dead_run(uri: str, key: str) -> dict | None:
    """What a run that is gone recorded for `key` on `uri` (its `made`), or None: no record, or
    the run is still going (then it is not ours to touch)."""
    path = _record_path(uri, key)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("uri") != uri or record.get("key") != key:
        return None
    if process_start(int(record.get("pid", 0))) == record.get("start") and record.get("start"):
        return None
    return record.get("made") or {}


def forget(uri: str, key: str) -> None:
    _record_path(uri, key).unlink(missing_ok=True)


def clean_up_after_dead_run(uri: str, key: str, remove: Callable[[dict], None]) -> bool:
    """If a run that is gone left a record for `key`, let `remove` take away what it made, then
    drop the record; True when there was one. `remove` raises (a VirtopsError) when it cannot,
    and the record stays for the next try."""
    made = left_by_dead_run(uri, key)
    if made is None:
        return False
    remove(made)
    forget(uri, key)
    return True


def note(uri: str, key: str, made: dict) -> None:
    """Record `made` for `key` as this process's (for a command that records step by step what it
    is making, as `backup restore` does; `recorded_undo` does this for a whole block)."""
    _write(_record_path(uri, key), _record(uri, key, made))


def _record(uri: str, key: str, made: dict) -> dict:
    return {"uri": uri, "key": key, "pid": os.getpid(), "start": process_start(os.getpid()), "made": made}


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(record) + "\n")
    os.replace(scratch, path)  # a reader never sees half a record


@contextlib.contextmanager
def recorded_undo(uri: str, key: str, made: dict) -> Iterator[Undo]:
    """`undo_on_failure()`, with a record of `made` while the block runs. The record goes when the
    block succeeds, or fails having undone everything it did; otherwise it stays for the next run."""
    path = _record_path(uri, key)
    _write(path, _record(uri, key, made))
    undo: Undo | None = None
    try:
        with undo_on_failure() as undo:
            undo.run_again_cleans = True
            yield undo
    except BaseException:
        if undo is not None and undo.left:
            raise  # something is left on the host: the next run removes it
        path.unlink(missing_ok=True)
        raise
    path.unlink(missing_ok=True)
