"""Opening libvirt connections: URI resolution, keepalive, reconnect after a daemon restart."""
from __future__ import annotations

import _thread  # its lock: threading (with functools and collections) is imported when a thread starts
import os

from virtops.base.binding import libvirt
from virtops.base.errors import HostUnreachable, by_face, command, one_sentence, term

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    import socket
    from typing import Callable

DEFAULT_URI = "qemu:///system"
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3


def is_host_name(text: str) -> bool:
    """A word that can only be a registered name, never a URI (no ':' at all). Here rather than in
    registry.py, so that a URI (most listings' -c) resolves without importing the registry."""
    return ":" not in text and "/" not in text


def resolve_uri(uri: str | None = None) -> str:
    """-c/--connect, then $LIBVIRT_DEFAULT_URI, then qemu:///system; 'lab:NAME' names a lab host,
    a bare NAME (no ':' or '/') a host of the registry (daemon/registry.py)."""
    chosen = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI
    if chosen.startswith("lab:"):
        from virtops.lab.address import lab_uri  # the light part of the lab: a listing imports no more of it

        return lab_uri(chosen.removeprefix("lab:"))
    if is_host_name(chosen):
        from virtops.daemon import registry  # yaml is imported only when a name is looked up

        registered = registry.lookup(chosen).uri
        return resolve_uri(registered) if registered.startswith("lab:") else registered
    return chosen


def peer_uri(uri: str) -> str:
    """The URI by which another daemon reaches this host (a peer-to-peer migration's destination):
    a lab host's segment address, else the URI itself."""
    given = uri
    if is_host_name(given):
        from virtops.daemon import registry

        given = registry.lookup(given).uri
    if given.startswith("lab:"):
        from virtops.lab.labhost import Lab

        lab = Lab(given.removeprefix("lab:"))
        if lab.peer_uri is None:
            raise HostUnreachable(f"to: lab {lab.name} is on no segment, so no other host reaches it; "
                                  f"{command(f'lab up {lab.name}', term('segment', 'SEG'), elsewhere='start it')} "
                                  "with the source's segment.")
        return lab.peer_uri
    return resolve_uri(given)


def running_lab_names() -> list[str]:
    """The lab hosts whose daemons run, from their pid files: no connection (a hung one answers none)."""
    from virtops.lab.labhost import running_lab_names as names

    return names()


def on_this_machine(uri: str) -> bool:
    """qemu:///system and qemu+unix:///system?socket=... name a daemon on this machine (every lab
    host among them); a URI with a host part names another one; test:/// is no machine at all."""
    scheme, _, rest = uri.partition("://")
    return scheme in ("qemu", "qemu+unix") and rest.startswith("/")


def loopback_connection(uri: str, port: int) -> socket.socket | None:
    """A connection to `port` on the loopback of the host behind `uri`, made on that host, where
    virtops has a way onto it that opens no port beyond it: a lab host reached over its remote URI
    from its outside namespace (its network namespace entered, as an ssh login would be on a real
    host). None for every other host."""
    from urllib.parse import urlsplit

    from virtops.lab.labhost import lab_reached_at
    from virtops.lab.netns import connect_inside

    lab = lab_reached_at(urlsplit(uri).hostname or "")
    if lab is None:
        return None
    try:
        return connect_inside(lab.netns, "127.0.0.1", port)
    except OSError as err:
        raise HostUnreachable(f"port {port} on the loopback of lab host {lab.name} cannot be reached from its "
                              f"namespace ({err.strerror or err}).") from None


def sees_our_files(uri: str) -> bool:
    """True when a path on this machine means the same file to the daemon: a daemon here, or
    libvirt's in-process test driver."""
    return on_this_machine(uri) or uri.startswith("test:")


def _ignore_libvirt_stderr(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; we report them ourselves, once."""


_event_loop_lock = _thread.allocate_lock()
_event_loop_started = False


def ensure_event_loop() -> None:
    """Keepalive and live events need libvirt's event loop running; one daemon thread per process."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        import threading

        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True)
        thread.start()
        _event_loop_started = True


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


libvirt.registerErrorHandler(_ignore_libvirt_stderr, None)


def open_within(uri: str, timeout_s: float) -> libvirt.virConnect:
    """libvirt.openAuth with a deadline: libvirt waits for a daemon that accepted the connection
    and never replies (one stopped with SIGSTOP) for ever. The attempt runs in a daemon thread, so
    that it never holds up the process's exit; one that answers after the deadline is closed."""
    import threading

    outcome: dict[str, object] = {}
    lock = threading.Lock()

    def attempt() -> None:
        try:
            conn = libvirt.openAuth(uri, [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], _no_prompt, None], 0)
        except libvirt.libvirtError as err:
            conn, outcome["error"] = None, err
        with lock:
            if "abandoned" in outcome and conn is not None:
                _close_quietly(conn)
            outcome["conn"] = conn

    thread = threading.Thread(target=attempt, name=f"connect {uri}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    with lock:
        if "conn" not in outcome:
            outcome["abandoned"] = True
            raise TimeoutError(uri)
    if outcome["conn"] is None:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["conn"]  # type: ignore[return-value]


def _no_prompt(_credentials: list, _opaque: object) -> int:
    """A connection opened in a worker thread cannot ask anyone for a password: refuse."""
    return -1


def _close_quietly(conn: libvirt.virConnect) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


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
        # A fleet asks many hosts at once and must not wait for one that never answers: it bounds
        # the connect (connect_timeout) and notices a daemon gone silent mid-call sooner (keepalive,
        # which also ends a call in progress). None: wait as long as libvirt does (ssh may prompt).
        self.connect_timeout: float | None = None
        self.keepalive: tuple[int, int] = (KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        # A long-lived face that watches its hosts (the web console of a fleet) refuses to reopen
        # a connection while its watcher knows the host is away: before_open raises HostUnreachable.
        # A hung daemon then holds the watcher's thread, not one more per request and per retry.
        self.before_open: Callable[[], None] | None = None
        self._conn: libvirt.virConnect | None = None

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None or not self._is_alive(self._conn):
            if self.before_open is not None:
                self.before_open()
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
            conn = libvirt.open(self.uri) if self.connect_timeout is None else open_within(self.uri, self.connect_timeout)
        except libvirt.libvirtError as err:
            raise HostUnreachable(self._unreachable_message(err)) from err
        except TimeoutError:
            raise HostUnreachable(f"The libvirt daemon at {self.uri} did not answer within {self.connect_timeout:g} s "
                                  f"(it accepts the connection but does not reply).") from None
        if self.event_loop and not self.uri.startswith("test:"):
            try:
                conn.setKeepAlive(*self.keepalive)
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
            advice = f"start the lab host{command(f'lab up {self.lab_name}', wrap=' with {}', elsewhere='')}"
        elif self.uri == DEFAULT_URI:
            advice = ("start libvirtd (systemctl start libvirtd)"
                      f"{by_face(', or use a lab host: `virtops lab up NAME` then `-c lab:NAME`')}")
        reason = one_sentence(err.get_error_message() or str(err)).rstrip(".")
        return f"No libvirt daemon answers at {self.uri} ({reason}); {advice}."
