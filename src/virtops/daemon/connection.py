"""Opening libvirt connections: URI resolution, keepalive, reconnect after a daemon restart."""
from __future__ import annotations

import os
import threading

import libvirt

from virtops.base.errors import HostUnreachable, one_sentence

DEFAULT_URI = "qemu:///system"
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3


def resolve_uri(uri: str | None = None) -> str:
    """-c/--connect, then $LIBVIRT_DEFAULT_URI, then qemu:///system; 'lab:NAME' names a lab host."""
    chosen = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI
    if chosen.startswith("lab:"):
        from virtops.lab.labhost import Lab

        return Lab(chosen.removeprefix("lab:")).uri
    return chosen


def on_this_machine(uri: str) -> bool:
    """qemu:///system and qemu+unix:///system?socket=... name a daemon on this machine (every lab
    host among them); a URI with a host part names another one; test:/// is no machine at all."""
    scheme, _, rest = uri.partition("://")
    return scheme in ("qemu", "qemu+unix") and rest.startswith("/")


def sees_our_files(uri: str) -> bool:
    """True when a path on this machine means the same file to the daemon: a daemon here, or
    libvirt's in-process test driver."""
    return on_this_machine(uri) or uri.startswith("test:")


def _ignore_libvirt_stderr(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; we report them ourselves, once."""


_event_loop_lock = threading.Lock()
_event_loop_started = False


def ensure_event_loop() -> None:
    """Keepalive and live events need libvirt's event loop running; one daemon thread per process."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True)
        thread.start()
        _event_loop_started = True


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


libvirt.registerErrorHandler(_ignore_libvirt_stderr, None)


class Connection:
    """A libvirt connection that reopens itself when the daemon went away between two calls."""

    def __init__(self, uri: str | None = None, event_loop: bool = True):
        given = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or ""
        self.lab_name = given.removeprefix("lab:") if given.startswith("lab:") else None
        self.uri = resolve_uri(uri)
        # Keepalive (noticing a restarted daemon between calls) needs libvirt's event loop, run
        # by a thread of ours. That thread wakes on every call and takes the GIL back each time:
        # 1,000 calls from several threads took 70-80 ms longer. A short read-only command, which
        # outlives no daemon restart, sets this to False before the first call.
        self.event_loop = event_loop
        self._conn: libvirt.virConnect | None = None

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None or not self._is_alive(self._conn):
            self._conn = self._open()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
            self._conn = None

    def _open(self) -> libvirt.virConnect:
        if self.event_loop:
            ensure_event_loop()
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as err:
            raise HostUnreachable(self._unreachable_message(err)) from err
        if self.event_loop and not self.uri.startswith("test:"):
            try:
                conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
            except libvirt.libvirtError:
                pass  # local drivers without keepalive support
        return conn

    @staticmethod
    def _is_alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    def _unreachable_message(self, err: libvirt.libvirtError) -> str:
        advice = "start libvirtd on that host"
        if self.lab_name:
            advice = f"start the lab host with `virtops lab up {self.lab_name}`"
        elif self.uri == DEFAULT_URI:
            advice = "start libvirtd (systemctl start libvirtd), or use a lab host: `virtops lab up NAME` then `-c lab:NAME`"
        reason = one_sentence(err.get_error_message() or str(err)).rstrip(".")
        return f"No libvirt daemon answers at {self.uri} ({reason}); {advice}."
