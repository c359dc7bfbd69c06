"""The process that holds a lab host's daemons: it runs inside the lab's namespaces,
starts virtlogd and libvirtd in the foreground (and the lab's sshd when asked, SIGUSR2), and
reaps every process they leave behind (dnsmasq, QEMU, sshd), because PID 1 on some machines
reaps nothing.

Run as: python -m virtops.lab.keeper STATE_DIR
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
STOP_GRACE_S = 15


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def start_daemon(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def main(state_dir: str) -> int:
    state = Path(state_dir)
    become_subreaper()
    (state / "keeper.pid").write_text(f"{os.getpid()}\n")
    logs = state / "log"
    virtlogd = start_daemon(["virtlogd", "--pid-file", str(state / "virtlogd.pid")], logs / "virtlogd.out")
    libvirtd = start_libvirtd(state)
    stopping = restarting = sshd_wanted = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    def restart(_signum: int, _frame: object) -> None:
        nonlocal restarting
        restarting = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    def want_sshd(_signum: int, _frame: object) -> None:
        nonlocal sshd_wanted
        sshd_wanted = True

    signal.signal(signal.SIGUSR1, restart)  # Lab.restart_libvirtd: a daemon restart under load, for tests
    signal.signal(signal.SIGUSR2, want_sshd)  # LabSshd.start: the lab's own sshd, with its config written
    while not stopping:
        if restarting:
            restarting = False
            libvirtd = restart_libvirtd(libvirtd, state)
        if sshd_wanted:
            sshd_wanted = False
            start_sshd(state)
        reap_children()
        time.sleep(0.2)
    for daemon in (libvirtd, virtlogd):
        if daemon.poll() is None:
            daemon.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(d.poll() is None for d in (libvirtd, virtlogd)):
        reap_children()
        time.sleep(0.1)
    for daemon in (libvirtd, virtlogd):
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    reap_children()
    return 0


def start_libvirtd(state: Path) -> subprocess.Popen:
    return start_daemon(["libvirtd", "--listen", "--pid-file", str(state / "libvirtd.pid")], state / "log" / "libvirtd.out")


def start_sshd(state: Path) -> None:
    """sshd detaches itself: its daemon becomes our child (we are the subreaper), reaped here."""
    from virtops.lab.sshd import sshd_command

    with (state / "log" / "sshd.log").open("ab") as out:
        subprocess.run(sshd_command(state), stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def restart_libvirtd(libvirtd: subprocess.Popen, state: Path) -> subprocess.Popen:
    """Stop libvirtd as systemd's restart does (SIGTERM, then wait) and start it again; guests and
    networks stay up, as they do on a real host."""
    libvirtd.terminate()
    try:
        libvirtd.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        libvirtd.kill()
        libvirtd.wait()
    (state / "libvirtd.pid").unlink(missing_ok=True)
    return start_libvirtd(state)


def reap_children() -> None:
    """Collect exited orphans (dnsmasq's forks, QEMU) that were re-parented to us."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
