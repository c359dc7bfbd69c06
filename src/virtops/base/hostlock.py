"""One lock per host, for every operation that checks a host-wide fact and then acts on it (a MAC
or name nobody else uses, a free disk target, a subnet no other network overlaps, a volume no VM
uses): the check and the act happen under it, so two requests can never both pass the check.

It is one primitive for every face: CLI processes, the REST server's threads, `apply` and the
Python API. Across processes it is an flock on a file named after the host's URI in the run
directory (base/leftovers.run_dir), holding the pid and what it does; the kernel drops it when
its holder dies, so a killed command never blocks the next. Within a process it is a re-entrant
lock per URI: the thread holding it may take it again (apply runs the operations, which lock too),
other threads wait for it. A wait is bounded; then the command is refused naming the holder."""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

from virtops.base.errors import VirtopsError
from virtops.base.leftovers import run_dir

# How long an operation waits for another that changes the same host: longer than any single
# check-and-act; an apply holding the host for longer makes it refuse (naming the apply).
WAIT_S = 60.0
POLL_S = 0.02


@dataclass
class _Held:
    """This process's hold of one host's lock: the thread owning it and how deep it re-entered."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    fd: int | None = None
    doing: str = ""


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()
_lent = threading.local()  # URIs whose lock a calling thread holds for this worker thread


def lock_path(uri: str):
    return run_dir() / f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"


@contextlib.contextmanager
def host_lock(uri: str, doing: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold host URI's lock for the block; `doing` names the command in the sentence another one
    gets while waiting in vain ("apply", "vm attach-nic")."""
    if uri in getattr(_lent, "uris", ()):
        yield
        return
    with _held_guard:
        held = _held.setdefault(uri, _Held())
    deadline = time.monotonic() + wait_s
    if not held.lock.acquire(timeout=max(wait_s, 0)):
        raise _busy(uri, doing, f"{held.doing or 'another operation'} in this process")
    try:
        if held.depth == 0:
            held.fd = _take_file_lock(uri, doing, deadline)
            held.doing = doing
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                _release_file_lock(held.fd)
                held.fd, held.doing = None, ""
    finally:
        held.lock.release()


@contextlib.contextmanager
def lent_to_this_thread(uri: str) -> Iterator[None]:
    """In a worker thread of a caller that holds URI's lock (a fleet apply plans every host under
    its lock, then applies them in threads): act under the caller's lock instead of waiting for it."""
    uris = _lent.__dict__.setdefault("uris", set())
    uris.add(uri)
    try:
        yield
    finally:
        uris.discard(uri)


T = TypeVar("T")


def locks_host(doing: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A method of an operations class (self.host: the Host) run under its host's lock."""
    def wrap(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def locked(self, *args, **kwargs) -> T:
            with host_lock(self.host.uri, doing):
                return method(self, *args, **kwargs)
        return locked
    return wrap


def _take_file_lock(uri: str, doing: str, deadline: float) -> int:
    path = lock_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                os.close(fd)
                pid, _, what = holder.partition(" ")
                raise _busy(uri, doing, f"{what or 'virtops command'} (pid {pid or 'unknown'})") from None
            time.sleep(POLL_S)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {doing}\n".encode(), 0)
    return fd


def _release_file_lock(fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _busy(uri: str, doing: str, holder: str) -> VirtopsError:
    return VirtopsError(f"another {holder} is changing {uri} right now; wait for it to finish, then run {doing} again.")


# -- a volume being written for minutes (an upload) -------------------------------------------------
# The host's lock covers an upload's check and the clearing of the volume, not its transfer; for
# that long while the volume carries a mark instead: an flock on a file per host URI and volume
# path (the kernel drops it when its holder dies), holding the pid and the command. The operations
# that would change the volume under the writer or hand it to a guest (attach, create, wipe,
# delete, resize, another upload) check it under the host's lock and refuse naming the holder.
def _write_mark_path(uri: str, path: str):
    digest = hashlib.sha256(f"{uri}\n{path}".encode()).hexdigest()[:24]
    return run_dir() / "writes" / f"{digest}.lock"


@contextlib.contextmanager
def writing_volume(uri: str, path: str, ref: str, doing: str) -> Iterator[None]:
    """Mark volume REF (at PATH) of host URI as being written by this command for the block."""
    mark = _write_mark_path(uri, path)
    mark.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(mark, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.close(fd)
        raise _written(ref, holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {doing}\n".encode(), 0)
    try:
        yield
    finally:
        _release_file_lock(fd)


def refuse_if_written(uri: str, path: str | None, ref: str) -> None:
    """Refuse (naming the writer) while volume PATH of host URI is being written."""
    if not path:
        return
    mark = _write_mark_path(uri, path)
    try:
        fd = os.open(mark, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise _written(ref, os.pread(fd, 200, 0).decode(errors="replace").strip()) from None
    finally:
        os.close(fd)


def _written(what: str, holder: str) -> VirtopsError:
    pid, _, doing = holder.partition(" ")
    return VirtopsError(f"volume {what} is being written by {doing or 'another virtops command'} (pid {pid or 'unknown'}) "
                        "right now; wait for it to finish, then try again.")
