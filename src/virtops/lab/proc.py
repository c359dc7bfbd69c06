"""Running the system tools of lab hosts and their servers, and watching the processes they start."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from virtops.base.errors import VirtopsError


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a system tool with an argument list (never a shell); its stderr becomes our error."""
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise VirtopsError(f"`{' '.join(argv[:3])}` failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}.")
    return result


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ", 1)[1][0] != "Z"  # a zombie is not alive
    except (OSError, IndexError):
        return False


def wait_for_exit(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)


def command_line_names(pid: int, text: str) -> bool:
    """Whether process `pid`'s command line holds `text` (a lab's path): a pid file may be stale,
    so only a process that names what it belongs to is signalled."""
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return False
